"""Readiness detection and teardown time of our launcher, against the stand-in server (no GPU).

Run: python benchmarks/bench_lifecycle.py [--repeat 5]
- readiness: the stand-in answers /health with 503 for 1 s, then 200, and writes down when the 200s begin;
  the latency is from then until our launcher returns. Side by side: SGLang's own test harness
  (popen_launch_server polls /health_generate every 10 s), imitated with the same stand-in.
  Goal: ours notices within 0.25 s.
- teardown: Server.stop() (SIGTERM, grace, SIGKILL, every pid gone, port free) for a server alone, with 2
  children and 2 grandchildren, and with children that ignore SIGTERM (bounded by the 1 s grace).
Medians of --repeat runs, from one run of this script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from pytest_sglang_ablate import engines
from pytest_sglang_ablate.matrix.model import ServerSettings
from pytest_sglang_ablate.matrix.rows import Row
from pytest_sglang_ablate.server.launch import start
from pytest_sglang_ablate.server.ports import choose

STANDIN = Path(__file__).resolve().parents[1] / "tests" / "standin_server.py"
SETTINGS = ServerSettings(shutdown_grace_s=1.0, startup_timeout_s=30)


def row(behaviour: str) -> Row:
    return Row("bench", (), (), (sys.executable, str(STANDIN), "--model-path", "tiny"), (("STANDIN", behaviour),), ())


def ours(tmp: Path, behaviour: str) -> tuple[float, float]:
    """(readiness detection latency, teardown seconds)."""
    ready_file = tmp / "ready"
    ready_file.unlink(missing_ok=True)
    os.environ["STANDIN_READY"] = str(ready_file)
    server = start(row(behaviour), engines.get("sglang"), SETTINGS, tmp)
    latency = server.ready_at - float(ready_file.read_text())
    report = server.stop()
    return latency, report.seconds


def sglang_harness(tmp: Path, interval_s: float = 10.0) -> float:
    """popen_launch_server's loop: GET /health_generate every 10 s until 200."""
    ready_file = tmp / "ready-ref"
    ready_file.unlink(missing_ok=True)
    port = choose("127.0.0.1", lambda p: [], engines.get("sglang").port_range)
    env = {**os.environ, "STANDIN": "slow_start=1", "STANDIN_READY": str(ready_file)}
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--model-path", "tiny", "--port", str(port)], env=env, stdout=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health_generate", timeout=5).status_code == 200:
                    return time.time() - float(ready_file.read_text())
            except requests.RequestException:
                pass
            time.sleep(interval_s)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ready, ref = [], []
        teardown: dict[str, list[float]] = {"alone": [], "children=2": [], "children=2,stubborn": []}
        for _ in range(repeat):
            latency, _ = ours(tmp, "slow_start=1")
            ready.append(latency)
            ref.append(sglang_harness(tmp))
            for behaviour in teardown:
                teardown[behaviour].append(ours(tmp, "" if behaviour == "alone" else behaviour)[1])
    print(f"readiness detection latency, median of {repeat} (min-max):")
    print(f"  ours (poll every 50 ms)           {statistics.median(ready):.3f} s ({min(ready):.3f}-{max(ready):.3f})")
    print(f"  SGLang harness (poll every 10 s)  {statistics.median(ref):.3f} s ({min(ref):.3f}-{max(ref):.3f})")
    print(
        f"  ratio harness / ours: {statistics.median(ref) / statistics.median(ready):.0f}x;"
        f" goal <= 0.25 s: {'met' if statistics.median(ready) <= 0.25 else 'MISSED'}"
    )
    print(
        f"teardown time (SIGTERM, grace {SETTINGS.shutdown_grace_s:g} s, SIGKILL, pids gone, port free), "
        f"median of {repeat}:"
    )
    for behaviour, ts in teardown.items():
        print(f"  {behaviour:22s} {statistics.median(ts):.3f} s ({min(ts):.3f}-{max(ts):.3f})")


if __name__ == "__main__":
    main()
