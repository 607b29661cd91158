"""Why a server failed, from its exit status and log, in the classes users act on (docs/lifecycle.md).

Where the log has a Python traceback, the last chain of tracebacks decides: its outermost exception line (with
the engine's own advice printed under it) is the evidence, and its innermost one, the cause, decides the class.
SGLang wraps any error raised while capturing CUDA graphs as "Capture cuda graph failed: ...", so an import
error or an OOM during capture is a `crash` or an `oom` that happened in the capture phase, not a capture
failure. Without a traceback, the last log line matching the profile's patterns decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .. import redact
from ..engines import EngineProfile
from ..errors import FailureClass
from .logfile import TAIL_LINES, tail

TRACEBACK = "Traceback (most recent call last):"
CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
LOG_LINE = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d")  # a new log record, e.g. "[2026-11-20 10:00:01 TP0] ..."


@dataclass(frozen=True)
class Raised:
    """One exception of a traceback: its line ("Exception: ...") and the lines its message went on with."""

    line: str
    more: tuple[str, ...] = ()


@dataclass(frozen=True)
class Diagnosis:
    failure_class: FailureClass
    evidence: str  # the outermost exception line, or the log line that decided the class
    advice: tuple[str, ...] = ()  # what the engine printed under that exception ("Possible solutions: ...")
    cause: str | None = None  # the innermost exception line, when another exception wraps it
    phase: str | None = None  # when it happened, if the log says: "cuda graph capture", "model load", ...
    exit_note: str = ""  # what the exit code means here (SGLang SIGKILLs its own tree after a failure)

    @property
    def text(self) -> str:
        """Everything known-issue `match:` rules are searched in: evidence, advice and cause."""
        return "\n".join([self.evidence, *self.advice, *([self.cause] if self.cause else [])])


def _traceback(lines: list[str], start: int) -> tuple[Raised | None, int]:
    """The exception a traceback starting at `start` ends in, and the index after it."""
    prefix = lines[start][: lines[start].index(TRACEBACK)]
    # a prefix repeated on every line (vLLM's "(EngineCore pid=1) ") is dropped; a one-off log header is not
    strip = prefix if prefix and start + 1 < len(lines) and lines[start + 1].startswith(prefix) else ""
    i = start + 1
    while i < len(lines):
        line = lines[i].removeprefix(strip)
        if line and not line[0].isspace():
            more = []
            j = i + 1
            while j < len(lines):
                nxt = lines[j].removeprefix(strip)
                if not nxt.strip() or LOG_LINE.match(nxt) or TRACEBACK in nxt or nxt.strip() in CHAINED:
                    break
                more.append(nxt.strip())
                j += 1
            return Raised(line.strip(), tuple(more)), j
        i += 1
    return None, i


def chains(text: str) -> list[tuple[list[Raised], str]]:
    """Every chain of tracebacks in the log, in order: its exceptions (innermost cause first) and its text."""
    lines = text.splitlines()
    out: list[tuple[list[Raised], str]] = []
    chain: list[Raised] = []
    chain_start, chain_end = 0, 0
    for start in (i for i, line in enumerate(lines) if TRACEBACK in line):
        raised, end = _traceback(lines, start)
        if raised is None:
            continue
        between = [ln.strip() for ln in lines[chain_end:start]]
        if not (chain and any(c in between for c in CHAINED) and all(not b or b in CHAINED for b in between)):
            if chain:  # not chained to the one before: that chain is complete
                out.append((chain, "\n".join(lines[chain_start:chain_end])))
            chain, chain_start = [], start
        chain.append(raised)
        chain_end = end
    if chain:
        out.append((chain, "\n".join(lines[chain_start:chain_end])))
    return out


def _match(profile: EngineProfile, text: str) -> FailureClass | None:
    for failure_class, pattern in profile.failure_patterns:
        if re.search(pattern, text):
            return failure_class
    return None


def _last_matching_line(profile: EngineProfile, text: str) -> tuple[FailureClass, str] | None:
    for failure_class, pattern in profile.failure_patterns:
        found = list(re.finditer(pattern, text))
        if found:
            start = text.rfind("\n", 0, found[-1].start()) + 1
            end = text.find("\n", found[-1].end())
            return failure_class, text[start : end if end >= 0 else len(text)].strip()
    return None


def _exit_note(returncode: int | None, text: str, profile: EngineProfile) -> str:
    if returncode != -9:
        return ""
    if profile.self_kill_pattern and re.search(profile.self_kill_pattern, text):
        return f"SIGKILL from {profile.name}'s own process-tree cleanup after the failure (see its log), not the kernel"
    return "SIGKILL from outside the server: the kernel's OOM killer (see `dmesg`) or another process"


def diagnose(log: Path, returncode: int | None, profile: EngineProfile) -> Diagnosis:
    """Why the server in `log` failed."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    note = _exit_note(returncode, text, profile)
    found_chains = chains(text)
    if found_chains:
        chain, chain_text = found_chains[-1]
        outer, inner = chain[-1], chain[0]
        if profile.root_cause_first and len(found_chains) > 1:
            # the engine's own process logged the root cause first; the launcher's last error only points at it
            inner, chain_text = found_chains[0][0][0], found_chains[0][1] + "\n" + chain_text
        phase = next((name for name, pattern in profile.phase_patterns if re.search(pattern, chain_text)), None)
        # the innermost exception decides; a wrapper's own words ("Capture cuda graph failed") only say when
        failure_class = _match(profile, "\n".join([inner.line, *inner.more])) or FailureClass.CRASH
        cause = inner.line if inner is not outer else None
        return Diagnosis(failure_class, outer.line, outer.more, cause, phase, note)
    found = _last_matching_line(profile, text)
    if found is not None:
        return Diagnosis(found[0], found[1], exit_note=note)
    if returncode == 2:
        return Diagnosis(FailureClass.BAD_FLAG, "exit code 2 (argparse's code for a bad command line)")
    return Diagnosis(FailureClass.EXITED, f"exit code {returncode}", exit_note=note)


def describe(
    row_id: str,
    what: str,
    diagnosis: Diagnosis,
    log: Path,
    returncode: int | None,
    profile: EngineProfile,
    secrets: frozenset[str] = frozenset(),
) -> str:
    """The message a failing case shows: class, evidence, cause, what to do, and the log tail (secrets masked)."""
    d = diagnosis
    phase = f" (during {d.phase})" if d.phase else ""
    lines = [
        f"row '{row_id}': {what} [{d.failure_class}]",
        f"  evidence: {d.evidence}" if d.evidence else "",
        *[f"    {line}" for line in d.advice],
        f"  cause: {d.cause}{phase}" if d.cause else (f"  phase: {d.phase}" if d.phase else ""),
        f"  exit code: {returncode}" + (f" ({d.exit_note})" if d.exit_note else "") if returncode is not None else "",
        f"  what to do: {profile.hints.get(d.failure_class, 'see the log')}",
        f"  log: {log}",
        f"--- last {TAIL_LINES} lines of the server log ---",
        *tail(log),
    ]
    return redact.text("\n".join(line for line in lines if line), set(secrets))
