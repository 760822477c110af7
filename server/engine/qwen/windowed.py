"""The windowed streaming policy for Qwen3-ASR (the default engine policy).

Per utterance the audio is split into *segments*. A partial step decodes only the current
segment (bounded by ``segment_max_sec``) with the segment's committed text as a forced
prefix, so its cost does not grow with the utterance. When a segment grows past
``segment_soft_sec`` it is closed at a pause (at ``segment_max_sec`` at the quietest
point): the closed piece is decoded once more, with the committed prefix, and all of its
text becomes stable. The final re-decodes the whole utterance without a prefix (offline
accuracy), in concurrent pieces beyond ``final_full_max_sec``.

Pure: numpy only; the model is reached through the scheduler's ``run`` and the
:class:`~server.engine.qwen.policy.ModelText` of the generator.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

import numpy as np

from server.engine.base import (
    AudioView,
    Engine,
    EngineStream,
    FinalText,
    GenerationRequest,
    GenerationResult,
    Generator,
    PartialText,
    Priority,
    Runner,
    StreamOptions,
)
from server.engine.qwen.policy import (
    SAMPLE_RATE,
    FloatArray,
    ModelText,
    WindowedConfig,
    collapse_repeats,
    find_cut,
    frame_rms,
    join_text,
    normalize_language,
    raw_language,
    rollback_prefix,
    speech_seconds,
    split_for_final,
    transcript_of,
)

logger = logging.getLogger(__name__)


def model_text_of(generator: Generator) -> ModelText:
    """The generator's text side (tokenizer + parser); available once it is loaded."""
    text: ModelText | None = getattr(generator, "text", None)
    if text is None:
        raise RuntimeError(
            f"generator {generator.name!r} has no model text (tokenizer); is it loaded?"
        )
    return text


def pad_audio(samples: FloatArray, min_sec: float) -> FloatArray:
    need = int(min_sec * SAMPLE_RATE) - samples.shape[0]
    if need <= 0:
        return samples
    return np.concatenate([samples, np.zeros(need, dtype=np.float32)])


@dataclass
class _Piece:
    """A closed stretch of a segment decoded in this step."""

    start: int
    end: int
    prefix: str


