"""Qwen3-ASR's prompt and output format, written out: no torch, no tokenizer, no I/O.

The prompt is what the released model is prompted with (qwen-asr 0.0.6's
``_build_text_prompt``, byte for byte for the same context and language)::

    <|im_start|>system\\n{context}<|im_end|>\\n
    <|im_start|>user\\n<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\\n
    <|im_start|>assistant\\n[language {Lang}<asr_text>]

The system turn is always there (empty without context), as qwen-asr sends it; vLLM's own
transcription endpoint leaves it out when there is no context. The single ``<|audio_pad|>``
is expanded to one token per audio embedding by the model's processor (vLLM's or
transformers').

``context`` comes from clients: :func:`sanitize_context` removes anything that would become
a control token (``<|im_end|>``, ``<|audio_pad|>``...) or the ``<asr_text>`` delimiter, to a
fixpoint, as vLLM's transcription path does with its prompts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from server.engine.qwen.policy import ASR_TEXT_TAG, LANG_HEADER, collapse_repeats

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
AUDIO_PLACEHOLDER = "<|audio_start|><|audio_pad|><|audio_end|>"
#: ChatML-like control tokens (``<|im_end|>``, ``<|audio_pad|>``, ``<|endoftext|>``...).
CONTROL_TOKEN = re.compile(r"<\|[^|]*\|>")
#: qwen-asr's parser collapses a unit repeated this often (detect_and_fix_repetitions).
PARSE_REPEAT_MIN = 20


def sanitize_context(text: str, extra_tokens: Iterable[str] = ()) -> str:
    """``text`` without control tokens, ``<asr_text>`` and ``extra_tokens`` (a tokenizer's
    own added tokens), removed until nothing changes: one pass could leave a token behind
    (``<|im<|x|>_end|>`` → ``<|im_end|>``)."""
    extras = sorted({t for t in extra_tokens if t}, key=len, reverse=True)
    prev = None
    while prev != text:
        prev = text
        text = CONTROL_TOKEN.sub("", text).replace(ASR_TEXT_TAG, "")
        for token in extras:
            text = text.replace(token, "")
    return text


def build_prompt(context: str, language: str | None, extra_tokens: Iterable[str] = ()) -> str:
    """The prompt up to the assistant turn, plus the forced language header if any.

    ``language`` is a canonical Qwen3-ASR name (``English``) or None (detected)."""
    system = sanitize_context(context, extra_tokens)
    prompt = (
        f"{IM_START}system\n{system}{IM_END}\n"
        f"{IM_START}user\n{AUDIO_PLACEHOLDER}{IM_END}\n"
        f"{IM_START}assistant\n"
    )
    if language:
        prompt += f"{LANG_HEADER}{language}{ASR_TEXT_TAG}"
    return prompt


def parse_output(raw: str, forced_language: str | None) -> tuple[str, str]:
    """(language, transcript) of a complete raw output, read as qwen-asr's
    ``parse_asr_output`` reads it: a runaway repetition is collapsed; with a forced
    language all of the output is transcript; otherwise ``language X<asr_text>text``,
    where no tag means all text and ``language None`` means no language."""
    s = raw.strip()
    if not s:
        return "", ""
    s, _ = collapse_repeats(s, PARSE_REPEAT_MIN)
    if forced_language:
        return forced_language, s
    if ASR_TEXT_TAG not in s:
        return "", s
    meta, text = s.split(ASR_TEXT_TAG, 1)
    if "language none" in meta.lower():
        return "", text.strip()
    language = ""
    for line in meta.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.lower().startswith(LANG_HEADER.rstrip()):
            name = line[len(LANG_HEADER.rstrip()) :].strip()
            if name:
                language = name[:1].upper() + name[1:].lower()
            break
    return language, text.strip()
