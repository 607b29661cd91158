"""The load generator: streamed requests over keep-alive HTTP/1.1, a closed loop of `concurrency` in flight.

Built for little work per streamed chunk (benchmarks/bench_client.py measures it against the seed's AsyncOpenAI
thread pool and SGLang's aiohttp client): an asyncio Protocol parses each TCP read in one pass, takes one clock
reading per SSE event, and parses JSON only for the final usage event (or for every event when the text is
wanted, as for the single-request answer check).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DONE = b"data: [DONE]"
# a token's text: a non-empty string after one of these keys (one regex search per event, no JSON parsing)
TEXT = re.compile(rb'"(?:text|content|reasoning_content)"\s*:\s*"(?!")')
EMPTY_TEXT = re.compile(rb'"(?:text|content)"\s*:\s*""')
FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')  # a reason given, not null


def carries_text(event: bytes) -> bool:
    """Whether an SSE event is a token arrival, found without parsing JSON. An event with text is one. An event
    with empty text is one too while the stream goes on: a token that decodes to nothing yet (part of a UTF-8
    character; vLLM sends those). It is not one when it only says why the stream ended (a finish-only event), nor
    is the role-only first event of a chat stream or a usage event. SGLang's native stream counts a token in
    every event (`meta_info`)."""
    if TEXT.search(event) or b'"meta_info"' in event:
        return True
    return bool(EMPTY_TEXT.search(event)) and b'"role"' not in event and not FINISHED.search(event)


@dataclass
class RequestRecord:
    """What the client saw of one request (perf_counter seconds)."""

    start: float = 0.0
    end: float = 0.0
    chunk_times: list[float] = field(default_factory=list)  # arrival of each content event
    prompt_tokens: int | None = None  # from the server's usage
    completion_tokens: int | None = None
    error: str | None = None
    text: str = ""  # only with keep_text
    reasoning: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class Connection(asyncio.Protocol):
    """One keep-alive connection; parses status, headers, chunked or sized bodies, and SSE events."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.reset(None, False)

    def reset(self, record: RequestRecord | None, keep_text: bool) -> None:
        self.record, self.keep_text = record, keep_text
        self.state = "head"
        self.status = 0
        self.chunked = False
        self.until_close = False
        self.crlf = False
        self.remaining = 0
        self.sse = b""
        self.body = b""
        self.last = b""
        self.finished: asyncio.Future[None] | None = asyncio.get_event_loop().create_future() if record else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.until_close and exc is None and self.finished is not None and not self.finished.done():
            self._complete()  # a body delimited by the end of the connection
            return
        if self.finished is not None and not self.finished.done():
            self.finished.set_exception(ConnectionError(f"connection closed by the server ({exc or 'EOF'})"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parse(data)
        except (ValueError, IndexError) as e:  # not HTTP as we know it: fail this request, drop the connection
            if self.finished is not None and not self.finished.done():
                self.finished.set_exception(ValueError(f"cannot parse the server's answer: {e!r}"))
            if self.transport is not None:
                self.transport.close()

    def _parse(self, data: bytes) -> None:
        now = time.perf_counter()  # one clock reading per TCP read: every event in it arrived then
        buf = self.buf + data if self.buf else data
        pos = 0
        payloads: list[bytes] = []  # the HTTP chunks of this read, handed to the SSE parser in one piece
        while self.finished is not None and not self.finished.done():
            if self.state == "chunks":
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(buf[pos:eol].split(b";")[0], 16)
                if size == 0:  # the last chunk: "0\r\n" then the (empty) trailer's "\r\n"
                    if len(buf) < eol + 4:
                        break
                    self._payload(payloads, now)
                    payloads = []
                    self._complete()
                    pos = eol + 4
                    break
                end = eol + 2 + size
                if len(buf) < end + 2:
                    break
                payloads.append(buf[eol + 2 : end])
                pos = end + 2
            elif self.state == "head":
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    break
                lines = buf[pos:end].split(b"\r\n")
                self.status = int(lines[0].split()[1])
                headers = {
                    k.strip().lower(): v.strip() for k, v in (ln.split(b":", 1) for ln in lines[1:] if b":" in ln)
                }
                self.chunked = headers.get(b"transfer-encoding", b"").lower() == b"chunked"
                self.until_close = not self.chunked and b"content-length" not in headers
                self.remaining = int(headers.get(b"content-length", b"0"))
                self.state = "chunks" if self.chunked else "sized"
                pos = end + 4
                if not self.chunked and not self.until_close and self.remaining == 0:
                    self._complete()
                    break
            else:  # "sized", or until the server closes the connection
                take = len(buf) - pos if self.until_close else min(self.remaining, len(buf) - pos)
                self.body += buf[pos : pos + take]
                self.remaining -= take
                pos += take
                if self.remaining == 0 and not self.until_close:
                    self._complete()
                break
        if payloads:
            self._payload(payloads, now)
        self.buf = buf[pos:]

    def _payload(self, payloads: list[bytes], now: float) -> None:
        data = b"".join(payloads)
        if self.status != 200:
            self.body += data
            return
        if self.crlf or (not self.sse and b"\r\n\r\n" in data[:4096]):
            self.crlf = True  # SSE allows CRLF line ends: normalise once per response, not per event
            data = data.replace(b"\r\n", b"\n")
        events = (self.sse + data).split(b"\n\n")
        self.sse = events.pop()  # an incomplete event waits for the next read
        event = self._event
        for e in events:
            event(e, now)

    def _event(self, event: bytes, now: float) -> None:
        record = self.record
        assert record is not None
        if event.startswith(DONE) or event.startswith(b":") or not event:
            return  # the end marker, an SSE comment (keep-alive ping), or an empty line
        if b'"usage"' in event and b'"usage":null' not in event:
            parsed = json.loads(event[5:])
            usage = parsed.get("usage") or {}
            record.prompt_tokens = usage.get("prompt_tokens")
            record.completion_tokens = usage.get("completion_tokens")
            if not parsed.get("choices"):
                return  # the usage-only event, after the last token
        self.last = event  # SGLang's native stream counts tokens in every event: the last one is read at the end
        if not carries_text(event):
            return  # a finish-only or role-only event: no token arrived
        if self.keep_text:
            parsed = json.loads(event[5:])
            if "meta_info" in parsed:  # SGLang's native stream: every event carries the whole text so far
                record.text = parsed.get("text") or ""
                record.chunk_times.append(now)
                return
            choice = (parsed.get("choices") or [{}])[0]
            delta = choice.get("delta", choice)
            text, reasoning = delta.get("content") or delta.get("text") or "", delta.get("reasoning_content") or ""
            if not text and not reasoning:
                return  # the role-only first event of a chat stream
            record.text += text
            record.reasoning += reasoning
        record.chunk_times.append(now)

    def _complete(self) -> None:
        assert self.record is not None and self.finished is not None
        if self.status != 200:
            self.record.error = f"HTTP {self.status}: {self.body[:300].decode('utf-8', 'replace')}"
        elif not self.chunked:
            now = time.perf_counter()
            for event in self.body.split(b"\n\n"):
                if event.startswith(b"data:"):
                    self._event(event, now)
        if self.record.completion_tokens is None and b'"meta_info"' in self.last:
            meta = json.loads(self.last[5:]).get("meta_info") or {}  # SGLang's native /generate stream
            self.record.prompt_tokens = meta.get("prompt_tokens")
            self.record.completion_tokens = meta.get("completion_tokens")
        self.finished.set_result(None)


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str | None = None

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.base_url)
        return parts.hostname or "127.0.0.1", parts.port or 80


def encode(endpoint: Endpoint, path: str, body: dict[str, Any]) -> bytes:
    """A whole HTTP request, built before timing starts."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    host, port = endpoint.host_port
    auth = f"Authorization: Bearer {endpoint.api_key}\r\n" if endpoint.api_key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\n{auth}Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class Client:
    """Keep-alive connections, one per concurrent stream."""

    def __init__(self, endpoint: Endpoint, timeout_s: float) -> None:
        self.endpoint, self.timeout_s = endpoint, timeout_s

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        host, port = self.endpoint.host_port
        _, proto = await loop.create_connection(Connection, host, port)
        return proto

    async def send(
        self, conn: Connection | None, request: bytes, keep_text: bool = False
    ) -> tuple[RequestRecord, Connection | None]:
        """One request on `conn` (or a new connection); returns the record and the connection to reuse."""
        record = RequestRecord()
        try:
            if conn is None or conn.transport is None:
                conn = await self._connect()
            conn.reset(record, keep_text)
            assert conn.transport is not None and conn.finished is not None
            record.start = time.perf_counter()
            conn.transport.write(request)
            await asyncio.wait_for(conn.finished, self.timeout_s)
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            record.error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            conn = None
        record.end = time.perf_counter()
        if conn is not None:
            conn.reset(None, False)
        return record, conn


@dataclass
class LoopHealth:
    """How busy the client was: if it was the bottleneck, its numbers are not the server's."""

    cpu_fraction: float = 0.0  # process CPU seconds / wall seconds (1.0 = one core fully busy)
    lag_p99_ms: float = 0.0  # how late the event loop woke up for a 5 ms timer, 99th percentile
    lag_max_ms: float = 0.0


async def watch_lag(lags: list[float], stop: asyncio.Event) -> None:
    period = 0.005
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - before - period)


