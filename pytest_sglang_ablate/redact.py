"""Keep secrets out of everything we save: benchmark JSON, results, reports, copied logs, the terminal."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# HF_TOKEN, *_TOKEN, *_KEY, api-key, *PASSWORD*, *SECRET*: names that usually hold a secret
SECRET_NAME = re.compile(
    r"(^|[_-])(TOKEN|KEY|PASSWORD|PASSWD|SECRET)([_-]|$)|PASSWORD|SECRET|API[_-]?KEY", re.IGNORECASE
)


def is_secret_name(name: str, extra: frozenset[str] = frozenset()) -> bool:
    return bool(SECRET_NAME.search(name)) or name.lower().replace("_", "-") in extra


def secret_values(pairs: list[tuple[str, Any]], extra: frozenset[str] = frozenset()) -> set[str]:
    """The values of env vars or flags whose names look secret (or are named in the matrix's `secrets`)."""
    return {str(v) for k, v in pairs if v not in (None, True, False, "") and is_secret_name(k, extra)}


def text(value: str, secrets: set[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        if len(s) >= 4:  # a 1-3 character "secret" would blank out unrelated text
            value = value.replace(s, MASK)
    return value


def data(value: Any, secrets: set[str]) -> Any:
    """A copy of JSON-like data with every secret string masked, wherever it appears."""
    if isinstance(value, str):
        return text(value, secrets)
    if isinstance(value, dict):
        return {k: data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [data(v, secrets) for v in value]
    return value
