"""How a matrix becomes pytest cases: ids, selection, markers, one server per row, known issues."""

from __future__ import annotations

import pytest
from matrices import TINY

# Stands in for the real launcher: records each launch and teardown, fails rows the test names.
RECORDING_SERVER = """
import os, pytest
from pytest_sglang_ablate.errors import ServerLaunchError

@pytest.fixture(scope="session")
def sglang_server(request):
    row = request.param
    with open("launches.log", "a") as f:
        f.write(f"start {row.id}\\n")
    if row.id in os.environ.get("FAIL_ROWS", "").split(","):
        raise ServerLaunchError(f"{row.id} did not come up")
    yield row
    with open("launches.log", "a") as f:
        f.write(f"stop {row.id}\\n")
"""
USER_TEST = """
def test_uses_server(sglang_server):
    assert sglang_server.id != "broken"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", tiny=TINY)
    pytester.makepyfile(test_other="def test_unrelated():\n    pass\n")
    return pytester


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_matrix_alone_runs_exactly_the_ablation_not_the_projects_own_tests(project: pytest.Pytester) -> None:
    result = project.runpytest("--ablate-matrix", "tiny.yaml", "--collect-only", "-q")
    assert collected(result) == [
        "tiny.yaml::test_single[cuda_graph+radix_cache-single]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache-batch-c2]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache-batch-c4]",
        "tiny.yaml::test_single[cuda_graph+radix_cache+nextn-single]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache+nextn-batch-c2]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache+nextn-batch-c4]",
        "tiny.yaml::test_single[nextn-only-single]",
    ]


def test_k_selects_exactly_the_rows_with_the_feature_on_by_marker_not_only_by_id(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=TINY.replace("id: nextn-only", "id: spec-only"))
    result = pytester.runpytest("--ablate-matrix", "tiny.yaml", "--collect-only", "-q", "-k", "nextn")
    assert collected(result) == [
        "tiny.yaml::test_single[cuda_graph+radix_cache+nextn-single]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache+nextn-batch-c2]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache+nextn-batch-c4]",
        "tiny.yaml::test_single[spec-only-single]",  # selected by its nextn marker: the id does not say nextn
    ]


def test_bracketed_row_id_selects_or_deselects_exactly_one_row(project: pytest.Pytester) -> None:
    result = project.runpytest(
        "--ablate-matrix", "tiny.yaml", "--collect-only", "-q", "-k", "not [cuda_graph+radix_cache]"
    )
    assert collected(result) == [
        "tiny.yaml::test_single[cuda_graph+radix_cache+nextn-single]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache+nextn-batch-c2]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache+nextn-batch-c4]",
        "tiny.yaml::test_single[nextn-only-single]",
    ]


def test_a_plain_k_still_works_on_ids(project: pytest.Pytester) -> None:
    result = project.runpytest("--ablate-matrix", "tiny.yaml", "--collect-only", "-q", "-k", "batch and not nextn")
    assert collected(result) == [
        "tiny.yaml::test_batch[cuda_graph+radix_cache-batch-c2]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache-batch-c4]",
    ]


def test_m_selects_by_feature_markers_which_are_registered(project: pytest.Pytester) -> None:
    result = project.runpytest(
        "--ablate-matrix", "tiny.yaml", "--collect-only", "-q", "--strict-markers", "-m", "cuda_graph and not nextn"
    )
    assert collected(result) == [
        "tiny.yaml::test_single[cuda_graph+radix_cache-single]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache-batch-c2]",
        "tiny.yaml::test_batch[cuda_graph+radix_cache-batch-c4]",
    ]
    markers = project.runpytest("--ablate-matrix", "tiny.yaml", "--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.nextn: ablation rows where feature nextn is on*"])


def test_one_server_per_row_shared_across_modules_and_stopped_before_the_next(project: pytest.Pytester) -> None:
    project.makeconftest(RECORDING_SERVER)
    project.makepyfile(test_a=USER_TEST, test_b=USER_TEST)
    project.runpytest("tiny.yaml", "test_a.py", "test_b.py", "--ablate-matrix", "tiny.yaml")
    assert (project.path / "launches.log").read_text().split("\n")[:-1] == [
        "start cuda_graph+radix_cache",
        "stop cuda_graph+radix_cache",
        "start cuda_graph+radix_cache+nextn",
        "stop cuda_graph+radix_cache+nextn",
        "start nextn-only",
        "stop nextn-only",
    ]


def test_users_own_tests_are_parametrized_over_the_same_rows(project: pytest.Pytester) -> None:
    project.makepyfile(test_mine=USER_TEST)
    result = project.runpytest("test_mine.py", "--ablate-matrix", "tiny.yaml", "--collect-only", "-q")
    assert collected(result) == [
        "test_mine.py::test_uses_server[cuda_graph+radix_cache]",
        "test_mine.py::test_uses_server[cuda_graph+radix_cache+nextn]",
        "test_mine.py::test_uses_server[nextn-only]",
    ]


def test_known_issue_row_xfails_when_its_server_fails_to_launch(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makeconftest(RECORDING_SERVER)
    project.makepyfile(test_mine=USER_TEST)
    monkeypatch.setenv("FAIL_ROWS", "cuda_graph+radix_cache+nextn,nextn-only")
    result = project.runpytest(
        "test_mine.py", "--ablate-matrix", "tiny.yaml", "--ablate-sglang-version", "0.4.3", "-rxX"
    )
    result.assert_outcomes(passed=1, xfailed=1, errors=1)
    result.stdout.fnmatch_lines(["XFAIL*cuda_graph+radix_cache+nextn*spec decoding vs radix cache*"])
    assert (project.path / "launches.log").read_text().count("start cuda_graph+radix_cache+nextn") == 1


def test_known_issue_row_that_launches_fine_is_a_strict_xpass_failure(project: pytest.Pytester) -> None:
    project.makeconftest(RECORDING_SERVER)
    project.makepyfile(test_mine=USER_TEST)
    result = project.runpytest("test_mine.py", "--ablate-matrix", "tiny.yaml", "--ablate-sglang-version", "0.4.3")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*spec decoding vs radix cache*"])


def test_assertion_failure_inside_a_known_issue_row_still_fails(project: pytest.Pytester) -> None:
    project.makeconftest(RECORDING_SERVER)
    project.makepyfile(test_mine="def test_uses_server(sglang_server):\n    assert 'nextn' not in sglang_server.id\n")
    result = project.runpytest("test_mine.py", "--ablate-matrix", "tiny.yaml", "--ablate-sglang-version", "0.4.3")
    result.assert_outcomes(passed=1, failed=2)


def test_rule_outside_its_version_range_does_not_apply(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makeconftest(RECORDING_SERVER)
    project.makepyfile(test_mine=USER_TEST)
    monkeypatch.setenv("FAIL_ROWS", "cuda_graph+radix_cache+nextn")
    result = project.runpytest("test_mine.py", "--ablate-matrix", "tiny.yaml", "--ablate-sglang-version", "0.5.6")
    result.assert_outcomes(passed=2, errors=1)


def test_last_failed_reruns_only_the_failed_rows(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    project.makeconftest(RECORDING_SERVER)
    project.makepyfile(test_mine=USER_TEST)
    monkeypatch.setenv("FAIL_ROWS", "nextn-only")
    project.runpytest("test_mine.py", "--ablate-matrix", "tiny.yaml", "--ablate-sglang-version", "0.5.6")
    result = project.runpytest("test_mine.py", "--ablate-matrix", "tiny.yaml", "--lf", "--collect-only", "-q")
    assert collected(result) == ["test_mine.py::test_uses_server[nextn-only]"]


def test_server_fixture_without_a_matrix_says_how_to_get_one(project: pytest.Pytester) -> None:
    project.makepyfile(test_mine=USER_TEST)
    result = project.runpytest("test_mine.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*sglang_server fixture needs a matrix: run pytest with --ablate-matrix PATH*"])


def test_plugin_stays_out_of_the_way_without_the_option(project: pytest.Pytester) -> None:
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    assert "ablate:" not in result.stdout.str()
