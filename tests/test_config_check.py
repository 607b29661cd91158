from __future__ import annotations

import dataclasses
from typing import Any

from pytest_sglang_ablate import engines
from pytest_sglang_ablate.matrix.args import Args
from pytest_sglang_ablate.server.config_check import ConfigCheck, compare, info_key

SGLANG = engines.get("sglang")
VLLM = engines.get("vllm")


def check(requested: Args, info: dict[str, Any], profile: engines.EngineProfile = SGLANG) -> ConfigCheck:
    return compare(requested, info, profile)


def test_a_server_running_what_the_row_asked_for_has_no_differences() -> None:
    requested: Args = (("tp-size", 8), ("enable-dp-attention", True), ("attention-backend", "fa3"))
    info = {"tp_size": 8, "enable_dp_attention": True, "attention_backend": "fa3", "port": 30000}
    assert check(requested, info) == ConfigCheck([], [])


def test_a_flag_is_looked_up_under_its_name_with_underscores() -> None:
    assert info_key("mem-fraction-static", SGLANG) == "mem_fraction_static"
    assert check((("mem-fraction-static", 0.7),), {"mem_fraction_static": 0.5}).differences == [
        "mem_fraction_static: asked 0.7, server runs 0.5"
    ]


def test_a_silently_changed_setting_is_a_difference_naming_both_values() -> None:
    result = check((("enable-dp-attention", True), ("dp-size", 8)), {"enable_dp_attention": False, "dp_size": 8})
    assert result.differences == ["enable_dp_attention: asked True, server runs False"]
    assert result.unverified == []


def test_a_flag_the_server_does_not_report_is_unverified_not_a_difference() -> None:
    result = check((("tp-size", 8), ("enable-torch-compile", True)), {"tp_size": 8})
    assert result.unverified == ["enable-torch-compile"]
    assert result.differences == []


def test_settings_the_row_did_not_ask_for_are_not_judged() -> None:
    assert check((), {"tp_size": 8, "chunked_prefill_size": 4096}) == ConfigCheck([], [])


def test_every_difference_and_unverified_flag_is_listed_in_row_order() -> None:
    requested: Args = (("tp-size", 8), ("a-flag", "x"), ("dp-size", 4), ("b-flag", True))
    result = check(requested, {"tp_size": 4, "dp_size": 2})
    assert result.differences == ["tp_size: asked 8, server runs 4", "dp_size: asked 4, server runs 2"]
    assert result.unverified == ["a-flag", "b-flag"]


def test_a_bare_flag_is_confirmed_by_true_or_one() -> None:
    assert check((("enable-mixed-chunk", True),), {"enable_mixed_chunk": True}).differences == []
    assert check((("enable-mixed-chunk", True),), {"enable_mixed_chunk": 1}).differences == []


def test_a_bare_flag_the_server_reports_off_is_a_difference() -> None:
    assert check((("enable-mixed-chunk", True),), {"enable_mixed_chunk": False}).differences != []
    assert check((("enable-mixed-chunk", True),), {"enable_mixed_chunk": 0}).differences != []
    assert check((("enable-mixed-chunk", True),), {"enable_mixed_chunk": None}).differences != []


def test_numbers_compare_by_value_whatever_their_type() -> None:
    assert check((("tp-size", 8),), {"tp_size": 8.0}).differences == []
    assert check((("mem-fraction-static", 0.7),), {"mem_fraction_static": "0.7"}).differences == []
    assert check((("max-running-requests", 256),), {"max_running_requests": "256"}).differences == []


def test_a_different_number_is_a_difference() -> None:
    assert check((("tp-size", 8),), {"tp_size": 4}).differences == ["tp_size: asked 8, server runs 4"]


def test_a_number_the_server_reports_as_none_or_text_is_a_difference_not_an_error() -> None:
    assert check((("cuda-graph-max-bs", 160),), {"cuda_graph_max_bs": None}).differences == [
        "cuda_graph_max_bs: asked 160, server runs None"
    ]
    assert check((("cuda-graph-max-bs", 160),), {"cuda_graph_max_bs": "auto"}).differences != []


