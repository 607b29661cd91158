"""A stand-in for nvidia-ml-py's `pynvml` for tests on machines without a GPU: put this folder on PYTHONPATH and
set FAKE_NVML_GPUS to the number of GPUs it reports. It lists no compute processes."""

from __future__ import annotations

import os


class NVMLError(Exception):
    pass


def nvmlInit() -> None:
    if "FAKE_NVML_GPUS" not in os.environ:
        raise NVMLError("FAKE_NVML_GPUS is not set: no driver")


def nvmlDeviceGetCount() -> int:
    return int(os.environ["FAKE_NVML_GPUS"])


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    return index


def nvmlDeviceGetComputeRunningProcesses(handle: int) -> list[object]:
    return []


def nvmlSystemGetDriverVersion() -> str:
    return "000.00-fake"


def nvmlDeviceGetName(handle: int) -> str:
    return "Fake GPU"


class _Memory:
    total = 80 * 2**30
    used = 0


def nvmlDeviceGetMemoryInfo(handle: int) -> _Memory:
    return _Memory()
