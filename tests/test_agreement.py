"""Same answers across rows (measure/agreement.py, kind agreement): each row's greedy outputs against the reference
row's, identical, close or far; a row beyond the tolerance fails with what differed, and a known issue of class
wrong_output expects it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from matrices import standin_matrix

from pytest_sglang_ablate.matrix.model import AgreementWorkload
from pytest_sglang_ablate.measure.agreement import Output, agreement, compare

TOP = [{"a": -0.1, "b": -0.9}, {"c": -0.2, "d": -1.0}, {"e": -0.1, "f": -2.0}]


def out(tokens: list[str], top: list[dict[str, float]] | None = None) -> Output:
    return Output("p", "".join(tokens), tokens, top if top is not None else TOP)


def test_identical_close_and_far_divergences() -> None:
    assert compare(out(["a", "c", "e"]), out(["a", "c", "e"])).identical
    # the runner-up won at position 1, and each side's token is in the other's top-k: close
    close = compare(out(["a", "c", "e"]), out(["a", "d", "x"], [TOP[0], {"d": -0.5, "c": -0.6}, {"x": -0.1}]))
    assert (close.position, close.close, close.reference, close.ours) == (1, True, "ce", "dx")
    assert close.reference_top == [("c", -0.2), ("d", -1.0)] and close.ours_top == [("d", -0.5), ("c", -0.6)]
    # this side's token is not among the reference's top-k: far
    far = compare(out(["a", "c", "e"]), out(["a", "z", "e"], [TOP[0], {"z": -0.1, "c": -3.0}, TOP[2]]))
    assert (far.position, far.close) == (1, False)
    # the reference's token is not among this side's top-k: far too (the check goes both ways)
    one_way = compare(out(["a", "c", "e"]), out(["a", "d", "e"], [TOP[0], {"d": -0.1, "q": -3.0}, TOP[2]]))
    assert (one_way.position, one_way.close) == (1, False)
    assert "first differs at token 1 (far)" in one_way.said() and "'c'" in one_way.said()


def test_without_log_probabilities_text_is_compared_and_a_difference_is_far() -> None:
    d = compare(Output("p", "hello world", None, None), Output("p", "hello there", None, None))
    assert (d.position, d.unit, d.close) == (6, "character", False)
    assert compare(Output("p", "same", None, None), Output("p", "same", None, None)).identical


def test_the_tolerance_fails_too_few_close_or_identical_outputs() -> None:
    ref = [Output(f"p{i}", "ace", ["a", "c", "e"], TOP) for i in range(4)]
    close_top = [TOP[0], {"d": -0.5, "c": -0.6}, TOP[2]]
    ours = [*ref[:3], Output("p3", "ade", ["a", "d", "e"], close_top)]
    found = agreement(ref, ours)
    assert (found.identical_share, found.close_share) == (0.75, 1.0)
    workload = AgreementWorkload("agree", ("p0",))
    assert found.problems(workload, "row 'base'") == []  # every output identical or close: the default passes
    strict = AgreementWorkload("agree", ("p0",), min_identical=1.0)
    problems = found.problems(strict, "row 'base'")
    assert "identical 3/4 (min_identical 1)" in problems[0] and "prompt 'p3'" in problems[1]
    assert found.figures()["first_divergence"] == [None, None, None, 1]


AGREEMENT = """
features:
  radix_cache: {off: {disable-radix-cache: true}}
  kv_fp8: {on: {kv-cache-dtype: fp8_e4m3}}
  fp8: {on: {quantization: fp8}}
rows:
  - [radix_cache]
  - [radix_cache, kv_fp8]
  - [radix_cache, fp8]
  - {features: [], workloads: [agree]}
workloads:
  agree: {kind: agreement, prompts: 3, max_tokens: 8, top_k: 3}
