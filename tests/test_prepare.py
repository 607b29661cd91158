"""The matrix's `prepare:` steps run once before the first row, and are skipped when their output exists."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.standin

STANDIN = Path(__file__).parent / "standin_server.py"
MATRIX = f"""
model: tiny
launch: [{sys.executable}, {STANDIN}]
server: {{shutdown_grace: 1}}
env: {{STANDIN: "tok_rate=200"}}  # 5 ms between tokens: a busy CI machine still reads them apart
prepare:
  - {{run: [{sys.executable}, -c, "import sys; open('made', 'a').write('x'); sys.exit({{code}})"], creates: made}}
features:
  radix_cache: {{off: {{disable-radix-cache: true}}}}
rows:
  - [radix_cache]
  - []
workloads:
  single: {{kind: single, prompt: q, max_tokens: 8}}
"""


def test_prepare_runs_once_then_is_skipped_while_its_output_exists(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", m=MATRIX.replace("{code}", "0"))
    pytester.runpytest_subprocess("--ablate-matrix", "m.yaml").assert_outcomes(passed=2)
    pytester.runpytest_subprocess("--ablate-matrix", "m.yaml").assert_outcomes(passed=2)
    assert (pytester.path / "made").read_text() == "x"  # two rows, two runs: made once


def test_failed_prepare_errors_every_row_without_launching(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_PIDS", str(pytester.path / "pids"))
    pytester.makefile(".yaml", m=MATRIX.replace("{code}", "3"))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*prepare: `*` exited with 3; no row can run*"])
    assert not (pytester.path / "pids").exists()


def test_plan_does_not_run_prepare(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", m=MATRIX.replace("{code}", "0"))
    pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "--ablate-plan")
    assert not (pytester.path / "made").exists()
