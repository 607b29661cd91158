"""Rows that span two nodes, through a real Slurm (two slurmd on this host: nodes n0 = 127.0.0.1 and n1 =
127.0.0.2) and a real sshd (hosts node0 = 127.0.0.1 and node1 = 127.0.0.2), both started by
scripts/test-cluster.sh. The stand-in server plays a 2-node SGLang: rank 0 serves once rank 1 has joined its
--dist-init-addr, and each dies when the other goes away."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pytest_sglang_ablate.server.poll import poll_until

pytestmark = pytest.mark.standin
STANDIN = Path(__file__).parent / "standin_server.py"
CLUSTER = Path(os.environ.get("ABLATE_TEST_CLUSTER", "/tmp/ablate-cluster"))
MATRIX = """
model: tiny
launch: [{python}, {standin}]
nodes: 2
launcher: {launcher}
hosts: [node0, node1]
ssh_options: [-F, {ssh_config}]
server: {{shutdown_grace: 2, startup_timeout: 60}}
env: {{STANDIN: "tok_rate=200", STANDIN_PIDS: "{pids}"}}
features:
  radix_cache: {{off: {{disable-radix-cache: true}}}}
rows:
{rows}
workloads:
  single: {{kind: single, prompt: "which character?", max_tokens: 20}}
  batch: {{kind: batch, input_len: 8, output_len: 16, levels: [{{concurrency: 2, requests: 6}}]}}
"""


def cluster() -> dict[str, str]:
    """The test cluster's environment; skips (fails under ABLATE_REQUIRE_ENGINES) when it is not running."""
    env_file = CLUSTER / "env"
    if not env_file.exists() or not shutil.which("salloc"):
        message = f"no test cluster at {CLUSTER}: `bash scripts/test-cluster.sh` starts one (root, Debian)"
        if os.environ.get("ABLATE_REQUIRE_ENGINES"):
            pytest.fail(f"ABLATE_REQUIRE_ENGINES is set, but {message}")
        pytest.skip(message)
    pairs = [ln.removeprefix("export ").split("=", 1) for ln in env_file.read_text().splitlines() if "=" in ln]
    return dict(pairs)


