"""A case's figures as people and pytest-benchmark read them: `Measured`, with each figure's source.

docs/metrics.md defines every key written here.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..matrix.model import BatchWorkload, Level, SingleWorkload
from . import metrics
from .openloop import Schedule


@dataclass
class Measured:
    """One case's outcome: figures for people (extra_info) and samples for pytest-benchmark."""

    group: str  # one metric per pytest-benchmark group
    samples: list[float]  # per repetition, lower is better (seconds per token)
    extra_info: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # why the figures are not to be trusted; the case fails


def spread(values: list[float]) -> dict[str, Any]:
    """The repetitions of one launch: their median, range and each value (for the spread within a launch)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": list(values)}


TREND_LIMIT = 0.10  # a first repetition this far below the others' median (or a rise this large) marks the level


def trend(values: list[float]) -> dict[str, Any] | None:
    """Whether a level's repetitions trend (first slow, then fast: a warm-up that did not reach the level's
    shapes, a kernel compiled inside the first): the first against the median of the rest, and whether they
    only rose. None with fewer than two."""
    if len(values) < 2:
        return None
    rest = statistics.median(values[1:])
    ratio = values[0] / rest if rest > 0 else math.nan
    rising = all(a <= b for a, b in itertools.pairwise(values))
    rose = values[-1] > values[0] * (1 + TREND_LIMIT)
    return {
        "first_vs_rest": ratio,
        "rising": rising,
        "marked": bool(ratio < 1 - TREND_LIMIT or (len(values) >= 3 and rising and rose)),
        "limit": TREND_LIMIT,
    }


def single_measured(
    workload: SingleWorkload,
    runs: list[metrics.SingleMetrics],
    engine_tps: list[float],
    answer: str,
    problems: list[str],
) -> Measured:
    """TPS@1 over the repetitions (median and spread), with the engine's own logged figure beside it."""
    tps = [m.tps_at_1 for m in runs if not math.isnan(m.tps_at_1)]
    extra: dict[str, Any] = {"workload": workload.name, "api": workload.api, "repeat": workload.repeat}
    if runs:
        last = runs[-1]
        extra.update(
            {
                "tps_at_1": statistics.median(tps) if tps else math.nan,
                "tps_at_1_spread": spread(tps) if tps else {},
                "repetition_trend": trend(tps),
                "tps_at_1_source": "client clock between first and last streamed token; token count from server usage",
                "engine_gen_throughput_tok_s": statistics.median(engine_tps) if engine_tps else None,
                "ttft_ms": statistics.median(m.ttft_ms for m in runs),
                "e2e_ms": statistics.median(m.e2e_ms for m in runs),
                "completion_tokens": last.completion_tokens,
                "prompt_tokens": last.prompt_tokens,
                "token_source": last.tokens.source,
                "answer_tail": answer[-200:],
            }
        )
    return Measured(f"single {workload.name}: s/token at concurrency 1", [1 / t for t in tps], extra, problems)


def batch_figures(
    workload: BatchWorkload,
    level: Level,
    runs: list[metrics.LevelMetrics],
    accept: float | None,
    schedules: Sequence[Schedule] = (),
) -> dict[str, Any]:
    if not runs:
        return {
            "workload": workload.name,
            "api": workload.api,
            "concurrency": level.concurrency,
            "requests": level.requests,
        }

    def med(f: Callable[[metrics.LevelMetrics], float]) -> float:
        return statistics.median(f(m) for m in runs)

    last = runs[-1]
    open_loop = {}
    if level.rate is not None:  # users arrived at a rate: the level's load, and how well the client kept it
        open_loop = {
            "rate": level.rate,
            "arrival": level.arrival,
            "max_in_flight": level.concurrency,
            "schedule_lateness_p99_ms": max((s.lateness_p99_ms() for s in schedules), default=None),
            "held_for_a_slot": max((s.held for s in schedules), default=None),
            "most_in_flight": max((s.most_in_flight for s in schedules), default=None),
            "latency_from": "each user's arrival (time waiting for a free slot included)",
        }
    return {
        **open_loop,
        "workload": workload.name,
        "api": workload.api,  # which API the requests went to: openai (/v1/completions) or native (/generate)
        "client": workload.client,  # which client measured: ours, or openai (AsyncOpenAI threads)
        "concurrency": level.concurrency,
        "requests": level.requests,
        "repeat": len(runs),
        "input_len": workload.input_len,
        "output_len": workload.output_len,
        "throughput_tok_s": med(lambda m: m.throughput_tok_s),
        "throughput_tok_s_spread": spread([m.throughput_tok_s for m in runs]),
        "repetition_trend": trend([m.throughput_tok_s for m in runs]),
        "per_request_decode_tok_s": med(lambda m: m.per_request_decode_tok_s),
        "output_throughput_tok_s": med(lambda m: m.output_throughput_tok_s),
        "input_throughput_tok_s": med(lambda m: m.input_throughput_tok_s),
        "request_throughput": med(lambda m: m.request_throughput),
        "duration_s": med(lambda m: m.duration_s),
        "completed": last.completed,
        "failed": last.failed,
        "input_tokens": last.input_tokens,
        "output_tokens": last.output_tokens,
        "token_arrivals": last.token_arrivals,
        "token_source": last.tokens.source,
        "usage_missing": last.tokens.usage_missing,
        "prompt_mismatch": last.tokens.prompt_mismatch,
        **{
            f"{name}_ms_{stat}": statistics.median(getattr(getattr(m, name), stat) for m in runs)
            for name in ("ttft", "itl", "tpot", "e2e")
            for stat in ("mean", "p50", "p90", "p99")
        },
        "spec_accept_length": accept,
        "client_cpu_fraction": last.client.cpu_fraction,
        "client_loop_lag_p99_ms": last.client.lag_p99_ms,
        "sources": "token counts: server usage per request; times: client clock (perf_counter)",
    }
