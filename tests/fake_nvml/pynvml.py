"""A stand-in for nvidia-ml-py's `pynvml` for tests on machines without a GPU: put this folder on PYTHONPATH and
set FAKE_NVML_GPUS to the number of GPUs it reports.

GPU memory comes from FAKE_NVML_STATE, a JSON-lines file the stand-in server appends to (its `fake_gpu_mem`
option): {"gpu": "0", "pid": P, "used": BYTES} when a process takes memory, {"gpu": "0", "pid": P, "until": T}
when it lets go (the driver frees it at time.time() T, as a real driver does some time after the process is
gone). Compute processes are listed with pid + FAKE_NVML_PID_OFFSET (default 0): an offset is a container's
pid namespace, where NVML's pids are the host's.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass


class NVMLError(Exception):
    pass


def nvmlInit() -> None:
    if "FAKE_NVML_GPUS" not in os.environ:
        raise NVMLError("FAKE_NVML_GPUS is not set: no driver")


def nvmlDeviceGetCount() -> int:
    return int(os.environ["FAKE_NVML_GPUS"])


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    if not 0 <= index < nvmlDeviceGetCount():
        raise NVMLError(f"no GPU {index}")
    return index


def nvmlDeviceGetHandleByUUID(uuid: str) -> int:
    """GPU i's UUID here is GPU-fake-i."""
    index = uuid.removeprefix("GPU-fake-")
    if not index.isdigit():
        raise NVMLError(f"no GPU {uuid}")
    return nvmlDeviceGetHandleByIndex(int(index))


def held(gpu: str) -> dict[int, int]:
    """pid -> bytes the driver still holds for it on `gpu`, now."""
    path = os.environ.get("FAKE_NVML_STATE")
    if not path or not os.path.exists(path):
        return {}
    out: dict[int, int] = {}
    with open(path) as f:
        for line in f:
            event = json.loads(line)
            if event["gpu"] != gpu:
                continue
            if "used" in event:
                out[event["pid"]] = event["used"]
            elif event["until"] <= time.time():
                out.pop(event["pid"], None)
    return out


@dataclass
class _Process:
    pid: int
    usedGpuMemory: int


def nvmlDeviceGetComputeRunningProcesses(handle: int) -> list[_Process]:
    offset = int(os.environ.get("FAKE_NVML_PID_OFFSET", "0"))
    return [_Process(pid + offset, used) for pid, used in held(str(handle)).items()]


def nvmlSystemGetDriverVersion() -> str:
    return "000.00-fake"


def nvmlDeviceGetName(handle: int) -> str:
    return "Fake GPU"


@dataclass
class _Memory:
    total: int
    used: int


def nvmlDeviceGetMemoryInfo(handle: int) -> _Memory:
    return _Memory(80 * 2**30, sum(held(str(handle)).values()))
