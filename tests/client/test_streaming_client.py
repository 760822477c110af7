"""The desktop streaming client against a real server process: reconnect and replay."""

from __future__ import annotations

import queue
import signal
import subprocess
import time

import pytest

from desktop.audio.segmenter import AudioChunk, EndReason, Mode, UtteranceEnded, UtteranceStarted
from desktop.streaming import (
    Backoff,
    ClientEvent,
    ClientState,
    DictationClient,
    FinalText,
    StateChanged,
)
from tests.conftest import Recording, free_port, spawn_fake_server
from tests.server.helpers import fake_final

CHUNK_SAMPLES = 512


class Server:
    """tingxie-server as a child process that can be killed and restarted on one port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc, _ = spawn_fake_server(port=self.port, env=self.env)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def utterance_events(recording: Recording, utterance_id: int = 1) -> list[object]:
    pcm = recording.pcm()
    n = len(pcm) // 2
    events: list[object] = [UtteranceStarted(utterance_id, 0, 0, Mode.HANDS_FREE, time.monotonic())]
    for start in range(0, n, CHUNK_SAMPLES):
        events.append(AudioChunk(utterance_id, start, pcm[2 * start : 2 * (start + CHUNK_SAMPLES)]))
    events.append(UtteranceEnded(utterance_id, EndReason.SILENCE, 0, n, n, n))
    return events


def wait_for(
    events: queue.Queue[ClientEvent], kind: type, timeout: float = 20.0, where=lambda e: True
) -> ClientEvent:
    deadline = time.monotonic() + timeout
    while True:
        event = events.get(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(event, kind) and where(event):
            return event


def test_final_is_complete_after_server_killed_mid_utterance(
    server: Server, recordings: list[Recording]
) -> None:
    recording = next(r for r in recordings if r.id == "ps_0870")  # 7 s sentence
    events: queue.Queue[ClientEvent] = queue.Queue()
    client = DictationClient(server.url, events.put, backoff=Backoff(first_s=0.1, maximum_s=0.5))
    client.start()
    try:
        wait_for(events, StateChanged, where=lambda e: e.state is ClientState.READY)
        script = utterance_events(recording)
        half = len(script) // 2
        for event in script[:half]:  # the first half reaches the server...
            client.submit(event)  # type: ignore[arg-type]
            time.sleep(0.002)
        time.sleep(0.3)
        server.kill()  # ...which dies without a word
        wait_for(events, StateChanged, where=lambda e: e.state is ClientState.UNREACHABLE)
        for event in script[half:]:  # the user keeps talking meanwhile
            client.submit(event)  # type: ignore[arg-type]
        assert client.pending_utterances == 1
        server.start()  # same port
        final = wait_for(events, FinalText)
        assert isinstance(final, FinalText)
        assert final.text == fake_final(recording)  # every byte, in order, exactly once
        assert final.timeline.stop_sent is not None and final.timeline.final_received is not None
        assert client.pending_utterances == 0
    finally:
        client.close()


def test_undisturbed_run_and_timeline(server: Server, recordings: list[Recording]) -> None:
    recording = next(r for r in recordings if r.id == "ps_cards_002")
    events: queue.Queue[ClientEvent] = queue.Queue()
    client = DictationClient(server.url, events.put)
    client.start()
    try:
        wait_for(events, StateChanged, where=lambda e: e.state is ClientState.READY)
        for event in utterance_events(recording, 7):
            client.submit(event)  # type: ignore[arg-type]
        final = wait_for(events, FinalText)
        assert isinstance(final, FinalText) and final.utterance_id == 7
        assert final.text == fake_final(recording)
        t = final.timeline
        assert t.audio_s == pytest.approx(len(recording.pcm()) / 32000)
        assert t.stop_to_final() is not None and 0 <= t.stop_to_final() < 5  # type: ignore[operator]
    finally:
        client.close()


def test_unreachable_and_auth_failed_states(subprocess_env, recordings) -> None:
    events: queue.Queue[ClientEvent] = queue.Queue()
    port = free_port()
    client = DictationClient(
        f"ws://127.0.0.1:{port}", events.put, backoff=Backoff(first_s=0.05, maximum_s=0.1)
    )
    client.start()
    try:
        state = wait_for(events, StateChanged, where=lambda e: e.state is ClientState.UNREACHABLE)
        assert "retrying" in state.detail  # type: ignore[union-attr]
        proc, _ = spawn_fake_server("--token", "right", port=port, env=subprocess_env)
        try:
            wait_for(events, StateChanged, where=lambda e: e.state is ClientState.AUTH_FAILED)
            client.reconfigure(f"ws://127.0.0.1:{port}", "right")
            wait_for(events, StateChanged, where=lambda e: e.state is ClientState.READY)
        finally:
            proc.kill()
            proc.wait(10)
    finally:
        client.close()


def test_cancelled_utterance_is_cancelled_on_the_server_not_finalised(
    server: Server, recordings: list[Recording]
) -> None:
    recording = next(r for r in recordings if r.id == "ps_cards_001")
    events: queue.Queue[ClientEvent] = queue.Queue()
    client = DictationClient(server.url, events.put)
    client.start()
    try:
        wait_for(events, StateChanged, where=lambda e: e.state is ClientState.READY)
        script = utterance_events(recording, 1)
        for event in script[:-1]:
            client.submit(event)  # type: ignore[arg-type]
        n = len(recording.pcm()) // 2
        client.submit(UtteranceEnded(1, EndReason.CANCELLED, 0, n, n, n))
        for event in utterance_events(recording, 2):
            client.submit(event)  # type: ignore[arg-type]
        final = wait_for(events, FinalText)
        assert isinstance(final, FinalText) and final.utterance_id == 2
        assert client.pending_utterances == 0
        with pytest.raises(queue.Empty):  # and no final ever comes for the cancelled one
            wait_for(events, FinalText, timeout=0.5)
    finally:
        client.close()
