"""Errors of the Qwen3-ASR engine, worded for the operator (and safe to show clients)."""

from __future__ import annotations

import os
import re
from pathlib import Path


class QwenEngineError(RuntimeError):
    """Base class: something the operator must fix or know about."""


class ModelNotFoundError(QwenEngineError, FileNotFoundError):
    """A local model path that does not exist or is not a model directory."""


class ModelLoadError(QwenEngineError):
    """The model exists but could not be loaded."""


class KVCacheError(ModelLoadError):
    """vLLM could not fit the KV cache for ``max_model_len`` into the memory it may use."""


class UnsupportedOptionError(QwenEngineError, ValueError):
    """An option the chosen backend does not honour was set (refused, not ignored)."""


class GenerationError(QwenEngineError):
    """The model failed while decoding a batch."""


# A hub id is "org/name" with no other separators; anything else path-like is local.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def resolve_model_path(model: str) -> str:
    """An existing local model directory as an absolute path, or a hub id unchanged.

    vLLM rejects relative paths such as ``../models/x`` (it validates them as repo ids), so
    every local path is made absolute. A path that does not exist raises
    :class:`ModelNotFoundError` naming the absolute path, instead of a hub download attempt.
    """
    if not model or not model.strip():
        raise ModelNotFoundError("no model given: pass a local model directory or a hub id")
    expanded = os.path.expanduser(model.strip())
    path = Path(expanded)
    if path.exists():
        resolved = path.resolve()
        if not resolved.is_dir():
            raise ModelNotFoundError(f"model path is not a directory: {resolved}")
        if not (resolved / "config.json").is_file():
            raise ModelNotFoundError(
                f"model directory has no config.json (not a Hugging Face model?): {resolved}"
            )
        return str(resolved)
    looks_local = (
        expanded != model.strip()  # had a ~
        or expanded.startswith((".", "/", "\\"))
        or re.match(r"^[A-Za-z]:[\\/]", expanded) is not None
        or "\\" in expanded
        or _HUB_ID.match(expanded) is None
    )
    if looks_local:
        raise ModelNotFoundError(f"model path does not exist: {os.path.abspath(expanded)}")
    return expanded


_KV_PATTERNS = (
    "kv cache",
    "cache blocks",
    "to serve at least one request",
    "max seq len",
    "no available memory",
    "out of memory",
    "cuda error: out of memory",
    "insufficient memory",
)


def is_memory_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(p in text for p in _KV_PATTERNS) or type(exc).__name__ == "OutOfMemoryError"


def kv_cache_message(
    exc: BaseException, *, model: str, max_model_len: int, gpu_memory_utilization: float
) -> str:
    return (
        f"vLLM could not allocate the KV cache for {model} "
        f"(max_model_len={max_model_len}, gpu_memory_utilization={gpu_memory_utilization}): "
        f"lower --max-model-len (e.g. {max(512, max_model_len // 2)}) or raise "
        f"--gpu-memory-utilization (at most 0.95), or free GPU memory used by other "
        f"processes. vLLM said: {exc}"
    )
