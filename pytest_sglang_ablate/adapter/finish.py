"""Part of the pytest adapter: what a run leaves when it ends, in the process that owns the session.

Five writers, each on its own: the gate's verdicts against earlier nights (gate.json, with --ablate-history),
the plots, report.md, the --benchmark-json file when no case passed, and the terminal summary. One that raises
is reported as a pytest warning naming it (`WriterFailed`), the others still write, and the run exits with
pytest's INTERNAL_ERROR (3) unless it had already ended worse (interrupted, usage error). results.jsonl is not
among them: each case's line was written when the case finished. A regression the gate confirmed makes the run
exit with TESTS_FAILED (1), as pytest-benchmark's --benchmark-compare-fail does, and so does a row whose greedy
outputs report.md found beyond its agreement tolerance after the run (it ran before its reference, under xdist).

The files are written in a hook wrapper around pytest-benchmark's own saving, before it: a benchmark file that
pytest-benchmark cannot write costs no report.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from ..results.history import CONFIRMED
from .state import State

if TYPE_CHECKING:
    from ..report.markdown import Report

T = TypeVar("T")
WORSE = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR)


class WriterFailed(pytest.PytestWarning):
    """A writer at the end of the run raised: what it writes is missing; everything else was written."""


def write_plots(state: State) -> list[Path]:
    from ..report import plots

    name = state.prepared.ablation.matrix.name
    return plots.render(state.store.latest(name), state.settings.out, name)


def write_gate(state: State) -> list[dict[str, Any]] | None:
    """Each case measured tonight against the history (results/history.py), into gate.json; None without one."""
    import json

    from ..results.history import launch_values

    if state.gate is None:
        return None
    ablation = state.prepared.ablation
    records = state.store.of_run(ablation.matrix.name, state.records_run)  # tonight's, not an earlier run's
    judged = []
    for case in ablation.cases:
        tonight = [r for r in records if r.case == case.id]
        if launch_values(tonight):
            judged.append(state.gate.judge(case.id, case.workload.kind, tonight, case.row.launches).to_json())
    path = state.settings.out / "gate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {"nights": len(state.gate.nights), "gate": state.gate.threshold, "confirm": state.gate.confirm}
    path.write_text(json.dumps({**summary, "cases": judged}, indent=1, allow_nan=False), encoding="utf-8")
    return judged


def write_report(state: State, pngs: Sequence[Path], gate: list[dict[str, Any]] | None) -> tuple[Report, Path] | None:
    from ..report import markdown
    from ..results.store import Store
    from ..server import gpu

    ablation, baseline = state.prepared.ablation, state.settings.baseline
    matrix = ablation.matrix
    before = Store(baseline.parent, set()).latest(matrix.name) if baseline else None
    records = state.store.latest(matrix.name)
    order = [case.id for case in ablation.cases]
    out, version = state.settings.out, state.prepared.version
    earlier = None
    if state.gate is not None:  # the history's launch spread, for rows measured once tonight
        from ..results.history import level_noise

        levels = {c.id: (c.workload.name, c.level.label if c.level else None) for c in ablation.cases}
        earlier = level_noise(state.gate.nights, levels)
    gpus = gpu.describe()
    return markdown.write(matrix, records, out, version, gpus, state.secrets, before, order, pngs, gate, earlier)


def write_empty_benchmark_json(config: pytest.Config) -> str | None:
    """With no passed case pytest-benchmark leaves --benchmark-json unwritten (5.3 takes a path it then never
    opens; 5.2 an empty file argparse opened), which a nightly job cannot parse: write its usual shape with an
    empty `benchmarks` list. Returns the file's name, or None when there was nothing to do."""
    session = config.pluginmanager.get_plugin("pytest-benchmark")
    if session is None or session.benchmarks or not session.json or getattr(session.json, "closed", False):
        return None
    commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
    config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    output = config.hook.pytest_benchmark_generate_json(
        config=config,
        benchmarks=[],
        include_data=True,
        machine_info=session.get_machine_info(),
        commit_info=commit_info,
    )
    session.save_json(output)  # the open file (5.2) or the path (5.3)
    return str(getattr(session.json, "name", session.json))


