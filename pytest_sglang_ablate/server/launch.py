"""Start one row's server, wait until it is ready, check its config, and stop it leaving nothing behind.

The server runs under `supervisor.py`, which kills the whole process tree if pytest dies in any way.
No pytest here: the plugin's fixture is a thin wrapper around `start` and `Server.stop`.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests

from ..engines import EngineProfile
from ..errors import FailureClass, ServerDied, ServerError, ServerLaunchError, ServerStartTimeout, TeardownError
from ..matrix.args import merge
from ..matrix.model import ServerSettings
from ..matrix.rows import Row
from . import config_check, failures, gpu, ports
from .launchers import Launcher, Rank, RankPlan, read_status
from .launchers.local import Local
from .poll import poll_until
from .supervisor import HOST, RANK, recorded


@dataclass
class StopResult:
    seconds: float
    pids: list[int]


@dataclass
class Server:
    row: Row
    profile: EngineProfile
    settings: ServerSettings
    host: str
    port: int
    argv: list[str]
    log_path: Path  # rank 0's (the only rank's) log
    status_path: Path
    process: subprocess.Popen[bytes]  # the local process holding rank 0
    launcher: Launcher = field(default_factory=Local)
    ranks: list[Rank] = field(default_factory=list)  # every rank, rank 0 first (one for a one-node row)
    started_s: float = 0.0  # launch to ready
    ready_at: float = 0.0  # time.time() when the health check first answered
    info: dict[str, Any] = field(default_factory=dict)  # the server's own report of its effective config
    unverified: list[str] = field(default_factory=list)  # flags the server's report does not mention
    mem_fraction_static: float | None = None  # the OOM-retry value this server runs with, if any
    stopped: StopResult | None = None
    api_key: str | None = None
    secrets: frozenset[str] = frozenset()  # masked in every message
    served_model: str | None = None  # the model id the server answers to, once asked
    warmed_up: set[str] = field(default_factory=set)  # workloads whose warm-up ran on this server
    client_cpus: tuple[int, ...] = ()  # the load generator's CPUs unless a workload names its own
    gpu_baseline: dict[str, int] = field(default_factory=dict)  # its GPUs' used bytes before the launch (NVML)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def version(self) -> str | None:
        v = self.info.get("version")
        return str(v) if v is not None else None

    def status(self) -> dict[str, Any]:
        return read_status(self.status_path)

    def alive(self) -> bool:
        return not any(self.launcher.exited(r) for r in self.ranks)

    def recorded_pids(self) -> set[int]:
        """Every pid the ranks' supervisors saw in the server's process tree."""
        return {pid for rank in self.ranks for pid in recorded(self.launcher.status(rank))}

    def returncode(self) -> int | None:
        return self.status().get("returncode")

    def failed_rank(self) -> Rank | None:
        """Of a multi-node server, the rank whose server exited first on its own (by its supervisor's clock)."""
        gone = [r for r in self.ranks if self.launcher.exited(r)]

        def exited_at(rank: Rank) -> float:
            poll_until(lambda: "stopped_by" in self.launcher.status(rank), 10, interval_s=0.2)
            return self.launcher.status(rank).get("exited_at") or float("inf")

        return min(gone, key=lambda r: (exited_at(r), r.rank)) if gone else None

    def ensure_alive(self, grace_s: float = 2.0) -> None:
        """After a failed request: raise ServerDied (with the cause from the log) if the server has exited."""
        __tracebackhide__ = True
        if poll_until(lambda: not self.alive(), grace_s):
            raise self.exit_failure("the server died during a workload", FailureClass.DIED_DURING_WORKLOAD)

    def exit_failure(self, what: str, failure_class: FailureClass | None = None) -> ServerError:
        """Why the exited server failed, from its exit code and log. With `failure_class` given (the server
        died during a workload), the log's class is named in the message and that class is reported instead."""
        log_path = self.log_path
        if len(self.ranks) > 1:
            rank = self.failed_rank() or self.ranks[0]
            poll_until(lambda: "returncode" in self.launcher.status(rank), 10, interval_s=0.2)
            code = self.launcher.status(rank).get("returncode")
            log_path = rank.log_path
            what = f"{what}: rank {rank.rank} of {len(self.ranks)} (on {rank.address}) exited first"
        else:
            self.process.wait()
            code = self.returncode()
        diagnosis = failures.diagnose(log_path, code, self.profile)
        if failure_class is not None:
            what = f"{what} ({diagnosis.failure_class})"
            diagnosis = replace(diagnosis, failure_class=failure_class)
        message = failures.describe(self.row.id, what, diagnosis, log_path, code, self.profile, self.secrets)
        kind = ServerDied if failure_class is FailureClass.DIED_DURING_WORKLOAD else ServerLaunchError
        return kind(message, diagnosis.failure_class, diagnosis.text, diagnosis.phase)

    def read_config(self) -> dict[str, Any]:
        """The server's own report of its config (the first info endpoint that answers), or {} without one."""
        for path in self.profile.info_paths:
            try:
                response = requests.get(self.base_url + path, headers=self.headers, timeout=30)
                if response.status_code == 200:
                    return dict(response.json())
            except (requests.RequestException, ValueError):
                continue
        return {}

    @property
    def model_path(self) -> str:
        """The model the row's command names (after the profile's model flag)."""
        return self.row.argv[self.row.argv.index(self.profile.model_flag) + 1]

    def model_id(self) -> str:
        """The model id the server answers to (vLLM checks it; SGLang accepts any), asked once."""
        if self.served_model is None:
            try:
                data = requests.get(self.base_url + "/v1/models", headers=self.headers, timeout=30).json()["data"]
                self.served_model = str(data[0]["id"])
            except (requests.RequestException, ValueError, KeyError, IndexError):
                self.served_model = self.model_path
        return self.served_model

    def flush_cache(self) -> bool:
        """Empty the server's prefix cache between measured levels, where the engine can."""
        if self.profile.flush_path is None:
            return False
        try:
            return (
                requests.post(self.base_url + self.profile.flush_path, headers=self.headers, timeout=30).status_code
                == 200
            )
        except requests.RequestException:
            return False

    def stop(self) -> StopResult:
        """SIGTERM the tree, wait the grace period, SIGKILL what is left; then check pids, port and GPU memory."""
        if self.stopped is not None:
            return self.stopped
        start = time.monotonic()
        problems = self.launcher.stop(self.ranks, self.settings.shutdown_grace_s)  # and proves each rank gone
        pids: set[int] = set()
        if self.launcher.runs_here:  # the port and the GPU memory are this host's to check
            pids = self.recorded_pids()
            if not ports.wait_free(self.host, self.port, timeout_s=10):
                problems.append(f"port {self.port} is still in use")
            held = gpu.wait_released(pids, self.settings.gpu_release_timeout_s, self.gpu_baseline)
            if held:
                problems.append(
                    f"GPU memory still held after {self.settings.gpu_release_timeout_s:.0f} s: " + ", ".join(held)
                )
        self.stopped = StopResult(time.monotonic() - start, sorted(pids))
        if problems:
            raise TeardownError(
                f"row '{self.row.id}': stopping the server left something behind: {'; '.join(problems)}"
            )
        return self.stopped


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """argv with `flag value` set, replacing an earlier value."""
    if flag in argv:
        i = argv.index(flag)
        return [*argv[: i + 1], value, *argv[i + 2 :]]
    return [*argv, flag, value]


def start(
    row: Row,
    profile: EngineProfile,
    settings: ServerSettings,
    log_dir: Path,
    api_key: str | None = None,
    secrets: frozenset[str] = frozenset(),
    launcher: Launcher | None = None,
    port_block: Callable[[Callable[[int], bool], tuple[int, int]], int] | None = None,
) -> Server:
    """Launch the row's server and return it ready, or raise ServerLaunchError / ServerStartTimeout.

    `port_block` (from the run's leases) gives the HTTP port, at the start of a block of ports no other server
    of the run holds, given a test that the port and the ones the engine opens above it are free and the
    engine's port range.

    With `oom_retry_mem_fraction`, a launch that fails with OOM is retried at each lower value in turn.
    """
    __tracebackhide__ = True  # pytest shows the message (class, hint, log tail), not our frames
    fractions: list[float | None] = [None, *settings.oom_retry_mem_fraction]
    launcher = launcher or Local()
    # the row's GPUs' memory before the first attempt: what a failed attempt leaves is not the next one's zero
    visible = [i.strip() for i in dict(row.env).get("CUDA_VISIBLE_DEVICES", "").split(",") if i.strip()]
    baseline = gpu.used(visible) if launcher.runs_here else {}
    for attempt, fraction in enumerate(fractions):
        try:
            server = _start_once(
                row, profile, settings, log_dir, fraction, attempt, api_key, secrets, launcher, port_block, baseline
            )
        except ServerLaunchError as e:
            if e.failure_class is not FailureClass.OOM or attempt == len(fractions) - 1:
                raise
            continue
        server.mem_fraction_static = fraction
        return server
    raise AssertionError("unreachable")


def _start_once(
    row: Row,
    profile: EngineProfile,
    settings: ServerSettings,
    log_dir: Path,
    fraction: float | None,
    attempt: int,
    api_key: str | None,
    secrets: frozenset[str],
    launcher: Launcher,
    port_block: Callable[[Callable[[int], bool], tuple[int, int]], int] | None,
    baseline: dict[str, int],
) -> Server:
    __tracebackhide__ = True
    log_dir.mkdir(parents=True, exist_ok=True)
    base = row.id + row.launch_suffix  # each launch of a row keeps its own log
    name = base if attempt == 0 else f"{base}.retry{attempt}"
    argv, requested = list(row.argv), row.args
    if fraction is not None:  # an OOM retry: the same row at a lower --mem-fraction-static
        argv = with_flag(argv, "--mem-fraction-static", str(fraction))
        requested = merge(row.args, (("mem-fraction-static", fraction),))

    def extra(p: int) -> list[int]:
        return profile.extra_ports(p, requested)

    def free(p: int) -> bool:
        return ports.is_free(settings.host, p) and all(ports.is_free(settings.host, x) for x in extra(p))

    span = profile.port_range
    port = port_block(free, span) if port_block is not None else ports.choose(settings.host, extra, span)
    nodes = row.nodes
    addresses = launcher.addresses(nodes)
    binds = [settings.host, *addresses[1:]]
    template = list(argv)
    if nodes > 1:  # every rank: the node count, rank 0's rendezvous address, and its own rank
        assert profile.multinode_flags is not None and profile.node_rank_flag is not None
        dist_port = (  # inside the server's own port block, where the run has one
            port + 1
            if port_block is not None
            else ports.choose(settings.host, lambda p: [port, *profile.dist_init_ports(p, requested)], span)
        )
        flags = profile.multinode_flags(nodes, addresses[0], dist_port)
        for flag, value in zip(flags[::2], flags[1::2], strict=True):
            template = with_flag(template, flag, value)
        template += [profile.node_rank_flag, RANK]
    template += [profile.host_flag, HOST, profile.port_flag, str(port)]
    if api_key:
        template += [profile.api_key_flag, api_key]
    cpus = server_cpus(settings)
    plans = []
    for r in range(nodes):
        stem = name if nodes == 1 else f"{name}.rank{r}"
        fill = [a.replace(RANK, str(r)).replace(HOST, binds[r]) for a in template]
        plans.append(
            RankPlan(
                r,
                addresses[r],
                binds[r],
                fill,
                template,
                log_dir / f"{stem}.log",
                log_dir / f"{stem}.status.json",
                cpus,
            )
        )
    began = time.monotonic()
    ranks = launcher.start(plans, dict(row.env), settings.shutdown_grace_s, name)
    wildcard = settings.host in ("0.0.0.0", "::", "")
    server = Server(
        row,
        profile,
        settings,
        addresses[0] if wildcard else settings.host,
        port,
        plans[0].argv,
        ranks[0].log_path,
        ranks[0].status_path,
        ranks[0].process,
        launcher=launcher,
        ranks=ranks,
        api_key=api_key,
        secrets=secrets,
        client_cpus=client_cpus(cpus) if launcher.runs_here else (),
        gpu_baseline=baseline,
    )
    try:
        _wait_ready(server, began)
        server.started_s = time.monotonic() - began
        _check_config(server, requested)
        if baseline and not gpu.pids_hidden(server.recorded_pids(), baseline):
            server.gpu_baseline = {}  # NVML names the server's pids (or lists none on its GPUs): their wait suffices
    except BaseException:
        try:
            server.stop()
        except TeardownError:
            pass  # the launch error below says more; the leftover check already ran
        raise
    return server


def server_cpus(settings: ServerSettings) -> tuple[int, ...]:
    """The CPUs to pin servers to: `server.cpus`, unless this machine lacks one of them (then none; the run's
    header says so once)."""
    if not settings.cpus or not hasattr(os, "sched_getaffinity"):
        return ()
    return settings.cpus if set(settings.cpus) <= os.sched_getaffinity(0) else ()


def client_cpus(server: tuple[int, ...]) -> tuple[int, ...]:
    """The load generator's CPUs when a workload names none: the ones the server does not use."""
    if not server:
        return ()
    return tuple(sorted(os.sched_getaffinity(0) - set(server)))


def _wait_ready(server: Server, began: float) -> None:
    """Poll the health endpoint until it answers 200; raise at once if the server exits, or at the deadline."""
    __tracebackhide__ = True
    profile = server.profile
    timeout = server.settings.startup_timeout_s or profile.default_startup_timeout_s
    url = server.base_url + profile.health_path
    session = requests.Session()

    def ready_or_gone() -> bool:
        if not server.alive():
            return True
        try:
            if session.get(url, timeout=(0.5, 5)).status_code == 200:
                server.ready_at = time.time()
                return True
        except requests.RequestException:
            pass
        return False

    if poll_until(ready_or_gone, began + timeout - time.monotonic()) and server.ready_at:
        return
    if not server.alive():
        raise server.exit_failure("the server exited during startup")
    what = f"no healthy answer from {url} within {timeout:.0f} s"
    diagnosis = failures.Diagnosis(FailureClass.STARTUP_TIMEOUT, "")
    message = failures.describe(server.row.id, what, diagnosis, server.log_path, None, profile, server.secrets)
    raise ServerStartTimeout(message, FailureClass.STARTUP_TIMEOUT)


def _check_config(server: Server, requested: Any) -> None:
    """Read the server's own report of its config; a setting it silently changed fails the row."""
    __tracebackhide__ = True
    profile = server.profile
    server.info = server.read_config()
    if not server.info:
        server.info = profile.config_from_log(server.log_path.read_text(encoding="utf-8", errors="replace")) or {}
    if profile.version_path and "version" not in server.info:
        try:
            server.info["version"] = requests.get(
                server.base_url + profile.version_path, headers=server.headers, timeout=30
            ).json()["version"]
        except (requests.RequestException, ValueError, KeyError):
            pass
    check = config_check.compare(requested, server.info, profile)
    server.unverified = check.unverified
    if check.differences:
        what = "the server runs a different config than the row asked for"
        diagnosis = failures.Diagnosis(FailureClass.CONFIG_DRIFT, "; ".join(check.differences))
        message = failures.describe(server.row.id, what, diagnosis, server.log_path, None, profile, server.secrets)
        raise ServerLaunchError(message, FailureClass.CONFIG_DRIFT, diagnosis.text)
