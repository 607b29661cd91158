"""One finished case as results.jsonl keeps it and report.md reads it: `CaseResult`."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from ..matrix.model import Matrix
from ..matrix.rows import Case


def headline(kind: str) -> str:
    """The figure rows and nights are compared on: TPS@1 for a single workload, throughput for a batch level."""
    return "tps_at_1" if kind == "single" else "throughput_tok_s"


@dataclass(frozen=True)
class CaseResult:
    """A case's outcome, with its figures and where they came from (figures["sources"], the effective config and
    engine version in figures). Failures are kept too, with their class, so the report can say why."""

    matrix: str
    case: str  # "<row>-<workload>[-c<N>]"
    row: str
    features: tuple[str, ...]
    workload: str
    kind: str  # "single" or "batch"
    outcome: str  # passed, failed, error, xfailed, xpassed
    concurrency: int | None = None
    requests: int | None = None
    failure_class: str | None = None  # a FailureClass value, when the server caused the failure
    failure_phase: str | None = None  # when the server failed, where its log says: "cuda graph capture", ...
    known_issue: str | None = None  # the known-issue reason when the case was expected to fail
    message: str | None = None  # the failure's first line (and the evidence line of a server failure)
    figures: dict[str, Any] | None = None  # the benchmark entry's extra_info
    matrix_file: str = ""
    engine: str = ""
    engine_version_expected: str | None = None  # the version known issues were matched against
    nodeid: str = ""
    duration_s: float = 0.0
    time: float = field(default_factory=time.time)
    launches: int = 1  # fresh servers the row asked for
    # which of them measured this record; None in a record that combines every launch (results/launches.py)
    launch: int | None = 1
    # the run that measured it (xdist's testrunuid; --ablate-resume carries the resumed run's); "" in older files
    run: str = ""
    rate: float | None = None  # an open-loop level's arrivals per second (concurrency is then its cap in flight)

    @property
    def level(self) -> str | None:
        """c16 or r8 for a batch level, as its case id ends; None for a single case."""
        if self.rate is not None:
            return f"r{self.rate:g}"
        return f"c{self.concurrency}" if self.concurrency is not None else None

    @staticmethod
    def of(
        case: Case,
        matrix: Matrix,
        engine_version: str | None,
        outcome: str,
        failure_class: str | None,
        failure_text: str,
        figures: dict[str, Any] | None,
        nodeid: str,
        duration_s: float,
        failure_phase: str | None = None,
        launch: int = 1,
        run: str = "",
    ) -> CaseResult:
        lines = [line.strip() for line in failure_text.strip().splitlines() if line.strip()]
        # the error's first line, and for server failures the log line that decided the class
        evidence = next((line for line in lines if line.startswith("evidence: ")), None)
        message = "; ".join(x for x in (lines[0] if lines else None, evidence) if x)
        return CaseResult(
            matrix=matrix.name,
            case=case.id,
            row=case.row.id,
            features=case.row.features,
            workload=case.workload.name,
            kind=case.workload.kind,
            outcome=outcome,
            concurrency=case.level.concurrency if case.level else None,
            requests=case.level.requests if case.level else None,
            failure_class=failure_class,
            failure_phase=failure_phase,
            known_issue=case.xfail,
            message=message[:500] or None,
            figures=figures,
            matrix_file=matrix.file,
            engine=matrix.engine,
            engine_version_expected=engine_version,
            nodeid=nodeid,
            duration_s=duration_s,
            launches=case.row.launches,
            launch=launch,
            run=run,
            rate=case.level.rate if case.level else None,
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> CaseResult:
        """From a results.jsonl line; keys it does not know are ignored, missing optional ones take defaults."""
        known = {f.name for f in dataclasses.fields(CaseResult)}
        values = {k: v for k, v in data.items() if k in known}
        values["features"] = tuple(values.get("features") or ())
        return CaseResult(**values)
