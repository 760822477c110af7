"""Audio sources without sound hardware: a scripted sounddevice stand-in, files, arrays;
and the pipeline's thread plumbing."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import soxr

from desktop.audio.pipeline import AudioPipeline
from desktop.audio.segmenter import EndReason, Mode, Segmenter
from desktop.audio.source import (
    ArraySource,
    AudioBackendUnavailableError,
    AudioDeviceError,
    EndOfStream,
    MicrophoneSource,
    SourceStatus,
    SourceStatusKind,
    WavFileSource,
    import_sounddevice,
    list_input_devices,
    load_audio_16k_mono,
    resolve_input_device,
)
from desktop.audio.vad import ScriptedDetector
from tests.desktop.helpers import SPEECH_DIR, Collector, speech


class FakePortAudioError(Exception):
    pass


class FakeStream:
    def __init__(self, sd: FakeSD, **kw: Any) -> None:
        self.sd, self.kw = sd, kw
        self.active = False
        self.aborted = False
        sd.streams.append(self)

    def start(self) -> None:
        if self.sd.unplugged:
            raise FakePortAudioError("device unavailable")
        self.active = True

    def abort(self) -> None:
        self.aborted, self.active = True, False

    def close(self) -> None:
        self.active = False

    # what PortAudio's thread would do
    def push(self, block: np.ndarray, status: int = 0) -> None:
        self.kw["callback"](block, len(block), None, status)

    def die(self) -> None:
        self.active = False
        self.kw["finished_callback"]()


class FakeSD:
    """Enough of sounddevice for MicrophoneSource: devices, settings checks, streams."""

    def __init__(self) -> None:
        self.devices = [
            {
                "name": "Built-in Mic",
                "max_input_channels": 2,
                "default_samplerate": 48000.0,
                "hostapi": 0,
                "stereo_only": True,
            },
            {
                "name": "HDMI Output",
                "max_input_channels": 0,
                "default_samplerate": 48000.0,
                "hostapi": 0,
            },
            {
                "name": "USB Headset Mic",
                "max_input_channels": 1,
                "default_samplerate": 16000.0,
                "hostapi": 0,
            },
        ]
        self.default = type("D", (), {"device": [2, 1]})()
        self.streams: list[FakeStream] = []
        self.unplugged = False
        self.rescans = 0

    def query_hostapis(self) -> list[dict[str, Any]]:
        return [{"name": "ALSA"}]

    def query_devices(self, device: int | None = None, kind: str | None = None) -> Any:
        if device is None and kind is None:
            return self.devices
        return self.devices[self.default.device[0] if device is None else device]

    def check_input_settings(
        self, device: int | None, channels: int, dtype: str, samplerate: float
    ) -> None:
        d = self.query_devices(device, "input")
        if samplerate != d["default_samplerate"] or channels > d["max_input_channels"]:
            raise FakePortAudioError("invalid sample rate / channels")
        if d.get("stereo_only") and channels != 2:
            raise FakePortAudioError("invalid number of channels")

    def InputStream(self, **kw: Any) -> FakeStream:  # sounddevice's name
        return FakeStream(self, **kw)

    def _terminate(self) -> None:
        self.rescans += 1

    def _initialize(self) -> None:
        pass


def test_list_and_resolve_devices() -> None:
    sd = FakeSD()
    devs = list_input_devices(sd)
    assert [d.name for d in devs] == ["Built-in Mic", "USB Headset Mic"]
    assert [d.is_default for d in devs] == [False, True]
    assert "USB Headset Mic" in str(devs[1]) and devs[1].hostapi == "ALSA"
    assert resolve_input_device(None, sd) is None
    assert resolve_input_device("usb", sd) == 2
    assert resolve_input_device("built-in mic", sd) == 0
    assert resolve_input_device(0, sd) == 0
    assert resolve_input_device("2", sd) == 2
    with pytest.raises(AudioDeviceError, match="Built-in Mic"):
        resolve_input_device("webcam", sd)
    with pytest.raises(AudioDeviceError):
        resolve_input_device(1, sd)  # an output-only device


def test_native_16k_mono_device_passes_blocks_through_bit_exact() -> None:
    sd = FakeSD()
    statuses: list[SourceStatus] = []
    mic = MicrophoneSource("USB", sd=sd, on_status=statuses.append)
    mic.start()
    (stream,) = sd.streams
    assert stream.kw["samplerate"] == 16000 and stream.kw["channels"] == 1
    assert stream.kw["dtype"] == "int16" and stream.kw["blocksize"] == 512
    assert not mic.converting
    block = speech("ps_cards_001")[:512].reshape(-1, 1)
    stream.push(block)
    out = mic.read(timeout=1)
    assert out is not None and out.dtype == np.int16
    np.testing.assert_array_equal(out, block[:, 0])
    assert statuses[0].kind is SourceStatusKind.OPENED
    mic.stop()
    assert stream.aborted  # abort(), never stop(): stop can hang on a silent device
    with pytest.raises(EndOfStream):
        mic.read(timeout=0.1)


def test_48k_stereo_device_is_downmixed_and_resampled_with_soxr() -> None:
    sd = FakeSD()
    mic = MicrophoneSource("Built-in", sd=sd)
    mic.start()
    (stream,) = sd.streams
    assert mic.converting
    assert (stream.kw["samplerate"], stream.kw["channels"]) == (48000, 2)
    assert stream.kw["dtype"] == "float32" and stream.kw["blocksize"] == 1536
    t = np.arange(48000 * 2) / 48000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, left * 0.5], axis=1).astype(np.float32)  # mean = 0.375 sine
    out = []
    for i in range(0, len(stereo), 1536):
        stream.push(stereo[i : i + 1536])
        while (block := mic.read(timeout=0.01)) is not None:
            out.append(block)
    audio = np.concatenate(out)
    assert audio.dtype == np.int16
    assert 31_000 <= len(audio) <= 32_000  # 2 s at 16 kHz, minus the resampler's delay
    steady = audio[4000:-4000].astype(np.float64) / 32768
    spectrum = np.abs(np.fft.rfft(steady))
    assert np.fft.rfftfreq(len(steady), 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=2)
    assert np.abs(steady).max() == pytest.approx(0.375, abs=0.01)
    mic.stop()


def test_lost_device_is_reopened_with_backoff_and_reported() -> None:
    sd = FakeSD()
    statuses: list[SourceStatus] = []
    mic = MicrophoneSource(
        sd=sd, on_status=statuses.append, backoff_s=(0.05, 0.1), stall_timeout_s=0.3
    )
    mic.start()
    sd.streams[0].push(np.ones((512, 1), dtype=np.int16))
    assert mic.read(timeout=1) is not None
    sd.unplugged = True
    sd.streams[0].die()  # PortAudio ends the stream
    assert mic.read(timeout=0.5) is None  # no exception, no audio
    kinds = [s.kind for s in statuses]
    assert kinds[:3] == [
        SourceStatusKind.OPENED,
        SourceStatusKind.LOST,
        SourceStatusKind.RETRYING,
    ], statuses
    assert sd.streams[0].aborted
    sd.unplugged = False
    assert mic.read(timeout=0.5) is None  # reopened meanwhile; nothing recorded yet
    assert statuses[-1].kind is SourceStatusKind.REOPENED
    assert sd.rescans >= 2  # PortAudio re-initialised to see a replugged device
    new = sd.streams[-1]
    assert new.active
    sd.streams[0].push(np.full((512, 1), 7, dtype=np.int16))  # late block from the old one
    new.push(np.full((512, 1), 9, dtype=np.int16))
    out = mic.read(timeout=1)
    assert out is not None and (out == 9).all()
    # a device that simply stops delivering counts as lost too
    assert mic.read(timeout=0.6) is None
    assert [s.kind for s in statuses].count(SourceStatusKind.LOST) >= 2
    mic.stop()


def test_overflow_is_reported() -> None:
    sd = FakeSD()
    statuses: list[SourceStatus] = []
    mic = MicrophoneSource(sd=sd, on_status=statuses.append, max_queued_blocks=2)
    mic.start()
    for _ in range(4):
        sd.streams[0].push(np.zeros((512, 1), dtype=np.int16), status=1)
    assert mic.read(timeout=1) is not None
    kinds = [s.kind for s in statuses]
    assert kinds.count(SourceStatusKind.OVERFLOW) == 2  # input overflow + queue full
    assert "2 blocks dropped" in str(statuses[-1])
    mic.stop()


def test_missing_portaudio_gives_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    with pytest.raises(AudioBackendUnavailableError, match="libportaudio2"):
        import_sounddevice()
    with pytest.raises(AudioBackendUnavailableError):
        MicrophoneSource().start()
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(AudioBackendUnavailableError, match="sounddevice"):
        list_input_devices()


def test_wav_16k_mono_is_bit_exact(tmp_path: Path) -> None:
    path = SPEECH_DIR / "ps_cards_001.wav"
    raw, _ = soundfile.read(path, dtype="int16")
    np.testing.assert_array_equal(load_audio_16k_mono(path), raw)
    src = WavFileSource(path, block_samples=1000)
    src.start()
    blocks = list(src)
    assert [len(b) for b in blocks[:-1]] == [1000] * (len(blocks) - 1)
    np.testing.assert_array_equal(np.concatenate(blocks), raw)


def test_wav_44k_stereo_is_converted(tmp_path: Path) -> None:
    mono16 = speech("ps_cards_001").astype(np.float32) / 32768
    mono44 = soxr.resample(mono16, 16000, 44100)
    path = tmp_path / "stereo44.wav"
    soundfile.write(path, np.stack([mono44, mono44], axis=1), 44100, subtype="PCM_16")
    audio = load_audio_16k_mono(path)
    assert audio.dtype == np.int16
    assert abs(len(audio) - len(mono16)) <= 2
    n = min(len(audio), len(mono16))
    corr = np.corrcoef(audio[:n].astype(np.float64), mono16[:n])[0, 1]
    assert corr > 0.99


def test_array_source_paced_in_real_time_with_a_fake_clock() -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    src = ArraySource(
        np.zeros(16000, dtype=np.int16),
        realtime=True,
        block_samples=4000,
        clock=lambda: now[0],
        sleep=sleep,
    )
    src.start()
    assert src.read(timeout=0.1) is None  # the first block is 250 ms away
    got = []
    while True:
        try:
            block = src.read(timeout=1.0)
        except EndOfStream:
            break
        if block is not None:
            got.append(block)
    assert sum(map(len, got)) == 16000
    assert now[0] == pytest.approx(101.0)  # one second of audio took one second


def test_pipeline_thread_delivers_stamped_events_and_queued_commands() -> None:
    audio = np.arange(512 * 40, dtype=np.int64).astype(np.int16)
    clock = iter(range(1000, 2000))
    col = Collector()
    det = ScriptedDetector([0.0] * 40)  # no speech at all: only the key matters
    seg = Segmenter(mode=Mode.HANDS_FREE)
    pipeline = AudioPipeline(ArraySource(audio), seg, det, col, clock=lambda: float(next(clock)))
    pipeline.set_mode(Mode.PUSH_TO_TALK)
    pipeline.press()  # applied on the audio thread before the first chunk
    pipeline.start()
    assert pipeline.wait(5)
    assert pipeline.error is None and det.calls == 40 and pipeline.stats.chunks == 40
    (d,) = col.dropped  # held key, no speech: dropped at the end of the stream
    assert d.reason.value == "no_speech" and col.utterances == []

    det2 = ScriptedDetector([0.9] * 40)
    col2 = Collector()
    p2 = AudioPipeline(
        ArraySource(np.concatenate([audio, audio[:100]])),
        Segmenter(),
        det2,
        col2,
        clock=lambda: 5.0,
    )
    p2.run()
    (u,) = col2.utterances
    assert u.started.detected_at == 5.0
    assert u.ended is not None and u.ended.detected_at == 5.0
    assert u.ended.reason is EndReason.STREAM_END
    assert len(u.audio) == 512 * 40 + 100  # the partial last chunk too


def test_pipeline_reports_a_failing_consumer() -> None:
    errors: list[BaseException] = []

    def bad_consumer(event: object) -> None:
        raise RuntimeError("boom")

    p = AudioPipeline(
        ArraySource(np.zeros(512 * 20, dtype=np.int16)),
        Segmenter(),
        ScriptedDetector([0.9] * 20),
        bad_consumer,
        on_error=errors.append,
    )
    p.run()
    assert isinstance(p.error, RuntimeError) and errors == [p.error]


def test_pipeline_stop_from_another_thread_ends_the_utterance() -> None:
    src = ArraySource(np.zeros(16000 * 30, dtype=np.int16), realtime=True)
    col = Collector()
    done = threading.Event()

    def on_event(e: object) -> None:
        col.add(e)  # type: ignore[arg-type]
        if col.utterances and col.utterances[-1].ended:
            done.set()

    p = AudioPipeline(src, Segmenter(), ScriptedDetector([], default=0.9), on_event)
    p.start()
    assert p.running
    threading.Event().wait(0.5)
    p.stop()
    assert not p.running and done.is_set()
    assert col.utterances[0].ended is not None
    assert col.utterances[0].ended.reason is EndReason.STREAM_END
