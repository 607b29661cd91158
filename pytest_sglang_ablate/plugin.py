"""The pytest side: options, collection of a matrix file, parametrization, markers, xfails, the plan, the server
fixture. This is the only module that speaks pytest; it adapts, the modules below compute.

Nothing is imported or computed unless --ablate-matrix is given, so projects that install the plugin but do not
use it pay nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .matrix.prepare import Prepared
    from .matrix.rows import Case, Row
    from .measure.workloads import Measured
    from .results.store import Store
    from .server.launch import Server


@dataclass(frozen=True)
class Settings:
    matrix: Path | None
    matrix_shown: str  # the path as the user wrote it, for messages
    plan: bool
    engine_version: str | None
    engine_version_source: str
    out: Path = Path("ablate-results")
    resume: bool = False
    baseline: Path | None = None


@dataclass
class State:
    settings: Settings
    prepared: Prepared
    store: Store
    secrets: set[str]
    selected: list[Case] = field(default_factory=list)
    prepare_done: bool = False
    prepare_error: Exception | None = None


STATE = pytest.StashKey[State]()
MEASURED = "ablate_measured"  # the user_properties key that carries a case's figures to the benchmark session


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ablate", "SGLang server-flag ablations (pytest-sglang-ablate)")
    group.addoption("--ablate-matrix", metavar="PATH", help="Run the ablation described by this matrix YAML file")
    group.addoption(
        "--ablate-plan", action="store_true", help="Print the rows, commands and expected outcomes; launch nothing"
    )
    group.addoption(
        "--ablate-sglang-version",
        metavar="VERSION",
        help="Match known issues against this SGLang version instead of the installed one",
    )
    group.addoption(
        "--ablate-out",
        metavar="DIR",
        help="Results directory: results.jsonl, server logs, report.md (default ablate-results)",
    )
    group.addoption(
        "--ablate-resume",
        action="store_true",
        help="Skip cases already recorded in the results directory for the same matrix and engine version",
    )
    group.addoption(
        "--ablate-baseline",
        metavar="FILE_OR_DIR",
        help="Compare with an earlier run's results.jsonl (or its results directory) in report.md",
    )
    parser.addini("ablate_matrix", "Matrix YAML file to run when --ablate-matrix is not given")
    parser.addini("ablate_out", "Results directory (see --ablate-out)", default="ablate-results")
    parser.addini("ablate_sglang_version", "SGLang version for known-issue rules (see --ablate-sglang-version)")


def resolve_settings(config: pytest.Config) -> Settings:
    """Command line first, then ini; a bad value names where it came from."""
    from packaging.version import InvalidVersion, Version

    cli_matrix = config.getoption("ablate_matrix")
    ini_matrix = config.getini("ablate_matrix")
    if cli_matrix:
        matrix, shown = Path(cli_matrix), cli_matrix
    elif ini_matrix:
        shown = str(ini_matrix)
        matrix = Path(config.rootpath, shown)
    else:
        matrix, shown = None, ""
    version, source = config.getoption("ablate_sglang_version"), "--ablate-sglang-version"
    if not version and config.getini("ablate_sglang_version"):
        version, source = str(config.getini("ablate_sglang_version")), f"ini ablate_sglang_version in {config.inipath}"
    if version:
        try:
            Version(version)
        except InvalidVersion:
            raise pytest.UsageError(f"{source}: expected a version such as 0.4.3.post2, got {version!r}") from None
    out = Path(config.getoption("ablate_out") or Path(config.rootpath, str(config.getini("ablate_out"))))
    baseline = config.getoption("ablate_baseline")
    if baseline:
        baseline = Path(baseline) / "results.jsonl" if Path(baseline).is_dir() else Path(baseline)
        if not baseline.is_file():
            raise pytest.UsageError(
                f"--ablate-baseline: no results file at {baseline} (expected a results.jsonl or its directory)"
            )
    return Settings(
        matrix,
        shown,
        bool(config.getoption("ablate_plan")),
        version or None,
        source if version else "",
        out,
        bool(config.getoption("ablate_resume")),
        baseline,
    )


def pytest_configure(config: pytest.Config) -> None:
    settings = resolve_settings(config)
    if settings.matrix is None:
        if settings.plan:
            raise pytest.UsageError("--ablate-plan needs a matrix: pass --ablate-matrix PATH")
        return
    from .errors import MatrixError
    from .matrix.prepare import prepare

    try:
        prepared = prepare(
            settings.matrix, settings.matrix_shown, settings.engine_version, settings.engine_version_source
        )
    except MatrixError as e:
        raise pytest.UsageError(str(e)) from None
    from .results.store import Store

    secrets = prepared.ablation.matrix.secret_values()
    config.stash[STATE] = State(settings, prepared, Store(settings.out, secrets), secrets)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Recorder(config), "ablate-recorder")
    for feature in prepared.ablation.matrix.features:
        what = f": {feature.description}" if feature.description else ""
        config.addinivalue_line("markers", f"{feature.name}: ablation rows where feature {feature.name} is on{what}")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # no paths on the command line: run exactly the ablation, not the project's own tests
        config.args = [str(settings.matrix)]


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None:
        return []
    p, s = state.prepared, state.settings
    engine = p.ablation.matrix.engine
    version = (
        f"{engine} {p.version} ({p.version_source})"
        if p.version
        else (f"{engine} version unknown: version-ranged known issues are applied; pass --ablate-sglang-version")
    )
    return [
        f"ablate: {s.matrix_shown} ({p.ablation.matrix.name}): {len(p.ablation.rows)} rows, {len(p.ablation.cases)} cases; {version}",
        f"ablate: {p.probe.note}",
    ]


class MatrixFile(pytest.Module):
    """The matrix YAML file, collected as the module of the plugin's built-in workload tests (builtin_tests.py).

    `_getobj` is pytest's (private) hook for a module's object; pytest 9 is pinned in pyproject.toml."""

    def _getobj(self) -> Any:
        from . import builtin_tests

        return builtin_tests

    def istestfunction(self, obj: object, name: str) -> bool:
        # a workload kind with no cases in this matrix has no test function (not an empty parametrization)
        kinds = {c.workload.kind for c in self.config.stash[STATE].prepared.ablation.cases}
        return getattr(obj, "workload_kind", None) in kinds

    def istestclass(self, obj: object, name: str) -> bool:
        return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = parent.config.stash.get(STATE, None)
    if (
        state is not None
        and state.settings.matrix is not None
        and file_path.resolve() == state.settings.matrix.resolve()
    ):
        return MatrixFile.from_parent(parent, path=file_path)
    return None


def _marks(
    row: Row, xfail: str | None, expected: tuple[type[BaseException], ...], xdist: bool
) -> list[pytest.MarkDecorator]:
    marks = [getattr(pytest.mark, f) for f in row.features]
    if xdist:  # with --dist loadgroup a row's cases stay on one worker: one launch per row
        marks.append(pytest.mark.xdist_group(row.id))
    if xfail:
        # a known issue expects the server to fail; a wrong answer or an assertion still fails the case
        marks.append(pytest.mark.xfail(reason=xfail, raises=expected, strict=True))
    return marks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    state = metafunc.config.stash.get(STATE, None)
    if state is None or "sglang_server" not in metafunc.fixturenames:
        return
    from .errors import ServerLaunchError

    ablation = state.prepared.ablation
    xdist = metafunc.config.pluginmanager.hasplugin("xdist")
    kind = getattr(metafunc.function, "workload_kind", None)
    if kind is not None and isinstance(metafunc.definition.parent, MatrixFile):
        params = [
            pytest.param(c.row, c, id=c.id, marks=_marks(c.row, c.xfail, c.expected_errors, xdist))
            for c in ablation.cases
            if c.workload.kind == kind
        ]
        metafunc.parametrize(["sglang_server", "ablate_case"], params, indirect=["sglang_server"], scope="session")
    else:
        # a user's own test that uses the server: once per row, with the whole-row known issues
        params = [
            pytest.param(r, id=r.id, marks=_marks(r, ablation.row_xfail(r), (ServerLaunchError,), xdist))
            for r in ablation.rows
        ]
        metafunc.parametrize("sglang_server", params, indirect=True, scope="session")


def _param(item: pytest.Item, name: str) -> Any:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(name) if callspec is not None else None


@pytest.hookimpl(tryfirst=True)
def pytest_itemcollected(item: pytest.Item) -> None:
    row = _param(item, "sglang_server")
    if row is not None and item.config.stash.get(STATE, None) is not None:
        # `-k 'not [row id]'` deselects exactly one row, where a plain id would also match longer ids
        item.extra_keyword_matches.add(f"[{row.id}]")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """After -k/-m: group the cases by row (one server per row), and refuse rows the engine's parser rejects."""
    state = config.stash.get(STATE, None)
    if state is None:
        return
    from .engines.probe import rejection

    ablation, probe = state.prepared.ablation, state.prepared.probe
    rank = {c: i for i, c in enumerate(ablation.cases)}
    order = {row: i for i, row in enumerate(ablation.rows)}

    def run_order(item: pytest.Item) -> tuple[int, int]:
        # one row after the other; inside a row, the matrix's cases in file order, then users' own tests
        row, case = _param(item, "sglang_server"), _param(item, "ablate_case")
        return (order.get(row, -1), rank.get(case, len(rank)))

    items.sort(key=run_order)
    if state.settings.resume:
        done = state.store.done(ablation.matrix.name, state.prepared.version)
        skipped = [it for it in items if _param(it, "ablate_case") is not None and _param(it, "ablate_case").id in done]
        if skipped:
            config.hook.pytest_deselected(items=skipped)
            items[:] = [it for it in items if it not in skipped]
    state.selected = [c for c in (_param(it, "ablate_case") for it in items) if c is not None]
    bad_rows = {r for r in (_param(it, "sglang_server") for it in items) if r is not None and r.id in probe.rejected}
    for row in sorted(bad_rows, key=order.__getitem__):
        message = rejection(ablation.matrix.engine, probe, row, ablation.matrix.file)
        config.hook.pytest_collectreport(
            report=pytest.CollectReport(f"{ablation.matrix.file}::{row.id}", "failed", message, [])
        )
    items[:] = [it for it in items if _param(it, "sglang_server") not in bad_rows]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    state = session.config.stash.get(STATE, None)
    if state is not None and state.settings.plan:
        return True  # --ablate-plan: collected, shown, nothing launched
    return None


