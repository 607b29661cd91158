"""Rows packed onto a node's GPUs under pytest-xdist against the same rows one after the other, in one run.

Run: python benchmarks/bench_packing.py [--row-seconds 30]   (about 8 minutes)
8 rows that need 1 GPU and 4 rows that need 2, each a stand-in server (tests/standin_server.py) with a batch level
of a fixed length, on a fake 4-GPU inventory (`--ablate-gpus 0,1,2,3`): the whole matrix serially, then with
`-n 4 --dist loadgroup`. Goal: the packed run takes at most 0.35 of the serial one. Also printed: the lower bound
(every server's GPU-seconds in the packed run, divided by the 4 GPUs) and how close the schedule came to it.
The best possible ratio here is 1/3 (4 rounds of rows instead of 12), so the goal leaves the packed run about
2 % of the serial time for pytest-xdist's start and the rows' launches; longer rows make that easier.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STANDIN = Path(__file__).resolve().parents[1] / "tests" / "standin_server.py"


def matrix(folder: Path, row_seconds: float) -> Path:
    requests = max(1, round(row_seconds / 2.5))  # 50 tokens at 20 tokens/s: 2.5 s a request, one at a time
    rows = [f"  - [f{i}]" for i in range(8)] + [f"  - {{features: [f{i}], gpus: 2}}" for i in range(8, 12)]
    features = "\n".join(f"  f{i}: {{on: {{attention-backend: b{i}}}}}" for i in range(12))
    path = folder / "m.yaml"
    path.write_text(
        f"""
model: tiny
launch: [{sys.executable}, {STANDIN}]
server: {{shutdown_grace: 2, startup_timeout: 30}}
env: {{STANDIN: "tok_rate=20", STANDIN_RECORD: "{folder / "record.jsonl"}"}}
features:
{features}
rows:
{chr(10).join(rows)}
workloads:
  batch: {{kind: batch, input_len: 8, output_len: 50, cold_start_burst: false,
          levels: [{{concurrency: 1, requests: {requests}}}]}}
"""
    )
    (folder / "pytest.ini").write_text("[pytest]\n")
    return path


# the stand-ins hold no GPU memory; NVML answers for 4 fake GPUs even on a GPU machine (tests/fake_nvml)
FAKE_NVML = Path(__file__).parent.parent / "tests" / "fake_nvml"
FOUR_FAKE_GPUS = {
    **os.environ,
    "FAKE_NVML_GPUS": "4",
    "PYTHONPATH": os.pathsep.join(filter(None, [str(FAKE_NVML), os.environ.get("PYTHONPATH")])),
}


def run(folder: Path, *args: str) -> tuple[float, list[dict[str, Any]]]:
    record = folder / "record.jsonl"
    record.unlink(missing_ok=True)
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--ablate-matrix",
            "m.yaml",
            "--ablate-gpus",
            "0,1,2,3",
            "-q",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        env=FOUR_FAKE_GPUS,
    )
    wall = time.monotonic() - began
    if done.returncode != 0:
        sys.exit(f"pytest {' '.join(args)} failed:\n{done.stdout[-3000:]}")
    servers: dict[int, dict[str, Any]] = {}
    for line in record.read_text().splitlines():
        event = json.loads(line)
        servers.setdefault(event["pid"], {}).update(event)
    return wall, list(servers.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--row-seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        matrix(folder, args.row_seconds)
        serial, _ = run(folder)
        packed, servers = run(folder, "-n", "4", "--dist", "loadgroup")
    gpu_seconds = sum(len(s["cuda_visible_devices"].split(",")) * (s["ended"] - s["started"]) for s in servers)
    bound = gpu_seconds / 4
    print(f"12 rows (8 x 1 GPU, 4 x 2 GPUs), {args.row_seconds:g} s levels, fake inventory of 4 GPUs")
    print(f"serial:                 {serial:7.1f} s")
    print(f"-n 4 --dist loadgroup:  {packed:7.1f} s  ({packed / serial:.3f} of serial; goal <= 0.35)")
    print(
        f"lower bound:            {bound:7.1f} s  (GPU-seconds {gpu_seconds:.1f} / 4 GPUs; the packed run took "
        f"{packed / bound:.2f}x it)"
    )


if __name__ == "__main__":
    main()