@pytest.fixture(params=["slurm", "ssh"])
def launcher(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in cluster().items():
        monkeypatch.setenv(key, value)
    return str(request.param)


def write(pytester: pytest.Pytester, launcher: str, rows: str = "  - [radix_cache]") -> None:
    pytester.makefile(
        ".yaml",
        m=MATRIX.format(
            python=sys.executable,
            standin=STANDIN,
            launcher=launcher,
            ssh_config=os.environ["ABLATE_TEST_SSH_CONFIG"],
            pids=pytester.path / "pids",
            rows=rows,
        ),
    )


def run(pytester: pytest.Pytester, launcher: str, *args: str) -> pytest.RunResult:
    command = [sys.executable, "-m", "pytest", "m.yaml", "--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", *args]
    if launcher == "slurm":  # inside a two-node allocation, as a user runs it
        command = ["salloc", "-N", "2", "--time=10", *command]
    return pytester.run(*command, timeout=300)


def leftovers(pytester: pytest.Pytester) -> list[int]:
    """Stand-in processes (of any rank) still alive, by the pids they recorded."""
    path = pytester.path / "pids"
    pids = {int(p) for p in path.read_text().split()} if path.exists() else set()
    return sorted(p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE)


def results(pytester: pytest.Pytester) -> dict[str, dict[str, object]]:
    lines = (pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()
    return {json.loads(line)["case"]: json.loads(line) for line in lines}


def steps() -> list[str]:
    return subprocess.run(["squeue", "-h", "--steps", "-o", "%i %j"], capture_output=True, text=True).stdout.split("\n")


def test_a_two_node_row_launches_is_measured_and_leaves_nothing_on_any_node(
    pytester: pytest.Pytester, launcher: str
) -> None:
    write(pytester, launcher)
    result = run(pytester, launcher)
    result.assert_outcomes(passed=2)
    logs = pytester.path / "ablate-results" / "logs"
    assert "joined rank 0 at 127.0.0.1:" in (logs / "radix_cache.rank1.log").read_text()
    assert "rank 1 joined from" in (logs / "radix_cache.rank0.log").read_text()
    assert "'host': '127.0.0.2'" in (logs / "radix_cache.rank1.log").read_text()  # rank 1 listens on its node
    assert len((pytester.path / "pids").read_text().split()) == 2  # one stand-in per rank, no more
    assert leftovers(pytester) == []
    if launcher == "slurm":  # salloc's own job: none of its steps is left
        job = result.stderr.str().split("Granted job allocation ")[1].split()[0]
        assert not [s for s in steps() if s.startswith(f"{job}.")]


def test_secrets_of_a_two_node_row_stay_masked_in_every_ranks_log(pytester: pytest.Pytester, launcher: str) -> None:
    write(pytester, launcher)
    text = (pytester.path / "m.yaml").read_text()
    text = text.replace(
        'env: {STANDIN: "tok_rate=200",', 'api_key: sk-key-4711\nenv: {HF_TOKEN: hf-tok-4711, STANDIN: "tok_rate=200",'
    )
    (pytester.path / "m.yaml").write_text(text)
    run(pytester, launcher, "-k", "single").assert_outcomes(passed=1)
    saved = [p for p in (pytester.path / "ablate-results").rglob("*") if p.is_file()]
    assert any(p.name == "radix_cache.rank1.log" for p in saved)
    assert "'api_key': '***'" in (pytester.path / "ablate-results" / "logs" / "radix_cache.rank1.log").read_text()
    leaked = [p.name for p in saved if "4711" in p.read_text(errors="replace")]
    assert leaked == []


def test_rank_1_dying_mid_level_fails_that_row_with_its_log_and_the_next_row_runs(
    pytester: pytest.Pytester, launcher: str
) -> None:
    # rank 1 dies when rank 0 receives the level's 5th request, however long the launch took (a timer from
    # start-up once fired before the level began on a loaded machine)
    rows = """  - {features: [radix_cache], env: {STANDIN: "tok_rate=40,rank_exit=1,exit_at_request=5"},
     workloads: {batch: {levels: [{concurrency: 2, requests: 30}]}}}
  - []"""
    write(pytester, launcher, rows)
    result = run(pytester, launcher, "-k", "batch")
    result.assert_outcomes(passed=1, failed=1)
    record = results(pytester)["radix_cache-batch-c2"]
    assert record["failure_class"] == "died_during_workload"
    message = str(record["message"])
    assert "rank 1 of 2 (on 127.0.0.2) exited first" in message and "(crash)" in message
    result.stdout.fnmatch_lines(["*log: */radix_cache.rank1.log"])
    assert results(pytester)["baseline-batch-c2"]["outcome"] == "passed"
    assert leftovers(pytester) == []


def test_a_rank_dying_at_start_fails_the_row_at_once_not_at_the_start_timeout(
    pytester: pytest.Pytester, launcher: str
) -> None:
    write(pytester, launcher, '  - {features: [radix_cache], env: {STANDIN: "exit=scheduler_crash,exit_rank=1"}}')
    result = run(pytester, launcher, "-k", "single", "--durations=1")
    result.assert_outcomes(errors=1)
    record = results(pytester)["radix_cache-single"]
    assert record["failure_class"] == "crash"
    assert "rank 1 of 2 (on 127.0.0.2) exited first" in str(record["message"])
    assert float(str(record["duration_s"])) < 30  # the startup timeout is 60 s: rank 0 never became ready


def test_a_row_needing_more_nodes_than_there_are_is_skipped_before_launch(
    pytester: pytest.Pytester, launcher: str
) -> None:
    write(pytester, launcher, "  - {features: [radix_cache], nodes: 3}")
    result = run(pytester, launcher, "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines([f"*needs 3 nodes; launcher {launcher} has 2 here*"])
    assert not (pytester.path / "pids").exists()


def test_the_plan_under_an_allocation_shows_each_rows_ranks_and_hosts(pytester: pytest.Pytester) -> None:
    for key, value in cluster().items():
        os.environ.setdefault(key, value)
    shutil.copy(Path(__file__).parent.parent / "matrix" / "r1.yaml", pytester.path / "r1.yaml")
    plan = ["--ablate-matrix", "r1.yaml", "--ablate-plan", "--ablate-launcher", "slurm", "-p", "no:cacheprovider"]
    result = pytester.run("salloc", "-N", "2", "--time=5", sys.executable, "-m", "pytest", *plan, timeout=120)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*2, slurm: rank 0*", "*127.0.0.1, rank 1*", "*127.0.0.2*"])  # wrapped in the cell


def test_launcher_slurm_outside_an_allocation_is_a_usage_error_saying_what_to_do(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    pytester.makefile(
        ".yaml",
        m=MATRIX.format(
            python=sys.executable, standin=STANDIN, launcher="slurm", ssh_config="x", pids="p", rows="  - [radix_cache]"
        ),
    )
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*launcher slurm runs inside a Slurm allocation*salloc -N 2*"])


@pytest.fixture
def allocation(launcher: str) -> Iterator[dict[str, str]]:
    """For slurm, a two-node allocation that outlives pytest (as an sbatch job does), so that only our own cleanup
    can end the row's step; for ssh, nothing."""
    if launcher != "slurm":
        yield {}
        return
    done = subprocess.run(["salloc", "-N", "2", "--no-shell", "--time=10"], capture_output=True, text=True, timeout=60)
    job = done.stderr.split("Granted job allocation ")[1].split()[0]
    try:
        yield {"SLURM_JOB_ID": job, "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "n[0-1]"}
    finally:
        subprocess.run(["scancel", job], timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["SIGKILL", "SIGINT", "SIGTERM"])
def test_pytest_killed_mid_row_leaves_no_process_of_any_rank_and_no_step(
    pytester: pytest.Pytester, launcher: str, allocation: dict[str, str], sig: signal.Signals
) -> None:
    rows = """  - {features: [radix_cache], env: {STANDIN: "tok_rate=20"},
     workloads: {batch: {levels: [{concurrency: 2, requests: 40}]}}}"""
    write(pytester, launcher, rows)
    command = [sys.executable, "-m", "pytest", "m.yaml", "--ablate-matrix", "m.yaml", "-p", "no:cacheprovider"]
    inner = subprocess.Popen(
        [*command, "-k", "batch"],
        cwd=pytester.path,
        env={**os.environ, **allocation},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rank0 = pytester.path / "ablate-results" / "logs" / "radix_cache.rank0.log"
    try:
        joined = poll_until(lambda: rank0.exists() and "all ranks joined" in rank0.read_text(), 60)
        assert joined, "the 2-node row never came up"
        assert len((pytester.path / "pids").read_text().split()) == 2
        inner.send_signal(sig)
        inner.wait(timeout=60)
    finally:
        if inner.poll() is None:
            inner.kill()
    assert poll_until(lambda: leftovers(pytester) == [], 30), f"still alive: {leftovers(pytester)}"
    if launcher == "slurm":
        job = allocation["SLURM_JOB_ID"]
        assert poll_until(lambda: not [s for s in steps() if s.startswith(f"{job}.")], 15), steps()


def test_a_server_on_a_non_loopback_address_without_an_api_key_is_warned_about_by_row(
    pytester: pytest.Pytester,
) -> None:
    text = MATRIX.format(
        python=sys.executable, standin=STANDIN, launcher="local", ssh_config="x", pids="p", rows="  - [radix_cache]"
    )
    # the stand-in dies at start, before it binds anything: only the warning is under test
    text = text.replace("nodes: 2\n", "").replace("startup_timeout: 60}", "startup_timeout: 60, host: 0.0.0.0}")
    pytester.makefile(".yaml", m=text.replace('STANDIN: "tok_rate=200"', 'STANDIN: "exit=plain"'))
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "-k", "single")
    result.stdout.fnmatch_lines(["*row 'radix_cache': rank 0 listens on 0.0.0.0 without an api_key*"])
