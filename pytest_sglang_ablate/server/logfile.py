"""Reading a server's log file: its last lines for failure messages, and what it wrote since a point."""

from __future__ import annotations

from pathlib import Path

TAIL_LINES = 40


def tail(log: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines as a terminal shows them (a progress bar redrawn with carriage returns is its last
    state; a line redrawn in place counts once), none for a missing file; undecodable bytes are replaced."""
    try:
        text = log.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return (shown[:-1] if shown and not shown[-1] else shown)[-lines:]


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
