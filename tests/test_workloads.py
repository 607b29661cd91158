"""The workloads through the plugin, against the stand-in server's own record of when it sent every token."""

from __future__ import annotations

import json
import sys
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
rows:
  - [radix_cache]
workloads:
  single: {{kind: single, prompt: "which character?", expect: "杚", max_tokens: 90}}
  batch: {{kind: batch, input_len: 24, output_len: 30, levels: [{{concurrency: 4, requests: 12}}, \
{{concurrency: 8, requests: 16}}]{{batch_extra}}}}
"""
# runs after the row's matrix cases (users' tests come last in a row) and keeps the server's own record
TRUTH = """
import json, requests

def test_truth(sglang_server):
    with open("truth.json", "w") as f:
        json.dump(requests.get(sglang_server.base_url + "/standin_stats").json(), f)
"""


def run(
    pytester: pytest.Pytester, behaviour: str, batch_extra: str = "", *args: str, matrix: str = MATRIX
) -> pytest.RunResult:
    pytester.makefile(".yaml", m=matrix.replace("{behaviour}", behaviour).replace("{batch_extra}", batch_extra))
    pytester.makepyfile(test_truth=TRUTH)
    return pytester.runpytest_subprocess(
        "m.yaml",
        "test_truth.py",
        "--ablate-matrix",
        "m.yaml",
        "-p",
        "no:cacheprovider",
        "--benchmark-json=bench.json",
        *args,
    )


def benchmarks(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    data = json.loads((pytester.path / "bench.json").read_text())
    return {b["param"]: b for b in data["benchmarks"]}


def truth(pytester: pytest.Pytester) -> dict[str, Any]:
    return json.loads((pytester.path / "truth.json").read_text())  # type: ignore[no-any-return]


def close(measured: float, true: float, within: float = 0.01, slack: float = 0.0) -> bool:
    return abs(measured - true) <= within * abs(true) + slack


# our TTFT starts when the request is sent, the server's when it has read it: ours also holds the loopback trip and
# the server's accept, 1-2 ms on an idle 2-core machine (seen as 2.2 % of an 80 ms TTFT in a clean-clone CI run)
TTFT_SLACK_MS = 5.0


@pytest.mark.quiet
def test_figures_match_the_servers_own_record(pytester: pytest.Pytester) -> None:
    run(pytester, "tok_rate=100,ttft_ms=80,answer=the answer is 杚").assert_outcomes(passed=4)
    bench, record = benchmarks(pytester), truth(pytester)
    measured = [r for r in record["requests"] if r["completion_tokens"] > 4]  # leave out the discarded bursts
    single = bench["radix_cache-single"]["extra_info"]
    s = measured[0]
    assert close(single["tps_at_1"], (s["completion_tokens"] - 1) / (s["last"] - s["first"]))
    assert close(single["ttft_ms"], 1000 * (s["first"] - s["arrival"]), within=0.02, slack=TTFT_SLACK_MS)
    assert single["completion_tokens"] == 90 and single["token_source"] == "server usage"
    assert close(
        single["engine_gen_throughput_tok_s"], single["tps_at_1"], within=0.05
    )  # the engine's log line, beside ours
    c8 = [r for r in measured if r["completion_tokens"] == 30][-16:]  # the c8 level: the last 16 batch requests
    duration = max(r["end"] for r in c8) - min(r["arrival"] for r in c8)
    batch = bench["radix_cache-batch-c8"]["extra_info"]
    assert close(batch["throughput_tok_s"], sum(r["prompt_tokens"] + r["completion_tokens"] for r in c8) / duration)
    true_per_request = sum(r["completion_tokens"] / (r["end"] - r["arrival"]) for r in c8) / len(c8)
    assert close(batch["per_request_decode_tok_s"], true_per_request)
    true_ttft_ms = 1000 * sum(r["first"] - r["arrival"] for r in c8) / len(c8)
    assert close(batch["ttft_ms_mean"], true_ttft_ms, within=0.02, slack=TTFT_SLACK_MS)
    assert (batch["input_tokens"], batch["output_tokens"], batch["completed"], batch["failed"]) == (
        16 * 24,
        16 * 30,
        16,
        0,
    )


def test_concurrency_really_holds_at_the_level(pytester: pytest.Pytester) -> None:
    run(pytester, "tok_rate=200", "", "-k", "c8 or truth").assert_outcomes(passed=2)
    assert truth(pytester)["max_in_flight"] == 8


def test_a_native_api_level_streams_from_generate_with_the_servers_token_counts(pytester: pytest.Pytester) -> None:
    run(pytester, "tok_rate=500", ", api: native", "-k", "c4").assert_outcomes(passed=1)
    extra = benchmarks(pytester)["radix_cache-batch-c4"]["extra_info"]
    assert (extra["api"], extra["completed"], extra["output_tokens"], extra["input_tokens"]) == (
        "native",
        12,
        12 * 30,
        12 * 24,
    )
    assert extra["token_source"] == "server usage" and extra["usage_missing"] == 0


def test_a_native_single_request_sends_the_raw_prompt_to_generate(pytester: pytest.Pytester) -> None:
    matrix = MATRIX.replace("max_tokens: 90}", "max_tokens: 90, api: native}")
    run(pytester, "tok_rate=200,answer=the answer is 杚", "", "-k", "single or truth", matrix=matrix).assert_outcomes(
        passed=2
    )
    single = benchmarks(pytester)["radix_cache-single"]["extra_info"]
    s = truth(pytester)["requests"][0]
    assert (single["api"], single["completion_tokens"], single["token_source"]) == ("native", 90, "server usage")
    assert s["path"] == "/generate" and s["prompt_tokens"] == 2  # the raw prompt, "which character?"
    assert close(single["tps_at_1"], (s["completion_tokens"] - 1) / (s["last"] - s["first"]))
    assert "杚" in single["answer_tail"]


def test_each_level_starts_with_a_flush_and_a_short_burst_at_its_own_concurrency(pytester: pytest.Pytester) -> None:
    run(pytester, "tok_rate=500", "", "-k", "batch or truth").assert_outcomes(passed=3)
    record = truth(pytester)
    sizes = [r["completion_tokens"] for r in record["requests"]]
    assert sizes == [4] * 4 + [30] * 12 + [4] * 8 + [30] * 16  # burst c4, level c4, burst c8, level c8
    assert record["flushes"] == 2


def test_warmup_runs_once_before_the_first_measured_level(pytester: pytest.Pytester) -> None:
    run(
        pytester,
        "tok_rate=500",
        ", warmup: {concurrency: 2, requests: 2}, cold_start_burst: false",
        "-k",
        "batch or truth",
    ).assert_outcomes(passed=3)
    assert [r["completion_tokens"] for r in truth(pytester)["requests"]][:3] == [30, 30, 30]
    assert len(truth(pytester)["requests"]) == 2 + 12 + 16


def test_benchmark_entries_carry_the_contract_keys_and_their_provenance(pytester: pytest.Pytester) -> None:
    run(pytester, "tok_rate=500,answer=杚", ", repeat: 2").assert_outcomes(passed=4)
    bench = benchmarks(pytester)
    batch = bench["radix_cache-batch-c4"]
    assert batch["stats"]["rounds"] == 2 and batch["group"] == "batch batch c4: s/token (input + output)"
    extra = batch["extra_info"]
    for key in (
        "row",
        "features",
        "workload",
        "concurrency",
        "requests",
        "throughput_tok_s",
        "per_request_decode_tok_s",
        "output_throughput_tok_s",
        "ttft_ms_p50",
        "itl_ms_p99",
        "tpot_ms_p90",
        "e2e_ms_p99",
        "input_tokens",
        "output_tokens",
        "token_source",
        "engine_version",
        "effective_config",
        "server_argv",
    ):
        assert key in extra, key
    assert extra["row"] == "radix_cache" and extra["features"] == ["radix_cache"] and extra["concurrency"] == 4
    assert (
        extra["throughput_tok_s_spread"]["min"] <= extra["throughput_tok_s"] <= extra["throughput_tok_s_spread"]["max"]
    )
    assert extra["engine_version"] == "0.0.0+standin" and extra["effective_config"]["disable_radix_cache"] is False
    assert (
        abs(batch["stats"]["ops"] - extra["throughput_tok_s"]) / extra["throughput_tok_s"] < 0.05
    )  # OPS reads tokens/s
    assert "tps_at_1" in bench["radix_cache-single"]["extra_info"]


def test_wrong_answer_fails_the_case_showing_the_answer(pytester: pytest.Pytester) -> None:
    result = run(pytester, "tok_rate=500,answer=xyz", "", "-k", "single")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*expected '杚' in the answer, got: 'xyzxyz*"])


def test_answer_in_the_reasoning_part_only_does_not_count(pytester: pytest.Pytester) -> None:
    result = run(pytester, "tok_rate=500,answer=杚,reasoning=90", "", "-k", "single")
    result.assert_outcomes(failed=1)


@pytest.mark.parametrize(
    ("behaviour", "extra", "message"),
    [
        ("fail_every=5", "", "*requests failed (allowed: 0%)*"),
        ("no_usage", "", "*token counts disagree: * requests without usage*"),
        ("prompt_offset=1", "", "*with a server prompt length other than the 24 tokens sent*"),
        ("tok_rate=500", ", client_cpu_limit: 0", "*the load generator used * of a CPU core (limit 0%)*"),
    ],
    ids=["failed-requests", "usage-missing", "prompt-mismatch", "client-saturated"],
)
def test_guards_fail_the_case_after_recording_its_numbers(
    pytester: pytest.Pytester, behaviour: str, extra: str, message: str
) -> None:
    result = run(pytester, behaviour, extra, "-k", "c4")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])


def test_server_dying_mid_level_is_reported_as_such(pytester: pytest.Pytester) -> None:
    result = run(pytester, "crash_on_request", "", "-k", "c4")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the server died during a workload (crash) [[]died_during_workload[]]*"])


def test_level_known_issue_xfails_when_the_server_dies_at_that_level(pytester: pytest.Pytester) -> None:
    matrix = (
        MATRIX
        + '\nknown_issues:\n  - {when: [radix_cache], min_concurrency: 8, workloads: [batch], reason: "dies at c8"}\n'
    )
    result = run(pytester, "crash_on_request", "", "-k", "c8", matrix=matrix)
    result.assert_outcomes(xfailed=1)


@pytest.mark.quiet
def test_several_client_processes_share_the_level_and_hold_its_concurrency(pytester: pytest.Pytester) -> None:
    run(
        # a level of about 1.2 s: the two client processes start a few ms apart, 1 % of a 0.3 s level
        pytester,
        "tok_rate=50",
        ", client_processes: 2, cold_start_burst: false",
        "-k",
        "c8 or truth",
    ).assert_outcomes(passed=2)
    record = truth(pytester)
    assert record["max_in_flight"] == 8 and len(record["requests"]) == 16
    extra = benchmarks(pytester)["radix_cache-batch-c8"]["extra_info"]
    assert extra["completed"] == 16 and extra["output_tokens"] == 16 * 30
    duration = max(r["end"] for r in record["requests"]) - min(r["arrival"] for r in record["requests"])
    assert close(extra["throughput_tok_s"], 16 * (24 + 30) / duration)


# Stands in for `python -m sglang.bench_serving`: reports the stand-in's own record of the level just measured
# (scaled by FAKE_BENCH_SCALE) in bench_serving's words, and keeps the command line it was given.
FAKE_BENCH_SERVING = """
import argparse, json, os, sys, requests
p = argparse.ArgumentParser()
for flag in ("--backend", "--host", "--port", "--model", "--tokenizer", "--dataset-name", "--random-input-len",
             "--random-output-len", "--random-range-ratio", "--num-prompts", "--max-concurrency"):
    p.add_argument(flag)
