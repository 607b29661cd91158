"""End to end with a real multi-process engine: vLLM's CPU build and a tiny random-weight model.

Needs the engine's environment (`bash scripts/cpu-engine.sh`, which `.ci/run` runs). Two rows that differ in
one feature, single + batch at two levels, through the plugin; then the benchmark JSON and the process table.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import engine_python

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]
ENGINE_PYTHON = REPO / ".venv-vllm" / "bin" / "python"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = engine_python(".venv-vllm", "bash scripts/cpu-engine.sh")  # skips (or fails in CI) when missing
    out = tmp_path_factory.mktemp("tiny-model")
    subprocess.run(
        [str(python), "-m", "pytest_sglang_ablate.engines.tiny_model", str(out)],
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=300,
    )
    return out


def matrix(model: Path) -> str:
    return f"""
name: real-engine
engine: vllm
launch: [{ENGINE_PYTHON}, -m, vllm.entrypoints.openai.api_server]
model: {model}
args: {{served-model-name: tiny, max-model-len: 1024, dtype: bfloat16, enforce-eager: true}}
env: {{VLLM_CPU_KVCACHE_SPACE: "1", VLLM_SERVER_DEV_MODE: "1", VLLM_CPU_OMP_THREADS_BIND: "0"}}
server: {{startup_timeout: 600, shutdown_grace: 10, cpus: [0]}}
features:
  prefix_caching: {{off: {{no-enable-prefix-caching: true}}}}
rows:
  - [prefix_caching]
  - []
workloads:
  # the engine's whole process tree on CPU 0 (server.cpus), the load generator on CPU 1, as the demo runs it:
  # unpinned, vLLM's API server and scheduler took the client's core and held its event loop up for seconds
  single: {{kind: single, prompt: "Say something.", max_tokens: 32}}
  batch: {{kind: batch, input_len: 32, output_len: 24, levels: [{{concurrency: 2, requests: 4}}, \
{{concurrency: 4, requests: 8}}]}}
  agree: {{kind: agreement, prompts: 2, max_tokens: 16, top_k: 3}}
"""


def engine_processes(model: Path) -> list[int]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if str(model) in " ".join(p.info["cmdline"] or []):
                found.append(p.pid)
        except psutil.Error:
            pass
    return found


@pytest.mark.quiet  # the engine and our client need the 2 cores to themselves (a CI run in parallel once saw a
# starved client read all 32 tokens at once); .ci/run runs the quiet tests alone
def test_vllm_cpu_rows_run_measure_and_leave_nothing_behind(pytester: pytest.Pytester, tiny_model: Path) -> None:
    pytester.makefile(".yaml", m=matrix(tiny_model))
    result = pytester.runpytest_subprocess(
        "--ablate-matrix", "m.yaml", "-p", "no:cacheprovider", "--benchmark-json=bench.json"
    )
    result.assert_outcomes(passed=8)
    bench: dict[str, dict[str, Any]] = {
        b["param"]: b for b in json.loads((pytester.path / "bench.json").read_text())["benchmarks"]
    }
    assert set(bench) == {
        f"{row}-{case}" for row in ("prefix_caching", "baseline") for case in ("single", "batch-c2", "batch-c4")
    }
    single = bench["baseline-single"]["extra_info"]
    assert single["tps_at_1"] > 0 and single["completion_tokens"] == 32 and single["token_source"] == "server usage"
    assert single["engine"] == "vllm" and str(single["engine_version"]).startswith("0.32")
    assert single["effective_config"]["enforce_eager"] is True
    assert bench["baseline-single"]["extra_info"]["effective_config"].get("enable_prefix_caching") is False
    c4 = bench["prefix_caching-batch-c4"]["extra_info"]
    assert (c4["completed"], c4["input_tokens"], c4["output_tokens"]) == (8, 8 * 32, 8 * 24)
    # one event per token, and no more; a request whose last token ends inside a UTF-8 character (random
    # weights) ends with an empty-text finish event, which cannot be told from a finish-only one: one short
    assert c4["output_tokens"] - c4["completed"] <= c4["token_arrivals"] <= c4["output_tokens"]
    assert c4["throughput_tok_s"] > 0 and c4["failed"] == 0
    records = [json.loads(x) for x in (pytester.path / "ablate-results" / "results.jsonl").read_text().splitlines()]
    agree = {r["row"]: r["figures"] for r in records if r["kind"] == "agreement"}
    assert agree["prefix_caching"]["is_reference"] and agree["baseline"]["reference_row"] == "prefix_caching"
    assert agree["baseline"]["logprobs"] is True  # vLLM's completions give tokens and top-k log-probabilities
    assert all(len(o["tokens"]) == 16 and len(o["top"][0]) >= 3 for o in agree["baseline"]["outputs"])
    assert engine_processes(tiny_model) == []  # APIServer, EngineCore and worker processes all gone
    report = (pytester.path / "ablate-results" / "report.md").read_text()
    assert "## Single query" in report and "| prefix_caching | batch: throughput c4 " in report  # one-feature pairs
    assert "vllm 0.32.0 (as the servers reported it)" in report
