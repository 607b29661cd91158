"""Which GPUs this run may use, resolved once and named by its source: `--ablate-gpus 0,1,2,3` (or `none`), the
ini key `ablate_gpus`, `CUDA_VISIBLE_DEVICES`, NVML (nvidia-ml-py, the `gpu` extra), else none.

With no inventory (`none`, or nothing found) rows are neither checked against it nor given GPUs: a CPU engine, or
a stand-in, runs as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import gpu

if TYPE_CHECKING:
    from ..matrix.rows import Row
    from .launchers import Launcher


@dataclass(frozen=True)
class Inventory:
    ids: tuple[str, ...] | None  # the GPU ids servers may be given (CUDA_VISIBLE_DEVICES values); None: no GPUs
    source: str

    def describe(self) -> str:
        if self.ids is None:
            return f"no GPUs ({self.source}): rows are not checked against a GPU count"
        return f"{len(self.ids)} GPUs {','.join(self.ids)} ({self.source})"


NOT_RESOLVED = Inventory(None, "not resolved")


def unfit(row: Row, launcher: Launcher, gpus: Inventory) -> str | None:
    """Why the row cannot run here (more nodes than the launcher has, more GPUs per node than the run has), or
    None. Checked before any launch; the plan shows the same."""
    nodes = launcher.capacity()
    have = None if gpus.ids is None else len(gpus.ids)
    if (nodes is not None and row.nodes > nodes) or (have is not None and row.gpus > have):
        needs = f"{row.gpus * row.nodes} GPUs on {row.nodes} node{'s' if row.nodes > 1 else ''}"
        if have is None:
            return f"needs {row.nodes} nodes; launcher {launcher.name} has {nodes} here"
        where = f"{nodes} node{'s' if nodes != 1 else ''}" if nodes is not None else "each node"
        return f"needs {needs}; this run has {have} on {where} ({launcher.name}, GPUs from {gpus.source})"
    return None


def _parse(text: str, where: str) -> Inventory:
    text = text.strip()
    if text.lower() == "none":
        return Inventory(None, f"{where}: none")
    ids = tuple(part.strip() for part in text.split(",") if part.strip())
    if not ids or len(set(ids)) != len(ids):
        raise ValueError(f"{where}: expected GPU ids such as 0,1,2,3 (each once) or none, got {text!r}")
    return Inventory(ids, where)


def missing_here(inventory: Inventory) -> str | None:
    """Why the run's GPU indices cannot be right for servers started on this machine (one NVML does not know:
    CUDA would drop it from CUDA_VISIBLE_DEVICES, and the server would fail or land on another GPU), or None.
    Only where NVML answers, and only for indices: other ids are left to CUDA (the header names those NVML does
    not know). For servers on other hosts (Slurm, SSH) the ids name those hosts' GPUs: not checked here."""
    missing = [i for i in gpu.unknown(inventory.ids or ()) if i.isdigit()]
    if not missing:
        return None
    have = gpu.count()
    return (
        f"{inventory.source}: GPU {', '.join(missing)} is not on this machine: NVML sees {have} "
        f"GPU{'s' if have != 1 else ''} ({','.join(map(str, range(have)))}); expected ids from that list, or none"
    )


def resolve(cli: str | None, ini: str | None, env: Mapping[str, str]) -> Inventory:
    """The run's GPUs, from the first source that says; raises ValueError naming the source of a bad value."""
    if cli:
        return _parse(cli, "--ablate-gpus")
    if ini:
        return _parse(ini, "ini ablate_gpus")
    if env.get("CUDA_VISIBLE_DEVICES", "").strip():
        return _parse(env["CUDA_VISIBLE_DEVICES"], "CUDA_VISIBLE_DEVICES")
    if count := gpu.count():
        return Inventory(tuple(str(i) for i in range(count)), "NVML")
    return Inventory(None, "none found: no --ablate-gpus, CUDA_VISIBLE_DEVICES or NVML")
