"""Qwen3-ASR through Hugging Face transformers (qwen-asr's transformers backend).

For machines without vLLM or a GPU (native Windows, CPU boxes): the same prompts as the
vLLM generator, micro-batched (one padded ``generate`` per batch, one batch at a time).
qwen-asr supplies only what transformers lacks: the Qwen3-ASR model class and its
processor (audio features); prompts and parsing are ours (:mod:`.prompt`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from server.engine.base import GenerationRequest, GenerationResult, Generator
from server.engine.qwen import CPU_MAX_BATCH_SIZE, GPU_MAX_BATCH_SIZE
from server.engine.qwen.errors import GenerationError, ModelLoadError, QwenEngineError
from server.engine.qwen.policy import raw_language
from server.engine.qwen.text import QwenModelText

logger = logging.getLogger(__name__)


def default_max_batch_size(device: str) -> int:
    """The batch used on ``device`` when none is given."""
    return GPU_MAX_BATCH_SIZE if device.startswith("cuda") else CPU_MAX_BATCH_SIZE


class TransformersGenerator(Generator):
    name = "qwen-transformers"
    supports_abort = True  # a cancelled generate() stops at the next token
    max_concurrent_batches = 1

    def __init__(
        self,
        model_path: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        max_batch_size: int | None = None,
        ignore_eos: bool = False,
    ) -> None:
        self.model = model_path
        self._device = device
        self._dtype = dtype
        self._max_batch_size = max_batch_size
        # None: chosen by the device (known at load when not given here).
        self.max_batch_size = max_batch_size or default_max_batch_size(device or "cpu")
        self.ignore_eos = ignore_eos
        self.text: QwenModelText | None = None
        self._model: Any = None
        self._eos: list[int] = []
        # Our own thread: the default executor may be full of threads waiting on us.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen-hf")

    # -- loading ---------------------------------------------------------------------------

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load_sync)

    def _load_sync(self) -> None:
        t0 = time.perf_counter()
        try:
            import torch
            from qwen_asr import Qwen3ASRModel  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as e:
            raise ModelLoadError(
                f"the transformers backend needs qwen-asr: pip install 'qwen-asr==0.0.6' ({e})"
            ) from e
        device = self._device or ("cuda:0" if torch.cuda.is_available() else "cpu")
        if self._dtype == "auto":
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            dtype = getattr(torch, self._dtype)
        if self._max_batch_size is None:
            self.max_batch_size = default_max_batch_size(device)
        try:
            asr = Qwen3ASRModel.from_pretrained(self.model, dtype=dtype, device_map=device)
        except Exception as e:
            raise ModelLoadError(
                f"could not load Qwen3-ASR model {self.model} with transformers "
                f"(device={device}): {type(e).__name__}: {e}"
            ) from e
        self._model = asr.model
        self._model.eval()
        self.text = QwenModelText(asr.processor.tokenizer, asr.processor)
        eos = self._model.generation_config.eos_token_id
        self._eos = [eos] if isinstance(eos, int) else list(eos or [])
        logger.warning(
            "Qwen3-ASR on the transformers backend (%s, %s): slower than vLLM "
            "(micro-batches of %d, no continuous batching); loaded %s in %.1f s",
            device,
            dtype,
            self.max_batch_size,
            self.model,
            time.perf_counter() - t0,
        )

    async def close(self) -> None:
        self._model = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- generation ------------------------------------------------------------------------

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not batch:
            return []
        if self._model is None or self.text is None:
            raise GenerationError(f"{self.name}: model {self.model} is not loaded")
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, self._generate_sync, list(batch), cancel)
        try:
            return await fut
        except asyncio.CancelledError:
            cancel.set()  # the worker stops at the next token
            raise
        except QwenEngineError:
            raise
        except Exception as e:
            logger.exception("%s: generation failed for a batch of %d", self.name, len(batch))
            raise GenerationError(f"{self.name}: generation failed: {type(e).__name__}: {e}") from e

    def _generate_sync(
        self, batch: list[GenerationRequest], cancel: threading.Event
    ) -> list[GenerationResult]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        assert self.text is not None
        if cancel.is_set():
            raise asyncio.CancelledError()
        model = self._model
        text = self.text

        class _Cancelled(StoppingCriteria):  # type: ignore[misc,unused-ignore]
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                stop = cancel.is_set()
                return torch.full(
                    (input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device
                )

        prompts = [text.build_prompt(r.context, r.language) + r.prefix for r in batch]
        inputs = text.processor(
            text=prompts, audio=[r.audio for r in batch], return_tensors="pt", padding=True
        )
        inputs = inputs.to(model.device).to(model.dtype)
        max_new = max(r.max_new_tokens for r in batch)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": False,
            "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
            "pad_token_id": text.tokenizer.pad_token_id,
        }
        if self.ignore_eos:
            kwargs["eos_token_id"] = None
            kwargs["min_new_tokens"] = max_new
        else:
            kwargs["eos_token_id"] = self._eos
        with torch.inference_mode():
            out = model.generate(**inputs, **kwargs)
        if cancel.is_set():
            raise asyncio.CancelledError()
        gen = out.sequences[:, inputs["input_ids"].shape[1] :]
        results = []
        for i, r in enumerate(batch):
            # Greedy decoding: a shorter budget is a prefix of the batch's longer run.
            ids = gen[i, : r.max_new_tokens].tolist()
            if not self.ignore_eos:
                for j, t in enumerate(ids):
                    if t in self._eos:
                        ids = ids[:j]
                        break
            new = text.tokenizer.decode(
                ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
            raw = r.prefix + new
            results.append(GenerationResult(text=raw, language=r.language or raw_language(raw)))
        return results
