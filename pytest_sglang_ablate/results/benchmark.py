"""pytest-benchmark entries for figures that are not the wall time of a Python call.

Each entry is a `pytest_benchmark.stats.Metadata` fed with our samples, appended to the benchmark session's list,
so the table, --benchmark-json/-save and --benchmark-compare(-fail) treat it like any other benchmark
(docs/results.md). Samples are lower-is-better seconds per token: OPS then reads tokens/s. `provenance` puts
beside the figures where they came from: the row, the server's argv and effective config, the engine version.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pytest_benchmark.stats import Metadata

from .. import redact
from ..measure.figures import Measured
from ..server.launch import Server


def stable_nodeid(nodeid: str) -> str:
    """xdist --dist loadgroup appends "@group" to node ids; history must key on the same name with or without it."""
    return nodeid.split("@")[0]


def provenance(server: Server, measured: Measured, secrets: set[str]) -> dict[str, Any]:
    """A case's figures with where they came from; what pytest-benchmark keeps as extra_info (secrets masked)."""
    extra = {
        "row": server.row.id,
        "features": list(server.row.features),
        **measured.extra_info,
        "engine": server.profile.name,
        "engine_version": server.version,
        "server_argv": server.argv,
        "effective_config": server.info,
        "unverified_flags": server.unverified,
        "mem_fraction_static_retry": server.mem_fraction_static,
        "launcher": server.launcher.name,
        "nodes": [{"rank": r.rank, "address": r.address} for r in server.ranks],
        "server_startup_s": server.started_s,  # launch (srun, ssh or the local process) to rank 0 healthy
    }
    return dict(redact.data(extra, secrets))


def entry(nodeid: str, group: str, samples: list[float], extra_info: dict[str, Any]) -> Any:
    fullname = stable_nodeid(nodeid)
    param = fullname[fullname.index("[") + 1 : -1] if fullname.endswith("]") else ""
    owner = SimpleNamespace(
        name=fullname.split("::")[-1],
        fullname=fullname,
        group=group,
        param=param,
        params={"case": param},
        extra_info=extra_info,
        cprofile_stats=None,
        has_error=False,
    )
    options = {
        "timer": "external (ablate workload)",
        "disable_gc": False,
        "min_rounds": 1,
        "max_time": 0,
        "min_time": 0,
        "warmup": False,
    }
    meta = Metadata(owner, iterations=1, options=options)  # type: ignore[no-untyped-call]
    for sample in samples:
        meta.update(sample)  # type: ignore[no-untyped-call]
    return meta
