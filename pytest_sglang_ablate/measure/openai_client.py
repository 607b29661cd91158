"""`client: openai` on a workload: the seed page's own method, for comparing with numbers measured that way.

A thread pool of `concurrency` threads, each with its own asyncio loop and `openai.AsyncOpenAI` client, each
sending one streamed request at a time until all are done (a closed loop, as ours). It records the same
`RequestRecord`s as our load generator, so the same figures and guards apply: a token arrival is a chunk with
text, token counts come from the stream's usage, the CPU guard reads this process's CPU share, and the loop-lag
guard reads how late a 5 ms timer thread woke up (the GIL the client threads hold is what delays it).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .loadgen import Endpoint, LoopHealth, RequestRecord


async def _stream(client: Any, body: dict[str, Any], record: RequestRecord, chat: bool) -> None:
    kwargs = {k: v for k, v in body.items() if k not in ("ignore_eos",)}
    extra = {"ignore_eos": body["ignore_eos"]} if "ignore_eos" in body else {}
    create = client.chat.completions.create if chat else client.completions.create
    record.start = time.perf_counter()
    stream = await create(**kwargs, extra_body=extra)
    async for chunk in stream:
        now = time.perf_counter()
        if chunk.choices:
            choice = chunk.choices[0]
            text = (choice.delta.content or "") if chat else (choice.text or "")
            if text:
                record.chunk_times.append(now)
                record.text += text
        if chunk.usage:
            record.prompt_tokens = chunk.usage.prompt_tokens
            record.completion_tokens = chunk.usage.completion_tokens
    record.end = time.perf_counter()


def closed_loop_openai(
    endpoint: Endpoint,
    timeout_s: float,
    bodies: list[dict[str, Any]],
    concurrency: int,
    chat: bool = False,
    ready: Callable[[], None] | None = None,
) -> tuple[list[RequestRecord], LoopHealth]:
    """Every body streamed through AsyncOpenAI clients, `concurrency` threads at a time; records in body order.
    Each thread makes its client (about 50 ms of CPU) before any request is sent, so that making them does not
    stagger the level's start; `ready` is called once they all are."""
    import openai

    records = [RequestRecord() for _ in bodies]
    indices = itertools.count()  # next() on a count is atomic under the GIL
    threads = min(concurrency, len(bodies))
    made = threading.Barrier(threads, action=ready)
    lags: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            time.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    async def thread_main() -> None:
        client = openai.AsyncOpenAI(
            base_url=f"{endpoint.base_url}/v1", api_key=endpoint.api_key or "none", timeout=timeout_s, max_retries=0
        )
        made.wait()
        try:
            while (i := next(indices)) < len(bodies):
                try:
                    await _stream(client, bodies[i], records[i], chat)
                except Exception as e:  # any client error is this request's failure
                    records[i].error = f"{type(e).__name__}: {e}"
                    records[i].end = time.perf_counter()
        finally:
            await client.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(asyncio.run, thread_main()) for _ in range(threads)]:
            future.result()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stop.set()
    watcher.join()
    lags.sort()
    health = LoopHealth(
        cpu_fraction=cpu / wall if wall > 0 else 0.0,
        lag_p99_ms=1000 * lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else 0.0,
        lag_max_ms=1000 * lags[-1] if lags else 0.0,
    )
    return records, health
