"""Earlier nights as the gate reads them (results/history.py): flags compared without host and ports, nights that
ran a row with other flags left out, a changed engine version named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_sglang_ablate.results.history import FLAGS_CHANGED, Gate, Night, flags, launch_values
from pytest_sglang_ablate.results.record import CaseResult

ARGV = ["python3", "-m", "sglang.launch_server", "--model-path", "m", "--host", "127.0.0.1", "--port", "30016"]


def record(tps: float, launch: int = 1, argv: list[str] = ARGV, version: str = "0.5.15", **more: Any) -> CaseResult:
    figures = {"tps_at_1": tps, "server_argv": argv, "engine_version": version}
    return CaseResult(
        "m",
        "a-single",
        "a",
        ("a",),
        "single",
        "single",
        more.pop("outcome", "passed"),
        figures=figures,
        launch=launch,
        launches=2,
    )


def test_flags_leave_out_host_and_ports_only() -> None:
    other_port = [*ARGV[:-1], "40016"]
    assert flags(record(1, argv=ARGV)) == flags(record(1, argv=other_port))
    assert flags(record(1, argv=[*ARGV, "--disable-cuda-graph"])) != flags(record(1, argv=ARGV))
    assert "--port" not in flags(record(1)) and "--model-path" in flags(record(1))


def test_launch_values_take_each_launchs_last_record_that_passed() -> None:
    records = [record(90, 1), record(100, 1), record(105, 2), record(0, 3, outcome="failed")]
    assert launch_values(records) == [100, 105]


def night(*values: float, argv: list[str] = ARGV, version: str = "0.5.15") -> Night:
    return Night(Path("n"), {"a-single": [record(v, i + 1, argv, version) for i, v in enumerate(values)]})


def test_a_row_whose_flags_changed_is_not_compared_and_a_new_engine_version_is_named() -> None:
    tonight = [record(100, 1), record(101, 2)]
    changed = Gate([night(100, 99, argv=[*ARGV, "--disable-cuda-graph"])] * 4, 0.05, 2)
    assert changed.judge("a-single", "single", tonight, 2).verdict == FLAGS_CHANGED
    older = Gate([night(100, 99, version="0.5.14")] * 2 + [night(101, 100)] * 2, 0.05, 2)
    judged = older.judge("a-single", "single", tonight, 2)
    assert judged.nights_compared == 4 and judged.engine_versions == ("0.5.14",)
    assert judged.to_json()["history_engine_versions"] == ["0.5.14"]


def test_a_case_relaunched_only_because_another_case_of_its_row_was_flagged_keeps_its_first_verdict() -> None:
    history = Gate([night(100, 101), night(99, 100), night(101, 100), night(100, 99)], 0.05, 2)
    tonight = [record(100, 1), record(100.5, 2), record(99.5, 3), record(100, 4)]  # 3 and 4: the row's relaunches
    judged = history.judge("a-single", "single", tonight, 2)
    assert judged.verdict == "within the noise" and judged.relaunched == 2


def test_gate_json_has_no_nan_and_a_broken_history_line_is_skipped(tmp_path: Path) -> None:
    import json

    from pytest_sglang_ablate.results.history import load

    tonight = [record(100, 1), record(101, 2)]
    judged = Gate([], 0.05, 2).judge("a-single", "single", tonight, 2)
    assert judged.verdict == "too little history"
    json.dumps(judged.to_json(), allow_nan=False)  # raises on NaN
    path = tmp_path / "results.jsonl"
    path.write_text('[1, 2]\nnull\n{"matrix": "m", "case": \n' + json.dumps(record(100).to_json()) + "\n")
    (only,) = load([tmp_path], "m")
    assert only.values("a-single") == [100]
