"""Runs in SGLang's own interpreter, by path (`<engine python> _sglang_probe.py`): which SGLang is installed, and
does its argument parser accept each row's flags?

Reads JSON `[{"id": row id, "argv": [flags after the launch prefix]}]` on stdin and prints one JSON line:
`{"importable", "version", "error", "results": {row id: None or the parser's message}, "warnings": {row id:
[logged warnings]}, "refused": {row id: what SGLang's argument checks raised}}`. It parses (`ServerArgs.add_cli_args`
+ `parse_args`, the same in 0.4.x and 0.5.x), then, best effort, builds `ServerArgs` to run SGLang's own checks of
flag combinations (e.g. 0.5.15 refuses NEXTN with flex attention there); no GPU is touched on purpose. Standard
library only besides sglang: this file must run in an environment where pytest-sglang-ablate is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import io
import json
import logging
import re
import sys
import traceback
import types
from collections.abc import Sequence
from typing import Any, NoReturn


class _Anything:
    """Stands in for any triton name: callable (a decorator keeps the function), indexable, subclassable."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return args[0] if len(args) == 1 and callable(args[0]) and not kwargs else _Anything()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Anything()

    def __getitem__(self, key: Any) -> Any:
        return _Anything()

    def __mro_entries__(self, bases: tuple[type, ...]) -> tuple[type, ...]:
        return (object,)


class _Module(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Anything()


class DummyTriton(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """SGLang's utils import triton (and triton.runtime, and decorate with triton.jit) at import time; a GPU-less
    parse needs only the names. Installed only where no real triton is, and removed after the import."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "triton" or fullname.startswith("triton."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _Module(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def import_server_args() -> Any:
    """SGLang's ServerArgs class, with dummy triton modules for the import where triton is missing."""
    stub = DummyTriton() if importlib.util.find_spec("triton") is None else None
    if stub:
        sys.meta_path.insert(0, stub)
    try:
        from sglang.srt.server_args import ServerArgs  # type: ignore[import-not-found]
    finally:
        if stub:
            sys.meta_path.remove(stub)
            for name in [n for n in sys.modules if n == "triton" or n.startswith("triton.")]:
                sys.modules.pop(name)
    return ServerArgs


class ParseError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # the stock one prints ~37 KB of usage and exits 2
        raise ParseError(message)


class Warnings(logging.Handler):
    """Deprecation warnings are logged, not raised: collect them per row."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()))


def check(server_args: Any, argv: list[str], warnings: Warnings) -> tuple[str | None, argparse.Namespace | None]:
    """(None, the parsed args) when SGLang's parser accepts `argv`, else (its message, None)."""
    try:
        parser = Parser(prog="sglang serve")  # default allow_abbrev, as SGLang builds it
        server_args.add_cli_args(parser)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return None, parser.parse_args(argv)
    except ParseError as e:
        return str(e), None
    except SystemExit as e:
        return f"the parser exited with code {e.code}", None
    except Exception as e:
        return f"{type(e).__name__}: {e}", None


ARGUMENT_CODE = ("/sglang/srt/server_args.py", "/sglang/srt/arg_groups/")  # where SGLang refuses combinations


def refusal(server_args: Any, parsed: argparse.Namespace) -> tuple[str | None, str | None]:
    """Best effort: what SGLang's own argument checks say of parsed args, without a GPU, as (refusal, why the
    checks could not finish). Building ServerArgs runs them in `__post_init__` (0.5.15) or `resolve_once`
    (later). Only an error raised by SGLang's argument code itself is a refusal; anything else (no GPU, a model
    config not there yet, another version's layout) refuses nothing, and is returned as the second item."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            built = server_args.from_cli_args(parsed)
            resolve = getattr(built, "resolve_once", None)
            if callable(resolve):
                resolve()
    except (AssertionError, ValueError) as e:  # how SGLang's argument code refuses: `assert` and `raise ValueError`
        frames = traceback.extract_tb(e.__traceback__)
        if frames and any(part in frames[-1].filename.replace("\\", "/") for part in ARGUMENT_CODE):
            return f"{type(e).__name__}: {e}", None
        return None, f"{type(e).__name__}: {e}"[:300]
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"[:300]
    return None, None


def probe(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"importable": False, "version": None, "error": None, "results": {}, "warnings": {}}
    out["refused"] = {}
    out["unchecked"] = {}  # row id -> why SGLang's argument checks could not finish (nothing refused)
    try:
        out["version"] = importlib.metadata.version("sglang")
    except importlib.metadata.PackageNotFoundError:
        out["error"] = "sglang is not installed"
        return out
    try:
        server_args = import_server_args()
    except BaseException as e:
        out["error"] = f"import sglang.srt.server_args failed: {type(e).__name__}: {e}"
        return out
    out["importable"] = True
    warnings = Warnings()
    logging.getLogger().addHandler(warnings)
    for row in rows:
        warnings.messages.clear()
        message, parsed = check(server_args, list(row["argv"]), warnings)
        out["results"][row["id"]] = message
        if warnings.messages:
            out["warnings"][row["id"]] = list(warnings.messages)
        refused, unchecked = refusal(server_args, parsed) if parsed is not None else (None, None)
        if refused:
            out["refused"][row["id"]] = refused
        if unchecked:
            out["unchecked"][row["id"]] = unchecked
    return out


if __name__ == "__main__":
    # Run by path, Python put this file's folder first on sys.path, and it holds our own sglang.py and vllm.py
    # profiles; the engine's `python -m` launch has the working directory there instead.
    sys.path[0] = ""
    print(json.dumps(probe(json.load(sys.stdin))))
