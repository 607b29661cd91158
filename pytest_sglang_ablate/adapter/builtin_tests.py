"""The matrix's own test cases; pytest collects this module for the matrix file (see plugin.MatrixFile)."""

from __future__ import annotations

from collections.abc import Callable

from ..matrix.model import BatchWorkload, SingleWorkload, SloWorkload
from ..matrix.rows import Case
from ..measure.figures import Measured
from ..measure.workloads import run_batch, run_single, run_slo
from ..server.launch import Server


def test_single(sglang_server: Server, ablate_case: Case, ablate_record: Callable[[Measured], None]) -> None:
    """TPS@1: one streamed request on the row's server, with the expected answer checked."""
    assert isinstance(ablate_case.workload, SingleWorkload)
    measured = run_single(sglang_server, ablate_case.workload)
    ablate_record(measured)
    assert not measured.problems, "\n".join(measured.problems)


def test_batch(
    sglang_server: Server,
    ablate_case: Case,
    ablate_record: Callable[[Measured], None],
    ablate_progress: Callable[[str], None],
) -> None:
    """Offline batch throughput at one concurrency level on the row's server."""
    assert isinstance(ablate_case.workload, BatchWorkload) and ablate_case.level is not None
    measured = run_batch(sglang_server, ablate_case.workload, ablate_case.level, ablate_progress)
    ablate_record(measured)
    assert not measured.problems, "\n".join(measured.problems)


def test_slo(
    sglang_server: Server,
    ablate_case: Case,
    ablate_record: Callable[[Measured], None],
    ablate_progress: Callable[[str], None],
) -> None:
    """Capacity under latency targets: the largest load whose probe meets every target, on the row's server."""
    assert isinstance(ablate_case.workload, SloWorkload)
    measured = run_slo(sglang_server, ablate_case.workload, ablate_progress)
    ablate_record(measured)
    assert not measured.problems, "\n".join(measured.problems)


# the plugin parametrizes each function with the matrix's cases of this workload kind
test_single.workload_kind = "single"  # type: ignore[attr-defined]
test_batch.workload_kind = "batch"  # type: ignore[attr-defined]
test_slo.workload_kind = "slo"  # type: ignore[attr-defined]
