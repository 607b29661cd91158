"""Wait until the GPU driver has let go of a stopped server's memory.

Killing a server only queues the driver-side teardown; the next launch can OOM until the pids leave NVML's
compute-process list (sglang PR #39545). NVML gives host pids: in a container with its own pid namespace no pid
of the server is ever in that list, so there the wait is on each of the server's GPUs' used memory instead,
back to what it was before the launch. Without NVML (no GPU, or nvidia-ml-py not installed) there is nothing to
wait for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .poll import poll_until


def _nvml() -> Any | None:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    return pynvml


def count() -> int:
    """How many GPUs NVML sees; 0 without NVML."""
    nvml = _nvml()
    return 0 if nvml is None else int(nvml.nvmlDeviceGetCount())


def holders(pids: set[int]) -> dict[int, int]:
    """Which of `pids` hold GPU memory now: pid -> bytes (NVML's per-process used memory, 0 if unknown)."""
    nvml = _nvml()
    if nvml is None or not pids:
        return {}
    found: dict[int, int] = {}
    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid in pids:
                found[proc.pid] = found.get(proc.pid, 0) + (proc.usedGpuMemory or 0)
    return found


def _handles(nvml: Any, ids: Iterable[str]) -> dict[str, Any]:
    """NVML's handle of each GPU id it knows: an index (PCI bus order, which the leases make CUDA use too) or a
    UUID. Ids it cannot resolve (a UUID prefix, an old-style MIG name) are left out, and the checks with them."""
    out: dict[str, Any] = {}
    for gpu_id in ids:
        try:
            by_index = gpu_id.isdigit()
            out[gpu_id] = (
                nvml.nvmlDeviceGetHandleByIndex(int(gpu_id)) if by_index else nvml.nvmlDeviceGetHandleByUUID(gpu_id)
            )
        except nvml.NVMLError:
            continue
    return out


def unknown(ids: Iterable[str]) -> list[str]:
    """The ids NVML cannot resolve (see _handles); empty without NVML, where nothing is checked anyway."""
    nvml = _nvml()
    if nvml is None:
        return []
    ids = list(ids)
    known = _handles(nvml, ids)
    return [i for i in ids if i not in known]


def used(ids: Iterable[str]) -> dict[str, int]:
    """Each GPU's used memory in bytes, by id (see _handles); empty without NVML."""
    nvml = _nvml()
    if nvml is None:
        return {}
    return {i: int(nvml.nvmlDeviceGetMemoryInfo(h).used) for i, h in _handles(nvml, ids).items()}


def pids_hidden(pids: set[int], ids: Iterable[str]) -> bool:
    """Whether NVML lists processes on these GPUs but none of `pids`: the server's pids are in another pid
    namespace than NVML's (a container), so only the GPUs' memory can tell when it has let go."""
    nvml = _nvml()
    if nvml is None:
        return False
    listed = {p.pid for h in _handles(nvml, ids).values() for p in nvml.nvmlDeviceGetComputeRunningProcesses(h)}
    return bool(listed) and not listed & pids


SLACK = 256 * 2**20  # what a GPU may use above its pre-launch figure once released: less than a CUDA context


def wait_released(pids: set[int], timeout_s: float, baseline: Mapping[str, int] | None = None) -> list[str]:
    """Poll until none of `pids` holds GPU memory and each GPU of `baseline` (id -> bytes used before the launch;
    given where pids_hidden) is back within SLACK of it; returns what is still held at the deadline (empty =
    released)."""
    held: list[str] = []
    before = baseline or {}

    def released() -> bool:
        nonlocal held
        over = {i: b for i, b in used(before).items() if b > before[i] + SLACK}
        held = [f"pid {pid} ({b / 2**30:.1f} GiB)" for pid, b in sorted(holders(pids).items())]
        held += [
            f"GPU {i} uses {b / 2**30:.1f} GiB ({before[i] / 2**30:.1f} GiB before the launch; the server's pids "
            "are in another pid namespace than NVML's)"
            for i, b in sorted(over.items())
        ]
        return not held

    poll_until(released, timeout_s)
    return held


def describe() -> list[dict[str, Any]]:
    """Each GPU's name, memory and driver, for the record; empty without NVML."""
    nvml = _nvml()
    if nvml is None:
        return []
    driver = nvml.nvmlSystemGetDriverVersion()
    out = []
    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        name = nvml.nvmlDeviceGetName(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle).total
        out.append(
            {
                "index": i,
                "name": name if isinstance(name, str) else name.decode(),
                "memory_gib": round(memory / 2**30, 1),
                "driver": driver if isinstance(driver, str) else driver.decode(),
            }
        )
    return out
