"""Qwen3-ASR engine: our prompts and parser, on vLLM's native model (production) or on
transformers (qwen-asr's model class).

Nothing heavy happens at import: torch, transformers, vllm and qwen_asr are imported when a
generator loads, and :func:`build_qwen_engine` only resolves paths and picks a backend.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib.util
import logging
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from server.engine.base import Engine, Generator
from server.engine.qwen.errors import (
    GenerationError,
    KVCacheError,
    ModelLoadError,
    ModelNotFoundError,
    QwenEngineError,
    UnsupportedOptionError,
    resolve_model_path,
)
from server.engine.qwen.policy import WindowedConfig

logger = logging.getLogger(__name__)

__all__ = [
    "Backend",
    "GenerationError",
    "KVCacheError",
    "ModelLoadError",
    "ModelNotFoundError",
    "Policy",
    "QwenEngineError",
    "UnsupportedOptionError",
    "WindowedConfig",
    "build_qwen_engine",
    "choose_backend",
    "resolve_model_path",
]


class Backend(str, enum.Enum):
    """Which library runs the model (``--backend``)."""

    #: vLLM when it is installed and a GPU is there, else transformers.
    AUTO = "auto"
    #: vLLM's native model: continuous batching, the production backend (GPU).
    VLLM = "vllm"
    #: qwen-asr's model class on transformers: CPU or any GPU, micro-batches.
    TRANSFORMERS = "transformers"


class Policy(str, enum.Enum):
    """How an utterance is streamed (``--policy``)."""

    #: Ours: partials over a sliding audio window, a full-utterance final.
    WINDOWED = "windowed"
    #: qwen-asr's own streaming, for comparison (transformers only).
    ARTICLE = "article"


_Choice = TypeVar("_Choice", Backend, Policy)


def _choice(kind: type[_Choice], value: _Choice | str, what: str) -> _Choice:
    """``value`` as a member of ``kind`` (callers such as benchmarks pass plain text)."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ValueError(f"unknown {what} {value!r}; choose one of {choices}") from None


#: vLLM's context length unless ``--max-model-len`` says otherwise (Qwen3-ASR's own is far
#: longer and makes vLLM reserve more KV cache than most GPUs have).
DEFAULT_MAX_MODEL_LEN = 4096
#: Share of GPU memory vLLM may take unless ``--gpu-memory-utilization`` says otherwise.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.8
#: vLLM renderer threads (tokenising, audio features) unless ``--renderer-threads`` says
#: otherwise: vLLM's own is 1; a second raised renders per second 1.2x on a 2-core machine
#: (docs/benchmarks.md), and at ~2 renders per second per stream that bounds the streams
#: one server can feed.
DEFAULT_RENDERER_THREADS = 2
#: Requests per call of the transformers backend, by device, unless ``--max-batch-size``
#: says otherwise.
GPU_MAX_BATCH_SIZE = 16
CPU_MAX_BATCH_SIZE = 8


def _vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _gpu_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def choose_backend(backend: Backend | str, device: str | None = None) -> Backend:
    """``auto``: vLLM when it is installed and a GPU is there, else transformers."""
    backend = _choice(Backend, backend, "backend")
    if backend is not Backend.AUTO:
        if backend is Backend.VLLM and not _vllm_installed():
            raise ModelLoadError(
                "backend 'vllm' requested but vllm is not installed: "
                "pip install 'tingxie[vllm]' (Linux/WSL2 with a GPU), "
                "or use --backend transformers"
            )
        return backend
    if device is not None and device.startswith("cpu"):
        why = f"device={device}"
    elif not _vllm_installed():
        why = "vllm is not installed"
    elif not _gpu_available():
        why = "no CUDA GPU is available"
    else:
        return Backend.VLLM
    logger.warning(
        "backend auto: using transformers because %s; it is slower than vLLM "
        "(no continuous batching)",
        why,
    )
    return Backend.TRANSFORMERS