"""


def _records(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    lines = (pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()
    return {r["case"]: r for r in map(json.loads, lines)}


def test_rows_agree_diverge_close_and_diverge_far_on_the_standin(pytester: pytest.Pytester) -> None:
    """The stand-in leaves the default greedy output close at token 4 with an FP8 KV cache and far at token 2 with
    FP8 weights; the default min_close 1.0 passes the first and fails the second with what differed."""
    pytester.makefile(".yaml", m=standin_matrix(AGREEMENT))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=3, failed=1)
    records = _records(pytester)
    ref = records["radix_cache-agree"]["figures"]
    assert ref["is_reference"] and ref["identical_share"] == 1.0 and len(ref["outputs"]) == 3
    close = records["radix_cache+kv_fp8-agree"]["figures"]
    assert close["reference_row"] == "radix_cache" and close["identical_share"] == 0.0
    assert close["close_share"] == 1.0 and close["first_divergence"] == [4, 4, 4]
    far = records["radix_cache+fp8-agree"]
    assert far["outcome"] == "failed" and far["failure_class"] == "wrong_output"
    assert far["figures"]["close_share"] == 0.0 and far["figures"]["first_divergence"] == [2, 2, 2]
    # the message names the prompt, the position, both continuations and both top-k lists
    result.stdout.re_match_lines([r".*greedy outputs diverge from those of row 'radix_cache' beyond the tolerance.*"])
    result.stdout.re_match_lines([r".*prompt 'Write a short story about .*first differs at token 2 \(far\).*top-k.*"])
    assert records["baseline-agree"]["figures"]["identical_share"] == 1.0  # radix cache off changes nothing here
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert "## Agreement with the baseline" in report
    assert "| reference " in report and "| 0/3 identical, 3/3 close " in report
    assert "| 0/3 identical, 0/3 close [1] " in report and "1. row radix_cache+fp8, agree: " in report
    assert "first differs at token 2 (far)" in report  # the note says where and how


def test_a_known_wrong_output_is_a_strict_xfail_and_a_named_baseline_is_the_reference(
    pytester: pytest.Pytester,
) -> None:
    body = (
        AGREEMENT.replace("prompts: 3,", "prompts: 3, baseline: baseline,")
        + """
known_issues:
  - {when: [fp8], class: wrong_output, reason: "FP8 weights change the greedy output"}
"""
    )
    pytester.makefile(".yaml", m=standin_matrix(body))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, xfailed=1)
    records = _records(pytester)
    assert records["baseline-agree"]["figures"]["is_reference"]
    assert records["radix_cache-agree"]["figures"]["reference_row"] == "baseline"
    assert records["radix_cache+fp8-agree"]["outcome"] == "xfailed"


def test_the_reference_row_failing_skips_the_others_saying_why(pytester: pytest.Pytester) -> None:
    body = """
features:
  broken: {on: {mem-fraction-static: 0.99}}
  kv_fp8: {on: {kv-cache-dtype: fp8_e4m3}}
rows:
  - {features: [broken], env: {STANDIN: "exit=oom_torch"}}
  - [kv_fp8]
known_issues:
  - {when: [broken], reason: "scripted: this row does not start", match: "CUDA out of memory"}
workloads:
  agree: {kind: agreement, prompts: 2, max_tokens: 8}
"""
    pytester.makefile(".yaml", m=standin_matrix(body))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(xfailed=1, skipped=1)
    result.stdout.re_match_lines([r".*no reference outputs: the reference row 'broken' xfailed its agree case.*"])
    assert _records(pytester)["kv_fp8-agree"]["figures"]["outputs"]  # kept, to compare later


def test_a_baseline_that_is_not_a_row_of_the_workload_is_named(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", m=standin_matrix(AGREEMENT.replace("prompts: 3,", "prompts: 3, baseline: nope,")))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stderr.re_match_lines([r".*workloads\.agree\.baseline: expected the id of a row that runs workload agree.*"])
    assert "Traceback" not in result.stderr.str()


def test_under_xdist_every_row_is_compared_in_the_test_or_at_the_end(pytester: pytest.Pytester) -> None:
    """Rows run on two workers: a row measured before the reference skips, keeping its outputs, and report.md
    compares it at the end; either way the report has every row's agreement."""
    body = AGREEMENT.replace("  - [radix_cache, fp8]\n", "")
    pytester.makefile(".yaml", m=standin_matrix(body))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", "-n", "2")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 3 and "failed" not in outcomes
    records = _records(pytester)
    for case in ("radix_cache+kv_fp8-agree", "baseline-agree"):
        r = records[case]
        assert r["outcome"] == "passed" or "no reference outputs yet" in r["message"], r
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert "| 0/3 identical, 3/3 close" in report and "| 3/3 identical" in report


