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
import re
from pathlib import Path
from typing import Any

from .. import redact

RESULTS = "results.jsonl"
FAILURE_CLASS = re.compile(
    r"\[(bad_flag|port_in_use|oom|graph_capture|crash|startup_timeout|config_drift|died_during_workload|exited|teardown)\]"
)
DONE_OUTCOMES = ("passed", "xfailed")  # what --ablate-resume does not measure again


def failure_class(longrepr: str) -> str | None:
    """The class our server errors put in brackets ("... [oom]"), if the failure came from the server."""
    found = FAILURE_CLASS.search(longrepr)
    return found.group(1) if found else None


class Store:
    def __init__(self, directory: Path, secrets: set[str]) -> None:
        self.dir = directory
        self.secrets = secrets
        self.logs = directory / "logs"

    @property
    def path(self) -> Path:
        return self.dir / RESULTS

    def append(self, record: dict[str, Any]) -> None:
        """One line, flushed and fsynced: it survives a kill -9 of pytest right after."""
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps(redact.data(record, self.secrets), default=str, ensure_ascii=False)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def load(self) -> list[dict[str, Any]]:
        """Every complete record; a line cut short by a kill is skipped."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def done(self, matrix: str, version: str | None) -> set[str]:
        """Case ids already measured for this matrix and engine version."""
        return {
            r["case"]
            for r in self.load()
            if r.get("matrix") == matrix
            and r.get("engine_version_expected") == version
            and r.get("outcome") in DONE_OUTCOMES
        }

    def mask_log(self, log: Path) -> None:
        """Servers print their args (an --api-key too): mask secrets in the saved log."""
        if self.secrets and log.exists():
            log.write_text(
                redact.text(log.read_text(encoding="utf-8", errors="replace"), self.secrets), encoding="utf-8"
            )
