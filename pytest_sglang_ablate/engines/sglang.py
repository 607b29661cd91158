"""The SGLang profile: flag names, the launcher module and how to ask SGLang about itself."""

from __future__ import annotations

import sys
from typing import Any

from ..matrix.args import Args, lookup
from .base import EngineProfile, module_python

LAUNCH_MODULE = "sglang.launch_server"


def _default_launch() -> list[str]:
    # the interpreter running pytest: the one whose site-packages we can probe
    return [sys.executable, "-m", LAUNCH_MODULE]


def _int_arg(args: Args, *names: str, default: int = 1) -> int:
    value = lookup(args, *names)
    try:
        return int(str(value)) if value is not None and value is not True else default
    except ValueError:
        return default


def _gpus_needed(args: Args) -> str:
    tp = _int_arg(args, "tp-size")  # aliases are merged into these names when the matrix is read
    pp = _int_arg(args, "pp-size")
    dp = _int_arg(args, "dp-size")
    nnodes = _int_arg(args, "nnodes")
    # DP attention splits the TP group into dp parts; plain --dp runs dp replicas of tp GPUs each
    dp_attention = bool(lookup(args, "enable-dp-attention"))
    total = tp * pp * (1 if dp_attention else dp)
    if nnodes > 1:
        return f"{total} ({nnodes} nodes x {max(total // nnodes, 1)})"
    return str(total)


def _probe_python(launch: list[str]) -> str | None:
    return module_python(launch, LAUNCH_MODULE)


# Runs in the engine's interpreter: parses each row's argv with SGLang's own argparse parser, without
# resolving anything (resolution needs a GPU). ServerArgs.add_cli_args + parse_args exists in 0.4.x and 0.5.x
# alike and has no side effects. Stdlib only besides sglang.
PROBE_SOURCE = r"""
import argparse, contextlib, importlib.metadata, importlib.util, io, json, logging, re, sys, types
out = {"importable": False, "version": None, "error": None, "results": {}, "warnings": {}}
try:
    out["version"] = importlib.metadata.version("sglang")
except importlib.metadata.PackageNotFoundError:
    out["error"] = "sglang is not installed"
    print(json.dumps(out)); sys.exit(0)
# SGLang's utils import triton (and triton.runtime, and decorate with triton.jit) at import time; a GPU-less parse
# needs only the names. A meta-path finder serves dummy triton modules for the import, and is removed after, so
# nothing later takes them for a real triton. Not used where a real triton is installed.
import importlib.abc, importlib.machinery

class _Anything:
    def __call__(self, *a, **k):
        return a[0] if len(a) == 1 and callable(a[0]) and not k else _Anything()  # decorators keep the function
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Anything()
    def __getitem__(self, key):
        return _Anything()
    def __mro_entries__(self, bases):
        return (object,)

class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Anything()

class _Triton(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "triton" or name.startswith("triton."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None
    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        return module
    def exec_module(self, module):
        pass

stub = _Triton() if importlib.util.find_spec("triton") is None else None
if stub:
    sys.meta_path.insert(0, stub)
try:
    from sglang.srt.server_args import ServerArgs
except BaseException as e:
    out["error"] = "import sglang.srt.server_args failed: %s: %s" % (type(e).__name__, e)
    print(json.dumps(out)); sys.exit(0)
finally:
    if stub:
        sys.meta_path.remove(stub)
        for name in [n for n in sys.modules if n == "triton" or n.startswith("triton.")]:
            sys.modules.pop(name)
out["importable"] = True

class ParseError(Exception):
    pass

class Parser(argparse.ArgumentParser):
    def error(self, message):  # the stock one prints ~37 KB of usage and exits 2
        raise ParseError(message)

class Capture(logging.Handler):  # deprecation warnings are logged, not raised
    records = []
    def emit(self, record):
        self.records.append(re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()))

logging.getLogger().addHandler(Capture(logging.WARNING))
for row in json.load(sys.stdin):
    Capture.records.clear()
    err = None
    try:
        parser = Parser(prog="sglang serve")  # default allow_abbrev, as SGLang builds it
        ServerArgs.add_cli_args(parser)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args(row["argv"])
    except ParseError as e:
        err = str(e)
    except SystemExit as e:
        err = "the parser exited with code %s" % (e.code,)
    except Exception as e:
        err = "%s: %s" % (type(e).__name__, e)
    out["results"][row["id"]] = err
    if Capture.records:
        out["warnings"][row["id"]] = list(Capture.records)
print(json.dumps(out))
"""


