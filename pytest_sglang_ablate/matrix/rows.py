"""Expand a matrix into rows (one server each) and cases (row x workload x level), with ids and rules."""

from __future__ import annotations

from dataclasses import dataclass, replace

from packaging.version import InvalidVersion, Version

from .. import engines
from ..engines import EngineProfile
from ..errors import FailureClass, MatrixError, ServerDied, ServerError, ServerLaunchError, WrongOutput
from . import combinations
from .args import Args, int_value, lookup, merge, to_argv
from .model import BatchWorkload, KnownIssue, Level, Matrix, RowSpec, Workload

BASELINE_ID = "baseline"  # the id of a row with every feature off


@dataclass(frozen=True)
class Row:
    """One server configuration. Equal rows share one server (pytest caches the fixture by equality)."""

    id: str
    features: tuple[str, ...]  # the ON features, in declaration order
    args: Args  # the merged args the row asks for
    argv: tuple[str, ...]  # the server command, before host and port are added
    env: tuple[tuple[str, str], ...]
    workloads: tuple[Workload, ...]
    note: str = ""
    nodes: int = 1  # machines the server spans: one rank per node
    gpus: int = 1  # GPUs the server needs on each node
    launches: int = 1  # fresh servers that measure the row, one after the other
    launch: int = 1  # which of them this is (a row with another launch number is another server)

    def launched(self, launch: int) -> Row:
        return replace(self, launch=launch)

    @property
    def confirming(self) -> bool:
        """A relaunch of a row the nightly gate flagged (launch numbers past `launches`; results/history.py)."""
        return self.launch > self.launches

    @property
    def launch_suffix(self) -> str:
        """What a case's test id adds for this launch: nothing for a row of one launch, else "-launch2"; a
        relaunch for the gate's confirmation "-confirm1"."""
        if self.confirming:
            return f"-confirm{self.launch - self.launches}"
        return f"-launch{self.launch}" if self.launches > 1 else ""

    def gpus_text(self) -> str:
        """The GPU need in words, as the plan and skip reasons show it: "16 (2 nodes x 8)"."""
        total = self.gpus * self.nodes
        return f"{total} ({self.nodes} nodes x {self.gpus})" if self.nodes > 1 else str(total)


@dataclass(frozen=True)
class Case:
    """One test case: a workload (and for batch, one concurrency level) on one row."""

    row: Row
    workload: Workload
    level: Level | None
    xfail: str | None  # the known issues' reason when this case is expected to fail
    # True when every matching rule covers the whole row: only a failed launch is the expected failure
    xfail_launch_only: bool = True
    rules: tuple[KnownIssue, ...] = ()  # the known issues that expect this case to fail

    @property
    def id(self) -> str:
        level = f"-{self.level.label}" if self.level else ""
        return f"{self.row.id}-{self.workload.name}{level}"

    @property
    def expected_errors(self) -> tuple[type[ServerError], ...]:
        """What counts as the known failure: a failed launch, or for rules limited to some workloads or levels
        (an OOM at high concurrency), also the server dying mid-workload. Never a timeout or a wrong answer."""
        server = (ServerLaunchError,) if self.xfail_launch_only else (ServerLaunchError, ServerDied)
        wrong = [r for r in self.rules if _expects_wrong_output(r)]
        if not wrong:
            return server
        # an agreement case whose outputs a known issue says are wrong; any other rule expects the server's failure
        return (WrongOutput,) if len(wrong) == len(self.rules) else (WrongOutput, *server)

    def misfit(self, failure_class: str | None, evidence: str) -> str | None:
        """None when a server failure is one the case's known issues expect (any rule fits), else why not."""
        if not self.rules or any(rule.fits(failure_class, evidence) for rule in self.rules):
            return None
        wanted = []
        for rule in self.rules:
            parts = [
                f"class {rule.failure_class}" if rule.failure_class else "",
                f"/{rule.match}/" if rule.match else "",
            ]
            wanted.append(f"{rule.where} ({' and '.join(p for p in parts if p)})")
        return (
            f"the server failed [{failure_class}], but not as the known issue says: {'; '.join(wanted)} "
            "did not match. A different failure is not the expected one; see the error below."
        )


@dataclass(frozen=True)
class Ablation:
    matrix: Matrix
    rows: tuple[Row, ...]
    cases: tuple[Case, ...]
    engine_version: str | None
    issues: tuple[KnownIssue, ...]  # the known issues that apply to this engine version

    def row_xfail(self, row: Row) -> str | None:
        """Why a whole row is expected to fail (for tests that use the server but are not matrix cases)."""
        return reason(matching_rules(self.issues, frozenset(row.features), None, None))


def rule_applies(issue: KnownIssue, version: str | None) -> bool:
    """A rule outside its version range does not apply; with no known version, every rule does."""
    if issue.versions is None or version is None:
        return True
    try:
        return issue.versions.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True


def _matches_row(issue: KnownIssue, features: frozenset[str]) -> bool:
    return issue.when <= features


def _expects_wrong_output(issue: KnownIssue) -> bool:
    return issue.failure_class == FailureClass.WRONG_OUTPUT.value


def _whole_row_rule(issue: KnownIssue) -> bool:
    return issue.workloads is None and issue.min_concurrency is None and not _expects_wrong_output(issue)


def matching_rules(
    issues: tuple[KnownIssue, ...], features: frozenset[str], workload: Workload | None, level: Level | None
) -> list[KnownIssue]:
    """The rules that expect this case to fail; with no workload (a user's own test), whole-row rules only."""
    out = []
    for issue in issues:
        if not _matches_row(issue, features):
            continue
        if issue.workloads is not None and (workload is None or workload.name not in issue.workloads):
            continue
        if issue.min_concurrency is not None and (level is None or level.concurrency < issue.min_concurrency):
            continue
        if issue.failure_class == FailureClass.WRONG_OUTPUT.value and getattr(workload, "kind", None) != "agreement":
            continue  # wrong output is what an agreement case finds; the row's other cases still run and pass
        out.append(issue)
    return out


