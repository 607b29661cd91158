"""Part of the pytest adapter: hands each finished matrix case to the results (a results.jsonl line, failures
included with their class) and, for passed cases, to pytest-benchmark. Registered only in the process that owns
the session (not on xdist workers); what it needs travels in each report's user_properties (plugin.py)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from .state import CASE, FAILURE, LAUNCH, MEASURED, PHASE, UNNEEDED

if TYPE_CHECKING:
    from ..matrix.prepare import Prepared
    from ..matrix.rows import Case
    from ..results.record import CaseResult
    from ..results.store import Store


def outcome(report: pytest.TestReport) -> str:
    """passed, failed, error (setup or teardown failed), skipped, xfailed or xpassed."""
    if getattr(report, "wasxfail", None) is not None:
        return "xfailed" if report.skipped else "xpassed"
    if report.when != "call" and report.failed:
        return "error"
    return report.outcome


def failure_text(report: pytest.TestReport) -> str:
    """What failed, without the traceback: the exception's message where pytest has it, else the whole report."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:  # our own errors' messages say what failed; their type name adds nothing
        return re.sub(r"^pytest_sglang_ablate\.[\w.]+: ", "", str(crash.message))
    if isinstance(report.longrepr, tuple):  # a skip or xfail: (path, line, "Skipped: reason")
        return re.sub(r"^(Skipped|pytest_sglang_ablate\.[\w.]+): ", "", str(report.longrepr[2]))
    return str(report.longrepr) if report.longrepr else ""


class ResultsRecorder:
    def __init__(self, store: Store, prepared: Prepared, config: pytest.Config, run: str = "") -> None:
        self.store, self.prepared, self.config, self.run = store, prepared, config, run
        self.cases = {c.id: c for c in prepared.ablation.cases}
        # rows of several launches: each case's records and samples so far, and its one benchmark entry
        self.launches: dict[str, dict[int, tuple[CaseResult, list[float]]]] = {}
        self.entries: dict[str, Any] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from ..results.benchmark import entry, stable_nodeid
        from ..results.record import CaseResult

        keys = (CASE, FAILURE, PHASE, MEASURED, LAUNCH, UNNEEDED)
        props: dict[str, Any] = {k: v for k, v in report.user_properties if k in keys}
        if props.get(UNNEEDED):  # the gate's relaunch of a row it did not flag: nothing ran, nothing to keep
            return
        case = self.cases.get(props.get(CASE, ""))
        # the case's last word: its call, a setup that did not pass (launch failure, xfail), a failed teardown
        final = report.when == "call" or (report.when == "setup" and not report.passed) or report.failed
        if case is None or not final:
            return
        result = outcome(report)
        measured = props.get(MEASURED)
        failure_class = props.get(FAILURE) if result in ("failed", "error", "xfailed", "skipped") else None
        record = CaseResult.of(
            case,
            self.prepared.ablation.matrix,
            self.prepared.version,
            result,
            failure_class,
            failure_text(report),
            measured["extra_info"] if measured else None,
            stable_nodeid(report.nodeid),
            report.duration,
            failure_phase=props.get(PHASE) if failure_class else None,
            launch=int(props.get(LAUNCH, 1)),
            run=self.run,
        )
        self.store.append(record)
        session = self.config.pluginmanager.get_plugin("pytest-benchmark")
        if session is None or not report.passed or not measured or not measured["samples"]:
            return
        if case.row.launches == 1 and record.launch == 1:
            session.benchmarks.append(
                entry(report.nodeid, measured["group"], measured["samples"], measured["extra_info"])
            )
            return
        self.launch_entry(session, case, record, measured, report.nodeid)

    def launch_entry(self, session: Any, case: Case, record: CaseResult, measured: dict[str, Any], nodeid: str) -> None:
        """A case of several launches (or relaunched by the gate) keeps one benchmark entry, under its name without
        the launch: one sample per launch (the median of its repetitions; the launch is the unit), the figures
        combined over launches."""
        import statistics

        from ..results.benchmark import entry, stable_nodeid
        from ..results.launches import combine

        so_far = self.launches.setdefault(case.id, {})
        so_far[int(record.launch or 1)] = (record, measured["samples"])
        done = [so_far[k] for k in sorted(so_far)]
        combined = combine([r for r, _ in done])
        samples = [statistics.median(s) for _, s in done]
        suffix = case.row.launched(int(record.launch or 1)).launch_suffix  # "-launch2", "-confirm1"
        name = stable_nodeid(nodeid).replace(f"{suffix}]", "]")  # xdist's "@group" off first
        new = entry(name, measured["group"], samples, combined.figures or {})
        old = self.entries.get(case.id)
        session.benchmarks[:] = [b for b in session.benchmarks if b is not old] + [new]
        self.entries[case.id] = new
