"""The plan: what a run would launch and measure, as a table, without launching anything."""

from __future__ import annotations

import shlex
from collections import OrderedDict
from collections.abc import Callable

from tabulate import tabulate

from .. import redact
from ..errors import FailureClass
from ..matrix.prepare import Prepared
from ..matrix.rows import Case, Row
from ..server.inventory import NOT_RESOLVED, Inventory, unfit
from ..server.launchers import Launcher

COMMAND_WIDTH = 60  # wrap long server commands so the table stays readable in a terminal


def expected(cases: list[Case], rejected: str | None, refused: str | None = None) -> str:
    if rejected:
        return f"invalid flags: {rejected}"
    if refused:  # the engine's own checks refuse the row: it will not be launched
        fits = [c for c in cases if c.xfail and c.misfit(FailureClass.BAD_FLAG.value, refused) is None]
        if len(fits) == len(cases):
            return f"xfail, not launched: refused ({refused})"
        return f"fails, not launched: refused ({refused})"
    failing = [c for c in cases if c.xfail]
    if not failing:
        return "run"
    if len(failing) == len(cases):
        return f"xfail: {failing[0].xfail}"
    which = ", ".join(c.id.removeprefix(c.row.id + "-") for c in failing)
    return f"xfail {which}: {failing[0].xfail}"


def workloads(cases: list[Case]) -> str:
    parts: OrderedDict[str, list[str]] = OrderedDict()
    for c in cases:
        parts.setdefault(c.workload.name, [])
        if c.level:
            parts[c.workload.name].append(c.level.label)
    return "; ".join(f"{name} {','.join(levels)}".strip() for name, levels in parts.items())


def engine_warnings(cases: list[Case], warnings: dict[str, list[str]]) -> list[str]:
    """The engine parser's warnings (deprecations) for the rows of these cases, each once."""
    rows = {c.row.id for c in cases}
    return sorted({w for row_id, ws in warnings.items() if row_id in rows for w in ws})


def summary(cases: list[Case]) -> str:
    rows = len({c.row for c in cases})
    xfail = sum(1 for c in cases if c.xfail)
    launches = sum(r.launches for r in {c.row for c in cases})
    each = f"; {launches} launches, interleaved across rows" if launches > rows else ""
    return f"{rows} rows, {len(cases)} cases ({xfail} expected to fail){each}; nothing launched"


def render(
    launch: tuple[str, ...],
    cases: list[Case],
    rejected: dict[str, str],
    refused: dict[str, str] | None = None,
    placement: Callable[[Row], str] = lambda row: "1, local",
    too_big: Callable[[Row], str | None] = lambda row: None,
) -> str:
    """One line per row of the selected cases, in run order; the launch prefix is shown once, above."""
    by_row: OrderedDict[Row, list[Case]] = OrderedDict()
    for c in cases:
        by_row.setdefault(c.row, []).append(c)
    table = [
        [
            row.id,
            ", ".join(row.features) or "(none)",
            _command(row, launch),
            f"not run: {too_big(row)}"
            if too_big(row)
            else expected(cs, rejected.get(row.id), (refused or {}).get(row.id)),
            workloads(cs),
            row.gpus_text(),
            placement(row),
        ]
        for row, cs in by_row.items()
    ]
    headers = ["row", "on", "server command (after the launch prefix)", "expected", "workloads", "GPUs", "nodes"]
    notes = [f"  {row.id}: {row.note}" for row in by_row if row.note]
    return "\n".join(
        [
            f"launch prefix: {shlex.join(launch)}",
            tabulate(table, headers, tablefmt="simple_grid", maxcolwidths=[None, 20, COMMAND_WIDTH, 32, 16, 10, 24]),
            *(["notes:", *notes] if notes else []),
        ]
    )


def _command(row: Row, launch: tuple[str, ...]) -> str:
    """The args after the launch prefix, with the row's environment in front as a shell would show it."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in row.env)
    return f"{env} {shlex.join(row.argv[len(launch) :])}".strip()


def placement(launcher: Launcher) -> Callable[[Row], str]:
    """Where a row's ranks run: the node count, the launcher, and each rank's address (rank 0 first)."""

    def where(row: Row) -> str:
        capacity = launcher.capacity()
        if row.nodes == 1 or (capacity is not None and row.nodes > capacity):
            return f"{row.nodes}, {launcher.name}"
        ranks = ", ".join(f"rank {r} {a}" for r, a in enumerate(launcher.addresses(row.nodes)))
        return f"{row.nodes}, {launcher.name}: {ranks}"

    return where


def show(
    prepared: Prepared,
    cases: list[Case],
    secrets: set[str],
    launcher: Launcher,
    gpus: Inventory = NOT_RESOLVED,
) -> str:
    """The whole plan as --ablate-plan prints it: the table, the engine's warnings and the summary line."""
    if not cases:
        return "no cases selected"
    matrix, probe = prepared.ablation.matrix, prepared.probe
    skip = lambda row: unfit(row, launcher, gpus)  # noqa: E731
    lines = [render(matrix.launch, cases, probe.rejected, probe.refused, placement(launcher), skip)]
    lines += [f"{matrix.engine} {probe.version} warns: {w}" for w in engine_warnings(cases, probe.warnings)]
    lines.append(summary(cases))
    return redact.text("\n".join(lines), secrets)
