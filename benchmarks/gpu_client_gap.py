"""Our batch level against SGLang's own client on one running SGLang server, side by side and interleaved.

    python benchmarks/gpu_client_gap.py --port 31000 --model MODEL_DIR [--rounds 2] [--json out.json]

Needs a GPU machine with SGLang (its `sglang.bench_serving` is the reference) and a server already started with
the flags to study. Each round runs, in this order, on the same server:

  bench_serving --backend sglang-oai   (OpenAI /v1/completions stream, as the plugin uses)
  ours as the plugin runs a level: 4 client processes, flush_cache, a discarded burst at the level's concurrency
  ours, 1 client process, no flush, no burst
  ours, 4 client processes, no flush, no burst
  ours, 1 client process, flush and burst
  bench_serving --backend sglang       (SGLang's native /generate stream)

All at the same load: random prompts of INPUT tokens, exactly OUTPUT tokens out (ignore_eos), REQUESTS requests at
CONCURRENCY in flight. It prints each run's total throughput (input + output tokens / s), mean TPOT and mean TTFT
and each variant's median over rounds as a ratio to bench_serving's OpenAI run. docs/metrics.md reports what it
found.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import requests

from pytest_sglang_ablate.engines.sglang import SGLANG
from pytest_sglang_ablate.measure import metrics
from pytest_sglang_ablate.measure.loadgen import Endpoint, closed_loop_processes, encode

FIGURES = SGLANG.bench_client.figures if SGLANG.bench_client else {}  # how bench_serving's output is read


def bench_serving(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "sglang.bench_serving",
        "--backend",
        backend,
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
        "--model",
        args.model,
        "--tokenizer",
        args.model,
        "--dataset-name",
        "random",
        "--random-input-len",
        str(args.input),
        "--random-output-len",
        str(args.output),
        "--random-range-ratio",
        "1",
        "--num-prompts",
        str(args.requests),
        "--max-concurrency",
        str(args.concurrency),
        "--disable-tqdm",
    ]
    if args.dataset_path:
        cmd += ["--dataset-path", args.dataset_path]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out: dict[str, Any] = {"run": f"bench_serving {backend}", "rc": done.returncode}
    for key, pattern in FIGURES.items():
        found = re.search(pattern, done.stdout)
        out[key] = float(found.group(1)) if found else None
    if out["throughput_tok_s"] is None:
        out["error"] = (done.stdout + done.stderr)[-1500:]
    return out


def ours(args: argparse.Namespace, processes: int, flush: bool, burst: bool, seed: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{args.port}"
    endpoint = Endpoint(base)
    rng = random.Random(seed)

    def bodies(n: int, max_tokens: int) -> list[bytes]:
        return [
            encode(
                endpoint,
                "/v1/completions",
                {
                    "model": args.model,
                    "prompt": [rng.randrange(100, 1000) for _ in range(args.input)],
                    "max_tokens": max_tokens,
                    "temperature": 0,
                    "ignore_eos": True,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            )
            for _ in range(n)
        ]

    if flush:
        requests.post(base + "/flush_cache", timeout=30)
    if burst:
        closed_loop_processes(endpoint, 600, bodies(args.concurrency, 4), args.concurrency, processes)
    records, health = closed_loop_processes(
        endpoint, 600, bodies(args.requests, args.output), args.concurrency, processes
    )
    m = metrics.level(records, args.concurrency, args.input, health)
    name = f"ours p{processes}" + (" flush" if flush else "") + (" burst" if burst else "")
    return {
        "run": name,
        "throughput_tok_s": m.throughput_tok_s,
        "tpot_ms_mean": m.tpot.mean,
        "ttft_ms_mean": m.ttft.mean,
        "duration_s": m.duration_s,
        "failed": m.failed,
        "client_cpu": health.cpu_fraction,
        "lag_p99_ms": health.lag_p99_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset-path", default="")
    parser.add_argument("--input", type=int, default=256)
    parser.add_argument("--output", type=int, default=256)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        plan: list[Callable[[], dict[str, Any]]] = [
            partial(bench_serving, args, "sglang-oai"),
            partial(ours, args, 4, True, True, 10 * r + 1),
            partial(ours, args, 1, False, False, 10 * r + 2),
            partial(ours, args, 4, False, False, 10 * r + 3),
            partial(ours, args, 1, True, True, 10 * r + 4),
            partial(bench_serving, args, "sglang"),
        ]
        for step in plan:
            began = time.time()
            run = step()
            run["round"], run["started"], run["wall_s"] = r + 1, began, round(time.time() - began, 1)
            runs.append(run)
            print(json.dumps(run), flush=True)
    reference = statistics.median(
        x["throughput_tok_s"] for x in runs if x["run"] == "bench_serving sglang-oai" and x["throughput_tok_s"]
    )
    print(
        f"\nmedian over {args.rounds} rounds; c{args.concurrency}, {args.requests} requests, "
        f"{args.input}/{args.output} tokens"
    )
    print(f"{'run':34} {'tok/s (p+d)':>12} {'vs oai':>7} {'TPOT ms':>8} {'TTFT ms':>8}")
    for name in dict.fromkeys(x["run"] for x in runs):
        xs = [x for x in runs if x["run"] == name and x.get("throughput_tok_s")]
        if not xs:
            print(f"{name:34} failed")
            continue
        tput = statistics.median(x["throughput_tok_s"] for x in xs)
        tpot = statistics.median(x["tpot_ms_mean"] for x in xs)
        ttft = statistics.median(x["ttft_ms_mean"] for x in xs)
        print(f"{name:34} {tput:12,.0f} {tput / reference:7.2f} {tpot:8.2f} {ttft:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
