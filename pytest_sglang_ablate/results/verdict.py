"""How sure a difference is: two rows' ratio with its interval, and tonight against earlier nights (the gate).

The launch is the unit (docs/metrics.md, "Launches"): every function here takes one value per launch (a launch's
repetitions already collapsed to their median) and works on natural logs, where launch noise is close to
symmetric and a ratio is a difference. docs/metrics.md, "How sure a difference is", explains the choices and
benchmarks/bench_gate.py measures the gate's error rates on simulated nights.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FASTER, SLOWER, NOISE, UNKNOWN = "faster", "slower", "within the noise", "one launch: noise unknown"
REGRESSION, CLEAR, IMPROVED, SHORT = "regression", "within the noise", "faster", "too little history"
SCREEN_ALPHA, CONFIRM_ALPHA, POWER = 0.05, 0.01, 0.95  # flag, then decide on all launches (docs/metrics.md)


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=1024)
def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (bisection: exact to 1e-9, no SciPy needed)."""
    low, high = -1e4, 1e4
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def logs(values: Iterable[float]) -> list[float]:
    return [math.log(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]


def pooled_sd(groups: Iterable[Sequence[float]]) -> tuple[float, int] | None:
    """The spread of launches (log scale), pooled over groups of launches of the same flags: (sd, degrees of
    freedom), or None where no group has two launches."""
    squares, df = 0.0, 0
    for group in groups:
        values = logs(group)
        if len(values) >= 2:
            mean = statistics.fmean(values)
            squares += sum((v - mean) ** 2 for v in values)
            df += len(values) - 1
    return (math.sqrt(squares / df), df) if df else None


@dataclass(frozen=True)
class Ratio:
    """`on / off` from launch medians: the ratio of geometric means, a 95 % interval, and what it means."""

    value: float
    low: float | None
    high: float | None
    verdict: str
    launches: tuple[int, int]  # (on, off)
    sd: float | None  # the launch spread used (log scale)
    df: int

    def text(self) -> str:
        interval = f" [{self.low:.2f}-{self.high:.2f}]" if self.low is not None and self.high is not None else ""
        return f"{self.value:.2f}x{interval}"


def ratio(
    on: Sequence[float],
    off: Sequence[float],
    pooled: tuple[float, int] | None = None,
    higher_is_better: bool = True,
    confidence: float = 0.95,
) -> Ratio:
    """`on` against `off`, one value per launch each. The spread is `pooled` (all rows of this metric and level:
    more degrees of freedom than two rows give), else the two rows' own; with neither, the noise is unknown."""
    a, b = logs(off), logs(on)
    counts = (len(b), len(a))
    if not a or not b:
        return Ratio(math.nan, None, None, UNKNOWN, counts, None, 0)
    diff = statistics.fmean(b) - statistics.fmean(a)
    spread = pooled or pooled_sd([on, off])
    if spread is None:
        return Ratio(math.exp(diff), None, None, UNKNOWN, counts, None, 0)
    sd, df = spread
    half = t_quantile(1 - (1 - confidence) / 2, df) * sd * math.sqrt(1 / len(a) + 1 / len(b))
    low, high = math.exp(diff - half), math.exp(diff + half)
    up, down = low > 1, high < 1
    if not higher_is_better:
        up, down = down, up
    verdict = FASTER if up else SLOWER if down else NOISE
    return Ratio(math.exp(diff), low, high, verdict, counts, sd, df)


@dataclass(frozen=True)
class Noise:
    """What a history of nights says about one case's noise (log scale)."""

    nights: int  # K
    mean: float  # of the nights' mean logs
    night_sd: float  # of the nights' means: launch noise over their launches, plus the nights' own
    launch_sd: float | None  # launches of one night (pooled), None without two in a night
    launches_per_night: float

    def predictive_sd(self, launches: int) -> float:
        """The spread of tonight's mean over `launches` launches around the history's mean, were nothing changed:
        the nights' own variance (what launch noise does not explain), tonight's launch noise, and the history
        mean's own uncertainty."""
        launch_var = (self.launch_sd or 0.0) ** 2
        night_var = max(self.night_sd**2 - launch_var / self.launches_per_night, 0.0)
        tonight = night_var + launch_var / launches if self.launch_sd is not None else self.night_sd**2
        return math.sqrt(tonight + self.night_sd**2 / self.nights)


def noise(nights: Sequence[Sequence[float]]) -> Noise | None:
    """None with fewer than two nights that have a value."""
    means = [statistics.fmean(v) for v in (logs(n) for n in nights) if v]
    if len(means) < 2:
        return None
    spread = pooled_sd(nights)
    counts = [len(logs(n)) for n in nights if logs(n)]
    return Noise(
        len(means),
        statistics.fmean(means),
        statistics.stdev(means),
        spread[0] if spread else None,
        statistics.fmean(counts),
    )


def detectable(history: Noise, launches: int, alpha: float, power: float, threshold: float) -> float:
    """The smallest regression (a fraction: 0.12 = 12 % worse) that `launches` launches tonight flag with
    probability `power`, at false-alarm rate `alpha`: tonight must be beyond the noise and, as measured, worse
    than the gate's `threshold`."""
    df = history.nights - 1
    sd, margin = history.predictive_sd(launches), t_quantile(power, df)
    z = max((t_quantile(1 - alpha, df) + margin) * sd, -math.log1p(-threshold) + margin * sd)
    return 1 - math.exp(-z)


def gate_detectable(history: Noise, launches: int, confirm: int, threshold: float) -> float:
    """The smallest regression the two-stage gate catches with 95 % power: flagged on `launches` launches at
    SCREEN_ALPHA, then confirmed on `launches + confirm` at CONFIRM_ALPHA. Each stage is given the square root of
    the power, so that both pass together at least that often. Without relaunches (`confirm` 0) the one decision
    is at CONFIRM_ALPHA."""
    if not confirm:
        return detectable(history, launches, CONFIRM_ALPHA, POWER, threshold)
    each = math.sqrt(POWER)
    return max(
        detectable(history, launches, SCREEN_ALPHA, each, threshold),
        detectable(history, launches + confirm, CONFIRM_ALPHA, each, threshold),
    )


def launches_needed(history: Noise, size: float, confirm: int, threshold: float, most: int = 200) -> int | None:
    """The fewest launches tonight for which the gate catches a regression of `size` (a fraction); None where
    more launches cannot do it (the nights themselves differ too much: more history, or a quieter machine)."""
    for n in range(1, most + 1):
        if gate_detectable(history, n, confirm, threshold) <= size:
            return n
    return None


@dataclass(frozen=True)
class Judgement:
    verdict: str  # regression, within the noise, faster, too little history
    tonight: float  # the median of tonight's launches
    history_median: float  # of the nights' values (each night's geometric mean)
    history_low: float  # the lowest and highest night
    history_high: float
    change: float  # tonight's geometric mean against the history's, as a fraction (-0.08 = 8 % lower)
    p: float | None  # one-sided, for "worse"
    detectable: float | None  # at 95 % power and the decision's alpha, for this many launches tonight
    launches: int
    nights: int


def judge(
    tonight: Sequence[float],
    nights: Sequence[Sequence[float]],
    threshold: float = 0.05,
    alpha: float = 0.01,
    higher_is_better: bool = True,
    power: float = 0.95,
    min_nights: int = 3,
) -> Judgement:
    """Tonight's launches against the nights before: a regression only when tonight is worse by more than
    `threshold` and the difference is beyond the noise at `alpha` (a one-sided t prediction interval over the
    nights' means, Bencher's t_test, with tonight's own launch count accounted for)."""
    now = logs(tonight)
    means = [math.exp(statistics.fmean(v)) for v in (logs(n) for n in nights) if v]
    history = noise(nights)
    middle = statistics.median(means) if means else math.nan
    low, high = (min(means), max(means)) if means else (math.nan, math.nan)
    value = statistics.median(tonight) if tonight else math.nan
    if not now or history is None or history.nights < min_nights:
        change = math.exp(statistics.fmean(now)) / middle - 1 if now and means else math.nan
        return Judgement(SHORT, value, middle, low, high, change, None, None, len(now), len(means))
    diff = statistics.fmean(now) - history.mean
    worse = -diff if higher_is_better else diff
    sd = history.predictive_sd(len(now))
    p = 1 - t_cdf(worse / sd, history.nights - 1) if sd > 0 else (0.0 if worse > 0 else 1.0)
    # how much worse, as a fraction of the history's figure: a throughput lower, a latency higher
    size = 1 - math.exp(-worse) if higher_is_better else math.exp(worse) - 1
    better = 1 - t_cdf(-worse / sd, history.nights - 1) if sd > 0 else (0.0 if worse < 0 else 1.0)
    verdict = REGRESSION if p < alpha and size > threshold else IMPROVED if better < alpha else CLEAR
    return Judgement(
        verdict,
        value,
        middle,
        low,
        high,
        math.exp(diff) - 1,
        p,
        detectable(history, len(now), alpha, power, threshold),
        len(now),
        history.nights,
    )
