"""A small parent process between pytest and the server, so that nothing the server starts outlives pytest.

    python -m pytest_sglang_ablate.server.supervisor --status FILE --grace S -- <server argv>

For a rank of a multi-node server started by Slurm (one task per node), `--rank-env SLURM_NODEID --hosts A0,A1`
takes the rank from that variable and puts it and that rank's address in place of @RANK@ and @HOST@ in the
status path and the server argv. `--check FILE` prints (as JSON) which pids recorded in a status file are still
alive on this host, for teardown checks over ssh.

It makes itself the child subreaper (every orphan of the server tree is re-parented to it), starts the server
in a session of its own, and stops the whole tree (SIGTERM to the server's process group, `grace` seconds,
then SIGKILL to every descendant) when any of these happens: pytest asks (SIGTERM), pytest dies (the kernel's
parent-death signal, even after SIGKILL), or the server exits on its own. Then it reaps every descendant and
writes the outcome to FILE as JSON. Linux only; stdlib plus psutil.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from .poll import poll_until

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.02


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _die_with_parent() -> None:
    """preexec for the server: if the supervisor itself is SIGKILLed, the server's main process goes too."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


RANK, HOST = "@RANK@", "@HOST@"  # placeholders for a Slurm task's rank and address


def _write(path: Path, status: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**status, "hostname": socket.gethostname()}))
    tmp.replace(path)  # readers never see half a file


def recorded(status: dict[str, Any]) -> dict[int, float]:
    """Every pid a status file recorded (the server's and its descendants'), with its create time (0: unknown)."""
    pids = {int(pid): float(created) for pid, created in status.get("pids", {}).items()}
    pids.setdefault(int(status.get("server_pid", -1)), 0.0)
    return {pid: created for pid, created in pids.items() if pid > 0}


def alive(status: dict[str, Any]) -> list[int]:
    """The pids a status file recorded that still run on this host (a reused pid, told by its create time, and
    a zombie do not count)."""
    out = []
    for pid, created in recorded(status).items():
        try:
            proc = psutil.Process(pid)
            if (created and abs(proc.create_time() - created) > 0.01) or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            out.append(pid)
        except psutil.Error:
            continue
    return sorted(out)


def for_rank(status: str, argv: list[str], rank_env: str, hosts: list[str]) -> tuple[str, list[str]]:
    """The status path and argv of this Slurm task: @RANK@ and @HOST@ replaced by its rank and address."""
    rank = int(os.environ[rank_env])
    host = hosts[rank] if rank < len(hosts) else socket.gethostname()

    def put(text: str) -> str:
        return text.replace(RANK, str(rank)).replace(HOST, host)

    return put(status), [put(a) for a in argv]


