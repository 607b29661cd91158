"""The results directory: one JSON line per finished case, appended and flushed at once, so a run killed at
row 14 keeps rows 1-13; the rows' server logs beside it; what --ablate-resume may skip.

    ablate-results/
      results.jsonl        one record per finished case (passed, failed, xfailed, error), with its figures
      logs/<row>.log       each row's server log (secrets masked)
      report.md            the tables (see report/markdown.py)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import redact
from .record import CaseResult

RESULTS = "results.jsonl"
DONE_OUTCOMES = ("passed", "xfailed")  # what --ablate-resume does not measure again


class Store:
    def __init__(self, directory: Path, secrets: set[str]) -> None:
        self.dir = directory
        self.secrets = secrets
        self.logs = directory / "logs"

    @property
    def path(self) -> Path:
        return self.dir / RESULTS

    def append(self, result: CaseResult) -> None:
        """One line, flushed and fsynced: it survives a kill -9 of pytest right after."""
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps(redact.data(result.to_json(), self.secrets), default=str, ensure_ascii=False)
        with open(self.path, "a+b") as f:
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")  # a line cut short by a kill stays a line of its own, which load() skips
            f.write(line.encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def load(self) -> list[CaseResult]:
        """Every complete record; a line cut short by a kill (or not a record at all) is skipped."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(CaseResult.from_json(json.loads(line)))
            except (json.JSONDecodeError, TypeError, AttributeError):
                continue
        return out

    def last_run(self, matrix: str) -> str | None:
        """The run of this matrix's last record (what --ablate-resume continues)."""
        runs = [r.run for r in self.load() if r.matrix == matrix]
        return runs[-1] if runs else None

    def of_run(self, matrix: str, run: str) -> list[CaseResult]:
        """This matrix's records from one run (tonight's, for the gate)."""
        return [r for r in self.load() if r.matrix == matrix and r.run == run]

    def latest(self, matrix: str) -> list[CaseResult]:
        """Each case of this matrix as the last run that measured it says (a later run overrides earlier ones; a
        resumed run is the run it resumed): the last record of each of that run's launches, combined into one where
        the row has several launches (results/launches.py)."""
        from .launches import combine

        records = [r for r in self.load() if r.matrix == matrix and r.launch is not None]
        run_of = {r.case: r.run for r in records}  # each case's last run
        by_launch = {(r.case, r.launch): r for r in records if r.run == run_of[r.case]}
        by_case: dict[str, list[CaseResult]] = {}
        for (case, _), record in sorted(by_launch.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
            by_case.setdefault(case, []).append(record)
        order = list(dict.fromkeys(r.case for r in by_launch.values()))  # cases in the order they first finished
        return [combine(by_case[case]) for case in order]

    def done(self, matrix: str, version: str | None) -> set[tuple[str, int]]:
        """(case id, launch) pairs already measured for this matrix and engine version."""
        return {
            (r.case, r.launch)
            for r in self.load()
            if r.matrix == matrix
            and r.engine_version_expected == version
            and r.outcome in DONE_OUTCOMES
            and r.launch is not None
        }

    def mask_log(self, log: Path) -> None:
        """Servers print their args (an --api-key too): mask secrets in the saved log."""
        if self.secrets and log.exists():
            log.write_text(
                redact.text(log.read_text(encoding="utf-8", errors="replace"), self.secrets), encoding="utf-8"
            )
