"""The SGLang profile: flag names, the launcher module and how to ask SGLang about itself."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..errors import FailureClass as F
from ..matrix.args import Args, int_value, lookup
from .base import BenchClient, BenchLoad, EngineProfile, module_python

LAUNCH_MODULE = "sglang.launch_server"


def _default_launch() -> list[str]:
    # the interpreter running pytest: the one whose site-packages we can probe
    return [sys.executable, "-m", LAUNCH_MODULE]


def _gpu_count(args: Args) -> int:
    tp = int_value(args, "tp-size")  # aliases are merged into these names when the matrix is read
    pp = int_value(args, "pp-size")
    dp = int_value(args, "dp-size")
    # DP attention splits the TP group into dp parts; plain --dp runs dp replicas of tp GPUs each
    dp_attention = bool(lookup(args, "enable-dp-attention"))
    return tp * pp * (1 if dp_attention else dp)


def _probe_python(launch: list[str]) -> str | None:
    return module_python(launch, LAUNCH_MODULE)


def _extra_ports(port: int, args: Args) -> list[int]:
    # DP attention opens ZMQ TCP ports from --port + 233 upwards (ZMQ_TCP_PORT_DELTA, sglang #30833)
    dp = int_value(args, "dp-size")
    return list(range(port + 233, port + 233 + max(8, 2 * dp)))


def _multinode_flags(nodes: int, head: str, port: int) -> list[str]:
    return ["--nnodes", str(nodes), "--dist-init-addr", f"{head}:{port}"]


def _dist_init_ports(port: int, args: Args) -> list[int]:
    # multi-node DP attention uses the rendezvous port + 1 to + 6 and + 13 (its handshake) besides the port itself
    return [*range(port + 1, port + 7), port + 13]


# Log patterns, most specific first: an OOM inside a scheduler traceback is an OOM, not a generic crash.
# Sources: the error texts of SGLang's server_args.py, scheduler.py and cuda_graph_runner.py, and real GPU runs.
FAILURE_PATTERNS = (
    (
        F.BAD_FLAG,
        r"unrecognized arguments|invalid choice|ambiguous option|error: argument --"
        r"|the following arguments are required",
    ),
    (F.PORT_IN_USE, r"Address already in use|is not available in \d+ seconds|Port is already in use"),
    (F.OOM, r"CUDA out of memory|OutOfMemoryError|Not enough memory\. Please try to increase --mem-fraction-static"),
    (
        F.GRAPH_CAPTURE,
        r"Capture cuda graph failed|Capture .*CUDA graph failed|Breakable CUDA graph failed"
        r"|operation not permitted when stream is capturing",
    ),
    # a TP rank whose GPU does not exist for it: tp-size 2 on one visible GPU, on the H200 (rank 1 at set_device)
    (F.MISSING_GPU, r"CUDA error: invalid device ordinal|No CUDA GPUs are available"),
    (
        F.CRASH,
        r"Scheduler hit an exception|DataParallelController hit an exception|Received sigquit from a child process"
        r"|Initialization failed\. warmup error|Child process unexpectedly failed|Traceback \(most recent call last\)",
    ),
)

HINTS = {
    F.BAD_FLAG: "this SGLang does not accept a flag of the row: fix the matrix "
    "(compare with `python -m sglang.launch_server --help`)",
    F.PORT_IN_USE: "another process holds the port or the DP-attention ports (port + 233 and up): stop it, "
    "or run fewer servers at once",
    F.OOM: "lower --mem-fraction-static (e.g. 0.7) or --cuda-graph-max-bs, or add "
    "`server: {oom_retry_mem_fraction: [0.8, 0.7]}` to the matrix; with DP attention, "
    "warm up at small concurrency first",
    F.GRAPH_CAPTURE: "CUDA graph capture failed: try without torch compile, a smaller --cuda-graph-max-bs, "
    "or mark the combination as a known issue",
    F.MISSING_GPU: "a rank found no GPU for it: the server saw fewer GPUs than the row needs (tp x dp); give the "
    "run that many (--ablate-gpus, CUDA_VISIBLE_DEVICES; with NVML, rows too big for the machine are skipped) or "
    "lower the row's parallel sizes",
    F.CRASH: "a server process raised: the log tail below has the traceback",
    F.STARTUP_TIMEOUT: "the server did not answer its health check in time: raise `server: {startup_timeout: S}` "
    "(DeepSeek can take 20-60 min cold)",
    F.DIED_DURING_WORKLOAD: "the server exited while serving requests: see the log tail for the cause",
    F.CONFIG_DRIFT: "the server silently changed a setting the row asked for: fix the row "
    "(e.g. --dp N with --enable-dp-attention) or the expectation",
    F.EXITED: "the server exited without a known error message: see the log tail",
}


def _bench_argv(load: BenchLoad) -> list[str]:
    """bench_serving on random token ids of exactly our lengths (`random-ids`: no dataset download), our request
    count and concurrency, through the same API (sglang-oai: /v1/completions; sglang: native /generate)."""
    settings = {
        "--backend": {"openai": "sglang-oai", "native": "sglang"}[load.api],
        "--host": load.host,
        "--port": str(load.port),
        "--model": load.model,
        "--tokenizer": load.model,
        "--dataset-name": "random-ids",
        "--random-input-len": str(load.input_len),
        "--random-output-len": str(load.output_len),
        "--random-range-ratio": "1",
        "--num-prompts": str(load.requests),
        "--max-concurrency": str(load.concurrency),
    }
    return [*(x for kv in settings.items() for x in kv), "--disable-tqdm"]


# what bench_serving prints at the end of a run (sglang/benchmark/serving.py), by our figure's name
BENCH_FIGURES = {
    "throughput_tok_s": r"Total token throughput \(tok/s\):\s+([0-9.]+)",
    "tpot_ms_mean": r"Mean TPOT \(ms\):\s+([0-9.]+)",
    "ttft_ms_mean": r"Mean TTFT \(ms\):\s+([0-9.]+)",
    "duration_s": r"Benchmark duration \(s\):\s+([0-9.]+)",
}


def _accept_length(info: dict[str, Any]) -> float | None:
    # /server_info internal_states is one entry per DP rank
    states = info.get("internal_states") or [{}]
    value = states[0].get("avg_spec_accept_length") if isinstance(states[0], dict) else None
    return float(value) if isinstance(value, (int, float)) else None


SGLANG = EngineProfile(
    name="sglang",
    default_launch=_default_launch,
    model_flag="--model-path",
    gpu_count=_gpu_count,
    probe_python=_probe_python,
    probe_script=Path(__file__).with_name("_sglang_probe.py"),
    extra_ports=_extra_ports,
    # SGLang 0.5 derives a gRPC port of --port + 10000 and refuses to start when it is above 65535, gRPC on or off
    # ("SGLANG_GRPC_PORT (67616) must be between 1 and 65535", seen on the H200)
    port_range=(20000, 55000),
    multinode_flags=_multinode_flags,
    node_rank_flag="--node-rank",
    dist_init_ports=_dist_init_ports,
    health_path="/health",
    info_paths=("/server_info", "/get_server_info"),  # /get_server_info before 0.4.6-ish, deprecated since
    flush_path="/flush_cache",
    native_path="/generate",
    bench_client=BenchClient("sglang.bench_serving", _bench_argv, BENCH_FIGURES),
    default_startup_timeout_s=1800.0,
    failure_patterns=FAILURE_PATTERNS,
    phase_patterns=(
        (
            "cuda graph capture",
            r"Capture cuda graph failed|cuda_graph_runner\.py|in capture\b|capture_cuda_graphs|init_cuda_graphs",
        ),
        ("model load", r"load_model|model_loader|load_weights"),
        ("distributed init", r"init_torch_distributed"),
        ("warm-up", r"warmup|warm_up"),
    ),
    self_kill_pattern=r"kill_process_tree called",  # the launcher SIGKILLs its own tree after a child fails
    hints=HINTS,
    renames={("speculative_algorithm", "NEXTN"): "EAGLE"},
    gen_throughput_pattern=r"#running-req: 1,.*gen throughput \(token/s\): ([0-9.]+)",
    accept_length=_accept_length,  # SGLang rewrites NEXTN to EAGLE
    # argparse aliases in SGLang's server_args (`--tp` works by prefix abbreviation there)
    aliases={
        "tp": "tp-size",
        "tensor-parallel-size": "tp-size",
        "dp": "dp-size",
        "data-parallel-size": "dp-size",
        "ep": "ep-size",
        "expert-parallel-size": "ep-size",
        "pp": "pp-size",
        "pipeline-parallel-size": "pp-size",
        "speculative-draft-model": "speculative-draft-model-path",
        "model": "model-path",
    },
)
