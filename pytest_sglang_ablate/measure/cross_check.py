"""A level measured twice: by us, then by the engine's own benchmark client on the same server with matching
settings (`cross_check: bench_serving`; the engine profile's `bench_client`, SGLang's `sglang.bench_serving`).
With `repeat`, the two clients take turns (ours, theirs, ours, ...) and their medians are compared.
The level fails when the two disagree by more than the tolerance on total throughput or mean TPOT, so a figure
we report is one SGLang's client agrees with, or says why not."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from typing import Any

from ..engines.base import BenchLoad
from ..matrix.model import BatchWorkload, Level
from ..server.launch import Server

COMPARED = ("throughput_tok_s", "tpot_ms_mean")


def command(server: Server, workload: BatchWorkload, level: Level) -> list[str]:
    """The engine's benchmark client with our level's settings against the row's server, in the engine's Python."""
    client = server.profile.bench_client
    assert client is not None, "the matrix parser lets cross_check through only for engines with a bench client"
    python = server.profile.probe_python(server.argv[:3]) or sys.executable
    load = BenchLoad(
        server.host,
        server.port,
        server.model_path,
        workload.api,
        workload.input_len,
        workload.output_len,
        level.requests,
        level.concurrency,
    )
    return [python, "-m", client.module, *client.argv(load)]


def run(server: Server, workload: BatchWorkload, level: Level) -> dict[str, Any]:
    """bench_serving's figures for the level (or its error), with the command that made them."""
    argv = command(server, workload, level)
    env = {**os.environ, **dict(server.row.env)}
    if server.api_key:
        env["OPENAI_API_KEY"] = server.api_key
    figures = server.profile.bench_client.figures if server.profile.bench_client else {}
    out: dict[str, Any] = {"client": argv[2], "command": argv}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=workload.request_timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    for key, pattern in figures.items():
        found = re.search(pattern, done.stdout)
        if found:
            out[key] = float(found.group(1))
    if any(key not in out for key in COMPARED):
        lines = (done.stdout + done.stderr).strip().splitlines()
        out["error"] = f"exit code {done.returncode}; its output ended: " + " | ".join(lines[-5:])
    return out


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several cross-check runs of one level as one: each figure's median, and every run's own figures kept."""
    failed = [r for r in runs if "error" in r]
    if failed or len(runs) == 1:
        return failed[0] if failed else runs[0]
    out: dict[str, Any] = {"client": runs[0]["client"], "command": runs[0]["command"], "repeat": len(runs)}
    for key in runs[0]:
        values = [r[key] for r in runs if isinstance(r.get(key), float)]
        if len(values) == len(runs):
            out[key] = statistics.median(values)
    out["runs"] = [{k: v for k, v in r.items() if isinstance(v, float)} for r in runs]
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
