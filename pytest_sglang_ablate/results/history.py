"""Tonight against earlier nights: the nightly gate over the results of earlier runs (`--ablate-history`).

Each earlier run is one night: its results.jsonl, each case's last record per launch. A case is compared only
with nights that ran it with the same server flags (host and ports aside); a changed engine version is what a
nightly gate exists to judge, so it is compared and named. The decision itself is results/verdict.py's `judge`
(docs/metrics.md, "How sure a difference is"): flagged on tonight's launches, relaunched `confirm` times, and
confirmed or cleared on all of them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import verdict
from .record import CaseResult, headline
from .verdict import Judgement

VOLATILE = ("--host", "--port", "--dist-init-addr")  # flags whose values differ between launches of the same row
FLAGS_CHANGED, CONFIRMED, CLEARED = "flags changed: not compared", "regression (confirmed)", "cleared on relaunch"


def flags(record: CaseResult) -> tuple[str, ...]:
    """The server's argv as the record has it, without the values that change from launch to launch."""
    argv = [str(a) for a in (record.figures or {}).get("server_argv") or []]
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in VOLATILE:
            skip = "=" not in arg
            continue
        out.append(arg)
    return tuple(out)


def launch_values(records: Iterable[CaseResult]) -> list[float]:
    """A case's headline figure per launch that passed (its last record of each launch)."""
    last: dict[int | None, CaseResult] = {}
    for r in records:
        if r.launch is not None:
            last[r.launch] = r
    out = []
    for r in (last[k] for k in sorted(last, key=lambda k: k or 0)):
        value = (r.figures or {}).get(headline(r.kind))
        if r.outcome == "passed" and isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            out.append(float(value))
    return out


@dataclass(frozen=True)
class Night:
    path: Path
    cases: dict[str, list[CaseResult]]  # case id -> its records, in file order

    def values(self, case: str) -> list[float]:
        return launch_values(self.cases.get(case, []))

    def flags(self, case: str) -> tuple[str, ...] | None:
        passed = [r for r in self.cases.get(case, []) if r.outcome == "passed"]
        return flags(passed[-1]) if passed else None

    def engine_version(self, case: str) -> str | None:
        passed = [r for r in self.cases.get(case, []) if r.outcome == "passed"]
        version = (passed[-1].figures or {}).get("engine_version") if passed else None
        return str(version) if version else None


def results_file(path: Path) -> Path:
    return path / "results.jsonl" if path.is_dir() else path


def load(paths: Sequence[Path], matrix: str) -> list[Night]:
    """One night per results file (a results directory stands for its results.jsonl), this matrix's records."""
    nights = []
    for path in paths:
        cases: dict[str, list[CaseResult]] = {}
        for line in results_file(path).read_text(encoding="utf-8").splitlines():
            try:
                record = CaseResult.from_json(json.loads(line))
            except (ValueError, TypeError, AttributeError):
                continue  # a line cut short by a kill, or not a record
            if record.matrix == matrix:
                cases.setdefault(record.case, []).append(record)
        nights.append(Night(results_file(path), cases))
    return nights


def level_noise(nights: Sequence[Night], levels: dict[str, tuple[str, str | None]]) -> dict[Any, tuple[float, int]]:
    """The launch spread at each (workload, concurrency) the history measured with several launches a night, pooled
    over its cases and nights: what a row ratio tonight can use where tonight's rows had one launch each."""
    groups: dict[tuple[str, str | None], list[list[float]]] = {}
    for night in nights:
        for case, level in levels.items():
            groups.setdefault(level, []).append(night.values(case))
    out = {}
    for level, values in groups.items():
        pooled = verdict.pooled_sd(values)
        if pooled is not None:
            out[level] = pooled
    return out


