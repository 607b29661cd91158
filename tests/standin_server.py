"""A scripted stand-in for `python -m sglang.launch_server`: SGLang's command line and HTTP surface, no GPU.

Behaviour comes from the STANDIN environment variable (comma-separated), so a matrix row picks it with `env:`:

  slow_start=S        answer /health with 503 for S seconds, then 200
  never_ready         always 503
  exit=CLASS          die during startup with SGLang's text for CLASS: graph_capture, oom_torch, oom_kv,
                      port_in_use, plain (exit 1, no message); or as SGLang 0.5 does (the scheduler's traceback
                      chain, "Received sigquit", kill_process_tree, exit -9; tests/sglang_logs.py):
                      scheduler_crash (TypeError at load), capture_stub, capture_oom, capture_capturing (an
                      import stub, an OOM, a real capture error inside CUDA graph capture), load_stub, load_import,
                      rank_no_gpu (TP rank 1's "invalid device ordinal" at distributed init: tp 2, one GPU)
  oom_above=F         die with OOM unless --mem-fraction-static <= F
  children=N          start N child processes (and each a grandchild), like SGLang's scheduler/detokenizer
  stubborn            those children ignore SIGTERM (teardown must escalate to SIGKILL)
  crash_on_request    a request to /generate or /v1/* kills the whole server tree, as a scheduler crash does
  exit_on_request     a request to /generate or /v1/* makes the main process exit(1), abandoning its children
  drift=KEY:VALUE     report KEY as VALUE in /server_info whatever the command line said
  gpu=GIB             (GPU machines only) the server and each child hold GIB of GPU memory through torch
  fake_gpu_mem=GIB    hold GIB on each of its CUDA_VISIBLE_DEVICES in the fake NVML of tests/fake_nvml (its
                      FAKE_NVML_STATE file); `fake_gpu_linger=S`: the "driver" frees it S seconds after the server
                      stops (never if it is killed). The start record says what its GPUs used before it took any
  tok_rate=R          each streamed request gets a token every 1/R s (default 1000; 0 = as fast as possible)
  speed_sigma=S       launch noise: this launch's token rate is multiplied by exp(N(0, S)), the i-th draw of a
                      generator seeded with speed_seed=K (default 0), where i counts the launches in the file
                      STANDIN_LAUNCHES (each start of a stand-in with that file takes the next number)
  ttft_ms=T           the first token of each request comes T ms after the request (default 0)
  max_running=N       generate for at most N requests at once; the others wait in a queue (a server at capacity)
  answer=TEXT         the chat answer's text, cycled over the tokens (default "tok"); reasoning=K puts the
                      first K tokens into reasoning_content instead
  burst=N             with tok_rate=0, send N token chunks per socket write (a fast server under load), default 1
  no_usage            streams end without the usage chunk
  finish_event        end each stream with a finish-only event with empty text (as vLLM does), before usage
  extra_event         send one content event more than the tokens the usage counts (a broken server)
  prompt_offset=N     report N more prompt tokens than were sent (a tokenizer disagreeing with the client)
  fail_every=N        every Nth generation request answers 500
  diverge=P:HOW       a non-streamed completion with `logprobs` (the agreement workload) leaves the default greedy
                      output at token P: HOW=close (the runner-up wins) or far (a token the default never ranks);
                      --quantization fp8 does it far at 2, --kv-cache-dtype fp8_* close at 4

Streaming (POST /v1/completions, /v1/chat/completions with "stream": true) answers like SGLang and vLLM: one
`data:` chunk per token, then `{"choices": [], "usage": {...}}` when stream_options.include_usage is set, then
`data: [DONE]`. POST /generate answers like SGLang's native API: `input_ids` or `text` in, `sampling_params`, and
one `data:` event per token with the text so far and `meta_info` (prompt and completion tokens so far).
GET /standin_stats returns the server's own record: for every request its arrival, first and last token send
times (time.time()) and token counts, plus the most requests ever in flight at once.

Multi-node (`--nnodes N --node-rank R --dist-init-addr H:P`, as SGLang): rank 0 listens on H:P and answers
/health with 503 until every other rank has connected; a rank R > 0 connects to H:P (retrying for 60 s), serves
no HTTP, and exits 1 with a line in its log when rank 0 goes away; rank 0 exits 1 when a connected rank goes
away (as NCCL aborts, `peer_loss_s` later: default 1). `exit_rank=R` limits `exit=` to rank R. `rank_exit=R`
with `exit_after=S` makes rank R die like a crashing SGLang scheduler (traceback, kill_process_tree, exit -9)
S seconds after it connected (rank 0: after all ranks connected). With `exit_at_request=N` instead, rank R > 0
dies that way when rank 0 receives its Nth generation request (mid-level, whatever the machine's load).

STANDIN_RECORD=FILE appends one JSON line when the server starts ({"pid", "cuda_visible_devices", "port",
"started", "cpus"}) and one when it shuts down ({"pid", "ended"}), for checking GPU and port sharing between servers.
`kill_worker_after=S` SIGKILLs the process that started our supervisor (a pytest-xdist worker) S seconds after
start, as an OOM killer or a crash would.

STANDIN_PIDS=FILE appends every pid the stand-in starts (itself included); STANDIN_READY=FILE gets, at start,
the time.time() from which /health answers 200 (for measuring how soon a poller notices). SGLang's own silent
changes are imitated: --enable-dp-attention with dp 1 is reported off, NEXTN is reported as EAGLE, speculative
decoding caps max_running_requests at 48.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, ClassVar

from sglang_logs import scheduler_failure

OPTIONS = {k: v for k, _, v in (o.partition("=") for o in os.environ.get("STANDIN", "").split(",") if o)}
SGLANG_05_DEATHS = {  # exit=KIND: (the innermost cause in sglang_logs.CAUSES, the phase it is raised in)
    "scheduler_crash": ("nonetype", "load"),
    "capture_stub": ("stub", "capture"),
    "capture_oom": ("oom", "capture"),
    "capture_capturing": ("capturing", "capture"),
    "load_stub": ("stub", "load"),
    "load_import": ("import", "load"),
    "running_crash": ("nonetype", "running"),  # crash_on_request
    "rank_no_gpu": ("ordinal", "dist"),  # TP rank 1 with one visible GPU
}
DEATH_TEXT = {
    "graph_capture": "Exception: Capture cuda graph failed: CUDA error: "
    "operation not permitted when stream is capturing\n"
    "Possible solutions:\n1. set --mem-fraction-static to a smaller value (e.g., 0.8 or 0.7)",
    "oom_torch": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. "
    "GPU 0 has a total capacity of 95.00 GiB",
    "oom_kv": "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.",
    "port_in_use": "OSError: [Errno 98] error while attempting to bind on address ('127.0.0.1', 30000): "
    "Address already in use",
    "plain": "",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}", flush=True)


def record(event: dict[str, Any]) -> None:
    if os.environ.get("STANDIN_RECORD"):
        with open(os.environ["STANDIN_RECORD"], "a") as f:
            f.write(json.dumps({"pid": os.getpid(), **event}) + "\n")


def record_pid(pid: int) -> None:
    if os.environ.get("STANDIN_PIDS"):
        with open(os.environ["STANDIN_PIDS"], "a") as f:
            f.write(f"{pid}\n")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sglang.launch_server")
    p.add_argument("--model-path", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=30000)
    for flag in (
        "tp-size",
        "dp-size",
        "max-running-requests",
        "speculative-num-steps",
        "speculative-eagle-topk",
        "speculative-num-draft-tokens",
        "ep-size",
    ):
        p.add_argument(f"--{flag}", type=int)
    p.add_argument("--nnodes", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--dist-init-addr")
    p.add_argument("--mem-fraction-static", type=float)
    p.add_argument("--speculative-algorithm")
    p.add_argument("--attention-backend")
    p.add_argument("--api-key")
    p.add_argument("--quantization")  # fp8: greedy outputs diverge far from the unquantized ones (agreement)
    p.add_argument("--kv-cache-dtype")  # fp8_e4m3 / fp8_e5m2: they diverge, but close
    for flag in (
        "trust-remote-code",
        "enable-torch-compile",
        "disable-cuda-graph",
        "disable-radix-cache",
        "enable-dp-attention",
    ):
        p.add_argument(f"--{flag}", action="store_true")
    return p.parse_args(argv)


def server_info(args: argparse.Namespace) -> dict[str, Any]:
    info: dict[str, Any] = {k: v for k, v in vars(args).items()}
    info["dp_size"] = info["dp_size"] or 1
    if info["enable_dp_attention"] and info["dp_size"] == 1:
        info["enable_dp_attention"] = False  # SGLang: silently off with dp 1
    if info["speculative_algorithm"]:
        info["speculative_algorithm"] = {"NEXTN": "EAGLE"}.get(
            info["speculative_algorithm"].upper(), info["speculative_algorithm"]
        )
        if info["max_running_requests"] is None:
            info["max_running_requests"] = 48
    if "drift" in OPTIONS:
        key, value = OPTIONS["drift"].split(":", 1)
        info[key] = json.loads(value) if value[:1] in "0123456789tf[{" else value
    info["version"] = "0.0.0+standin"
    return info


def start_children(n: int, stubborn: bool) -> None:
    """Each child starts a grandchild, as SGLang's scheduler starts its own workers; like SGLang, the server
    only goes on (towards ready) once they are all up."""
    ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " if stubborn else ""
    ignore += hold_gpu_code()
    grandchild = f"{ignore}import sys, time; print('up', flush=True); time.sleep(3600)"
    child = (
        f"{ignore}import os, subprocess, sys, time; "
        f"g = subprocess.Popen([sys.executable, '-c', {grandchild!r}], stdout=subprocess.PIPE); g.stdout.readline(); "
        f"print(g.pid, flush=True); time.sleep(3600)"
    )
    for _ in range(n):
        proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        record_pid(proc.pid)
        assert proc.stdout is not None
        record_pid(int(proc.stdout.readline()))


def hold_gpu_code() -> str:
    if "gpu" not in OPTIONS:
        return ""
    size = int(float(OPTIONS["gpu"]) * 2**30)
    return f"import torch; _held = torch.empty({size}, dtype=torch.uint8, device='cuda'); torch.cuda.synchronize(); "


def die_like_a_scheduler(kind: str = "scheduler_crash") -> None:
    """SGLang's crash path: the child SIGQUITs the parent, which SIGKILLs its whole tree (returncode -9)."""
    cause, phase = SGLANG_05_DEATHS[kind]
    print(scheduler_failure(cause, phase, rank=1 if phase == "dist" else 0), end="", flush=True)
    os.killpg(os.getpgid(0), signal.SIGKILL)