def _write_report(state: State) -> tuple[str, Path] | None:
    """report.md in the results directory, from every record of this matrix (earlier resumed runs included)."""
    from .report import markdown as report
    from .results.store import Store
    from .server import gpu

    matrix = state.prepared.ablation.matrix
    records = report.latest(state.store.load(), matrix.name)
    if not records:
        return None
    baseline = None
    if state.settings.baseline is not None:
        baseline = report.latest(Store(state.settings.baseline.parent, set()).load(), matrix.name)
    served = sorted({str(v) for r in records if (v := (r.get("figures") or {}).get("engine_version"))})
    environment = {
        "matrix": matrix.file,
        "engine": f"{matrix.engine} {', '.join(served) or state.prepared.version or '(version unknown)'}"
        + (" (as the servers reported it)" if served else ""),
        "model": matrix.model,
        "GPUs": ", ".join(f"{g['name']} ({g['memory_gib']} GiB, driver {g['driver']})" for g in gpu.describe())
        or "none seen",
        "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    from .redact import text as masked

    rendered = masked(
        report.render(matrix.name, list(matrix.feature_names), records, environment, baseline), state.secrets
    )
    from .report import plots

    pngs = plots.render(records, state.settings.out, matrix.name)
    if pngs:
        rendered += "\n## Plots\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n"
    path = state.settings.out / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rendered, encoding="utf-8")
    return rendered, path


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if not state.settings.plan:
        if hasattr(config, "workerinput"):
            return
        written = _write_report(state)
        if written is not None:
            rendered, path = written
            terminalreporter.section(f"ablation results: {state.prepared.ablation.matrix.name}")
            brief = rendered.split("## What each feature bought")[0].split("\n", 2)[
                2
            ]  # the outcome line and the two tables
            terminalreporter.line(brief.rstrip())
            terminalreporter.line(f"full report: {path}   results: {state.store.path}")
        return
    from .report import plan

    p = state.prepared
    terminalreporter.section(f"ablation plan: {p.ablation.matrix.name}")
    if not state.selected:
        terminalreporter.line("no cases selected")
        return
    from .redact import text

    terminalreporter.line(
        text(
            plan.render(p.ablation.matrix.engine, p.ablation.matrix.launch, state.selected, p.probe.rejected),
            state.secrets,
        )
    )
    for warning in plan.engine_warnings(state.selected, p.probe.warnings):
        terminalreporter.line(f"{p.ablation.matrix.engine} {p.probe.version} warns: {warning}")
    terminalreporter.line(plan.summary(state.selected))


