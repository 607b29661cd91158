"""A level measured twice: by us, then by the engine's own benchmark client on the same server with matching
settings (`cross_check: bench_serving`, SGLang's `sglang.bench_serving`). The level fails when the two disagree
by more than the tolerance on total throughput or mean TPOT, so a figure we report is one SGLang's client agrees
with, or says why not."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

from ..matrix.model import BatchWorkload, Level
from ..server.launch import Server

# what `sglang.bench_serving` prints at the end of a run (sglang/benchmark/serving.py), by our figure's name
FIGURES = {
    "throughput_tok_s": r"Total token throughput \(tok/s\):\s+([0-9.]+)",
    "tpot_ms_mean": r"Mean TPOT \(ms\):\s+([0-9.]+)",
    "ttft_ms_mean": r"Mean TTFT \(ms\):\s+([0-9.]+)",
    "duration_s": r"Benchmark duration \(s\):\s+([0-9.]+)",
}
COMPARED = ("throughput_tok_s", "tpot_ms_mean")
BACKENDS = {"openai": "sglang-oai", "native": "sglang"}  # bench_serving's backend for each of our APIs


def command(server: Server, workload: BatchWorkload, level: Level) -> list[str]:
    """bench_serving with our level's settings: random token ids of exactly our lengths, our request count and
    concurrency, the same API, against the row's server, in the engine's own Python."""
    python = server.profile.probe_python(server.argv[:3]) or sys.executable
    model = server.argv[server.argv.index(server.profile.model_flag) + 1]
    settings = {
        "--backend": BACKENDS[workload.api],
        "--host": server.host,
        "--port": str(server.port),
        "--model": model,
        "--tokenizer": model,
        "--dataset-name": "random-ids",
        "--random-input-len": str(workload.input_len),
        "--random-output-len": str(workload.output_len),
        "--random-range-ratio": "1",
        "--num-prompts": str(level.requests),
        "--max-concurrency": str(level.concurrency),
    }
    return [
        python,
        "-m",
        str(server.profile.bench_module),
        *(x for kv in settings.items() for x in kv),
        "--disable-tqdm",
    ]


def run(server: Server, workload: BatchWorkload, level: Level) -> dict[str, Any]:
    """bench_serving's figures for the level (or its error), with the command that made them."""
    argv = command(server, workload, level)
    env = {**os.environ, **dict(server.row.env)}
    if server.api_key:
        env["OPENAI_API_KEY"] = server.api_key
    out: dict[str, Any] = {"client": "sglang.bench_serving", "command": argv}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=workload.request_timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    for key, pattern in FIGURES.items():
        found = re.search(pattern, done.stdout)
        if found:
            out[key] = float(found.group(1))
    if any(key not in out for key in COMPARED):
        lines = (done.stdout + done.stderr).strip().splitlines()
        out["error"] = f"exit code {done.returncode}; its output ended: " + " | ".join(lines[-5:])
    return out


def differences(ours: dict[str, Any], theirs: dict[str, Any], tolerance: float) -> list[str]:
    """Why the two measurements disagree (empty when they agree within `tolerance`)."""
    if "error" in theirs:
        return [f"the cross-check with {theirs['client']} did not run: {theirs['error']}"]
    out = []
    for key in COMPARED:
        mine, reference = ours.get(key), theirs[key]
        if not isinstance(mine, (int, float)) or not reference:
            continue
        off = mine / reference - 1
        if abs(off) > tolerance:
            out.append(
                f"{key}: ours {mine:,.2f}, {theirs['client']} {reference:,.2f} on the same server ({off:+.1%}, "
                f"tolerance {tolerance:.0%}): one of the two clients is not measuring the server"
            )
    return out
