"""The matrix's prepare steps as the server stage runs them: once, and a failure kept for every later row."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_sglang_ablate.errors import FailureClass, PrepareError
from pytest_sglang_ablate.matrix.model import PrepareStep
from pytest_sglang_ablate.server.setup import Setup


def step(tmp_path: Path, code: int) -> PrepareStep:
    count = tmp_path / "runs"
    program = f"open({str(count)!r}, 'a').write('x'); import sys; print('building'); sys.exit({code})"
    return PrepareStep(run=(sys.executable, "-c", program))


def test_a_failed_step_is_raised_for_every_row_and_run_once(tmp_path: Path) -> None:
    setup = Setup((step(tmp_path, 3),), (), tmp_path / "logs" / "prepare.log")
    with pytest.raises(PrepareError) as first:
        setup.ensure()
    with pytest.raises(PrepareError) as second:
        setup.ensure()
    assert second.value is first.value and first.value.failure_class is FailureClass.PREPARE
    assert "exited with 3; no row can run" in str(first.value) and "building" in str(first.value)
    assert (tmp_path / "runs").read_text() == "x"


def test_steps_run_once_however_many_rows_ask(tmp_path: Path) -> None:
    setup = Setup((step(tmp_path, 0),), (), tmp_path / "prepare.log")
    for _ in range(3):
        setup.ensure()
    assert (tmp_path / "runs").read_text() == "x"


def test_no_steps_is_nothing_to_do(tmp_path: Path) -> None:
    Setup((), (), tmp_path / "prepare.log").ensure()
    assert not (tmp_path / "prepare.log").exists()
