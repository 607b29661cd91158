"""The SGLang profile: flag names, the launcher module and how to ask SGLang about itself."""

from __future__ import annotations

import sys

from ..args import Args, lookup
from .base import EngineProfile

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
    tp = _int_arg(args, "tp-size", "tensor-parallel-size", "tp")
    pp = _int_arg(args, "pp-size", "pipeline-parallel-size", "pp")
    dp = _int_arg(args, "dp-size", "data-parallel-size", "dp")
    nnodes = _int_arg(args, "nnodes")
    # DP attention splits the TP group into dp parts; plain --dp runs dp replicas of tp GPUs each
    dp_attention = bool(lookup(args, "enable-dp-attention"))
    total = tp * pp * (1 if dp_attention else dp)
    if nnodes > 1:
        return f"{total} ({nnodes} nodes x {max(total // nnodes, 1)})"
    return str(total)


def _probe_python(launch: list[str]) -> str | None:
    # only `<python> -m sglang.launch_server` says which interpreter has SGLang installed
    if len(launch) >= 3 and launch[1] == "-m" and launch[2] == LAUNCH_MODULE:
        return launch[0]
    return None


# Runs in the engine's interpreter: parses each row's argv with SGLang's own argparse parser, without
# resolving anything (resolution needs a GPU). Stdlib only besides sglang.
PROBE_SOURCE = r'''
import argparse, contextlib, io, json, sys
out = {"importable": False, "version": None, "error": None, "results": {}}
try:
    from importlib.metadata import version
    out["version"] = version("sglang")
except Exception as e:
    out["error"] = "sglang is not installed (%s)" % (e,)
    print(json.dumps(out)); sys.exit(0)
try:
    from sglang.srt.server_args import ServerArgs
except BaseException as e:
    out["error"] = "import sglang.srt.server_args failed: %s: %s" % (type(e).__name__, e)
    print(json.dumps(out)); sys.exit(0)
out["importable"] = True
for row in json.load(sys.stdin):
    parser = argparse.ArgumentParser(prog="sglang.launch_server")  # as SGLang builds it
    ServerArgs.add_cli_args(parser)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser.parse_args(row["argv"])
        out["results"][row["id"]] = None
    except SystemExit:
        lines = [l for l in err.getvalue().splitlines() if l.strip()]
        out["results"][row["id"]] = lines[-1] if lines else "rejected by the argument parser"
print(json.dumps(out))
'''

SGLANG = EngineProfile(
    name="sglang",
    default_launch=_default_launch,
    model_flag="--model-path",
    gpus_needed=_gpus_needed,
    probe_python=_probe_python,
    probe_source=PROBE_SOURCE,
)
