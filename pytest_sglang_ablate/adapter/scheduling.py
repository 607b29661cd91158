"""Part of the pytest adapter: pytest-xdist's `--dist loadgroup` scheduler (one row's cases on one worker, one
launch per row).

It learns each case's group (its row) from the workers, not from the node id: xdist 3.8.0 appends `@group` to
`item._nodeid`, which pytest 9.2 no longer reads (node ids became structured; upstream pytest-xdist #1386), so
there every case was a group of its own and a row was launched once per case. Each worker writes the groups of
what it collected into the run directory before it reports its collection (`write_groups`); the scheduler reads
them once every worker has reported, and falls back to the `@group` suffix where a node id still has one.

It also has three fixes that xdist's release 3.8.0 lacks, for a worker that dies mid-row (an OOM kill, a crash of
the test process) and is replaced:

- only work units with tests still to run go back on the queue (upstream pytest-xdist #1324: requeued finished
  units were sent as empty batches and the run hung);
- the test the worker died on is not run again (#1371: it was rerun, killing each replacement in turn);
- a replacement given the last unit is told to shut down, so it runs that unit's last test (#1328: a worker
  runs a test only once it knows the next one or that there is none, and waited forever).

Used only for `--dist loadgroup` with a matrix; every other run keeps xdist's own scheduler.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadGroupScheduling

GROUPS = "groups-*.json"


def write_groups(run_dir: Path, worker: str, items: Iterable[pytest.Item]) -> None:
    """On a worker: each collected item's xdist_group, by node id as the controller will see it, named as xdist
    names a group (several marks joined by `_`)."""
    groups: dict[str, str] = {}
    for item in items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")
        }
        if names:
            groups[item.nodeid] = "_".join(sorted(names))
    run_dir.mkdir(parents=True, exist_ok=True)
    part = run_dir / f".groups-{worker}.part"
    part.write_text(json.dumps(groups), encoding="utf-8")
    os.replace(part, run_dir / GROUPS.replace("*", worker))  # whole or absent for the reader


def read_groups(run_dir: Path) -> dict[str, str]:
    """Every worker's groups (workers collect the same items; xdist checks that)."""
    groups: dict[str, str] = {}
    for path in sorted(run_dir.glob(GROUPS)):
        groups.update(json.loads(path.read_text(encoding="utf-8")))
    return groups


class RowScheduling(LoadGroupScheduling):  # type: ignore[misc]
    def __init__(self, config: pytest.Config, log: Any, run_dir: Path) -> None:
        super().__init__(config, log)
        self.run_dir = run_dir
        self.groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self.groups is None:  # first asked once every worker has reported its collection, so all have written
            self.groups = read_groups(self.run_dir)
        group = self.groups.get(nodeid)
        return group if group is not None else str(super()._split_scope(nodeid))

    def remove_node(self, node: Any) -> str | None:
        workload: dict[str, dict[str, bool]] = self.assigned_work.pop(node)
        pending = [(scope, nodeid) for scope, unit in workload.items() for nodeid, done in unit.items() if not done]
        if not pending:
            return None
        scope, crashitem = pending[0]  # the worker ran its units in order: the first not done is the one it died on
        workload[scope][crashitem] = True  # xdist reports it as failed; running it again proves nothing
        self.workqueue.update({s: unit for s, unit in workload.items() if not all(unit.values())})
        for other in self.assigned_work:
            self._reschedule(other)
        return str(crashitem)

    def schedule(self) -> None:
        if self.collection is None:
            super().schedule()
            return
        for node in self.nodes:  # a replacement worker joins a run already under way
            self._reschedule(node)
        if not self.workqueue:
            for node in self.nodes:
                if not node.shutting_down:
                    node.shutdown()
