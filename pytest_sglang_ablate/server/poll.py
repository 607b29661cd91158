"""Waiting for a condition with a deadline: the one polling loop of the package (no sleeps as synchronisation)."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_S = 0.05  # a change is noticed within about this long


def poll_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = POLL_S) -> bool:
    """Ask `condition` every `interval_s` until it is true (True) or `timeout_s` has passed (False).

    It is always asked once, and once more at the deadline, so a zero timeout is a single check."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(interval_s, left))