async def closed_loop(
    client: Client, requests: list[bytes], concurrency: int, progress: Callable[[int, int], None] | None = None
) -> tuple[list[RequestRecord], LoopHealth]:
    """Keep exactly `concurrency` requests in flight until all are done; records in request order."""
    records: list[RequestRecord | None] = [None] * len(requests)
    next_index = 0
    done = 0
    output_tokens = 0

    async def worker() -> None:
        nonlocal next_index, done, output_tokens
        conn = None
        while next_index < len(requests):
            i = next_index
            next_index += 1
            record, conn = await client.send(conn, requests[i])
            records[i] = record
            done += 1
            output_tokens += record.completion_tokens or len(record.chunk_times)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    async def report(stop: asyncio.Event) -> None:
        while progress is not None and not stop.is_set():
            progress(done, output_tokens)
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    stop = asyncio.Event()
    lags: list[float] = []
    watchers = [asyncio.create_task(watch_lag(lags, stop)), asyncio.create_task(report(stop))]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(requests)))))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stop.set()
    await asyncio.gather(*watchers)
    if progress is not None:
        progress(done, output_tokens)
    lags.sort()
    health = LoopHealth(
        cpu_fraction=cpu / wall if wall > 0 else 0.0,
        lag_p99_ms=1000 * lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else 0.0,
        lag_max_ms=1000 * lags[-1] if lags else 0.0,
    )
    return [r for r in records if r is not None], health


