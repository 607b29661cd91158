"""The matrix's own test cases; pytest collects this module for the matrix file (see plugin.MatrixFile)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..errors import WrongOutput
from ..matrix.model import AgreementWorkload, BatchWorkload, SingleWorkload, SloWorkload
from ..matrix.rows import Case
from ..measure import agreement
from ..measure.figures import Measured
from ..measure.workloads import run_agreement, run_batch, run_single, run_slo
from ..server.launch import Server
from .references import References


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


def test_agreement(
    sglang_server: Server,
    ablate_case: Case,
    ablate_record: Callable[[Measured], None],
    ablate_references: References,
) -> None:
    """Greedy outputs of the row against the reference row's: identical, close or far, per prompt."""
    workload = ablate_case.workload
    assert isinstance(workload, AgreementWorkload)
    row, launch = sglang_server.row.id, sglang_server.row.launch
    outputs, problems = run_agreement(sglang_server, workload)
    figures = {
        "workload": workload.name,
        "prompts": len(workload.prompts),
        "max_tokens": workload.max_tokens,
        "top_k": workload.top_k,
        "min_identical": workload.min_identical,  # the tolerance, for report.md's comparisons after the run
        "min_close": workload.min_close,
        "logprobs": all(o.tokens is not None for o in outputs) if outputs else None,
        "outputs": [o.to_json() for o in outputs],
        "sources": "greedy outputs (temperature 0) and their top-k log-probabilities from the server's "
        "/v1/completions; compared token by token with the reference row's",
    }
    if problems:  # a failed request: nothing to compare
        ablate_record(Measured(f"agreement {workload.name}", [], figures, problems))
        raise AssertionError("\n".join(problems))
    reference = ablate_references.find(workload)
    if reference is None and ablate_references.row_of(workload) == row:
        if ablate_references.publish(workload, row, launch, outputs):  # this launch's outputs are the reference
            figures.update(reference_row=row, reference_launch=launch, is_reference=True)
            figures.update(identical_share=1.0, close_share=1.0)
            ablate_record(Measured(f"agreement {workload.name}", [], figures))
            return
        reference = ablate_references.find(workload)  # another launch of the row published first
    if reference is None:  # kept in the record; report.md compares it at the end
        ablate_record(Measured(f"agreement {workload.name}", [], {**figures, "compared": False}))
        pytest.skip(ablate_references.why_missing(workload))
    found = agreement.agreement(reference.outputs, outputs)
    figures.update(reference_row=reference.row, reference_launch=reference.launch, **found.figures())
    problems = found.problems(workload, reference.name)
    ablate_record(Measured(f"agreement {workload.name}", [], figures, problems))
    if problems:
        raise WrongOutput("\n".join(problems))


# the plugin parametrizes each function with the matrix's cases of this workload kind
test_single.workload_kind = "single"  # type: ignore[attr-defined]
test_batch.workload_kind = "batch"  # type: ignore[attr-defined]
test_slo.workload_kind = "slo"  # type: ignore[attr-defined]
test_agreement.workload_kind = "agreement"  # type: ignore[attr-defined]
