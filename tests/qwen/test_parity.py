"""Parity with qwen-asr's own streaming: for a short utterance, the prompts, token ids and
audio our windowed engine sends equal what qwen-asr's ``streaming_transcribe`` sends.

qwen-asr's streaming only runs on its vLLM backend, so it is driven here with a stand-in
for ``vllm.LLM`` that tokenises each prompt with the real processor and decodes with the
real tiny model (the same greedy settings as our generator). Both sides therefore see the
same model outputs, and every prompt they build from those outputs must match.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from server.engine.base import StreamOptions
from server.engine.qwen.policy import WindowedConfig
from server.engine.qwen.windowed import WindowedEngine
from tests.qwen.conftest import needs_qwen_asr
from tests.qwen.helpers import SR, ArrayAudio, direct_runner, noise

pytestmark = needs_qwen_asr

MAX_NEW = 10
CHUNK_SEC = 1.0


class RecordingProcessor:
    """Delegates to the real processor; records every prompt and its token ids."""

    def __init__(self, processor: Any, log: list[tuple[str, list[int], np.ndarray]]) -> None:
        self._processor = processor
        self._log = log

    def __call__(self, *, text: list[str], audio: list[np.ndarray], **kw: Any) -> Any:
        out = self._processor(text=text, audio=audio, **kw)
        for i, (t, a) in enumerate(zip(text, audio, strict=True)):
            ids = out["input_ids"][i][out["attention_mask"][i].bool()].tolist()
            self._log.append((t, ids, np.array(a, copy=True)))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._processor, name)


class ModelAsVllm:
    """``vllm.LLM.generate`` shape, answered by the real tiny model through transformers."""

    def __init__(self, model: Any, processor: RecordingProcessor) -> None:
        self.model = model
        self.processor = processor

    def generate(
        self, inputs: list[dict[str, Any]], sampling_params: Any = None, use_tqdm: bool = False
    ) -> list[Any]:
        import torch

        outs = []
        for inp in inputs:
            audio = inp["multi_modal_data"]["audio"][0]
            enc = self.processor(
                text=[inp["prompt"]], audio=[audio], return_tensors="pt", padding=True
            )
            enc = enc.to(self.model.device).to(self.model.dtype)
            with torch.inference_mode():
                seq = self.model.generate(
                    **enc,
                    max_new_tokens=MAX_NEW,
                    min_new_tokens=MAX_NEW,
                    eos_token_id=None,
                    do_sample=False,
                    pad_token_id=self.processor.tokenizer.pad_token_id,
                )
            new = seq.sequences[0, enc["input_ids"].shape[1] :].tolist()
            text = self.processor.tokenizer.decode(
                new, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
            outs.append(SimpleNamespace(outputs=[SimpleNamespace(text=text)]))
        return outs


@pytest.mark.parametrize("language", [None, "English"])
async def test_partial_prompts_match_qwen_asr_streaming(
    hf_generator: Any, monkeypatch: pytest.MonkeyPatch, language: str | None
) -> None:
    from qwen_asr import Qwen3ASRModel

    audio = noise(4.3, seed=7)
    processor = hf_generator.text.processor

    # qwen-asr's own streaming, fed in packets not aligned to chunks (as a socket would)
    theirs: list[tuple[str, list[int], np.ndarray]] = []
    llm = ModelAsVllm(hf_generator._model, RecordingProcessor(processor, theirs))
    asr = Qwen3ASRModel(backend="vllm", model=llm, processor=processor)
    state = asr.init_streaming_state(
        context="hot words",
        language=language,
        unfixed_chunk_num=2,
        unfixed_token_num=5,
        chunk_size_sec=CHUNK_SEC,
    )
    packet = int(0.32 * SR)
    for i in range(0, len(audio), packet):
        asr.streaming_transcribe(audio[i : i + packet], state)
    n_steps = len(theirs)
    assert n_steps == 4

    # ours: one step per chunk boundary, same rollback settings, no pause cutting
    ours: list[tuple[str, list[int], np.ndarray]] = []
    monkeypatch.setattr(hf_generator.text, "processor", RecordingProcessor(processor, ours))
    cfg = WindowedConfig(
        rollback_tokens=5,
        unfixed_steps=2,
        tokens_per_sec=None,
        max_new_tokens=MAX_NEW,
        segment_soft_sec=60,
        segment_max_sec=60,
    )
    engine = WindowedEngine(hf_generator, cfg)
    stream = engine.open_stream(StreamOptions(language=language, context="hot words"))
    run = direct_runner(hf_generator)
    for k in range(1, n_steps + 1):
        await stream.step(ArrayAudio(audio, int(k * CHUNK_SEC * SR)), run)

    assert len(ours) == n_steps
    for (p1, ids1, a1), (p2, ids2, a2) in zip(theirs, ours, strict=True):
        assert p2 == p1
        assert ids2 == ids1
        np.testing.assert_array_equal(a2, a1)
    if language is None:
        # the later steps really carried a forced prefix (with English forced, the random
        # model's output holds U+FFFD, so both sides roll back to an empty prefix)
        assert ours[-1][0] != ours[0][0] and ours[-1][0].startswith(ours[0][0])

    # The final differs by design: qwen-asr decodes the tail with its rolled-back prefix;
    # ours re-decodes the whole utterance without one (offline accuracy).
    asr.finish_streaming_transcribe(state)
    await stream.finish(ArrayAudio(audio), run)
    their_final, our_final = theirs[-1], ours[-1]
    np.testing.assert_array_equal(our_final[2], their_final[2])  # same (whole) audio
    assert our_final[0] == state.prompt_raw
