"""One server per row against the stand-in server: readiness, failure classes, effective config, teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.standin
STANDIN = Path(__file__).parent / "standin_server.py"
# Rows pick the stand-in's behaviour with `env: {STANDIN: ...}`; see tests/standin_server.py.
MATRIX = f"""
model: tiny
launch: [{sys.executable}, {STANDIN}]
server: {{shutdown_grace: 1, startup_timeout: 20}}
features:
  radix_cache: {{off: {{disable-radix-cache: true}}}}
  dp: {{on: {{enable-dp-attention: true}}}}
  nextn: {{on: {{speculative-algorithm: NEXTN, max-running-requests: 64}}}}
rows:
  - [radix_cache]
workloads:
  single: {{kind: single, prompt: hi}}
"""
USES_SERVER = """
import requests

def test_one(sglang_server):
    assert requests.get(sglang_server.base_url + "/health").status_code == 200

def test_two(sglang_server):
    assert sglang_server.info["version"] == "0.0.0+standin"
"""


def project(pytester: pytest.Pytester, rows: str, tests: str = USES_SERVER, server: str = "") -> Path:
    text = MATRIX.replace("  - [radix_cache]\n", rows)
    if server:
        text = text.replace("server: {shutdown_grace: 1, startup_timeout: 20}", f"server: {server}")
    pytester.makefile(".yaml", m=text)
    pytester.makepyfile(test_server=tests)
    return pytester.path / "pids"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("test_server.py", "--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", *args)


def pids_in(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pids: list[int], timeout_s: float = 20.0) -> list[int]:
    """Poll until every pid has exited (zombies count as exited); the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in pids if running(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def record_pids(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_PIDS", str(pytester.path / "pids"))


def test_a_row_is_launched_once_and_shared_by_its_tests(pytester: pytest.Pytester) -> None:
    pids = project(pytester, "  - [radix_cache]\n  - []\n")
    result = run(pytester)
    result.assert_outcomes(passed=4)
    assert len(pids_in(pids)) == 2  # one stand-in per row, no children
    assert gone(pids_in(pids)) == []


@pytest.mark.parametrize(
    ("behaviour", "failure_class", "evidence"),
    [
        ("exit=graph_capture", "graph_capture", "Capture cuda graph failed"),
        ("exit=oom_torch", "oom", "torch.OutOfMemoryError: CUDA out of memory"),
        ("exit=oom_kv", "oom", "Not enough memory. Please try to increase --mem-fraction-static"),
        ("exit=scheduler_crash", "crash", "TypeError: object of type 'NoneType' has no len()"),
        ("exit=port_in_use", "port_in_use", "Address already in use"),
        ("exit=plain", "exited", "exit code 1"),
        # SGLang 0.5's own output: the class comes from the innermost exception, the wrapper is the evidence
        ("exit=capture_stub", "crash", "Exception: Capture cuda graph failed: flashinfer.sampling"),
        ("exit=capture_oom", "oom", "Exception: Capture cuda graph failed: CUDA out of memory"),
        ("exit=capture_capturing", "graph_capture", "Exception: Capture cuda graph failed: CUDA error: operation"),
        ("exit=load_import", "crash", "ImportError: cannot import name 'Qwen2TokenizerFast' from 'transformers'"),
        ("exit=rank_no_gpu", "missing_gpu", "torch.AcceleratorError: CUDA error: invalid device ordinal"),
    ],
)
def test_launch_failure_is_classified_with_evidence_hint_and_log_tail(
    pytester: pytest.Pytester, behaviour: str, failure_class: str, evidence: str
) -> None:
    pids = project(pytester, f'  - {{features: [], env: {{STANDIN: "{behaviour}"}}}}\n')
    result = run(pytester)
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert f"row 'baseline': the server exited during startup [{failure_class}]" in out
    result.stdout.fnmatch_lines([f"*evidence: *{evidence}*"])
    assert "what to do:" in out and "--- last 40 lines of the server log ---" in out
    assert len(pids_in(pids)) == 1  # raised once for the row, not relaunched for the second test
    assert gone(pids_in(pids)) == []


def test_sglangs_capture_wrapper_names_the_cause_the_phase_and_its_own_kill(pytester: pytest.Pytester) -> None:
    project(pytester, '  - {features: [], env: {STANDIN: "exit=capture_stub"}}\n')
    result = run(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*cause: sitecustomize.StubUsed: flashinfer.sampling*(during cuda graph capture)",
            "*exit code: -9 (SIGKILL from sglang's own process-tree cleanup after the failure*",
        ]
    )


def test_unknown_flag_is_a_bad_flag_failure(pytester: pytest.Pytester) -> None:
    project(pytester, "  - {features: [], args: {no-such-flag: 1}}\n")
    result = run(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*[[]bad_flag[]]*", "*evidence: *unrecognized arguments: --no-such-flag 1*"])


def test_server_that_never_answers_fails_at_the_startup_deadline_and_is_stopped(pytester: pytest.Pytester) -> None:
    pids = project(
        pytester,
        '  - {features: [], env: {STANDIN: "never_ready,children=1"}}\n',
        server="{shutdown_grace: 1, startup_timeout: 1}",
    )
    result = run(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*no healthy answer from http://127.0.0.1:*/health within 1 s [[]startup_timeout[]]*"])
    assert gone(pids_in(pids)) == []


def test_slow_start_is_waited_for(pytester: pytest.Pytester) -> None:
    project(pytester, '  - {features: [], env: {STANDIN: "slow_start=1"}}\n')
    run(pytester).assert_outcomes(passed=2)


def test_oom_is_retried_at_lower_mem_fraction_and_the_value_that_worked_is_recorded(pytester: pytest.Pytester) -> None:
    tests = (
        "def test_fraction(sglang_server):\n"
        "    assert sglang_server.mem_fraction_static == 0.7\n"
        "    assert '0.7' in sglang_server.argv\n"
    )
    pids = project(
        pytester,
        '  - {features: [], env: {STANDIN: "oom_above=0.75"}}\n',
        tests,
        server="{shutdown_grace: 1, oom_retry_mem_fraction: [0.8, 0.7]}",
    )
    run(pytester).assert_outcomes(passed=1)
    assert len(pids_in(pids)) == 3  # default, 0.8 (still OOM), 0.7


def test_setting_the_server_silently_changed_fails_the_row_naming_the_difference(pytester: pytest.Pytester) -> None:
    project(pytester, "  - [dp]\n")
    result = run(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*[[]config_drift[]]*", "*evidence: enable_dp_attention: asked True, server runs False*"]
    )


def test_known_renames_are_not_differences_and_the_effective_config_is_kept(pytester: pytest.Pytester) -> None:
    tests = (
        "def test_config(sglang_server):\n"
        "    assert sglang_server.info['speculative_algorithm'] == 'EAGLE'\n"
        "    assert sglang_server.info['max_running_requests'] == 64\n"
    )
    project(pytester, "  - [nextn]\n", tests)
    run(pytester).assert_outcomes(passed=1)


def test_server_dying_during_a_workload_is_reported_with_its_cause(pytester: pytest.Pytester) -> None:
    tests = (
        "import requests\n"
        "def test_request(sglang_server):\n"
        "    try:\n        requests.post(sglang_server.base_url + '/v1/completions', json={}, timeout=10)\n"
        "    except requests.RequestException:\n        sglang_server.ensure_alive()\n"
        "    raise AssertionError('the request should have failed')\n"
    )
    pids = project(pytester, '  - {features: [], env: {STANDIN: "crash_on_request,children=1"}}\n', tests)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the server died during a workload (crash) [[]died_during_workload[]]*"])
    assert gone(pids_in(pids)) == []


def test_teardown_escalates_to_sigkill_for_processes_that_ignore_sigterm(pytester: pytest.Pytester) -> None:
    pids = project(pytester, '  - {features: [], env: {STANDIN: "children=2,stubborn"}}\n')
    run(pytester).assert_outcomes(passed=2)
    assert len(pids_in(pids)) == 5  # the server, 2 children, 2 grandchildren
    assert gone(pids_in(pids), timeout_s=0) == []  # all gone by the time pytest returned


def test_children_left_by_a_crashed_server_are_killed(pytester: pytest.Pytester) -> None:
    tests = (
        "import requests\n"
        "def test_request(sglang_server):\n"
        "    try:\n        requests.post(sglang_server.base_url + '/v1/completions', json={}, timeout=10)\n"
        "    except requests.RequestException:\n        pass\n"
        "    sglang_server.ensure_alive()\n"
    )
    pids = project(pytester, '  - {features: [], env: {STANDIN: "exit_on_request,children=2"}}\n', tests)
    run(pytester).assert_outcomes(failed=1)
    assert len(pids_in(pids)) == 5
    assert gone(pids_in(pids), timeout_s=0) == []


HOLDS = """
import os, time

def test_hold(sglang_server):
    with open("ready.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace("ready.tmp", "ready")
    time.sleep(120)  # a long workload, interrupted by the test
"""


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "sigterm", "sigkill"])
def test_nothing_survives_when_pytest_is_interrupted_or_killed(pytester: pytest.Pytester, how: signal.Signals) -> None:
    pids = project(pytester, '  - {features: [], env: {STANDIN: "children=2"}}\n', HOLDS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "test_server.py", "--ablate-matrix", "m.yaml", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready = pytester.path / "ready"
    deadline = time.monotonic() + 60
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the test inside never started"
    assert len(pids_in(pids)) == 5
    os.kill(proc.pid, how)
    proc.wait(timeout=60)
    assert gone(pids_in(pids)) == []
    supervisors = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "pytest_sglang_ablate.server.supervisor" in " ".join(p.info["cmdline"] or [])
        and str(pytester.path) in " ".join(p.info["cmdline"] or [])
    ]
    assert gone([p.pid for p in supervisors]) == []


def test_flush_cache_reaches_the_server(pytester: pytest.Pytester) -> None:
    project(pytester, "  - []\n", "def test_flush(sglang_server):\n    assert sglang_server.flush_cache() is True\n")
    run(pytester).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("rule", "death", "outcome"),
    [
        ('match: "Capture cuda graph failed"', "capture_stub", {"xfailed": 1}),
        ("class: crash", "capture_stub", {"xfailed": 1}),
        # the rule names the failure it expects: an import stub crashing capture is not it
        ("class: graph_capture", "capture_stub", {"errors": 1}),
        # a broken install on a known-issue row fails as the crash it is, not as the known issue
        ('match: "not supported with Flex Attention"', "load_import", {"errors": 1}),
        ("{}", "load_import", {"xfailed": 1}),  # a rule without match or class takes any launch failure
    ],
    ids=["match-fits", "class-fits", "class-differs", "broken-install", "no-match-no-class"],
)
def test_a_known_issue_with_match_or_class_takes_only_its_own_failure(
    pytester: pytest.Pytester, rule: str, death: str, outcome: dict[str, int]
) -> None:
    row = f'  - {{features: [nextn], env: {{STANDIN: "exit={death}"}}}}\n'
    extra = "" if rule == "{}" else f", {rule}"
    issue = f"{{when: [nextn], reason: spec decoding is broken{extra}}}"
    project(pytester, row, tests="")
    text = (pytester.path / "m.yaml").read_text().rstrip("\n") + f"\nknown_issues:\n  - {issue}\n"
    (pytester.path / "m.yaml").write_text(text)
    result = pytester.runpytest_subprocess("m.yaml", "--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", "-rxX")
    result.assert_outcomes(**outcome)
    if "errors" in outcome:
        result.stdout.fnmatch_lines(
            ["*the server failed [[]crash[]], but not as the known issue says: known_issues[[]0[]]*"]
        )
