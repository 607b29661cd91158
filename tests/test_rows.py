from __future__ import annotations

from pathlib import Path

import pytest
from matrices import TINY, write

from pytest_sglang_ablate.matrix.model import BatchWorkload, SingleWorkload
from pytest_sglang_ablate.matrix.parse import load_matrix
from pytest_sglang_ablate.matrix.rows import expand


def test_case_ids_are_row_features_then_workload_then_level(tiny_matrix: Path) -> None:
    a = expand(load_matrix(tiny_matrix), None)
    assert [c.id for c in a.cases] == [
        "cuda_graph+radix_cache-single",
        "cuda_graph+radix_cache-batch-c2",
        "cuda_graph+radix_cache-batch-c4",
        "cuda_graph+radix_cache+nextn-single",
        "cuda_graph+radix_cache+nextn-batch-c2",
        "cuda_graph+radix_cache+nextn-batch-c4",
        "nextn-only-single",
    ]


def test_ids_follow_feature_declaration_order_not_row_order(tmp_path: Path) -> None:
    m = write(tmp_path / "m.yaml", TINY.replace("  - [cuda_graph, radix_cache]\n", "  - [radix_cache, cuda_graph]\n"))
    assert expand(load_matrix(m), None).rows[0].id == "cuda_graph+radix_cache"


def test_row_with_no_feature_on_is_the_baseline(tmp_path: Path) -> None:
    m = write(tmp_path / "m.yaml", TINY.replace("  - [cuda_graph, radix_cache]\n", "  - []\n"))
    row = expand(load_matrix(m), None).rows[0]
    assert row.id == "baseline" and row.features == ()


def test_argv_merges_base_then_feature_on_off_then_row_args(tiny_matrix: Path) -> None:
    rows = expand(load_matrix(tiny_matrix), None).rows
    assert rows[0].argv == ("python3", "-m", "sglang.launch_server", "--model-path", "some/model", "--tp-size", "2")
    nextn_only = rows[2]
    assert nextn_only.argv[5:] == (
        "--tp-size",
        "2",
        "--disable-cuda-graph",
        "--disable-radix-cache",
        "--speculative-algorithm",
        "NEXTN",
        "--speculative-num-steps",
        "3",
        "--mem-fraction-static",
        "0.7",
    )


def test_row_args_override_feature_args(tmp_path: Path) -> None:
    m = write(
        tmp_path / "m.yaml",
        TINY.replace("args: {mem-fraction-static: 0.7}", "args: {speculative-num-steps: 5, tp-size: false}"),
    )
    argv = expand(load_matrix(m), None).rows[2].argv
    assert "--tp-size" not in argv and argv[argv.index("--speculative-num-steps") + 1] == "5"


def test_yaml_bare_on_off_keys_are_read_as_on_and_off(tiny_matrix: Path) -> None:
    features = {f.name: f for f in load_matrix(tiny_matrix).features}
    assert features["cuda_graph"].off == (("disable-cuda-graph", True),) and features["cuda_graph"].on == ()
    assert features["nextn"].on[0] == ("speculative-algorithm", "NEXTN")


def test_row_workload_override_merges_key_by_key_and_limits_workloads(tmp_path: Path) -> None:
    text = TINY.replace(
        "  - [cuda_graph, radix_cache]\n",
        "  - {features: [cuda_graph], workloads: {batch: {levels: [{concurrency: 8, requests: 16}]}}}\n",
    )
    a = expand(load_matrix(write(tmp_path / "m.yaml", text)), None)
    row = a.rows[0]
    (batch,) = row.workloads
    assert isinstance(batch, BatchWorkload)
    assert (batch.input_len, batch.output_len, [(lv.concurrency, lv.requests) for lv in batch.levels]) == (
        8,
        8,
        [(8, 16)],
    )
    assert [c.id for c in a.cases if c.row == row] == ["cuda_graph-batch-c8"]


def test_requests_default_to_twice_the_concurrency(tiny_matrix: Path) -> None:
    batch = load_matrix(tiny_matrix).workloads[1]
    assert isinstance(batch, BatchWorkload) and batch.levels[0].requests == 4


def test_known_issue_marks_every_case_of_a_matching_row(tiny_matrix: Path) -> None:
    a = expand(load_matrix(tiny_matrix), "0.4.3.post2")
    failing = {c.id for c in a.cases if c.xfail}
    assert failing == {
        "cuda_graph+radix_cache+nextn-single",
        "cuda_graph+radix_cache+nextn-batch-c2",
        "cuda_graph+radix_cache+nextn-batch-c4",
    }
    assert all(c.xfail == "spec decoding vs radix cache" and c.xfail_launch_only for c in a.cases if c.xfail)


