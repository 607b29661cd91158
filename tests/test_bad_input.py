"""Bad matrix input is one `file:line: key.path: what was expected` MatrixError, never a traceback.

The library finds each mistake (`load_matrix`, or `expand` for clashing row ids) and is checked in-process; two
subprocess runs check that the plugin turns such an error into one `ERROR:` line and exit code 4.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_sglang_ablate.errors import MatrixError
from pytest_sglang_ablate.matrix.parse import load_matrix
from pytest_sglang_ablate.matrix.rows import expand
from pytest_sglang_ablate.plugin import resolve_settings

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


def write(directory: Path, text: str) -> Path:
    path = directory / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(directory: Path, text: str | None) -> str:
    """The message `load_matrix` raises for `text` saved as m.yaml (None: no file there)."""
    path = directory / "m.yaml" if text is None else write(directory, text)
    with pytest.raises(MatrixError) as exc:
        load_matrix(path, "m.yaml")
    return str(exc.value)


def expand_error(directory: Path, text: str) -> str:
    """The message `expand` raises for a matrix that loads but whose rows clash (as the plugin calls it, no version)."""
    matrix = load_matrix(write(directory, text), "m.yaml")
    with pytest.raises(MatrixError) as exc:
        expand(matrix, None)
    return str(exc.value)


def assert_message(message: str, where: str, *expected: str) -> None:
    """One line starting with `where` (e.g. "m.yaml:9: rows[1][1]: ") and containing each of `expected`."""
    assert "\n" not in message, message
    assert message.startswith(where), message
    for text in expected:
        assert text in message, message


def test_minimal_matrix_is_valid(tmp_path: Path) -> None:
    ablation = expand(load_matrix(write(tmp_path, BASE), "m.yaml"), None)
    assert [row.id for row in ablation.rows] == ["cuda_graph", "nextn+cuda_graph"]


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
    tmp_path: Path, old: str, new: str, mistake: str, expected: str
) -> None:
    text = edit(old, new)
    assert_message(load_error(tmp_path, text), f"m.yaml:{line_with(text, mistake)}: ", "YAML syntax error", expected)


def test_unknown_top_level_key_names_line_and_suggests_closest(tmp_path: Path) -> None:
    text = edit("workloads:\n", "workload:\n")
    assert_message(
        load_error(tmp_path, text),
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
    tmp_path: Path, old: str, new: str, path: str, expected: str
) -> None:
    text = edit(old, new)
    assert_message(load_error(tmp_path, text), f"m.yaml:{line_with(text, new)}: {path}: ", expected)


def test_unknown_feature_in_row_names_line_key_and_suggests_closest(tmp_path: Path) -> None:
    text = edit("[cuda_graph, nextn]", "[cuda_graph, nxtn]")
    assert_message(
        load_error(tmp_path, text),
        f"m.yaml:{line_with(text, 'nxtn')}: rows[1][1]: ",
        "unknown feature 'nxtn' (did you mean 'nextn'?)",
    )


def test_unknown_feature_in_known_issue_names_line_key_and_suggests_closest(tmp_path: Path) -> None:
    text = edit("when: [nextn]", "when: [nxtn]")
    assert_message(
        load_error(tmp_path, text),
        f"m.yaml:{line_with(text, 'nxtn')}: known_issues[0].when[0]: ",
        "unknown feature 'nxtn' (did you mean 'nextn'?)",
    )


def test_unknown_workload_in_row_names_line_key_and_suggests_closest(tmp_path: Path) -> None:
    text = edit("  - [cuda_graph, nextn]", "  - {features: [cuda_graph, nextn], workloads: [singel]}")
    assert_message(
        load_error(tmp_path, text),
        f"m.yaml:{line_with(text, 'singel')}: rows[1].workloads[0]: ",
        "unknown workload 'singel' (did you mean 'single'?)",
    )


def test_duplicate_row_names_the_row_it_repeats(tmp_path: Path) -> None:
    text = edit("  - [cuda_graph, nextn]", "  - [cuda_graph]  # again")
    assert_message(
        load_error(tmp_path, text), f"m.yaml:{line_with(text, 'again')}: rows[1]: ", "duplicate row", "rows[0]"
    )


def test_rows_with_same_features_and_no_id_ask_for_an_explicit_id(tmp_path: Path) -> None:
    text = edit("  - [cuda_graph, nextn]", "  - {features: [cuda_graph], args: {tp-size: 2}}")
    assert_message(
        expand_error(tmp_path, text),
        f"m.yaml:{line_with(text, 'tp-size: 2')}: rows[1]: ",
        "duplicate row id 'cuda_graph'",
        "rows[0]",
        "id:",
    )


def test_explicit_id_colliding_with_a_generated_row_id_is_refused(tmp_path: Path) -> None:
    rows = "  - {id: nextn, features: [cuda_graph], args: {tp-size: 2}}\ngenerate: {mode: product}\n"
    text = edit("  - [cuda_graph]\n  - [cuda_graph, nextn]\n", rows)
    assert_message(
        expand_error(tmp_path, text),
        f"m.yaml:{line_with(text, 'generate:')}: generate: ",
        "duplicate row id 'nextn'",
        "rows[0]",
    )


def test_empty_rows_without_generate_asks_for_a_row(tmp_path: Path) -> None:
    text = edit("rows:\n  - [cuda_graph]\n  - [cuda_graph, nextn]\n", "rows: []\n")
    assert_message(
        load_error(tmp_path, text), f"m.yaml:{line_with(text, 'rows:')}: rows: ", "expected at least one row"
    )


def test_batch_level_without_concurrency_names_the_missing_key(tmp_path: Path) -> None:
    text = edit("{concurrency: 4, requests: 8}", "{requests: 8}")
    assert_message(
        load_error(tmp_path, text),
        f"m.yaml:{line_with(text, '{requests: 8}')}: workloads.batch.levels[1]: ",
        "missing required key 'concurrency'",
    )


def test_fewer_requests_than_concurrency_names_both(tmp_path: Path) -> None:
    text = edit("{concurrency: 4, requests: 8}", "{concurrency: 4, requests: 3}")
    where = f"m.yaml:{line_with(text, 'requests: 3')}: workloads.batch.levels[1].requests: "
    assert_message(load_error(tmp_path, text), where, "expected at least concurrency (4) requests, got 3")


def test_duplicate_concurrency_in_levels_names_the_level(tmp_path: Path) -> None:
    text = edit("{concurrency: 4, requests: 8}", "{concurrency: 1, requests: 8}")
    assert_message(
        load_error(tmp_path, text),
        f"m.yaml:{line_with(text, 'requests: 8')}: workloads.batch.levels[1]: ",
        "concurrency 1 is listed twice",
    )


def test_bad_version_range_names_the_range_and_an_example(tmp_path: Path) -> None:
    text = edit('"<0.4.4"', '"<<0.4"')
    assert_message(
        load_error(tmp_path, text),
        f"m.yaml:{line_with(text, '<<0.4')}: known_issues[0].sglang: ",
        "expected a version range such as",
        "'<<0.4'",
    )


def test_missing_matrix_file_says_no_such_file(tmp_path: Path) -> None:
    assert_message(load_error(tmp_path, None), "m.yaml: ", "no such file")


def test_duplicate_yaml_key_names_line_and_full_key_path(tmp_path: Path) -> None:
    text = edit("  cuda_graph: {off", "  nextn: {off")
    assert_message(
        load_error(tmp_path, text), f"m.yaml:{line_with(text, 'nextn: {off')}: features.nextn: ", "duplicate key"
    )


def test_feature_named_like_a_pytest_marker_is_refused(tmp_path: Path) -> None:
    text = edit("  cuda_graph: {off", "  xfail: {off")
    assert_message(
        load_error(tmp_path, text),
        f"m.yaml:{line_with(text, 'xfail:')}: features.xfail: ",
        "'xfail' is a pytest marker",
    )


def test_missing_model_names_the_key(tmp_path: Path) -> None:
    text = edit("model: org/model\n", "")
    assert_message(load_error(tmp_path, text), "m.yaml:1: ", "missing required key 'model'")


def test_launch_as_a_string_asks_for_an_argv_list(tmp_path: Path) -> None:
    text = edit("launch: [sglang-serve]", "launch: sglang-serve --port 1")
    assert_message(
        load_error(tmp_path, text), f"m.yaml:{line_with(text, 'launch:')}: launch: ", "expected a list of strings"
    )


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
        (
            'reason: "spec decoding breaks"',
            'reason: "x", match: "Capture (cuda"',
            "match: ",
            "known_issues[0].match: ",
            "expected a regular expression (searched in the failure's evidence): missing )",
        ),
        (
            'reason: "spec decoding breaks"',
            'reason: "x", class: graph_captur',
            "class: ",
            "known_issues[0].class: ",
            "unknown failure class 'graph_captur' (did you mean 'graph_capture'?); expected one of: bad_flag,",
        ),
        (
            "    input_len: 8\n",
            "    input_len: 8\n    api: grpc\n",
            "api: grpc",
            "workloads.batch.api: ",
            "expected openai or native, got the string 'grpc'",
        ),
    ],
    ids=[
        "empty-version-range",
        "list-as-key",
        "empty-rule-workloads",
        "feature-on-null",
        "flag-alias-twice",
        "id-with-equals",
        "rule-match-not-a-regex",
        "rule-class-unknown",
        "api-unknown",
    ],
)
def test_more_bad_input_is_one_clear_line(
    tmp_path: Path, old: str, new: str, mistake: str, where: str, expected: str
) -> None:
    text = edit(old, new)
    assert_message(load_error(tmp_path, text), f"m.yaml:{line_with(text, mistake)}: {where}", expected)


# pytest options: resolved in-process from a config pytester parses (no subprocess, no session).


@pytest.mark.parametrize(
    ("args", "ini", "where", "expected"),
    [
        (["--ablate-sglang-version", "notaversion"], "", "--ablate-sglang-version: ", "got 'notaversion'"),
        ([], "ablate_sglang_version = nope", "ini ablate_sglang_version in {ini}: ", "got 'nope'"),
        (["--ablate-baseline", "nothere"], "", "--ablate-baseline: ", "no results file at nothere"),
    ],
    ids=["version-option", "version-ini", "baseline-missing"],
)
def test_bad_option_value_names_where_it_came_from(
    pytester: pytest.Pytester, args: list[str], ini: str, where: str, expected: str
) -> None:
    inifile = pytester.makeini(f"[pytest]\n{ini}\n")
    with pytest.raises(pytest.UsageError) as exc:
        resolve_settings(pytester.parseconfig(*args))
    assert_message(str(exc.value), where.format(ini=inifile), expected)


def test_plan_without_a_matrix_asks_for_one(pytester: pytest.Pytester) -> None:
    # raised by the plugin's pytest_configure, not resolve_settings: parseconfigure runs the hook in-process
    with pytest.raises(pytest.UsageError, match=r"^--ablate-plan needs a matrix: pass --ablate-matrix PATH$"):
        pytester.parseconfigure("--ablate-plan")


def test_broken_matrix_is_ignored_without_ablate_matrix(pytester: pytest.Pytester) -> None:
    write(pytester.path, edit("workloads:\n", "workload: [\n"))
    config = pytester.parseconfigure()  # the plugin's pytest_configure ran and did not read m.yaml
    assert resolve_settings(config).matrix is None


# Through the plugin: what a user sees. Each runs pytest in a subprocess (about 0.8 s), so only these two.


def assert_usage_error(result: pytest.RunResult, where: str, *expected: str) -> None:
    """Exit 4, no traceback, and exactly one ERROR line, starting with `where` and containing `expected`."""
    out, err = result.stdout.str(), result.stderr.str()
    assert "Traceback" not in out + err
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out + err
    errors = [line for line in result.errlines if line.startswith("ERROR: ")]
    assert len(errors) == 1, err
    assert_message(errors[0], f"ERROR: {where}", *expected)


def test_bad_matrix_stops_the_run_with_one_error_line_and_no_traceback(pytester: pytest.Pytester) -> None:
    text = edit("[cuda_graph, nextn]", "[cuda_graph, nxtn]")
    write(pytester.path, text)
    result = pytester.runpytest_subprocess("--ablate-matrix", "m.yaml", "--ablate-plan")
    assert_usage_error(
        result, f"m.yaml:{line_with(text, 'nxtn')}: rows[1][1]: ", "unknown feature 'nxtn' (did you mean 'nextn'?)"
    )


def test_bad_sglang_version_option_names_the_option(pytester: pytest.Pytester) -> None:
    write(pytester.path, BASE)
    result = pytester.runpytest_subprocess(
        "--ablate-matrix", "m.yaml", "--ablate-plan", "--ablate-sglang-version", "notaversion"
    )
    assert_usage_error(result, "--ablate-sglang-version: ", "expected a version", "'notaversion'")


def test_the_native_api_needs_an_engine_that_has_one(tmp_path: Path) -> None:
    text = edit(
        "model: org/model\n",
        "model: org/model\nengine: vllm\n",
        edit("    input_len: 8\n", "    input_len: 8\n    api: native\n"),
    )
    assert_message(
        load_error(tmp_path, text),
        f"m.yaml:{line_with(text, 'api: native')}: workloads.batch.api: ",
        "expected openai: engine vllm has no native API here (sglang has)",
    )


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("model: org/model\n", "model: org/model\nlaunches: 0\n", "launches"),
        ("  - [cuda_graph]\n", "  - {features: [cuda_graph], launches: two}\n", "rows[0].launches"),
    ],
    ids=["top", "row"],
)
def test_launches_that_are_not_a_positive_count_name_the_key(tmp_path: Path, old: str, new: str, path: str) -> None:
    text = edit(old, new)
    line = line_with(text, "launches")
    assert_message(load_error(tmp_path, text), f"m.yaml:{line}: {path}: ", "expected an integer >= 1")


def test_launches_come_from_the_row_else_the_matrix_and_the_option_overrides_both(tmp_path: Path) -> None:
    text = edit("model: org/model\n", "model: org/model\nlaunches: 3\n")
    text = edit("  - [cuda_graph]\n", "  - {features: [cuda_graph], launches: 2}\n", text)
    matrix = load_matrix(write(tmp_path, text), "m.yaml")
    assert [r.launches for r in expand(matrix, None).rows] == [2, 3]
    assert [r.launches for r in expand(matrix, None, launches=5).rows] == [5, 5]
