"""Part of the pytest adapter: the lines a run with a matrix adds to pytest's header (matrix, engine version,
flag checks, GPUs, CPUs)."""

from __future__ import annotations

import os

from .state import State


def header(state: State) -> list[str]:
    p, s, ablation = state.prepared, state.settings, state.prepared.ablation
    matrix = ablation.matrix
    version = f"{matrix.engine} {p.version} ({p.version_source})" if p.version else "version unknown"
    size = f"{len(ablation.rows)} rows, {len(ablation.cases)} cases"
    return [
        f"ablate: {s.matrix_shown} ({matrix.name}): {size}; {version}",
        f"ablate: {p.probe.note}",
        f"ablate: {s.gpus.describe()}",
        *gpu_lines(state),
        *cpu_lines(state),
    ]


def gpu_lines(state: State) -> list[str]:
    """GPU ids whose servers' teardown cannot check GPU memory: NVML does not know them."""
    from ..server import gpu

    ids = state.settings.gpus.ids
    if ids is None or not state.get_launcher().runs_here:
        return []
    lost = [i for i in gpu.unknown(ids) if not i.isdigit()]  # an unknown index stopped the run already
    if not lost:
        return []
    return [
        f"ablate: NVML does not know GPU {', '.join(lost)}: teardown cannot check their memory "
        "(give NVML's indices or full UUIDs)"
    ]


def cpu_lines(state: State) -> list[str]:
    """Where servers and the load generator run when the matrix pins servers (`server: {cpus: [...]}`)."""
    from ..server.launch import client_cpus, server_cpus

    matrix = state.prepared.ablation.matrix
    asked = matrix.server.cpus
    if not asked:
        return []
    pinned = server_cpus(matrix.server)
    if not pinned:
        have = sorted(os.sched_getaffinity(0))
        return [f"ablate: server.cpus {list(asked)} asked, but this machine has CPUs {have}: servers run unpinned"]
    client = ",".join(map(str, client_cpus(pinned))) or "(none left)"
    return [f"ablate: servers pinned to CPUs {','.join(map(str, pinned))}; the load generator runs on {client}"]
