"""Open-loop load (measure/openloop.py): arrivals at their rate, requests sent on schedule whatever the server
does, and a full cap's wait counted in the users' latency; against the stand-in server's own record."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from matrices import STANDIN, standin_matrix

from pytest_sglang_ablate.measure.loadgen import Client, Endpoint, encode
from pytest_sglang_ablate.measure.openloop import CONSTANT, arrivals, open_loop


@pytest.mark.parametrize("rate", [5.0, 200.0])
def test_poisson_arrivals_keep_their_rate_with_exponential_gaps(rate: float) -> None:
    rates, spreads = [], []
    for seed in range(20):
        due = arrivals(rate, 1000, seed=seed)
        gaps = [b - a for a, b in itertools.pairwise(due)]
        rates.append(1 / statistics.fmean(gaps))
        spreads.append(statistics.stdev(gaps) / statistics.fmean(gaps))
    assert abs(statistics.median(rates) / rate - 1) < 0.02  # over 1,000 requests, within 2 %
    assert all(abs(r / rate - 1) < 0.12 for r in rates)
    assert 0.9 < statistics.median(spreads) < 1.1  # exponential gaps: their spread equals their mean
    assert arrivals(rate, 1000, seed=3) == arrivals(rate, 1000, seed=3) != arrivals(rate, 1000, seed=4)


def test_constant_arrivals_are_evenly_spaced_and_bad_rates_are_refused() -> None:
    assert arrivals(4.0, 5, CONSTANT) == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError, match="rate and a count above 0"):
        arrivals(0.0, 5)
    with pytest.raises(ValueError, match="expected poisson or constant"):
        arrivals(1.0, 5, "bursty")


@pytest.fixture
def standin() -> Iterator[int]:
    """The stand-in server, streaming a token every 10 ms; its port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--model-path", "m", "--port", str(port)],
        env={**os.environ, "STANDIN": "tok_rate=100"},
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # each failed try takes a connect round trip
            try:
                stats(port)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/standin_stats", timeout=5) as r:
        return dict(json.loads(r.read()))


def run(port: int, due: list[float], cap: int) -> Any:
    endpoint = Endpoint(f"http://127.0.0.1:{port}")
    body = {
        "model": "m",
        "prompt": [1, 2, 3],
        "max_tokens": 20,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    requests = [encode(endpoint, "/v1/completions", body) for _ in due]
    return asyncio.run(open_loop(Client(endpoint, 60.0), requests, due, cap))


def test_requests_leave_on_schedule_whatever_the_server_does(standin: int) -> None:
    due = arrivals(40.0, 80, seed=1)  # 0.2 s requests at 40/s: about 8 in flight
    records, health, schedule = run(standin, due, cap=64)
    assert len(records) == 80 and all(r.ok and r.completion_tokens == 20 for r in records)
    assert schedule.held == 0 and 4 <= schedule.most_in_flight <= 20
    seen = sorted(r["arrival"] for r in stats(standin)["requests"])
    offsets = [t - seen[0] for t in seen]
    off = [abs(a - b) for a, b in zip(offsets, due, strict=True)]
    assert max(off) < 0.05, max(off)  # the server saw each request when its user arrived (to 50 ms)
    assert schedule.lateness_p99_ms() < 20 and health.lag_p99_ms < 50


def test_a_full_cap_holds_users_and_their_wait_counts_in_their_latency(standin: int) -> None:
    due = arrivals(40.0, 30, CONSTANT)  # 0.2 s requests at 40/s, but only 2 at a time: 10/s served
    records, _, schedule = run(standin, due, cap=2)
    assert all(r.ok for r in records) and schedule.held > 20 and schedule.most_in_flight == 2
    ttft = [r.chunk_times[0] - r.start for r in records]
    assert ttft[0] < 0.1 and ttft[-1] > 1.5  # the last user waited about 30/10 - 30/40 s for a slot
    assert schedule.lateness_p99_ms() < 20  # the client itself kept the schedule; the server could not


RATE_MATRIX = standin_matrix(
    """
    features:
      radix_cache: {off: {disable-radix-cache: true}}
    rows:
      - [radix_cache]
    workloads:
      batch:
        kind: batch
        input_len: 8
        output_len: 8
        levels: [{concurrency: 2, requests: 4}, {rate: 20, requests: 40, arrival: constant, max_in_flight: 8}]
    """
)


def test_a_rate_level_sends_its_users_on_schedule_and_says_how_well_the_client_kept_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".yaml", m=RATE_MATRIX)
    pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    path = pytester.path / "ablate-results" / "results.jsonl"
    records = {r["case"]: r for r in map(json.loads, path.read_text().splitlines())}
    rate = records["radix_cache-batch-r20"]
    assert (rate["rate"], rate["concurrency"], rate["outcome"]) == (20, 8, "passed")
    figures = rate["figures"]
    assert figures["rate"] == 20 and figures["arrival"] == "constant" and figures["schedule_lateness_p99_ms"] < 20
    assert figures["held_for_a_slot"] == 0 and 1 <= figures["most_in_flight"] <= 8
    # 40 users at 20/s: the level lasts about 2 s whatever the server's speed (8 tokens at 500/s each)
    assert 1.9 < figures["duration_s"] < 2.5 and figures["request_throughput"] == pytest.approx(20, rel=0.1)
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert "| 20/s " in report and "| 2 " in report  # the rate level beside the closed-loop one


def test_a_rate_level_refuses_what_the_open_loop_does_not_do(tmp_path: Any) -> None:
    from pytest_sglang_ablate.errors import MatrixError
    from pytest_sglang_ablate.matrix.parse import load_matrix

    text = RATE_MATRIX.replace("output_len: 8\n", "output_len: 8\n    client_processes: 2\n")
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(MatrixError, match=re.escape("a rate level (open loop) runs in one client process of ours")):
        load_matrix(tmp_path / "m.yaml", "m.yaml")
    (tmp_path / "m.yaml").write_text(RATE_MATRIX.replace("arrival: constant", "arrival: bursty"))
    with pytest.raises(MatrixError, match=r"levels\[1\]\.arrival: expected poisson or constant"):
        load_matrix(tmp_path / "m.yaml", "m.yaml")
    (tmp_path / "m.yaml").write_text(RATE_MATRIX.replace("{concurrency: 2, requests: 4}", "{requests: 4}"))
    with pytest.raises(MatrixError, match=re.escape("missing required key 'concurrency' (or 'rate'")):
        load_matrix(tmp_path / "m.yaml", "m.yaml")
