"""The figures of a workload, from the client's records: the seed page's formulas and the usual latencies.

Token counts come from the server's usage (per request, streamed at the end); times from the client's clock.
docs/metrics.md defines each figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .loadgen import LoopHealth, RequestRecord


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan for no values."""
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass(frozen=True)
class Spread:
    """A latency distribution in milliseconds."""

    mean: float
    p50: float
    p90: float
    p99: float

    @staticmethod
    def of(seconds: list[float]) -> Spread:
        ms = [1000 * x for x in seconds]
        mean = sum(ms) / len(ms) if ms else math.nan
        return Spread(mean, percentile(ms, 0.5), percentile(ms, 0.9), percentile(ms, 0.99))


@dataclass(frozen=True)
class TokenCheck:
    """How far the server's token counts can be trusted for this run."""

    usage_missing: int  # requests whose stream ended without usage (their tokens were counted by the client)
    prompt_mismatch: int  # requests whose server-side prompt length differs from what was sent
    source: str  # "server usage" or "client chunk count (usage missing)"
    extra_arrivals: int = 0  # requests with more token arrivals than their usage counts: a client error


@dataclass(frozen=True)
class SingleMetrics:
    tps_at_1: float  # (completion tokens - 1) / (last token time - first token time)
    ttft_ms: float
    e2e_ms: float
    completion_tokens: int
    prompt_tokens: int | None
    tokens: TokenCheck


@dataclass(frozen=True)
class LevelMetrics:
    concurrency: int
    requests: int
    completed: int
    failed: int
    duration_s: float  # first request sent to last answer complete
    input_tokens: int
    output_tokens: int
    token_arrivals: int  # streamed events that carried text, counted by the client (at most output_tokens)
    throughput_tok_s: float  # the seed's "Avg Throughput (p+d)": (input + output tokens) / duration
    output_throughput_tok_s: float
    input_throughput_tok_s: float
    request_throughput: float
    per_request_decode_tok_s: float  # the seed's "Per-req Throughput (d)": mean of output tokens / request duration
    ttft: Spread
    itl: Spread  # gaps between streamed chunks
    tpot: Spread  # (e2e - ttft) / (output tokens - 1), per request
    e2e: Spread
    tokens: TokenCheck
    client: LoopHealth


def _tokens(records: list[RequestRecord], sent_prompt_tokens: int | None) -> TokenCheck:
    missing = sum(1 for r in records if r.completion_tokens is None)
    mismatch = sum(
        1
        for r in records
        if sent_prompt_tokens is not None and r.prompt_tokens is not None and r.prompt_tokens != sent_prompt_tokens
    )
    extra = sum(1 for r in records if r.completion_tokens is not None and len(r.chunk_times) > r.completion_tokens)
    source = "server usage" if not missing else "client chunk count (usage missing)"
    return TokenCheck(missing, mismatch, source, extra)


def _out(r: RequestRecord) -> int:
    return r.completion_tokens if r.completion_tokens is not None else len(r.chunk_times)


def single(record: RequestRecord) -> SingleMetrics:
    first, last = record.chunk_times[0], record.chunk_times[-1]
    n = _out(record)
    tps = (n - 1) / (last - first) if n > 1 and last > first else math.nan
    return SingleMetrics(
        tps,
        1000 * (first - record.start),
        1000 * (record.end - record.start),
        n,
        record.prompt_tokens,
        _tokens([record], None),
    )


def level(records: list[RequestRecord], concurrency: int, sent_prompt_tokens: int, health: LoopHealth) -> LevelMetrics:
    ok = [r for r in records if r.ok and r.chunk_times]
    start = min(r.start for r in records)
    end = max(r.end for r in records)
    duration = end - start
    inp = sum(r.prompt_tokens if r.prompt_tokens is not None else sent_prompt_tokens for r in ok)
    out = sum(_out(r) for r in ok)
    itl = [b - a for r in ok for a, b in zip(r.chunk_times, r.chunk_times[1:], strict=False)]
    tpot = [(r.end - r.chunk_times[0]) / (_out(r) - 1) for r in ok if _out(r) > 1]
    return LevelMetrics(
        concurrency=concurrency,
        requests=len(records),
        completed=len(ok),
        failed=len(records) - len(ok),
        duration_s=duration,
        input_tokens=inp,
        output_tokens=out,
        token_arrivals=sum(len(r.chunk_times) for r in ok),
        throughput_tok_s=(inp + out) / duration,
        output_throughput_tok_s=out / duration,
        input_throughput_tok_s=inp / duration,
        request_throughput=len(ok) / duration,
        per_request_decode_tok_s=sum(_out(r) / (r.end - r.start) for r in ok) / len(ok) if ok else math.nan,
        ttft=Spread.of([r.chunk_times[0] - r.start for r in ok]),
        itl=Spread.of(itl),
        tpot=Spread.of(tpot),
        e2e=Spread.of([r.end - r.start for r in ok]),
        tokens=_tokens(ok, sent_prompt_tokens),
        client=health,
    )
