"""GPUs and port blocks shared by the pytest-xdist workers of one run, through lock files in a run directory.

Each GPU id and each port block is a file; holding it is holding an `fcntl.flock` on it, which the kernel drops
when its holder dies, so a killed worker frees its GPUs and ports with no clean-up of ours. A worker that wants
GPUs first takes the run's queue lock and keeps it until it has all the GPUs it wants: a row waiting for 4 GPUs is
not overtaken by a stream of 1-GPU rows, each of which would otherwise grab a GPU it frees.

Port blocks: a server gets a block of 256 ports (its HTTP port at the block's start + 16; SGLang opens its
DP-attention ports at +233 and up, and a multi-node rendezvous uses the port + 1 to + 14), so two servers never
share a port even while one of them is still starting. Their lock files are machine-wide (one folder per user
under the temp dir), not per run: two runs on one machine (two CI jobs on one runner) keep apart too. Blocks
stay clear of the kernel's ephemeral ports where the range allows (ports.ephemeral).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import ports
from .poll import poll_until

BLOCK = ports.SPAN
MIN_BLOCKS = 16  # fewer blocks clear of the ephemeral ports than this, and blocks come from the whole range


def port_directory() -> Path:
    """Where this user's servers on this machine lock their port blocks, whichever run they belong to."""
    return Path(tempfile.gettempdir()) / f"pytest-sglang-ablate-{os.getuid()}" / "ports"


def _try_lock(path: Path) -> IO[bytes] | None:
    handle = open(path, "ab")  # noqa: SIM115 (held open for the lock's lifetime)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@dataclass
class Lease:
    """GPUs (and port blocks) held by this process until `release`, or until it dies."""

    gpus: tuple[str, ...] = ()
    handles: list[IO[bytes]] = field(default_factory=list)
    waited_s: float = 0.0

    def release(self) -> None:
        for handle in self.handles:
            handle.close()  # closing the file drops its flock
        self.handles.clear()


class Leases:
    def __init__(
        self,
        directory: Path,
        gpu_ids: tuple[str, ...] | None,
        exclusive: bool = False,
        port_dir: Path | None = None,
    ) -> None:
        self.dir, self.gpu_ids, self.exclusive = directory, gpu_ids, exclusive
        self.port_dir = port_dir or port_directory()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port_dir.mkdir(parents=True, exist_ok=True)

    def gpus(self, count: int, timeout_s: float) -> Lease:
        """`count` GPUs of the inventory, waiting for them in turn (with `exclusive`, also for every other row)."""
        began = time.monotonic()
        lease = Lease()
        if self.exclusive:  # one row at a time: the next waits until this one's lease is released
            whole = open(self.dir / "exclusive.lock", "ab")  # noqa: SIM115
            fcntl.flock(whole, fcntl.LOCK_EX)
            lease.handles.append(whole)
        if self.gpu_ids is None:
            lease.waited_s = time.monotonic() - began
            return lease
        want = count
        queue = open(self.dir / "queue.lock", "ab")  # noqa: SIM115
        fcntl.flock(queue, fcntl.LOCK_EX)  # first in the queue: nobody takes a GPU until this row has its own
        try:

            def enough() -> bool:
                for gpu in self.gpu_ids or ():
                    if len(lease.gpus) == want:
                        break
                    if gpu in lease.gpus:
                        continue
                    handle = _try_lock(self.dir / f"gpu-{gpu}.lock")
                    if handle is not None:
                        lease.handles.append(handle)
                        lease.gpus = (*lease.gpus, gpu)
                return len(lease.gpus) == want

            if not poll_until(enough, timeout_s, interval_s=0.05):
                lease.release()
                raise TimeoutError(f"{want} GPUs of {','.join(self.gpu_ids)} were not free within {timeout_s:.0f} s")
        finally:
            queue.close()
        lease.waited_s = time.monotonic() - began
        return lease

    def port_block(self, lease: Lease, free: Callable[[int], bool] | None, port_range: tuple[int, int]) -> int:
        """A port block no other server on this machine holds (of this user), its HTTP port in `port_range` and
        the whole block clear of the kernel's ephemeral ports where the range allows, added to `lease`; returns
        that port."""
        blocks = list(range(port_range[0] // BLOCK + 1, (port_range[1] - 16) // BLOCK))
        parts = ports.outside_ephemeral(port_range, BLOCK - 16)  # from the HTTP port to the block's end
        clear = [b for b in blocks if any(low <= b * BLOCK + 16 < high for low, high in parts)]
        blocks = clear if len(clear) >= MIN_BLOCKS else blocks
        random.shuffle(blocks)
        for block in blocks:
            port = block * BLOCK + 16
            if free is not None and not free(port):
                continue
            handle = _try_lock(self.port_dir / f"ports-{block}.lock")
            if handle is not None:
                lease.handles.append(handle)
                return port
        raise OSError(f"no free port block left in {port_range}")


def run_directory(out: Path, run_id: str) -> Path:
    """Where the workers of one run (one xdist testrunuid) keep their locks."""
    return out / ".leases" / run_id


class Activity:
    """When each row's server ran, kept in the run directory by every worker (one JSON line per start and end),
    so that a case can say which other rows ran beside it and for how long."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "activity.jsonl"
        directory.mkdir(parents=True, exist_ok=True)

    def _write(self, event: dict[str, object]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:  # one short write per line: appends do not interleave
            f.write(json.dumps(event) + "\n")

    def began(self, row: str, gpus: tuple[str, ...], port: int) -> None:
        self._write({"row": row, "pid": os.getpid(), "began": time.time(), "gpus": list(gpus), "port": port})

    def ended(self, row: str) -> None:
        self._write({"row": row, "pid": os.getpid(), "ended": time.time()})

    def spans(self) -> dict[str, tuple[float, float | None]]:
        """Each row's (start, end or None while it runs)."""
        out: dict[str, tuple[float, float | None]] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            event = json.loads(line)
            if "began" in event:
                out[event["row"]] = (float(event["began"]), None)
            elif event["row"] in out:
                out[event["row"]] = (out[event["row"]][0], float(event["ended"]))
        return out

    def overlaps(self, row: str, start: float, end: float) -> dict[str, float]:
        """The other rows that ran during [start, end], with the seconds they shared with it."""
        shared = {}
        for other, (began, ended) in self.spans().items():
            seconds = min(end, ended if ended is not None else end) - max(start, began)
            if other != row and seconds > 0:
                shared[other] = round(seconds, 2)
        return shared
