"""Capacity under a latency target: the largest load (a rate or a concurrency) whose probe meets every target.

The search grows the load geometrically from the low end of its range until a probe misses a target (or the
range ends), then bisects between the last load that met the targets and the first that did not, until the two
are within the resolution of each other (0.1: 10 %). Every probe is kept: they are the latency-against-load
curve. A target that even the lowest load misses is an answer ("no load meets it"), not an error.

Targets are percentiles of the batch figures (docs/metrics.md): `{"ttft_ms": {"p99": 2000}, "tpot_ms": {"p99":
100}}` asks for `ttft_ms_p99 <= 2000` and `tpot_ms_p99 <= 100`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Targets = Mapping[str, Mapping[str, float]]


def misses(figures: Mapping[str, Any], targets: Targets) -> list[str]:
    """The targets a probe's figures miss, in words (empty: it met every one); a figure it lacks is a miss."""
    out = []
    for metric, percentiles in targets.items():
        for pct, limit in percentiles.items():
            value = figures.get(f"{metric}_{pct}")
            if not isinstance(value, (int, float)) or math.isnan(value) or value > limit:
                shown = f"{value:.4g}" if isinstance(value, (int, float)) else "missing"
                out.append(f"{metric} {pct} {shown} > {limit:g}")
    return out


@dataclass(frozen=True)
class Probe:
    load: float
    missed: tuple[str, ...]  # the targets it missed (empty: met them all)
    figures: Mapping[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return not self.missed


@dataclass(frozen=True)
class Capacity:
    load: float | None  # the largest load that met every target; None when even the lowest did not
    probes: tuple[Probe, ...]  # in the order they ran
    bounded: bool  # False when the top of the range met the targets: the capacity is at least `load`

    def said(self) -> str:
        if self.load is None:
            return f"no load meets it (the lowest, {self.probes[0].load:g}, missed: {'; '.join(self.probes[0].missed)})"
        return f"{self.load:g}" if self.bounded else f"at least {self.load:g} (the top of the range met the targets)"


def search(
    probe: Callable[[float], Probe], low: float, high: float, resolution: float = 0.1, integer: bool = False
) -> Capacity:
    """The largest load in [low, high] meeting every target, to within `resolution` (a fraction); loads are whole
    numbers when `integer` (a concurrency)."""
    if not 0 < low <= high or resolution <= 0:
        raise ValueError(f"expected 0 < low <= high and resolution > 0, got {low}, {high}, {resolution}")

    def shape(x: float) -> float:
        return float(max(low, min(high, round(x) if integer else x)))

    probes: list[Probe] = []

    def run(load: float) -> Probe:
        probes.append(probe(load))
        return probes[-1]

    if not run(low).met:
        return Capacity(None, tuple(probes), True)
    good, bad = low, None
    while bad is None and good < high:  # grow: double until a probe misses or the range ends
        load = shape(good * 2)
        if run(load).met:
            good = load
        else:
            bad = load
    if bad is None:
        return Capacity(good, tuple(probes), False)
    while bad / good > 1 + resolution:  # bisect (geometrically) between the last pass and the first miss
        load = shape(math.sqrt(good * bad))
        if load in (good, bad):  # whole numbers: nothing left between them
            break
        if run(load).met:
            good = load
        else:
            bad = load
    return Capacity(good, tuple(probes), True)
