"""`local`: the server runs here, one process tree under our supervisor (one node)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

from ..poll import poll_until
from ..supervisor import alive
from . import Launcher, Rank, RankPlan, read_status, supervised


class Local(Launcher):
    name = "local"
    runs_here = True

    def capacity(self) -> int | None:
        return 1

    def addresses(self, nodes: int) -> list[str]:
        return ["127.0.0.1"] * nodes

    def start(self, plans: list[RankPlan], env: dict[str, str], grace: float, name: str) -> list[Rank]:
        ranks = []
        for plan in plans:
            plan.status_path.unlink(missing_ok=True)
            with open(plan.log_path, "wb") as log:
                # own session: Ctrl-C in the terminal reaches pytest, which then stops the server in order.
                # The supervisor's parent-death signal is tied to this (the main) thread.
                process = subprocess.Popen(
                    supervised(plan.status_path, grace, plan.argv, cpus=plan.cpus),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **env},
                    start_new_session=True,
                )
            ranks.append(Rank(plan.rank, plan.address, plan.log_path, plan.status_path, process))
        return ranks

    def status(self, rank: Rank) -> dict[str, Any]:
        return read_status(rank.status_path)

    def stop(self, ranks: list[Rank], grace: float) -> list[str]:
        """SIGTERM each supervisor (it stops its tree: SIGTERM, `grace`, SIGKILL) and wait for it; then kill
        whatever its status recorded that still runs (a stuck supervisor's tree) and check that it is gone."""
        for rank in ranks:
            if rank.process.poll() is None:
                rank.process.send_signal(signal.SIGTERM)
        for rank in ranks:
            try:
                rank.process.wait(timeout=grace + 15)
            except subprocess.TimeoutExpired:  # the supervisor itself is stuck: do its job from here
                rank.process.kill()
                rank.process.wait()
        statuses = [self.status(rank) for rank in ranks]
        for pid in (pid for status in statuses for pid in alive(status)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        poll_until(lambda: not any(alive(status) for status in statuses), 10)
        left = sorted(pid for status in statuses for pid in alive(status))
        return [f"processes still alive: {left}"] if left else []
