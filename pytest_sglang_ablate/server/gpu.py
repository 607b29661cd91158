"""Wait until the GPU driver has let go of a stopped server's memory (NVML's compute-process list).

Killing a server only queues the driver-side teardown; the next launch can OOM until the pids leave NVML's
list (sglang PR #39545). Without NVML (no GPU, or nvidia-ml-py not installed) there is nothing to wait for.
"""

from __future__ import annotations

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


def wait_released(pids: set[int], timeout_s: float) -> dict[int, int]:
    """Poll until none of `pids` holds GPU memory; returns what is still held at the deadline (empty = released)."""
    held: dict[int, int] = {}

    def released() -> bool:
        nonlocal held
        held = holders(pids)
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
