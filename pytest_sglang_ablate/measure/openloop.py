"""Open-loop load: requests sent on a schedule of arrivals, whatever the server does (issue: capacity under a
latency target).

A closed loop (measure/loadgen.closed_loop) sends the next request when one finishes, so a slow server slows its
own load down and its latencies never show a queue. Here users arrive at a given rate, Poisson (exponential gaps
from a seeded generator) or evenly spaced, and each request is sent when its user arrives. Up to `max_in_flight`
are in flight at once; a user arriving while that many wait is held until one finishes, and that wait counts as
the user's: each record's `start` is the user's arrival, so time to first token and end-to-end latency include
the queueing a user would see. How late the client itself sent each request (the event loop waking up after the
arrival, never the cap) is kept apart: a client that falls behind its schedule measures itself, not the server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .loadgen import Client, Connection, LoopHealth, RequestRecord, watch_lag

POISSON, CONSTANT = "poisson", "constant"


def arrivals(rate: float, count: int, kind: str = POISSON, seed: int = 0) -> list[float]:
    """When each of `count` users arrives, in seconds from the level's start (the first at 0)."""
    if rate <= 0 or count <= 0:
        raise ValueError(f"arrivals need a rate and a count above 0, got rate {rate} and count {count}")
    if kind == CONSTANT:
        return [i / rate for i in range(count)]
    if kind != POISSON:
        raise ValueError(f"arrival kind {kind!r}: expected {POISSON} or {CONSTANT}")
    rng, now, out = random.Random(seed), 0.0, []
    for _ in range(count):
        out.append(now)
        now += rng.expovariate(rate)
    return out


@dataclass
class Schedule:
    """How well the client kept the schedule: its own lateness per request (seconds), and the most in flight."""

    lateness: list[float] = field(default_factory=list)
    held: int = 0  # requests that waited for a free slot under the cap (the server's queue, not the client's)
    most_in_flight: int = 0

    def lateness_p99_ms(self) -> float:
        ordered = sorted(self.lateness)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


async def open_loop(
    client: Client,
    requests: list[bytes],
    due: list[float],
    max_in_flight: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[RequestRecord], LoopHealth, Schedule]:
    """Send request i at `due[i]` seconds from now (keep-alive connections reused as they free up); records in
    request order, each starting at its user's arrival."""
    if len(due) != len(requests):
        raise ValueError(f"{len(requests)} requests but {len(due)} arrival times")
    records: list[RequestRecord | None] = [None] * len(requests)
    schedule, idle = Schedule(), list[Connection]()
    slots = asyncio.Semaphore(max_in_flight)
    in_flight = done = output_tokens = 0

    async def one(i: int, arrived: float) -> None:
        nonlocal in_flight, done, output_tokens
        if slots.locked():
            schedule.held += 1
        async with slots:
            in_flight += 1
            schedule.most_in_flight = max(schedule.most_in_flight, in_flight)
            conn = idle.pop() if idle else None
            record, conn = await client.send(conn, requests[i])
            record.start = arrived  # the user's wait for a slot is part of their latency
            records[i] = record
            in_flight -= 1
            done += 1
            output_tokens += record.completion_tokens or len(record.chunk_times)
            if conn is not None:
                idle.append(conn)

    stop = asyncio.Event()
    lags: list[float] = []
    watcher = asyncio.create_task(watch_lag(lags, stop))
    cpu0 = time.process_time()
    began = time.perf_counter() + 0.01  # a moment to set up, so the first arrival is not already late
    sent = []
    for i, offset in enumerate(due):
        arrival = began + offset
        wait = arrival - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        schedule.lateness.append(max(0.0, time.perf_counter() - arrival))
        sent.append(asyncio.create_task(one(i, arrival)))
        if progress is not None and i % 32 == 0:
            progress(done, output_tokens)
    await asyncio.gather(*sent)
    wall = time.perf_counter() - began
    stop.set()
    await watcher
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    if progress is not None:
        progress(done, output_tokens)
    lags.sort()
    health = LoopHealth(
        cpu_fraction=(time.process_time() - cpu0) / wall if wall > 0 else 0.0,
        lag_p99_ms=1000 * lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else 0.0,
        lag_max_ms=1000 * lags[-1] if lags else 0.0,
    )
    return [r for r in records if r is not None], health, schedule
