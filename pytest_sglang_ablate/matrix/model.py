"""The matrix as plain records: what `parse` makes of a matrix file, and what the later stages read.

Frozen dataclasses: rows compare by value, and pytest caches the server fixture by parameter equality.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import SpecifierSet

from .args import Args


@dataclass(frozen=True)
class Level:
    concurrency: int  # requests in flight; for a rate level, the most it lets be in flight (`max_in_flight`)
    requests: int
    repeat: int | None = None  # None: the workload's `repeat`
    cross_check_tolerance: float | None = None  # None: the workload's
    rate: float | None = None  # open loop: users arriving per second (measure/openloop.py); None: closed loop
    arrival: str = "poisson"  # a rate level's arrivals: poisson or constant

    @property
    def label(self) -> str:
        """How ids and tables name the level: c16 (16 in flight), r8 (8 arrivals a second)."""
        return f"r{self.rate:g}" if self.rate is not None else f"c{self.concurrency}"


@dataclass(frozen=True)
class SingleWorkload:
    name: str
    prompt: str
    expect: str | None = None
    max_tokens: int = 2048
    repeat: int = 1
    request_timeout: float = 600.0
    client_cpus: tuple[int, ...] = ()  # pin the load generator to these CPUs while it runs (empty: no pinning)
    api: str = "openai"  # "openai" (/v1/chat/completions) or "native" (SGLang's /generate, the prompt as raw text)
    kind: str = "single"


@dataclass(frozen=True)
class BatchWorkload:
    name: str
    input_len: int
    output_len: int
    levels: tuple[Level, ...]
    warmup: Level | None = None
    seed: int = 0
    repeat: int = 1
    cold_start_burst: bool = True  # a short discarded burst at the level's own concurrency before measuring
    max_failed: float = 0.0  # the fraction of failed requests that still gives a valid level
    token_ids: tuple[int, int] = (100, 1000)  # prompts are random token ids in [lo, hi): inside any real vocabulary
    token_tolerance: float = 0.0  # the fraction of requests allowed to lack usage or disagree on prompt length
    request_timeout: float = 600.0
    client_cpu_limit: float = 0.9  # the load generator's CPU share of one core above which it may be the bottleneck
    loop_lag_limit_ms: float = 50.0  # the load generator's event-loop lag (p99) above which its clock is off
    client_processes: int = 1  # load-generator processes, for loads one core cannot drive
    client_cpus: tuple[int, ...] = ()  # pin the load generator to these CPUs while it runs (empty: no pinning)
    api: str = "openai"  # "openai" (/v1/completions) or "native" (the engine's own API, SGLang's /generate)
    client: str = "ours"  # "ours" (measure/loadgen) or "openai" (AsyncOpenAI threads, the seed page's method)
    cross_check: str | None = None  # "bench_serving": measure each level again with SGLang's own client
    cross_check_tolerance: float = 0.05  # the largest disagreement on throughput or mean TPOT that passes
    kind: str = "batch"


@dataclass(frozen=True)
class SloWorkload:
    """Capacity under latency targets (measure/slo.py): the largest rate or concurrency whose probe meets every
    target. Each probe is a batch level of `batch`'s request shape and client settings."""

    name: str
    batch: BatchWorkload  # input/output lengths, API, seed, client guards; its levels are the probes
    targets: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]  # (("ttft_ms", (("p99", 2000.0),)), ...)
    variable: str = "rate"  # "rate" (open loop) or "concurrency" (closed loop)
    low: float = 1.0
    high: float = 256.0
    resolution: float = 0.1
    requests: int = 200  # per probe (a concurrency probe sends at least twice its concurrency)
    arrival: str = "poisson"
    max_in_flight: int = 1024
    kind: str = "slo"

    def target_map(self) -> dict[str, dict[str, float]]:
        return {metric: dict(pcts) for metric, pcts in self.targets}


@dataclass(frozen=True)
class AgreementWorkload:
    """Greedy outputs of each row compared with the reference row's (measure/agreement.py): identical, close (each
    side's token among the other's top-k where they first differ, as vLLM's check_logprobs_close) or far."""

    name: str
    prompts: tuple[str, ...]
    max_tokens: int = 32
    top_k: int = 5  # log-probabilities of the top k tokens per position, where the engine gives them
    baseline: str | None = None  # the reference row's id; None: the first row measured
    min_identical: float = 0.0  # the share of prompts whose outputs must be identical to the reference's
    min_close: float = 1.0  # the share that must be identical or close
    request_timeout: float = 600.0
    kind: str = "agreement"


