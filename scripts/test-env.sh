#!/usr/bin/env bash
# A virtual environment of its own for the plugin's tests (.venv-test-LEG), never the machine's site-packages,
# which may hold older releases that pip would keep:
#   bash scripts/test-env.sh newest   every dependency at the newest release pyproject.toml allows (upgraded again
#                                     on every call, so a re-run tests today's releases)
#   bash scripts/test-env.sh oldest   every direct dependency at its lower bound (scripts/lower-bounds.py writes
#                                     the constraints), the rest at their newest
# Ends by printing the versions it resolved. About 30 s the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
leg=${1:?usage: bash scripts/test-env.sh newest|oldest}
venv=.venv-test-$leg
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
install=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
case "$leg" in
  newest)
    "${install[@]}" --upgrade --upgrade-strategy eager -e '.[test]' ;;
  oldest)
    "${install[@]}" packaging   # for reading the lower bounds; the constraints then set its own version
    "$venv/bin/python" scripts/lower-bounds.py pyproject.toml > "$venv/lower-bounds.txt"
    "${install[@]}" --upgrade --upgrade-strategy eager -c "$venv/lower-bounds.txt" -e '.[test]' ;;
  *)
    echo "usage: bash scripts/test-env.sh newest|oldest" >&2; exit 2 ;;
esac
"$venv/bin/python" - "$leg" <<'PY'
import importlib.metadata as m
import platform
import sys

names = ["pytest", "pytest-benchmark", "pytest-xdist", "psutil", "PyYAML", "requests", "tabulate", "openai",
         "packaging", "matplotlib", "numpy", "httpx", "mypy"]


def version(name: str) -> str:
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return "(not installed)"


found = ", ".join(f"{n} {version(n)}" for n in names)
print(f"test environment '{sys.argv[1]}' (Python {platform.python_version()}): {found}")
PY
