"""Why a server failed, from its exit status and log, in the classes users act on (docs/lifecycle.md)."""

from __future__ import annotations

import re
from pathlib import Path

from .. import redact
from ..engines import EngineProfile
from ..errors import FailureClass
from .logfile import TAIL_LINES, tail


def classify(log: Path, returncode: int | None, profile: EngineProfile) -> tuple[FailureClass, str]:
    """(failure class, the log line that decided it); the last matching line of the most specific pattern."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    for failure_class, pattern in profile.failure_patterns:
        found = list(re.finditer(pattern, text))
        if found:
            start = text.rfind("\n", 0, found[-1].start()) + 1
            end = text.find("\n", found[-1].end())
            return failure_class, text[start : end if end >= 0 else len(text)].strip()
    if returncode == 2:
        return FailureClass.BAD_FLAG, "exit code 2 (argparse's code for a bad command line)"
    return FailureClass.EXITED, f"exit code {returncode}"


def describe(
    row_id: str,
    failure_class: FailureClass,
    what: str,
    evidence: str,
    log: Path,
    returncode: int | None,
    profile: EngineProfile,
    secrets: frozenset[str] = frozenset(),
) -> str:
    """The message a failing case shows: class, evidence, what to do, and the log tail (secrets masked)."""
    lines = [
        f"row '{row_id}': {what} [{failure_class}]",
        f"  evidence: {evidence}" if evidence else "",
        f"  exit code: {returncode}" if returncode is not None else "",
        f"  what to do: {profile.hints.get(failure_class, 'see the log')}",
        f"  log: {log}",
        f"--- last {TAIL_LINES} lines of the server log ---",
        *tail(log),
    ]
    return redact.text("\n".join(line for line in lines if line), set(secrets))
