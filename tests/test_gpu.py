"""server/gpu.py and the inventory's machine check, against the fake NVML of tests/fake_nvml."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from pytest_sglang_ablate.server import gpu
from pytest_sglang_ablate.server.inventory import Inventory, missing_here

GIB = 2**30


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Two fake GPUs; returns the state file whose events say what each pid holds."""
    spec = importlib.util.spec_from_file_location("pynvml", Path(__file__).parent / "fake_nvml" / "pynvml.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "pynvml", module)  # before it runs: its dataclasses look themselves up
    spec.loader.exec_module(module)
    monkeypatch.setenv("FAKE_NVML_GPUS", "2")
    monkeypatch.setenv("FAKE_NVML_STATE", str(tmp_path / "nvml.jsonl"))
    return tmp_path / "nvml.jsonl"


def events(state: Path, *lines: dict[str, object]) -> None:
    with state.open("a") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)


def test_used_reads_each_gpu_by_index_or_uuid_and_leaves_out_ids_nvml_cannot_resolve(nvml: Path) -> None:
    events(nvml, {"gpu": "0", "pid": 10, "used": GIB})
    assert gpu.used(["0", "1", "GPU-fake-0", "GPU-8932f937", "7"]) == {"0": GIB, "1": 0, "GPU-fake-0": GIB}
    assert gpu.unknown(["0", "GPU-fake-1", "GPU-8932f937", "7"]) == ["GPU-8932f937", "7"]


def test_pids_are_hidden_only_where_nvml_lists_processes_and_none_is_ours(nvml: Path) -> None:
    events(nvml, {"gpu": "0", "pid": 10, "used": GIB})
    assert not gpu.pids_hidden({10, 11}, ["0"])  # NVML names ours: the pid wait works
    assert gpu.pids_hidden({99}, ["0"])  # a container: NVML's pids are the host's
    assert not gpu.pids_hidden({99}, ["1"])  # nothing on the GPU at all


def test_memory_already_freed_is_released_and_memory_still_held_is_named_with_its_figures(nvml: Path) -> None:
    events(nvml, {"gpu": "0", "pid": 10, "used": 3 * GIB}, {"gpu": "0", "pid": 10, "until": time.time() - 1})
    assert gpu.wait_released({99}, 5, {"0": 0}) == []
    events(nvml, {"gpu": "0", "pid": 11, "used": GIB}, {"gpu": "0", "pid": 11, "until": time.time() + 3600})
    held = gpu.wait_released({99}, 0.2, {"0": 0})
    assert held == [
        "GPU 0 uses 1.0 GiB (0.0 GiB before the launch; the server's pids are in another pid namespace than NVML's)"
    ]
    assert gpu.wait_released({99}, 0.2, {"0": GIB}) == []  # what it used before the launch is not ours
    assert gpu.wait_released({11}, 0.2) == ["pid 11 (1.0 GiB)"]


def test_a_gpu_index_the_machine_lacks_is_named_and_uuids_are_left_to_cuda(
    nvml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = Inventory(("0", "1", "GPU-8932f937"), "--ablate-gpus")
    monkeypatch.setenv("FAKE_NVML_GPUS", "1")
    assert missing_here(given) == (
        "--ablate-gpus: GPU 1 is not on this machine: NVML sees 1 GPU (0); expected ids from that list, or none"
    )
    assert missing_here(Inventory(None, "--ablate-gpus: none")) is None
    monkeypatch.setenv("FAKE_NVML_GPUS", "2")
    assert missing_here(given) is None
    monkeypatch.delenv("FAKE_NVML_GPUS")  # no NVML: nothing to check against
    assert missing_here(given) is None
