from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_sglang_ablate.results.record import CaseResult
from pytest_sglang_ablate.results.store import RESULTS, Store

SECRET = "sk-very-secret-key"


def record(**fields: Any) -> CaseResult:
    """One finished case as the plugin stores it; every test builds its records here (one place to adapt)."""
    base: dict[str, Any] = {
        "matrix": "tiny",
        "case": "single[base]",
        "row": "base",
        "features": (),
        "workload": "single",
        "kind": "single",
        "outcome": "passed",
        "engine": "sglang",
        "engine_version_expected": "0.5.3",
    }
    return CaseResult(**{**base, **fields})


def lines_of(store: Store) -> list[str]:
    return store.path.read_text(encoding="utf-8").splitlines()


def test_each_append_writes_one_json_line(tmp_path: Path) -> None:
    store = Store(tmp_path / "ablate-results", set())
    store.append(record(case="a"))
    store.append(record(case="b"))
    lines = lines_of(store)
    assert len(lines) == 2
    assert [json.loads(line)["case"] for line in lines] == ["a", "b"]
    assert store.path == tmp_path / "ablate-results" / RESULTS


def test_append_creates_the_results_directory(tmp_path: Path) -> None:
    store = Store(tmp_path / "deep" / "ablate-results", set())
    store.append(record())
    assert store.path.is_file()


def test_a_second_store_on_the_same_directory_appends_rather_than_overwrites(tmp_path: Path) -> None:
    Store(tmp_path, set()).append(record(case="first run"))
    Store(tmp_path, set()).append(record(case="second run"))
    assert [r.case for r in Store(tmp_path, set()).load()] == ["first run", "second run"]


def test_load_gives_back_what_was_appended(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    written = record(
        case="tp8-batch-c64",
        features=("dp-attn", "compile"),
        kind="batch",
        concurrency=64,
        figures={"throughput_tok_s": 1234.5, "ttft": {"p50": 12.0}},
    )
    store.append(written)
    assert store.load() == [written]


def test_text_outside_ascii_is_stored_readable(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(message="réponse: ✓"))
    assert "réponse: ✓" in store.path.read_text(encoding="utf-8")
    assert store.load()[0].message == "réponse: ✓"


def test_values_json_cannot_represent_are_stored_as_text(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(figures={"log": tmp_path / "row.log"}))
    assert store.load()[0].figures == {"log": str(tmp_path / "row.log")}


def test_append_masks_secrets_anywhere_in_the_record(tmp_path: Path) -> None:
    store = Store(tmp_path, {SECRET})
    store.append(
        record(
            message=f"server refused --api-key {SECRET}",
            figures={"server_argv": ["--api-key", SECRET], "nested": {"cmd": f"Bearer {SECRET}"}},
        )
    )
    assert SECRET not in store.path.read_text(encoding="utf-8")
    loaded = store.load()[0]
    assert loaded.message == "server refused --api-key ***"
    assert loaded.figures is not None
    assert loaded.figures["server_argv"] == ["--api-key", "***"]


def test_load_of_a_directory_without_results_is_empty(tmp_path: Path) -> None:
    assert Store(tmp_path / "never-written", set()).load() == []


def test_a_last_line_cut_short_by_a_kill_is_skipped(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(case="a"))
    store.append(record(case="b"))
    whole = store.path.read_text(encoding="utf-8")
    store.path.write_text(whole + json.dumps(record(case="c").to_json())[:25], encoding="utf-8")  # as after kill -9
    assert [r.case for r in store.load()] == ["a", "b"]


def test_a_record_appended_after_a_cut_line_is_kept(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(case="a"))
    with open(store.path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record(case="b").to_json())[:25])  # pytest killed mid-write
    store.append(record(case="c"))  # the resumed run's first record
    assert [r.case for r in store.load()] == ["a", "c"]


def test_lines_that_are_not_records_are_skipped(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(case="a"))
    with open(store.path, "a", encoding="utf-8") as f:
        f.write('[1, 2]\n{"note": "written by hand"}\n\n')
    store.append(record(case="b"))
    assert [r.case for r in store.load()] == ["a", "b"]


