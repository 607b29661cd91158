"""Several launches per row (`launches: N`, --ablate-launches): a fresh server each, interleaved across rows, one
record and one benchmark entry per case combining them, and --ablate-resume per launch (docs/metrics.md)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from matrices import standin_matrix

pytestmark = pytest.mark.standin
MATRIX = standin_matrix(
    """
    features:
      radix_cache: {off: {disable-radix-cache: true}}
      nextn: {on: {speculative-algorithm: NEXTN}}
    rows:
      - [radix_cache]
      - [nextn]
    workloads:
      single: {kind: single, prompt: "q", max_tokens: 40, repeat: 2}
      batch: {kind: batch, input_len: 8, output_len: 8, levels: [{concurrency: 2, requests: 4}]}
    """
)


def ablate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makefile(".yaml", m=MATRIX)
    return pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", *args)


def lines(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    path = pytester.path / "ablate-results" / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_launch_is_a_fresh_server_interleaved_across_rows_and_each_case_combines_them(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_PIDS", str(pytester.path / "pids"))
    result = ablate(pytester, "--ablate-launches", "2", "--benchmark-json=bench.json")
    result.assert_outcomes(passed=8)
    assert len((pytester.path / "pids").read_text().split()) == 4  # 2 rows x 2 launches
    # results.jsonl in the order the cases finished: launch 1 of every row, then launch 2
    assert [(r["case"], r["launch"]) for r in lines(pytester)] == [
        ("radix_cache-single", 1),
        ("radix_cache-batch-c2", 1),
        ("nextn-single", 1),
        ("nextn-batch-c2", 1),
        ("radix_cache-single", 2),
        ("radix_cache-batch-c2", 2),
        ("nextn-single", 2),
        ("nextn-batch-c2", 2),
    ]
    logs = sorted(p.name for p in (pytester.path / "ablate-results" / "logs").glob("*.log"))
    assert logs == ["nextn-launch1.log", "nextn-launch2.log", "radix_cache-launch1.log", "radix_cache-launch2.log"]
    # one benchmark entry per case, under its name without the launch, one sample per launch
    bench = {b["fullname"]: b for b in json.loads((pytester.path / "bench.json").read_text())["benchmarks"]}
    assert set(bench) == {
        "m.yaml::test_single[radix_cache-single]",
        "m.yaml::test_single[nextn-single]",
        "m.yaml::test_batch[radix_cache-batch-c2]",
        "m.yaml::test_batch[nextn-batch-c2]",
    }
    single = bench["m.yaml::test_single[nextn-single]"]
    assert single["stats"]["rounds"] == 2
    launches = single["extra_info"]["launches"]
    assert [x["launch"] for x in launches] == [1, 2]
    tps = sorted(x["tps_at_1"] for x in launches)
    assert single["extra_info"]["tps_at_1"] == pytest.approx((tps[0] + tps[1]) / 2)  # the median of two
    spread = single["extra_info"]["launch_spread"]["tps_at_1"]
    assert spread["n"] == 2 and spread["within_sd"] is not None  # 2 repeats in each launch
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert re.search(r"\| yes +\| \d+\.\d \[\d+\.\d-\d+\.\d\] \(2\) +\|", report), report


def test_resume_measures_only_the_launches_a_case_lacks(pytester: pytest.Pytester) -> None:
    ablate(pytester, "-k", "single").assert_outcomes(passed=2)  # one launch of each row, recorded as launch 1
    result = ablate(pytester, "-k", "single", "--ablate-launches", "3", "--ablate-resume")
    result.assert_outcomes(passed=4, deselected=8)  # 6 batch items, and launch 1 of each single case: done
    assert {(r["case"], r["launch"]) for r in lines(pytester)} == {
        (case, launch) for case in ("radix_cache-single", "nextn-single") for launch in (1, 2, 3)
    }
    assert len({r["run"] for r in lines(pytester)}) == 1  # the resumed run's records carry the run they continue
    again = ablate(pytester, "-k", "nextn-single")  # a new run, not resumed: its one launch replaces the three
    again.assert_outcomes(passed=1, deselected=3)
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    single = report.split("## Single query")[1].split("##")[0]
    nextn = next(line for line in single.splitlines() if line.startswith("| yes") and line.split("|")[-2].strip())
    assert "(3)" not in nextn and "[" not in nextn


def test_a_bad_launch_count_on_the_command_line_is_one_usage_error(pytester: pytest.Pytester) -> None:
    result = ablate(pytester, "--ablate-launches", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ablate-launches: expected a whole number of launches, 1 or more, got '0'"])


def test_the_plan_counts_the_launches(pytester: pytest.Pytester) -> None:
    result = ablate(pytester, "--ablate-plan", "--ablate-launches", "3")
    result.stdout.fnmatch_lines(["2 rows, 4 cases (0 expected to fail); 6 launches, interleaved across rows; *"])


NOISY = standin_matrix(
    """
    launches: 3
    features:
      harmless: {on: {attention-backend: triton}}
      slow: {on: {attention-backend: flex_attention}}
    rows:
      - []
      - [harmless]
      - {features: [slow], env: {STANDIN: "tok_rate=350,speed_sigma=0.05,speed_seed=3"}}
    workloads:
      single: {kind: single, prompt: "q", max_tokens: 40}
    """,
    env="tok_rate=500,speed_sigma=0.05,speed_seed=3",
)


def test_a_harmless_flag_is_within_the_noise_and_a_30_percent_slower_row_is_slower(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each launch of the stand-in draws its own speed (lognormal, 5 %): A/A and A/B on launch noise."""
    monkeypatch.setenv("STANDIN_LAUNCHES", str(pytester.path / "launches"))
    pytester.makefile(".yaml", m=NOISY)
    pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider").assert_outcomes(passed=9)
    assert len((pytester.path / "launches").read_text()) == 9  # every launch drew its own speed
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    bought = report.split("## What each feature bought")[1].split("##")[0]
    harmless = next(line for line in bought.splitlines() if line.startswith("| harmless"))
    slow = next(line for line in bought.splitlines() if line.startswith("| slow"))
    assert "| within the noise " in harmless and "| 3 / 3 " in harmless, bought
    ratio = float(slow.split("|")[4].split("x")[0])
    assert "| slower " in slow and 0.6 < ratio < 0.8, bought
