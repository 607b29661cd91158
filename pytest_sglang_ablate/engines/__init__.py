"""Engine profiles: everything that differs between serving engines (flag names, endpoints, log lines, error
texts) lives in one profile per engine, used by every stage. `probe` asks the engine's own Python for its version
and whether it accepts each row's flags.
"""

from __future__ import annotations

from .base import EngineProfile
from .sglang import SGLANG
from .vllm import VLLM

PROFILES: dict[str, EngineProfile] = {SGLANG.name: SGLANG, VLLM.name: VLLM}


def get(name: str) -> EngineProfile:
    return PROFILES[name]


__all__ = ["PROFILES", "EngineProfile", "get"]
