"""Part of the pytest adapter: pytest-xdist's `--dist loadgroup` scheduler (one row's cases on one worker, one
launch per row), with three fixes that its release 3.8.0 lacks, for a worker that dies mid-row (an OOM kill,
a crash of the test process) and is replaced:

- only work units with tests still to run go back on the queue (upstream pytest-xdist #1324: requeued finished
  units were sent as empty batches and the run hung);
- the test the worker died on is not run again (#1371: it was rerun, killing each replacement in turn);
- a replacement given the last unit is told to shut down, so it runs that unit's last test (#1328: a worker
  runs a test only once it knows the next one or that there is none, and waited forever).

Used only for `--dist loadgroup` with a matrix; every other run keeps xdist's own scheduler.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadGroupScheduling


class RowScheduling(LoadGroupScheduling):  # type: ignore[misc]
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
