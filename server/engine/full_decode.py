"""The simplest streaming policy: every step decodes the whole utterance so far.

Used with the fake generator (whose cost does not depend on audio length) and as a
baseline. Stable text comes from local agreement between consecutive steps; the
final is one full decode.
"""

from __future__ import annotations

from server.engine.agreement import LocalAgreement
from server.engine.base import (
    AudioView,
    Engine,
    EngineStream,
    FinalText,
    GenerationRequest,
    PartialText,
    Priority,
    Runner,
    StreamOptions,
)


class FullDecodeEngine(Engine):
    name = "full-decode"

    def open_stream(self, options: StreamOptions) -> EngineStream:
        return _FullDecodeStream(options)


class _FullDecodeStream(EngineStream):
    def __init__(self, options: StreamOptions) -> None:
        self._options = options
        self._agreement = LocalAgreement()

    def _request(self, audio: AudioView, priority: Priority) -> GenerationRequest:
        return GenerationRequest(
            audio=audio.samples(),  # a new array already
            language=self._options.language,
            context=self._options.context,
            priority=priority,
        )

    async def step(self, audio: AudioView, run: Runner) -> PartialText | None:
        result = await run(lambda: self._request(audio, Priority.PARTIAL), Priority.PARTIAL)
        stable, unstable = self._agreement.update(result.text)
        return PartialText(stable=stable, unstable=unstable)

    async def finish(self, audio: AudioView, run: Runner) -> FinalText:
        if audio.n_samples == 0:
            return FinalText(text="", language=self._options.language)
        result = await run(lambda: self._request(audio, Priority.FINAL), Priority.FINAL)
        return FinalText(text=result.text, language=result.language)
