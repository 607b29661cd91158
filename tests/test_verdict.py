"""How sure a difference is (results/verdict.py): t quantiles, row ratios with intervals, and the nightly gate."""

from __future__ import annotations

import random

import pytest

from pytest_sglang_ablate.results import verdict


@pytest.mark.parametrize(
    ("p", "df", "table"),
    [(0.975, 1, 12.706), (0.975, 10, 2.228), (0.99, 6, 3.143), (0.95, 6, 1.943), (0.025, 3, -3.182)],
)
def test_t_quantiles_match_the_printed_tables(p: float, df: int, table: float) -> None:
    assert verdict.t_quantile(p, df) == pytest.approx(table, abs=5e-4)


def test_a_clear_difference_between_launches_is_faster_with_an_interval_that_excludes_one() -> None:
    r = verdict.ratio([120, 118, 122], [100, 101, 99])
    assert r.verdict == verdict.FASTER and r.low is not None and r.high is not None
    assert 1 < r.low < 1.2 < r.high and r.launches == (3, 3) and r.df == 4
    assert r.text().startswith("1.20x [1.1")
    assert verdict.ratio([100, 101, 99], [120, 118, 122]).verdict == verdict.SLOWER


def test_a_difference_inside_the_launch_noise_is_within_the_noise() -> None:
    r = verdict.ratio([103, 90, 115], [100, 112, 92])
    assert r.verdict == verdict.NOISE and r.low is not None and r.high is not None and r.low < 1 < r.high


def test_one_launch_each_has_no_noise_to_go_on_unless_other_rows_give_it() -> None:
    assert verdict.ratio([120], [100]).verdict == verdict.UNKNOWN
    pooled = verdict.pooled_sd([[100, 101, 99], [50, 51, 49]])
    assert pooled is not None and pooled[1] == 4
    assert verdict.ratio([120], [100], pooled).verdict == verdict.FASTER


def test_for_latencies_lower_is_better() -> None:
    assert verdict.ratio([80, 81, 79], [100, 101, 99], higher_is_better=False).verdict == verdict.FASTER


def nights(rng: random.Random, sigma: float, count: int = 7, per_night: int = 3) -> list[list[float]]:
    return [[100 * rng.lognormvariate(0, sigma) for _ in range(per_night)] for _ in range(count)]


def test_the_gate_flags_a_30_percent_drop_and_not_the_same_figure() -> None:
    rng = random.Random(3)
    history = nights(rng, 0.03)
    drop = verdict.judge([70, 71, 69], history)
    assert drop.verdict == verdict.REGRESSION and drop.change == pytest.approx(-0.3, abs=0.05)
    assert drop.p is not None and drop.p < 0.01 and drop.nights == 7 and drop.launches == 3
    same = verdict.judge([100, 101, 99], history)
    assert same.verdict == verdict.CLEAR
    assert verdict.judge([130, 131, 129], history).verdict == verdict.IMPROVED


def test_a_drop_beyond_the_noise_but_under_the_gate_is_not_a_regression() -> None:
    history = [[100.0, 100.2, 99.8]] * 4 + [[100.1, 99.9, 100.0]] * 3  # hardly any noise
    small = verdict.judge([97, 97.1, 96.9], history, threshold=0.05)
    assert small.p is not None and small.p < 0.01 and small.verdict == verdict.CLEAR


def test_too_few_nights_are_reported_but_not_judged() -> None:
    result = verdict.judge([70, 71], [[100, 101], [99, 100]])
    assert (
        result.verdict == verdict.SHORT
        and result.detectable is None
        and result.history_median == pytest.approx(100, abs=1)
    )


def test_the_detectable_size_shrinks_with_launches_and_says_when_only_more_history_helps() -> None:
    quiet = verdict.noise(nights(random.Random(5), 0.03))
    assert quiet is not None
    sizes = [verdict.detectable(quiet, n, 0.01, 0.95, 0.05) for n in (1, 3, 10)]
    assert sizes[0] > sizes[1] > sizes[2] >= 0.05
    needed = verdict.launches_needed(quiet, 0.10, 2, 0.05)
    assert needed is not None and verdict.gate_detectable(quiet, needed, 2, 0.05) <= 0.10
    assert needed == 1 or verdict.gate_detectable(quiet, needed - 1, 2, 0.05) > 0.10
    drifting = verdict.noise([[100.0, 100.0], [130.0, 130.0], [80.0, 80.0], [120.0, 120.0]])  # nights differ
    assert drifting is not None and verdict.launches_needed(drifting, 0.10, 2, 0.05) is None


def test_an_improvement_over_a_history_without_spread_is_still_an_improvement() -> None:
    flat = [[100.0, 100.0]] * 4
    assert verdict.judge([120.0, 120.0], flat).verdict == verdict.IMPROVED
    assert verdict.judge([80.0, 80.0], flat).verdict == verdict.REGRESSION


def test_a_latency_ten_percent_higher_is_ten_percent_worse() -> None:
    history = [[10.0, 10.01, 9.99]] * 5
    slower = verdict.judge([11.0, 11.0, 11.0], history, threshold=0.095, higher_is_better=False)
    assert slower.verdict == verdict.REGRESSION  # 10 % worse clears a 9.5 % gate (1 - 1/1.1 would be 9.1 %)
