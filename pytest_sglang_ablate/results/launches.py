"""One case measured on several launches of its row (`launches: N`): the launches' records combined into one.

The launch is the unit of comparison (docs/metrics.md, "Launches"): launches of the same flags differ by more than
the repetitions inside one launch. The combined record's figures are the median over the launches that passed,
each launch's own figures are kept under `launches`, and `launch_spread` gives each headline figure's spread
between launches (median, min, max, the log-scale standard deviation) beside the spread of repetitions within
them.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any

from . import verdict
from .record import CaseResult

# the figures compared between rows and nights, each with its direction (True: higher is better)
HEADLINE = {
    "tps_at_1": True,
    "throughput_tok_s": True,
    "per_request_decode_tok_s": True,
    "output_throughput_tok_s": True,
    "ttft_ms_p50": False,
    "ttft_ms_p99": False,
    "tpot_ms_p50": False,
    "tpot_ms_p99": False,
}
# worst first: the combined outcome is the worst of its launches' (one failed launch fails the case)
SEVERITY = ("error", "failed", "xpassed", "skipped", "passed", "xfailed")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _sd(groups: list[list[float]]) -> float | None:
    """The log-scale spread inside groups, pooled (verdict.pooled_sd): of launches (one group), or of each launch's
    repetitions (a group a launch)."""
    pooled = verdict.pooled_sd(groups)
    return pooled[0] if pooled else None


def spread(launch_figures: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    values = [f[key] for f in launch_figures if _number(f.get(key))]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "between_sd": _sd([values]),
        "within_sd": _sd([(f.get(f"{key}_spread") or {}).get("values", []) for f in launch_figures]),
    }


def combine(records: list[CaseResult]) -> CaseResult:
    """The case as its launches' records say, in launch order; a single record of a one-launch row is itself."""
    if len(records) == 1 and records[0].launches == 1:
        return records[0]
    worst = min(records, key=lambda r: SEVERITY.index(r.outcome) if r.outcome in SEVERITY else 0)
    passed = [r.figures for r in records if r.outcome == "passed" and r.figures]
    figures: dict[str, Any] = dict(passed[-1] if passed else worst.figures or {})
    for key in {k for f in passed for k, v in f.items() if _number(v)}:
        values = [f[key] for f in passed if _number(f.get(key))]
        figures[key] = statistics.median(values)
    figures["launches"] = [
        {"launch": r.launch, "outcome": r.outcome, **{k: v for k, v in (r.figures or {}).items() if _number(v)}}
        for r in records
    ]
    figures["launch_spread"] = {k: s for k in HEADLINE if (s := spread(passed, k)) is not None}
    if worst.kind == "agreement":  # the launch whose outputs were the reference stays the reference
        first = next(
            (r.figures for r in records if r.outcome == "passed" and (r.figures or {}).get("is_reference")), None
        )
        if first is not None:
            keep = ("is_reference", "reference_row", "reference_launch", "outputs")
            figures.update({k: first[k] for k in keep if k in first})
    return dataclasses.replace(
        worst,
        figures=figures or None,
        launch=None,
        duration_s=sum(r.duration_s for r in records),
    )