def test_a_reference_row_that_failed_a_request_is_no_reference(pytester: pytest.Pytester) -> None:
    """Its prompts answered before the failure are kept in its record, but no other row is compared with a part
    of the prompts: the next row skips saying the reference failed, and report.md does not compare it."""
    body = """
features:
  kv_fp8: {on: {kv-cache-dtype: fp8_e4m3}}
  q: {on: {quantization: fp8}}
rows:
  - {features: [], env: {STANDIN: "fail_every=2"}}
  - [q]
workloads:
  agree: {kind: agreement, prompts: 3, max_tokens: 8}
"""
    pytester.makefile(".yaml", m=standin_matrix(body))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.re_match_lines([r".*no reference outputs: the reference row 'baseline' failed its agree case.*"])
    records = _records(pytester)
    assert records["baseline-agree"]["figures"]["outputs"] and records["q-agree"]["figures"]["compared"] is False
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert "identical" not in report.split("## Agreement with the baseline")[1].split("Notes:")[0]


def test_with_launches_the_reference_row_says_how_its_other_launches_agreed(pytester: pytest.Pytester) -> None:
    body = AGREEMENT.replace("  - [radix_cache, fp8]\n", "").replace("  - {features: [], workloads: [agree]}\n", "")
    pytester.makefile(".yaml", m=standin_matrix("launches: 2\n" + body))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert "| reference (launch 1; launch 2 3/3 identical) " in report
    assert "| 0/3 identical, 3/3 close " in report  # the other row, each launch against the reference


def test_a_row_cannot_change_what_an_agreement_workload_compares(pytester: pytest.Pytester) -> None:
    body = AGREEMENT.replace(
        "  - [radix_cache, kv_fp8]\n", "  - {features: [radix_cache, kv_fp8], workloads: {agree: {max_tokens: 12}}}\n"
    )
    pytester.makefile(".yaml", m=standin_matrix(body))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.re_match_lines([r".*rows\[1\]\.workloads\.agree\.max_tokens: a row cannot change an agreement.*"])
    assert "Traceback" not in result.stderr.str()


def test_a_launch_failure_is_still_expected_beside_a_wrong_output_known_issue(pytester: pytest.Pytester) -> None:
    body = """
features:
  broken: {on: {mem-fraction-static: 0.99}}
  kv_fp8: {on: {kv-cache-dtype: fp8_e4m3}}
rows:
  - [kv_fp8]
  - {features: [broken], env: {STANDIN: "exit=oom_torch"}}
known_issues:
  - {when: [broken], reason: "scripted: this row does not start", match: "CUDA out of memory"}
  - {when: [broken], class: wrong_output, reason: "and answers wrong when it does"}
workloads:
  agree: {kind: agreement, prompts: 2, max_tokens: 8}
"""
    pytester.makefile(".yaml", m=standin_matrix(body))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, xfailed=1)


def test_under_xdist_a_row_beyond_the_tolerance_found_after_the_run_fails_the_run(pytester: pytest.Pytester) -> None:
    """The reference row starts 3 s late on its worker, so the far row is measured first and skips; report.md
    compares it at the end, finds it beyond min_close, says so and the run exits 1."""
    body = """
features:
  fp8: {on: {quantization: fp8}}
rows:
  - {features: [], env: {STANDIN: "slow_start=3"}}
  - [fp8]
workloads:
  agree: {kind: agreement, prompts: 2, max_tokens: 8, top_k: 3}
"""
    pytester.makefile(".yaml", m=standin_matrix(body))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", "-n", "2")
    assert _records(pytester)["fp8-agree"]["outcome"] == "skipped"
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.re_match_lines([r".*wrong output, found after the run \(the run fails\): row fp8, agree: greedy.*"])
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert "beyond the tolerance, so the run fails" in report and "first differs at token 2 (far)" in report


def test_a_named_baseline_left_out_by_k_is_said_as_such(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", m=standin_matrix(AGREEMENT.replace("prompts: 3,", "prompts: 3, baseline: baseline,")))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", "-rs", "-k", "kv_fp8")
    result.assert_outcomes(skipped=1)
    result.stdout.re_match_lines([r".*the reference row 'baseline' is not in this run \(deselected with -k/-m.*"])
