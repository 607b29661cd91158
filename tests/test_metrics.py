from __future__ import annotations

import math
import statistics

import pytest

from pytest_sglang_ablate.measure.loadgen import LoopHealth, RequestRecord
from pytest_sglang_ablate.measure.metrics import LevelMetrics, Spread, level, percentile, single

HEALTH = LoopHealth(cpu_fraction=0.25, lag_p99_ms=1.5, lag_max_ms=3.0)
SENT_PROMPT = 100


def request(
    start: float,
    chunks: list[float],
    end: float,
    prompt: int | None = SENT_PROMPT,
    completion: int | None = None,
    error: str | None = None,
) -> RequestRecord:
    """What the client saw of one request; `completion` None is a stream that ended without usage."""
    return RequestRecord(
        start=start, end=end, chunk_times=chunks, prompt_tokens=prompt, completion_tokens=completion, error=error
    )


def three_requests() -> list[RequestRecord]:
    """Two completed requests (the second's server saw a 101-token prompt) and one that failed mid-stream."""
    return [
        request(0.0, [0.5, 1.0, 1.5], 2.0, prompt=100, completion=5),
        request(1.0, [1.25, 2.75], 3.0, prompt=101, completion=4),
        request(0.5, [0.7], 1.0, prompt=999, completion=50, error="HTTP 500: boom"),
    ]


def measured() -> LevelMetrics:
    return level(three_requests(), concurrency=2, sent_prompt_tokens=SENT_PROMPT, health=HEALTH)


# percentile and Spread


def test_percentile_of_no_values_is_nan() -> None:
    assert math.isnan(percentile([], 0.5))


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 0.0) == percentile([7.0], 0.99) == 7.0


def test_percentile_interpolates_linearly_between_closest_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.7)


def test_percentile_sorts_its_input_and_spans_min_to_max() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 5.0
    assert percentile(values, 0.5) == 3.0


def test_percentile_matches_the_inclusive_method_of_the_standard_library() -> None:
    values = [0.013, 0.2, 0.031, 0.9, 0.07, 0.11, 0.5, 0.002, 0.33, 0.045, 0.61]
    cuts = statistics.quantiles(values, n=100, method="inclusive")  # cuts[k - 1] is the k-th percentile
    for q in (0.5, 0.9, 0.99):
        assert percentile(values, q) == pytest.approx(cuts[round(q * 100) - 1])


def test_spread_reports_seconds_as_milliseconds() -> None:
    spread = Spread.of([0.1, 0.2, 0.3, 0.4])
    assert spread.mean == pytest.approx(250.0)
    assert spread.p50 == pytest.approx(250.0)
    assert spread.p90 == pytest.approx(370.0)
    assert spread.p99 == pytest.approx(397.0)


def test_spread_of_no_values_is_all_nan() -> None:
    spread = Spread.of([])
    assert all(math.isnan(v) for v in (spread.mean, spread.p50, spread.p90, spread.p99))


# single(): TPS@1


def test_tps_at_1_is_completion_tokens_minus_one_over_first_to_last_chunk() -> None:
    # 9 tokens whose first arrives at 0.25 s and last at 2.25 s: 8 decode steps in 2 s
    record = request(0.0, [0.25, 0.75, 1.25, 1.75, 2.25], 2.5, completion=9)
    assert single(record).tps_at_1 == pytest.approx(4.0)


def test_tps_at_1_excludes_prefill_so_a_late_first_token_does_not_change_it() -> None:
    early = single(request(0.0, [0.1, 1.1], 1.2, completion=11))
    late = single(request(0.0, [5.0, 6.0], 6.1, completion=11))
    assert early.tps_at_1 == pytest.approx(late.tps_at_1) == pytest.approx(10.0)
    assert late.ttft_ms > early.ttft_ms


def test_single_reports_ttft_and_e2e_in_milliseconds_from_the_request_start() -> None:
    metrics = single(request(10.0, [10.25, 10.5], 11.5, prompt=42, completion=3))
    assert metrics.ttft_ms == pytest.approx(250.0)
    assert metrics.e2e_ms == pytest.approx(1500.0)
    assert metrics.prompt_tokens == 42
    assert metrics.completion_tokens == 3


def test_single_counts_tokens_from_the_server_usage_not_the_chunks() -> None:
    # three chunks carrying 101 tokens (e.g. speculative decoding): the usage count is the truth
    metrics = single(request(0.0, [1.0, 2.0, 3.0], 3.0, completion=101))
    assert metrics.completion_tokens == 101
    assert metrics.tps_at_1 == pytest.approx(50.0)
    assert metrics.tokens.usage_missing == 0
    assert metrics.tokens.source == "server usage"


def test_single_without_usage_falls_back_to_the_chunk_count_and_says_so() -> None:
    metrics = single(request(0.0, [1.0, 1.5, 2.0, 2.5, 3.0], 3.0, prompt=None, completion=None))
    assert metrics.completion_tokens == 5
    assert metrics.tps_at_1 == pytest.approx(2.0)
    assert metrics.prompt_tokens is None
    assert metrics.tokens.usage_missing == 1
    assert metrics.tokens.source == "client chunk count (usage missing)"


def test_tps_at_1_of_a_one_token_answer_is_nan() -> None:
    assert math.isnan(single(request(0.0, [0.5], 0.6, completion=1)).tps_at_1)


def test_tps_at_1_is_nan_when_all_tokens_arrive_in_one_read() -> None:
    metrics = single(request(0.0, [0.5, 0.5, 0.5], 0.6, completion=30))
    assert math.isnan(metrics.tps_at_1)
    assert metrics.completion_tokens == 30