class WindowedStream(EngineStream):
    def __init__(
        self, config: WindowedConfig, text: ModelText, language: str | None, context: str
    ) -> None:
        self._cfg = config
        self._text = text
        self._language = language
        self._context = context
        # closed segments
        self._closed_text = ""
        self._closed_stable = ""  # stable text shown so far (never shrinks)
        # current segment
        self._seg_start = 0
        self._seg_steps = 0
        self._committed = ""  # raw forced prefix of the current segment
        self._last_end = 0  # audio end seen by the previous step
        # no-speech gate, scanned incrementally so a step costs O(new audio)
        self._speech_sec = 0.0
        self._scanned = 0

    # -- helpers -------------------------------------------------------------------------

    def _request(
        self, audio: FloatArray, prefix: str, priority: Priority, seconds: float
    ) -> GenerationRequest:
        return GenerationRequest(
            audio=pad_audio(audio, self._cfg.min_input_sec),
            prefix=prefix,
            language=self._language,
            context=self._context,
            max_new_tokens=self._cfg.token_budget(seconds),
            priority=priority,
        )

    def _guard(self, prefix: str, raw: str) -> tuple[str, bool]:
        """Apply the repetition guard to what the model generated after ``prefix``."""
        if not raw.startswith(prefix):  # a generator that does not echo the prefix
            raw = prefix + raw
        gen, looped = collapse_repeats(raw[len(prefix) :], self._cfg.repeat_min)
        if looped:
            logger.debug("repetition guard cut a loop in a partial step")
        return prefix + gen, looped

    def _update_speech(self, audio: AudioView, n: int) -> bool:
        if self._speech_sec < self._cfg.min_speech_sec and n > self._scanned:
            new = audio.samples(self._scanned, n)
            self._speech_sec += speech_seconds(new, self._cfg.silence_rms)
            self._scanned = n
        return self._speech_sec >= self._cfg.min_speech_sec

    def _pause_rms(self, seg: FloatArray) -> float:
        # Pauses are relative to the speaker's level: 15% of the loud frames' RMS.
        if seg.shape[0] == 0:
            return self._cfg.silence_rms * 2
        rms = frame_rms(seg)
        loud = float(np.percentile(rms, 90)) if rms.size else 0.0
        return max(self._cfg.silence_rms * 2, 0.15 * loud)

    def _plan_cuts(self, seg: FloatArray, n: int) -> list[int]:
        """Cut points (utterance indices) that close the current segment (empty: keep it
        open). ``seg`` is the audio from the segment's start to ``n``."""
        cfg = self._cfg
        sr = SAMPLE_RATE
        start = self._seg_start
        if n - start <= cfg.segment_soft_sec * sr:
            return []
        pause_rms = self._pause_rms(seg)

        def cut_in(lo: int, hi: int, require_pause: bool) -> int | None:
            at = find_cut(
                seg,
                lo - start,
                hi - start,
                pause_sec=cfg.pause_sec,
                pause_rms=pause_rms,
                require_pause=require_pause,
            )
            return None if at is None else start + at

        tail = int(cfg.cut_min_tail_sec * sr)
        lo = max(start + sr, self._last_end - int(cfg.cut_lookback_sec * sr))
        hard = n - start > cfg.segment_max_sec * sr
        hi = min(n - tail, start + int(cfg.segment_max_sec * sr)) if hard else n - tail
        cut = cut_in(lo, hi, require_pause=not hard)
        if cut is None:
            return []
        if cut <= start:
            cut = min(hi, start + int(cfg.segment_max_sec * sr))
        cuts = [cut]
        # Steps that came too late (overload) may leave more than one window after the
        # cut: close further pieces, each at most segment_max_sec, so no request grows.
        max_len = int(cfg.segment_max_sec * sr)
        while n - cuts[-1] > max_len:
            s = cuts[-1]
            c = cut_in(s + max_len // 2, s + max_len, require_pause=False)
            cuts.append(c if c is not None and c > s else s + max_len)
        return cuts

    # -- EngineStream ----------------------------------------------------------------------

    async def step(self, audio: AudioView, run: Runner) -> PartialText | None:
        n = audio.n_samples
        if n <= self._last_end:
            return None
        if not self._update_speech(audio, n):
            return None
        cfg = self._cfg
        # The open segment only: a step's memory and work do not grow with the utterance.
        base = self._seg_start
        seg = audio.samples(base, n)
        cuts = self._plan_cuts(seg, n)
        pieces: list[_Piece] = []
        start, prefix = self._seg_start, self._committed
        for cut in cuts:
            pieces.append(_Piece(start, cut, prefix))
            start, prefix = cut, ""  # a new segment starts without a prefix
        tail_start = start
        tail_prefix = self._committed if not cuts else ""
        tail_steps = self._seg_steps if not cuts else 0
        if tail_steps < cfg.unfixed_steps:
            tail_prefix = ""
        used_end = [n]

        def piece_builder(p: _Piece) -> GenerationRequest:
            sec = (p.end - p.start) / SAMPLE_RATE
            # A view: ``seg`` is this step's own array, alive until the step ends.
            return self._request(
                seg[p.start - base : p.end - base], p.prefix, Priority.PARTIAL, sec
            )

        def tail_builder() -> GenerationRequest:
            # Called at dispatch: decode the newest audio, bounded by the window.
            end = max(n, audio.n_samples)
            end = min(end, tail_start + int((cfg.segment_max_sec + 2.0) * SAMPLE_RATE))
            used_end[0] = end
            seg = audio.samples(tail_start, end)  # converts only the window
            return self._request(seg, tail_prefix, Priority.PARTIAL, seg.shape[0] / SAMPLE_RATE)

        runs = [run(functools.partial(piece_builder, p), Priority.PARTIAL) for p in pieces]
        runs.append(run(tail_builder, Priority.PARTIAL))
        results: list[GenerationResult] = list(await asyncio.gather(*runs))

        # Commit (no await below: a cancelled step leaves the state untouched).
        for p, res in zip(pieces, results[:-1], strict=True):
            raw, _ = self._guard(p.prefix, res.text)
            self._closed_text = join_text(self._closed_text, transcript_of(raw, self._language))
        if pieces:
            self._seg_start = tail_start
            self._seg_steps = 0
            self._committed = ""
        tail_raw, _ = self._guard(tail_prefix, results[-1].text)
        self._seg_steps += 1
        if self._seg_steps >= cfg.unfixed_steps:
            # The loop itself was cut by the guard; the rollback keeps its start unstable.
            candidate = rollback_prefix(self._text, tail_raw, cfg.rollback_tokens)
            if len(candidate) > len(self._committed) and candidate.startswith(self._committed):
                self._committed = candidate
        self._last_end = used_end[0]

        stable = join_text(self._closed_text, transcript_of(self._committed, self._language))
        full = join_text(self._closed_text, transcript_of(tail_raw, self._language))
        if stable.startswith(self._closed_stable):
            self._closed_stable = stable
        stable = self._closed_stable
        unstable = full[len(stable) :] if full.startswith(stable) else ""
        return PartialText(stable=stable, unstable=unstable)

    async def finish(self, audio: AudioView, run: Runner) -> FinalText:
        cfg = self._cfg
        samples = audio.samples()
        n = samples.shape[0]
        if n == 0 or speech_seconds(samples, cfg.silence_rms) < cfg.min_speech_sec:
            return FinalText(text="", language=self._language)
        if n <= cfg.final_full_max_sec * SAMPLE_RATE:
            spans = [(0, n)]
        else:
            spans = split_for_final(samples, cfg.final_window_sec, pause_rms=cfg.silence_rms * 2)
        reuse = (
            cfg.final_reuse_stable_prefix
            and len(spans) == 1
            and not self._closed_text
            and self._committed
        )
        prefix = self._committed if reuse else ""

        def builder(a: int, b: int, pre: str) -> GenerationRequest:
            # A view of finish's own array (a copy doubled the memory of a final).
            return self._request(samples[a:b], pre, Priority.FINAL, (b - a) / SAMPLE_RATE)

        runs = []
        kept: list[tuple[int, int]] = []
        for a, b in spans:
            if speech_seconds(samples[a:b], cfg.silence_rms) < cfg.min_speech_sec:
                continue  # a silent piece yields nothing, not hallucinated text
            kept.append((a, b))
            runs.append(run(functools.partial(builder, a, b, prefix), Priority.FINAL))
        results: list[GenerationResult] = list(await asyncio.gather(*runs))
        text, language = "", self._language
        for res in results:
            raw, looped = self._guard(prefix, res.text)
            if looped:
                logger.debug("repetition guard cut a loop in a final")
            lang, piece = self._text.parse(raw, self._language)
            text = join_text(text, piece)
            if language is None:
                language = lang or raw_language(res.text)
        return FinalText(text=text, language=language if text else self._language)


class WindowedEngine(Engine):
    """Qwen3-ASR with the windowed streaming policy."""

    name = "qwen-windowed"

    def __init__(self, generator: Generator, config: WindowedConfig | None = None) -> None:
        super().__init__(generator)
        self.config = config or WindowedConfig()

    def open_stream(self, options: StreamOptions) -> EngineStream:
        language = normalize_language(options.language)
        return WindowedStream(self.config, model_text_of(self.generator), language, options.context)