def _extra_ports(port: int, args: Args) -> list[int]:
    # DP attention opens ZMQ TCP ports from --port + 233 upwards (ZMQ_TCP_PORT_DELTA, sglang #30833)
    dp = _int_arg(args, "dp-size")
    return list(range(port + 233, port + 233 + max(8, 2 * dp)))


# Log patterns, most specific first: an OOM inside a scheduler traceback is an OOM, not a generic crash.
# Sources: reference/sglang.md sections 5 and 10.7.
FAILURE_PATTERNS = (
    (
        "bad_flag",
        r"unrecognized arguments|invalid choice|ambiguous option|error: argument --|the following arguments are required",
    ),
    ("port_in_use", r"Address already in use|is not available in \d+ seconds|Port is already in use"),
    ("oom", r"CUDA out of memory|OutOfMemoryError|Not enough memory\. Please try to increase --mem-fraction-static"),
    (
        "graph_capture",
        r"Capture cuda graph failed|Capture .*CUDA graph failed|Breakable CUDA graph failed|operation not permitted when stream is capturing",
    ),
    (
        "crash",
        r"Scheduler hit an exception|DataParallelController hit an exception|Received sigquit from a child process"
        r"|Initialization failed\. warmup error|Child process unexpectedly failed|Traceback \(most recent call last\)",
    ),
)

HINTS = {
    "bad_flag": "this SGLang does not accept a flag of the row: fix the matrix (compare with `python -m sglang.launch_server --help`)",
    "port_in_use": "another process holds the port or the DP-attention ports (port + 233 and up): stop it, or run fewer servers at once",
    "oom": "lower --mem-fraction-static (e.g. 0.7) or --cuda-graph-max-bs, or add `server: {oom_retry_mem_fraction: [0.8, 0.7]}` to the matrix; "
    "with DP attention, warm up at small concurrency first",
    "graph_capture": "CUDA graph capture failed: try without torch compile, a smaller --cuda-graph-max-bs, or mark the combination as a known issue",
    "crash": "a server process raised: the log tail below has the traceback",
    "startup_timeout": "the server did not answer its health check in time: raise `server: {startup_timeout: S}` (DeepSeek can take 20-60 min cold)",
    "died_during_workload": "the server exited while serving requests: see the log tail for the cause",
    "config_drift": "the server silently changed a setting the row asked for: fix the row (e.g. --dp N with --enable-dp-attention) or the expectation",
    "exited": "the server exited without a known error message: see the log tail",
}


def _accept_length(info: dict[str, Any]) -> float | None:
    # /server_info internal_states is one entry per DP rank (reference/sglang.md section 3)
    states = info.get("internal_states") or [{}]
    value = states[0].get("avg_spec_accept_length") if isinstance(states[0], dict) else None
    return float(value) if isinstance(value, (int, float)) else None


SGLANG = EngineProfile(
    name="sglang",
    default_launch=_default_launch,
    model_flag="--model-path",
    gpus_needed=_gpus_needed,
    probe_python=_probe_python,
    probe_source=PROBE_SOURCE,
    extra_ports=_extra_ports,
    health_path="/health",
    info_paths=("/server_info", "/get_server_info"),  # /get_server_info before 0.4.6-ish, deprecated since
    flush_path="/flush_cache",
    default_startup_timeout_s=1800.0,
    failure_patterns=FAILURE_PATTERNS,
    hints=HINTS,
    renames={("speculative_algorithm", "NEXTN"): "EAGLE"},
    gen_throughput_pattern=r"#running-req: 1,.*gen throughput \(token/s\): ([0-9.]+)",
    accept_length=_accept_length,  # SGLang rewrites NEXTN to EAGLE
    # argparse aliases in SGLang's server_args (`--tp` works by prefix abbreviation there)
    aliases={
        "tp": "tp-size",
        "tensor-parallel-size": "tp-size",
        "dp": "dp-size",
        "data-parallel-size": "dp-size",
        "ep": "ep-size",
        "expert-parallel-size": "ep-size",
        "pp": "pp-size",
        "pipeline-parallel-size": "pp-size",
        "speculative-draft-model": "speculative-draft-model-path",
        "model": "model-path",
    },
)
