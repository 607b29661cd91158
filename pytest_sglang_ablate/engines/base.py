"""What an engine profile tells the rest of the plugin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..args import Args


@dataclass(frozen=True)
class EngineProfile:
    name: str
    # the argv prefix that starts a server when the matrix has no `launch:`
    default_launch: Callable[[], list[str]]
    # the flag that names the model, e.g. --model-path
    model_flag: str
    # how many GPUs a server with these args needs, in words ("16 (2 nodes x 8)")
    gpus_needed: Callable[[Args], str]
    # the Python interpreter that can import the engine for this launch prefix, if the prefix says
    probe_python: Callable[[list[str]], str | None]
    # a Python program run by probe_python: reads JSON [{"id", "argv"}] on stdin, prints
    # {"importable", "version", "error", "results": {id: None | message}}
    probe_source: str