p.add_argument("--disable-tqdm", action="store_true")
a = p.parse_args()
json.dump(sys.argv[1:], open("bench_serving_argv.json", "w"))
stats = requests.get(f"http://{a.host}:{a.port}/standin_stats").json()
with open("bench_serving_calls.txt", "a") as f:
    print(len(stats["requests"]), file=f)  # how many requests the server had served when it was called
level = [r for r in stats["requests"] if r["completion_tokens"] == int(a.random_output_len)][-int(a.num_prompts):]
duration = max(r["end"] for r in level) - min(r["arrival"] for r in level)
tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in level)
tpot = sum((r["last"] - r["first"]) / (r["completion_tokens"] - 1) for r in level) / len(level)
scale = float(os.environ.get("FAKE_BENCH_SCALE", "1"))
print("============ Serving Benchmark Result ============")
print("{:<40} {:<10.2f}".format("Benchmark duration (s):", duration))
print("{:<40} {:<10.2f}".format("Total token throughput (tok/s):", scale * tokens / duration))
print("{:<40} {:<10.2f}".format("Mean TTFT (ms):", 1.0))
print("{:<40} {:<10.2f}".format("Mean TPOT (ms):", 1000 * tpot))
"""


@pytest.fixture
def fake_bench_serving(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `sglang.bench_serving` that reports the stand-in's own record of the level, importable by the run."""
    (pytester.path / "sglang").mkdir()
    (pytester.path / "sglang" / "__init__.py").write_text("")
    (pytester.path / "sglang" / "bench_serving.py").write_text(FAKE_BENCH_SERVING)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))


