"""What an engine profile tells the rest of the plugin."""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FailureClass
from ..matrix.args import Args


def module_python(launch: list[str], module: str) -> str | None:
    """The interpreter of a `<python> -m <module>` launch prefix: the one that has the engine installed."""
    if len(launch) >= 3 and launch[1] == "-m" and launch[2] == module:
        return launch[0]
    return None


@dataclass(frozen=True)
class BenchLoad:
    """What a cross-check's run of the engine's benchmark client must match: the server and our level."""

    host: str
    port: int
    model: str
    api: str  # "openai" or "native"
    input_len: int
    output_len: int
    requests: int
    concurrency: int


@dataclass(frozen=True)
class BenchClient:
    """The engine's own serving benchmark, run as `<engine python> -m <module> <argv(load)>`."""

    module: str
    argv: Callable[[BenchLoad], list[str]]
    # our figure's name -> a regex on the client's output whose group 1 is that figure
    figures: dict[str, str]


@dataclass(frozen=True)
class EngineProfile:
    name: str
    # the argv prefix that starts a server when the matrix has no `launch:`
    default_launch: Callable[[], list[str]]
    # the flag that names the model, e.g. --model-path
    model_flag: str
    # how many GPUs a server with these args needs in all nodes together (rows.Row.gpus divides it by the nodes)
    gpu_count: Callable[[Args], int]
    # the Python interpreter that can import the engine for this launch prefix, if the prefix says
    probe_python: Callable[[list[str]], str | None]
    # a Python file run by probe_python, by path: reads JSON [{"id", "argv"}] on stdin, prints
    # {"importable", "version", "error", "results": {id: None | message}, "warnings": {id: [message]}}
    probe_script: Path
    host_flag: str = "--host"
    api_key_flag: str = "--api-key"
    port_flag: str = "--port"
    # the HTTP ports we may give the server (a port block of the run's leases starts below the upper bound)
    port_range: tuple[int, int] = (20000, 60000)
    # ports the server opens besides --port, which must be free too
    extra_ports: Callable[[int, Args], list[int]] = lambda port, args: []
    # a server over several nodes: the flags every rank gets (node count, rank 0's address and rendezvous port)
    # and the flag of its rank; None where the engine profile does not support multi-node rows
    multinode_flags: Callable[[int, str, int], list[str]] | None = None
    node_rank_flag: str | None = None
    # ports a multi-node server opens from its rendezvous port (which must be free with them)
    dist_init_ports: Callable[[int, Args], list[int]] = lambda port, args: []
    health_path: str = "/health"
    # where the server reports its effective config; the first that answers 200 wins
    info_paths: tuple[str, ...] = ()
    # for engines without such an endpoint: the effective config as the startup log states it
    config_from_log: Callable[[str], dict[str, Any] | None] = lambda log: None
    # where the server reports its version, if its config report does not ({"version": ...})
    version_path: str | None = None
    flush_path: str | None = None
    # the engine's own streaming generate endpoint, for workloads with `api: native` (None: it has none)
    native_path: str | None = None
    # the engine's own serving benchmark, for `cross_check: bench_serving` (None: it has none)
    bench_client: BenchClient | None = None
    default_startup_timeout_s: float = 600.0
    # (failure class, regex on the log), most specific first; see server/failures.py
    failure_patterns: tuple[tuple[FailureClass, str], ...] = ()
    # (phase, regex on a traceback chain's text, frames included): when a failure happened, first match wins
    phase_patterns: tuple[tuple[str, str], ...] = ()
    # True where the engine's worker processes log the root cause first and the launcher's last traceback only
    # points at it ("Engine core initialization failed. See root cause above.", vLLM)
    root_cause_first: bool = False
    # a log line the engine writes when it kills its own process tree after a failure (its exit code is then -9)
    self_kill_pattern: str | None = None
    # failure class -> what the user should do
    hints: dict[FailureClass, str] = field(default_factory=dict)
    # (info key, value the row asked for) -> the value the engine reports instead, which is no difference
    renames: dict[tuple[str, str], str] = field(default_factory=dict)
    # a log line with the engine's own decode speed; group 1 is tokens/s (SGLang: "gen throughput (token/s): X")
    gen_throughput_pattern: str | None = None
    # the speculative-decoding accept length from the server's config report, where it has one
    accept_length: Callable[[dict[str, Any]], float | None] = lambda info: None
    # another name of a flag -> its canonical name (`tp` -> `tp-size`): a matrix may use either, rows merge them
    aliases: dict[str, str] = field(default_factory=dict)
    # canonical flag -> key in the server's config report, where it is not the flag with underscores
    info_keys: dict[str, str] = field(default_factory=dict)

    def logged_gen_throughput(self, log_text: str) -> float | None:
        """The median of the engine's own single-request decode-speed log lines in `log_text`, if it logs any."""
        if self.gen_throughput_pattern is None:
            return None
        values = [float(m) for m in re.findall(self.gen_throughput_pattern, log_text)]
        return statistics.median(values) if values else None
