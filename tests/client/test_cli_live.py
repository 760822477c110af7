"""tingxie-cli --vad: WAV audio through Silero VAD and the streaming client."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np

from tests.conftest import CLI, Recording


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(pcm)


def test_vad_mode_sends_one_utterance_per_sentence(
    server_process, recordings: list[Recording], subprocess_env, tmp_path: Path
) -> None:
    _, port = server_process
    silence = np.zeros(int(1.5 * 16000), dtype="<i2").tobytes()
    chosen = [r for r in recordings if r.id in ("ps_cards_001", "ps_0880", "ps_goforward")]
    wav = tmp_path / "three.wav"
    write_wav(wav, silence + b"".join(r.pcm() + silence for r in chosen))
    out = subprocess.run(
        [*CLI, "--url", f"ws://127.0.0.1:{port}", "--vad", "--fast", "--json", str(wav)],
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    finals = [e for e in events if e["type"] == "final"]
    assert len(finals) == 3 and all(f["text"] for f in finals)
    timelines = [e for e in events if e["type"] == "timeline"]
    for timeline, recording in zip(timelines, chosen, strict=True):
        # One utterance per sentence: about the recording (whose own leading/trailing
        # silence may be cut), never reaching into the next sentence. Bit-exactness of
        # the audio is checked by the virtual-microphone tests.
        assert recording.seconds - 0.5 < timeline["audio_s"] < recording.seconds + 1.5
        assert timeline["stop_sent"] is not None and timeline["final_received"] is not None