def _child(
    endpoint: Endpoint, timeout_s: float, requests: list[bytes], concurrency: int, conn: Any, counters: Any
) -> None:
    def progress(done: int, tokens: int) -> None:
        counters[0], counters[1] = done, tokens

    records, health = asyncio.run(closed_loop(Client(endpoint, timeout_s), requests, concurrency, progress))
    conn.send((records, health))
    conn.close()


def closed_loop_processes(
    endpoint: Endpoint,
    timeout_s: float,
    requests: list[bytes],
    concurrency: int,
    processes: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[RequestRecord], LoopHealth]:
    """The closed loop split over `processes` client processes, for loads one core cannot drive.

    Each process keeps its share of the concurrency in flight over its share of the requests; perf_counter is
    the system-wide monotonic clock, so their records share one time base. The health reported is the busiest
    process's."""
    import multiprocessing

    if processes <= 1:
        return asyncio.run(closed_loop(Client(endpoint, timeout_s), requests, concurrency, progress))
    ctx = multiprocessing.get_context("fork")
    shares = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    shares = [s for s in shares if s > 0]
    bounds = [0]
    for s in shares:
        bounds.append(bounds[-1] + round(len(requests) * s / concurrency))
    bounds[-1] = len(requests)
    children = []
    for i, share in enumerate(shares):
        receiver, sender = ctx.Pipe(duplex=False)
        counters = ctx.Array("q", 2, lock=False)
        proc = ctx.Process(
            target=_child, args=(endpoint, timeout_s, requests[bounds[i] : bounds[i + 1]], share, sender, counters)
        )
        proc.start()
        sender.close()
        children.append((proc, receiver, counters))
    results: list[tuple[list[RequestRecord], LoopHealth]] = []
    for proc, receiver, _ in children:
        while not receiver.poll(0.5):
            if progress is not None:
                progress(sum(c[0] for _, _, c in children), sum(c[1] for _, _, c in children))
            if not proc.is_alive() and not receiver.poll(0):
                raise RuntimeError(f"a load-generator process exited with code {proc.exitcode}")
        results.append(receiver.recv())
        proc.join()
    records = [r for recs, _ in results for r in recs]
    health = LoopHealth(
        cpu_fraction=max(h.cpu_fraction for _, h in results),
        lag_p99_ms=max(h.lag_p99_ms for _, h in results),
        lag_max_ms=max(h.lag_max_ms for _, h in results),
    )
    if progress is not None:
        progress(len(records), sum(r.completion_tokens or len(r.chunk_times) for r in records))
    return records, health
