"""The nightly gate end to end on the stand-in (--ablate-history, --ablate-gate, --ablate-confirm): nights of
launches with seeded launch noise, then a night without a change and a night with one row 30 % slower."""

from __future__ import annotations

import json
from typing import Any

import pytest
from matrices import standin_matrix

pytestmark = pytest.mark.standin
NOISE = "speed_sigma=0.03,speed_seed=11"


def matrix(slow_row: str = "") -> str:
    rows = "\n".join(
        f'  - {{features: [{f}], env: {{STANDIN: "tok_rate={350 if f == slow_row else 500},{NOISE}"}}}}'
        for f in ("fast", "other")
    )
    body = f"""
launches: 2
features:
  fast: {{on: {{attention-backend: triton}}}}
  other: {{on: {{attention-backend: flex_attention}}}}
rows:
{rows}
workloads:
  single: {{kind: single, prompt: "q", max_tokens: 40}}
"""
    return standin_matrix(body)


def night(pytester: pytest.Pytester, name: str, text: str, *args: str) -> pytest.RunResult:
    pytester.makefile(".yaml", m=text)
    out = ["--ablate-out", str(pytester.path / name)]
    return pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", *out, *args)


def gate(pytester: pytest.Pytester, name: str) -> dict[str, dict[str, Any]]:
    cases = json.loads((pytester.path / name / "gate.json").read_text())["cases"]
    return {c["case"]: c for c in cases}


def test_an_unchanged_night_passes_and_a_30_percent_slower_row_is_relaunched_and_confirmed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_LAUNCHES", str(pytester.path / "launches"))
    for i in range(4):
        night(pytester, f"night{i}", matrix()).assert_outcomes(passed=4)
    history = [arg for i in range(4) for arg in ("--ablate-history", str(pytester.path / f"night{i}"))]
    started = len((pytester.path / "launches").read_text())

    same = night(pytester, "same", matrix(), *history)
    same.assert_outcomes(passed=4, skipped=4)  # each row's 2 relaunches: not flagged, so not launched
    assert same.ret == pytest.ExitCode.OK
    assert len((pytester.path / "launches").read_text()) - started == 4
    verdicts = gate(pytester, "same")
    assert {c: v["verdict"] for c, v in verdicts.items()} == {
        "fast-single": "within the noise",
        "other-single": "within the noise",
    }
    assert verdicts["fast-single"]["nights"] == 4 and verdicts["fast-single"]["detectable"] > 0.05
    same.stdout.fnmatch_lines(["against 4 earlier nights (gate 5%): 2 cases, 0 regressions, 0 cleared on relaunch"])

    started = len((pytester.path / "launches").read_text())
    slow = night(pytester, "slow", matrix(slow_row="other"), *history, "--benchmark-json=slow.json")
    slow.assert_outcomes(passed=6, skipped=2)  # the slow row relaunched twice, the other not
    assert slow.ret == pytest.ExitCode.TESTS_FAILED
    assert len((pytester.path / "launches").read_text()) - started == 6
    verdicts = gate(pytester, "slow")
    other = verdicts["other-single"]
    assert other["verdict"] == "regression (confirmed)" and other["relaunched"] == 2 and other["launches"] == 4
    assert -0.4 < other["change"] < -0.2
    assert verdicts["fast-single"]["verdict"] == "within the noise"
    slow.stdout.fnmatch_lines(["*1 regressions*", "  other-single: regression (confirmed) (-*%)"])
    names = {b["fullname"] for b in json.loads((pytester.path / "slow.json").read_text())["benchmarks"]}
    assert names == {"m.yaml::test_single[fast-single]", "m.yaml::test_single[other-single]"}  # one per case
    report = (pytester.path / "slow" / "report.md").read_text()
    assert "## Compared with history" in report and "| regression (confirmed) " in report


def test_a_bad_gate_value_is_one_usage_error(pytester: pytest.Pytester) -> None:
    result = night(pytester, "x", matrix(), "--ablate-gate", "five")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ablate-gate: expected a percentage between 0 and 100, such as 5%, got 'five'"])
    assert night(pytester, "x", matrix(), "--ablate-gate", "0.05").ret == pytest.ExitCode.USAGE_ERROR  # 5 % or 0.05 %?
    missing = night(pytester, "x", matrix(), "--ablate-history", "nowhere")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--ablate-history: no results file at nowhere*"])
