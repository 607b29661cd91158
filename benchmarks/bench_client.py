"""Streaming-client efficiency and accuracy of our load generator, against the stand-in server (no GPU).

Run: python benchmarks/bench_client.py [--repeat 3]      (needs `pip install aiohttp`, for variant (b))
Three clients, each in its own process pinned to one core, the stand-in pinned to another:
  (a) the seed's method, as the plugin runs it with `client: openai` (measure/openai_client.py): a thread pool,
      each thread running its own asyncio loop and AsyncOpenAI client (made before the clock starts: ~50 ms of CPU
      each, which would otherwise stagger 256 streams over seconds);
  (b) SGLang's bench_serving: aiohttp, a new ClientSession per request, `async for line in response.content`,
      json.loads of every data line;
  ours: loadgen.closed_loop(Client(...)), one keep-alive connection per stream, one SSE pass per TCP read.
Every client takes a timestamp per streamed chunk, as a benchmark client must.
- ingest: 64 concurrent /v1/completions streams of 500 tokens, the server as fast as it goes (tok_rate=0,
  16 chunks per socket write);
  streamed chunks per second of wall time and per client CPU-second (process CPU, threads included).
  Goals: ours/(a) >= 25x and ours/(b) >= 3x in chunks per client CPU-second. A client that keeps up with the
  server pays one recv (10-20 us of kernel time on our 2-core VM) per 1-2 chunks; only one that falls behind reads
  many at once.
- accuracy: 256 concurrent streams of 200 tokens at 100 tokens/s each; the mean per-request decode rate
  (n - 1) / (last chunk - first chunk) on the client's clock against the same on the server's (/standin_stats,
  a fresh server per run). Goal: within 0.5 %. "in flight": the most streams the server had at once.
Medians of --repeat runs, variants interleaved. A run during which other processes used more than 5 % of the two
cores is redone (twice at most); the most they used in a kept run is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from pytest_sglang_ablate.measure.loadgen import Client, Endpoint, closed_loop, encode
from pytest_sglang_ablate.measure.openai_client import closed_loop_openai

try:
    import aiohttp
except ImportError:
    sys.exit("bench_client.py needs aiohttp for variant (b): pip install aiohttp")

STANDIN = Path(__file__).resolve().parents[1] / "tests" / "standin_server.py"
# Flat out, the stand-in writes this many token chunks per socket write, as a loaded server's socket delivers
# them; one write per chunk would make the stand-in (one Python core) the ceiling at ~85k chunks/s.
BURST = 16
LABELS = {"openai": "(a) client: openai", "aiohttp": "(b) aiohttp session/req", "ours": "ours closed_loop"}
INGEST_REQUESTS = {"openai": 64, "aiohttp": 512, "ours": 1024}  # ~2-7 s each at the expected rates
INGEST_TOKENS, INGEST_CONCURRENCY = 500, 64  # the seed's batch outputs averaged 460 tokens
ACCURACY_REQUESTS, ACCURACY_TOKENS, ACCURACY_RATE = 256, 200, 100
QUIET = 0.05  # most CPU other processes may use on the two cores during a run (a shared machine's noise)
Streams = list[tuple[list[float], int]]  # per request: chunk arrival times (client clock), completion tokens
Mark = Callable[[], None]  # called when the measured window starts


def payload(tokens: int) -> dict[str, Any]:
    return {
        "model": "m",
        "prompt": "hello world",
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def run_openai(base: str, n: int, tokens: int, concurrency: int, mark: Mark) -> Streams:
    """The plugin's `client: openai` (measure/openai_client.py): the seed's AsyncOpenAI thread pool."""
    records, _ = closed_loop_openai(Endpoint(base), 600, [payload(tokens)] * n, concurrency, ready=mark)
    return [(r.chunk_times, r.completion_tokens or 0) for r in records]


def run_aiohttp(base: str, n: int, tokens: int, concurrency: int, mark: Mark) -> Streams:
    out: Streams = []
    indices = itertools.count()
    body = payload(tokens)

    async def worker() -> None:
        while next(indices) < n:
            times: list[float] = []
            usage, text = 0, ""
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=6 * 3600)) as session,
                session.post(f"{base}/v1/completions", json=body) as response,
            ):
                async for chunk_bytes in response.content:
                    chunk_bytes = chunk_bytes.strip()
                    if not chunk_bytes:
                        continue
                    chunk = chunk_bytes.decode("utf-8").removeprefix("data: ")
                    if chunk == "[DONE]":
                        continue
                    data = json.loads(chunk)
                    if choices := data.get("choices"):
                        times.append(time.perf_counter())
                        text += choices[0].get("text") or ""
                    if data.get("usage"):
                        usage = data["usage"]["completion_tokens"]
            out.append((times, usage))

    async def main() -> None:
        mark()
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())
    return out


def run_ours(base: str, n: int, tokens: int, concurrency: int, mark: Mark) -> Streams:
    endpoint = Endpoint(base)
    requests = [encode(endpoint, "/v1/completions", payload(tokens)) for _ in range(n)]  # before timing, by design
    mark()
    records, _ = asyncio.run(closed_loop(Client(endpoint, 600.0), requests, concurrency))
    return [(r.chunk_times, r.completion_tokens or 0) if r.ok else ([], 0) for r in records]


RUNNERS: dict[str, Callable[[str, int, int, int, Mark], Streams]] = {
    "openai": run_openai,
    "aiohttp": run_aiohttp,
    "ours": run_ours,
}


def worker(args: argparse.Namespace) -> None:
    """One client run; prints its figures as JSON. CPU = this process (all threads) from mark() to the end."""
    os.sched_setaffinity(0, {args.core})
    clock = [0.0, 0.0]

    def mark() -> None:
        clock[:] = time.process_time(), time.perf_counter()

    streams = RUNNERS[args.worker](f"http://127.0.0.1:{args.port}", args.requests, args.tokens, args.concurrency, mark)
    cpu, wall = time.process_time() - clock[0], time.perf_counter() - clock[1]
    rates = [(u - 1) / (t[-1] - t[0]) for t, u in streams if u > 1 and len(t) > 1 and t[-1] > t[0]]
    failed = args.requests - sum(1 for t, u in streams if len(t) == args.tokens and u == args.tokens)
    print(
        json.dumps(
            {"chunks": sum(len(t) for t, _ in streams), "wall": wall, "cpu": cpu, "rates": rates, "failed": failed}
        )
    )


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


@contextmanager
def standin(tok_rate: int, core: int) -> Iterator[tuple[int, psutil.Process]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--model-path", "m", "--port", str(port)],
        env={**os.environ, "STANDIN": f"tok_rate={tok_rate},burst={BURST if tok_rate == 0 else 1}"},
        stdout=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # poll /health: each failed try takes a connect round trip, no sleeping
            try:
                get(port, "/health")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"stand-in not healthy on port {port} (exit {proc.poll()})") from None
        yield port, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def cpu_seconds(cores: tuple[int, int]) -> tuple[float, float]:
    """CPU seconds spent on these cores by every process, and by ours (this one and its reaped children)."""
    t = psutil.cpu_times(percpu=True)
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return sum(t[c].user + t[c].nice + t[c].system for c in cores), ours


def measure(
    variant: str, tok_rate: int, n: int, tokens: int, concurrency: int, cores: tuple[int, int]
) -> dict[str, float]:
    (all0, ours0), wall0 = cpu_seconds(cores), time.perf_counter()
    with standin(tok_rate, cores[1]) as (port, server):
        s0 = sum(server.cpu_times()[:2])
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            variant,
            "--port",
            str(port),
            "--requests",
            str(n),
            "--tokens",
            str(tokens),
            "--concurrency",
            str(concurrency),
            "--core",
            str(cores[0]),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{variant} worker failed:\n{done.stderr[-3000:]}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        server_cpu = sum(server.cpu_times()[:2]) - s0
        stats = get(port, "/standin_stats")
    (all1, ours1), wall = cpu_seconds(cores), time.perf_counter() - wall0
    rate = statistics.fmean(r["rates"])
    truth = statistics.fmean((q["completion_tokens"] - 1) / (q["last"] - q["first"]) for q in stats["requests"])
    return {
        "requests": n,
        "chunks/s": r["chunks"] / r["wall"],
        "chunks/CPU-s": r["chunks"] / r["cpu"],
        "client CPU": r["cpu"] / r["wall"],
        "server CPU": server_cpu / r["wall"],
        "failed": r["failed"],
        "client tok/s": rate,
        "server tok/s": truth,
        "error %": 100 * (rate / truth - 1),
        "in flight": stats["max_in_flight"],
        "foreign": (all1 - all0 - (ours1 - ours0)) / (len(cores) * wall),
    }


def measure_quietly(*args: Any) -> dict[str, float]:
    """measure(), rerun (at most twice) while other processes used more than 5 % of the two cores."""
    for attempt in range(3):
        result = measure(*args)
        result["reruns"] = attempt
        if result["foreign"] <= QUIET:
            break
    return result


def table(title: str, results: dict[str, list[dict[str, float]]], columns: dict[str, str]) -> dict[str, float]:
    """Prints the medians of the runs, one row per client; returns them."""
    print(f"\n{title}\n{'client':<26}" + "".join(f"{c:>14}" for c in columns))
    medians = {v: {c: statistics.median(r[c] for r in runs) for c in columns} for v, runs in results.items()}
    for v, m in medians.items():
        print(f"{LABELS[v]:<26}" + "".join(f"{format(m[c], f):>14}" for c, f in columns.items()))
    return {v: m[next(iter(columns))] for v, m in medians.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--worker", choices=RUNNERS, help=argparse.SUPPRESS)
    for flag in ("port", "requests", "tokens", "concurrency", "core"):
        p.add_argument(f"--{flag}", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        sys.exit("needs two cores: one for the server, one for the client")
    cores = (available[0], available[1])
    os.sched_setaffinity(0, {cores[0]})
    t0 = time.perf_counter()
    ingest: dict[str, list[dict[str, float]]] = {v: [] for v in RUNNERS}
    accuracy: dict[str, list[dict[str, float]]] = {v: [] for v in RUNNERS}
    for _ in range(args.repeat):
        for v in RUNNERS:
            ingest[v].append(measure_quietly(v, 0, INGEST_REQUESTS[v], INGEST_TOKENS, INGEST_CONCURRENCY, cores))
        for v in RUNNERS:
            accuracy[v].append(
                measure_quietly(v, ACCURACY_RATE, ACCURACY_REQUESTS, ACCURACY_TOKENS, ACCURACY_REQUESTS, cores)
            )

    print(
        f"Client benchmark: stand-in on core {cores[1]}, each client in its own process on core {cores[0]}; "
        f"medians of {args.repeat} run(s)"
    )
    per_cpu = table(
        f"Ingest: {INGEST_CONCURRENCY} concurrent streams of {INGEST_TOKENS} tokens, server as fast as it goes",
        ingest,
        {
            "chunks/CPU-s": ",.0f",
            "chunks/s": ",.0f",
            "client CPU": ".0%",
            "server CPU": ".0%",
            "requests": ".0f",
            "failed": ".0f",
        },
    )
    for v, goal in (("openai", 25.0), ("aiohttp", 3.0)):
        ratio = per_cpu["ours"] / per_cpu[v]
        print(
            f"  chunks per client CPU-s, ours / {LABELS[v][:3]}: {ratio:5.2f}x   goal >= {goal:g}x   "
            f"{'met' if ratio >= goal else 'MISSED'}"
        )
    error = table(
        f"Accuracy: {ACCURACY_REQUESTS} concurrent streams of {ACCURACY_TOKENS} tokens at {ACCURACY_RATE} "
        f"tokens/s each",
        accuracy,
        {
            "error %": "+.2f",
            "client tok/s": ".2f",
            "server tok/s": ".2f",
            "client CPU": ".0%",
            "in flight": ".0f",
            "failed": ".0f",
        },
    )
    print(
        f"  per-request decode rate, ours vs the server: {error['ours']:+.2f} %   goal within 0.5 %   "
        f"{'met' if abs(error['ours']) <= 0.5 else 'MISSED'}"
    )
    kept = [r for runs in (*ingest.values(), *accuracy.values()) for r in runs]
    foreign = max(r["foreign"] for r in kept)
    print(
        f"\nOther processes used at most {foreign:.1%} of the two cores during a kept run "
        f"({sum(r['reruns'] for r in kept):.0f} disturbed run(s) redone)"
        + ("; DISTURBED: rerun on a quiet machine" if foreign > QUIET else "")
    )
    print(f"Took {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
