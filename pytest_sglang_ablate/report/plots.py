"""PNG plots beside report.md (optional: `pip install 'pytest-sglang-ablate[plots]'` brings matplotlib).

- throughput.png: batch throughput (p+d) against concurrency, one line per row;
- tradeoff.png: per-request decode speed against throughput, one line per row (the latency/throughput trade-off
  the seed page's advice is about: DP attention raises throughput and lowers each request's speed);
- capacity-<workload>.png: for each `kind: slo` workload, its probes' p99 latencies against the load, one line per
  row, the targets drawn (what "Capacity at the SLO" found, and how close each row came).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

from ..results.record import CaseResult


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _series(records: list[CaseResult]) -> dict[str, list[tuple[int, float, float]]]:
    """Row -> [(concurrency, throughput, per-request decode)] of its measured batch levels, by concurrency."""
    out: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for r in records:
        f = r.figures or {}
        value = f.get("throughput_tok_s")
        if (
            r.kind == "batch"
            and r.outcome == "passed"
            and r.concurrency
            and r.rate is None  # by concurrency: an open-loop level has none of its own
            and isinstance(value, float)
            and value == value
        ):
            out[r.row].append((int(r.concurrency), float(f["throughput_tok_s"]), float(f["per_request_decode_tok_s"])))
    return {row: sorted(points) for row, points in out.items()}


def render(records: list[CaseResult], out_dir: Path, title: str) -> list[Path]:
    """Write the plots; returns their paths (none when matplotlib is missing or nothing was measured)."""
    series = _series(records)
    slo = [r for r in records if r.kind == "slo" and (r.figures or {}).get("probes")]
    with warnings.catch_warnings():  # older matplotlib calls pyparsing names it deprecates: nothing a user can act on
        warnings.simplefilter("ignore", DeprecationWarning)
        if not (series or slo) or not available():  # nothing to draw: matplotlib is not even imported
            return []
        return (_draw(series, out_dir, title) if series else []) + _capacity(slo, out_dir, title)


def _capacity(records: list[CaseResult], out_dir: Path, title: str) -> list[Path]:
    """One figure per SLO workload: a panel per target metric, p99 against the load, one line per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for workload in sorted({r.workload for r in records}):
        mine = [r for r in records if r.workload == workload]
        targets: dict[str, dict[str, float]] = (mine[0].figures or {}).get("slo") or {}
        metrics = [m for m in targets if m in ("ttft_ms", "tpot_ms", "e2e_ms")] or ["ttft_ms"]
        fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            for r in mine:
                probes = sorted((r.figures or {}).get("probes") or [], key=lambda p: p["load"])
                points = [(p["load"], p.get(f"{metric}_p99")) for p in probes if p.get(f"{metric}_p99") is not None]
                if points:
                    ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=r.row)
            for pct, limit in targets.get(metric, {}).items():
                ax.axhline(limit, color="grey", linestyle="--", label=f"target {pct} {limit:g} ms")
            variable = (mine[0].figures or {}).get("variable", "load")
            ax.set(xscale="log", yscale="log", xlabel=variable, ylabel=f"{metric} p99", title=f"{title}: {workload}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small")
        fig.tight_layout()
        written.append(out_dir / f"capacity-{workload}.png")
        out_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def _draw(series: dict[str, list[tuple[int, float, float]]], out_dir: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for row, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=row)
    ax.set(
        xscale="log",
        xlabel="client concurrency",
        ylabel="throughput, input + output tokens/s",
        title=f"{title}: throughput by concurrency",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    written.append(out_dir / "throughput.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for row, points in series.items():
        ax.plot([p[1] for p in points], [p[2] for p in points], marker="o", label=row)
        for c, x, y in points:
            ax.annotate(f"c{c}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set(
        xlabel="throughput, input + output tokens/s",
        ylabel="per-request decode, tokens/s",
        title=f"{title}: per-request speed vs throughput",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    written.append(out_dir / "tradeoff.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written
