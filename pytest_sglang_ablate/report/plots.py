"""PNG plots beside report.md (optional: `pip install 'pytest-sglang-ablate[plots]'` brings matplotlib).

- throughput.png: batch throughput (p+d) against concurrency, one line per row;
- tradeoff.png: per-request decode speed against throughput, one line per row (the latency/throughput trade-off
  the seed page's advice is about: DP attention raises throughput and lowers each request's speed).
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
    with warnings.catch_warnings():  # older matplotlib calls pyparsing names it deprecates: nothing a user can act on
        warnings.simplefilter("ignore", DeprecationWarning)
        return _draw(series, out_dir, title) if series and available() else []


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
