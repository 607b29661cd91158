from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from matrices import TINY

REPO = Path(__file__).parent.parent

with warnings.catch_warnings():  # older matplotlib calls pyparsing names it deprecates (as report/plots.py says)
    warnings.simplefilter("ignore", DeprecationWarning)
    try:  # imported once for the whole test process: pytester's in-process runs remove the modules they imported,
        import matplotlib  # noqa: F401  # and a matplotlib first imported inside one cannot be imported again
    except ImportError:
        pass


@pytest.fixture(autouse=True)
def lean_inner_pytest(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest runs our tests start leave out plugins that have nothing to do with this one but may be
    installed (hypothesis alone costs 1 s of import per run here); unknown names are ignored by `-p no:`.
    Set after pytester, which clears PYTEST_ADDOPTS when it starts."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest -p no:anyio")


@pytest.fixture
def tiny_matrix(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def engine_python(venv: str, made_by: str) -> Path:
    """The interpreter of an engine environment in the repository; the test skips, saying how to make it, when
    it is missing, and fails instead under ABLATE_REQUIRE_ENGINES=1 (set by .ci/run, which makes them all)."""
    python = REPO / venv / "bin" / "python"
    if not python.exists():
        message = f"{venv} is missing: `{made_by}` makes it (or `bash .ci/run`, which makes every engine environment)"
        if os.environ.get("ABLATE_REQUIRE_ENGINES"):
            pytest.fail(f"ABLATE_REQUIRE_ENGINES is set, but {message}")
        pytest.skip(message)
    return python
