"""Rows packed onto disjoint GPU sets under pytest-xdist, against a fake GPU inventory (`--ablate-gpus 0,1,2,3`):
the stand-in server records the CUDA_VISIBLE_DEVICES and port it was started with, and when it ran."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.standin
STANDIN = Path(__file__).parent / "standin_server.py"


def fake_nvml(monkeypatch: pytest.MonkeyPatch, state: Path, gpus: int = 4, pid_offset: int = 0) -> None:
    """NVML answers for `gpus` fake GPUs (tests/fake_nvml), whatever GPUs the machine has; their memory is what the
    stand-ins' fake_gpu_mem puts in `state`; it lists pids + `pid_offset`, as NVML in a container does."""
    paths = [str(Path(__file__).parent / "fake_nvml"), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    monkeypatch.setenv("FAKE_NVML_GPUS", str(gpus))
    monkeypatch.setenv("FAKE_NVML_STATE", str(state))
    monkeypatch.setenv("FAKE_NVML_PID_OFFSET", str(pid_offset))
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)


@pytest.fixture(autouse=True)
def four_fake_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The fake inventory `--ablate-gpus 0,1,2,3` is checked against NVML: four GPUs, on any machine."""
    fake_nvml(monkeypatch, tmp_path / "nvml.jsonl")


def matrix(pytester: pytest.Pytester, rows: list[str], behaviour: str = "tok_rate=100") -> None:
    features = "\n".join(f"  f{i}: {{on: {{attention-backend: b{i}}}}}" for i in range(len(rows)))
    pytester.makefile(
        ".yaml",
        m=f"""
model: tiny
launch: [{sys.executable}, {STANDIN}]
server: {{shutdown_grace: 2, startup_timeout: 30}}
env: {{STANDIN: "{behaviour}", STANDIN_RECORD: "{pytester.path / "record.jsonl"}"}}
features:
{features}
rows:
{chr(10).join(rows)}
workloads:
  batch: {{kind: batch, input_len: 8, output_len: 50, levels: [{{concurrency: 2, requests: 8}}]}}
""",
    )


def runs(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    """Each server's (pid) GPUs, port and [started, ended]."""
    out: dict[int, dict[str, Any]] = {}
    for line in (pytester.path / "record.jsonl").read_text().splitlines():
        event = json.loads(line)
        out.setdefault(event["pid"], {}).update(event)
    return list(out.values())


def overlapping(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["started"] < b.get("ended", float("inf")) and b["started"] < a.get("ended", float("inf")))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--ablate-matrix", "m.yaml", "--ablate-gpus", "0,1,2,3", "-p", "no:cacheprovider", *args, timeout=240
    )


