"""`slurm`: inside an allocation (`salloc -N 2 ... pytest ...`, or an sbatch script that calls pytest), each
multi-node row is one `srun` step with one task per node. Each task runs the rank under our supervisor, which
reads its rank from SLURM_PROCID; logs and statuses go to the (shared) results folder, `ROW.rankN.log`.

The local `srun` runs under a supervisor too: if pytest dies, srun gets SIGTERM and Slurm kills the step.
Teardown signals the step with `scancel --signal=TERM` (each rank's supervisor stops its tree within the grace
period), then cancels it outright if it is still there, and checks with `squeue --steps` that it is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from typing import Any

from ...errors import UsageProblem
from ..poll import poll_until
from ..supervisor import RANK, alive
from . import Launcher, Rank, RankPlan, read_status, supervised

TIMEOUT_S = 30


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=True).stdout


class Slurm(Launcher):
    name = "slurm"

    def __init__(self, job: str, nodes: int, nodelist: str) -> None:
        self.job, self.nodes, self.nodelist = job, nodes, nodelist
        self._addresses: list[str] | None = None
        self.steps: dict[int, str] = {}  # id(process) -> the step's name

    @classmethod
    def from_environment(cls) -> Slurm:
        job = os.environ.get("SLURM_JOB_ID")
        if not job:
            raise UsageProblem(
                "launcher slurm runs inside a Slurm allocation, and SLURM_JOB_ID is not set: run pytest under "
                "`salloc -N 2 pytest ...` or from an sbatch script (docs/multinode.md)"
            )
        nodes = int(os.environ.get("SLURM_JOB_NUM_NODES") or os.environ.get("SLURM_NNODES") or 1)
        return cls(job, nodes, os.environ.get("SLURM_JOB_NODELIST", ""))

    def capacity(self) -> int | None:
        return self.nodes

    def addresses(self, nodes: int) -> list[str]:
        """Each node's NodeAddr (node names need not resolve; NodeAddr is what slurmd itself listens on)."""
        if self._addresses is None:
            names = _run(["scontrol", "show", "hostnames", self.nodelist]).split()
            found = []
            for name in names:
                fields = dict(f.split("=", 1) for f in _run(["scontrol", "show", "node", name]).split() if "=" in f)
                found.append(fields.get("NodeAddr", name))
            self._addresses = found
        return self._addresses[:nodes]

    def start(self, plans: list[RankPlan], env: dict[str, str], grace: float, name: str) -> list[Rank]:
        """One srun step for all ranks: the argv of rank 0 with @RANK@/@HOST@ filled in by each task."""
        step = f"ablate-{name}-{uuid.uuid4().hex[:8]}"
        first = plans[0]
        status = str(first.status_path).replace(".rank0.", f".rank{RANK}.")
        log = str(first.log_path).replace(".rank0.", ".rank%t.")
        for plan in plans:
            plan.status_path.unlink(missing_ok=True)
        srun = [
            "srun",
            f"--jobid={self.job}",
            f"--nodes={len(plans)}",
            f"--ntasks={len(plans)}",
            "--ntasks-per-node=1",
            "--kill-on-bad-exit=1",
            f"--job-name={step}",
            f"--output={log}",
            *supervised(
                status,
                grace,
                first.template,
                first.cpus,
                ("--rank-env", "SLURM_PROCID", "--hosts", ",".join(p.bind for p in plans)),
            ),
        ]
        srun_status = first.status_path.with_name(first.status_path.name.replace(".rank0.", ".srun."))
        srun_log = first.log_path.with_name(first.log_path.name.replace(".rank0.", ".srun."))
        srun_status.unlink(missing_ok=True)
        with open(srun_log, "wb") as out:
            process = subprocess.Popen(
                supervised(srun_status, grace + 20, srun),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env},
                start_new_session=True,
            )
        self.steps[id(process)] = step
        return [Rank(p.rank, p.address, p.log_path, p.status_path, process) for p in plans]

    def status(self, rank: Rank) -> dict[str, Any]:
        return read_status(rank.status_path)

    def exited(self, rank: Rank) -> bool:
        return rank.process.poll() is not None or "stopped_by" in self.status(rank)

    def step_id(self, step: str) -> str | None:
        """The running step's id (JOB.STEP) by its name, or None once it is gone."""
        try:
            lines = _run(["squeue", "-h", "--steps", "-j", self.job, "-o", "%i %j"]).splitlines()
        except (OSError, subprocess.SubprocessError):
            return None
        return next((ln.split()[0] for ln in lines if ln.split()[1:] == [step]), None)

    def stop(self, ranks: list[Rank], grace: float) -> list[str]:
        process = ranks[0].process
        step = self.steps.get(id(process), "")
        found = self.step_id(step)
        if found:
            subprocess.run(["scancel", "--signal=TERM", found], capture_output=True, timeout=TIMEOUT_S)
        if not poll_until(lambda: process.poll() is not None, grace + 15):
            found = self.step_id(step)
            if found:
                subprocess.run(["scancel", found], capture_output=True, timeout=TIMEOUT_S)
            poll_until(lambda: process.poll() is not None, 15)
        if process.poll() is None:  # srun's supervisor: SIGTERM makes srun cancel the step
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        problems = []
        if poll_until(lambda: self.step_id(step) is None, 10) is False:
            problems.append(f"Slurm step {self.step_id(step)} ({step}) is still running")
        here = os.uname().nodename
        for rank in ranks:  # ranks that ran on this host can be checked directly
            status = self.status(rank)
            if status.get("hostname") == here and alive(status):
                problems.append(f"rank {rank.rank}: processes still alive: {alive(status)}")
        return problems
