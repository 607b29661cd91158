#!/usr/bin/env bash
# SGLang's own argument parser, without its GPU dependencies: for checking matrix flags, not for serving.
#   bash scripts/sglang-parser.sh VERSION VENV      e.g.  bash scripts/sglang-parser.sh 0.5.23 .venv-sglang-0.5.23
# About 1.5 minutes and 1.3 GB. torch 2.13.0 is the CPU build on disk; sglang comes without its dependencies
# (sglang-kernel, flashinfer, ... are CUDA-only), plus what importing sglang.srt.server_args needs. triton is
# not installed: the plugin's probe serves dummy triton modules for the import (engines/sglang.py).
set -euo pipefail
version=$1
venv=$2
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('sglang') != '$version')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q --no-deps "sglang==$version"
deps=(numpy orjson psutil pybase64 requests packaging pillow starlette msgspec pyzmq tqdm ipython pydantic aiohttp
      huggingface_hub fastapi uvloop)
case "$version" in
  0.4.*) deps+=("transformers==4.48.3") ;;  # 0.4.x's server_args imports hf_transformers_utils
esac
"$venv/bin/pip" install -q "${deps[@]}"
echo "SGLang $version parser ready: $venv"
