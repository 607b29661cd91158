"""How many experts a decode step uses on a DeepSeek-V3 row, from SGLang's expert distribution recorder.

    pytest --ablate-matrix matrix/gpu-slice.yaml matrix/gpu-slice.yaml benchmarks/gpu_experts.py

A test of the user's kind (it takes the `sglang_server` fixture, so it runs once on each row's server). On a row
started with `--expert-distribution-recorder-mode stat` (others skip) it records while C requests (256 random
prompt tokens, 32 out) decode together, for C in 1, 16, 64, and reads the recorder's dump
(`SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR`): per forward pass and MoE layer, how many of the 256 experts got a
token. A real router spreads a step's tokens over many experts (C x 8 choices); dummy weights may send them all to
the same few. Writes experts-<row>.json into $OUT (or the working directory) and prints it. Needs torch.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests


def _post(base: str, path: str, body: dict[str, Any] | None = None) -> None:
    response = requests.post(base + path, json=body or {}, timeout=600)
    response.raise_for_status()


def _newest(folder: Path, after: float) -> Path:
    found = [p for p in folder.glob("expert_distribution_recorder_*.pt") if p.stat().st_mtime >= after]
    assert found, f"the recorder wrote nothing to {folder}"
    return max(found, key=lambda p: p.stat().st_mtime)


def _per_step(path: Path, concurrency: int) -> dict[str, Any]:
    import torch

    counts = torch.load(path, weights_only=True)["logical_count"]  # [steps, layers, experts]
    moe = [layer for layer in range(counts.shape[1]) if int(counts[:, layer].sum()) > 0]
    used, tokens = [], []
    for step in range(counts.shape[0]):
        for layer in moe:
            row = counts[step, layer]
            total = int(row.sum())
            if total == concurrency * 8:  # a decode step of every request (8 choices a token), not a prefill
                used.append(int((row > 0).sum()))
                tokens.append(total // 8)
    return {
        "concurrency": concurrency,
        "decode_steps_x_layers": len(used),
        "experts_used_median": statistics.median(used) if used else None,
        "experts_used_min": min(used) if used else None,
        "experts_used_max": max(used) if used else None,
        "possible": min(256, concurrency * 8),
        "moe_layers": moe,
    }


def test_experts_per_decode_step(sglang_server: Any) -> None:
    argv = list(sglang_server.row.argv)
    if "--expert-distribution-recorder-mode" not in argv:
        pytest.skip("this row runs without --expert-distribution-recorder-mode")
    folder = Path(dict(sglang_server.row.env).get("SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR", "/tmp"))
    base = sglang_server.base_url
    rng = random.Random(0)
    found = []
    for concurrency in (1, 16, 64):
        bodies = [
            {
                "input_ids": [rng.randrange(100, 1000) for _ in range(256)],
                "sampling_params": {"max_new_tokens": 32, "temperature": 0, "ignore_eos": True},
            }
            for _ in range(concurrency)
        ]
        began = time.time()
        _post(base, "/start_expert_distribution_record")
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda b: _post(base, "/generate", b), bodies))
        _post(base, "/stop_expert_distribution_record")
        _post(base, "/dump_expert_distribution_record")
        found.append(_per_step(_newest(folder, began - 1), concurrency))
    out = Path(os.environ.get("OUT", "."))
    result = {"row": sglang_server.row.id, "env": dict(sglang_server.row.env), "steps": found}
    (out / f"experts-{sglang_server.row.id}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    assert all(s["decode_steps_x_layers"] > 0 for s in found), found
