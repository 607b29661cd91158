"""Results that compare the right way, survive a crash, resume, and never contain a secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.standin
STANDIN = Path(__file__).parent / "standin_server.py"
MATRIX = f"""
model: tiny
launch: [{sys.executable}, {STANDIN}]
server: {{shutdown_grace: 1, startup_timeout: 20}}
env: {{STANDIN: "{{behaviour}}"}}
features:
  radix_cache: {{off: {{disable-radix-cache: true}}}}
  nextn: {{on: {{speculative-algorithm: NEXTN}}}}
rows:
  - [radix_cache]
  - [radix_cache, nextn]
  - [nextn]
workloads:
  single: {{kind: single, prompt: "q", max_tokens: 40}}
  batch: {{kind: batch, input_len: 8, output_len: 8, levels: [{{concurrency: 2, requests: 4}}]}}
"""


def write_matrix(pytester: pytest.Pytester, behaviour: str, extra: str = "") -> None:
    pytester.makefile(".yaml", m=MATRIX.replace("{behaviour}", behaviour) + extra)


def ablate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", *args)


def records(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    path = pytester.path / "ablate-results" / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_compare_fail_trips_on_a_10_percent_throughput_drop_and_not_on_a_gain(pytester: pytest.Pytester) -> None:
    write_matrix(pytester, "tok_rate=200")
    ablate(pytester, "-k", "single", "--benchmark-save=base", "--benchmark-storage=file://bench").assert_outcomes(
        passed=3
    )
    gate = [
        "-k",
        "single",
        "--benchmark-storage=file://bench",
        "--benchmark-compare=0001",
        "--benchmark-compare-fail=mean:5%",
    ]
    write_matrix(pytester, "tok_rate=180")  # 10 % fewer tokens per second
    slower = ablate(pytester, *gate)
    assert slower.ret == 1
    slower.stderr.fnmatch_lines(["*test_single[[]radix_cache-single[]]*PercentageRegressionCheck*"])
    write_matrix(pytester, "tok_rate=220")  # 10 % more
    assert ablate(pytester, *gate).ret == 0


def test_results_are_kept_per_case_with_failures_and_their_class(pytester: pytest.Pytester) -> None:
    write_matrix(
        pytester, "tok_rate=500", '\nknown_issues:\n  - {when: [radix_cache, nextn], reason: "no spec with radix"}\n'
    )
    ablate(pytester).assert_outcomes(passed=4, failed=2)  # the known issue's row runs: strict XPASS fails it
    by_case = {r["case"]: r for r in records(pytester)}
    assert len(by_case) == 6
    ok = by_case["radix_cache-batch-c2"]
    assert (
        ok["outcome"] == "passed"
        and ok["figures"]["throughput_tok_s"] > 0
        and ok["figures"]["engine_version"] == "0.0.0+standin"
    )
    assert by_case["radix_cache+nextn-single"]["outcome"] == "failed"
    assert "XPASS(strict)" in by_case["radix_cache+nextn-single"]["message"]


def test_launch_failure_is_recorded_with_its_class(pytester: pytest.Pytester) -> None:
    write_matrix(pytester, "exit=oom_kv")
    result = ablate(pytester, "-k", "nextn and not radix_cache", "--benchmark-json=bench.json")
    result.assert_outcomes(errors=2)
    assert {(r["case"], r["outcome"], r["failure_class"]) for r in records(pytester)} == {
        ("nextn-single", "error", "oom"),
        ("nextn-batch-c2", "error", "oom"),
    }
    # nothing passed: the benchmark file is still pytest-benchmark's JSON, with no entries, and the run says so
    bench = json.loads((pytester.path / "bench.json").read_text())
    assert bench["benchmarks"] == [] and bench["machine_info"]["ablate"]["engine"] == "sglang"
    result.stdout.fnmatch_lines(["no case passed: bench.json has an empty benchmarks list"])


def test_an_sglang_crash_is_recorded_with_its_phase_and_evidence_not_its_last_log_line(
    pytester: pytest.Pytester,
) -> None:
    write_matrix(pytester, "exit=capture_stub")
    ablate(pytester, "-k", "nextn-single and not radix_cache").assert_outcomes(errors=1)
    (record,) = records(pytester)
    assert (record["failure_class"], record["failure_phase"]) == ("crash", "cuda graph capture")
    assert record["message"].startswith("row 'nextn': the server exited during startup [crash]; evidence: Exception:")
    assert "kill_process_tree" not in record["message"] and "E   " not in record["message"]
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert "crash during cuda graph capture: row 'nextn'" in report


def test_results_survive_kill_9_and_resume_measures_only_what_is_missing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_matrix(pytester, "tok_rate=500")
    pytester.makepyfile(
        test_hold="""
import os, time

def test_hold(sglang_server):
    if sglang_server.row.id == "radix_cache+nextn":
        with open("ready.tmp", "w") as f:
            f.write("1")
        os.replace("ready.tmp", "ready")
        time.sleep(120)  # a long case, killed by the test
