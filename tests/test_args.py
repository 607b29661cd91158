from __future__ import annotations

from pytest_sglang_ablate.matrix.args import lookup, merge, normalize_key, to_argv


def test_true_is_a_bare_flag_and_false_or_none_is_nothing() -> None:
    assert to_argv((("trust-remote-code", True), ("disable-cuda-graph", False), ("x", None))) == ["--trust-remote-code"]


def test_values_follow_their_flag_and_lists_give_several_values() -> None:
    args = (("tp-size", 16), ("mem-fraction-static", 0.7), ("cuda-graph-bs", ("1", "2", "4")), ("model", "a b"))
    assert to_argv(args) == [
        "--tp-size",
        "16",
        "--mem-fraction-static",
        "0.7",
        "--cuda-graph-bs",
        "1",
        "2",
        "4",
        "--model",
        "a b",
    ]


def test_later_layers_win_and_false_removes_an_earlier_flag() -> None:
    base = (("tp-size", 16), ("enable-torch-compile", True))
    feature = (("tp-size", 8),)
    row = (("enable-torch-compile", False), ("mem-fraction-static", 0.7))
    assert merge(base, feature, row) == (("tp-size", 8), ("mem-fraction-static", 0.7))


def test_underscores_and_dashes_name_the_same_flag() -> None:
    assert normalize_key("--tp_size") == normalize_key("tp-size") == "tp-size"


def test_lookup_takes_the_first_alias_that_is_set() -> None:
    assert lookup((("tensor-parallel-size", 4),), "tp-size", "tensor-parallel-size") == 4
    assert lookup((), "tp-size", default=1) == 1
