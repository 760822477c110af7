"""Fixtures for the Qwen3-ASR engine tests: a tiny random checkpoint built at test time
(tests/qwen/make_tiny_qwen3_asr.py) and qwen-asr's real transformers backend on CPU."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.qwen import make_tiny_qwen3_asr

needs_qwen_asr = pytest.mark.skipif(
    importlib.util.find_spec("qwen_asr") is None,
    reason="qwen-asr not installed (pip install 'qwen-asr==0.0.6')",
)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("qwen_asr") is None:
        pytest.skip("qwen-asr not installed")
    out = tmp_path_factory.mktemp("tiny_qwen3_asr")
    make_tiny_qwen3_asr.main(str(out))
    return out


@pytest.fixture(scope="session")
def hf_generator(tiny_model_dir: Path) -> Iterator[object]:
    """One loaded transformers generator (ignore_eos: fixed-length garbage) per session."""
    from server.engine.qwen.hf_generator import TransformersGenerator

    gen = TransformersGenerator(str(tiny_model_dir), device="cpu", ignore_eos=True)
    asyncio.run(gen.load())
    yield gen
    asyncio.run(gen.close())
