"""Launch-to-ready and teardown time of each launcher, for a 2-node stand-in row (1 node for `local`).

Run (needs the test cluster: `bash scripts/test-cluster.sh`, root): python benchmarks/bench_launchers.py [--repeat 5]
- ready: from the launcher's first call (the local supervisor, srun, or the ssh clients) until rank 0's /health
  answers 200 (the stand-in's rank 0 answers once rank 1 has joined its --dist-init-addr);
- teardown: Server.stop(), from its call until the launcher has proved nothing is left (local: every pid gone and
  the port free; slurm: the step gone from `squeue --steps`; ssh: each host's supervisor wrote its final status
  and no recorded pid is alive there).
Medians of --repeat runs, side by side in one run of this script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from pytest_sglang_ablate import engines
from pytest_sglang_ablate.matrix.model import ServerSettings
from pytest_sglang_ablate.matrix.rows import Row
from pytest_sglang_ablate.server.launch import start
from pytest_sglang_ablate.server.launchers import Launcher, get

STANDIN = Path(__file__).resolve().parents[1] / "tests" / "standin_server.py"
CLUSTER = Path("/tmp/ablate-cluster")
SETTINGS = ServerSettings(shutdown_grace_s=2.0, startup_timeout_s=60)


def row(nodes: int) -> Row:
    argv = (sys.executable, str(STANDIN), "--model-path", "tiny")
    return Row("bench", (), (), argv, (("STANDIN", "tok_rate=100"),), (), nodes=nodes)


def once(launcher: Launcher, nodes: int, tmp: Path) -> tuple[float, float]:
    server = start(row(nodes), engines.get("sglang"), SETTINGS, tmp, launcher=launcher)
    return server.started_s, server.stop().seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for line in (CLUSTER / "env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        os.environ[key] = value
    granted = subprocess.run(["salloc", "-N", "2", "--no-shell", "--time=10"], capture_output=True, text=True)
    job = granted.stderr.split("Granted job allocation ")[1].split()[0]
    os.environ.update({"SLURM_JOB_ID": job, "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "n[0-1]"})
    ssh = ["-F", os.environ["ABLATE_TEST_SSH_CONFIG"]]
    try:
        print(f"{'launcher':<18} {'ready s (median, min-max)':<28} {'teardown s (median, min-max)'}")
        for name, nodes in (("local", 1), ("slurm", 2), ("ssh", 2)):
            launcher = get(name, ["node0", "node1"], ssh)
            with tempfile.TemporaryDirectory() as tmp:
                runs = [once(launcher, nodes, Path(tmp)) for _ in range(args.repeat)]
            ready, down = [r for r, _ in runs], [d for _, d in runs]
            print(
                f"{name + f' ({nodes} node' + ('s)' if nodes > 1 else ')'):<18} "
                f"{statistics.median(ready):.2f} ({min(ready):.2f}-{max(ready):.2f}){'':<14} "
                f"{statistics.median(down):.2f} ({min(down):.2f}-{max(down):.2f})"
            )
    finally:
        subprocess.run(["scancel", job])


if __name__ == "__main__":
    main()
