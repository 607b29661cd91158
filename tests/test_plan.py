"""--ablate-plan shows what would run, launches nothing; matrix/r1.yaml reproduces the seed page's rows."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from matrices import TINY

from pytest_sglang_ablate.matrix.parse import load_matrix
from pytest_sglang_ablate.matrix.rows import expand

REPO = Path(__file__).resolve().parents[1]
SEED = Path(__file__).parent / "data" / "seed"  # the seed page as data (docs/seed.md)
SEED_FEATURES = ["torch_compile", "cuda_graph", "radix_cache", "flashinfer_mla", "nextn", "ep_moe", "dp_attention"]
NEVER_LAUNCHES = """
import pytest

@pytest.fixture(scope="session")
def sglang_server(request):
    open("launched", "w").close()
    yield request.param
"""


def test_plan_lists_rows_commands_expected_outcomes_and_gpus_without_launching(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=TINY)
    pytester.makeconftest(NEVER_LAUNCHES)
    result = pytester.runpytest("--ablate-matrix", "tiny.yaml", "--ablate-plan", "--ablate-sglang-version", "0.4.3")
    assert result.ret == pytest.ExitCode.OK
    out = result.stdout.str()
    assert "launch prefix: python3 -m sglang.launch_server" in out
    for text in (
        "cuda_graph+radix_cache+nextn",
        "nextn-only",
        "--disable-radix-cache",
        "--mem-fraction-static 0.7",
        "xfail: spec decoding vs",
        "c2,c4",
    ):
        assert text in out
    result.stdout.fnmatch_lines(["3 rows, 7 cases (3 expected to fail); nothing launched"])
    assert not (pytester.path / "launched").exists()


def test_plan_follows_k_selection(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=TINY)
    result = pytester.runpytest("--ablate-matrix", "tiny.yaml", "--ablate-plan", "-k", "nextn and not radix_cache")
    result.stdout.fnmatch_lines(["1 rows, 1 cases (0 expected to fail); nothing launched"])
    assert "nextn-only" in result.stdout.str() and "cuda_graph+radix_cache " not in result.stdout.str()


def test_plan_shows_gpus_from_tp_dp_and_nodes() -> None:
    from pytest_sglang_ablate.engines import get
    from pytest_sglang_ablate.matrix.rows import Row

    count = get("sglang").gpu_count
    assert count((("tp-size", 16), ("nnodes", 2))) == 16
    assert count((("tp-size", 8), ("dp-size", 8), ("enable-dp-attention", True))) == 8
    assert count((("tp-size", 2), ("dp-size", 4))) == 8
    assert Row("r", (), (), (), (), (), nodes=2, gpus=8).gpus_text() == "16 (2 nodes x 8)"


def test_r1_plan_counts_the_seed_rows_and_their_expected_failures(pytester: pytest.Pytester) -> None:
    (pytester.path / "r1.yaml").write_text((REPO / "matrix" / "r1.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    result = pytester.runpytest("--ablate-matrix", "r1.yaml", "--ablate-plan", "--ablate-sglang-version", "0.4.3.post2")
    result.stdout.fnmatch_lines(["17 rows, 38 cases (9 expected to fail); nothing launched"])


def test_from_the_repository_root_the_matrix_runs_alone_not_the_plugins_own_tests() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--ablate-matrix",
            "matrix/r1.yaml",
            "--collect-only",
            "-q",
            "--ablate-sglang-version",
            "0.4.3.post2",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert len(ids) == 38 and all(i.startswith("matrix/r1.yaml::test_") for i in ids), done.stdout[-2000:]


def _seed(name: str) -> list[dict[str, str]]:
    with open(SEED / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _features(seed_row: dict[str, str]) -> tuple[str, ...]:
    return tuple(f for f in SEED_FEATURES if seed_row[f] == "1")


@pytest.fixture(scope="module")
def r1_cases() -> dict[str, tuple[str | None, int | None]]:
    ablation = expand(load_matrix(REPO / "matrix" / "r1.yaml"), "0.4.3.post2")
    return {c.id: (c.xfail, c.level.requests if c.level else None) for c in ablation.cases}


def test_r1_has_every_single_query_row_of_the_seed_with_its_outcome(
    r1_cases: dict[str, tuple[str | None, int | None]],
) -> None:
    seed = _seed("single_query.csv")
    assert len(seed) == 16
    for s in seed:
        case = "+".join(_features(s)) + "-single"
        assert case in r1_cases, case
        expected_to_fail = s["runnable"] == "no"  # "no->yes" ran at mem-fraction-static 0.7
        assert (r1_cases[case][0] is not None) == expected_to_fail, case


def test_r1_has_every_batch_level_of_the_seed_with_its_requests_and_outcome(
    r1_cases: dict[str, tuple[str | None, int | None]],
) -> None:
    for s in _seed("offline_batch.csv"):
        row = "+".join(_features(s))
        if not s[
            "concurrency"
        ]:  # failed (or unmeasured) with no level given: the row exists and fails, or is single-only
            assert any(c.startswith(row + "-") for c in r1_cases), row
            if s["runnable"] == "no":
                assert all(
                    x is not None
                    for c, (x, _) in r1_cases.items()
                    if c.rsplit("-", 1)[0] == row or c.rsplit("-", 2)[0] == row
                )
            continue
        case = f"{row}-batch-c{s['concurrency']}"
        assert case in r1_cases, case
        xfail, requests = r1_cases[case]
        assert requests == int(s["total_req"]), case
        assert (xfail is not None) == (s["runnable"] == "no"), case