@dataclass(frozen=True)
class CaseGate:
    """One case's verdict against the history, as report.md and gate.json show it."""

    case: str
    metric: str
    verdict: str
    judgement: Judgement | None
    nights_compared: int
    nights_skipped: int  # nights that ran the case with other flags
    engine_versions: tuple[str, ...] = ()  # the history's, where they differ from tonight's
    needed: int | None = None  # launches tonight that would catch twice the gate's size
    relaunched: int = 0

    def to_json(self) -> dict[str, Any]:
        """The verdict as gate.json keeps it: strict JSON (a figure there is none of is null, never NaN)."""
        j = self.judgement

        def num(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        out = {
            "case": self.case,
            "metric": self.metric,
            "verdict": self.verdict,
            "nights": self.nights_compared,
            "nights_with_other_flags": self.nights_skipped,
            "history_engine_versions": list(self.engine_versions),
            "history_median": num(j.history_median) if j else None,
            "history_range": [num(j.history_low), num(j.history_high)] if j and num(j.history_median) else None,
            "tonight": num(j.tonight) if j else None,
            "change": num(j.change) if j else None,
            "p": num(j.p) if j else None,
            "detectable": num(j.detectable) if j else None,
            "launches": j.launches if j else 0,
            "relaunched": self.relaunched,
            "launches_needed_for_twice_the_gate": self.needed,
        }
        return out


@dataclass
class Gate:
    nights: list[Night]
    threshold: float
    confirm: int
    judged: dict[str, CaseGate] = field(default_factory=dict)

    def history(self, case: str, tonight: Sequence[CaseResult]) -> tuple[list[list[float]], int, tuple[str, ...]]:
        """The nights' launch values for `case` that ran it with tonight's flags; how many ran it otherwise; the
        engine versions of those compared where they differ from tonight's."""
        passed = [r for r in tonight if r.outcome == "passed"]
        mine = flags(passed[-1]) if passed else None
        now = (passed[-1].figures or {}).get("engine_version") if passed else None
        same = [n for n in self.nights if n.values(case) and (mine is None or n.flags(case) == mine)]
        other = sum(1 for n in self.nights if n.values(case)) - len(same)
        versions = tuple(sorted({v for n in same if (v := n.engine_version(case)) and v != now}))
        return [n.values(case) for n in same], other, versions

    def flagged(self, case: str, kind: str, tonight: Sequence[CaseResult], launches: int) -> bool:
        """Whether tonight's first `launches` launches of `case` call for a relaunch (at SCREEN_ALPHA)."""
        first = [r for r in tonight if r.launch is not None and r.launch <= launches]
        nights, _, _ = self.history(case, first)
        values = launch_values(first)
        return bool(values) and verdict.judge(values, nights, self.threshold, verdict.SCREEN_ALPHA).verdict == (
            verdict.REGRESSION
        )

    def judge(self, case: str, kind: str, tonight: Sequence[CaseResult], launches: int) -> CaseGate:
        """The case's final verdict: tonight's `launches` launches, plus the relaunches where it was flagged."""
        nights, other, versions = self.history(case, tonight)
        metric = headline(kind)
        if not nights and other:
            return CaseGate(case, metric, FLAGS_CHANGED, None, 0, other)
        first = launch_values([r for r in tonight if r.launch is not None and r.launch <= launches])
        every = launch_values(tonight)
        relaunched = len(every) - len(first)
        # flagged (its row relaunched for this case, not only for another of the row's cases): decided on every
        # launch at the confirmation's alpha
        if self.confirm and relaunched and self.flagged(case, kind, tonight, launches):
            result = verdict.judge(every, nights, self.threshold, verdict.CONFIRM_ALPHA)
            said = CONFIRMED if result.verdict == verdict.REGRESSION else CLEARED
        else:
            alpha = verdict.SCREEN_ALPHA if self.confirm else verdict.CONFIRM_ALPHA
            result = verdict.judge(first, nights, self.threshold, alpha)
            said = CONFIRMED if result.verdict == verdict.REGRESSION and not self.confirm else result.verdict
            if result.verdict == verdict.REGRESSION and self.confirm:
                said = "flagged, not relaunched"  # the confirmation launches did not run (deselected, or xdist)
        history = verdict.noise(nights)
        needed = None
        if history is not None and history.nights >= 3:
            needed = verdict.launches_needed(history, 2 * self.threshold, self.confirm, self.threshold)
            detectable = verdict.gate_detectable(history, len(first), self.confirm, self.threshold)
            result = dataclasses.replace(result, detectable=detectable)
        return CaseGate(case, metric, said, result, len(nights), other, versions, needed, relaunched)