"""
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "m.yaml",
            "test_hold.py",
            "--ablate-matrix",
            "m.yaml",
            "-p",
            "no:cacheprovider",
        ],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (pytester.path / "ready").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (pytester.path / "ready").exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = {r["case"] for r in records(pytester)}
    assert {
        "radix_cache-single",
        "radix_cache-batch-c2",
        "radix_cache+nextn-single",
        "radix_cache+nextn-batch-c2",
    } <= kept
    monkeypatch.setenv("STANDIN_PIDS", str(pytester.path / "pids"))
    resumed = ablate(pytester, "--ablate-resume")
    resumed.assert_outcomes(passed=2, deselected=4)
    assert len((pytester.path / "pids").read_text().split()) == 1  # one launch: only the row with missing cases
    assert sum(1 for r in records(pytester) if r["case"] == "nextn-single") == 1


def test_no_secret_is_written_anywhere(pytester: pytest.Pytester) -> None:
    secret_env, api_key = "hf_VerySecretValue42", "sk-ablate-KEY-123456"
    write_matrix(pytester, "tok_rate=500", f'\napi_key: "{api_key}"\n')
    text = (
        (pytester.path / "m.yaml")
        .read_text()
        .replace('env: {STANDIN: "tok_rate=500"}', f'env: {{STANDIN: "tok_rate=500", HF_TOKEN: "{secret_env}"}}')
    )
    (pytester.path / "m.yaml").write_text(text)
    result = ablate(pytester, "-k", "radix_cache and not nextn", "--benchmark-json=bench.json")
    result.assert_outcomes(passed=2)  # the server demanded the key and the load generator sent it
    saved = [pytester.path / "bench.json", *(pytester.path / "ablate-results").rglob("*")]
    for path in [p for p in saved if p.is_file()]:
        content = path.read_text(errors="replace")
        assert secret_env not in content and api_key not in content, path
    assert "***" in (pytester.path / "ablate-results" / "logs" / "radix_cache.log").read_text()
    assert secret_env not in result.stdout.str() and api_key not in result.stdout.str()


def test_secrets_are_masked_in_the_plan_and_in_failure_messages(pytester: pytest.Pytester) -> None:
    api_key = "sk-ablate-KEY-123456"
    write_matrix(pytester, "exit=plain", f'\napi_key: "{api_key}"\nsecrets: [MY_PASS_PHRASE]\n')
    text = (
        (pytester.path / "m.yaml")
        .read_text()
        .replace('env: {STANDIN: "exit=plain"}', 'env: {STANDIN: "exit=plain", MY_PASS_PHRASE: "open-sesame-99"}')
    )
    (pytester.path / "m.yaml").write_text(text)
    plan = ablate(pytester, "--ablate-plan")
    assert "open-sesame-99" not in plan.stdout.str() and "MY_PASS_PHRASE=***" in plan.stdout.str()
    failed = ablate(pytester, "-k", "nextn and not radix_cache")
    failed.assert_outcomes(errors=2)
    out = failed.stdout.str()
    assert "--- last 40 lines of the server log ---" in out and api_key not in out and "open-sesame-99" not in out


def test_report_md_is_written_at_the_end_with_the_tables(pytester: pytest.Pytester) -> None:
    write_matrix(pytester, "tok_rate=500")
    result = ablate(pytester, "-k", "not nextn")
    result.assert_outcomes(passed=2)
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert "## Single query" in report and "## Offline batch" in report and "| yes " in report
    result.stdout.fnmatch_lines(["*ablation results: m*", "*full report: *report.md*"])


def test_under_xdist_rows_stay_on_one_worker_and_results_reach_the_controller(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_matrix(pytester, "tok_rate=500")
    monkeypatch.setenv("STANDIN_PIDS", str(pytester.path / "pids"))
    result = ablate(pytester, "-n", "2", "--dist", "loadgroup", "--benchmark-json=bench.json")
    result.assert_outcomes(passed=6)
    assert len((pytester.path / "pids").read_text().split()) == 3  # one launch per row
    names = {b["fullname"] for b in json.loads((pytester.path / "bench.json").read_text())["benchmarks"]}
    assert "m.yaml::test_batch[radix_cache+nextn-batch-c2]" in names and len(names) == 6  # no "@group" suffix
    assert len(records(pytester)) == 6
    leases = pytester.path / "ablate-results" / ".leases"  # the run's lock files went with it (controller and workers)
    assert not leases.exists() or not list(leases.iterdir())


WRITERS = {
    "plots": "pytest_sglang_ablate.report.plots:render",
    "report.md": "pytest_sglang_ablate.report.markdown:write",
    "the empty --benchmark-json": "pytest_sglang_ablate.adapter.finish:write_empty_benchmark_json",
    "the terminal summary": "pytest_sglang_ablate.adapter.finish:summary_lines",
}


@pytest.mark.parametrize("writer", WRITERS)
def test_a_writer_that_raises_at_the_end_loses_nothing_the_others_write(pytester: pytest.Pytester, writer: str) -> None:
    """pytest-benchmark 5.3 made the empty-JSON writer raise, and report.md was never written."""
    module, name = WRITERS[writer].split(":")
    pytester.makeconftest(
        f"""
        import {module} as module

        def made_to_fail(*args, **kwargs):
            raise RuntimeError("made to fail")

        module.{name} = made_to_fail
        """
    )
    write_matrix(pytester, "tok_rate=500")
    result = ablate(pytester, "--benchmark-json=bench.json")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR  # the run says something failed
    result.assert_outcomes(passed=6)  # and what: the cases passed, the writer did not
    result.stdout.fnmatch_lines([f"*ablate: could not write {writer}: RuntimeError: made to fail*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert [r["outcome"] for r in records(pytester)] == ["passed"] * 6  # results.jsonl, every line valid
    assert len(json.loads((pytester.path / "bench.json").read_text())["benchmarks"]) == 6
    report = pytester.path / "ablate-results" / "report.md"
    assert report.exists() == (writer != "report.md")
    if writer == "plots":
        assert "## Single query" in report.read_text() and "## Plots" not in report.read_text()
    shown = "full report: " in result.stdout.str()
    assert shown == (writer not in ("report.md", "the terminal summary"))
