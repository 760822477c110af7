"""End to end with real words: speech played into a real (virtual) microphone goes
through PortAudio → MicrophoneSource → Silero VAD → segmenter → DictationClient →
WebSocket → in-process server with a real ASR engine (faster-whisper tiny.en, test-only),
and the final text of every sentence is its transcript.

The clips are ones tiny.en transcribes exactly (after :func:`normalize`) when decoded
alone; the test proves the pipeline delivers every word of them: a lost first syllable
or a clipped last word changes the text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time

import numpy as np

from desktop.audio.source import MicrophoneSource, SourceStatus, SourceStatusKind
from desktop.live import LiveDictation, LiveOptions
from desktop.streaming import ClientEvent, FinalText, UtteranceFailed
from tests.conftest import CLI, Recording, StartServer
from tests.desktop.conftest import VirtualMic
from tests.desktop.helpers import room_noise, speech
from tests.e2e.whisper_engine import WhisperGenerator, normalize, whisper_engine

log = logging.getLogger(__name__)

#: tiny.en gets these exactly right alone (checked with WhisperGenerator.transcribe).
CLIPS = ["ps_goforward", "ps_forever2", "ps_0930"]


async def wait_until(cond, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return bool(cond())


async def test_spoken_sentences_arrive_as_their_transcripts(
    virtual_mic: VirtualMic,
    whisper_generator: WhisperGenerator,
    start: StartServer,
    recordings: list[Recording],
) -> None:
    transcripts = {r.id: r.text for r in recordings}
    server = await start(engine=whisper_engine(whisper_generator))
    await server.wait_loaded()

    parts = [room_noise(1.0, seed=200)]
    for k, name in enumerate(CLIPS):
        parts += [speech(name), room_noise(1.5, seed=201 + k)]
    fed = np.concatenate(parts)

    events: list[ClientEvent] = []
    statuses: list[SourceStatus] = []
    lock = threading.Lock()

    def on_event(event: ClientEvent) -> None:
        with lock:
            events.append(event)

    def finals() -> list[FinalText]:
        with lock:
            return [e for e in events if isinstance(e, FinalText)]

    mic = MicrophoneSource(on_status=statuses.append)  # the default device: vmic
    live = LiveDictation(mic, LiveOptions(url=server.url), on_event)
    live.start()
    try:
        assert await wait_until(lambda: statuses, 5), "microphone did not open"
        feeder = virtual_mic.feed_in_background(fed, pace=True)
        await asyncio.to_thread(feeder.join, len(fed) / 16000 + 10)
        assert not feeder.is_alive()
        assert await wait_until(lambda: len(finals()) >= len(CLIPS), 20), events
    finally:
        await asyncio.to_thread(live.stop)

    assert live.pipeline.error is None
    assert [s.kind for s in statuses] == [SourceStatusKind.OPENED], statuses
    with lock:
        failed = [e for e in events if isinstance(e, UtteranceFailed)]
    assert not failed, failed
    got = finals()
    texts = [f.text for f in got]
    log.info("finals: %s", texts)
    assert [normalize(t) for t in texts] == [normalize(transcripts[n]) for n in CLIPS], texts
    for final in got:
        timeline = final.timeline
        assert timeline.stop_sent is not None and timeline.final_received is not None
        assert timeline.end_to_final() is not None and timeline.end_to_final() > 0
    # each utterance carried real audio, and the server decoded every final with whisper
    assert whisper_generator.calls >= len(CLIPS)


#: For the CLI run: other clips than above, also transcribed exactly by tiny.en alone.
CLI_CLIPS = ["ps_0870", "ps_cards_003"]


async def test_cli_mic_json_prints_the_transcripts(
    virtual_mic: VirtualMic,
    whisper_generator: WhisperGenerator,
    start: StartServer,
    recordings: list[Recording],
    subprocess_env: dict[str, str],
) -> None:
    """``tingxie-cli --mic --json`` as a child process, listening to the virtual
    microphone (the default source of the private PulseAudio), until stopped."""
    transcripts = {r.id: r.text for r in recordings}
    server = await start(engine=whisper_engine(whisper_generator))
    await server.wait_loaded()
    env = {**subprocess_env, "XDG_RUNTIME_DIR": virtual_mic.runtime_dir}
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "--mic",
        "--json",
        "--url",
        server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"[microphone]" in line, line  # the microphone is open
        parts = [room_noise(0.5, seed=300)]
        for k, name in enumerate(CLI_CLIPS):
            parts += [speech(name), room_noise(1.5, seed=301 + k)]
        feeder = virtual_mic.feed_in_background(np.concatenate(parts), pace=True)
        await asyncio.to_thread(feeder.join, 30)
        events: list[dict[str, object]] = []
        while sum(e["type"] == "final" for e in events) < len(CLI_CLIPS):
            raw = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert raw, f"cli exited early: {events}"
            events.append(json.loads(raw))
        # SIGTERM stops it as Ctrl+C does; SIGINT would be ignored when the suite itself
        # runs as a background job (SIGINT ignored is inherited).
        proc.send_signal(signal.SIGTERM)
        rest, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    events += [json.loads(raw) for raw in rest.decode().splitlines()]
    finals = [str(e["text"]) for e in events if e["type"] == "final"]
    assert [normalize(t) for t in finals] == [normalize(transcripts[n]) for n in CLI_CLIPS]
    timelines = [e for e in events if e["type"] == "timeline"]
    assert len(timelines) == len(CLI_CLIPS)
    assert all(t["final_received"] is not None for t in timelines)
