"""Qwen3-ASR on vLLM's async engine (production backend), with vLLM's native model.

Every request of every session goes to one ``AsyncLLM``, which batches them continuously;
a request whose caller is cancelled (a superseded partial step) is aborted in vLLM. The
model class is vLLM's own ``Qwen3ASRForConditionalGeneration`` (vLLM >= 0.16 ships it),
its processor turns the audio into features and expands the audio placeholder; prompts and
output parsing are ours (:mod:`server.engine.qwen.prompt`), the tokenizer the checkpoint's.

Each request is rendered (tokenised, audio turned into features) by the engine's renderer in
its worker threads before it is handed to ``generate``, as vLLM's own API server does:
handed a raw prompt, ``generate`` would do that work on the server's event loop, where every
connection's audio and messages wait behind it.

Scheduling inside vLLM: the engine runs with ``scheduling_policy="priority"`` and every
request carries its :class:`~server.engine.base.Priority` (a final is 0, a partial 1; lower
runs first), so a final waiting for a seat is admitted before waiting partial steps and,
when the KV cache runs out, partial steps are preempted first. How many partial steps the
server keeps in flight at once is the scheduler's bound (``--max-partials-in-flight``).

vLLM's engine core runs in a child process on GPU (and on CPU unless
``VLLM_ENABLE_V1_MULTIPROCESSING=0``); the engine must be built inside ``main()`` under
the ``__main__`` guard (spawn re-imports the main module), which the server does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from server.engine.base import GenerationRequest, GenerationResult, Generator
from server.engine.qwen import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_MAX_MODEL_LEN,
    DEFAULT_RENDERER_THREADS,
)
from server.engine.qwen.errors import (
    GenerationError,
    KVCacheError,
    ModelLoadError,
    is_memory_error,
    kv_cache_message,
)
from server.engine.qwen.policy import raw_language
from server.engine.qwen.text import QwenModelText, load_tokenizer

logger = logging.getLogger(__name__)

_ids = itertools.count()
_ERROR_LINE = re.compile(r"\b[A-Za-z_][\w.]*(?:Error|Exception): .*")


class _StderrTail:
    """Keeps the last lines written to file descriptor 2 while still forwarding them.

    vLLM's engine core starts in a child process that inherits fd 2; when it fails (e.g.
    the KV cache does not fit) the parent only learns "Engine core initialization failed",
    the cause is in the child's stderr. Installed around the engine's start, the pipe
    stays the child's stderr afterwards and keeps being forwarded.
    """

    def __init__(self, keep: int = 400) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        try:
            saved = os.dup(2)
            read_fd, write_fd = os.pipe()
        except OSError:  # no fd 2 (pythonw, services): nothing to capture
            yield
            return
        threading.Thread(
            target=self._pump, args=(read_fd, saved), name="vllm-stderr", daemon=True
        ).start()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        try:
            yield
        finally:
            os.dup2(saved, 2)  # our own stderr back; children keep writing into the pipe

    def _pump(self, read_fd: int, out_fd: int) -> None:
        partial = b""
        with os.fdopen(read_fd, "rb", buffering=0) as src:
            while chunk := src.read(65536):
                with contextlib.suppress(OSError):
                    os.write(out_fd, chunk)
                partial += chunk
                *done, partial = partial.split(b"\n")
                self.lines.extend(x.decode("utf-8", "replace") for x in done)

    def text(self) -> str:
        return "\n".join(self.lines)


class VLLMGenerator(Generator):
    name = "qwen-vllm"
    max_batch_size = 1  # vLLM batches continuously: many single-request calls at once
    max_concurrent_batches = 256
    supports_abort = True

    def __init__(
        self,
        model_path: str,
        *,
        max_model_len: int = DEFAULT_MAX_MODEL_LEN,
        gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
        dtype: str = "auto",
        ignore_eos: bool = False,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """``engine_kwargs``: further vLLM engine arguments (``max_num_seqs``,
        ``data_parallel_size``, ``enforce_eager``...), passed through unchanged."""
        self.model = model_path
        self.max_model_len = max_model_len
        self.gpu_memory_utilization = gpu_memory_utilization
        self.dtype = dtype
        self.ignore_eos = ignore_eos
        self.engine_kwargs = dict(engine_kwargs or {})
        max_num_seqs = self.engine_kwargs.get("max_num_seqs")
        if isinstance(max_num_seqs, int):
            # more concurrent requests than vLLM schedules would only queue inside vLLM
            dp = self.engine_kwargs.get("data_parallel_size")
            dp = dp if isinstance(dp, int) and dp > 0 else 1
            self.max_concurrent_batches = max(1, 2 * max_num_seqs * dp)
        self.text: QwenModelText | None = None
        self._engine: Any = None
        self._sampling_cls: Any = None
        self._output_kind: Any = None
        self._parse_prompt: Any = None
        #: When a list: (prompt, prompt_token_ids, output token count) of every finished
        #: request (tests, benchmarks).
        self.trace: list[tuple[str, list[int], int]] | None = None

    def engine_args(self, on_cpu: bool = False) -> dict[str, Any]:
        """The keyword arguments of vLLM's ``AsyncEngineArgs`` this generator builds."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_model_len": self.max_model_len,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "dtype": self.dtype,
            "limit_mm_per_prompt": {"audio": 1},
            "disable_log_stats": True,
            # finals (priority 0) before partial steps (1) inside vLLM
            "scheduling_policy": "priority",
            "renderer_num_workers": DEFAULT_RENDERER_THREADS,
            # audio never repeats, so vLLM's processor cache could only cost hashing and
            # memory; vLLM also refuses more than one renderer thread with it on
            "mm_processor_cache_gb": 0,
        }
        kwargs.update(self.engine_kwargs)
        if on_cpu and "enforce_eager" not in self.engine_kwargs:
            # vLLM-CPU's torch.compile path needs a working C++ toolchain; eager always runs
            kwargs["enforce_eager"] = True
        return kwargs

    # -- loading ---------------------------------------------------------------------------

    async def load(self) -> None:
        # Building the engine blocks for a long time: off the event loop.
        await asyncio.to_thread(self._load_sync)

    def _load_sync(self) -> None:
        t0 = time.perf_counter()
        try:
            from vllm import SamplingParams  # type: ignore[import-not-found,import-untyped,unused-ignore]
            from vllm.engine.arg_utils import AsyncEngineArgs  # type: ignore[import-not-found,import-untyped,unused-ignore]
            from vllm.renderers.inputs.preprocess import parse_model_prompt  # type: ignore[import-not-found,import-untyped,unused-ignore]
            from vllm.sampling_params import RequestOutputKind  # type: ignore[import-not-found,import-untyped,unused-ignore]
            from vllm.v1.engine.async_llm import AsyncLLM  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError as e:
            raise ModelLoadError(
                f"the vLLM backend needs vllm: pip install 'tingxie[vllm]' ({e})"
            ) from e
        try:
            import torch

            on_cpu = not torch.cuda.is_available()
        except ImportError:
            on_cpu = False
        kwargs = self.engine_args(on_cpu)
        if on_cpu and "enforce_eager" not in self.engine_kwargs:
            logger.warning("vLLM without a GPU: enforce_eager=True (CPU vLLM is for tests)")
        try:
            self.text = QwenModelText(load_tokenizer(self.model))
        except Exception as e:
            raise ModelLoadError(
                f"could not load the Qwen3-ASR tokenizer from {self.model}: {type(e).__name__}: {e}"
            ) from e
        tail = _StderrTail()
        try:
            with tail.capture():
                self._engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
        except Exception as e:
            time.sleep(0.3)  # let the pump read what the dead child wrote last
            cause = _root_cause(tail.text())
            if cause:
                e = RuntimeError(f"{e} Engine core: {cause}")
            if is_memory_error(e):
                raise KVCacheError(
                    kv_cache_message(
                        e,
                        model=self.model,
                        max_model_len=self.max_model_len,
                        gpu_memory_utilization=self.gpu_memory_utilization,
                    )
                ) from e
            raise ModelLoadError(
                f"vLLM could not load Qwen3-ASR model {self.model}: {type(e).__name__}: {e}"
            ) from e
        self._sampling_cls = SamplingParams
        self._output_kind = RequestOutputKind.FINAL_ONLY
        self._parse_prompt = parse_model_prompt
        logger.info(
            "Qwen3-ASR on vLLM: %s loaded in %.1f s (max_model_len=%d, "
            "gpu_memory_utilization=%.2f, max_num_seqs=%s, data_parallel_size=%s)",
            self.model,
            time.perf_counter() - t0,
            self.max_model_len,
            self.gpu_memory_utilization,
            kwargs.get("max_num_seqs", "vLLM's default"),
            kwargs.get("data_parallel_size", 1),
        )

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is None:
            return
        # Stop vLLM's output handler before its engine core goes away; otherwise it logs
        # the dead engine as a failure on every clean shutdown.
        handler = getattr(engine, "output_handler", None)
        if isinstance(handler, asyncio.Task) and not handler.done():
            handler.cancel()
            await asyncio.gather(handler, return_exceptions=True)
        await asyncio.to_thread(engine.shutdown)

    # -- generation ------------------------------------------------------------------------

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self._engine is None or self.text is None:
            raise GenerationError(f"{self.name}: model {self.model} is not loaded")
        return list(await asyncio.gather(*(self._one(r) for r in batch)))

    async def _one(self, request: GenerationRequest) -> GenerationResult:
        assert self.text is not None
        prompt = self.text.build_prompt(request.context, request.language) + request.prefix
        params = self._sampling_cls(
            temperature=0.0,
            max_tokens=request.max_new_tokens,
            ignore_eos=self.ignore_eos,
            output_kind=self._output_kind,
        )
        request_id = f"tingxie-{next(_ids)}"
        final: Any = None
        try:
            inputs = await self._render(prompt, request.audio)
            async for out in self._engine.generate(
                inputs, params, request_id, priority=int(request.priority)
            ):
                final = out
        except asyncio.CancelledError:
            # vLLM aborts on cancellation too; be explicit, it frees the KV blocks now.
            await self._abort(request_id)
            raise
        except Exception as e:
            logger.exception("%s: request %s failed", self.name, request_id)
            raise GenerationError(f"{self.name}: generation failed: {type(e).__name__}: {e}") from e
        if final is None or not final.outputs:
            raise GenerationError(f"{self.name}: vLLM returned no output for {request_id}")
        if self.trace is not None:
            out_ids = final.outputs[0].token_ids
            self.trace.append((prompt, list(final.prompt_token_ids or []), len(out_ids)))
        raw = request.prefix + final.outputs[0].text
        return GenerationResult(text=raw, language=request.language or raw_language(raw))

    async def _render(self, prompt: str, audio: Any) -> Any:
        """The request's engine input: tokens and audio features, computed in the
        renderer's worker threads (off the event loop)."""
        parsed = self._parse_prompt(
            self._engine.model_config,
            {"prompt": prompt, "multi_modal_data": {"audio": [audio]}},
        )
        (rendered,) = await self._engine.renderer.render_cmpl_async([parsed])
        return rendered

    async def _abort(self, request_id: str) -> None:
        try:
            await self._engine.abort(request_id)
        except Exception:  # the engine may already have finished or dropped it
            logger.debug("abort of %s failed", request_id, exc_info=True)


def _root_cause(stderr_tail: str) -> str:
    """The engine core's own error line (e.g. ``ValueError: No available memory for the
    cache blocks...``) from its captured stderr: the last ``SomeError: message``."""
    found = ""
    for line in stderr_tail.splitlines():
        m = _ERROR_LINE.search(line)
        if m and "Engine core initialization failed" not in line:
            found = m.group(0).strip()
    return found[:500]