@pytest.fixture(scope="session")
def sglang_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The server of the current matrix row: launched once per row, shared by all of the row's tests, and
    stopped (with every process it started) before the next row's server starts. A launch failure is raised
    once and reported by every case of the row."""
    state = request.config.stash.get(STATE, None)
    if state is None:
        raise pytest.UsageError("the sglang_server fixture needs a matrix: run pytest with --ablate-matrix PATH")
    from . import engines
    from .server.launch import start

    matrix = state.prepared.ablation.matrix
    row = request.param
    if state.prepare_error is None and not state.prepare_done and matrix.prepare:
        from .server.setup import PrepareError, run

        try:
            run(matrix.prepare, matrix.env, state.store.logs / "prepare.log")
        except PrepareError as e:
            state.prepare_error = e
        state.prepare_done = True
    if state.prepare_error is not None:
        raise state.prepare_error  # every row reports it; none launches
    try:
        server = start(
            row, engines.get(matrix.engine), matrix.server, state.store.logs, matrix.api_key, frozenset(state.secrets)
        )
    finally:
        for log in state.store.logs.glob(f"{row.id}*.log"):
            state.store.mask_log(log)
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            state.store.mask_log(server.log_path)


@pytest.fixture
def ablate_record(request: pytest.FixtureRequest, sglang_server: Server) -> Callable[[Measured], None]:
    """Keep a case's figures with its report, with where they came from: the row, the server's effective config
    and the engine version. They reach pytest-benchmark in the process that owns its session (xdist-safe)."""

    def record(measured: Measured) -> None:
        server = sglang_server
        extra = {
            "row": server.row.id,
            "features": list(server.row.features),
            **measured.extra_info,
            "engine": server.profile.name,
            "engine_version": server.version,
            "server_argv": server.argv,
            "effective_config": server.info,
            "unverified_flags": server.unverified,
            "mem_fraction_static_retry": server.mem_fraction_static,
        }
        from .redact import data

        secrets = request.config.stash[STATE].secrets
        payload = {"group": measured.group, "samples": measured.samples, "extra_info": data(extra, secrets)}
        request.node.user_properties.append((MEASURED, payload))

    return record


@pytest.fixture
def ablate_progress(request: pytest.FixtureRequest) -> Iterator[Callable[[str], None]]:
    """One updating terminal line while a level runs (on a terminal; elsewhere, as in CI logs, a line every 30 s;
    nothing under -q)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or request.config.get_verbosity() < 0:
        yield lambda line: None
        return
    started = time.monotonic()
    last = [0.0]
    tty = reporter.isatty()
    row = _param(request.node, "sglang_server")

    def show(line: str) -> None:
        now = time.monotonic()
        if not tty and now - last[0] < 30:
            return
        last[0] = now
        text = f"[{row.id if row else ''}] {line}, {now - started:.0f} s elapsed"
        with capture.global_and_fixture_disabled():  # the test's output is captured; this line is for the user
            reporter.write(f"\r  {text[:150]:<150}" if tty else f"\n  {text}", flush=True)

    yield show
    if tty and last[0]:
        with capture.global_and_fixture_disabled():
            reporter.write("\r" + " " * 154 + "\r", flush=True)


