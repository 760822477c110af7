"""qwen-asr's own prompt format, tokenizer and output parser behind the policy's
:class:`~server.engine.qwen.policy.ModelText` interface.

qwen_asr (and with it torch/transformers) is imported only when one is built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)


def load_processor(model_path: str) -> Any:
    """qwen-asr's Qwen3ASRProcessor for a model (tokenizer, chat template, features)."""
    from qwen_asr.core.transformers_backend import Qwen3ASRProcessor  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return Qwen3ASRProcessor.from_pretrained(model_path, fix_mistral_regex=True)


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


class QwenModelText:
    """Prompt building, tokenisation and parsing exactly as qwen-asr 0.0.6 does them."""

    def __init__(self, processor: Any) -> None:
        from qwen_asr import Qwen3ASRModel  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from qwen_asr.inference.utils import parse_asr_output  # type: ignore[import-untyped,import-not-found,unused-ignore]

        if not isinstance(processor.tokenizer, _LockedTokenizer):
            processor.tokenizer = _LockedTokenizer(processor.tokenizer)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self._parse = parse_asr_output
        # A backend-less Qwen3ASRModel is only used for its prompt builder, so our prompts
        # are byte-identical to what qwen-asr's transcribe/streaming send.
        self._asr = Qwen3ASRModel(backend="vllm", model=None, processor=processor)
        self._prompts: dict[tuple[str, str | None], str] = {}

    def build_prompt(self, context: str, language: str | None) -> str:
        """Chat-template prompt up to the assistant turn (plus the forced language header)."""
        key = (context, language)
        prompt = self._prompts.get(key)
        if prompt is None:
            prompt = str(self._asr._build_text_prompt(context=context, force_language=language))
            if len(self._prompts) < 1024:
                self._prompts[key] = prompt
        return prompt

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids)))

    def parse(self, raw: str, forced_language: str | None) -> tuple[str, str]:
        lang, text = self._parse(raw, user_language=forced_language)
        return str(lang), str(text)
