"""On a GPU machine: prove the NVML wait of teardown with real CUDA processes. Not for CI (needs a GPU, torch
and nvidia-ml-py).

Run: PYTHONPATH=. python3 benchmarks/gpu_release.py [--repeat 5] [--gib 2]
1. A torch process holds GPU memory; NVML lists its pid; after SIGKILL, how long until the pid leaves the list.
2. The stand-in server with GPU memory in itself and in a child and a grandchild, launched and stopped by the
   plugin: NVML lists all three pids while it runs, none after Server.stop(), and how long stop() took.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_sglang_ablate import engines
from pytest_sglang_ablate.matrix.model import ServerSettings
from pytest_sglang_ablate.matrix.rows import Row
from pytest_sglang_ablate.server import gpu
from pytest_sglang_ablate.server.launch import start

STANDIN = Path(__file__).resolve().parents[1] / "tests" / "standin_server.py"


def raw_kill(gib: float) -> float:
    code = (
        f"import torch, time; x = torch.empty({int(gib * 2**30)}, dtype=torch.uint8, device='cuda'); "
        "torch.cuda.synchronize(); print('up', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    held = gpu.holders({proc.pid})
    assert proc.pid in held, f"NVML does not list pid {proc.pid}: {held}"
    print(f"  pid {proc.pid} holds {held[proc.pid] / 2**30:.2f} GiB per NVML; SIGKILL")
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    proc.wait()
    while gpu.holders({proc.pid}):
        time.sleep(0.005)
    return time.monotonic() - killed


def plugin_stop(gib: float, tmp: Path) -> tuple[float, int]:
    row = Row(
        "gpu",
        (),
        (),
        (sys.executable, str(STANDIN), "--model-path", "tiny"),
        (("STANDIN", f"gpu={gib},children=1"),),
        (),
    )
    server = start(
        row,
        engines.get("sglang"),
        ServerSettings(shutdown_grace_s=5, startup_timeout_s=120, gpu_release_timeout_s=60),
        tmp,
    )
    pids = {int(p) for p in server.status().get("pids", {})} | {server.status()["server_pid"]}
    held = gpu.holders(pids)
    print(
        f"  running: NVML lists {len(held)} of the server's {len(pids)} pids holding "
        f"{sum(held.values()) / 2**30:.2f} GiB"
    )
    report = server.stop()
    left = gpu.holders(set(report.pids))
    assert not left, f"still held after stop(): {left}"
    return report.seconds, len(held)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--gib", type=float, default=2.0)
    args = parser.parse_args()
    print(
        subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    release = [raw_kill(args.gib) for _ in range(args.repeat)]
    print(
        f"SIGKILL -> pid gone from NVML's compute-process list: median {statistics.median(release) * 1000:.0f} ms "
        f"(min {min(release) * 1000:.0f}, max {max(release) * 1000:.0f}) over {args.repeat}"
    )
    with tempfile.TemporaryDirectory() as d:
        stops = [plugin_stop(args.gib, Path(d)) for _ in range(args.repeat)]
    print(
        f"Server.stop() of a 3-process GPU server (SIGTERM, pids gone, port free, NVML released): median "
        f"{statistics.median(s for s, _ in stops):.2f} s over {args.repeat}; "
        f"GPU-holding pids seen while running: {[n for _, n in stops]}"
    )


if __name__ == "__main__":
    main()
