"""The nightly GPU workflow cannot run here; what can be checked is that it parses and asks for options that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "nightly-ablation.yml"


def test_workflow_parses_with_schedule_dispatch_and_the_steps_that_gate() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    triggers = flow[True]  # YAML 1.1 reads the key `on` as true
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    steps = flow["jobs"]["ablation"]["steps"]
    text = "\n".join(str(s.get("run", "")) for s in steps)
    assert "--ablate-history" in text and "--ablate-gate" in text and "--ablate-launches" in text
    assert "--benchmark-compare-fail" not in text  # the gate judges launches against nights, not one earlier run
    assert "--ablate-baseline" in text and "GITHUB_STEP_SUMMARY" in text
    assert "--ablate-exclusive" in text  # the gate compares figures measured one row at a time
    assert any("upload-artifact" in str(s.get("uses", "")) for s in steps)


def test_every_option_the_workflow_uses_exists() -> None:
    used = set(re.findall(r"(--(?:ablate|benchmark)-[a-z-]+)", WORKFLOW.read_text()))
    assert used >= {"--ablate-matrix", "--ablate-plan", "--ablate-out", "--ablate-baseline", "--ablate-history"}
    helptext = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, check=True
    ).stdout
    missing = [opt for opt in sorted(used) if opt not in helptext]
    assert not missing


def test_the_multinode_job_runs_the_seed_matrix_through_slurm_inside_one_allocation() -> None:
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["multinode"]
    assert "slurm-login" in job["runs-on"]
    runs = [str(s.get("run", "")) for s in job["steps"]]
    ablation = next(r for r in runs if "--benchmark-save" in r)
    assert "salloc -N 2" in ablation and "--ablate-launcher slurm" in ablation
    assert "--ablate-history" in ablation and "--ablate-baseline" in ablation
    assert any("--ablate-plan" in r and "salloc" in r for r in runs)
    assert job["env"]["MATRIX"] == "matrix/r1.yaml"
