from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_sglang_ablate.errors import MatrixError
from pytest_sglang_ablate.matrix.yamlsource import line_of, load

MATRIX = """\
# a matrix
name: tiny
engine: sglang

features:
  - name: dp-attn
    args: {enable-dp-attention: true}
  - name: compile
    args:
      enable-torch-compile: true
"""


def load_text(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "matrix.yaml"
    path.write_text(text, encoding="utf-8")
    return load(path, "matrices/matrix.yaml")


def load_error(tmp_path: Path, text: str) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        load_text(tmp_path, text)
    return info.value


def test_load_gives_the_plain_values_of_the_file(tmp_path: Path) -> None:
    assert load_text(tmp_path, MATRIX) == {
        "name": "tiny",
        "engine": "sglang",
        "features": [
            {"name": "dp-attn", "args": {"enable-dp-attention": True}},
            {"name": "compile", "args": {"enable-torch-compile": True}},
        ],
    }


def test_the_line_of_each_mapping_key_is_kept(tmp_path: Path) -> None:
    top = load_text(tmp_path, MATRIX)
    assert line_of(top, "name") == 2
    assert line_of(top, "engine") == 3
    assert line_of(top, "features") == 5


def test_the_line_of_each_list_item_is_kept(tmp_path: Path) -> None:
    features = load_text(tmp_path, MATRIX)["features"]
    assert line_of(features, 0) == 6
    assert line_of(features, 1) == 8


def test_lines_are_kept_in_nested_block_and_flow_mappings(tmp_path: Path) -> None:
    features = load_text(tmp_path, MATRIX)["features"]
    assert line_of(features[0], "args") == 7
    assert line_of(features[0]["args"], "enable-dp-attention") == 7
    assert line_of(features[1]["args"], "enable-torch-compile") == 10


def test_a_key_the_mapping_lacks_points_at_the_mapping_itself(tmp_path: Path) -> None:
    features = load_text(tmp_path, MATRIX)["features"]
    assert line_of(features[1], "description") == 8


def test_an_on_key_loads_as_true_as_yaml_1_1_says_and_keeps_its_line(tmp_path: Path) -> None:
    # the matrix parser accepts True for `on:` (and False for `off:`) because of this
    feature = load_text(tmp_path, "name: dp-attn\non: {enable-dp-attention: true}\noff: {dp-size: 1}\n")
    assert feature == {"name": "dp-attn", True: {"enable-dp-attention": True}, False: {"dp-size": 1}}
    assert line_of(feature, True) == 2
    assert line_of(feature, False) == 3


def test_an_item_the_list_lacks_points_at_the_list_itself(tmp_path: Path) -> None:
    top = load_text(tmp_path, "rows:\n  - a\n  - b\n")
    assert line_of(top["rows"], 5) == 2
    assert line_of(top["rows"], -1) == 2
    assert line_of(top["rows"], "a") == 2


def test_values_not_read_from_yaml_have_no_line() -> None:
    assert line_of({"a": 1}, "a") is None
    assert line_of([1], 0) is None


def test_lines_of_a_merged_mapping_point_at_where_each_key_was_written(tmp_path: Path) -> None:
    top = load_text(tmp_path, "base: &base\n  tp-size: 8\nrow:\n  <<: *base\n  dp-size: 2\n")
    assert top["row"] == {"tp-size": 8, "dp-size": 2}
    assert line_of(top["row"], "tp-size") == 2
    assert line_of(top["row"], "dp-size") == 5


def test_a_duplicate_key_names_its_line_and_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, "name: tiny\nengine: sglang\nname: other\n")
    assert (error.file, error.line, error.path) == ("matrices/matrix.yaml", 3, "name")
    assert "duplicate key" in str(error)
    assert str(error).startswith("matrices/matrix.yaml:3: name: ")


def test_a_nested_duplicate_key_names_the_whole_key_path(tmp_path: Path) -> None:
    error = load_error(tmp_path, "rows:\n  - id: a\n  - id: b\n    args:\n      tp-size: 8\n      tp-size: 4\n")
    assert (error.line, error.path) == (6, "rows[1].args.tp-size")


def test_a_duplicate_key_in_a_flow_mapping_is_found_too(tmp_path: Path) -> None:
    error = load_error(tmp_path, "features:\n  - args: {tp: 1, tp: 2}\n")
    assert (error.line, error.path) == (2, "features[0].args.tp")


def test_the_same_key_in_two_mappings_is_no_duplicate(tmp_path: Path) -> None:
    assert load_text(tmp_path, "a:\n  name: x\nb:\n  name: x\n") == {"a": {"name": "x"}, "b": {"name": "x"}}


def test_a_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "name: tiny\nengine: sglang: 0.5\n")
    assert error.line == 2
    assert "YAML syntax error" in error.message
    assert str(error).startswith("matrices/matrix.yaml:2: ")


def test_an_unclosed_bracket_points_at_the_line_that_opened_it(tmp_path: Path) -> None:
    error = load_error(tmp_path, "name: tiny\nlevels: [1, 2\nengine: sglang\n")
    assert error.line == 2
    assert "line 3" in error.message  # where the parser noticed


def test_a_missing_file_is_a_matrix_error_naming_the_path_as_typed(tmp_path: Path) -> None:
    with pytest.raises(MatrixError) as info:
        load(tmp_path / "nope.yaml", "nope.yaml")
    assert info.value.file == "nope.yaml"
    assert info.value.line is None
    assert "no such file" in info.value.message


def test_a_file_that_is_not_utf8_is_a_matrix_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(MatrixError, match="cannot read the file"):
        load(path, "latin1.yaml")


def test_an_empty_file_loads_as_none(tmp_path: Path) -> None:
    assert load_text(tmp_path, "") is None
    assert load_text(tmp_path, "# nothing here yet\n") is None


def test_two_documents_in_one_file_are_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, "name: a\n---\nname: b\n")
    assert "YAML syntax error" in error.message


def test_a_list_used_as_a_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "name: tiny\n? [tp, dp]\n: 8\n")
    assert error.line == 2
    assert "a key must be a name, not a list or mapping" in error.message


def test_a_mapping_used_as_a_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "name: tiny\n? {tp: 8}\n: 1\n")
    assert error.line == 2
    assert "not a list or mapping" in error.message
