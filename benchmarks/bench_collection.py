"""Collection speed: a generated 512-row matrix, and what the plugin costs projects that don't use it.

Run: python benchmarks/bench_collection.py [--repeat 5]
Each command runs in a fresh `python -m pytest` process; the variants alternate, so they share the machine's
state, and the report gives medians and ratios from this one run.
Goals: collecting 512 rows (9 features, full product) takes under 2 s; without --ablate-matrix the plugin
adds no measurable time (ratio ~1.00).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = [
    "torch_compile",
    "cuda_graph",
    "radix_cache",
    "flashinfer_mla",
    "nextn",
    "ep_moe",
    "dp_attention",
    "mixed_chunk",
    "overlap",
]
MATRIX = "\n".join(
    [
        "name: product-512",
        "model: deepseek-ai/DeepSeek-R1",
        "launch: [sglang-serve]  # not a Python launcher: no flag probe, this measures collection alone",
        "args: {tp-size: 8, trust-remote-code: true}",
        "features:",
        *[f"  {f}: {{on: {{enable-{f.replace('_', '-')}: true}}}}" for f in FEATURES],
        "generate: {mode: product}",
        "workloads:",
        "  single: {kind: single, prompt: hi, expect: x}",
        "  batch: {kind: batch, input_len: 760, output_len: 460, levels: [{concurrency: 16}, {concurrency: 512}]}",
        "",
    ]
)


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(whole process wall clock, pytest's own "collected in X s")."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 5):
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    found = re.search(r"collected in ([0-9.]+)s", done.stdout)
    return elapsed, float(found.group(1)) if found else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    pytest = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "m.yaml").write_text(MATRIX)
        (root / "test_plain.py").write_text("".join(f"def test_{i}():\n    pass\n" for i in range(200)))
        variants = {
            "512-row matrix, --collect-only": [*pytest, "--ablate-matrix", "m.yaml"],
            "plain project, plugin installed": [*pytest, "test_plain.py"],
            "plain project, plugin disabled": [*pytest, "-p", "no:sglang_ablate", "test_plain.py"],
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        inside: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeat):
            for name, cmd in variants.items():
                wall, collect = timed(cmd, root)
                times[name].append(wall)
                inside[name].append(collect)
        cases = subprocess.run(
            variants["512-row matrix, --collect-only"], cwd=root, capture_output=True, text=True
        ).stdout
        collected = cases.strip().splitlines()[-1]
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"{repeat} runs each; median (min-max) of the whole `python -m pytest` process and of pytest's own")
    print("'collected in' time (matrix load, flag probe, expansion, parametrization, ordering):")
    for name, ts in times.items():
        print(
            f"  {name:34s} process {med[name]:6.3f} s ({min(ts):.3f}-{max(ts):.3f})"
            f"   collection {statistics.median(inside[name]):6.3f} s"
        )
    print(f"  512-row matrix: {collected}")
    goal = statistics.median(inside["512-row matrix, --collect-only"])
    print(
        f"512-row collection: {goal:.3f} s inside pytest, "
        f"{med['512-row matrix, --collect-only']:.3f} s for the whole process"
        f" (goal < 2 s: {'met' if med['512-row matrix, --collect-only'] < 2 else 'MISSED'} for the whole process)"
    )
    ratio = med["plain project, plugin installed"] / med["plain project, plugin disabled"]
    print(f"plugin installed / disabled, no --ablate-matrix: {ratio:.3f}x")


if __name__ == "__main__":
    main()