def test_text_values_compare_without_regard_to_case() -> None:
    assert check((("attention-backend", "FA3"),), {"attention_backend": "fa3"}).differences == []
    assert check((("attention-backend", "fa3"),), {"attention_backend": "flashinfer"}).differences == [
        "attention_backend: asked 'fa3', server runs 'flashinfer'"
    ]


def test_a_list_flag_matches_a_reported_list_of_the_same_values() -> None:
    requested: Args = (("cuda-graph-bs", ("1", "2", "4")),)
    assert check(requested, {"cuda_graph_bs": [1, 2, 4]}).differences == []
    assert check(requested, {"cuda_graph_bs": ("1", "2", "4")}).differences == []


def test_a_list_flag_with_other_values_order_or_length_is_a_difference() -> None:
    requested: Args = (("cuda-graph-bs", ("1", "2", "4")),)
    assert check(requested, {"cuda_graph_bs": [1, 2]}).differences != []
    assert check(requested, {"cuda_graph_bs": [4, 2, 1]}).differences != []
    assert check(requested, {"cuda_graph_bs": "1 2 4"}).differences != []


def test_a_one_value_flag_reported_as_a_one_element_list_is_the_same() -> None:
    # vLLM reports --served-model-name m as served_model_name: ['m']
    assert check((("served-model-name", "m"),), {"served_model_name": ["m"]}, VLLM).differences == []
    assert check((("max-num-seqs", 8),), {"max_num_seqs": [8]}, VLLM).differences == []
    assert check((("served-model-name", ("m",)),), {"served_model_name": ["m"]}, VLLM).differences == []


def test_a_one_element_list_with_another_value_is_still_a_difference() -> None:
    assert check((("served-model-name", "m"),), {"served_model_name": ["other"]}, VLLM).differences == [
        "served_model_name: asked 'm', server runs ['other']"
    ]


def test_sglang_reporting_nextn_as_eagle_is_no_difference() -> None:
    requested: Args = (("speculative-algorithm", "NEXTN"),)
    assert check(requested, {"speculative_algorithm": "EAGLE"}).differences == []
    assert check((("speculative-algorithm", "nextn"),), {"speculative_algorithm": "EAGLE"}).differences == []


def test_a_server_that_keeps_nextn_as_asked_is_no_difference() -> None:
    assert check((("speculative-algorithm", "NEXTN"),), {"speculative_algorithm": "NEXTN"}).differences == []


def test_the_nextn_rename_does_not_accept_any_other_algorithm() -> None:
    requested: Args = (("speculative-algorithm", "NEXTN"),)
    assert check(requested, {"speculative_algorithm": "EAGLE3"}).differences == [
        "speculative_algorithm: asked 'NEXTN', server runs 'EAGLE3'"
    ]


def test_renames_belong_to_their_engine_profile() -> None:
    requested: Args = (("speculative-algorithm", "NEXTN"),)
    assert check(requested, {"speculative_algorithm": "EAGLE"}, VLLM).differences == [
        "speculative_algorithm: asked 'NEXTN', server runs 'EAGLE'"
    ]


def test_a_profile_can_map_a_flag_to_a_differently_named_report_key() -> None:
    profile = dataclasses.replace(SGLANG, info_keys={"model-path": "model_name"})
    assert info_key("model-path", profile) == "model_name"
    assert info_key("tp-size", profile) == "tp_size"
    info = {"model_name": "org/model", "model_path": "/elsewhere"}
    assert check((("model-path", "org/model"),), info, profile).differences == []
    assert check((("model-path", "org/other"),), info, profile).differences == [
        "model_name: asked 'org/other', server runs 'org/model'"
    ]


def test_a_flag_whose_mapped_report_key_is_missing_is_unverified_under_the_flag_name() -> None:
    profile = dataclasses.replace(SGLANG, info_keys={"model-path": "model_name"})
    assert check((("model-path", "org/model"),), {"model_path": "org/model"}, profile).unverified == ["model-path"]
