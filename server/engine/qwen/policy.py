"""Pure pieces of the Qwen3-ASR streaming policy: no torch, no model, no I/O.

Text side: Qwen3-ASR's assistant turn is ``language <Name><asr_text><transcript>`` (or just
``<transcript>`` when the language is forced in the prompt). The engine works on that *raw*
text: a forced prefix is raw text, and rollback happens on the tokens of raw text, exactly
as qwen-asr's own streaming does it, so our prompts match qwen-asr's for the same audio.

Audio side: energy helpers used for the no-speech gate and for choosing cut points (pauses)
when a segment grows too long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000
ASR_TEXT_TAG = "<asr_text>"
LANG_HEADER = "language "
#: 1 s of 16 kHz audio becomes 13 audio tokens in Qwen3-ASR's prompt (100 mel frames → 13).
AUDIO_TOKENS_PER_SEC = 13.0
#: Chat template, system/user wrappers and the language header, rounded up.
PROMPT_OVERHEAD_TOKENS = 64

FloatArray = npt.NDArray[np.float32]

# Qwen3-ASR's language names (qwen_asr.inference.utils.SUPPORTED_LANGUAGES, 0.0.6) and the
# ISO 639 codes clients are likely to send instead.
SUPPORTED_LANGUAGES: tuple[str, ...] = (
    "Chinese", "English", "Cantonese", "Arabic", "German", "French", "Spanish", "Portuguese",
    "Indonesian", "Italian", "Korean", "Russian", "Thai", "Vietnamese", "Japanese", "Turkish",
    "Hindi", "Malay", "Dutch", "Swedish", "Danish", "Finnish", "Polish", "Czech", "Filipino",
    "Persian", "Greek", "Romanian", "Hungarian", "Macedonian",
)  # fmt: skip
_ISO_CODES: dict[str, str] = {
    "zh": "Chinese", "cmn": "Chinese", "en": "English", "yue": "Cantonese", "ar": "Arabic",
    "de": "German", "fr": "French", "es": "Spanish", "pt": "Portuguese", "id": "Indonesian",
    "it": "Italian", "ko": "Korean", "ru": "Russian", "th": "Thai", "vi": "Vietnamese",
    "ja": "Japanese", "tr": "Turkish", "hi": "Hindi", "ms": "Malay", "nl": "Dutch",
    "sv": "Swedish", "da": "Danish", "fi": "Finnish", "pl": "Polish", "cs": "Czech",
    "fil": "Filipino", "tl": "Filipino", "fa": "Persian", "el": "Greek", "ro": "Romanian",
    "hu": "Hungarian", "mk": "Macedonian",
}  # fmt: skip


def normalize_language(language: str | None) -> str | None:
    """Canonical Qwen3-ASR language name, or None for auto-detection.

    Accepts names in any case ("english") and ISO codes ("en", "zh-CN", "auto").
    Raises ValueError naming the supported languages otherwise.
    """
    if language is None:
        return None
    s = language.strip()
    if not s or s.lower() in ("auto", "none"):
        return None
    name = s[:1].upper() + s[1:].lower()
    if name in SUPPORTED_LANGUAGES:
        return name
    code = s.lower().replace("_", "-").split("-", 1)[0]
    if code in _ISO_CODES:
        return _ISO_CODES[code]
    raise ValueError(
        f"unsupported language {language!r}; use 'auto' or one of: {', '.join(SUPPORTED_LANGUAGES)}"
    )


class ModelText(Protocol):
    """The model's text side as the policy needs it (the real one wraps qwen-asr's
    processor; tests use a byte-level fake)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def parse(self, raw: str, forced_language: str | None) -> tuple[str, str]:
        """(language, transcript) of a complete raw output; qwen-asr's parser in
        production (it also collapses runaway repetitions)."""
        ...


# ---------------------------------------------------------------------------------------
# text


