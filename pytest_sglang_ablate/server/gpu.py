"""Wait until the GPU driver has let go of a stopped server's memory (NVML's compute-process list).

Killing a server only queues the driver-side teardown; the next launch can OOM until the pids leave NVML's
list (sglang PR #39545). Without NVML (no GPU, or nvidia-ml-py not installed) there is nothing to wait for.
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


def used(ids: Iterable[str]) -> dict[str, int]:
    """Each GPU's used memory in bytes, by its CUDA_VISIBLE_DEVICES id (an index or a UUID); empty without NVML.
    The GPU-wide figure does not depend on pids, which NVML gives in the host's pid namespace: in a container
    with its own, no pid of ours is ever in its list."""
    nvml = _nvml()
    if nvml is None:
        return {}
    out: dict[str, int] = {}
    for gpu_id in ids:
        try:
            by_index = gpu_id.isdigit()
            handle = (
                nvml.nvmlDeviceGetHandleByIndex(int(gpu_id)) if by_index else nvml.nvmlDeviceGetHandleByUUID(gpu_id)
            )
            out[gpu_id] = int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
        except nvml.NVMLError:
            continue
    return out


SLACK = 256 * 2**20  # what a GPU may use above its pre-launch figure once released: less than a CUDA context


def wait_released(pids: set[int], timeout_s: float, baseline: Mapping[str, int] | None = None) -> list[str]:
    """Poll until none of `pids` holds GPU memory and each GPU of `baseline` (id -> bytes used before the launch)
    is back within SLACK of it; returns what is still held at the deadline (empty = released)."""
    held: list[str] = []

    def released() -> bool:
        nonlocal held
        by_pid = holders(pids)
        now = used(baseline or {})
        over = {i: b for i, b in now.items() if b > (baseline or {})[i] + SLACK}
        held = [f"pid {pid} ({b / 2**30:.1f} GiB)" for pid, b in sorted(by_pid.items())]
        held += [
            f"GPU {i} uses {b / 2**30:.1f} GiB ({(baseline or {})[i] / 2**30:.1f} GiB before the launch"
            + (
                "; NVML names no pid of the server, as in a container with its own pid namespace)"
                if not by_pid
                else ")"
            )
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
