"""`ssh`: one rank per host, each started with plain `ssh` (the user's own config and keys, never a prompt).

On each host the rank runs under our supervisor, in the same working directory path as pytest and with the
same Python (`sys.executable`): the usual shared-filesystem layout of a small GPU fleet. Locally, each ssh client
runs under a supervisor too, so that pytest dying in any way kills the client; the remote sshd session then ends,
and the remote supervisor's parent-death signal stops the rank's tree there. The row's env travels on the ssh
connection's stdin, never on a command line. Teardown asks each host which recorded pids are still alive.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Any

from ..poll import poll_until
from . import Launcher, Rank, RankPlan, supervised

BASE_OPTIONS = ["-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-T"]
SSH_TIMEOUT_S = 30


class Ssh(Launcher):
    name = "ssh"

    def __init__(self, hosts: list[str], options: list[str]) -> None:
        self.hosts, self.options = list(hosts), list(options)
        self._addresses: dict[str, str] = {}

    def capacity(self) -> int | None:
        return len(self.hosts)

    def ssh(self, host: str, command: str) -> list[str]:
        return ["ssh", *BASE_OPTIONS, *self.options, host, command]

    def run(self, host: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.ssh(host, command), capture_output=True, text=True, timeout=SSH_TIMEOUT_S, stdin=subprocess.DEVNULL
        )

    def address(self, host: str) -> str:
        """What `host` resolves to under the user's ssh config (an alias need not resolve on the other hosts)."""
        if host not in self._addresses:
            done = subprocess.run(
                ["ssh", "-G", *self.options, host], capture_output=True, text=True, timeout=SSH_TIMEOUT_S
            )
            found = [ln.split(None, 1)[1] for ln in done.stdout.splitlines() if ln.startswith("hostname ")]
            self._addresses[host] = found[0].strip() if found else host
        return self._addresses[host]

    def addresses(self, nodes: int) -> list[str]:
        return [self.address(h) for h in self.hosts[:nodes]]

    def start(self, plans: list[RankPlan], env: dict[str, str], grace: float, name: str) -> list[Rank]:
        ranks = []
        cwd = os.getcwd()
        for plan in plans:
            plan.status_path.unlink(missing_ok=True)
            remote = supervised(plan.status_path.resolve(), grace, plan.argv, plan.cpus, ("--env-stdin",))
            command = f"cd {shlex.quote(cwd)} && exec {shlex.join(remote)}"
            local_status = plan.status_path.with_name(plan.status_path.name.replace(".status.", ".ssh.status."))
            local_status.unlink(missing_ok=True)
            with open(plan.log_path, "wb") as log:
                process = subprocess.Popen(
                    supervised(local_status, grace + 20, self.ssh(self.hosts[plan.rank], command)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.PIPE,
                    start_new_session=True,
                )
            assert process.stdin is not None
            process.stdin.write((json.dumps(env) + "\n").encode())
            process.stdin.close()
            ranks.append(Rank(plan.rank, plan.address, plan.log_path, plan.status_path, process))
        return ranks

    def status(self, rank: Rank) -> dict[str, Any]:
        try:
            done = self.run(self.hosts[rank.rank], f"cat {shlex.quote(str(rank.status_path.resolve()))}")
            found: dict[str, Any] = json.loads(done.stdout) if done.returncode == 0 else {}
            return found
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return {}

    def stop(self, ranks: list[Rank], grace: float) -> list[str]:
        """Ask each rank's remote supervisor to stop (rank 0 first), wait for it, then ask each host what is left."""
        began = time.monotonic()
        for rank in ranks:
            pid = self.status(rank).get("supervisor_pid")
            if pid and rank.process.poll() is None:
                self.run(self.hosts[rank.rank], f"kill -TERM {int(pid)}")
        for rank in ranks:
            left_s = grace + 15 - (time.monotonic() - began)
            if not poll_until(lambda: rank.process.poll() is not None, left_s):  # noqa: B023 (called at once)
                rank.process.send_signal(signal.SIGTERM)  # closes the connection: the remote supervisor stops too
                try:
                    rank.process.wait(timeout=grace + 25)
                except subprocess.TimeoutExpired:
                    rank.process.kill()
                    rank.process.wait()
        problems = []
        for rank in ranks:
            host, path = self.hosts[rank.rank], shlex.quote(str(rank.status_path.resolve()))
            check = f"{shlex.quote(sys.executable)} -m pytest_sglang_ablate.server.supervisor --check {path}"
            ended = poll_until(lambda: "stopped_by" in self.status(rank), grace + 15, interval_s=0.5)  # noqa: B023
            try:
                left = json.loads(self.run(host, check).stdout or "[]")
            except (ValueError, OSError, subprocess.TimeoutExpired) as e:
                problems.append(f"rank {rank.rank} on {host}: cannot check what is left ({e})")
                continue
            if left:
                problems.append(f"rank {rank.rank} on {host}: processes still alive: {left}")
            elif not ended:
                problems.append(f"rank {rank.rank} on {host}: its supervisor wrote no final status")
        return problems
