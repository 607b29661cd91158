"""Streaming-client efficiency and accuracy of our load generator, against the stand-in server (no GPU).

Run: python benchmarks/bench_client.py [--repeat 3]      (needs `pip install aiohttp`, for variant (b))
Three clients, each in its own process pinned to one core, the stand-in pinned to another:
  (a) the seed's method: a ThreadPoolExecutor, each thread running its own asyncio loop and AsyncOpenAI client;
  (b) SGLang's bench_serving: aiohttp, a new ClientSession per request, `async for line in response.content`,
      json.loads of every data line;
  ours: loadgen.closed_loop(Client(...)), one keep-alive connection per stream, one SSE pass per TCP read.
Every client takes a timestamp per streamed chunk, as a benchmark client must.
- ingest: 64 concurrent /v1/completions streams, the server as fast as it goes (tok_rate=0); streamed chunks per
  second of wall time and per client CPU-second (process CPU, threads included). Goals: ours/(a) >= 25x and
  ours/(b) >= 3x in chunks per client CPU-second.
- accuracy: 256 concurrent streams of 200 tokens at 100 tokens/s each; the mean per-request decode rate
  (n - 1) / (last chunk - first chunk) on the client's clock against the same on the server's (/standin_stats,
  a fresh server per run). Goal: within 0.5 %.
Medians of --repeat runs, variants interleaved within each repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

STANDIN = Path(__file__).resolve().parents[1] / "tests" / "standin_server.py"
VARIANTS = ("openai", "aiohttp", "ours")
LABELS = {"openai": "(a) AsyncOpenAI threads", "aiohttp": "(b) aiohttp session/req", "ours": "ours closed_loop"}
INGEST_REQUESTS = {"openai": 128, "aiohttp": 512, "ours": 2048}  # ~3-10 s each at the expected rates
INGEST_TOKENS, INGEST_CONCURRENCY = 1000, 64
ACCURACY_REQUESTS, ACCURACY_TOKENS, ACCURACY_RATE = 256, 200, 100
Streams = list[tuple[list[float], int]]  # per request: chunk arrival times (client clock), completion tokens


def payload(tokens: int) -> dict[str, Any]:
    return {"model": "m", "prompt": "hello world", "max_tokens": tokens, "temperature": 0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip


# ---- the three clients (run inside the worker process) ----


def run_openai(base: str, n: int, tokens: int, concurrency: int) -> Streams:
    import openai

    out: Streams = []
    indices = itertools.count()  # next() on a count is atomic under the GIL

    async def thread_main() -> None:
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x")
        while next(indices) < n:
            times, usage, text = [], 0, ""
            stream = await client.completions.create(model="m", prompt="hello world", max_tokens=tokens, temperature=0,
                                                     stream=True, stream_options={"include_usage": True},
                                                     extra_body={"ignore_eos": True})  # fmt: skip
            async for chunk in stream:
                if chunk.choices:
                    times.append(time.perf_counter())
                    text += chunk.choices[0].text
                if chunk.usage:
                    usage = chunk.usage.completion_tokens
            out.append((times, usage))
        await client.close()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for f in [pool.submit(asyncio.run, thread_main()) for _ in range(concurrency)]:
            f.result()
    return out


def run_aiohttp(base: str, n: int, tokens: int, concurrency: int) -> Streams:
    import aiohttp

    out: Streams = []
    indices = itertools.count()
    body = payload(tokens)

    async def worker() -> None:
        while next(indices) < n:
            times: list[float] = []
            usage, text = 0, ""
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=6 * 3600)) as session:
                async with session.post(f"{base}/v1/completions", json=body) as response:
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
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())
    return out


def run_ours(base: str, n: int, tokens: int, concurrency: int, prepared: list[bytes]) -> Streams:
    from pytest_sglang_ablate.loadgen import Client, Endpoint, closed_loop

    records, _ = asyncio.run(closed_loop(Client(Endpoint(base), 600.0), prepared, concurrency))
    return [(r.chunk_times, r.completion_tokens or 0) if r.ok else ([], 0) for r in records]


def worker(args: argparse.Namespace) -> None:
    """One client run; prints its figures as JSON. CPU = this process (all threads) during the run only."""
    os.sched_setaffinity(0, {args.core})
    base = f"http://127.0.0.1:{args.port}"
    run: Callable[[], Streams]
    if args.worker == "ours":
        from pytest_sglang_ablate.loadgen import Endpoint, encode

        prepared = [encode(Endpoint(base), "/v1/completions", payload(args.tokens)) for _ in range(args.requests)]
        run = lambda: run_ours(base, args.requests, args.tokens, args.concurrency, prepared)  # noqa: E731
    else:
        fn = run_openai if args.worker == "openai" else run_aiohttp
        import openai, aiohttp  # noqa: E401, F401  (imports outside the measured window)

        run = lambda: fn(base, args.requests, args.tokens, args.concurrency)  # noqa: E731
    cpu0, wall0 = time.process_time(), time.perf_counter()
    streams = run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    rates = [(u - 1) / (t[-1] - t[0]) for t, u in streams if u > 1 and len(t) > 1 and t[-1] > t[0]]
    complete = sum(1 for t, u in streams if len(t) == args.tokens and u == args.tokens)
    print(json.dumps({"chunks": sum(len(t) for t, _ in streams), "wall": wall, "cpu": cpu, "rates": rates,
                      "complete": complete}))  # fmt: skip


# ---- orchestration ----


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


@contextmanager
def standin(tok_rate: int, core: int) -> Iterator[tuple[int, psutil.Process]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(STANDIN), "--model-path", "m", "--port", str(port)],
                            env={**os.environ, "STANDIN": f"tok_rate={tok_rate}"}, stdout=subprocess.DEVNULL,
                            preexec_fn=lambda: os.sched_setaffinity(0, {core}))  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
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


def measure(variant: str, tok_rate: int, n: int, tokens: int, concurrency: int, cores: tuple[int, int]) -> dict[str, Any]:
    with standin(tok_rate, cores[1]) as (port, server):
        s0 = sum(server.cpu_times()[:2])
        cmd = [sys.executable, __file__, "--worker", variant, "--port", str(port), "--requests", str(n),
               "--tokens", str(tokens), "--concurrency", str(concurrency), "--core", str(cores[0])]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{variant} worker failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        result["server_cpu"] = sum(server.cpu_times()[:2]) - s0
        truth = [(r["completion_tokens"] - 1) / (r["last"] - r["first"]) for r in get(port, "/standin_stats")["requests"]]
    result["truth"] = statistics.fmean(truth)
    result["failed"] = n - result["complete"]
    return result


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
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
    ingest: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    accuracy: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeat):
        for v in VARIANTS:
            ingest[v].append(measure(v, 0, INGEST_REQUESTS[v], INGEST_TOKENS, INGEST_CONCURRENCY, cores))
        for v in VARIANTS:
            accuracy[v].append(measure(v, ACCURACY_RATE, ACCURACY_REQUESTS, ACCURACY_TOKENS, ACCURACY_REQUESTS, cores))

    def med(runs: list[dict[str, Any]], f: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(f(r) for r in runs)

    print(f"Client benchmark: stand-in on core {cores[1]}, each client in its own process on core {cores[0]}; "
          f"medians of {args.repeat} run(s)")  # fmt: skip
    print(f"\nIngest: {INGEST_CONCURRENCY} concurrent streams of {INGEST_TOKENS} tokens, server as fast as it goes")
    print(f"{'client':<26}{'requests':>9}{'chunks/s':>11}{'chunks/CPU-s':>14}{'client CPU':>12}{'server CPU':>12}{'failed':>8}")
    per_cpu: dict[str, float] = {}
    for v in VARIANTS:
        runs = ingest[v]
        per_cpu[v] = med(runs, lambda r: r["chunks"] / r["cpu"])
        print(f"{LABELS[v]:<26}{INGEST_REQUESTS[v]:>9}{med(runs, lambda r: r['chunks'] / r['wall']):>11,.0f}"
              f"{per_cpu[v]:>14,.0f}{med(runs, lambda r: r['cpu'] / r['wall']):>11.0%}"
              f"{med(runs, lambda r: r['server_cpu'] / r['wall']):>12.0%}{sum(r['failed'] for r in runs):>8}")  # fmt: skip
    for v, goal in (("openai", 25.0), ("aiohttp", 3.0)):
        ratio = per_cpu["ours"] / per_cpu[v]
        print(f"  chunks per client CPU-s, ours / {LABELS[v][:3]}: {ratio:6.1f}x   goal >= {goal:g}x   {verdict(ratio >= goal)}")
    print(f"\nAccuracy: {ACCURACY_REQUESTS} concurrent streams of {ACCURACY_TOKENS} tokens at {ACCURACY_RATE} tokens/s each")
    print(f"{'client':<26}{'client tok/s':>13}{'server tok/s':>13}{'error':>9}{'client CPU':>12}{'failed':>8}   goal |error| <= 0.5 %")
    for v in VARIANTS:
        runs = accuracy[v]
        err = med(runs, lambda r: 100 * (statistics.fmean(r["rates"]) / r["truth"] - 1))
        print(f"{LABELS[v]:<26}{med(runs, lambda r: statistics.fmean(r['rates'])):>13.2f}{med(runs, lambda r: r['truth']):>13.2f}"
              f"{err:>8.2f}%{med(runs, lambda r: r['cpu'] / r['wall']):>11.0%}{sum(r['failed'] for r in runs):>8}"
              f"   {verdict(abs(err) <= 0.5) if v == 'ours' else ''}")  # fmt: skip
    print(f"\nTook {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