Workload = SingleWorkload | BatchWorkload | SloWorkload | AgreementWorkload


@dataclass(frozen=True)
class Feature:
    name: str
    on: Args = ()
    off: Args = ()
    description: str = ""


@dataclass(frozen=True)
class RowSpec:
    """A row as written (or generated): which features are on, plus row-only settings."""

    features: frozenset[str]
    id: str | None = None
    args: Args = ()
    env: tuple[tuple[str, str], ...] = ()
    workloads: tuple[Workload, ...] | None = None  # None: every workload, unchanged
    note: str = ""
    nodes: int | None = None  # None: the matrix's (or the row's nnodes arg)
    gpus: int | None = None  # GPUs per node; None: the matrix's, else what the engine profile counts
    launches: int | None = None  # fresh servers that measure the row; None: the matrix's, else 1
    where: str = ""  # "rows[3]" or "generate[0]", for messages
    line: int | None = None


@dataclass(frozen=True)
class KnownIssue:
    when: frozenset[str]
    reason: str
    versions: SpecifierSet | None = None
    workloads: frozenset[str] | None = None
    min_concurrency: int | None = None
    match: str | None = None  # a regex the failure's evidence must contain, else the case fails instead of xfailing
    failure_class: str | None = None  # the failure class the failure must have (a FailureClass value), likewise
    where: str = ""

    def fits(self, failure_class: str | None, evidence: str) -> bool:
        """Whether a failure is the one this rule expects (a rule without match or class takes any)."""
        if self.failure_class is not None and failure_class != self.failure_class:
            return False
        return self.match is None or re.search(self.match, evidence) is not None


@dataclass(frozen=True)
class Generator:
    mode: str
    features: tuple[str, ...]
    exclude_known_issues: bool
    template: RowSpec


@dataclass(frozen=True)
class ServerSettings:
    """The matrix's `server:` section: how servers are started and stopped."""

    host: str = "127.0.0.1"
    startup_timeout_s: float | None = None  # None: the engine profile's default
    shutdown_grace_s: float = 30.0
    gpu_release_timeout_s: float = 120.0
    oom_retry_mem_fraction: tuple[float, ...] = ()
    cpus: tuple[int, ...] = ()  # pin each server's whole process tree to these CPUs (empty: no pinning)


@dataclass(frozen=True)
class PrepareStep:
    """A command run once before the first row (e.g. SGLang's compile_deep_gemm), skipped when `creates` exists."""

    run: tuple[str, ...]
    creates: str | None = None
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Matrix:
    file: str
    name: str
    engine: str
    launch: tuple[str, ...]
    model: str
    args: Args
    env: tuple[tuple[str, str], ...]
    features: tuple[Feature, ...]
    rows: tuple[RowSpec, ...]
    generators: tuple[Generator, ...]
    known_issues: tuple[KnownIssue, ...]
    workloads: tuple[Workload, ...]
    server: ServerSettings = ServerSettings()
    prepare: tuple[PrepareStep, ...] = ()
    nodes: int | None = None  # machines each row's server spans, unless a row says otherwise
    gpus: int | None = None  # GPUs per node each row's server needs, unless a row says otherwise
    launches: int | None = None  # fresh servers per row, unless a row says otherwise; --ablate-launches wins
    launcher: str = "local"  # local, slurm or ssh (server/launchers/); --ablate-launcher overrides it
    hosts: tuple[str, ...] = ()  # the ssh launcher's hosts, rank 0 first
    ssh_options: tuple[str, ...] = ()  # passed to every ssh call, e.g. [-F, ./ssh_config]
    api_key: str | None = None  # passed to the server and sent by the load generator; never saved
    secrets: frozenset[str] = frozenset()  # more env/flag names whose values are masked wherever we save
    path: Path = field(default=Path(), compare=False)

    def secret_values(self) -> set[str]:
        """Every value we must never write down: the api key, and env/args whose names look secret."""
        from ..redact import secret_values

        pairs: list[tuple[str, object]] = [*self.env, *self.args]
        for f in self.features:
            pairs += [*f.on, *f.off]
        for row in self.rows:
            pairs += [*row.env, *row.args]
        found = secret_values(pairs, self.secrets)
        return found | ({self.api_key} if self.api_key else set())

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)
