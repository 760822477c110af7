"""The model's text side for both backends: our prompt format and parser
(:mod:`server.engine.qwen.prompt`) with the checkpoint's own tokenizer, behind the policy's
:class:`~server.engine.qwen.policy.ModelText` interface. No qwen-asr code.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

from server.engine.qwen.prompt import build_prompt, parse_output

logger = logging.getLogger(__name__)


class _LockedTokenizer:
    """A Hugging Face fast tokenizer shared by threads (event loop, generator thread,
    article-policy threads). Its Rust core refuses concurrent use ("Already borrowed"),
    so every call goes through one lock; attributes pass through."""

    def __init__(self, tokenizer: Any) -> None:
        object.__setattr__(self, "_tok", tokenizer)
        object.__setattr__(self, "_lock", threading.RLock())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._tok, name)
        if not callable(attr):
            return attr
        lock = self._lock

        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return attr(*args, **kwargs)

        return locked

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._tok, name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._tok(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._tok)


def load_tokenizer(model_path: str) -> Any:
    """The checkpoint's tokenizer through transformers (what vLLM tokenizes with)."""
    # Imported by name: mypy following transformers' sources crashes (huggingface_hub).
    transformers = importlib.import_module("transformers")
    return transformers.AutoTokenizer.from_pretrained(model_path)


class QwenModelText:
    """Prompt building, tokenisation and output parsing for Qwen3-ASR.

    ``tokenizer``: the checkpoint's Hugging Face tokenizer. ``processor``: the transformers
    backend's processor (features + tokenizer; the article policy drives it), or None.
    """

    def __init__(self, tokenizer: Any, processor: Any = None) -> None:
        if not isinstance(tokenizer, _LockedTokenizer):
            tokenizer = _LockedTokenizer(tokenizer)
        if processor is not None:
            processor.tokenizer = tokenizer
        self.processor = processor
        self.tokenizer = tokenizer
        # Every added token of the checkpoint (<|im_end|>, <|audio_pad|>, <asr_text>, and
        # whatever else a real vocabulary adds) is stripped from client context.
        added = tokenizer.get_added_vocab() if hasattr(tokenizer, "get_added_vocab") else {}
        self.added_tokens: tuple[str, ...] = tuple(sorted(added))
        self._prompts: dict[tuple[str, str | None], str] = {}

    def build_prompt(self, context: str, language: str | None) -> str:
        """Chat-template prompt up to the assistant turn (plus the forced language header),
        with ``context`` sanitised."""
        key = (context, language)
        prompt = self._prompts.get(key)
        if prompt is None:
            prompt = build_prompt(context, language, self.added_tokens)
            if len(self._prompts) < 1024:
                self._prompts[key] = prompt
        return prompt

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids)))

    def parse(self, raw: str, forced_language: str | None) -> tuple[str, str]:
        return parse_output(raw, forced_language)
