"""Part of the pytest adapter: the reference outputs an agreement workload compares each row with.

The reference row is the workload's `baseline:` row, else the first row of the run that runs the workload (after
-k/-m, before --ablate-resume drops what is done). Its first measured launch publishes its outputs in the run
directory, which every xdist worker of the run shares; a resumed run finds them in the records of the run it
resumes. A row whose reference is not there yet (measured on another worker, or the reference row failed) keeps
its outputs in its record and skips, saying why; report.md compares every row at the end.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..measure.agreement import Output

if TYPE_CHECKING:
    from ..matrix.model import AgreementWorkload
    from .state import State


@dataclass(frozen=True)
class Reference:
    row: str
    launch: int
    outputs: list[Output]

    @property
    def name(self) -> str:
        return f"row '{self.row}'" + (f" (launch {self.launch})" if self.launch > 1 else "")


class References:
    def __init__(self, state: State) -> None:
        self.state = state

    def row_of(self, workload: AgreementWorkload) -> str | None:
        """The reference row's id for this workload in this run."""
        return workload.baseline or self.state.agreement_rows.get(workload.name)

    def _path(self, workload: AgreementWorkload) -> Path:
        return self.state.run_dir / "agreement" / f"{workload.name}.json"

    def find(self, workload: AgreementWorkload) -> Reference | None:
        """The reference outputs, from this run's directory or, resumed, from the resumed run's records."""
        path = self._path(workload)
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            return Reference(data["row"], int(data["launch"]), [Output.of(o) for o in data["outputs"]])
        row = self.row_of(workload)
        state = self.state
        records = state.store.of_run(state.prepared.ablation.matrix.name, state.records_run)
        mine = sorted(  # the launch that was the reference: a failed launch's partial outputs never are
            (
                r
                for r in records
                if r.row == row
                and r.workload == workload.name
                and r.outcome == "passed"
                and (r.figures or {}).get("is_reference")
            ),
            key=lambda r: r.launch or 1,
        )
        if mine:
            outputs = (mine[0].figures or {})["outputs"]
            return Reference(mine[0].row, mine[0].launch or 1, [Output.of(o) for o in outputs])
        return None

    def publish(self, workload: AgreementWorkload, row: str, launch: int, outputs: list[Output]) -> bool:
        """Make these the reference outputs unless another launch already did (the first writer wins)."""
        path = self._path(workload)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        data = {"row": row, "launch": launch, "outputs": [o.to_json() for o in outputs]}
        tmp.write_text(json.dumps(data), encoding="utf-8")
        try:
            os.link(tmp, path)  # atomic, and fails where the file exists
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def why_missing(self, workload: AgreementWorkload) -> str:
        """Why a row has no reference to compare with: the reference row failed, or has not run yet."""
        row = self.row_of(workload)
        state = self.state
        records = state.store.of_run(state.prepared.ablation.matrix.name, state.records_run)
        failed = [r for r in records if r.row == row and r.workload == workload.name]
        if failed:
            return (
                f"no reference outputs: the reference row '{row}' {failed[-1].outcome} its {workload.name} case "
                f"({(failed[-1].message or '').splitlines()[0] if failed[-1].message else 'no message'}); this "
                "row's outputs are in its record, to compare once the reference runs (or name another `baseline:`)"
            )
        selected = any(c.row.id == row and c.workload.name == workload.name for c in state.selected)
        if not selected or row in state.prepared.probe.rejected:
            return (
                f"no reference outputs: the reference row '{row}' is not in this run (deselected with -k/-m, or "
                f"refused by the engine's parser); select it too, or name another `baseline:`"
            )
        return (
            f"no reference outputs yet: the reference row '{row}' has not run its {workload.name} case (under "
            "pytest-xdist it runs on another worker); this row's outputs are kept, and report.md compares them "
            "at the end"
        )
