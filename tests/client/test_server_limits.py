"""The tray client keeps to the limits a real server advertises (in-process loopback):
frames above the frame limit are split, an utterance longer than the server allows is
continued as a second one, and no more utterances are unfinished than it accepts —
so every word arrives, where the server would otherwise drop frames or the rest of a
sentence, or refuse a start."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from desktop.streaming import (
    Backoff,
    ClientState,
    DictationClient,
    FinalText,
    StateChanged,
    UtteranceFailed,
)
from protocol.limits import Limits
from tests.client.test_hostile_servers import speak
from tests.conftest import Recording, StartServer
from tests.hardening.test_faults import Recorder
from tests.server.helpers import fake_final


async def test_long_utterances_small_frames_and_one_slot_lose_nothing(
    start: StartServer, recordings: list[Recording]
) -> None:
    limits = replace(
        Limits(),
        max_audio_frame_bytes=1000,  # the client's 32 ms chunks are 1024 bytes
        max_utterance_seconds=2.0,  # whole seconds: the fake engine's words stay the same
        max_sessions_per_connection=1,
    )
    server = await start(limits=limits)
    recorder = Recorder()
    client = DictationClient(server.url, recorder, backoff=Backoff(first_s=0.05, maximum_s=0.2))
    client.start()
    try:
        await asyncio.to_thread(
            recorder.wait, StateChanged, lambda e: e.state is ClientState.READY, 20.0
        )
        long_one = next(r for r in recordings if r.id == "ps_0870")  # 7 s: four parts
        short_one = min(recordings, key=lambda r: r.seconds)
        speak(client, long_one, 1)
        speak(client, short_one, 2)  # waits for a slot instead of being refused
        for utterance_id, recording in ((1, long_one), (2, short_one)):
            final = await asyncio.to_thread(
                recorder.wait, FinalText, lambda e, u=utterance_id: e.utterance_id == u, 30.0
            )
            assert final.text == fake_final(recording)
        assert recorder.count(UtteranceFailed) == 0
        assert server.state.errors_total == 0  # nothing was refused or dropped
        parts = -(-len(long_one.pcm()) // 64_000)  # 2 s of audio each
        assert parts >= 3 and server.state.utterances_total == parts + 1
    finally:
        await asyncio.to_thread(client.close)
