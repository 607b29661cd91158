"""report.md reproduces the seed page's tables from recorded results (rebuilt here from the seed's CSVs)."""

from __future__ import annotations

import csv
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from pytest_sglang_ablate.report import markdown as report
from pytest_sglang_ablate.results.record import CaseResult

SEED = Path(__file__).parent / "data" / "seed"
FEATURES = ["torch_compile", "cuda_graph", "radix_cache", "flashinfer_mla", "nextn", "ep_moe", "dp_attention"]
NOTES = {
    "3": ("graph_capture", "Capture cuda graph failed"),
    "4": ("oom", "CUDA out of memory"),
    "6": ("crash", "TypeError: object of type 'NoneType' has no len()"),
}


def seed_records() -> list[CaseResult]:
    """What results.jsonl would hold had the plugin run the seed page's ablation."""
    out = []
    for kind, name in (("single", "single_query.csv"), ("batch", "offline_batch.csv")):
        with open(SEED / name, newline="", encoding="utf-8") as f:
            for i, s in enumerate(csv.DictReader(f)):
                on = [x for x in FEATURES if s[x] == "1"]
                ran = s["runnable"] in ("yes", "no->yes")
                cls, message = NOTES.get(s["note"].split("->")[-1], (None, None)) if not ran else (None, None)
                figures = (
                    (
                        {"tps_at_1": float(s["tps_at_1"])}
                        if kind == "single"
                        else {
                            "throughput_tok_s": float(s["avg_throughput_p_plus_d"] or "nan"),
                            "per_request_decode_tok_s": float(s["per_req_decode_throughput"] or "nan"),
                            "effective_config": {"max_running_requests": int(s["max_running_req"])},
                        }
                    )
                    if ran
                    else None
                )
                out.append(
                    CaseResult(
                        matrix="r1",
                        case=f"{kind}-{i}",
                        row="+".join(on),
                        kind=kind,
                        workload=kind,
                        features=tuple(on),
                        concurrency=int(s["concurrency"]) if kind == "batch" and s["concurrency"] else None,
                        requests=int(s["total_req"]) if kind == "batch" and s["total_req"] else None,
                        outcome="passed" if ran else "error",
                        failure_class=cls,
                        message=message,
                        figures=figures,
                    )
                )
    return out


def test_report_reproduces_the_seed_pages_two_tables() -> None:
    text = report.render("r1", FEATURES, seed_records(), {"engine": "sglang 0.4.3.post2"}).text
    single = text.split("## Single query")[1].split("## Offline batch")[0]
    batch = text.split("## Offline batch")[1].split("Notes:")[0]
    lines = [ln for ln in single.splitlines() if ln.startswith("| yes") or ln.startswith("| no")]
    assert len(lines) == 16
    for tps in ("37.0", "33.6", "19.1", "6.5", "24.4", "23.6", "13.0", "41.0", "16.0", "15.8"):
        assert tps in single, tps
    assert sum(1 for ln in lines if ln.startswith("| no")) == 6
    for value in ("3909.04", "306.18", "5457.14", "2100.85", "732.22", "19.93", "4098.18", "406.29"):
        assert value in batch, value
    batch_rows = [ln for ln in batch.splitlines() if ln.startswith("| yes") or ln.startswith("| no")]
    assert len(batch_rows) == 28 and sum(1 for ln in batch_rows if ln.startswith("| no")) == 8
    notes = text.split("Notes:")[1].split("##")[0]
    assert "graph_capture: Capture cuda graph failed" in notes and "oom: CUDA out of memory" in notes
    assert "crash: TypeError" in notes


def test_attribution_compares_rows_that_differ_in_one_feature() -> None:
    text = report.render("r1", FEATURES, seed_records(), {}).text
    table = text.split("## What each feature bought")[1].split("##")[0]
    # flashinfer_mla on vs off with torch compile, graph and radix cache: 33.6 / 37.0
    assert "| flashinfer_mla | single: TPS@1" in table and "0.91x" in table


