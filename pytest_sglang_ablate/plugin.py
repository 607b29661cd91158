"""The plugin's entry point (pytest11): with a matrix, prepare it and register the hooks of an ablation run;
without one, do nothing, so projects that install the plugin but do not use it pay nothing.

It adapts and does not compute: options, state, collection, fixtures and the recorder are the `adapter`
package's; what they call are the stages (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from .adapter.collect import MatrixFile, marks
from .adapter.fixtures import ablate_progress, ablate_record, ablate_references, sglang_server
from .adapter.options import pytest_addoption, resolve_settings
from .adapter.state import CASE, FAILURE, LAUNCH, PHASE, STATE, UNNEEDED, State, launch_of, param, run_id

__all__ = [
    "ablate_progress",
    "ablate_record",
    "ablate_references",
    "pytest_addoption",
    "resolve_settings",
    "sglang_server",
]


def pytest_configure(config: pytest.Config) -> None:
    settings = resolve_settings(config)
    if settings.matrix is None:
        if settings.plan:
            raise pytest.UsageError("--ablate-plan needs a matrix: pass --ablate-matrix PATH")
        return
    from .errors import MatrixError
    from .matrix.prepare import prepare
    from .results.store import Store
    from .server.setup import Setup

    try:
        prepared = prepare(
            settings.matrix,
            settings.matrix_shown,
            settings.engine_version,
            settings.engine_version_source,
            settings.launches,
        )
    except MatrixError as e:
        raise pytest.UsageError(str(e)) from None
    matrix = prepared.ablation.matrix
    secrets = matrix.secret_values()
    store = Store(settings.out, secrets)
    state = State(settings, prepared, store, secrets, Setup(matrix.prepare, matrix.env, store.logs / "prepare.log"))
    if settings.history:
        from .results.history import Gate, load

        nights = [p for p in settings.history if p.resolve() != store.path.resolve()]  # tonight is not history
        state.gate = Gate(load(nights, matrix.name), settings.gate, settings.confirm)
    from .errors import UsageProblem

    try:
        launcher = state.get_launcher()  # slurm outside an allocation, or ssh without hosts, stops here
    except UsageProblem as e:
        raise pytest.UsageError(str(e)) from None
    from .server.inventory import missing_here

    if launcher.runs_here and (missing := missing_here(settings.gpus)):
        raise pytest.UsageError(missing)
    this_run = run_id(config)
    state.share(this_run, settings.exclusive)
    state.records_run = (store.last_run(matrix.name) if settings.resume else None) or this_run
    config.stash[STATE] = state
    config.pluginmanager.register(AblationHooks(state), "ablate")
    if not hasattr(config, "workerinput"):  # results are kept and written by the process that owns the session
        from .adapter.finish import SessionEnd
        from .adapter.recorder import ResultsRecorder

        recorder = ResultsRecorder(state.store, prepared, config, state.records_run)
        config.pluginmanager.register(recorder, "ablate-recorder")
        config.pluginmanager.register(SessionEnd(state, config), "ablate-end")
    for feature in matrix.features:
        what = f": {feature.description}" if feature.description else ""
        config.addinivalue_line("markers", f"{feature.name}: ablation rows where feature {feature.name} is on{what}")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(settings.matrix)]  # no paths given: run exactly the ablation, not the project's tests


class AblationHooks:
    """The hooks of a run with a matrix; registered only then."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.ablation = state.prepared.ablation

    def pytest_report_header(self) -> list[str]:
        from .adapter.header import header

        return header(self.state)

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        matrix = self.state.settings.matrix
        if matrix is not None and file_path.resolve() == matrix.resolve():
            return MatrixFile.from_parent(parent, path=file_path)
        return None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "sglang_server" not in metafunc.fixturenames:
            return
        from .errors import ServerLaunchError

        # by module, not by name: `-p xdist.plugin` (plugin autoload off) registers it as "xdist.plugin", and a row
        # without its group mark was launched once per case on the H200
        xdist = any(getattr(p, "__name__", "") == "xdist.plugin" for p in metafunc.config.pluginmanager.get_plugins())
        kind = getattr(metafunc.function, "workload_kind", None)
        # each launch of a row is a server of its own (a row with another launch number): its cases run again on it;
        # with a history, the gate's relaunches follow (they skip unless the row is flagged)
        more = self.state.settings.confirm if self.state.gate is not None else 0
        if kind is not None and isinstance(metafunc.definition.parent, MatrixFile):
            mine = [c for c in self.ablation.cases if c.workload.kind == kind]
            cases = [(c, c.row.launched(k)) for c in mine for k in range(1, c.row.launches + more + 1)]
            params = [
                pytest.param(r, c, id=c.id + r.launch_suffix, marks=marks(r, c.xfail, c.expected_errors, xdist))
                for c, r in cases
            ]
            metafunc.parametrize(["sglang_server", "ablate_case"], params, indirect=["sglang_server"], scope="session")
        else:  # a user's own test that uses the server: once per row and launch, with the whole-row known issues
            rows = [r.launched(k) for r in self.ablation.rows for k in range(1, r.launches + more + 1)]
            fail = (ServerLaunchError,)
            params = [
                pytest.param(r, id=r.id + r.launch_suffix, marks=marks(r, self.ablation.row_xfail(r), fail, xdist))
                for r in rows
            ]
            metafunc.parametrize("sglang_server", params, indirect=True, scope="session")

    @pytest.hookimpl(tryfirst=True)
    def pytest_itemcollected(self, item: pytest.Item) -> None:
        row = param(item, "sglang_server")
        if row is not None:  # `-k 'not [row id]'` deselects exactly one row; a plain id would match longer ids too
            item.extra_keyword_matches.add(f"[{row.id}]")

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """--dist loadgroup with the fixes for a worker that dies mid-row (adapter/scheduling.py)."""
        if config.getvalue("dist") != "loadgroup":
            return None
        from .adapter.scheduling import RowScheduling

        return RowScheduling(config, log, self.state.run_dir)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """After -k/-m: group the cases by row and launch (one server each), launches interleaved across rows
        (A1 B1 A2 B2: a slow drift of the machine lands on every row alike), and refuse rows the engine's parser
        rejects."""
        from .engines.probe import rejection

        state, ablation, probe = self.state, self.ablation, self.state.prepared.probe
        rank = {c: i for i, c in enumerate(ablation.cases)}
        order = {row.id: i for i, row in enumerate(ablation.rows)}
        last = len(rank)

        named = {b for c in ablation.cases if (b := getattr(c.workload, "baseline", None))}

        def place(it: pytest.Item) -> tuple[int, int, int, int]:  # in a row: its cases in file order, then users'
            row = param(it, "sglang_server")
            return (
                row.launch if row else 0,
                0 if row and row.id in named else 1,  # an agreement workload's baseline row first: the reference
                order.get(row.id, -1) if row else -1,
                rank.get(param(it, "ablate_case"), last),
            )

        items.sort(key=place)
        for case in (param(it, "ablate_case") for it in items):  # each agreement workload's first row: its reference
            # a row SGLang's parser refuses never runs (dropped below), so the next row is the reference
            if case is not None and case.workload.kind == "agreement" and case.row.id not in probe.rejected:
                state.agreement_rows.setdefault(case.workload.name, case.row.id)
        if state.settings.resume:  # per launch: a run killed in launch 2 measures only what launch 2 and later lack
            done = state.store.done(ablation.matrix.name, state.prepared.version)
            skipped = [it for it in items if (getattr(param(it, "ablate_case"), "id", None), launch_of(it)) in done]
            if skipped:
                config.hook.pytest_deselected(items=skipped)
                items[:] = [it for it in items if it not in skipped]
        state.selected = list(dict.fromkeys(c for c in (param(it, "ablate_case") for it in items) if c is not None))
        bad = {r.id for r in (param(it, "sglang_server") for it in items) if r is not None and r.id in probe.rejected}
        for row in (r for r in ablation.rows if r.id in bad):
            message = rejection(ablation.matrix.engine, probe, row, ablation.matrix.file)
            report = pytest.CollectReport(f"{ablation.matrix.file}::{row.id}", "failed", message, [])
            config.hook.pytest_collectreport(report=report)
        items[:] = [it for it in items if getattr(param(it, "sglang_server"), "id", None) not in bad]
        worker = getattr(config, "workerinput", None)
        if worker is not None and getattr(config.option, "loadgroup", False):  # for the controller's RowScheduling
            from .adapter.scheduling import write_groups

            write_groups(state.run_dir, str(worker["workerid"]), items)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self) -> bool | None:
        return True if self.state.settings.plan else None  # --ablate-plan: collected, shown, nothing launched

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Each report of a matrix case says which case it is and, when a server failed, the failure class."""
        from .adapter.fixtures import RelaunchNotNeeded, RowTooBig
        from .errors import FailureClass, ServerError

        report = yield
        case = param(item, "ablate_case")
        if case is not None:
            report.user_properties += [(CASE, case.id), (LAUNCH, launch_of(item))]
        error = call.excinfo.value if call.excinfo is not None else None
        if isinstance(error, RowTooBig):
            report.user_properties.append((FAILURE, FailureClass.TOO_BIG.value))
        if isinstance(error, RelaunchNotNeeded):
            report.user_properties.append((UNNEEDED, True))
        if isinstance(error, ServerError) and error.failure_class is not None:
            report.user_properties.append((FAILURE, error.failure_class.value))
            if error.phase:
                report.user_properties.append((PHASE, error.phase))
        if case is not None and isinstance(error, ServerError) and getattr(report, "wasxfail", None) is not None:
            # xfail(raises=...) took any server failure; a known issue with `match:`/`class:` takes only its own
            failure_class = error.failure_class.value if error.failure_class else None
            misfit = case.misfit(failure_class, error.evidence)
            if misfit is not None:
                del report.wasxfail
                report.outcome = "failed"
                report.longrepr = f"{misfit}\n\n{report.longrepr}"
        return report

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_machine_info(self, machine_info: dict[str, Any]) -> None:
        """The benchmark file says which engine and GPUs the numbers come from (pytest-benchmark records neither)."""
        from .server import gpu

        engine, version = self.ablation.matrix.engine, self.state.prepared.version
        machine_info["ablate"] = {"engine": engine, "engine_version": version, "gpus": gpu.describe()}

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_commit_info(self, commit_info: dict[str, Any]) -> None:
        commit_info["engine"] = self.ablation.matrix.engine
        commit_info["engine_version"] = self.state.prepared.version
