"""Bad matrix input stops the run with one `ERROR: file:line: key.path: what was expected` line, never a traceback."""

from __future__ import annotations

import pytest

# A valid minimal matrix; each test changes one thing. `launch` is not `<python> -m sglang...`, so no probe runs.
BASE = """\
model: org/model
launch: [sglang-serve]
args: {tp-size: 1}
env: {LOG_LEVEL: "1"}
features:
  nextn: {on: {speculative-algorithm: NEXTN}}
  cuda_graph: {off: {disable-cuda-graph: true}}
rows:
  - [cuda_graph]
  - [cuda_graph, nextn]
known_issues:
  - {when: [nextn], reason: "spec decoding breaks", sglang: "<0.4.4"}
workloads:
  single: {kind: single, prompt: hi, max_tokens: 16}
  batch:
    kind: batch
    input_len: 8
    output_len: 8
    levels:
      - {concurrency: 1, requests: 2}
      - {concurrency: 4, requests: 8}
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once in the matrix"
    return text.replace(old, new)


def line_with(text: str, snippet: str) -> int:
    """The 1-based line where the only occurrence of `snippet` starts."""
    assert text.count(snippet) == 1, f"{snippet!r} must occur once in the matrix"
    return text[: text.index(snippet)].count("\n") + 1


def run(pytester: pytest.Pytester, text: str | None, *extra: str) -> pytest.RunResult:
    if text is not None:
        pytester.path.joinpath("m.yaml").write_text(text, encoding="utf-8")
    return pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "--ablate-plan", *extra)


def assert_usage_error(result: pytest.RunResult, where: str, *expected: str) -> str:
    """Exit 4, one ERROR line starting with `where` (e.g. "m.yaml:9: rows[1][1]: ") and containing `expected`."""
    out, err = result.stdout.str(), result.stderr.str()
    assert "Traceback" not in out + err
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out + err
    errors = [line for line in result.errlines if line.startswith("ERROR: ")]
    assert len(errors) == 1, err
    line = errors[0]
    assert line.startswith(f"ERROR: {where}"), line
    for text in expected:
        assert text in line, line
    return line


def test_minimal_matrix_is_valid(pytester: pytest.Pytester) -> None:
    result = run(pytester, BASE)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    assert not [line for line in result.errlines if line.startswith("ERROR: ")]


@pytest.mark.parametrize(
    ("old", "new", "mistake", "expected"),
    [
        ("args: {tp-size: 1}", "args: tp-size: 1", "args: tp-size", "mapping values are not allowed here"),
        # an unclosed `[`: the mistake is on its own line, not on the next line where the parser gives up
        ("  - [cuda_graph]\n", "  - [cuda_graph\n", "[cuda_graph\n", "expected ',' or ']'"),
    ],
    ids=["mapping-in-value", "unclosed-flow-list"],
)
def test_yaml_syntax_error_names_the_line_of_the_mistake(
    pytester: pytest.Pytester, old: str, new: str, mistake: str, expected: str
) -> None:
    text = edit(old, new)
    assert_usage_error(run(pytester, text), f"m.yaml:{line_with(text, mistake)}: ", "YAML syntax error", expected)


def test_unknown_top_level_key_names_line_and_suggests_closest(pytester: pytest.Pytester) -> None:
    text = edit("workloads:\n", "workload:\n")
    assert_usage_error(
        run(pytester, text),
        f"m.yaml:{line_with(text, 'workload:')}: workload: ",
        "unknown key (did you mean 'workloads'?)",
    )


@pytest.mark.parametrize(
    ("old", "new", "path", "expected"),
    [
        ("args: {tp-size: 1}", "args: [tp-size, 1]", "args", "expected a mapping, got a list"),
        ('env: {LOG_LEVEL: "1"}', "env: {LOG_LEVEL: {level: 1}}", "env.LOG_LEVEL", "expected a string or number"),
        (
            "max_tokens: 16",
            'max_tokens: "x"',
            "workloads.single.max_tokens",
            "expected an integer >= 1, got the string 'x'",
        ),
        (
            "{on: {speculative-algorithm: NEXTN}}",
            "{on: [speculative-algorithm]}",
            "features.nextn.on",
            "expected a mapping, got a list",
        ),
        (
            "{concurrency: 1, requests: 2}",
            "{concurrency: many, requests: 2}",
            "workloads.batch.levels[0].concurrency",
            "expected an integer >= 1, got the string 'many'",
        ),
    ],
    ids=["args-list", "env-mapping", "max_tokens-string", "feature-on-list", "concurrency-string"],
)
def test_wrong_type_names_line_key_and_expected_type(
    pytester: pytest.Pytester, old: str, new: str, path: str, expected: str
) -> None:
    text = edit(old, new)
    assert_usage_error(run(pytester, text), f"m.yaml:{line_with(text, new)}: {path}: ", expected)


def test_unknown_feature_in_row_names_line_key_and_suggests_closest(pytester: pytest.Pytester) -> None:
    text = edit("[cuda_graph, nextn]", "[cuda_graph, nxtn]")
    assert_usage_error(
        run(pytester, text),
        f"m.yaml:{line_with(text, 'nxtn')}: rows[1][1]: ",
        "unknown feature 'nxtn' (did you mean 'nextn'?)",
    )


def test_unknown_feature_in_known_issue_names_line_key_and_suggests_closest(pytester: pytest.Pytester) -> None:
    text = edit("when: [nextn]", "when: [nxtn]")
    assert_usage_error(
        run(pytester, text),
        f"m.yaml:{line_with(text, 'nxtn')}: known_issues[0].when[0]: ",
        "unknown feature 'nxtn' (did you mean 'nextn'?)",
    )


def test_unknown_workload_in_row_names_line_key_and_suggests_closest(pytester: pytest.Pytester) -> None:
    text = edit("  - [cuda_graph, nextn]", "  - {features: [cuda_graph, nextn], workloads: [singel]}")
    assert_usage_error(
        run(pytester, text),
        f"m.yaml:{line_with(text, 'singel')}: rows[1].workloads[0]: ",
        "unknown workload 'singel' (did you mean 'single'?)",
    )


def test_duplicate_row_names_the_row_it_repeats(pytester: pytest.Pytester) -> None:
    text = edit("  - [cuda_graph, nextn]", "  - [cuda_graph]  # again")
    assert_usage_error(run(pytester, text), f"m.yaml:{line_with(text, 'again')}: rows[1]: ", "duplicate row", "rows[0]")


def test_rows_with_same_features_and_no_id_ask_for_an_explicit_id(pytester: pytest.Pytester) -> None:
    text = edit("  - [cuda_graph, nextn]", "  - {features: [cuda_graph], args: {tp-size: 2}}")
    assert_usage_error(
        run(pytester, text),
        f"m.yaml:{line_with(text, 'tp-size: 2')}: rows[1]: ",
        "duplicate row id 'cuda_graph'",
        "rows[0]",
        "id:",
    )


def test_explicit_id_colliding_with_a_generated_row_id_is_refused(pytester: pytest.Pytester) -> None:
    rows = "  - {id: nextn, features: [cuda_graph], args: {tp-size: 2}}\ngenerate: {mode: product}\n"
    text = edit("  - [cuda_graph]\n  - [cuda_graph, nextn]\n", rows)
    assert_usage_error(
        run(pytester, text), f"m.yaml:{line_with(text, 'generate:')}: generate: ", "duplicate row id 'nextn'", "rows[0]"
    )


def test_empty_rows_without_generate_asks_for_a_row(pytester: pytest.Pytester) -> None:
    text = edit("rows:\n  - [cuda_graph]\n  - [cuda_graph, nextn]\n", "rows: []\n")
    assert_usage_error(run(pytester, text), f"m.yaml:{line_with(text, 'rows:')}: rows: ", "expected at least one row")


def test_batch_level_without_concurrency_names_the_missing_key(pytester: pytest.Pytester) -> None:
    text = edit("{concurrency: 4, requests: 8}", "{requests: 8}")
    assert_usage_error(
        run(pytester, text),
        f"m.yaml:{line_with(text, '{requests: 8}')}: workloads.batch.levels[1]: ",
        "missing required key 'concurrency'",
    )


def test_fewer_requests_than_concurrency_names_both(pytester: pytest.Pytester) -> None:
    text = edit("{concurrency: 4, requests: 8}", "{concurrency: 4, requests: 3}")
    where = f"m.yaml:{line_with(text, 'requests: 3')}: workloads.batch.levels[1].requests: "
    assert_usage_error(run(pytester, text), where, "expected at least concurrency (4) requests, got 3")


def test_duplicate_concurrency_in_levels_names_the_level(pytester: pytest.Pytester) -> None:
    text = edit("{concurrency: 4, requests: 8}", "{concurrency: 1, requests: 8}")
    assert_usage_error(
        run(pytester, text),
        f"m.yaml:{line_with(text, 'requests: 8')}: workloads.batch.levels[1]: ",
        "concurrency 1 is listed twice",
    )


def test_bad_version_range_names_the_range_and_an_example(pytester: pytest.Pytester) -> None:
    text = edit('"<0.4.4"', '"<<0.4"')
    assert_usage_error(
        run(pytester, text),
        f"m.yaml:{line_with(text, '<<0.4')}: known_issues[0].sglang: ",
        "expected a version range such as",
        "'<<0.4'",
    )


def test_missing_matrix_file_says_no_such_file(pytester: pytest.Pytester) -> None:
    assert_usage_error(run(pytester, None), "m.yaml: ", "no such file")


def test_duplicate_yaml_key_names_line_and_full_key_path(pytester: pytest.Pytester) -> None:
    text = edit("  cuda_graph: {off", "  nextn: {off")
    assert_usage_error(
        run(pytester, text), f"m.yaml:{line_with(text, 'nextn: {off')}: features.nextn: ", "duplicate key"
    )


def test_feature_named_like_a_pytest_marker_is_refused(pytester: pytest.Pytester) -> None:
    text = edit("  cuda_graph: {off", "  xfail: {off")
    assert_usage_error(
        run(pytester, text), f"m.yaml:{line_with(text, 'xfail:')}: features.xfail: ", "'xfail' is a pytest marker"
    )


def test_missing_model_names_the_key(pytester: pytest.Pytester) -> None:
    text = edit("model: org/model\n", "")
    assert_usage_error(run(pytester, text), "m.yaml:1: ", "missing required key 'model'")


def test_launch_as_a_string_asks_for_an_argv_list(pytester: pytest.Pytester) -> None:
    text = edit("launch: [sglang-serve]", "launch: sglang-serve --port 1")
    assert_usage_error(
        run(pytester, text), f"m.yaml:{line_with(text, 'launch:')}: launch: ", "expected a list of strings"
    )


def test_bad_sglang_version_option_names_the_option(pytester: pytest.Pytester) -> None:
    result = run(pytester, BASE, "--ablate-sglang-version", "notaversion")
    assert_usage_error(result, "--ablate-sglang-version: ", "expected a version", "'notaversion'")


def test_broken_matrix_is_ignored_without_ablate_matrix(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("m.yaml").write_text(edit("workloads:\n", "workload: [\n"), encoding="utf-8")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert not [line for line in result.errlines if line.startswith("ERROR: ")]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    ("old", "new", "mistake", "where", "expected"),
    [
        ('sglang: "<0.4.4"', 'sglang: " "', 'sglang: " "', "known_issues[0].sglang: ", "got an empty string"),
        ("args: {tp-size: 1}", "args: {[tp-size]: 1}", "args: {[tp-size]", "", "a key must be a name"),
        (
            'reason: "spec decoding breaks"',
            'reason: "x", workloads: []',
            "workloads: []",
            "known_issues[0].workloads: ",
            "expected at least one workload",
        ),
        (
            "nextn: {on: {speculative-algorithm: NEXTN}}",
            "nextn: {on: }",
            "nextn: {on: }",
            "features.nextn: ",
            "a feature that changes no flag",
        ),
        ("args: {tp-size: 1}", "args: {tp-size: 1, tp: 2}", "args: {tp-size: 1, tp: 2}", "args.tp: ", "given twice"),
        (
            "  - [cuda_graph]\n",
            "  - {features: [cuda_graph], id: tp=2}\n",
            "  - {features",
            "rows[0].id: ",
            "letters, digits and _ . + - only",
        ),
    ],
    ids=[
        "empty-version-range",
        "list-as-key",
        "empty-rule-workloads",
        "feature-on-null",
        "flag-alias-twice",
        "id-with-equals",
    ],
)
def test_more_bad_input_is_one_clear_line(
    pytester: pytest.Pytester, old: str, new: str, mistake: str, where: str, expected: str
) -> None:
    text = edit(old, new)
    assert_usage_error(run(pytester, text), f"m.yaml:{line_with(text, mistake)}: {where}", expected)
