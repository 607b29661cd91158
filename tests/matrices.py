"""Matrices the tests share."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

STANDIN = Path(__file__).parent / "standin_server.py"


def standin_matrix(body: str, env: str = "tok_rate=500") -> str:
    """A matrix whose servers are the scripted stand-in, started with STANDIN=`env`; `body` gives the features,
    rows, workloads and anything else."""
    head = f"""
model: tiny
launch: [{sys.executable}, {STANDIN}]
server: {{shutdown_grace: 1, startup_timeout: 20}}
env: {{STANDIN: "{env}"}}
"""
    return head + textwrap.dedent(body)


# A small matrix in the documented format: three features, three rows, one version-ranged known issue.
TINY = """\
name: tiny
model: some/model
launch: [python3, -m, sglang.launch_server]
args: {tp-size: 2}
features:
  cuda_graph:  {off: {disable-cuda-graph: true}}
  radix_cache: {off: {disable-radix-cache: true}}
  nextn:       {on: {speculative-algorithm: NEXTN, speculative-num-steps: 3}}
rows:
  - [cuda_graph, radix_cache]
  - [cuda_graph, radix_cache, nextn]
  - {features: [nextn], id: nextn-only, args: {mem-fraction-static: 0.7}, workloads: [single]}
known_issues:
  - {when: [nextn, radix_cache], reason: "spec decoding vs radix cache", sglang: "<0.4.4"}
workloads:
  single: {kind: single, prompt: "hi", expect: "x"}
  batch: {kind: batch, input_len: 8, output_len: 8, levels: [{concurrency: 2}, {concurrency: 4, requests: 8}]}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path
