"""Engine profiles: everything that differs between serving engines lives in one profile per engine."""

from __future__ import annotations

from .base import EngineProfile
from .sglang import SGLANG
from .vllm import VLLM

PROFILES: dict[str, EngineProfile] = {SGLANG.name: SGLANG, VLLM.name: VLLM}


def get(name: str) -> EngineProfile:
    return PROFILES[name]


__all__ = ["PROFILES", "EngineProfile", "get"]
