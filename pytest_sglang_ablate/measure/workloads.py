"""The two workloads on a running server: TPS@1 (one streamed request) and batch throughput at one level.

Each returns what was measured (`figures.Measured`: figures in natural units, samples for pytest-benchmark) and
the validity problems found; the caller records first and fails after, so nothing measured is lost.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import Any

from ..matrix.model import AgreementWorkload, BatchWorkload, Level, SingleWorkload, SloWorkload
from ..server import logfile
from ..server.launch import Server
from . import agreement, cross_check, metrics
from .cpus import pinned
from .figures import Measured, batch_figures, single_measured
from .loadgen import Client, Endpoint, RequestRecord, closed_loop_processes, encode
from .openai_client import closed_loop_openai
from .openloop import Schedule, arrivals, open_loop
from .slo import Probe, misses, search

Progress = Callable[[str], None]


def _endpoint(server: Server) -> Endpoint:
    return Endpoint(server.base_url, server.api_key)


def _check_server(server: Server, records: list[RequestRecord]) -> None:
    """Failed requests that look like a dead server raise ServerDied with the cause from the log."""
    if any(r.error and not r.error.startswith("HTTP") for r in records):
        server.ensure_alive()


def run_single(server: Server, workload: SingleWorkload) -> Measured:
    """TPS@1: one streamed chat request at temperature 0, `repeat` times; the answer must contain `expect`."""
    endpoint = _endpoint(server)
    request = encode(endpoint, *_single_body(server, workload))
    client = Client(endpoint, workload.request_timeout)
    runs: list[metrics.SingleMetrics] = []
    engine_tps: list[float] = []
    problems: list[str] = []
    answer = ""
    for _ in range(workload.repeat):
        server.flush_cache()  # each repetition starts from the same (empty) cache
        offset = logfile.size(server.log_path)
        with pinned(workload.client_cpus or server.client_cpus):
            record, _ = asyncio.run(client.send(None, request, keep_text=True))
        if not record.ok or not record.chunk_times:
            _check_server(server, [record])
            problems.append(f"the request failed: {record.error or 'no tokens streamed'}")
            break
        answer = record.text
        runs.append(metrics.single(record))
        if runs[-1].tokens.extra_arrivals:
            problems.append(
                f"{len(record.chunk_times)} token arrivals for {record.completion_tokens} tokens in the usage: the "
                "client took events without text for tokens (a client error)"
            )
            break
        if math.isnan(runs[-1].tps_at_1) and runs[-1].completion_tokens > 1:
            problems.append(
                f"all {runs[-1].completion_tokens} tokens arrived in one read, so their times are unknown "
                "(the server buffered the stream, or the client was starved of CPU: see client_cpus)"
            )
            break
        logged = server.profile.logged_gen_throughput(logfile.since(server.log_path, offset))
        if logged is not None:
            engine_tps.append(logged)
        if workload.expect is not None and workload.expect not in record.text:
            shown = record.text if len(record.text) < 400 else record.text[:200] + " ... " + record.text[-200:]
            problems.append(f"expected {workload.expect!r} in the answer, got: {shown!r}")
            break
    if runs and runs[-1].tokens.usage_missing:
        problems.append(
            "the server's stream carried no usage: completion tokens were counted from chunks (set "
            "stream_options.include_usage support on the server)"
        )
    return single_measured(workload, runs, engine_tps, answer, problems)


def _single_body(server: Server, workload: SingleWorkload) -> tuple[str, dict[str, object]]:
    """The path and body of the TPS@1 request: a chat request, or (native) the prompt as raw text to /generate."""
    if workload.api == "native":  # no chat template on this path: the engine continues the prompt as written
        sampling = {"max_new_tokens": workload.max_tokens, "temperature": 0}
        return server.profile.native_path or "/generate", {
            "text": workload.prompt,
            "sampling_params": sampling,
            "stream": True,
        }
    return "/v1/chat/completions", {
        "model": server.model_id(),
        "messages": [{"role": "user", "content": workload.prompt}],
        "max_tokens": workload.max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def prompts(workload: BatchWorkload, n: int, seed: int) -> list[list[int]]:
    """`n` prompts of exactly `input_len` random token ids: no tokenizer needed, no prefix shared across seeds."""
    rng = random.Random(seed)
    lo, hi = workload.token_ids
    return [[rng.randrange(lo, hi) for _ in range(workload.input_len)] for _ in range(n)]


def _requests(
    server: Server, workload: BatchWorkload, prompt_ids: list[list[int]], max_tokens: int
) -> tuple[str, list[dict[str, Any]]]:
    """The path and bodies of streamed requests for token-id prompts, exactly `max_tokens` out, on the
    workload's API."""
    if workload.api == "native":  # SGLang's own /generate: token ids in, counts in each event's meta_info
        sampling = {"max_new_tokens": max_tokens, "temperature": 0, "ignore_eos": True}
        path = server.profile.native_path or "/generate"
        return path, [{"input_ids": ids, "sampling_params": sampling, "stream": True} for ids in prompt_ids]
    model = server.model_id()
    return "/v1/completions", [
        {
            "model": model,
            "prompt": ids,
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for ids in prompt_ids
    ]


def _seed(workload: BatchWorkload, level: Level, repetition: int, role: int) -> int:
    # a different seed for every level, repetition and role (measure, burst, warm-up): no cross-level prefix hits
    rate = round((level.rate or 0) * 1000)
    return workload.seed * 1_000_003 + level.concurrency * 10_007 + rate * 7 + repetition * 101 + role


def _run(
    server: Server,
    workload: BatchWorkload,
    level: Level,
    seed: int,
    max_tokens: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[RequestRecord], metrics.LevelMetrics, Schedule | None]:
    path, bodies = _requests(server, workload, prompts(workload, level.requests, seed), max_tokens)
    endpoint = _endpoint(server)
    schedule = None
    with pinned(workload.client_cpus or server.client_cpus):
        if level.rate is not None:  # open loop: each request when its user arrives (parse allows ours, one process)
            encoded = [encode(endpoint, path, body) for body in bodies]
            due = arrivals(level.rate, level.requests, level.arrival, seed)
            client = Client(endpoint, workload.request_timeout)
            records, health, schedule = asyncio.run(open_loop(client, encoded, due, level.concurrency, progress))
        elif workload.client == "openai":  # the seed page's method: AsyncOpenAI clients in a thread pool
            records, health = closed_loop_openai(endpoint, workload.request_timeout, bodies, level.concurrency)
        else:
            encoded = [encode(endpoint, path, body) for body in bodies]
            processes = min(workload.client_processes, level.concurrency)
            records, health = closed_loop_processes(
                endpoint, workload.request_timeout, encoded, level.concurrency, processes, progress
            )
    _check_server(server, records)
    return records, metrics.level(records, level.concurrency, workload.input_len, health), schedule


def warm_up(server: Server, workload: BatchWorkload) -> None:
    """The workload's explicit warm-up (e.g. DP attention at small concurrency first), once per server."""
    if workload.warmup is None or workload.name in server.warmed_up:
        return
    _run(server, workload, workload.warmup, _seed(workload, workload.warmup, 0, 2), workload.output_len)
    server.warmed_up.add(workload.name)


def run_batch(server: Server, workload: BatchWorkload, level: Level, progress: Progress | None = None) -> Measured:
    """One measured level: flush the cache, a discarded burst at this concurrency (none for a rate level, whose
    load is its arrivals), then `repeat` measured runs."""
    warm_up(server, workload)
    repeat = level.repeat or workload.repeat
    runs: list[metrics.LevelMetrics] = []
    schedules: list[Schedule] = []
    theirs: list[dict[str, Any]] = []  # the cross-check's runs, each right after one of ours
    problems: list[str] = []
    for rep in range(repeat):
        server.flush_cache()
        if workload.cold_start_burst and level.rate is None:
            burst = Level(level.concurrency, level.concurrency)
            _run(server, workload, burst, _seed(workload, level, rep, 1), max_tokens=4)

        began = time.perf_counter()

        def tick(done: int, out_tokens: int, rep: int = rep, began: float = began) -> None:
            if progress is not None:
                rate = out_tokens / max(time.perf_counter() - began, 1e-9)
                done_text = f"{done}/{level.requests} requests, {rate:,.0f} output tok/s"
                progress(f"{level.label} run {rep + 1}/{repeat}: {done_text}")

        _, m, schedule = _run(server, workload, level, _seed(workload, level, rep, 0), workload.output_len, tick)
        runs.append(m)
        problems += _guards(workload, m)
        if schedule is not None:
            schedules.append(schedule)
            late = schedule.lateness_p99_ms()
            if late > workload.loop_lag_limit_ms:
                problems.append(
                    f"the load generator sent its requests {late:.0f} ms late (p99; limit "
                    f"{workload.loop_lag_limit_ms:g} ms): it could not keep the level's schedule, so the latencies "
                    "are its own (a client error: lower the rate or free a CPU for the client)"
                )
        if problems:
            break
        if workload.cross_check:  # the same level again, by the engine's own client, taking turns with ours
            theirs.append(cross_check.run(server, workload, level))
            if "error" in theirs[-1]:
                break
    accept = server.profile.accept_length(server.read_config())  # after the level: the engine's running average
    figures = batch_figures(workload, level, runs, accept, schedules)
    if theirs and not problems:
        figures["cross_check"] = cross_check.combine(theirs)
        tolerance = (
            workload.cross_check_tolerance if level.cross_check_tolerance is None else level.cross_check_tolerance
        )
        problems += cross_check.differences(figures, figures["cross_check"], tolerance)
    return Measured(
        group=f"batch {workload.name} {level.label}: s/token (input + output)",
        samples=[1 / m.throughput_tok_s for m in runs if m.throughput_tok_s > 0],
        extra_info=figures,
        problems=problems,
    )


def goodput(records: list[RequestRecord], targets: dict[str, dict[str, float]], duration_s: float) -> float:
    """Requests per second that met every target themselves (each target's limit applied to each request's own
    time to first token, time per output token and end-to-end latency; ITL targets are the level's alone)."""
    limits = {metric: min(pcts.values()) for metric, pcts in targets.items()}
    good = 0
    for r in records:
        if not r.ok or not r.chunk_times:
            continue
        n = r.completion_tokens or len(r.chunk_times)
        own = {
            "ttft_ms": 1000 * (r.chunk_times[0] - r.start),
            "tpot_ms": 1000 * (r.end - r.chunk_times[0]) / (n - 1) if n > 1 else 0.0,
            "e2e_ms": 1000 * (r.end - r.start),
        }
        good += all(own.get(metric, 0.0) <= limit for metric, limit in limits.items())
    return good / duration_s if duration_s > 0 else 0.0


PROBE_FIGURES = ("throughput_tok_s", "request_throughput", "ttft_ms_p99", "tpot_ms_p99", "e2e_ms_p99", "ttft_ms_p50")


def run_slo(server: Server, workload: SloWorkload, progress: Progress | None = None) -> Measured:
    """The largest rate (or concurrency) whose probe meets every target (measure/slo.py), each probe a fresh level
    of the workload's request shape after a cache flush and a discarded burst at its own load (on the H200 a first
    probe at concurrency 1 without one met a kernel compile: p99 TTFT 1,084 ms); every probe's figures kept."""
    batch, targets = workload.batch, workload.target_map()
    warm_up(server, batch)
    problems: list[str] = []
    seen: list[dict[str, Any]] = []

    def probe(load: float) -> Probe:
        if workload.variable == "concurrency":
            level = Level(int(load), max(workload.requests, 2 * int(load)))
        else:
            level = Level(workload.max_in_flight, workload.requests, rate=load, arrival=workload.arrival)
        server.flush_cache()
        width = level.concurrency if level.rate is None else min(level.concurrency, max(1, math.ceil(load)))
        if batch.cold_start_burst:  # a discarded burst at the probe's own load: no kernel compiles inside a probe
            _run(server, batch, Level(width, width), _seed(batch, level, len(seen), 1), max_tokens=4)

        def tick(done: int, out_tokens: int) -> None:
            if progress is not None:
                progress(f"probe {level.label}: {done}/{level.requests} requests")

        records, m, schedule = _run(server, batch, level, _seed(batch, level, len(seen), 3), batch.output_len, tick)
        figures = batch_figures(batch, level, [m], None, [schedule] if schedule else [])
        missed = misses(figures, targets)
        client = _guards(batch, m)
        if schedule is not None and schedule.lateness_p99_ms() > batch.loop_lag_limit_ms:
            client.append(f"the load generator sent its requests {schedule.lateness_p99_ms():.0f} ms late (p99)")
        problems.extend(f"probe {level.label}: {text}" for text in client)
        kept = {k: figures.get(k) for k in PROBE_FIGURES}
        kept["goodput_req_s"] = goodput(records, targets, m.duration_s)
        burst = width if batch.cold_start_burst else None
        seen.append({"load": load, "met": not missed and not client, "missed": missed + client, "burst": burst, **kept})
        return Probe(load, tuple(missed + client), kept)

    result = search(probe, workload.low, workload.high, workload.resolution, workload.variable == "concurrency")
    best = next((p for p in seen if p["load"] == result.load), None)
    figures: dict[str, Any] = {
        "workload": workload.name,
        "variable": workload.variable,
        "slo": targets,
        "capacity": result.load,
        "capacity_said": result.said(),
        "bounded": result.bounded,
        "goodput_req_s": best["goodput_req_s"] if best else None,
        "probes": seen,
        "input_len": batch.input_len,
        "output_len": batch.output_len,
        "api": batch.api,
        "sources": "token counts: server usage per request; times: client clock (perf_counter)",
    }
    return Measured(
        group=f"slo {workload.name}: 1 / capacity ({workload.variable})",
        samples=[1 / result.load] if result.load else [],
        extra_info=figures,
        problems=problems,
    )


def run_agreement(server: Server, workload: AgreementWorkload) -> tuple[list[agreement.Output], list[str]]:
    """Each prompt's greedy output with its top-k log-probabilities, after a cache flush (every row starts from the
    same empty cache); the problems that make the outputs unusable (a failed request)."""
    import requests

    server.flush_cache()
    model = server.model_id()
    outputs: list[agreement.Output] = []
    for prompt in workload.prompts:
        try:
            response = requests.post(
                server.base_url + "/v1/completions",
                json=agreement.body(model, workload, prompt),
                headers=server.headers,
                timeout=workload.request_timeout,
            )
            if response.status_code != 200:
                server.ensure_alive()
                return outputs, [f"prompt {prompt!r}: HTTP {response.status_code}: {response.text[:300]}"]
            outputs.append(agreement.parse(prompt, response.json()))
        except (requests.RequestException, ValueError) as e:
            server.ensure_alive()  # a dead server raises ServerDied with the cause from its log
            return outputs, [f"prompt {prompt!r}: the request failed: {type(e).__name__}: {e}"]
    return outputs, []


def _guards(workload: BatchWorkload, m: metrics.LevelMetrics) -> list[str]:
    """Reasons the level's numbers would mislead; each fails the case (after the numbers are recorded)."""
    out = []
    if m.failed > workload.max_failed * m.requests:
        out.append(f"{m.failed} of {m.requests} requests failed (allowed: {workload.max_failed:.0%})")
    bad_tokens = m.tokens.usage_missing + m.tokens.prompt_mismatch
    if bad_tokens > workload.token_tolerance * max(m.completed, 1):
        out.append(
            f"token counts disagree: {m.tokens.usage_missing} requests without usage, {m.tokens.prompt_mismatch} "
            f"with a server prompt length other than the {workload.input_len} tokens sent (allowed: "
            f"{workload.token_tolerance:.0%} of requests)"
        )
    if m.tokens.extra_arrivals:
        out.append(
            f"{m.tokens.extra_arrivals} of {m.completed} requests had more token arrivals than their usage counts: "
            "the load generator took events without text for tokens (a client error), so ITL and TPOT are wrong"
        )
    if m.client.cpu_fraction > workload.client_cpu_limit:
        out.append(
            f"the load generator used {m.client.cpu_fraction:.0%} of a CPU core "
            f"(limit {workload.client_cpu_limit:.0%}): "
            "it may have been the bottleneck, so these are not the server's numbers; raise `client_processes`"
        )
    if m.client.lag_p99_ms > workload.loop_lag_limit_ms:
        out.append(
            f"the load generator's event loop lagged {m.client.lag_p99_ms:.0f} ms (p99; limit "
            f"{workload.loop_lag_limit_ms:g} ms): its timestamps are late"
        )
    return out
