"""The load generator's HTTP/SSE parsing, fed hand-made server answers split at every possible byte."""

from __future__ import annotations

import asyncio
import json

import pytest

from pytest_sglang_ablate.measure.loadgen import Connection, RequestRecord


def chunked(*events: bytes, crlf: bool = False) -> bytes:
    sep = b"\r\n\r\n" if crlf else b"\n\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(e + sep), e + sep) for e in events)
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body
        + b"0\r\n\r\n"
    )


def token(text: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "text": text, "finish_reason": None}]}).encode()


USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
DONE = b"data: [DONE]"


def feed(answer: bytes, cut: int | None = None, keep_text: bool = False) -> RequestRecord:
    """Deliver `answer` in two reads split at `cut` (or byte by byte when cut is -1)."""

    async def go() -> RequestRecord:
        proto = Connection()
        record = RequestRecord()
        proto.reset(record, keep_text)
        parts = (
            [answer[i : i + 1] for i in range(len(answer))]
            if cut == -1
            else [answer[:cut], answer[cut:]]
            if cut
            else [answer]
        )
        for part in parts:
            proto.data_received(part)
        assert proto.finished is not None and proto.finished.done()
        proto.finished.result()
        return record

    return asyncio.run(go())


STREAM = chunked(token("a"), token("b"), token("c"), USAGE, DONE)


@pytest.mark.parametrize("cut", [None, -1, *range(1, len(STREAM), 7)])
def test_a_stream_split_anywhere_gives_the_same_tokens_and_usage(cut: int | None) -> None:
    record = feed(STREAM, cut)
    assert (len(record.chunk_times), record.prompt_tokens, record.completion_tokens, record.error) == (3, 7, 3, None)


def test_crlf_separated_events_are_read() -> None:
    record = feed(chunked(token("a"), token("b"), USAGE, DONE, crlf=True))
    assert (len(record.chunk_times), record.completion_tokens) == (2, 3)


def test_sse_comments_are_not_tokens() -> None:
    record = feed(chunked(b": ping", token("a"), b": ping", USAGE, DONE))
    assert len(record.chunk_times) == 1


FINISH = b'data: {"choices":[{"index":0,"text":"","finish_reason":"length"}]}'
CHAT_FINISH = b'data: {"choices":[{"index":0,"delta":{"content":""},"finish_reason":"length"}]}'
ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'


@pytest.mark.parametrize("keep_text", [False, True], ids=["fast path", "text kept"])
def test_events_without_text_are_not_token_arrivals(keep_text: bool) -> None:
    # one event per token, then a finish-only event, usage and [DONE], as vLLM and SGLang stream
    record = feed(chunked(token("a"), token("b"), token("c"), FINISH, USAGE, DONE), keep_text=keep_text)
    assert (len(record.chunk_times), record.completion_tokens) == (3, 3)
    chat = feed(chunked(ROLE, token("a"), token("b"), token("c"), CHAT_FINISH, USAGE, DONE), keep_text=keep_text)
    assert len(chat.chunk_times) == 3


def test_text_found_without_parsing_json() -> None:
    from pytest_sglang_ablate.measure.loadgen import carries_text

    assert carries_text(token("x")) and carries_text(b'data: {"delta":{"content":"","reasoning_content":"r"}}')
    assert not carries_text(FINISH) and not carries_text(ROLE) and not carries_text(CHAT_FINISH)
    assert carries_text(b'data: {"text":"","meta_info":{"completion_tokens":1}}')  # native: every event a token
    assert carries_text(token('"quoted"'))  # an escaped quote first is still text
    partial = b'data: {"choices":[{"index":0,"text":"","finish_reason":null}]}'  # half a UTF-8 character
    assert carries_text(partial)


def test_chat_role_only_event_is_not_a_token_and_reasoning_is_kept_apart() -> None:
    role = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'
    think = b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}'
    say = b'data: {"choices":[{"index":0,"delta":{"content":"42"}}]}'
    record = feed(chunked(role, think, say, USAGE, DONE), keep_text=True)
    assert (record.text, record.reasoning, len(record.chunk_times)) == ("42", "hmm", 2)


def test_an_error_status_is_a_failed_request_with_the_servers_words() -> None:
    body = b'{"error": {"message": "bad request"}}'
    record = feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert record.error is not None and record.error.startswith("HTTP 400") and "bad request" in record.error


def test_a_body_ended_by_closing_the_connection_is_read() -> None:
    async def go() -> RequestRecord:
        proto = Connection()
        record = RequestRecord()
        proto.reset(record, False)
        proto.data_received(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + token("a") + b"\n\n" + USAGE + b"\n\n"
        )
        proto.connection_lost(None)
        assert proto.finished is not None
        proto.finished.result()
        return record

    record = asyncio.run(go())
    assert (len(record.chunk_times), record.completion_tokens) == (1, 3)


def native(text: str, completion: int, finished: bool) -> bytes:
    meta = {
        "prompt_tokens": 7,
        "completion_tokens": completion,
        "finish_reason": {"type": "length"} if finished else None,
    }
    return b"data: " + json.dumps({"text": text, "meta_info": meta}).encode()


NATIVE = chunked(native("a", 1, False), native("ab", 2, False), native("abc", 3, True), DONE)


@pytest.mark.parametrize("cut", [None, -1, *range(1, len(NATIVE), 11)])
def test_sglangs_native_stream_counts_tokens_from_the_last_meta_info(cut: int | None) -> None:
    record = feed(NATIVE, cut)
    assert (len(record.chunk_times), record.prompt_tokens, record.completion_tokens, record.error) == (3, 7, 3, None)


@pytest.mark.parametrize("cut", [None, -1, 17])
def test_a_native_stream_kept_as_text_is_the_last_events_whole_text(cut: int | None) -> None:
    record = feed(NATIVE, cut, keep_text=True)  # each event carries the text so far: taken, not appended
    assert (record.text, len(record.chunk_times), record.completion_tokens) == ("abc", 3, 3)
