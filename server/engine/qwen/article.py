"""The article's behaviour as an engine policy (``policy="article"``), for benchmarks.

Runs qwen-asr's own ``init_streaming_state`` / ``streaming_transcribe`` /
``finish_streaming_transcribe`` unchanged. Their ``model.generate`` calls (vLLM's
synchronous ``LLM.generate`` shape) are answered by an adapter that hands each prompt to
the scheduler, so the same generator and batching sit below both policies. What stays the
article's: every chunk re-feeds all audio heard so far, the final is the streaming text,
and there is no no-speech gate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from server.engine.base import (
    AudioView,
    Engine,
    EngineStream,
    FinalText,
    GenerationRequest,
    Generator,
    PartialText,
    Priority,
    Runner,
    StreamOptions,
)
from server.engine.qwen.policy import normalize_language
from server.engine.qwen.windowed import model_text_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArticleConfig:
    """The article server's settings (seed-article.txt)."""

    unfixed_chunk_num: int = 2
    unfixed_token_num: int = 5
    chunk_size_sec: float = 2.0
    max_new_tokens: int = 32


class _SchedulerLLM:
    """Stands in for ``vllm.LLM`` inside qwen-asr: ``generate`` blocks its (worker)
    thread until the scheduler has run each prompt on the event loop."""

    def __init__(self, stream: ArticleStream) -> None:
        self._stream = stream

    def generate(
        self, inputs: Sequence[dict[str, Any]], sampling_params: Any = None, use_tqdm: bool = False
    ) -> list[SimpleNamespace]:
        return [self._stream._generate_one(inp) for inp in inputs]


class ArticleStream(EngineStream):
    def __init__(
        self,
        config: ArticleConfig,
        processor: Any,
        language: str | None,
        context: str,
        executor: concurrent.futures.Executor,
    ) -> None:
        from qwen_asr import Qwen3ASRModel  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self._cfg = config
        self._asr = Qwen3ASRModel(backend="vllm", model=_SchedulerLLM(self), processor=processor)
        self._state = self._asr.init_streaming_state(
            context=context,
            language=language,
            unfixed_chunk_num=config.unfixed_chunk_num,
            unfixed_token_num=config.unfixed_token_num,
            chunk_size_sec=config.chunk_size_sec,
        )
        self._executor = executor
        self._fed = 0
        self._pending: asyncio.Future[Any] | None = None
        # set for the duration of one threaded call
        self._loop: asyncio.AbstractEventLoop | None = None
        self._run: Runner | None = None
        self._priority = Priority.PARTIAL

    def _generate_one(self, inp: dict[str, Any]) -> SimpleNamespace:
        assert self._loop is not None and self._run is not None
        prompt: str = inp["prompt"]
        base: str = self._state.prompt_raw
        if not prompt.startswith(base):
            raise RuntimeError("qwen-asr streaming sent a prompt we cannot map to a request")
        prefix = prompt[len(base) :]
        # qwen-asr rebinds its accumulated audio (concatenate), never writes into it: no copy.
        audio = np.asarray(inp["multi_modal_data"]["audio"][0], dtype=np.float32)
        request = GenerationRequest(
            audio=audio,
            prefix=prefix,
            language=self._state.force_language,
            context=self._state.context,
            max_new_tokens=self._cfg.max_new_tokens,
            priority=self._priority,
        )
        run, priority = self._run, self._priority

        async def call() -> Any:
            return await run(lambda: request, priority)

        result = asyncio.run_coroutine_threadsafe(call(), self._loop).result()
        text: str = result.text
        gen = text[len(prefix) :] if text.startswith(prefix) else text
        return SimpleNamespace(outputs=[SimpleNamespace(text=gen)])

    async def _in_thread(self, fn: Callable[[], Any], run: Runner, priority: Priority) -> None:
        # One qwen-asr call at a time per stream; a cancelled step's thread still finishes
        # (it owns the state), the next call waits for it.
        if self._pending is not None and not self._pending.done():
            await asyncio.wait([self._pending])
        self._loop = asyncio.get_running_loop()
        self._run, self._priority = run, priority
        self._pending = self._loop.run_in_executor(self._executor, fn)
        await asyncio.shield(self._pending)

    async def step(self, audio: AudioView, run: Runner) -> PartialText | None:
        n = audio.n_samples
        if n <= self._fed:
            return None
        new = audio.samples(self._fed, n)
        self._fed = n
        before = self._state.chunk_id
        await self._in_thread(
            lambda: self._asr.streaming_transcribe(new, self._state), run, Priority.PARTIAL
        )
        if self._state.chunk_id == before:
            return None
        return PartialText(stable="", unstable=self._state.text)

    async def finish(self, audio: AudioView, run: Runner) -> FinalText:
        n = audio.n_samples
        new = audio.samples(self._fed, n)
        self._fed = n

        def work() -> None:
            if new.shape[0]:
                self._asr.streaming_transcribe(new, self._state)
            self._asr.finish_streaming_transcribe(self._state)

        await self._in_thread(work, run, Priority.FINAL)
        return FinalText(text=self._state.text, language=self._state.language or None)


class ArticleEngine(Engine):
    """qwen-asr's own streaming (the article's server) on the engine seam."""

    name = "qwen-article"

    def __init__(self, generator: Generator, config: ArticleConfig | None = None) -> None:
        super().__init__(generator)
        self.config = config or ArticleConfig()
        # Its threads block on the scheduler: keep them out of the default executor.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=256, thread_name_prefix="qwen-article"
        )

    def open_stream(self, options: StreamOptions) -> EngineStream:
        text = model_text_of(self.generator)
        processor = getattr(text, "processor", None)
        if processor is None:
            raise RuntimeError("the article policy needs qwen-asr's processor (a Qwen generator)")
        return ArticleStream(
            self.config,
            processor,
            normalize_language(options.language),
            options.context,
            self._executor,
        )
