"""A scripted stand-in for `python -m sglang.launch_server`: SGLang's command line and HTTP surface, no GPU.

Behaviour comes from the STANDIN environment variable (comma-separated), so a matrix row picks it with `env:`:

  slow_start=S        answer /health with 503 for S seconds, then 200
  never_ready         always 503
  exit=CLASS          die during startup with SGLang's text for CLASS: graph_capture, oom_torch, oom_kv,
                      scheduler_crash, port_in_use, plain (exit 1, no message)
  oom_above=F         die with OOM unless --mem-fraction-static <= F
  children=N          start N child processes (and each a grandchild), like SGLang's scheduler/detokenizer
  stubborn            those children ignore SIGTERM (teardown must escalate to SIGKILL)
  crash_on_request    a request to /generate or /v1/* kills the whole server tree, as a scheduler crash does
  exit_on_request     a request to /generate or /v1/* makes the main process exit(1), abandoning its children
  drift=KEY:VALUE     report KEY as VALUE in /server_info whatever the command line said
  gpu=GIB             (GPU machines only) the server and each child hold GIB of GPU memory through torch

STANDIN_PIDS=FILE appends every pid the stand-in starts (itself included); STANDIN_READY=FILE gets, at start,
the time.time() from which /health answers 200 (for measuring how soon a poller notices). SGLang's own silent changes are imitated: --enable-dp-attention with
dp 1 is reported off, NEXTN is reported as EAGLE, speculative decoding caps max_running_requests at 48.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPTIONS = dict(
    (o.split("=", 1) + [""])[:2] for o in os.environ.get("STANDIN", "").split(",") if o  # type: ignore[misc]
)
DEATH_TEXT = {
    "graph_capture": "Exception: Capture cuda graph failed: CUDA error: operation not permitted when stream is capturing\n"
                     "Possible solutions:\n1. set --mem-fraction-static to a smaller value (e.g., 0.8 or 0.7)",
    "oom_torch": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 95.00 GiB",
    "oom_kv": "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.",
    "scheduler_crash": "Scheduler hit an exception: Traceback (most recent call last):\n  File \"scheduler.py\", line 1\n"
                       "TypeError: object of type 'NoneType' has no len()\nReceived sigquit from a child process. It usually means the child failed.",
    "port_in_use": "OSError: [Errno 98] error while attempting to bind on address ('127.0.0.1', 30000): Address already in use",
    "plain": "",
}  # fmt: skip


def log(message: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}", flush=True)


def record_pid(pid: int) -> None:
    if os.environ.get("STANDIN_PIDS"):
        with open(os.environ["STANDIN_PIDS"], "a") as f:
            f.write(f"{pid}\n")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sglang.launch_server")
    p.add_argument("--model-path", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=30000)
    for flag in ("tp-size", "dp-size", "max-running-requests", "speculative-num-steps", "speculative-eagle-topk",
                 "speculative-num-draft-tokens", "ep-size"):  # fmt: skip
        p.add_argument(f"--{flag}", type=int)
    p.add_argument("--mem-fraction-static", type=float)
    p.add_argument("--speculative-algorithm")
    p.add_argument("--attention-backend")
    for flag in ("trust-remote-code", "enable-torch-compile", "disable-cuda-graph", "disable-radix-cache", "enable-dp-attention"):
        p.add_argument(f"--{flag}", action="store_true")
    return p.parse_args(argv)


def server_info(args: argparse.Namespace) -> dict[str, Any]:
    info: dict[str, Any] = {k: v for k, v in vars(args).items()}
    info["dp_size"] = info["dp_size"] or 1
    if info["enable_dp_attention"] and info["dp_size"] == 1:
        info["enable_dp_attention"] = False  # SGLang: silently off with dp 1
    if info["speculative_algorithm"]:
        info["speculative_algorithm"] = {"NEXTN": "EAGLE"}.get(info["speculative_algorithm"].upper(), info["speculative_algorithm"])
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
    child = (f"{ignore}import os, subprocess, sys, time; "
             f"g = subprocess.Popen([sys.executable, '-c', {grandchild!r}], stdout=subprocess.PIPE); g.stdout.readline(); "
             f"print(g.pid, flush=True); time.sleep(3600)")  # fmt: skip
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


def die_like_a_scheduler() -> None:
    """SGLang's crash path: the child SIGQUITs the parent, which SIGKILLs its whole tree (returncode -9)."""
    log(DEATH_TEXT["scheduler_crash"])
    os.killpg(os.getpgid(0), signal.SIGKILL)


class Handler(BaseHTTPRequestHandler):
    args: argparse.Namespace
    ready_at: float

    def log_message(self, format: str, *args: Any) -> None:  # quiet, like uvicorn at warning level
        pass

    def reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path in ("/health", "/health_generate"):
            ready = "never_ready" not in OPTIONS and time.monotonic() >= self.ready_at
            self.reply(200 if ready else 503, {} if ready else {"error": "starting"})
        elif self.path in ("/server_info", "/get_server_info"):
            self.reply(200, server_info(self.args))
        elif self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": self.args.model_path, "object": "model"}]})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path == "/flush_cache":
            self.reply(200, b"Cache flushed.\n")
        elif "crash_on_request" in OPTIONS and (self.path == "/generate" or self.path.startswith("/v1/")):
            die_like_a_scheduler()
        elif "exit_on_request" in OPTIONS and (self.path == "/generate" or self.path.startswith("/v1/")):
            log("Child process unexpectedly failed with an exit code 1. pid=0")
            os._exit(1)
        else:
            self.reply(404, {"error": "not found"})


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
    death = OPTIONS.get("exit")
    if "oom_above" in OPTIONS and (args.mem_fraction_static or 0.9) > float(OPTIONS["oom_above"]):
        death = "oom_kv"
    if death:
        log(DEATH_TEXT[death])
        if death == "scheduler_crash":
            os.killpg(os.getpgid(0), signal.SIGKILL)
        sys.exit(1)
    Handler.args = args
    Handler.ready_at = time.monotonic() + float(OPTIONS.get("slow_start") or 0)
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    if os.environ.get("STANDIN_READY"):
        with open(os.environ["STANDIN_READY"], "w") as f:
            f.write(repr(time.time() + Handler.ready_at - time.monotonic()))
    log(f"Uvicorn running on http://{args.host}:{args.port} (Press CTRL+C to quit)")
    threading.Timer(float(OPTIONS.get("slow_start") or 0), log, ["The server is fired up and ready to roll!"]).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start()) if "stubborn" not in OPTIONS else None
    httpd.serve_forever(poll_interval=0.05)
    log("Shutting down")


if __name__ == "__main__":
    main()