# level(): a batch level


def test_level_counts_requests_completed_and_failed() -> None:
    m = measured()
    assert (m.concurrency, m.requests, m.completed, m.failed) == (2, 3, 2, 1)


def test_a_request_without_error_but_without_any_chunk_counts_as_failed() -> None:
    records = [request(0.0, [0.5, 1.0], 1.0, completion=2), request(0.0, [], 1.0, completion=None)]
    m = level(records, 2, SENT_PROMPT, HEALTH)
    assert (m.completed, m.failed) == (1, 1)


def test_duration_runs_from_the_first_request_sent_to_the_last_answer_complete() -> None:
    assert measured().duration_s == pytest.approx(3.0)


def test_token_totals_come_from_completed_requests_only() -> None:
    m = measured()
    assert m.input_tokens == 100 + 101  # the failed request's 999 prompt tokens are not counted
    assert m.output_tokens == 5 + 4  # nor its 50 completion tokens


def test_throughput_is_input_plus_output_tokens_over_the_duration() -> None:
    m = measured()
    assert m.throughput_tok_s == pytest.approx((201 + 9) / 3.0)
    assert m.output_throughput_tok_s == pytest.approx(9 / 3.0)
    assert m.input_throughput_tok_s == pytest.approx(201 / 3.0)
    assert m.request_throughput == pytest.approx(2 / 3.0)


def test_per_request_decode_is_the_mean_of_output_tokens_over_request_duration() -> None:
    # 5 tokens in 2 s and 4 tokens in 2 s
    assert measured().per_request_decode_tok_s == pytest.approx((5 / 2.0 + 4 / 2.0) / 2)


def test_ttft_is_request_sent_to_first_chunk_in_milliseconds() -> None:
    ttft = measured().ttft
    assert ttft.mean == pytest.approx((500 + 250) / 2)
    assert ttft.p50 == pytest.approx(375.0)
    assert ttft.p99 == pytest.approx(250 + 0.99 * 250)


def test_itl_is_the_gaps_between_consecutive_chunks_of_every_completed_request() -> None:
    itl = measured().itl  # gaps 500, 500 (first request) and 1500 ms (second); the failed one has none
    assert itl.mean == pytest.approx((500 + 500 + 1500) / 3)
    assert itl.p50 == pytest.approx(500.0)
    assert itl.p90 == pytest.approx(500 + 0.8 * 1000)


def test_tpot_is_end_minus_first_chunk_over_output_tokens_minus_one() -> None:
    tpot = measured().tpot  # (2.0 - 0.5) / 4 and (3.0 - 1.25) / 3, in ms
    assert tpot.mean == pytest.approx((375.0 + 1750.0 / 3) / 2)
    assert tpot.p50 == pytest.approx((375.0 + 1750.0 / 3) / 2)


def test_tpot_leaves_out_one_token_answers() -> None:
    records = [request(0.0, [0.5], 0.5, completion=1), request(0.0, [0.5, 1.5], 1.5, completion=3)]
    tpot = level(records, 2, SENT_PROMPT, HEALTH).tpot
    assert tpot.mean == pytest.approx(500.0)  # only the second: (1.5 - 0.5) / 2


def test_e2e_is_request_sent_to_answer_complete() -> None:
    e2e = measured().e2e
    assert e2e.mean == pytest.approx(2000.0)
    assert e2e.p99 == pytest.approx(2000.0)


def test_a_prompt_length_other_than_the_one_sent_is_counted_as_a_mismatch() -> None:
    tokens = measured().tokens
    assert tokens.prompt_mismatch == 1  # the second request's 101; the failed request's 999 is not judged
    assert tokens.usage_missing == 0
    assert tokens.source == "server usage"


def test_missing_usage_falls_back_to_chunk_counts_and_the_sent_prompt_length() -> None:
    records = [
        request(0.0, [0.5, 1.0, 1.5], 2.0, prompt=None, completion=None),
        request(0.0, [0.5, 1.0], 2.0, prompt=100, completion=7),
    ]
    m = level(records, 2, SENT_PROMPT, HEALTH)
    assert m.output_tokens == 3 + 7
    assert m.input_tokens == 100 + 100
    assert m.tokens.usage_missing == 1
    assert m.tokens.prompt_mismatch == 0  # an unknown prompt length is not a mismatch
    assert m.tokens.source == "client chunk count (usage missing)"


def test_a_failed_request_without_usage_does_not_mark_the_level_as_usage_missing() -> None:
    records = [
        request(0.0, [0.5, 1.0], 2.0, completion=2),
        request(0.0, [], 0.1, prompt=None, completion=None, error="ConnectionError"),
    ]
    tokens = level(records, 2, SENT_PROMPT, HEALTH).tokens
    assert tokens.usage_missing == 0
    assert tokens.source == "server usage"


def test_a_level_where_every_request_failed_has_no_latencies() -> None:
    records = [request(0.0, [], 1.0, prompt=None, error="HTTP 503: overloaded") for _ in range(3)]
    m = level(records, 3, SENT_PROMPT, HEALTH)
    assert (m.completed, m.failed, m.output_tokens, m.throughput_tok_s) == (0, 3, 0, 0.0)
    assert math.isnan(m.per_request_decode_tok_s)
    assert math.isnan(m.ttft.p50) and math.isnan(m.e2e.mean)


def test_the_client_health_is_reported_with_the_level() -> None:
    assert measured().client == HEALTH
