from __future__ import annotations

import pytest

from pytest_sglang_ablate.redact import MASK, data, is_secret_name, secret_values, text


@pytest.mark.parametrize(
    "name",
    [
        "HF_TOKEN",
        "hf_token",
        "TOKEN",
        "GITHUB_TOKEN_RO",
        "OPENAI_API_KEY",
        "api-key",
        "api_key",
        "apikey",
        "AWS_SECRET_ACCESS_KEY",
        "client-secret",
        "DB_PASSWORD",
        "db-passwd",
        "MYPASSWORDFILE",
        "key",
    ],
)
def test_names_that_usually_hold_a_secret_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "tokenizer-path",
        "max-total-tokens",
        "skip-tokenizer-init",
        "KEYBOARD",
        "MONKEY_PATCH",
        "model-path",
        "CUDA_VISIBLE_DEVICES",
        "tp-size",
    ],
)
def test_ordinary_flag_and_env_names_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_a_name_the_matrix_lists_as_secret_is_secret_with_underscores_or_dashes() -> None:
    extra = frozenset({"my-private-url"})
    assert is_secret_name("MY_PRIVATE_URL", extra)
    assert is_secret_name("my-private-url", extra)
    assert not is_secret_name("MY_PUBLIC_URL", extra)


def test_secret_values_are_the_values_of_secret_names_only() -> None:
    pairs: list[tuple[str, object]] = [
        ("HF_TOKEN", "hf_abcdef123"),
        ("api-key", "sk-local-key"),
        ("model-path", "org/model"),
        ("CUDA_VISIBLE_DEVICES", "0,1"),
    ]
    assert secret_values(pairs) == {"hf_abcdef123", "sk-local-key"}


def test_secret_values_include_the_matrix_listed_names() -> None:
    pairs: list[tuple[str, object]] = [("PRIVATE_ENDPOINT", "https://internal.example"), ("tp-size", 8)]
    assert secret_values(pairs, frozenset({"private-endpoint"})) == {"https://internal.example"}


def test_bare_absent_and_empty_values_are_not_secrets() -> None:
    pairs: list[tuple[str, object]] = [("HF_TOKEN", ""), ("api-key", None), ("SECRET_FLAG", True), ("x-key", False)]
    assert secret_values(pairs) == set()


def test_a_non_text_secret_value_is_collected_as_text() -> None:
    assert secret_values([("API_KEY", 123456789)]) == {"123456789"}


def test_text_masks_every_occurrence_of_a_secret() -> None:
    masked = text("--api-key sk-abcd1234 and again sk-abcd1234.", {"sk-abcd1234"})
    assert masked == f"--api-key {MASK} and again {MASK}."


def test_text_leaves_secrets_shorter_than_four_characters_alone() -> None:
    # a 1-3 character "secret" would blank out unrelated text
    assert text("port 123 on host abc", {"123", "abc"}) == "port 123 on host abc"
    assert text("key=abcd", {"abcd"}) == f"key={MASK}"


def test_text_masks_the_longest_secret_first_so_no_part_of_it_is_left() -> None:
    # masking "secret" first would leave "***-suffix" with the suffix of the longer secret showing
    masked = text("token=secret-suffix other=secret", {"secret", "secret-suffix"})
    assert masked == f"token={MASK} other={MASK}"


def test_text_without_secrets_is_unchanged() -> None:
    assert text("nothing to hide", set()) == "nothing to hide"


def test_data_masks_strings_in_nested_dicts_lists_and_tuples() -> None:
    value = {
        "argv": ["--api-key", "sk-abcd1234", "--tp-size", "8"],
        "env": {"HF_TOKEN": "hf_zzzz9999", "nested": {"cmd": "curl -H 'Bearer sk-abcd1234'"}},
        "pair": ("hf_zzzz9999", 1),
    }
    assert data(value, {"sk-abcd1234", "hf_zzzz9999"}) == {
        "argv": ["--api-key", MASK, "--tp-size", "8"],
        "env": {"HF_TOKEN": MASK, "nested": {"cmd": f"curl -H 'Bearer {MASK}'"}},
        "pair": [MASK, 1],
    }


def test_data_keeps_numbers_booleans_and_none() -> None:
    value = {"tps": 41.5, "ok": True, "missing": None, "n": 3}
    assert data(value, {"41.5"}) == value


def test_data_returns_a_copy_and_leaves_the_original_alone() -> None:
    original = {"argv": ["--api-key", "sk-abcd1234"]}
    masked = data(original, {"sk-abcd1234"})
    assert masked == {"argv": ["--api-key", MASK]}
    assert original == {"argv": ["--api-key", "sk-abcd1234"]}
