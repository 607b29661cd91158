"""What the results recorder makes of pytest's reports: outcome, failure class from user_properties, teardown."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from pytest_sglang_ablate.adapter.recorder import ResultsRecorder, outcome
from pytest_sglang_ablate.adapter.state import CASE, FAILURE
from pytest_sglang_ablate.matrix.prepare import prepare
from pytest_sglang_ablate.results.store import Store


def report(
    when: Literal["setup", "call", "teardown"],
    result: Literal["passed", "failed", "skipped"],
    properties: list[tuple[str, object]],
    longrepr: str = "row 'x': stopping the server left something behind: port 1 is still in use",
    **extra: object,
) -> pytest.TestReport:
    made = pytest.TestReport("m.yaml::test_single[x]", ("m.yaml", None, ""), {}, result, longrepr, when)
    made.user_properties = properties
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_outcomes_name_xfail_xpass_and_errors_outside_the_call() -> None:
    assert outcome(report("call", "passed", [])) == "passed"
    assert outcome(report("call", "failed", [])) == "failed"
    assert outcome(report("setup", "failed", [])) == "error"
    assert outcome(report("teardown", "failed", [])) == "error"
    assert outcome(report("setup", "skipped", [], wasxfail="known")) == "xfailed"
    assert outcome(report("call", "passed", [], wasxfail="known")) == "xpassed"


@pytest.fixture
def recorder(pytester: pytest.Pytester, tiny_matrix: Path, tmp_path: Path) -> tuple[ResultsRecorder, Store]:
    prepared = prepare(tiny_matrix, "tiny.yaml", "0.5.0", "--ablate-sglang-version")
    store = Store(tmp_path / "results", set())
    return ResultsRecorder(store, prepared, pytester.parseconfig()), store


def test_a_teardown_failure_is_recorded_with_its_class(recorder: tuple[ResultsRecorder, Store]) -> None:
    rec, store = recorder
    case = "cuda_graph+radix_cache-single"
    rec.pytest_runtest_logreport(report("call", "passed", [(CASE, case)]))
    rec.pytest_runtest_logreport(report("teardown", "failed", [(CASE, case), (FAILURE, "teardown")]))
    first, second = store.load()
    assert (first.case, first.outcome, first.failure_class) == (case, "passed", None)
    assert (second.case, second.outcome, second.failure_class, second.message) == (
        case,
        "error",
        "teardown",
        "row 'x': stopping the server left something behind: port 1 is still in use",
    )
    assert store.latest("tiny")[0].outcome == "error"


def test_reports_of_other_tests_and_passing_phases_are_not_recorded(recorder: tuple[ResultsRecorder, Store]) -> None:
    rec, store = recorder
    rec.pytest_runtest_logreport(report("call", "passed", []))  # a user's own test: no case id
    rec.pytest_runtest_logreport(report("setup", "passed", [(CASE, "cuda_graph+radix_cache-single")]))
    rec.pytest_runtest_logreport(report("teardown", "passed", [(CASE, "cuda_graph+radix_cache-single")]))
    assert store.load() == []


def test_a_known_issue_failure_keeps_its_class_and_reason(recorder: tuple[ResultsRecorder, Store]) -> None:
    rec, store = recorder
    case = "cuda_graph+radix_cache+nextn-single"
    rec.pytest_runtest_logreport(report("setup", "skipped", [(CASE, case), (FAILURE, "oom")], wasxfail="known"))
    (result,) = store.load()
    assert (result.outcome, result.failure_class, result.features) == (
        "xfailed",
        "oom",
        ("cuda_graph", "radix_cache", "nextn"),
    )


def test_a_server_failure_is_summed_up_by_its_first_line_and_evidence(recorder: tuple[ResultsRecorder, Store]) -> None:
    rec, store = recorder
    text = (
        "row 'cuda_graph+radix_cache': the server exited during startup [oom]\n"
        "  evidence: torch.OutOfMemoryError: CUDA out of memory.\n"
        "  exit code: 1\n"
        "--- last 40 lines of the server log ---\n"
        "Traceback (most recent call last):\n"
    )
    props: list[tuple[str, object]] = [(CASE, "cuda_graph+radix_cache-single"), (FAILURE, "oom")]
    rec.pytest_runtest_logreport(report("setup", "failed", props, longrepr=text))
    (result,) = store.load()
    assert result.message == (
        "row 'cuda_graph+radix_cache': the server exited during startup [oom]; "
        "evidence: torch.OutOfMemoryError: CUDA out of memory."
    )