@pytest.mark.parametrize(
    ("scale", "outcome"), [("1", {"passed": 1}), ("1.5", {"failed": 1})], ids=["agrees", "disagrees"]
)
@pytest.mark.usefixtures("fake_bench_serving")
def test_a_cross_check_measures_the_level_again_with_sglangs_client_and_fails_when_they_disagree(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, scale: str, outcome: dict[str, int]
) -> None:
    monkeypatch.setenv("FAKE_BENCH_SCALE", scale)
    result = run(pytester, "tok_rate=200", ", cross_check: bench_serving", "-k", "c4")
    result.assert_outcomes(**outcome)
    argv = json.loads((pytester.path / "bench_serving_argv.json").read_text())
    settings = dict(zip(argv[::2], argv[1::2], strict=False))
    assert settings["--backend"] == "sglang-oai" and settings["--dataset-name"] == "random-ids"
    assert (settings["--num-prompts"], settings["--max-concurrency"], settings["--random-input-len"]) == (
        "12",
        "4",
        "24",
    )
    record = [
        json.loads(line) for line in (pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()
    ]
    checked = record[0]["figures"]["cross_check"]
    assert checked["client"] == "sglang.bench_serving"
    ratio = record[0]["figures"]["throughput_tok_s"] / checked["throughput_tok_s"]
    if scale == "1":
        assert abs(ratio - 1) < 0.05
    else:
        assert abs(ratio - 1 / 1.5) < 0.05
        result.stdout.fnmatch_lines(["*throughput_tok_s: ours *, sglang.bench_serving * on the same server (-3?.?%*"])


@pytest.mark.usefixtures("fake_bench_serving")
def test_with_repeat_the_two_clients_take_turns_and_their_medians_are_compared(pytester: pytest.Pytester) -> None:
    run(pytester, "tok_rate=200", ", cross_check: bench_serving, repeat: 3", "-k", "c4").assert_outcomes(passed=1)
    calls = [int(n) for n in (pytester.path / "bench_serving_calls.txt").read_text().split()]
    assert calls == [4 + 12, 2 * (4 + 12), 3 * (4 + 12)]  # after each of our runs (a c4 burst, then 12 requests)
    record = json.loads((pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()[0])
    checked = record["figures"]["cross_check"]
    assert checked["repeat"] == 3 and len(checked["runs"]) == 3
    assert checked["throughput_tok_s"] == sorted(r["throughput_tok_s"] for r in checked["runs"])[1]


def test_a_failed_cross_check_run_is_not_hidden_by_the_median_of_the_others() -> None:
    from pytest_sglang_ablate.measure import cross_check

    good = {"client": "c", "command": ["x"], "throughput_tok_s": 10.0, "tpot_ms_mean": 1.0}
    bad = {"client": "c", "command": ["x"], "error": "exit code 1"}
    assert cross_check.combine([good, bad, good]) is bad
    assert cross_check.differences({"throughput_tok_s": 10.0}, bad, 0.05)[0].endswith("exit code 1")


@pytest.mark.usefixtures("fake_bench_serving")
def test_a_level_may_allow_a_wider_disagreement_than_its_workload(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_BENCH_SCALE", "1.5")  # bench_serving reports 1.5x our throughput
    matrix = MATRIX.replace(
        "{concurrency: 4, requests: 12}", "{concurrency: 4, requests: 12, cross_check_tolerance: 0.5}"
    )
    run(pytester, "tok_rate=200", ", cross_check: bench_serving", "-k", "c4 or c8", matrix=matrix).assert_outcomes(
        passed=1, failed=1
    )
    outcomes = {
        json.loads(line)["case"]: json.loads(line)["outcome"]
        for line in (pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()
    }
    assert outcomes == {"radix_cache-batch-c4": "passed", "radix_cache-batch-c8": "failed"}


def test_a_finish_only_event_is_not_a_token_arrival(pytester: pytest.Pytester) -> None:
    # one event per token, then a finish event with empty text, usage and [DONE]: 30 arrivals for 30 tokens
    run(pytester, "tok_rate=200,finish_event,answer=杚", "", "-k", "c4 or single").assert_outcomes(passed=2)
    extra = benchmarks(pytester)["radix_cache-batch-c4"]["extra_info"]
    assert extra["output_tokens"] == extra["token_arrivals"] == 12 * 30
    assert extra["itl_ms_p50"] > 1  # no spurious near-zero gaps


def test_more_arrivals_than_usage_tokens_fails_the_level_as_a_client_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "tok_rate=500,extra_event", "", "-k", "c4")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*12 of 12 requests had more token arrivals than their usage counts*"])


@pytest.mark.quiet
def test_the_seed_pages_openai_client_measures_what_the_server_recorded(pytester: pytest.Pytester) -> None:
    run(pytester, "tok_rate=100", ", client: openai", "-k", "c4 or truth").assert_outcomes(passed=2)
    extra = benchmarks(pytester)["radix_cache-batch-c4"]["extra_info"]
    c4 = [r for r in truth(pytester)["requests"] if r["completion_tokens"] == 30][:12]  # the burst asks for 4
    duration = max(r["end"] for r in c4) - min(r["arrival"] for r in c4)
    true = sum(r["prompt_tokens"] + r["completion_tokens"] for r in c4) / duration
    assert extra["client"] == "openai" and extra["completed"] == 12 and extra["output_tokens"] == 12 * 30
    assert close(extra["throughput_tok_s"], true, within=0.05)
    assert close(extra["tpot_ms_mean"], 1000 / 100, within=0.05)
    assert "| openai " in (pytester.path / "ablate-results" / "report.md").read_text()  # the report names it