@pytest.mark.parametrize(
    ("version", "applies"), [("0.4.3", True), ("0.4.3.post2", True), ("0.4.4", False), ("0.5.6", False), (None, True)]
)
def test_version_range_decides_whether_a_rule_applies(tiny_matrix: Path, version: str | None, applies: bool) -> None:
    a = expand(load_matrix(tiny_matrix), version)
    assert any(c.xfail for c in a.cases) is applies


def test_level_scoped_rule_marks_only_levels_at_or_above_its_concurrency(tmp_path: Path) -> None:
    text = TINY.replace(
        "  - {when: [nextn, radix_cache]",
        '  - {when: [cuda_graph], min_concurrency: 4, workloads: [batch], reason: "OOM"}\n'
        "  - {when: [nextn, radix_cache]",
    )
    a = expand(load_matrix(write(tmp_path / "m.yaml", text)), "0.5.0")
    failing = [c for c in a.cases if c.xfail]
    assert [c.id for c in failing] == ["cuda_graph+radix_cache-batch-c4", "cuda_graph+radix_cache+nextn-batch-c4"]
    assert not any(c.xfail_launch_only for c in failing)  # the server dies mid-workload, not at launch


def test_product_generator_makes_every_combination_and_keeps_hand_written_rows(tmp_path: Path) -> None:
    text = TINY.replace("rows:\n", "generate: {mode: product}\nrows:\n")
    a = expand(load_matrix(write(tmp_path / "m.yaml", text)), "0.5.0")
    ids = [r.id for r in a.rows]
    assert len(ids) == len(set(ids)) == 3 + 8 - 3  # the three hand-written feature sets are not generated again
    assert "baseline" in ids and "nextn-only" in ids and "nextn" not in ids


def test_generator_can_exclude_rows_a_known_issue_expects_to_fail(tmp_path: Path) -> None:
    text = TINY.replace(
        "rows:\n", "generate: {mode: product, features: [radix_cache, nextn], exclude_known_issues: true}\nrows:\n"
    )
    a = expand(load_matrix(write(tmp_path / "m.yaml", text)), "0.4.3")
    generated = [r.id for r in a.rows[3:]]
    assert generated == ["baseline", "radix_cache"]  # radix_cache+nextn left out; nextn is hand-written


def test_pairwise_generator_rows_cover_all_pairs_of_the_chosen_features(tmp_path: Path) -> None:
    text = TINY.replace(
        "rows:\n  - [cuda_graph, radix_cache]\n  - [cuda_graph, radix_cache, nextn]\n"
        "  - {features: [nextn], id: nextn-only, args: {mem-fraction-static: 0.7}, workloads: [single]}\n",
        "generate: {mode: pairwise}\n",
    )
    rows = expand(load_matrix(write(tmp_path / "m.yaml", text)), None).rows
    names = ["cuda_graph", "radix_cache", "nextn"]
    seen = {(a, a in r.features, b, b in r.features) for r in rows for a in names for b in names if a < b}
    assert len(seen) == 3 * 4 and len(rows) < 8


def test_engine_aliases_of_a_flag_merge_into_one(tmp_path: Path) -> None:
    text = TINY.replace("args: {mem-fraction-static: 0.7}", "args: {tp: 8}")
    argv = expand(load_matrix(write(tmp_path / "m.yaml", text)), None).rows[2].argv
    assert argv.count("--tp-size") == 1 and argv[argv.index("--tp-size") + 1] == "8" and "--tp" not in argv


def test_a_row_two_generators_make_is_kept_once(tmp_path: Path) -> None:
    text = TINY.replace(
        "rows:\n",
        "generate: [{mode: product, features: [cuda_graph]}, {mode: product, features: [radix_cache]}]\nrows:\n",
    )
    ids = [r.id for r in expand(load_matrix(write(tmp_path / "m.yaml", text)), None).rows]
    assert ids == [
        "cuda_graph+radix_cache",
        "cuda_graph+radix_cache+nextn",
        "nextn-only",
        "baseline",
        "cuda_graph",
        "radix_cache",
    ]


def test_null_in_a_row_override_sets_the_key_back_to_its_default(tmp_path: Path) -> None:
    text = TINY.replace(
        'single: {kind: single, prompt: "hi", expect: "x"}',
        'single: {kind: single, prompt: "hi", expect: "x", max_tokens: 9}',
    )
    text = text.replace("workloads: [single]}", "workloads: {single: {expect: null, max_tokens: null}}}")
    (single,) = expand(load_matrix(write(tmp_path / "m.yaml", text)), None).rows[2].workloads
    assert isinstance(single, SingleWorkload) and single.expect is None and single.max_tokens == 2048
