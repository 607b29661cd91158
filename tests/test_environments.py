"""The environments the suite runs in (scripts/test-env.sh): the lower bounds are read from pyproject.toml as pip
reads requirements, and .ci/run's "oldest" leg really has every direct dependency at its lower bound."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import os
import re
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def lower_bounds_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lower_bounds", REPO / "scripts" / "lower-bounds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lower_bounds_come_from_the_dependencies_and_every_extra() -> None:
    project = {
        "dependencies": ["a>=1.2,<2", "b==0.17.6", "c", "d~=3.1 ; python_version < '3.13'"],
        "optional-dependencies": {"x": ["e[extra]>=0.1", "A>=1.2"], "y": ["f<4"]},
    }
    bounds = lower_bounds_script().lower_bounds({"project": project})
    assert bounds == {"a": "1.2", "b": "0.17.6", "d": "3.1", "e": "0.1"}  # c and f have none: pip takes the newest


def test_two_lower_bounds_for_one_package_are_refused() -> None:
    project = {"dependencies": ["a>=1.2"], "optional-dependencies": {"x": ["a>=1.4"]}}
    with pytest.raises(SystemExit, match=re.escape("a has two lower bounds in pyproject.toml: 1.2 and 1.4")):
        lower_bounds_script().lower_bounds({"project": project})


def test_each_installed_direct_dependency_is_allowed_and_the_oldest_leg_has_its_lower_bound() -> None:
    script = lower_bounds_script()
    pyproject = script.tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    texts = project["dependencies"] + [t for extra in project["optional-dependencies"].values() for t in extra]
    bounds = script.lower_bounds(pyproject)
    oldest = os.environ.get("ABLATE_TEST_LEG") == "oldest"  # set by .ci/run
    checked = []
    for req in map(Requirement, texts):
        try:
            installed = Version(metadata.version(req.name))
        except metadata.PackageNotFoundError:
            continue  # an extra this environment lacks (gpu, bench)
        assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} is outside {req}"
        if oldest and canonicalize_name(req.name) in bounds:
            assert installed == Version(bounds[canonicalize_name(req.name)]), (
                f"{req.name} {installed}, not its lower bound"
            )
        checked.append(req.name)
    assert {"pytest", "pytest-benchmark", "pytest-xdist", "openai"} <= set(checked)
