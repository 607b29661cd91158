"""Does the open-loop client keep its schedule, and up to what rate, on this machine? Beside the closed loop.

Run: python benchmarks/bench_openloop.py [--seconds 3]   (about a minute)
The stand-in server (tests/standin_server.py) answers 8 tokens at once, pinned to the last CPU; the client runs
on the first. For each rate, Poisson arrivals for `--seconds` (at least 100 requests) go through
measure/openloop.open_loop; printed: how late the client itself sent them (p50, p99: the schedule's own error,
never the server's queue), the event loop's lag (p99), the client's CPU share and the request rate achieved.
Then the closed loop (measure/loadgen.closed_loop) at concurrency 64 on the same server, for the most requests per
second this client drives when it does not have to keep a schedule. Goal: lateness p99 under the default 50 ms
guard (`loop_lag_limit_ms`) at every rate below the closed loop's ceiling; the first rate that misses it is where
a rate level on this machine would fail as a client error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pytest_sglang_ablate.measure.loadgen import Client, Endpoint, closed_loop, encode
from pytest_sglang_ablate.measure.openloop import arrivals, open_loop

STANDIN = Path(__file__).resolve().parents[1] / "tests" / "standin_server.py"
RATES = (50, 100, 200, 400, 800, 1600, 3200, 6400)


def start_standin(cpu: int) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--model-path", "m", "--port", str(port)],
        env={**os.environ, "STANDIN": "tok_rate=0,burst=8"},
        stdout=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stand-in not healthy on port {port}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    proc, port = start_standin(cpus[-1])
    os.sched_setaffinity(0, {cpus[0]})
    endpoint = Endpoint(f"http://127.0.0.1:{port}")
    body = {
        "model": "m",
        "prompt": [1, 2, 3],
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    try:
        print(
            f"client on CPU {cpus[0]}, stand-in on CPU {cpus[-1]}; Poisson arrivals for {args.seconds:g} s per rate\n"
        )
        print("| rate, req/s | requests | lateness p50 ms | lateness p99 ms | loop lag p99 ms | client CPU ", end="")
        print("| achieved req/s |")
        print("|---|---|---|---|---|---|---|")
        for rate in RATES:
            n = max(100, round(rate * args.seconds))
            requests = [encode(endpoint, "/v1/completions", body)] * n
            due = arrivals(rate, n, seed=rate)
            records, health, schedule = asyncio.run(open_loop(Client(endpoint, 60.0), requests, due, 1024))
            span = max(r.end for r in records) - min(r.start for r in records)
            late = sorted(schedule.lateness)
            ok = sum(r.ok for r in records)
            print(
                f"| {rate} | {n} | {1000 * statistics.median(late):.2f} | {schedule.lateness_p99_ms():.2f} "
                f"| {health.lag_p99_ms:.2f} | {health.cpu_fraction:.0%} | {ok / span:.0f} |"
            )
        n = 2000
        requests = [encode(endpoint, "/v1/completions", body)] * n
        began = time.perf_counter()
        records, health = asyncio.run(closed_loop(Client(endpoint, 60.0), requests, 64))
        wall = time.perf_counter() - began
        print(
            f"\nclosed loop, concurrency 64, {n} requests: {sum(r.ok for r in records) / wall:.0f} req/s, "
            f"loop lag p99 {health.lag_p99_ms:.2f} ms, client CPU {health.cpu_fraction:.0%}"
        )
        print(json.dumps({"closed_loop_req_s": round(sum(r.ok for r in records) / wall)}))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
