"""The capacity search (measure/slo.py): the largest load meeting every latency target, within one resolution step
of the true capacity, every probe kept, and "no load meets it" as an answer."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from matrices import standin_matrix

from pytest_sglang_ablate.measure.slo import Probe, misses, search

TARGETS = {"ttft_ms": {"p99": 2000.0}, "tpot_ms": {"p99": 100.0}}


def server(capacity: float) -> tuple[list[float], Callable[[float], Probe]]:
    """A server whose p99 TTFT meets the 2 s target up to `capacity` and grows past it as a queue builds."""
    seen: list[float] = []

    def probe(load: float) -> Probe:
        seen.append(load)
        ttft = 500.0 + 1500.0 * (load / capacity) ** 8 if capacity > 0 else 1e9
        figures = {"ttft_ms_p99": ttft, "tpot_ms_p99": 20.0}
        return Probe(load, tuple(misses(figures, TARGETS)), figures)

    return seen, probe


@pytest.mark.parametrize("capacity", [1.0, 3.7, 17.2, 100.0, 233.0])
def test_the_answer_is_within_one_resolution_step_of_the_true_capacity(capacity: float) -> None:
    seen, probe = server(capacity)  # 500 + 1500 x (load / capacity)^8 <= 2000 exactly up to `capacity`
    result = search(probe, 1.0, 512.0, resolution=0.1)
    assert result.load is not None and result.bounded
    assert capacity / 1.1 <= result.load <= capacity, (result.load, capacity)
    assert [p.load for p in result.probes] == seen and len(seen) <= 16  # every probe kept, few of them


def test_concurrency_is_searched_in_whole_numbers() -> None:
    _, probe = server(41.5)
    result = search(probe, 1, 256, resolution=0.02, integer=True)
    assert result.load == 41 and all(p.load == int(p.load) for p in result.probes)


def test_a_target_no_load_meets_is_an_answer_and_the_top_of_the_range_says_at_least() -> None:
    _, probe = server(0.5)  # even one request a second misses
    none = search(probe, 1.0, 64.0)
    assert none.load is None and len(none.probes) == 1 and none.said().startswith("no load meets it")
    _, probe = server(1000.0)
    top = search(probe, 1.0, 64.0)
    assert top.load == 64.0 and not top.bounded and top.said() == "at least 64 (the top of the range met the targets)"


def test_a_missing_figure_misses_its_target() -> None:
    assert misses({"ttft_ms_p99": 10.0}, TARGETS) == ["tpot_ms p99 missing > 100"]
    assert misses({"ttft_ms_p99": 10.0, "tpot_ms_p99": 10.0}, TARGETS) == []
    with pytest.raises(ValueError, match="0 < low <= high"):
        search(lambda load: Probe(load, ()), 4.0, 2.0)


def test_on_a_server_that_runs_8_at_once_the_concurrency_capacity_is_8(pytester: pytest.Pytester) -> None:
    """The stand-in generates for 8 requests at a time (100 ms each) and queues the rest: past 8 in flight the
    queued requests' first token comes a whole request later, over the 50 ms target."""
    pytester.makefile(
        ".yaml",
        m=standin_matrix(
            """
            features:
              radix_cache: {off: {disable-radix-cache: true}}
            rows:
              - [radix_cache]
            workloads:
              capacity:
                kind: slo
                input_len: 8
                output_len: 10
                slo: {ttft_ms: {p99: 50}}
                variable: concurrency
                range: [1, 64]
                requests: 24
            """,
            env="tok_rate=100,max_running=8",
        ),
    )
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    record = json.loads((pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()[0])
    figures = record["figures"]
    assert record["case"] == "radix_cache-capacity" and figures["capacity"] == 8 and figures["bounded"]
    loads = [p["load"] for p in figures["probes"]]
    assert loads[:5] == [1, 2, 4, 8, 16] and all(p["met"] == (p["load"] <= 8) for p in figures["probes"])
    assert [p["burst"] for p in figures["probes"]] == loads  # each probe after a discarded burst at its own load
    assert figures["goodput_req_s"] > 0
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert "## Capacity at the SLO" in report and "| 8 in flight (best) " in report