def reason(rules: list[KnownIssue]) -> str | None:
    return "; ".join(r.reason for r in rules) or None


def _generated_specs(matrix: Matrix, issues: tuple[KnownIssue, ...]) -> list[RowSpec]:
    out = []
    for gen in matrix.generators:
        blocking = [i for i in issues if _whole_row_rule(i)] if gen.exclude_known_issues else []

        def allowed(
            combo: tuple[bool, ...], feats: tuple[str, ...] = gen.features, rules: list[KnownIssue] = blocking
        ) -> bool:
            on = frozenset(f for f, v in zip(feats, combo, strict=False) if v)
            return not any(_matches_row(r, on) for r in rules)

        make = combinations.product if gen.mode == "product" else combinations.pairwise
        for combo in make(len(gen.features), allowed):
            on = frozenset(f for f, v in zip(gen.features, combo, strict=False) if v)
            t = gen.template
            out.append(
                replace(t, features=on)  # the template's row-only settings (nodes, gpus, launches) too
            )
    return out


def expand(matrix: Matrix, engine_version: str | None, launches: int | None = None) -> Ablation:
    """Rows in file order (hand-written first, then generated) and their cases; checks ids are unique. `launches`
    (--ablate-launches) overrides the matrix's and every row's."""
    profile = engines.get(matrix.engine)
    issues = tuple(i for i in matrix.known_issues if rule_applies(i, engine_version))
    specs = list(matrix.rows)
    taken = {s.features for s in specs}
    for spec in _generated_specs(matrix, issues):  # hand-written rows first, then the first generator wins
        if spec.features not in taken:
            taken.add(spec.features)
            specs.append(spec)

    rows: list[Row] = []
    cases: list[Case] = []
    seen: dict[str, RowSpec] = {}
    by_name = {f.name: f for f in matrix.features}
    for spec in specs:
        on = tuple(f.name for f in matrix.features if f.name in spec.features)
        row_id = spec.id or "+".join(on) or BASELINE_ID
        if row_id in seen:
            first = seen[row_id]
            fix = (
                "give the hand-written row an explicit `id:`"
                if spec.where.startswith("generate")
                else "give one of them an explicit `id:`"
            )
            raise MatrixError(
                matrix.file, spec.line, spec.where, f"duplicate row id '{row_id}' (also {first.where}); {fix}"
            )
        seen[row_id] = spec
        layers = [by_name[f].on if f in spec.features else by_name[f].off for f in by_name]
        args = merge(matrix.args, *layers, spec.args)
        argv = (*matrix.launch, profile.model_flag, matrix.model, *to_argv(args))
        env = tuple({**dict(matrix.env), **dict(spec.env)}.items())
        chosen = {w.name: w for w in (spec.workloads or matrix.workloads)}
        workloads = tuple(chosen[w.name] for w in matrix.workloads if w.name in chosen)
        nodes = _nodes(matrix, spec, row_id, args, profile)
        gpus = spec.gpus or matrix.gpus or max(1, -(-profile.gpu_count(args) // nodes))  # per node, rounded up
        count = launches or spec.launches or matrix.launches or 1
        row = Row(row_id, on, args, argv, env, workloads, spec.note, nodes, gpus, count)
        rows.append(row)
        for w in workloads:
            levels: tuple[Level | None, ...] = w.levels if isinstance(w, BatchWorkload) else (None,)
            for level in levels:
                rules = matching_rules(issues, spec.features, w, level)
                # whether the server's failures they expect are its launch's only (a wrong output is no server failure)
                launch_only = all(_whole_row_rule(r) for r in rules if not _expects_wrong_output(r))
                cases.append(Case(row, w, level, reason(rules), launch_only, tuple(rules)))
    _check_baselines(matrix, rows)
    return Ablation(matrix, tuple(rows), tuple(cases), engine_version, issues)


def _check_baselines(matrix: Matrix, rows: list[Row]) -> None:
    """An agreement workload's `baseline:` names a row that runs that workload."""
    for w in matrix.workloads:
        baseline = getattr(w, "baseline", None)
        if baseline is None:
            continue
        having = [r.id for r in rows if any(x.name == w.name for x in r.workloads)]
        if baseline not in having:
            raise MatrixError(
                matrix.file,
                None,
                f"workloads.{w.name}.baseline",
                f"expected the id of a row that runs workload {w.name} ({', '.join(having) or 'none does'}), "
                f"got '{baseline}'",
            )


def _nodes(matrix: Matrix, spec: RowSpec, row_id: str, args: Args, profile: EngineProfile) -> int:
    """How many nodes the row's server spans: `nodes:` (row, else matrix) or the row's nnodes arg; both must agree."""
    given = spec.nodes or matrix.nodes
    from_args = int_value(args, "nnodes") if lookup(args, "nnodes") is not None else None
    if given is not None and from_args is not None and given != from_args:
        raise MatrixError(
            matrix.file,
            spec.line,
            spec.where,
            f"row '{row_id}' says nodes: {given} but its args say nnodes: {from_args}; give one, or make them agree",
        )
    nodes = given or from_args or 1
    if nodes > 1 and profile.multinode_flags is None:
        raise MatrixError(
            matrix.file,
            spec.line,
            spec.where,
            f"row '{row_id}' spans {nodes} nodes; engine {matrix.engine} runs on one",
        )
    return nodes