def test_a_record_with_keys_this_version_does_not_know_still_loads(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    line = {**record(case="from-a-newer-version").to_json(), "new_field": 1}
    store.path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    assert [r.case for r in store.load()] == ["from-a-newer-version"]


def test_latest_keeps_the_last_record_of_each_case_of_the_matrix(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(case="a", outcome="failed"))
    store.append(record(case="b", outcome="passed"))
    store.append(record(case="a", outcome="passed"))
    store.append(record(case="c", matrix="other"))
    latest = {r.case: r.outcome for r in store.latest("tiny")}
    assert latest == {"a": "passed", "b": "passed"}


def test_done_lists_passed_and_xfailed_cases(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    for case, outcome in [("p", "passed"), ("x", "xfailed"), ("f", "failed"), ("e", "error"), ("s", "skipped")]:
        store.append(record(case=case, outcome=outcome))
    store.append(record(case="xp", outcome="xpassed"))
    assert store.done("tiny", "0.5.3") == {("p", 1), ("x", 1)}


def test_done_ignores_cases_of_another_matrix(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(case="ours", matrix="tiny"))
    store.append(record(case="theirs", matrix="deepseek"))
    assert store.done("tiny", "0.5.3") == {("ours", 1)}
    assert store.done("deepseek", "0.5.3") == {("theirs", 1)}


def test_done_ignores_cases_measured_with_another_engine_version(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(case="old", engine_version_expected="0.4.3.post2"))
    store.append(record(case="new", engine_version_expected="0.5.3"))
    assert store.done("tiny", "0.5.3") == {("new", 1)}
    assert store.done("tiny", None) == set()


def test_done_with_an_unknown_engine_version_matches_only_records_without_one(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(case="unknown", engine_version_expected=None))
    store.append(record(case="known", engine_version_expected="0.5.3"))
    assert store.done("tiny", None) == {("unknown", 1)}


def test_a_case_that_failed_then_passed_is_done(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(case="flaky", outcome="failed"))
    store.append(record(case="flaky", outcome="passed"))
    assert store.done("tiny", "0.5.3") == {("flaky", 1)}


def test_done_of_an_empty_store_is_empty(tmp_path: Path) -> None:
    assert Store(tmp_path, set()).done("tiny", "0.5.3") == set()


def test_mask_log_rewrites_the_log_with_secrets_masked(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "base.log"
    log.parent.mkdir()
    log.write_text(f"server_args=ServerArgs(api_key='{SECRET}', tp_size=8)\nready\n", encoding="utf-8")
    Store(tmp_path, {SECRET}).mask_log(log)
    assert log.read_text(encoding="utf-8") == "server_args=ServerArgs(api_key='***', tp_size=8)\nready\n"


def test_mask_log_of_a_missing_log_does_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "logs" / "never.log"
    Store(tmp_path, {SECRET}).mask_log(missing)
    assert not missing.exists()


def test_mask_log_without_secrets_leaves_the_log_as_it_is(tmp_path: Path) -> None:
    log = tmp_path / "row.log"
    log.write_bytes(b"raw \xff bytes\n")
    Store(tmp_path, set()).mask_log(log)
    assert log.read_bytes() == b"raw \xff bytes\n"


def test_the_logs_live_beside_the_results(tmp_path: Path) -> None:
    assert Store(tmp_path, set()).logs == tmp_path / "logs"


def test_latest_combines_the_launches_of_a_case_into_their_median_with_the_spread_between_them(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    for launch, tps, repeats in [(1, 100.0, [98.0, 100.0, 102.0]), (2, 120.0, [119.0, 121.0]), (3, 90.0, [90.0])]:
        figures = {"tps_at_1": tps, "tps_at_1_spread": {"values": repeats}, "engine_version": "0.5.3"}
        store.append(record(case="a", figures=figures, launch=launch, launches=3))
    (a,) = store.latest("tiny")
    assert (a.case, a.outcome, a.launch, a.launches) == ("a", "passed", None, 3)
    assert a.figures is not None and a.figures["tps_at_1"] == 100.0  # the median over launches
    assert [x["tps_at_1"] for x in a.figures["launches"]] == [100.0, 120.0, 90.0]
    between = a.figures["launch_spread"]["tps_at_1"]
    assert (between["min"], between["max"], between["n"]) == (90.0, 120.0, 3)
    assert between["between_sd"] > 0.1 > between["within_sd"] > 0.01  # launches differ more than repeats


def test_one_failed_launch_fails_the_combined_case_and_resume_redoes_only_that_launch(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    store.append(record(case="a", figures={"tps_at_1": 100.0}, launch=1, launches=2))
    store.append(record(case="a", outcome="error", failure_class="oom", launch=2, launches=2))
    (a,) = store.latest("tiny")
    assert (a.outcome, a.failure_class) == ("error", "oom")
    assert a.figures is not None and a.figures["tps_at_1"] == 100.0  # the launch that passed still counts
    assert store.done("tiny", "0.5.3") == {("a", 1)}


def test_a_later_run_of_a_case_replaces_an_earlier_runs_launches_instead_of_joining_them(tmp_path: Path) -> None:
    store = Store(tmp_path, set())
    for launch in (1, 2, 3):
        store.append(record(case="a", figures={"tps_at_1": 100.0}, launch=launch, launches=3, run="r1"))
    store.append(record(case="a", figures={"tps_at_1": 50.0}, launch=1, launches=1, run="r2"))
    (a,) = store.latest("tiny")
    assert a.figures is not None and a.figures["tps_at_1"] == 50.0 and a.launches == 1
    assert [r.launch for r in store.of_run("tiny", "r1")] == [1, 2, 3] and store.last_run("tiny") == "r2"
