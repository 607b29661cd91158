"""pytest-sglang-ablate: SGLang server-flag ablations as pytest cases."""

from __future__ import annotations

__version__ = "0.1.0"