class Stats:
    flushes = 0
    in_flight = 0
    max_in_flight = 0
    generated = 0
    requests: ClassVar[list[dict[str, Any]]] = []


def prompt_tokens(body: dict[str, Any]) -> int:
    prompt = body.get("prompt", body.get("input_ids", body.get("text")))
    if isinstance(prompt, list):
        n = len(prompt)
    elif isinstance(prompt, str):
        n = len(prompt.split())
    else:
        n = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return n + int(OPTIONS.get("prompt_offset") or 0)


def launch_speed() -> float:
    """speed_sigma=S: this launch's speed factor (1 without it); deterministic for a given seed and launch order."""
    sigma = float(OPTIONS.get("speed_sigma") or 0)
    if not sigma:
        return 1.0
    import fcntl
    import math
    import random

    with open(os.environ["STANDIN_LAUNCHES"], "a+") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)  # concurrent starts (pytest-xdist) take distinct numbers
        counter.seek(0)
        launch = len(counter.read())
        counter.write("x")
    rng = random.Random(int(OPTIONS.get("speed_seed") or 0))
    draws = [rng.gauss(0, sigma) for _ in range(launch + 1)]
    return math.exp(draws[-1])


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ready_at = time.monotonic() + float(OPTIONS.get("slow_start") or 0)
        rate = float(OPTIONS.get("tok_rate") or 1000) * launch_speed()
        self.interval = 1 / rate if rate > 0 else 0.0
        self.ttft = float(OPTIONS.get("ttft_ms") or 0) / 1000
        self.answer = OPTIONS.get("answer") or "tok"
        self.reasoning = int(OPTIONS.get("reasoning") or 0)
        self.burst = int(OPTIONS.get("burst") or 1) if self.interval == 0 else 1
        self.slots = asyncio.Semaphore(int(OPTIONS["max_running"])) if "max_running" in OPTIONS else None
        self.ranks_ready = args.nnodes <= 1  # rank 0 of several: ready once every rank has connected
        self.peers: list[asyncio.StreamWriter] = []  # rank 0: the other ranks' rendezvous connections

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                await self.route(method, path.split("?")[0], body, writer, headers)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def reply(self, writer: asyncio.StreamWriter, code: int, body: Any) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )

    def authorized(self, headers: dict[str, str]) -> bool:
        return not self.args.api_key or headers.get("authorization") == f"Bearer {self.args.api_key}"

    async def route(
        self, method: str, path: str, raw: bytes, writer: asyncio.StreamWriter, headers: dict[str, str]
    ) -> None:
        if method == "GET" and path in ("/health", "/health_generate"):
            ready = "never_ready" not in OPTIONS and time.monotonic() >= self.ready_at and self.ranks_ready
            self.reply(writer, 200 if ready else 503, {} if ready else {"error": "starting"})
        elif method == "GET" and path in ("/server_info", "/get_server_info"):
            self.reply(writer, 200, server_info(self.args))
        elif method == "GET" and path == "/v1/models":
            self.reply(writer, 200, {"object": "list", "data": [{"id": self.args.model_path, "object": "model"}]})
        elif method == "GET" and path == "/standin_stats":
            self.reply(
                writer,
                200,
                {"max_in_flight": Stats.max_in_flight, "requests": Stats.requests, "flushes": Stats.flushes},
            )
        elif method == "POST" and path == "/flush_cache":
            Stats.flushes += 1
            self.reply(writer, 200, b"Cache flushed.\n")
        elif (
            method == "POST"
            and path in ("/v1/completions", "/v1/chat/completions", "/generate")
            and not self.authorized(headers)
        ):
            self.reply(writer, 401, {"error": "invalid api key"})
        elif method == "POST" and path in ("/v1/completions", "/v1/chat/completions", "/generate"):
            if "crash_on_request" in OPTIONS:
                die_like_a_scheduler("running_crash")
            if "exit_on_request" in OPTIONS:
                log("Child process unexpectedly failed with an exit code 1. pid=0")
                os._exit(1)
            await self.generate(path, json.loads(raw or b"{}"), writer)
        else:
            self.reply(writer, 404, {"error": "not found"})
        await writer.drain()

    async def generate(self, path: str, body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        Stats.generated += 1
        if OPTIONS.get("exit_at_request") == str(Stats.generated):  # tell rank `rank_exit` to die now
            for peer in self.peers:
                peer.write(b"die\n")
        if OPTIONS.get("fail_every") and Stats.generated % int(OPTIONS["fail_every"]) == 0:
            self.reply(writer, 500, {"error": {"message": "scripted failure"}})
            return
        chat = path.endswith("chat/completions")
        native = path == "/generate"  # SGLang's own API: cumulative text and meta_info in every event
        sampling = body.get("sampling_params") or {}
        n = int(body.get("max_completion_tokens") or body.get("max_tokens") or sampling.get("max_new_tokens") or 16)
        record: dict[str, Any] = {"arrival": time.time(), "path": path, "prompt_tokens": prompt_tokens(body)}
        record["completion_tokens"] = n
        Stats.in_flight += 1
        Stats.max_in_flight = max(Stats.max_in_flight, Stats.in_flight)
        try:
            if body.get("logprobs") and not chat and not body.get("stream"):
                self.reply(writer, 200, self.greedy(body, record))
                return
            if not body.get("stream"):
                text = "".join(self.token(i) for i in range(n))
                choice = (
                    {"index": 0, "message": {"role": "assistant", "content": text}}
                    if chat
                    else {"index": 0, "text": text}
                )
                self.reply(writer, 200, {"choices": [choice], "usage": self.usage(record)})
                return
            if self.slots is not None:
                await self.slots.acquire()  # queued until a running request finishes
                record["admitted"] = time.time()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            if chat:
                self.event(writer, {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            start = time.monotonic() + self.ttft
            pending: list[bytes] = []
            for i in range(n):
                due = start + i * self.interval
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif i % 64 == 0:
                    await asyncio.sleep(0)  # as fast as possible, but let other streams in
                finish = "length" if i == n - 1 and "finish_event" not in OPTIONS else None
                chunk: dict[str, Any]
                if native:
                    meta: dict[str, Any] = {"prompt_tokens": record["prompt_tokens"], "completion_tokens": i + 1}
                    meta["finish_reason"] = {"type": "length", "length": n} if finish else None
                    chunk = {"text": "".join(self.token(j) for j in range(i + 1)), "meta_info": meta}
                elif chat:
                    key = "reasoning_content" if i < self.reasoning else "content"
                    chunk = {"choices": [{"index": 0, "delta": {key: self.token(i)}, "finish_reason": finish}]}
                else:
                    chunk = {"choices": [{"index": 0, "text": self.token(i), "finish_reason": finish}]}
                pending.append(self.encode(chunk))
                if len(pending) >= self.burst or i == n - 1:
                    writer.write(b"".join(pending))
                    pending.clear()
                now = time.time()
                record.setdefault("first", now)
                record["last"] = now
                if (
                    i and i % 40 == 0 and self.interval
                ):  # SGLang's decode log line, every --decode-log-interval (40) iterations
                    rate = 40 / (now - record.get("logged", record["first"])) if i > 40 else i / (now - record["first"])
                    record["logged"] = now
                    log(
                        f"Decode batch, #running-req: {Stats.in_flight}, #token: {i}, token usage: 0.01, "
                        "cuda graph: True, "
                        f"gen throughput (token/s): {rate:.2f}, #queue-req: 0, "
                    )
                await writer.drain()
            if "extra_event" in OPTIONS and not native:  # one content event more than the tokens counted
                self.event(writer, {"choices": [{"index": 0, "text": "!", "delta": {"content": "!"}}]})
            if "finish_event" in OPTIONS and not native:  # as vLLM ends a stream: a finish-only event, no text
                delta = {"delta": {"content": ""}} if chat else {"text": ""}
                self.event(writer, {"choices": [{"index": 0, **delta, "finish_reason": "length"}]})
            if body.get("stream_options", {}).get("include_usage") and "no_usage" not in OPTIONS:
                self.event(writer, {"choices": [], "usage": self.usage(record)})
            self.event(writer, None)
            writer.write(b"0\r\n\r\n")
        finally:
            if self.slots is not None and "admitted" in record:
                self.slots.release()
            Stats.in_flight -= 1
            record["end"] = time.time()
            Stats.requests.append(record)

    VOCAB: ClassVar[list[str]] = [f" w{i}" for i in range(40)]

    def divergence(self) -> tuple[int, str] | None:
        """Where (token position) and how (close or far) this server's greedy outputs leave the default ones."""
        if "diverge" in OPTIONS:
            at, _, how = OPTIONS["diverge"].partition(":")
            return int(at), how or "far"
        if self.args.quantization == "fp8":
            return 2, "far"
        if (self.args.kv_cache_dtype or "auto").startswith("fp8"):
            return 4, "close"
        return None

    def greedy(self, body: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed completion with top-k log-probabilities, as SGLang's and vLLM's OpenAI API give them: a
        deterministic function of the prompt, left at the divergence point where `divergence()` says."""
        import zlib

        n, k = record["completion_tokens"], int(body["logprobs"])
        base = zlib.crc32(str(body.get("prompt")).encode())
        split = self.divergence()
        tokens, top = [], []
        for i in range(n):
            idx = (base + 7 * i) % len(self.VOCAB)
            ranked = [(idx + j) % len(self.VOCAB) for j in range(k)]
            if split is not None and i == split[0]:
                if split[1] == "close":  # the runner-up wins: each side's token is in the other's top-k
                    ranked = [ranked[1], ranked[0], *ranked[2:]] if k > 1 else [(idx + 1) % len(self.VOCAB)]
                else:  # a token the default never ranks
                    ranked = [(idx + 20 + j) % len(self.VOCAB) for j in range(k)]
            elif split is not None and i > split[0]:
                idx = (base + 7 * i + 3) % len(self.VOCAB)  # the continuation goes its own way
                ranked = [(idx + j) % len(self.VOCAB) for j in range(k)]
            tokens.append(self.VOCAB[ranked[0]])
            top.append({self.VOCAB[t]: round(-0.1 - 0.7 * j, 3) for j, t in enumerate(ranked)})
        choice = {"index": 0, "text": "".join(tokens), "logprobs": {"tokens": tokens, "top_logprobs": top}}
        return {"choices": [choice], "usage": self.usage(record)}

    def token(self, i: int) -> str:
        j = i - self.reasoning if i >= self.reasoning else i
        return self.answer[j % len(self.answer)] if self.answer else "tok"

    @staticmethod
    def usage(record: dict[str, Any]) -> dict[str, int]:
        p, c = record["prompt_tokens"], record["completion_tokens"]
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    @staticmethod
    def encode(chunk: Any) -> bytes:
        """One SSE event as one HTTP chunk."""
        payload = (
            b"data: " + (b"[DONE]" if chunk is None else json.dumps(chunk, separators=(",", ":")).encode()) + b"\n\n"
        )
        return b"%x\r\n%s\r\n" % (len(payload), payload)

    def event(self, writer: asyncio.StreamWriter, chunk: Any) -> None:
        writer.write(self.encode(chunk))


def rank_exit_later(rank: int) -> None:
    """rank_exit=R, exit_after=S: this rank dies like a crashing SGLang scheduler S seconds from now."""
    if OPTIONS.get("rank_exit") == str(rank) and "exit_after" in OPTIONS:  # else at `exit_at_request`
        asyncio.get_running_loop().call_later(float(OPTIONS["exit_after"]), die_like_a_scheduler)


async def rendezvous(server: Server, args: argparse.Namespace) -> asyncio.Server:
    """Rank 0 of several: wait for every other rank on the --dist-init-addr port, and die when one goes away."""
    host, port = args.dist_init_addr.rsplit(":", 1)
    joined: set[int] = set()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await joined_until_gone(reader, writer)
        except asyncio.CancelledError:
            pass  # shutting down

    async def joined_until_gone(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rank = int((await reader.readline()).split()[1])
        joined.add(rank)
        server.peers.append(writer)
        log(f"rank {rank} joined from {writer.get_extra_info('peername')[0]} ({len(joined) + 1}/{args.nnodes})")
        if len(joined) == args.nnodes - 1:
            server.ranks_ready = True
            log("all ranks joined")
            rank_exit_later(0)
        await reader.read()  # until the rank goes away
        # as NCCL's watchdog notices a lost peer: not at once (SGLang: a collective's timeout, or its watchdog)
        await asyncio.sleep(float(OPTIONS.get("peer_loss_s") or 1))
        log(f"Scheduler hit an exception: RuntimeError: NCCL communicator was aborted: rank {rank} went away")
        os.killpg(os.getpgid(0), signal.SIGKILL)

    return await asyncio.start_server(peer, host, int(port), reuse_address=True)


async def follow(args: argparse.Namespace) -> None:
    """A rank R > 0: join rank 0 at --dist-init-addr, then live exactly as long as it does."""
    host, port = args.dist_init_addr.rsplit(":", 1)
    deadline = time.monotonic() + 60
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            break
        except OSError:
            if time.monotonic() > deadline:
                log(f"RuntimeError: cannot reach rank 0 at {args.dist_init_addr} within 60 s")
                sys.exit(1)
            await asyncio.sleep(0.1)
    writer.write(f"rank {args.node_rank}\n".encode())
    await writer.drain()
    log(f"node rank {args.node_rank} joined rank 0 at {args.dist_init_addr}")
    rank_exit_later(args.node_rank)
    while line := await reader.readline():  # rank 0 says "die" at its request `exit_at_request`
        if line == b"die\n" and OPTIONS.get("rank_exit") == str(args.node_rank):
            die_like_a_scheduler()
    log(f"RuntimeError: rank 0 at {args.dist_init_addr} went away; node rank {args.node_rank} exits")
    sys.exit(1)


async def serve(args: argparse.Namespace) -> None:
    server = Server(args)
    if args.nnodes > 1 and args.node_rank > 0:
        await follow(args)
        return
    if args.nnodes > 1:
        await rendezvous(server, args)
    listener = await asyncio.start_server(server.handle, args.host, args.port, reuse_address=True, backlog=1024)
    log(f"Uvicorn running on http://{args.host}:{args.port} (Press CTRL+C to quit)")
    gpus = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")
    used_before = fake_gpu_take(gpus) if "fake_gpu_mem" in OPTIONS else None
    record(
        {
            "gpu_used_at_start": used_before,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "cuda_device_order": os.environ.get("CUDA_DEVICE_ORDER"),
            "port": args.port,
            "started": time.time(),
            "cpus": sorted(os.sched_getaffinity(0)),
        }
    )
    if OPTIONS.get("kill_worker_after"):
        import psutil

        worker = psutil.Process(os.getppid()).ppid()  # our parent is the supervisor; its parent, the worker
        asyncio.get_running_loop().call_later(float(OPTIONS["kill_worker_after"]), os.kill, worker, signal.SIGKILL)
    loop = asyncio.get_running_loop()
    loop.call_later(max(0.0, server.ready_at - time.monotonic()), log, "The server is fired up and ready to roll!")
    stop = asyncio.Event()
    if "stubborn" not in OPTIONS:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with listener:
        await stop.wait()
    record({"ended": time.time()})
    if "fake_gpu_mem" in OPTIONS:
        fake_gpu_event(gpus, until=time.time() + float(OPTIONS.get("fake_gpu_linger", 0)))
    log("Shutting down")


def fake_gpu_event(gpus: list[str], **what: float) -> None:
    with open(os.environ["FAKE_NVML_STATE"], "a") as f:
        f.writelines(json.dumps({"gpu": g, "pid": os.getpid(), **what}) + "\n" for g in gpus)


def fake_gpu_take(gpus: list[str]) -> dict[str, int]:
    """Take fake_gpu_mem GiB on each GPU; returns what each used before (tests/fake_nvml)."""
    import pynvml  # the fake one, on PYTHONPATH

    before = {g: sum(pynvml.held(g).values()) for g in gpus}
    fake_gpu_event(gpus, used=int(float(OPTIONS["fake_gpu_mem"]) * 2**30))
    return before


def main() -> None:
    args = parse(sys.argv[1:])
    record_pid(os.getpid())
    log(f"server_args={vars(args)}")
    if "gpu" in OPTIONS:
        exec(hold_gpu_code(), globals())
    if "children" in OPTIONS:
        start_children(int(OPTIONS["children"]), "stubborn" in OPTIONS)
    if "stubborn" in OPTIONS:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    death = OPTIONS.get("exit") if OPTIONS.get("exit_rank", str(args.node_rank)) == str(args.node_rank) else None
    if "oom_above" in OPTIONS and (args.mem_fraction_static or 0.9) > float(OPTIONS["oom_above"]):
        death = "oom_kv"
    if death in SGLANG_05_DEATHS:
        die_like_a_scheduler(death)
    if death:
        log(DEATH_TEXT[death])
        sys.exit(1)
    if os.environ.get("STANDIN_READY"):
        with open(os.environ["STANDIN_READY"], "w") as f:
            f.write(repr(time.time() + float(OPTIONS.get("slow_start") or 0)))
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
