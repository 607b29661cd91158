"""Part of the pytest adapter: the fixtures. `sglang_server` is one row's server, launched once and shared by the
row's cases; `ablate_record` keeps a case's figures with their provenance; `ablate_progress` shows a live line
while a level runs. plugin.py imports them, so pytest finds them in the
plugin's namespace."""

from __future__ import annotations

import ipaddress
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from .state import MEASURED, STATE, State, param

if TYPE_CHECKING:
    from ..matrix.rows import Row
    from ..measure.figures import Measured
    from ..server.launch import Server
    from .references import References


@pytest.fixture(scope="session")
def sglang_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The server of the current matrix row: launched once per row, shared by all of the row's tests, and
    stopped (with every process it started) before the next row's server starts. A launch failure is raised
    once and reported by every case of the row."""
    state = request.config.stash.get(STATE, None)
    if state is None:
        raise pytest.UsageError("the sglang_server fixture needs a matrix: run pytest with --ablate-matrix PATH")
    from .. import engines
    from ..engines.probe import refusal_error
    from ..server.inventory import unfit
    from ..server.launch import start

    matrix, row, store = state.prepared.ablation.matrix, request.param, state.store
    if row.confirming and not _flagged(state, row):  # the gate's relaunch: only for a row tonight's launches flagged
        raise RelaunchNotNeeded(f"row '{row.id}': not flagged against the history; no relaunch needed")
    launcher = state.get_launcher()  # made (and checked) when pytest started
    too_big = unfit(row, launcher, state.settings.gpus)
    if too_big:
        raise RowTooBig(too_big)
    if not matrix.api_key and not _loopback(matrix.server.host):
        warnings.warn(
            f"row '{row.id}': rank 0 listens on {matrix.server.host} without an api_key, so anyone who can reach "
            "that address can use the server; set `api_key:` in the matrix (it is masked wherever we save)",
            UserWarning,
            stacklevel=1,
        )
    state.setup.ensure()  # the matrix's prepare steps, once; a failure fails every row
    refused = refusal_error(matrix.engine, state.probe_after_setup(), row)
    if refused is not None:
        raise refused
    # this row's GPUs (and port block) among the run's workers; held until its GPU memory is released
    lease = state.leases.gpus(row.gpus, math.inf)
    if lease.gpus:  # the server sees only its own GPUs
        env = [*row.env, ("CUDA_VISIBLE_DEVICES", ",".join(lease.gpus))]
        if "CUDA_DEVICE_ORDER" not in os.environ and "CUDA_DEVICE_ORDER" not in dict(row.env):
            env.append(("CUDA_DEVICE_ORDER", "PCI_BUS_ID"))  # GPU n is nvidia-smi's and NVML's GPU n
        row = replace(row, env=tuple(env))
    try:
        try:
            server = start(
                row,
                engines.get(matrix.engine),
                matrix.server,
                store.logs,
                matrix.api_key,
                frozenset(state.secrets),
                launcher,
                lambda free, span: state.leases.port_block(lease, free, span),
            )
        finally:
            for log in store.logs.glob(f"{row.id}{row.launch_suffix}*.log"):
                store.mask_log(log)
        state.activity.began(row.id, lease.gpus, server.port)
        try:
            yield server
        finally:
            try:
                server.stop()
            finally:
                state.activity.ended(row.id)
                store.mask_log(server.log_path)
    finally:
        lease.release()


class RowTooBig(pytest.skip.Exception):  # type: ignore[name-defined,misc]
    """A skip before launch: the row needs more nodes or GPUs than this run has (recorded as class too_big)."""


class RelaunchNotNeeded(pytest.skip.Exception):  # type: ignore[name-defined,misc]
    """A skip before launch: the gate's relaunch of a row that tonight's launches did not flag (not recorded)."""


def _flagged(state: State, row: Row) -> bool:
    """Whether tonight's launches flag any case of the row against the history."""
    assert state.gate is not None
    records = state.store.of_run(state.prepared.ablation.matrix.name, state.records_run)
    for case in state.selected:
        if case.row.id == row.id:
            tonight = [r for r in records if r.case == case.id]
            if state.gate.flagged(case.id, case.workload.kind, tonight, row.launches):
                return True
    return False


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture
def ablate_record(request: pytest.FixtureRequest, sglang_server: Server) -> Callable[[Measured], None]:
    """Keep a case's figures with where they came from (the row, the server's effective config, the engine
    version). They reach pytest-benchmark in the process that owns its session (xdist-safe)."""
    from ..results.benchmark import provenance

    state, began = request.config.stash[STATE], time.time()

    def record(measured: Measured) -> None:
        extra = provenance(sglang_server, measured, state.secrets)
        # rows that ran at the same time (pytest-xdist) shared CPU, host memory and PCIe with this case
        extra["overlapped_by"] = state.activity.overlaps(sglang_server.row.id, began, time.time())
        payload = {"group": measured.group, "samples": measured.samples, "extra_info": extra}
        request.node.user_properties.append((MEASURED, payload))

    return record


@pytest.fixture
def ablate_progress(request: pytest.FixtureRequest) -> Iterator[Callable[[str], None]]:
    """One updating terminal line while a level runs (on a terminal; elsewhere, as in CI logs, a line every 30 s;
    nothing under -q)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or request.config.get_verbosity() < 0:
        yield lambda line: None
        return
    started = time.monotonic()
    last = [0.0]
    tty = reporter.isatty()
    row = param(request.node, "sglang_server")

    def show(line: str) -> None:
        now = time.monotonic()
        if not tty and now - last[0] < 30:
            return
        last[0] = now
        text = f"[{row.id if row else ''}] {line}, {now - started:.0f} s elapsed"
        with capture.global_and_fixture_disabled():  # the test's output is captured; this line is for the user
            reporter.write(f"\r  {text[:150]:<150}" if tty else f"\n  {text}", flush=True)

    yield show
    if tty and last[0]:
        with capture.global_and_fixture_disabled():
            reporter.write("\r" + " " * 154 + "\r", flush=True)


@pytest.fixture
def ablate_references(request: pytest.FixtureRequest) -> References:
    """The reference outputs agreement workloads compare each row with (adapter/references.py)."""
    from .references import References

    return References(request.config.stash[STATE])
