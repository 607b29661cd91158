"""The capacity search (measure/slo.py): the largest load meeting every latency target, within one resolution step
of the true capacity, every probe kept, and "no load meets it" as an answer."""

from __future__ import annotations

from collections.abc import Callable

import pytest

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
