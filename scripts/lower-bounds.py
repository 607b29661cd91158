"""The oldest environment the project allows: each direct dependency of pyproject.toml (its dependencies and every
extra) pinned to its lower bound, as a pip constraints file on stdout. A dependency without a lower bound is left
out (pip takes its newest release). Used by scripts/test-env.sh for .ci/run's "oldest" leg.

    python scripts/lower-bounds.py [pyproject.toml]
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as pip ships it
    from pip._vendor import tomli as tomllib


def lower_bounds(pyproject: dict[str, object]) -> dict[str, str]:
    """Name -> the lowest version its specifiers admit (the version of `>=`, `==` or `~=`)."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    texts = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        texts += extra
    bounds: dict[str, str] = {}
    for text in texts:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        lows = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
        if lows:
            (low,) = lows  # one lower bound per requirement: two would be a mistake in pyproject.toml
            if bounds.get(name, low) != low:
                raise SystemExit(f"{name} has two lower bounds in pyproject.toml: {bounds[name]} and {low}")
            bounds[name] = low
    return bounds


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml")
    bounds = lower_bounds(tomllib.loads(path.read_text(encoding="utf-8")))
    print(f"# every direct dependency of {path} at its lower bound (scripts/lower-bounds.py)")
    for name, version in sorted(bounds.items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
