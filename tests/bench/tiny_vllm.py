"""The tiny Qwen3-ASR checkpoint on the real vLLM engine, as both Qwen benchmarks use it
(run them with the vLLM venv: tests/qwen_vllm/setup_venv.sh)."""

from __future__ import annotations

import tempfile

from server.engine.base import Generator
from server.engine.qwen import WindowedConfig, build_qwen_engine
from tests.qwen import make_tiny_qwen3_asr

MAX_MODEL_LEN = 4096


async def load_tiny_vllm(max_new_tokens: int) -> tuple[Generator, WindowedConfig]:
    """A loaded vLLM generator on a fresh tiny checkpoint, and the windowed config that
    fits it. Fixed-length output (ignore_eos): random weights would stop at random."""
    model_dir = tempfile.mkdtemp(prefix="tiny_qwen3_asr_")
    make_tiny_qwen3_asr.main(model_dir)
    engine = build_qwen_engine(
        model_dir,
        "vllm",
        max_model_len=MAX_MODEL_LEN,
        dtype="float32",
        ignore_eos=True,
        vllm_kwargs={"enforce_eager": True, "max_num_seqs": 64, "seed": 0},
    )
    await engine.generator.load()
    config = WindowedConfig(max_new_tokens=max_new_tokens, tokens_per_sec=None)
    return engine.generator, config.fit_to_model_len(MAX_MODEL_LEN)
