"""Fixtures for the Qwen3-ASR engine tests: a tiny random checkpoint built at test time
(tests/qwen/make_tiny_qwen3_asr.py) and qwen-asr's real transformers backend on CPU."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

needs_qwen_asr = pytest.mark.skipif(
    importlib.util.find_spec("qwen_asr") is None,
    reason="qwen-asr not installed (pip install 'qwen-asr==0.0.6')",
)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("qwen_asr") is None:
        pytest.skip("qwen-asr not installed")
    # Imported here: the builder needs torch and transformers, which the pure tests in
    # this folder do not (importing them at collection cost every run seconds).
    from tests.qwen import make_tiny_qwen3_asr

    out = tmp_path_factory.mktemp("tiny_qwen3_asr")
    make_tiny_qwen3_asr.main(str(out))
    return out


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch on one thread in this thread (and in threads that first use torch meanwhile).

    The tiny model gains nothing from more, and on a shared 2-core box a second thread
    waiting for a busy core made model calls slow and erratic: the same five calls took
    0.31-0.32 s on one thread and 0.40-2.65 s on two, over three runs side by side. The
    setting is per thread once a thread has used torch, so the generator's own thread
    keeps it; this thread gets its setting back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def loaded_hf_generator(tiny_model_dir: Path) -> Iterator[object]:
    """One loaded transformers generator (ignore_eos: fixed-length garbage) per session."""
    from server.engine.qwen.hf_generator import TransformersGenerator

    gen = TransformersGenerator(str(tiny_model_dir), device="cpu", ignore_eos=True)
    with one_torch_thread():  # the generator's thread first uses torch while loading
        asyncio.run(gen.load())
    yield gen
    asyncio.run(gen.close())


@pytest.fixture
def hf_generator(loaded_hf_generator: object) -> Iterator[object]:
    """The session's generator; torch calls a test makes itself run on one thread too."""
    with one_torch_thread():
        yield loaded_hf_generator
