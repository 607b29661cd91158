"""Reading a server's log file: its last lines for failure messages, and what it wrote since a point."""

from __future__ import annotations

from collections import deque
from pathlib import Path

TAIL_LINES = 40


def tail(log: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines (none for a missing file); undecodable bytes are replaced, never raised."""
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n") for line in deque(f, maxlen=lines)]
    except FileNotFoundError:
        return []


def size(log: Path) -> int:
    """Where the log ends now (0 for a missing file): pass it to `since` later."""
    try:
        return log.stat().st_size
    except FileNotFoundError:
        return 0


def since(log: Path, offset: int) -> str:
    """What the log gained after `offset`."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
