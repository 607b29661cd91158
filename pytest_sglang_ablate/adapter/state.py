"""Part of the pytest adapter: what a run with a matrix keeps in `config.stash`, and the keys its reports carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .options import Settings

if TYPE_CHECKING:
    from ..engines.probe import ProbeResult
    from ..matrix.prepare import Prepared
    from ..matrix.rows import Case
    from ..results.history import Gate
    from ..results.store import Store
    from ..server.launchers import Launcher
    from ..server.leases import Activity, Leases
    from ..server.setup import Setup


@dataclass
class State:
    settings: Settings
    prepared: Prepared
    store: Store
    secrets: set[str]
    setup: Setup  # the matrix's prepare steps, run before the first row's server
    selected: list[Case] = field(default_factory=list)
    rechecked: ProbeResult | None = None  # the argument checks again after the prepare steps (see fixtures.py)
    launcher: Launcher | None = None  # made once per run, when the first row needs it
    leases: Leases = field(init=False)  # GPUs and port blocks shared by the run's xdist workers
    activity: Activity = field(init=False)  # when each row's server ran, for overlap notes
    run_dir: Path = field(init=False)
    gate: Gate | None = None  # --ablate-history: tonight against earlier nights
    records_run: str = ""  # the run id this run's records carry (the resumed run's with --ablate-resume)
    agreement_rows: dict[str, str] = field(default_factory=dict)  # agreement workload -> its first row in the run

    def share(self, run_id: str, exclusive: bool) -> None:
        """The run directory all workers of this run (one xdist testrunuid) share."""
        from ..server.leases import Activity, Leases, run_directory

        self.run_dir = run_directory(self.settings.out, run_id)
        self.leases = Leases(self.run_dir, self.settings.gpus.ids, exclusive)
        self.activity = Activity(self.run_dir)

    def get_launcher(self) -> Launcher:
        """The run's launcher: --ablate-launcher (or ini), else the matrix's; raises UsageProblem where it cannot
        work (slurm outside an allocation, ssh without hosts)."""
        if self.launcher is None:
            from ..server.launchers import get

            matrix = self.prepared.ablation.matrix
            name = self.settings.launcher or matrix.launcher
            hosts = self.settings.hosts if self.settings.hosts is not None else matrix.hosts
            self.launcher = get(name, list(hosts), list(matrix.ssh_options))
        return self.launcher

    def probe_after_setup(self) -> ProbeResult:
        """The probe's result, with the argument checks that needed the prepare steps' output run again (once)."""
        if self.rechecked is None:
            from ..engines.probe import recheck_after_setup

            self.rechecked = recheck_after_setup(self.prepared.ablation, self.prepared.probe)
        return self.rechecked


STATE = pytest.StashKey[State]()
# what a case's reports carry to the process that records them (the xdist controller collects nothing itself)
CASE, FAILURE, PHASE, MEASURED = "ablate_case", "ablate_failure_class", "ablate_failure_phase", "ablate_measured"
LAUNCH, UNNEEDED = "ablate_launch", "ablate_relaunch_not_needed"


def param(item: pytest.Item, name: str) -> Any:
    """The value of a parametrized argument of `item` (the row for "sglang_server", the case for "ablate_case")."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(name) if callspec is not None else None


def launch_of(item: pytest.Item) -> int:
    """Which launch of its row an item runs on (1 for a row of one launch)."""
    return int(getattr(param(item, "sglang_server"), "launch", 1))


def run_id(config: pytest.Config) -> str:
    """One id for the run's processes, naming the directory they share (locks, activity, xdist groups): xdist's
    testrunuid, which the controller sets here where the user gave none, so its workers get the same."""
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        return str(worker["testrunuid"])
    import uuid

    given = getattr(config.option, "testrunuid", None)
    if hasattr(config.option, "testrunuid") and not given:  # xdist is loaded: its workers will take this one
        config.option.testrunuid = given = uuid.uuid4().hex
    return str(given or uuid.uuid4().hex)