def test_eight_one_gpu_rows_on_four_workers_never_share_a_gpu_or_a_port(pytester: pytest.Pytester) -> None:
    matrix(pytester, [f"  - [f{i}]" for i in range(8)])
    run(pytester, "-n", "4", "--dist", "loadgroup").assert_outcomes(passed=8)
    servers = runs(pytester)
    assert len(servers) == 8 and all(len(s["cuda_visible_devices"].split(",")) == 1 for s in servers)
    assert {s["cuda_device_order"] for s in servers} == {"PCI_BUS_ID"}  # GPU n is nvidia-smi's GPU n
    pairs = [(a, b) for a, b in combinations(servers, 2) if overlapping(a, b)]
    assert pairs, "no two rows ran at the same time"
    for a, b in pairs:
        assert not set(a["cuda_visible_devices"].split(",")) & set(b["cuda_visible_devices"].split(","))
        assert a["port"] != b["port"]
    records = [json.loads(x) for x in (pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()]
    assert any(r["figures"]["overlapped_by"] for r in records)  # each figure says which rows ran beside it


def test_two_gpu_and_one_gpu_rows_mix_on_disjoint_sets(pytester: pytest.Pytester) -> None:
    rows = [f"  - {{features: [f{i}], gpus: 2}}" for i in range(3)] + [f"  - [f{i}]" for i in range(3, 6)]
    matrix(pytester, rows)
    run(pytester, "-n", "3", "--dist", "loadgroup").assert_outcomes(passed=6)
    servers = runs(pytester)
    assert sorted(len(s["cuda_visible_devices"].split(",")) for s in servers) == [1, 1, 1, 2, 2, 2]
    for a, b in combinations(servers, 2):
        if overlapping(a, b):
            assert not set(a["cuda_visible_devices"].split(",")) & set(b["cuda_visible_devices"].split(","))


def test_a_row_needing_more_gpus_than_the_run_has_is_skipped_and_never_launched(pytester: pytest.Pytester) -> None:
    matrix(pytester, ["  - {features: [f0], gpus: 8}", "  - [f1]"])
    result = run(pytester, "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs 8 GPUs on 1 node; this run has 4 on 1 node*"])
    assert [s["cuda_visible_devices"] for s in runs(pytester)] == ["0"]  # only the other row ran
    records = [json.loads(x) for x in (pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()]
    skipped = next(r for r in records if r["row"] == "f0")
    assert (skipped["outcome"], skipped["failure_class"]) == ("skipped", "too_big")
    assert "not run: needs 8 GPUs" in (pytester.path / "ablate-results" / "report.md").read_text()


def test_the_plan_says_which_rows_will_be_skipped_for_their_gpus(pytester: pytest.Pytester) -> None:
    matrix(pytester, ["  - {features: [f0], gpus: 8}", "  - [f1]"])
    result = run(pytester, "--ablate-plan")
    result.stdout.fnmatch_lines(["*ablate: 4 GPUs 0,1,2,3 (--ablate-gpus)*"])
    result.stdout.fnmatch_lines(["*f0 * not run: needs 8 *"])


def test_a_worker_killed_mid_row_frees_its_gpus_and_the_run_finishes_the_other_rows(pytester: pytest.Pytester) -> None:
    rows = ['  - {features: [f0], gpus: 4, env: {STANDIN: "tok_rate=50,kill_worker_after=0.5"}}']
    rows += [f"  - {{features: [f{i}], gpus: 4}}" for i in range(1, 4)]  # each needs every GPU the dead row held
    matrix(pytester, rows)
    result = run(pytester, "-n", "2", "--dist", "loadgroup")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 3 and outcomes.get("failed", 0) + outcomes.get("error", 0) == 1
    result.stdout.fnmatch_lines(["*worker*crashed while running*f0*"])


def test_exclusive_runs_one_row_at_a_time_even_with_workers(pytester: pytest.Pytester) -> None:
    matrix(pytester, [f"  - [f{i}]" for i in range(4)])
    run(pytester, "-n", "2", "--dist", "loadgroup", "--ablate-exclusive").assert_outcomes(passed=4)
    servers = runs(pytester)
    assert len(servers) == 4
    assert not [(a, b) for a, b in combinations(servers, 2) if overlapping(a, b)]
    records = [json.loads(x) for x in (pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()]
    assert all(r["figures"]["overlapped_by"] == {} for r in records)


def test_a_servers_whole_process_tree_is_pinned_and_the_client_takes_the_other_cpus(
    pytester: pytest.Pytester,
) -> None:
    matrix(pytester, ["  - [f0]"], behaviour="tok_rate=200,children=1")
    text = (pytester.path / "m.yaml").read_text().replace("startup_timeout: 30}", "startup_timeout: 30, cpus: [0]}")
    (pytester.path / "m.yaml").write_text(text)
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ablate: servers pinned to CPUs 0; the load generator runs on 1*"])
    assert [s["cpus"] for s in runs(pytester)] == [[0]]


def test_asking_for_cpus_the_machine_lacks_says_so_once_and_runs_unpinned(pytester: pytest.Pytester) -> None:
    matrix(pytester, ["  - [f0]"])
    text = (
        (pytester.path / "m.yaml").read_text().replace("startup_timeout: 30}", "startup_timeout: 30, cpus: [0, 999]}")
    )
    (pytester.path / "m.yaml").write_text(text)
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["ablate: server.cpus [[]0, 999[]] asked, but this machine has CPUs *: servers run unpinned"]
    )
    assert len(runs(pytester)[0]["cpus"]) == len(os.sched_getaffinity(0))


def test_sglang_is_never_given_a_port_its_grpc_port_would_overflow() -> None:
    # SGLang 0.5 refuses --port above 55535: its gRPC port (--port + 10000) must stay below 65536
    import random

    from pytest_sglang_ablate.engines.sglang import SGLANG
    from pytest_sglang_ablate.server import ports
    from pytest_sglang_ablate.server.leases import Lease, Leases

    low, high = SGLANG.port_range
    assert high + 10000 <= 65535
    rng = random.Random(0)
    drawn = [ports.choose("127.0.0.1", lambda p: [], SGLANG.port_range, rng) for _ in range(50)]
    assert all(low <= p < high for p in drawn)
    leases, lease = Leases(Path(tempfile.mkdtemp()), None, port_dir=Path(tempfile.mkdtemp())), Lease()
    blocks = [leases.port_block(lease, None, SGLANG.port_range) for _ in range(40)]
    lease.release()
    assert all(low <= p < high for p in blocks) and len(set(blocks)) == 40


def test_two_runs_on_one_machine_never_get_the_same_port_block(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Port blocks are locked machine-wide: a second run (another CI job on the same runner) that wants the
    same block as the first gets the next."""
    from pytest_sglang_ablate.server import leases as module

    monkeypatch.setattr("pytest_sglang_ablate.server.leases.random.shuffle", lambda blocks: None)  # lowest first
    first, second = (module.Leases(tmp_path / run, None, port_dir=tmp_path / "ports") for run in ("a", "b"))
    a, b, c = module.Lease(), module.Lease(), module.Lease()
    span = (20000, 60000)
    taken = first.port_block(a, None, span)
    assert second.port_block(b, None, span) != taken
    a.release()
    assert second.port_block(c, None, span) == taken  # free again once released
    b.release()
    c.release()


def test_ports_stay_clear_of_the_kernels_ephemeral_ports_where_the_range_allows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A client connection given a local port in the ephemeral range before the server binds it fails the
    launch with "address already in use" (seen in CI: a stand-in's HTTP port 47888, in 32768-60999)."""
    import random

    from pytest_sglang_ablate.engines.sglang import SGLANG
    from pytest_sglang_ablate.server import ports
    from pytest_sglang_ablate.server.leases import Lease, Leases

    monkeypatch.setattr(ports, "ephemeral", lambda: (32768, 60999))  # Linux's default
    leases, lease = Leases(tmp_path / "run", None, port_dir=tmp_path / "ports"), Lease()
    blocks = [leases.port_block(lease, None, SGLANG.port_range) for _ in range(20)]
    assert all(p >= 20000 and p - 16 + 256 <= 32768 for p in blocks)
    rng = random.Random(0)
    drawn = [ports.choose("127.0.0.1", lambda p: [], SGLANG.port_range, rng) for _ in range(50)]
    assert all(p >= 20000 and p + 256 <= 32768 for p in drawn)
    monkeypatch.setattr(ports, "ephemeral", lambda: (10000, 65535))  # nothing clear: the whole range again
    assert 20000 <= leases.port_block(lease, None, SGLANG.port_range) < 55000
    assert ports.outside_ephemeral(SGLANG.port_range) == [SGLANG.port_range]
    lease.release()


def test_a_gpu_id_the_machine_lacks_is_one_usage_error_before_any_launch(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the one-GPU H200, `--ablate-gpus 0,1` would give a row CUDA_VISIBLE_DEVICES=1, which CUDA drops."""
    matrix(pytester, ["  - [f0]"])
    monkeypatch.setenv("FAKE_NVML_GPUS", "1")
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "--ablate-gpus", "0,1", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--ablate-gpus: GPU 1 is not on this machine: NVML sees 1 GPU (0); expected ids from that list, or none"]
    )
    assert "Traceback" not in result.stderr.str() and not (pytester.path / "record.jsonl").exists()
    monkeypatch.setenv("FAKE_NVML_GPUS", "2")  # the same ids on a machine that has them: the row runs
    pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "--ablate-gpus", "0,1", timeout=120).assert_outcomes(
        passed=1
    )


def test_with_plugin_autoload_off_and_xdist_named_by_module_a_rows_cases_still_share_one_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 pytest -p xdist.plugin ...` (how the H200 runs load plugins): each row
    was launched once per case there, since the plugin looked for xdist by its entry-point name."""
    matrix(pytester, ["  - [f0]", "  - [f1]"])
    text = (pytester.path / "m.yaml").read_text()
    two_levels = "levels: [{concurrency: 2, requests: 8}, {concurrency: 4, requests: 8}]"
    (pytester.path / "m.yaml").write_text(text.replace("levels: [{concurrency: 2, requests: 8}]", two_levels))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    plugins = ["-p", "xdist.plugin", "-p", "pytest_benchmark.plugin", "-p", "pytest_sglang_ablate.plugin"]
    run(pytester, *plugins, "-n", "2", "--dist", "loadgroup").assert_outcomes(passed=4)
    assert len(runs(pytester)) == 2  # one server per row


def test_the_report_lists_rows_in_the_matrix_order_whichever_finished_first(pytester: pytest.Pytester) -> None:
    """A nightly report diffs line by line against last night's, so rows finishing out of order under -n must
    not reorder it (on the H200, `-n 2` listed the second row first)."""
    matrix(
        pytester,
        [
            '  - {features: [f0], env: {STANDIN: "tok_rate=20"}}',
            '  - {features: [f1], env: {STANDIN: "tok_rate=2000"}}',
        ],
    )
    run(pytester, "-n", "2", "--dist", "loadgroup").assert_outcomes(passed=2)
    records = [json.loads(x) for x in (pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()]
    assert [r["row"] for r in records] == ["f1", "f0"]  # f0's 50 tokens at 20/s end seconds after f1's
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    table = report.split("## Offline batch")[1].split("Notes:")[0]
    assert [line.split("|")[2].strip() for line in table.splitlines() if line.count("|") > 3][2:] == ["f0", "f1"]


def test_in_a_container_the_next_row_waits_for_the_gpus_memory_not_for_pids_nvml_cannot_name(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NVML gives host pids; in a container with its own pid namespace none is ever the server's, so a wait on
    pids ends at once. The driver here frees a server's 10 GiB 3 s after it stops: the next row must not start
    on a GPU still holding it."""
    fake_nvml(monkeypatch, pytester.path / "nvml.jsonl", gpus=1, pid_offset=1_000_000)
    matrix(pytester, ["  - [f0]", "  - [f1]"], behaviour="tok_rate=1000,fake_gpu_mem=10,fake_gpu_linger=3")
    text = (
        (pytester.path / "m.yaml")
        .read_text()
        .replace("startup_timeout: 30}", "startup_timeout: 30, gpu_release_timeout: 30}")
    )
    (pytester.path / "m.yaml").write_text(text)
    pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "--ablate-gpus", "0", timeout=120).assert_outcomes(
        passed=2
    )
    starts = [s["gpu_used_at_start"] for s in sorted(runs(pytester), key=lambda s: s["started"])]
    assert starts == [{"0": 0}, {"0": 0}]  # the second server found GPU 0 empty


def test_memory_the_driver_never_frees_is_a_teardown_error_naming_the_gpu(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvml(monkeypatch, pytester.path / "nvml.jsonl", gpus=1, pid_offset=1_000_000)
    matrix(pytester, ["  - [f0]"], behaviour="tok_rate=1000,fake_gpu_mem=10,fake_gpu_linger=3600")
    text = (
        (pytester.path / "m.yaml")
        .read_text()
        .replace("startup_timeout: 30}", "startup_timeout: 30, gpu_release_timeout: 1}")
    )
    (pytester.path / "m.yaml").write_text(text)
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "--ablate-gpus", "0", timeout=120)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*stopping the server left something behind: GPU memory still held after 1 s: GPU 0 uses 10.0 GiB "
            "(0.0 GiB before the launch; the server's pids are in another pid namespace than NVML's)*"
        ]
    )


def test_a_gpu_id_nvml_cannot_resolve_is_named_in_the_header(pytester: pytest.Pytester) -> None:
    """CUDA takes a UUID prefix; NVML does not, so the GPU-memory check after teardown would skip it unsaid."""
    matrix(pytester, ["  - [f0]"])
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "--ablate-gpus", "GPU-fake-0,GPU-8932f937")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ablate: NVML does not know GPU GPU-8932f937: teardown cannot check their memory*"])
