"""How a row's server is started: one process here (`local`), one task per node through Slurm's `srun` (`slurm`),
or one process per host over `ssh` (`ssh`). Every launcher has the same small interface, `Launcher`: how many
nodes it can give, their addresses, start the ranks, and stop them proving that nothing is left. Each rank runs
under `server/supervisor.py` wherever it runs, so the server's whole process tree goes when pytest goes.

In: the ranks' argv (engine flags already added by `server/launch.py`), env, log and status paths.
Out: `Rank`s (the local process holding each rank) and, from `stop`, what was left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import UsageProblem

NAMES = ("local", "slurm", "ssh")


@dataclass
class RankPlan:
    """What one rank runs, and where its log and supervisor status go."""

    rank: int
    address: str  # the address of the node it runs on
    bind: str  # the address its server listens on (rank 0: the matrix's server.host)
    argv: list[str]  # the server command of this rank
    template: list[str]  # the same for every rank, with @RANK@ and @HOST@ for the rank and its `bind`
    log_path: Path
    status_path: Path
    cpus: tuple[int, ...] = ()  # pin the rank's process tree to these CPUs (empty: no pinning)


@dataclass
class Rank:
    rank: int
    address: str
    log_path: Path
    status_path: Path  # the rank's supervisor status (on the rank's host; shared or read over ssh)
    process: subprocess.Popen[bytes]  # the local process that holds the rank (supervisor, ssh or srun)


def supervised(
    status: Path | str,
    grace: float,
    argv: list[str],
    cpus: tuple[int, ...] = (),
    options: tuple[str, ...] = (),
) -> list[str]:
    """argv run under our supervisor, which kills the whole tree when its parent goes (and pins it to `cpus`);
    `options` are more of the supervisor's own (e.g. --env-stdin)."""
    module = "pytest_sglang_ablate.server.supervisor"
    pin = ("--cpus", ",".join(map(str, cpus))) if cpus else ()
    return [sys.executable, "-m", module, "--status", str(status), "--grace", str(grace), *pin, *options, "--", *argv]


def read_status(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


class Launcher(ABC):
    name: str
    runs_here = False  # whether the ranks run on this host (then the port and the GPU memory are checked here)

    @abstractmethod
    def capacity(self) -> int | None:
        """How many nodes this launcher can give a row (None: as many as asked)."""

    @abstractmethod
    def addresses(self, nodes: int) -> list[str]:
        """The addresses of the first `nodes` nodes, the head (rank 0) first."""

    @abstractmethod
    def start(self, plans: list[RankPlan], env: dict[str, str], grace: float, name: str) -> list[Rank]:
        """Start every rank; `env` is the row's own environment (set for every rank on every node)."""

    @abstractmethod
    def status(self, rank: Rank) -> dict[str, Any]:
        """The rank's supervisor status (server pid, pids, and once it ended: returncode, stopped_by)."""

    def exited(self, rank: Rank) -> bool:
        return rank.process.poll() is not None

    @abstractmethod
    def stop(self, ranks: list[Rank], grace: float) -> list[str]:
        """Stop every rank (rank 0 first), then check that nothing of them is left; returns what was."""

    def describe(self, nodes: int) -> str:
        return self.name if nodes == 1 else f"{self.name}, {nodes} nodes"


def get(name: str, hosts: list[str], ssh_options: list[str]) -> Launcher:
    """The launcher called `name`; raises UsageProblem when it cannot work here (e.g. slurm outside an allocation)."""
    if name == "local":
        from .local import Local

        return Local()
    if name == "slurm":
        from .slurm import Slurm

        return Slurm.from_environment()
    if name == "ssh":
        from .ssh import Ssh

        if not hosts:
            raise UsageProblem("launcher ssh needs hosts: `hosts: [h0, h1]` in the matrix, or --ablate-hosts h0,h1")
        return Ssh(hosts, ssh_options)
    raise UsageProblem(f"unknown launcher '{name}'; expected one of: {', '.join(NAMES)}")