def build_qwen_engine(
    model: str,
    backend: Backend | str = Backend.AUTO,
    policy: Policy | str = Policy.WINDOWED,
    *,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    device: str | None = None,
    dtype: str = "auto",
    max_batch_size: int | None = None,
    windowed: WindowedConfig | None = None,
    article: Mapping[str, Any] | None = None,
    ignore_eos: bool = False,
    vllm_kwargs: Mapping[str, Any] | None = None,
    transformers_only: Collection[str] = (),
) -> Engine:
    """A Qwen3-ASR engine, not yet loaded: the server awaits ``engine.generator.load()``.

    model: local model directory (made absolute and checked here) or a hub id.
    backend, policy: members, or their values as text (``"vllm"``).
    max_model_len / gpu_memory_utilization: vLLM's; the windowed policy also keeps every
    request within max_model_len. device/dtype/max_batch_size: transformers (device, dtype)
    and both (batch). windowed: the windowed policy's settings. article: keyword arguments
    of qwen-asr's ``init_streaming_state`` plus ``max_new_tokens`` (article: 32).
    ignore_eos: decode exactly max_new_tokens (tests and benchmarks with random weights).
    vllm_kwargs: extra vLLM engine arguments (``max_num_seqs``, ``data_parallel_size``,
    ``enforce_eager``...), passed through to vLLM unchanged.
    transformers_only: options the caller was given that only the transformers backend
    honours (e.g. ``--max-batch-size``); when the backend is vLLM they are refused with
    :class:`UnsupportedOptionError` rather than silently ignored.
    """
    policy = _choice(Policy, policy, "policy")
    path = resolve_model_path(model)
    chosen = choose_backend(backend, device)
    if chosen is Backend.VLLM and transformers_only:
        raise UnsupportedOptionError(
            f"{', '.join(sorted(transformers_only))}: only the transformers backend uses "
            "this; vLLM schedules requests itself (continuous batching, finals first). "
            "On vLLM use --max-num-seqs and --max-partials-in-flight instead, or drop it"
        )
    if chosen is Backend.VLLM and policy is Policy.ARTICLE:
        raise UnsupportedOptionError(
            "--policy article runs qwen-asr's own streaming, which needs qwen-asr's processor "
            "and transformers 4.57; it cannot run beside current vLLM: use --backend transformers"
        )
    generator: Generator
    if chosen is Backend.VLLM:
        from server.engine.qwen.vllm_generator import VLLMGenerator

        generator = VLLMGenerator(
            path,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            ignore_eos=ignore_eos,
            engine_kwargs=dict(vllm_kwargs or {}),
        )
    else:
        from server.engine.qwen.hf_generator import TransformersGenerator

        generator = TransformersGenerator(
            path, device=device, dtype=dtype, max_batch_size=max_batch_size, ignore_eos=ignore_eos
        )
    if policy is Policy.ARTICLE:
        from server.engine.qwen.article import ArticleConfig, ArticleEngine

        return ArticleEngine(generator, ArticleConfig(**dict(article or {})))
    from server.engine.qwen.windowed import WindowedEngine

    wanted = windowed or WindowedConfig()
    cfg = wanted.fit_to_model_len(max_model_len)
    shrunk = [
        f"{f.name} {getattr(wanted, f.name):g} -> {getattr(cfg, f.name):g} s"
        for f in dataclasses.fields(cfg)
        if getattr(cfg, f.name) != getattr(wanted, f.name)
    ]
    if shrunk:
        logger.warning(
            "windowed policy: audio windows shrunk to fit --max-model-len %d: %s",
            max_model_len,
            ", ".join(shrunk),
        )
    logger.info(
        "Qwen3-ASR engine: backend=%s policy=%s model=%s (partial window <= %.0f s, "
        "full-utterance final <= %.0f s)",
        chosen.value,
        policy.value,
        path,
        cfg.segment_max_sec,
        cfg.final_full_max_sec,
    )
    return WindowedEngine(generator, cfg)
