"""Part of the pytest adapter: what a run leaves when it ends, in the process that owns the session.

Four writers, each on its own: the plots, report.md, the --benchmark-json file when no case passed, and the
terminal summary. One that raises is reported as a pytest warning naming it (`WriterFailed`), the others still
write, and the run exits with pytest's INTERNAL_ERROR (3) unless it had already ended worse (interrupted, usage
error). results.jsonl is not among them: each case's line was written when the case finished.

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


def write_report(state: State, pngs: Sequence[Path]) -> tuple[Report, Path] | None:
    from ..report import markdown
    from ..results.store import Store
    from ..server import gpu

    ablation, baseline = state.prepared.ablation, state.settings.baseline
    matrix = ablation.matrix
    before = Store(baseline.parent, set()).latest(matrix.name) if baseline else None
    records = state.store.latest(matrix.name)
    order = [case.id for case in ablation.cases]
    out, version = state.settings.out, state.prepared.version
    return markdown.write(matrix, records, out, version, gpu.describe(), state.secrets, before, order, pngs)


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


def summary_lines(state: State, written: tuple[Report, Path] | None, empty_json: str | None) -> list[str]:
    lines = []
    if written is not None:
        lines += [written[0].brief, f"full report: {written[1]}   results: {state.store.path}"]
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
            pngs = self.run("plots", lambda: write_plots(state)) or []
            self.written = self.run("report.md", lambda: write_report(state, pngs))
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
        lines = self.run("the terminal summary", lambda: summary_lines(state, self.written, self.empty_json))
        if lines:
            terminalreporter.section(f"ablation results: {state.prepared.ablation.matrix.name}")
            for line in lines:
                terminalreporter.line(line)