def summary_lines(
    state: State, written: tuple[Report, Path] | None, empty_json: str | None, gate: list[dict[str, Any]] | None
) -> list[str]:
    from ..results.history import CLEARED
    from ..results.verdict import CLEAR

    lines = []
    if written is not None:
        lines += [written[0].brief, f"full report: {written[1]}   results: {state.store.path}"]
        lines += [f"wrong output, found after the run (the run fails): {x}" for x in written[0].late_failures]
    if gate is not None and state.gate is not None:
        said = [g for g in gate if g["verdict"] not in (CLEARED, CLEAR)]
        lines.append(
            f"against {len(state.gate.nights)} earlier nights (gate {state.gate.threshold:.0%}): {len(gate)} cases, "
            f"{sum(g['verdict'] == CONFIRMED for g in gate)} regressions, {sum(g['verdict'] == CLEARED for g in gate)} "
            "cleared on relaunch"
        )
        lines += [f"  {g['case']}: {g['verdict']} ({g['change']:+.1%})" for g in said if g["change"] is not None]
    if empty_json is not None:
        lines.append(f"no case passed: {empty_json} has an empty benchmarks list")
    return lines


class SessionEnd:
    """Registered only in the process that owns the session (not on xdist workers)."""

    def __init__(self, state: State, config: pytest.Config) -> None:
        self.state, self.config = state, config
        self.session: pytest.Session | None = None
        self.failed: list[str] = []
        self.written: tuple[Report, Path] | None = None
        self.empty_json: str | None = None
        self.gate: list[dict[str, Any]] | None = None

    def run(self, name: str, writer: Callable[[], T]) -> T | None:
        """`writer()`, or None where it raised: then a warning names it and the run's exit status says so."""
        try:
            return writer()
        except Exception as e:
            self.failed.append(name)
            session = self.session
            if session is not None and session.exitstatus not in WORSE:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            status = f"; the run exits with status {int(session.exitstatus)}" if session is not None else ""
            message = f"ablate: could not write {name}: {type(e).__name__}: {e} (everything else was written{status})"
            try:  # pytest's own way for a warning outside a test: shown in the warnings summary, filters apply
                self.config.issue_config_time_warning(WriterFailed(message), stacklevel=2)
            except Warning:  # -W error made the warning an exception: say it plainly instead
                sys.stderr.write(f"{message}\n")
            return None

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        """Registered after pytest-benchmark loaded, so this wrapper runs around its saving, and before it."""
        self.session = session
        state = self.state
        if not state.settings.plan:
            self.gate = self.run("gate.json", lambda: write_gate(state))
            if self.gate and any(g["verdict"] == CONFIRMED for g in self.gate) and session.exitstatus not in WORSE:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a regression beyond the noise fails the run
            pngs = self.run("plots", lambda: write_plots(state)) or []
            self.written = self.run("report.md", lambda: write_report(state, pngs, self.gate))
            if self.written and self.written[0].late_failures and session.exitstatus not in WORSE:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # wrong outputs found only once every row ran
            self.empty_json = self.run("the empty --benchmark-json", lambda: write_empty_benchmark_json(self.config))
        try:
            return (yield)
        finally:  # the workers are done: their lock files can go
            shutil.rmtree(state.run_dir, ignore_errors=True)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.state
        if state.settings.plan:
            from ..report import plan

            terminalreporter.section(f"ablation plan: {state.prepared.ablation.matrix.name}")
            terminalreporter.line(
                plan.show(state.prepared, state.selected, state.secrets, state.get_launcher(), state.settings.gpus)
            )
            return
        lines = self.run("the terminal summary", lambda: summary_lines(state, self.written, self.empty_json, self.gate))
        if lines:
            terminalreporter.section(f"ablation results: {state.prepared.ablation.matrix.name}")
            for line in lines:
                terminalreporter.line(line)