def rollback_prefix(text: ModelText, raw: str, rollback_tokens: int) -> str:
    """``raw`` minus its last ``rollback_tokens`` tokens, rolled back further while the
    result holds a broken multi-byte character (decoded as U+FFFD) — the same rule as
    qwen-asr's ``streaming_transcribe``."""
    if not raw:
        return ""
    ids = text.encode(raw)
    k = max(0, rollback_tokens)
    while True:
        end = len(ids) - k
        if end <= 0:
            return ""
        prefix = text.decode(ids[:end])
        if "\ufffd" not in prefix:
            return prefix
        k += 1


def transcript_of(raw: str, forced_language: str | None) -> str:
    """The transcript part of a (possibly incomplete) raw output, without normalisation.

    Monotone: if ``raw`` is a prefix of ``raw2`` then ``transcript_of(raw)`` is a prefix of
    ``transcript_of(raw2)`` (for well-formed outputs), which is what stable text needs.
    """
    if forced_language is not None:
        return raw.lstrip()
    if ASR_TEXT_TAG in raw:
        meta, rest = raw.split(ASR_TEXT_TAG, 1)
        if "language none" in meta.lower() and not rest.strip():
            return ""
        return rest.lstrip()
    s = raw.lstrip()
    # A header still being written ("langu", "language Eng") is not transcript.
    if s.startswith(LANG_HEADER.rstrip()) or LANG_HEADER.startswith(s):
        return ""
    return s


def raw_language(raw: str) -> str | None:
    """The language named by a raw output's header, if complete."""
    if ASR_TEXT_TAG not in raw:
        return None
    meta = raw.split(ASR_TEXT_TAG, 1)[0].strip()
    if not meta.lower().startswith(LANG_HEADER.rstrip()):
        return None
    name = meta[len(LANG_HEADER.rstrip()) :].strip()
    if not name or name.lower() == "none":
        return None
    return name[:1].upper() + name[1:].lower()


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x3000 <= o <= 0x9FFF  # CJK punctuation, kana, unified ideographs
        or 0xAC00 <= o <= 0xD7AF  # hangul
        or 0xF900 <= o <= 0xFAFF
        or 0xFF00 <= o <= 0xFFEF  # full-width forms
        or 0x20000 <= o <= 0x2FFFF
    )


def join_text(a: str, b: str) -> str:
    """Join transcripts of consecutive audio pieces: a space between words of spaced
    scripts, nothing next to CJK."""
    if not a:
        return b
    if not b:
        return a
    if a[-1].isspace() or b[0].isspace() or _is_cjk(a[-1]) or _is_cjk(b[0]):
        return a + b
    return a + " " + b


def collapse_repeats(text: str, min_repeats: int = 4, max_unit: int = 24) -> tuple[str, bool]:
    """Repetition guard for generated text: cut a runaway loop (a unit of 1..max_unit
    characters repeated at least ``min_repeats`` times back to back, or a single character
    repeated ``3 * min_repeats`` times) after its first occurrence.

    Returns (text, looped). Only the first loop matters: everything after it is garbage.
    """
    n = len(text)
    for i in range(n):
        for unit in range(1, max_unit + 1):
            reps = min_repeats * 3 if unit == 1 else min_repeats
            if i + unit * reps > n:
                if unit == 1:  # single characters need more repeats than longer units
                    continue
                break
            pat = text[i : i + unit]
            if pat.isspace():
                continue
            if all(text[i + r * unit : i + (r + 1) * unit] == pat for r in range(1, reps)):
                return text[: i + unit], True
    return text, False


# ---------------------------------------------------------------------------------------
# audio


def frame_rms(samples: FloatArray, frame: int = 320) -> FloatArray:
    """RMS per ``frame`` samples (20 ms at 16 kHz); the tail shorter than a frame counts
    as a frame of its own."""
    n = samples.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    nf = (n + frame - 1) // frame
    padded = np.zeros(nf * frame, dtype=np.float32)
    padded[:n] = samples
    sq = (padded.reshape(nf, frame).astype(np.float64)) ** 2
    lengths = np.full(nf, frame, dtype=np.float64)
    lengths[-1] = n - (nf - 1) * frame
    out: FloatArray = np.sqrt(sq.sum(axis=1) / lengths).astype(np.float32)
    return out