class Recorder:
    """Keeps every finished matrix case: a line in results.jsonl (also failures, with their class) and, for
    passed cases, a pytest-benchmark entry. Registered only in the process that owns the session (not on
    xdist workers); the figures travel there in the report's user_properties."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.by_id = {c.id: c for c in config.stash[STATE].prepared.ablation.cases}

    def case_of(self, nodeid: str) -> Case | None:
        """The matrix case a report is about, from its node id alone (an xdist controller collects nothing)."""
        name = nodeid.split("@")[0].rsplit("::", 1)[-1]
        func, _, param = name.partition("[")
        return self.by_id.get(param[:-1]) if func in ("test_single", "test_batch") else None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state = self.config.stash[STATE]
        case = self.case_of(report.nodeid)
        final = report.when == "call" or (report.when == "setup" and not report.passed)
        if case is None or not final:
            return
        measured = [v for k, v in report.user_properties if k == MEASURED and isinstance(v, dict)]
        state.store.append(self.record(state, case, report, measured[0] if measured else None))
        session = self.config.pluginmanager.get_plugin("pytest-benchmark")
        if session is None or not report.passed:
            return
        from .results.benchmark import entry

        for m in measured:
            if m["samples"]:
                session.benchmarks.append(entry(report.nodeid, m["group"], m["samples"], m["extra_info"]))

    @staticmethod
    def record(state: State, case: Case, report: pytest.TestReport, measured: dict[str, Any] | None) -> dict[str, Any]:
        from .results.store import failure_class

        xfail = getattr(report, "wasxfail", None)
        if xfail is not None:
            outcome = "xfailed" if report.skipped else "xpassed"
        elif report.when == "setup" and report.failed:
            outcome = "error"
        else:
            outcome = report.outcome
        text = str(report.longrepr) if report.longrepr else ""
        matrix = state.prepared.ablation.matrix
        return {
            "matrix": matrix.name,
            "matrix_file": matrix.file,
            "case": case.id,
            "row": case.row.id,
            "features": list(case.row.features),
            "workload": case.workload.name,
            "kind": case.workload.kind,
            "concurrency": case.level.concurrency if case.level else None,
            "requests": case.level.requests if case.level else None,
            "outcome": outcome,
            "failure_class": failure_class(text) if outcome in ("failed", "error", "xfailed") else None,
            "known_issue": case.xfail,
            "message": text.strip().splitlines()[-1][:500] if text.strip() else None,
            "figures": measured["extra_info"] if measured else None,
            "engine": matrix.engine,
            "engine_version_expected": state.prepared.version,
            "nodeid": report.nodeid.split("@")[0],
            "duration_s": report.duration,
            "time": time.time(),
        }


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """The benchmark file says which engine and GPUs the numbers come from (pytest-benchmark records neither)."""
    state = config.stash.get(STATE, None)
    if state is None:
        return
    from .server import gpu

    machine_info["ablate"] = {
        "engine": state.prepared.ablation.matrix.engine,
        "engine_version": state.prepared.version,
        "gpus": gpu.describe(),
    }


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_commit_info(config: pytest.Config, commit_info: dict[str, Any]) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        commit_info["engine"] = state.prepared.ablation.matrix.engine
        commit_info["engine_version"] = state.prepared.version
