"""Compare what a row asked for with the config the server reports it is running."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engines import EngineProfile
from ..matrix.args import Args


@dataclass(frozen=True)
class ConfigCheck:
    differences: list[str] = field(default_factory=list)  # "enable_dp_attention: asked True, server runs False"
    unverified: list[str] = field(default_factory=list)  # flags the server's report does not mention


def info_key(flag: str, profile: EngineProfile) -> str:
    return profile.info_keys.get(flag, flag.replace("-", "_"))


def _same(asked: Any, actual: Any, key: str, profile: EngineProfile) -> bool:
    if isinstance(actual, (list, tuple)) and len(actual) == 1 and not isinstance(asked, tuple):
        actual = actual[0]  # a one-value list flag (vLLM's served_model_name) reported as a list
    if asked is True:
        return actual is True or actual == 1
    if isinstance(asked, (int, float)) and not isinstance(asked, bool):
        try:
            return float(actual) == float(asked)
        except (TypeError, ValueError):
            return False
    if isinstance(asked, tuple):
        return isinstance(actual, (list, tuple)) and [str(a) for a in actual] == list(asked)
    # the value asked for, or the engine's own name for it (SGLang runs NEXTN as EAGLE; older ones keep NEXTN)
    accepted = {str(asked).lower(), profile.renames.get((key, str(asked).upper()), str(asked)).lower()}
    return str(actual).lower() in accepted


def compare(requested: Args, info: dict[str, Any], profile: EngineProfile) -> ConfigCheck:
    """Only what the row asked for is judged; everything else the server reports is recorded, not judged."""
    check = ConfigCheck()
    for flag, asked in requested:
        key = info_key(flag, profile)
        if key not in info:
            check.unverified.append(flag)
        elif not _same(asked, info[key], key, profile):
            check.differences.append(f"{key}: asked {asked!r}, server runs {info[key]!r}")
    return check
