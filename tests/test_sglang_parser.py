"""The shipped matrices against the real SGLang argument parser of their version, so a renamed flag in a new
release is a red test here rather than a crashed GPU job. Needs the parse-only environments that .ci/run makes
(`bash scripts/sglang-parser.sh VERSION VENV`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import engine_python

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]
CHECKS = [  # matrix, SGLang version, its environment, cases the matrix expects to fail at that version
    ("r1.yaml", "0.4.3.post2", ".venv-sglang-0.4.3", 9),
    ("r1-current.yaml", "0.5.23", ".venv-sglang-0.5.23", 0),
]


def with_launch(pytester: pytest.Pytester, matrix: str, venv: str) -> str:
    version = {v: ver for _, ver, v, _ in CHECKS}[venv]
    python = engine_python(venv, f"bash scripts/sglang-parser.sh {version} {venv}")
    text = (REPO / "matrix" / matrix).read_text(encoding="utf-8")
    text = text.replace("engine: sglang\n", f"engine: sglang\nlaunch: [{python}, -m, sglang.launch_server]\n", 1)
    pytester.path.joinpath(matrix).write_text(text, encoding="utf-8")
    return matrix


@pytest.mark.parametrize(("matrix", "version", "venv", "xfail"), CHECKS)
def test_matrix_flags_are_accepted_by_the_sglang_they_are_written_for(
    pytester: pytest.Pytester, matrix: str, version: str, venv: str, xfail: int
) -> None:
    result = pytester.runpytest_subprocess("--ablate-matrix", with_launch(pytester, matrix, venv), "--ablate-plan")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(
        [f"ablate: flags validated by sglang {version}'s parser", f"17 rows, 38 cases ({xfail} expected to fail)*"]
    )
    assert "invalid flags" not in result.stdout.str()


def test_the_0_4_3_matrix_is_rejected_by_current_sglang_naming_the_removed_flag(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--ablate-matrix", with_launch(pytester, "r1.yaml", ".venv-sglang-0.5.23"), "--collect-only"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*sglang 0.5.23 rejects the flags of row*unrecognized arguments: --enable-flashinfer-mla*"]
    )
