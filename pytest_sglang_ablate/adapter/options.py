"""Part of the pytest adapter: the `--ablate-*` options and ini keys, resolved into `Settings` in one place that
names the source of a bad value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ..server.inventory import NOT_RESOLVED, Inventory


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
    launcher: str | None = None  # None: the matrix's `launcher:`
    hosts: tuple[str, ...] | None = None  # None: the matrix's `hosts:`
    gpus: Inventory = NOT_RESOLVED  # the GPUs servers may be given
    exclusive: bool = False  # one row at a time, even under pytest-xdist
    launches: int | None = None  # fresh servers per row; None: the matrix's and rows' `launches:`
    history: tuple[Path, ...] = ()  # earlier runs' results, one night each, for the gate
    gate: float = 0.05  # the smallest regression worth failing, as a fraction
    confirm: int = 2  # relaunches of a row flagged against the history


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ablate", "SGLang server-flag ablations (pytest-sglang-ablate)")
    group.addoption("--ablate-matrix", metavar="PATH", help="Run the ablation described by this matrix YAML file")
    group.addoption("--ablate-plan", action="store_true", help="Print rows, commands and expected outcomes only")
    group.addoption("--ablate-sglang-version", metavar="VERSION", help="Match known issues against this version")
    group.addoption("--ablate-out", metavar="DIR", help="Results directory (default ablate-results)")
    group.addoption("--ablate-resume", action="store_true", help="Skip cases already recorded in the results")
    group.addoption("--ablate-baseline", metavar="FILE_OR_DIR", help="Compare with an earlier run's results.jsonl")
    group.addoption(
        "--ablate-launcher", metavar="NAME", help="Start servers with local, slurm or ssh (docs/multinode.md)"
    )
    group.addoption("--ablate-hosts", metavar="H0,H1", help="The ssh launcher's hosts, rank 0 first")
    group.addoption(
        "--ablate-exclusive", action="store_true", help="One row at a time, even with -n (honest numbers for gates)"
    )
    group.addoption("--ablate-gpus", metavar="IDS", help="GPU ids servers may use (0,1,2,3) or none (default: found)")
    group.addoption(
        "--ablate-launches", metavar="N", help="Fresh servers per row, interleaved across rows (overrides the matrix)"
    )
    parser.addini("ablate_matrix", "Matrix YAML file to run when --ablate-matrix is not given")
    parser.addini("ablate_out", "Results directory (see --ablate-out)", default="ablate-results")
    parser.addini("ablate_sglang_version", "SGLang version for known-issue rules (see --ablate-sglang-version)")
    parser.addini("ablate_launcher", "Launcher for every matrix (see --ablate-launcher)")
    parser.addini("ablate_gpus", "GPU ids servers may use (see --ablate-gpus)")
    parser.addini("ablate_launches", "Fresh servers per row (see --ablate-launches)")
    group.addoption(
        "--ablate-history",
        metavar="PATH",
        action="append",
        default=[],
        help="An earlier run's results.jsonl or results folder, one night each (repeat): the nightly gate",
    )
    group.addoption("--ablate-gate", metavar="PCT", help="Smallest regression the gate fails on (default 5%%)")
    group.addoption("--ablate-confirm", metavar="N", help="Relaunches of a row the gate flags (default 2)")
    parser.addini("ablate_gate", "Smallest regression the gate fails on (see --ablate-gate)")
    parser.addini("ablate_confirm", "Relaunches of a flagged row (see --ablate-confirm)")


def resolve_settings(config: pytest.Config) -> Settings:
    """Command line first, then ini; a bad value names where it came from."""
    from packaging.version import InvalidVersion, Version

    cli_matrix, ini_matrix = config.getoption("ablate_matrix"), config.getini("ablate_matrix")
    matrix, shown = (Path(cli_matrix), cli_matrix) if cli_matrix else (None, "")
    if not cli_matrix and ini_matrix:
        shown = str(ini_matrix)
        matrix = Path(config.rootpath, shown)
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
            raise pytest.UsageError(f"--ablate-baseline: no results file at {baseline} (expected a results.jsonl)")
    plan, resume = bool(config.getoption("ablate_plan")), bool(config.getoption("ablate_resume"))
    from ..server.launchers import NAMES

    launcher, where = config.getoption("ablate_launcher"), "--ablate-launcher"
    if not launcher and config.getini("ablate_launcher"):
        launcher, where = str(config.getini("ablate_launcher")), f"ini ablate_launcher in {config.inipath}"
    if launcher and launcher not in NAMES:
        raise pytest.UsageError(f"{where}: expected one of {', '.join(NAMES)}, got {launcher!r}")
    hosts_text = config.getoption("ablate_hosts")
    hosts = tuple(h for h in hosts_text.split(",") if h) if hosts_text else None
    import os

    from ..server.inventory import resolve

    try:
        gpus = resolve(config.getoption("ablate_gpus"), str(config.getini("ablate_gpus") or ""), os.environ)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    return Settings(
        matrix,
        shown,
        plan,
        version or None,
        source if version else "",
        out,
        resume,
        baseline,
        launcher or None,
        hosts,
        gpus,
        bool(config.getoption("ablate_exclusive")),
        _launches(config),
        *_gate(config),
    )


def _gate(config: pytest.Config) -> tuple[tuple[Path, ...], float, int]:
    history = []
    for given in config.getoption("ablate_history") or []:
        path = Path(given)
        found = path / "results.jsonl" if path.is_dir() else path
        if not found.is_file():
            raise pytest.UsageError(
                f"--ablate-history: no results file at {found} (expected a results.jsonl or its folder)"
            )
        history.append(found)
    value, where = config.getoption("ablate_gate"), "--ablate-gate"
    if not value and config.getini("ablate_gate"):
        value, where = str(config.getini("ablate_gate")), f"ini ablate_gate in {config.inipath}"
    gate = 0.05
    if value:
        try:
            number = float(str(value).rstrip("%"))
        except ValueError:
            number = -1.0
        gate = number / 100 if str(value).endswith("%") or number >= 1 else -1.0  # a bare 0.05 is ambiguous
        if not 0 < gate < 1:
            raise pytest.UsageError(f"{where}: expected a percentage between 0 and 100, such as 5%, got {value!r}")
    value, where = config.getoption("ablate_confirm"), "--ablate-confirm"
    if value is None and config.getini("ablate_confirm"):
        value, where = str(config.getini("ablate_confirm")), f"ini ablate_confirm in {config.inipath}"
    if value is not None and not str(value).isdigit():
        raise pytest.UsageError(f"{where}: expected a whole number of relaunches, 0 or more, got {value!r}")
    return tuple(history), gate, 2 if value is None else int(value)


def _launches(config: pytest.Config) -> int | None:
    value, where = config.getoption("ablate_launches"), "--ablate-launches"
    if not value and config.getini("ablate_launches"):
        value, where = str(config.getini("ablate_launches")), f"ini ablate_launches in {config.inipath}"
    if not value:
        return None
    if not str(value).isdigit() or int(value) < 1:
        raise pytest.UsageError(f"{where}: expected a whole number of launches, 1 or more, got {value!r}")
    return int(value)