def test_baseline_comparison_lists_regressions_first() -> None:
    now = seed_records()
    before = [
        replace(r, figures={**r.figures, "tps_at_1": r.figures["tps_at_1"] * 1.25}) if r.case == "single-0" else r
        for r in now
        if r.figures is not None
    ]
    text = report.render("r1", FEATURES, now, {}, baseline=before).text
    table = text.split("## Against the baseline")[1]
    first = next(ln for ln in table.splitlines() if ln.startswith("| ") and "Case" not in ln and "---" not in ln)
    assert first.startswith("| single-0") and "regression" in first and "0.800" in first


def test_plots_render_from_the_seed_results(tmp_path: Path) -> None:
    from pytest_sglang_ablate.report import plots

    written = plots.render(seed_records(), tmp_path, "r1")
    assert [p.name for p in written] == ["throughput.png", "tradeoff.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000


def test_cross_checked_levels_show_both_clients_figures() -> None:
    records = [r for r in seed_records() if r.kind == "batch" and r.figures][:2]
    first = replace(
        records[0],
        figures={
            **(records[0].figures or {}),
            "tpot_ms_mean": 5.0,
            "cross_check": {"throughput_tok_s": 1234.5, "tpot_ms_mean": 4.5},
        },
    )
    table = report.batch_table([first, records[1]], report.Notes())
    header, _, row, other = table.splitlines()[:4]
    assert "bench_serving (p+d), tok/s" in header and "TPOT ours / bench_serving, ms" in header
    assert "| 1234.50 " in row and "5.00 / 4.50" in row
    assert "1234.50" not in other


def test_an_api_column_appears_only_where_a_figure_came_through_another_api() -> None:
    records = [r for r in seed_records() if r.kind == "single" and r.figures][:2]
    assert "API" not in report.single_table(records, FEATURES, report.Notes()).splitlines()[0]
    native = replace(records[0], figures={**(records[0].figures or {}), "api": "native"})
    header, _, row, other = report.single_table([native, records[1]], FEATURES, report.Notes()).splitlines()[:4]
    assert [c.strip() for c in header.split("|")][1:4] == ["Runnable", "TPS@1", "API"]
    assert "| native " in row and "native" not in other


def test_figures_measured_beside_other_rows_say_so() -> None:
    records = [r for r in seed_records() if r.kind == "single" and r.figures][:2]
    beside = replace(records[0], figures={**(records[0].figures or {}), "overlapped_by": {"b": 3.25, "a": 1.0}})
    notes = report.Notes()
    table = report.single_table([beside, records[1]], FEATURES, notes)
    assert "| yes [1] " in table.splitlines()[2] and "| yes " in table.splitlines()[3]
    assert notes.items == [
        "measured while other rows ran beside it: a (1 s), b (3.25 s); --ablate-exclusive runs one row at a time"
    ]


def test_attribution_gives_each_ratio_its_interval_over_launches_and_a_verdict() -> None:
    def row(features: tuple[str, ...], *launches: float) -> CaseResult:
        each = [{"launch": i, "outcome": "passed", "tps_at_1": v} for i, v in enumerate(launches, 1)]
        figures: dict[str, Any] = {"tps_at_1": statistics.median(launches)}
        if len(launches) > 1:
            figures["launches"] = each
        name = "+".join(features)
        return CaseResult("m", name, name, features, "single", "single", "passed", figures=figures)

    clear = report.attribution([row(("a",), 120, 118, 122), row((), 100, 99, 101)], ["a"])
    assert "| 1.20x [1.1" in clear and "| faster " in clear and "| 3 / 3 " in clear
    noisy = report.attribution([row(("a",), 103, 90, 115), row((), 100, 112, 92)], ["a"])
    assert "| within the noise " in noisy
    single = report.attribution([row(("a",), 120), row((), 100)], ["a"])
    assert "| 1.20x " in single and "one launch: noise unknown" in single
    # another row's launches give the noise to a pair measured once each
    other = [row(("b",), 50, 51, 49), row(("a", "b"), 60, 61, 59)]
    pooled = report.attribution([row(("a",), 120), row((), 100), *other], ["a"])
    assert "| (none) " in pooled and "one launch" not in pooled.split("(none)")[1].splitlines()[0]


def test_cases_are_reported_in_the_matrix_order_whichever_finished_first() -> None:
    records = seed_records()
    in_order = report.render("r1", FEATURES, records, {})
    finished = list(reversed(records))  # as results.jsonl holds them when the last rows finished first
    assert report.render("r1", FEATURES, finished, {}).text != in_order.text
    assert report.render("r1", FEATURES, finished, {}, order=[r.case for r in records]).text == in_order.text


def test_with_one_launch_a_row_the_historys_launch_spread_gives_the_interval() -> None:
    def row(features: tuple[str, ...], tps: float) -> CaseResult:
        name = "+".join(features)
        return CaseResult("m", name, name, features, "single", "single", "passed", figures={"tps_at_1": tps})

    records = [row(("a",), 120), row((), 100)]
    assert "one launch: noise unknown" in report.attribution(records, ["a"])
    earlier = report.attribution(records, ["a"], {("single", None): (0.02, 12)})
    assert "| 1.20x [1.1" in earlier and "| faster " in earlier


def test_an_slo_workload_gets_a_capacity_plot_with_its_targets(tmp_path: Path) -> None:
    from pytest_sglang_ablate.report import plots

    def row(features: tuple[str, ...], knee: float) -> CaseResult:
        probes = [
            {"load": c, "met": c <= knee, "ttft_ms_p99": 50 * (c / knee) ** 3, "tpot_ms_p99": 5.0}
            for c in (1, 2, 4, 8, 16)
        ]
        figures = {
            "slo": {"ttft_ms": {"p99": 50}, "tpot_ms": {"p99": 10}},
            "variable": "concurrency",
            "probes": probes,
            "capacity": knee,
        }
        name = "+".join(features) or "baseline"
        return CaseResult("m", f"{name}-capacity", name, features, "capacity", "slo", "passed", figures=figures)

    written = plots.render([row(("a",), 8), row((), 4)], tmp_path, "m")
    assert [p.name for p in written] == ["capacity-capacity.png"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and written[0].stat().st_size > 20_000


def test_advice_says_where_a_feature_helps_and_where_the_best_row_changes_beyond_the_noise() -> None:
    def row(features: tuple[str, ...], conc: int, *launches: float) -> CaseResult:
        each = [{"launch": i, "outcome": "passed", "throughput_tok_s": v} for i, v in enumerate(launches, 1)]
        figures = {"throughput_tok_s": statistics.median(launches), "launches": each}
        name = "+".join(features) or "baseline"
        return CaseResult(
            "m", f"{name}-b-c{conc}", name, features, "b", "batch", "passed", concurrency=conc, figures=figures
        )

    records = [
        row(("a",), 1, 120, 121, 119),
        row((), 1, 100, 101, 99),
        row(("a",), 64, 80, 81, 79),
        row((), 64, 100, 101, 99),
        row(("a",), 16, 100, 104, 96),
        row((), 16, 101, 97, 103),
    ]
    said = report.advice(records, ["a"])
    assert "- **a**: faster at b c1; within the noise at b c16; slower at b c64" in said
    assert "c16: baseline (within the noise of a)" in said or "c16: a (within the noise of baseline)" in said
    assert "the best row changes (beyond the noise) from a at c1 to baseline at c64" in said


def test_a_level_whose_repetitions_trend_is_marked_with_a_note() -> None:
    from pytest_sglang_ablate.measure.figures import trend

    rising = trend([800.0, 1000.0, 1010.0])  # the first 20 % below the others: a warm-up that missed this level
    steady = trend([1000.0, 980.0, 1010.0])
    assert rising is not None and rising["marked"] and rising["first_vs_rest"] < 0.9
    assert steady is not None and not steady["marked"] and trend([1000.0]) is None
    assert (trend([900.0, 960.0, 1020.0]) or {})["marked"]  # only rose, by 13 % from first to last
    records = [r for r in seed_records() if r.kind == "batch" and r.outcome == "passed"][:2]
    marked = replace(records[0], figures={**(records[0].figures or {}), "repetition_trend": rising})
    text = report.render("r1", FEATURES, [marked, records[1]], {}).text
    assert "| yes [1] " in text and "1. repetitions trend: the first was 20% below the others' median" in text
