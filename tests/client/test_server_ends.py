"""The tray client when the server ends what it sent (in-process loopback, the real
server and the real DictationClient): a server shutting down sends the finals of the
utterances already stopped and the client waits for them on the old link, so they
are decoded once; what was open, and what was spoken meanwhile, goes to the next
server on that port. A server whose audio budget is full ends the open utterance and
decodes what it kept: the client keeps that final and sends only the rest, so every
sample is decoded exactly once and the text is typed once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from desktop.streaming import (
    Backoff,
    ClientState,
    DictationClient,
    FinalText,
    StateChanged,
    UtteranceFailed,
)
from protocol.client_machine import join_segments
from server.engine.base import GenerationRequest, GenerationResult, Priority
from server.engine.fake import FakeGenerator, text_for_audio
from server.engine.full_decode import FullDecodeEngine
from tests.client.test_hostile_servers import speak
from tests.client.test_streaming_client import utterance_events
from tests.conftest import Recording, StartServer, free_port
from tests.hardening.test_faults import Recorder
from tests.server.helpers import fake_final, wait_until
from tests.server.test_displaced_drain import GatedGenerator


class DecodeLog(FakeGenerator):
    """A fake that keeps the audio of every final it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.finals: list[np.ndarray] = []

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.finals += [r.audio for r in batch if r.priority is Priority.FINAL]
        return await super().generate(batch)


def as_pcm(audio: np.ndarray) -> bytes:
    return bytes(np.round(audio * 32768.0).astype("<i2").tobytes())


async def final_of(recorder: Recorder, utterance_id: int, timeout: float = 30.0) -> FinalText:
    event = await asyncio.to_thread(
        recorder.wait, FinalText, lambda e: e.utterance_id == utterance_id, timeout
    )
    assert isinstance(event, FinalText)
    return event


async def test_shutdown_sends_the_decoding_final_on_the_old_link_and_the_rest_to_the_next(
    start: StartServer, recordings: list[Recording]
) -> None:
    port = free_port()
    old_model = GatedGenerator()
    old = await start(FullDecodeEngine(old_model), port=port, partial_interval_ms=0.0)
    await old.wait_loaded()
    stopped, spoken, later = sorted(recordings, key=lambda r: r.seconds)[:3]
    recorder = Recorder()
    client = DictationClient(old.url, recorder, backoff=Backoff(first_s=0.05, maximum_s=0.2))
    client.start()
    try:
        speak(client, stopped, 1)
        second = utterance_events(spoken, 2)
        half = len(second) // 2
        for event in second[:half]:  # still being spoken at the shutdown
            client.submit(event)  # type: ignore[arg-type]
        await wait_until(lambda: len(old_model.finals_asked) == 1, 20.0)  # 1 is decoding
        (link,) = old.state.connections
        await wait_until(lambda: link.active_sessions == 2, 20.0)  # and 2 is open
        shutdown = asyncio.create_task(old.shutdown())
        # The client was told (2 is dropped): it holds the link, or gave it up.
        await wait_until(
            lambda: client._machine.draining or link not in old.state.connections, 20.0
        )
        speak(client, later, 3)  # spoken while the server leaves
        for event in second[half:]:
            client.submit(event)  # type: ignore[arg-type]
        await wait_until(lambda: client.pending_utterances == 3)  # all of that handled
        old_model.release.set()
        # Utterance 1's final comes on the old link, before any other server exists.
        assert (await final_of(recorder, 1)).text == fake_final(stopped)
        await shutdown
        new_model = GatedGenerator()
        new_model.release.set()
        await start(FullDecodeEngine(new_model), port=port, partial_interval_ms=0.0)
        assert (await final_of(recorder, 2)).text == fake_final(spoken)
        assert (await final_of(recorder, 3)).text == fake_final(later)
        assert recorder.count(UtteranceFailed) == 0
        # Each was decoded once: 1 by the old server only, 2 and 3 by the new one.
        assert old_model.finals_asked == [fake_final(stopped)]
        assert new_model.finals_asked == [fake_final(spoken), fake_final(later)]
        assert client.pending_utterances == 0
    finally:
        await asyncio.to_thread(client.close)


async def test_a_full_audio_budget_ends_parts_early_and_every_sample_is_decoded_once(
    start: StartServer, recordings: list[Recording]
) -> None:
    model = DecodeLog()
    # One second of audio for the whole server: a 7 s burst hits it again and again.
    server = await start(
        FullDecodeEngine(model), max_buffered_audio_bytes=32_000, partial_interval_ms=0.0
    )
    await server.wait_loaded()
    long_one = next(r for r in recordings if r.id == "ps_0870")  # 7 s
    short_one = min(recordings, key=lambda r: r.seconds)
    recorder = Recorder()
    client = DictationClient(server.url, recorder, backoff=Backoff(first_s=0.05, maximum_s=0.2))
    client.start()
    try:
        speak(client, long_one, 1)
        speak(client, short_one, 2)
        first, second = await final_of(recorder, 1), await final_of(recorder, 2)
        assert recorder.count(UtteranceFailed) == 0
        # Each decode is the next piece of one utterance (the second may start before
        # the first one's cut is known): together, in order, every sample exactly once.
        rest = {1: long_one.pcm(), 2: short_one.pcm()}
        words: dict[int, list[str]] = {1: [], 2: []}
        for audio in model.finals:
            piece = as_pcm(audio)
            (owner,) = [u for u, left in rest.items() if piece and left.startswith(piece)]
            rest[owner] = rest[owner][len(piece) :]
            words[owner].append(text_for_audio(audio))
        assert rest == {1: b"", 2: b""}
        assert len(words[1]) >= 3  # the budget cut the first one, again and again
        assert server.state.errors_total > 0  # with server_busy
        assert first.text == join_segments(words[1])
        assert second.text == join_segments(words[2])
        # All on one link: the server's cut is not a reason to reconnect.
        ready = [e for e in recorder.settle() if isinstance(e, StateChanged)]
        assert [e.state for e in ready].count(ClientState.READY) == 1
    finally:
        await asyncio.to_thread(client.close)