class Supervisor:
    def __init__(self, argv: list[str], status: Path, grace: float, cpus: set[int] | None = None) -> None:
        self.argv, self.status_path, self.grace, self.cpus = argv, status, grace, cpus
        self.stop_reason: str | None = None
        self.server_status: int | None = None  # the raw wait status of the server's main process
        self.seen: dict[int, float] = {}  # every descendant pid seen -> its create time
        self.parent = os.getppid()
        self.exited_at: float | None = None  # when the server's main process exited (time.time())

    def request_stop(self, signum: int, _frame: Any) -> None:
        self.stop_reason = self.stop_reason or ("parent_died" if os.getppid() != self.parent else f"signal {signum}")

    def descendants(self) -> list[psutil.Process]:
        try:
            kids = psutil.Process().children(recursive=True)
        except psutil.Error:
            return []
        for p in kids:
            try:
                self.seen.setdefault(p.pid, p.create_time())
            except psutil.Error:
                pass
        return kids

    def reap(self) -> None:
        """Collect every exited child (orphans included); keep the server's own wait status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.server_pid:
                self.server_status = status
                self.exited_at = time.time()  # which rank of several died first

    def run(self) -> int:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.request_stop)
        if os.getppid() != self.parent or self.parent == 1:
            return 3  # pytest was gone before the death signal was armed
        cpus = self.cpus

        def prepare() -> None:
            _die_with_parent()
            if cpus:  # the server and everything it starts run on these CPUs (children inherit the affinity)
                os.sched_setaffinity(0, cpus)

        server = subprocess.Popen(self.argv, start_new_session=True, preexec_fn=prepare)
        self.server_pid = server.pid
        _write(self.status_path, {"server_pid": server.pid, "supervisor_pid": os.getpid()})
        known = 0

        def stopping() -> bool:
            nonlocal known
            self.reap()
            self.descendants()
            if len(self.seen) != known:  # keep the pid list current: pytest reads it for NVML and as a fallback
                known = len(self.seen)
                pids = {str(k): v for k, v in self.seen.items()}
                _write(self.status_path, {"server_pid": server.pid, "supervisor_pid": os.getpid(), "pids": pids})
            if os.getppid() != self.parent:
                self.stop_reason = "parent_died"
            return self.stop_reason is not None or self.server_status is not None

        poll_until(stopping, math.inf, POLL_S)  # until pytest asks, pytest dies or the server exits
        if self.stop_reason is None:
            self.stop_reason = "server_exited"
        leftover = self.stop_tree()
        code = self.server_status
        returncode = None if code is None else (os.waitstatus_to_exitcode(code))
        _write(
            self.status_path,
            {
                "server_pid": self.server_pid,
                "supervisor_pid": os.getpid(),
                "returncode": returncode,
                "stopped_by": self.stop_reason,
                "exited_at": self.exited_at,
                "pids": {str(k): v for k, v in self.seen.items()},
                "leftover": leftover,
            },
        )
        return 0

    def stop_tree(self) -> list[int]:
        """SIGTERM the server's group, wait `grace`, SIGKILL every descendant; the pids still alive after."""
        try:
            os.killpg(self.server_pid, signal.SIGTERM)  # the server's own group, even if its leader is gone
        except (ProcessLookupError, PermissionError):
            pass
        if poll_until(self.tree_gone, self.grace, POLL_S):
            return []
        for p in self.descendants():
            try:
                p.kill()
            except psutil.Error:
                pass
        try:
            os.killpg(self.server_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if poll_until(self.tree_gone, 10, POLL_S):
            return []
        return [p.pid for p in self.descendants()]

    def tree_gone(self) -> bool:
        self.reap()
        return not self.descendants()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_sglang_ablate.server.supervisor")
    parser.add_argument("--status")
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--rank-env", help="the variable holding this task's rank (Slurm: SLURM_NODEID)")
    parser.add_argument("--hosts", default="", help="the ranks' addresses, comma-separated, rank 0 first")
    parser.add_argument("--check", help="print the pids recorded in this status file that are still alive")
    parser.add_argument("--env-stdin", action="store_true", help="read the server's env as one JSON line on stdin")
    parser.add_argument("--cpus", default="", help="pin the server's process tree to these CPUs (0,1)")
    parser.add_argument("server", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.check:
        try:
            print(json.dumps(alive(json.loads(Path(args.check).read_text()))))
        except (OSError, ValueError):
            print("[]")  # no status: the rank never started here
        return 0
    server = args.server[1:] if args.server[:1] == ["--"] else args.server
    if not server or not args.status:
        parser.error("--status FILE and a server command after -- are needed")
    if args.env_stdin:  # over ssh: the row's env (secrets too) never appears on a command line
        os.environ.update({str(k): str(v) for k, v in json.loads(sys.stdin.readline() or "{}").items()})
    status = args.status
    if args.rank_env:
        status, server = for_rank(status, server, args.rank_env, [h for h in args.hosts.split(",") if h])
    cpus = {int(c) for c in args.cpus.split(",") if c}
    return Supervisor(server, Path(status), args.grace, cpus or None).run()


if __name__ == "__main__":
    sys.exit(main())