def speech_seconds(samples: FloatArray, silence_rms: float, frame: int = 320) -> float:
    """Seconds of audio whose 20 ms RMS is above ``silence_rms``."""
    rms = frame_rms(samples, frame)
    return float(np.count_nonzero(rms > silence_rms)) * frame / SAMPLE_RATE


def find_cut(
    samples: FloatArray,
    lo: int,
    hi: int,
    *,
    pause_sec: float,
    pause_rms: float,
    require_pause: bool,
    frame: int = 320,
) -> int | None:
    """A sample index in [lo, hi) to cut the audio at.

    Prefers the middle of the longest run of quiet frames (RMS <= pause_rms) that lasts at
    least ``pause_sec``; without one, returns None if ``require_pause`` else the quietest
    100 ms stretch (so a forced cut at least avoids the loudest part of a word).
    """
    lo = max(0, lo)
    hi = min(samples.shape[0], hi)
    if hi - lo < frame:
        return None if require_pause or hi <= lo else (lo + hi) // 2
    rms = frame_rms(samples[lo:hi], frame)
    quiet = rms <= pause_rms
    best_len, best_start, run_start = 0, 0, -1
    for i, q in enumerate([*quiet.tolist(), False]):
        if q and run_start < 0:
            run_start = i
        elif not q and run_start >= 0:
            if i - run_start > best_len:
                best_len, best_start = i - run_start, run_start
            run_start = -1
    if best_len * frame >= pause_sec * SAMPLE_RATE:
        return lo + (best_start + best_len // 2) * frame
    if require_pause:
        return None
    win = min(len(rms), 5)  # 100 ms
    smooth = np.convolve(rms, np.ones(win, dtype=np.float32) / win, mode="valid")
    return lo + (int(np.argmin(smooth)) + win // 2) * frame


def split_for_final(
    samples: FloatArray, max_piece_sec: float, *, pause_rms: float, search_sec: float = 5.0
) -> list[tuple[int, int]]:
    """Split a long utterance into pieces of at most ``max_piece_sec``, each cut at the
    quietest point of the last ``search_sec`` before the limit. Pieces tile the audio."""
    n = samples.shape[0]
    max_len = max(SAMPLE_RATE, int(max_piece_sec * SAMPLE_RATE))
    pieces: list[tuple[int, int]] = []
    start = 0
    while n - start > max_len:
        hi = start + max_len
        lo = max(start + max_len // 2, hi - int(search_sec * SAMPLE_RATE))
        cut = find_cut(samples, lo, hi, pause_sec=0.2, pause_rms=pause_rms, require_pause=False)
        cut = hi if cut is None or cut <= start else cut
        pieces.append((start, cut))
        start = cut
    pieces.append((start, n))
    return pieces


# ---------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class WindowedConfig:
    """The windowed streaming policy (engine ``policy="windowed"``)."""

    #: Tokens dropped from the end of the last output before it becomes a forced prefix.
    rollback_tokens: int = 5
    #: The first steps of a segment use no prefix (qwen-asr's ``unfixed_chunk_num``).
    unfixed_steps: int = 2
    #: A segment longer than this is closed at the next pause.
    segment_soft_sec: float = 10.0
    #: Hard bound on the audio of one partial step: the segment is cut here, pause or not.
    segment_max_sec: float = 20.0
    #: How far before the previous step's end a cut may be placed (the committed prefix
    #: covers the audio up to about there).
    cut_lookback_sec: float = 0.3
    #: Audio kept after a cut, so the next segment does not start inside a word.
    cut_min_tail_sec: float = 0.2
    #: Silence that counts as a pause for a soft cut.
    pause_sec: float = 0.25
    #: The final re-decodes the whole utterance in one request up to this length...
    final_full_max_sec: float = 90.0
    #: ...and beyond it in pieces of at most this length (decoded concurrently).
    final_window_sec: float = 30.0
    #: Use the stable partial as the final's forced prefix (off: a full offline re-decode).
    final_reuse_stable_prefix: bool = False
    #: Upper bound of generated tokens per request...
    max_new_tokens: int = 256
    #: ...and the budget per request: tokens_base + tokens_per_sec * seconds of audio
    #: (bounds the cost of a runaway loop). None: always ``max_new_tokens``.
    tokens_base: int = 16
    tokens_per_sec: float | None = 10.0
    #: 20 ms frames quieter than this are silence; an utterance with less than
    #: ``min_speech_sec`` of louder audio is empty (no request is made).
    silence_rms: float = 0.004
    min_speech_sec: float = 0.1
    #: Shorter audio is zero-padded to this length (as qwen-asr's transcribe does).
    min_input_sec: float = 0.5
    #: Repetition guard on generated text (see :func:`collapse_repeats`): a loop is a unit
    #: repeated this many times back to back (a runaway decoder repeats until the budget).
    repeat_min: int = 8

    def __post_init__(self) -> None:
        if self.rollback_tokens < 0 or self.unfixed_steps < 0:
            raise ValueError("rollback_tokens and unfixed_steps must be >= 0")
        if not 0 < self.segment_soft_sec <= self.segment_max_sec:
            raise ValueError("need 0 < segment_soft_sec <= segment_max_sec")
        if self.final_window_sec <= 0 or self.final_full_max_sec <= 0:
            raise ValueError("final_window_sec and final_full_max_sec must be > 0")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")

    def token_budget(self, audio_sec: float) -> int:
        if self.tokens_per_sec is None:
            return self.max_new_tokens
        budget = int(self.tokens_base + self.tokens_per_sec * audio_sec)
        return max(1, min(self.max_new_tokens, budget))

    def fit_to_model_len(self, max_model_len: int) -> WindowedConfig:
        """Shrink the audio lengths so that every request fits ``max_model_len`` tokens
        (audio tokens + prompt + generated tokens)."""
        from dataclasses import replace

        def max_sec(limit: float) -> float:
            sec = limit
            while sec > 1.0:
                # prompt + audio + forced prefix + new tokens (prefix and new text together
                # stay within one budget; counted twice to be safe)
                need = PROMPT_OVERHEAD_TOKENS + AUDIO_TOKENS_PER_SEC * sec
                need += 2 * self.token_budget(sec)
                if need <= max_model_len:
                    return sec
                sec -= 1.0
            return 1.0

        full = max_sec(self.final_full_max_sec)
        window = min(self.final_window_sec, max_sec(self.final_window_sec))
        seg_max = max_sec(self.segment_max_sec)
        return replace(
            self,
            final_full_max_sec=full,
            final_window_sec=min(window, full),
            segment_max_sec=seg_max,
            segment_soft_sec=min(self.segment_soft_sec, seg_max),
        )


def _spec_value(name: str, text: str, default: object) -> object:
    value = text.strip()
    if isinstance(default, bool):
        if value.lower() in {"1", "true", "yes", "on"}:
            return True
        if value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"{name}={text!r}: expected true or false")
    if name == "tokens_per_sec" and value.lower() == "none":
        return None
    try:
        return int(value) if isinstance(default, int) else float(value)
    except ValueError:
        raise ValueError(f"{name}={text!r}: not a number") from None


def windowed_config_from_spec(spec: str) -> WindowedConfig:
    """A :class:`WindowedConfig` from ``name=value,name=value`` (field names as in the
    class; unnamed fields keep their defaults). Raises ValueError naming the bad part."""
    from dataclasses import fields

    defaults = WindowedConfig()
    known = {f.name for f in fields(WindowedConfig)}
    values: dict[str, object] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        name, sep, text = part.partition("=")
        name = name.strip()
        if not sep or name not in known:
            names = ", ".join(sorted(known))
            raise ValueError(f"{part.strip()!r}: expected name=value, name one of: {names}")
        values[name] = _spec_value(name, text, getattr(defaults, name))
    return WindowedConfig(**values)  # type: ignore[arg-type]  # checked per field above
