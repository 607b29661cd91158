"""The one polling loop and the log reader the server stage shares."""

from __future__ import annotations

from pathlib import Path

from pytest_sglang_ablate.server import logfile
from pytest_sglang_ablate.server.poll import poll_until


def test_poll_until_returns_as_soon_as_the_condition_holds() -> None:
    asked = []

    def third_time() -> bool:
        asked.append(1)
        return len(asked) == 3

    assert poll_until(third_time, timeout_s=10, interval_s=0.001)
    assert len(asked) == 3


def never(asked: list[int]) -> bool:
    asked.append(1)
    return False


def test_poll_until_gives_up_at_the_deadline_having_asked_at_least_twice() -> None:
    asked: list[int] = []
    assert not poll_until(lambda: never(asked), timeout_s=0.02, interval_s=0.005)
    assert len(asked) >= 2  # first at once, last at the deadline


def test_a_zero_timeout_is_a_single_check() -> None:
    asked: list[int] = []
    assert not poll_until(lambda: never(asked), timeout_s=0)
    assert len(asked) == 1


def test_tail_gives_the_last_lines_and_survives_bad_bytes(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(100)) + b"bad \xff byte\n")
    assert logfile.tail(log, 3) == ["line 98", "line 99", "bad \ufffd byte"]
    assert logfile.tail(tmp_path / "missing.log") == []


def test_since_reads_only_what_the_log_gained(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    assert logfile.size(log) == 0 and logfile.since(log, 0) == ""
    log.write_text("before\n")
    offset = logfile.size(log)
    with open(log, "a") as f:
        f.write("gen throughput (token/s): 41.0\n")
    assert logfile.since(log, offset) == "gen throughput (token/s): 41.0\n"
