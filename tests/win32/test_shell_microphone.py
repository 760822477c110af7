"""Microphone on Windows: one host API listed, digital silence detected and explained."""

from __future__ import annotations

from typing import Any

import numpy as np

from desktop.audio.source import (
    SILENCE_HINT,
    DigitalSilence,
    MicrophoneSource,
    SourceStatus,
    SourceStatusKind,
    list_input_devices,
    preferred_host_api,
    resolve_input_device,
)
from tests.desktop.test_sources import FakeSD


class WindowsSD(FakeSD):
    """One headset and one webcam, each listed by four host APIs as PortAudio does."""

    APIS = ("MME", "Windows DirectSound", "Windows WASAPI", "Windows WDM-KS")

    def __init__(self, apis: list[str] | None = None) -> None:
        super().__init__()
        self.apis = apis if apis is not None else list(self.APIS)
        self.devices = []
        names = {
            "MME": ("Headset Microphone (WH-1000XM4", "Microphone (HD Webcam C270)"),
            "Windows DirectSound": (
                "Headset Microphone (WH-1000XM4 Hands-Free AG Audio)",
                "Microphone (HD Webcam C270)",
            ),
            "Windows WASAPI": (
                "Headset Microphone (WH-1000XM4 Hands-Free AG Audio)",
                "Microphone (HD Webcam C270)",
            ),
            "Windows WDM-KS": ("Headset Microphone (WH-1000XM4)", "Microphone (HD Webcam C270)"),
        }
        for api_index, api in enumerate(self.apis):
            for name in names[api]:
                self.devices.append(
                    {
                        "name": name,
                        "max_input_channels": 1,
                        "default_samplerate": 48000.0,
                        "hostapi": api_index,
                    }
                )
        self.default = type("D", (), {"device": [1, -1]})()  # MME's webcam

    def query_hostapis(self) -> list[dict[str, Any]]:
        wasapi_webcam = (
            2 * self.apis.index("Windows WASAPI") + 1 if "Windows WASAPI" in self.apis else -1
        )
        return [
            {
                "name": api,
                "default_input_device": wasapi_webcam if api == "Windows WASAPI" else 2 * i + 1,
            }
            for i, api in enumerate(self.apis)
        ]


def test_each_microphone_is_listed_once_on_windows() -> None:
    sd = WindowsSD()
    devices = list_input_devices(sd, platform="win32")
    assert [(d.name, d.hostapi) for d in devices] == [
        ("Headset Microphone (WH-1000XM4 Hands-Free AG Audio)", "Windows WASAPI"),
        ("Microphone (HD Webcam C270)", "Windows WASAPI"),
    ]
    assert [d.is_default for d in devices] == [False, True]  # WASAPI's own default
    # elsewhere nothing is filtered
    assert len(list_input_devices(sd, platform="linux")) == 8


def test_mme_when_there_is_no_wasapi() -> None:
    sd = WindowsSD(apis=["MME", "Windows DirectSound"])
    devices = list_input_devices(sd, platform="win32")
    assert [d.hostapi for d in devices] == ["MME", "MME"]


def test_preferred_host_api() -> None:
    assert preferred_host_api(WindowsSD.APIS, "win32") == 2
    assert preferred_host_api(["MME", "Windows DirectSound"], "win32") == 0
    assert preferred_host_api(["ASIO"], "win32") is None
    assert preferred_host_api(WindowsSD.APIS, "linux") is None


def test_a_name_saved_from_mme_still_finds_the_device(monkeypatch: Any) -> None:
    monkeypatch.setattr("desktop.audio.source.sys.platform", "win32")
    sd = WindowsSD()
    # MME cut the name at 31 characters; as a substring it finds the full WASAPI name
    assert resolve_input_device("Headset Microphone (WH-1000XM4", sd) == 4


def test_digital_silence_fires_once_after_the_threshold() -> None:
    d = DigitalSilence(after_s=1.0, sample_rate=1000)
    zeros = np.zeros(300, dtype=np.int16)
    assert [d.feed(zeros) for _ in range(3)] == [False, False, False]  # 900 samples
    assert d.feed(zeros) is True  # 1200 ≥ 1000
    assert d.feed(zeros) is False  # reported once
    noise = np.zeros(300, dtype=np.int16)
    noise[17] = 1  # one LSB of noise is a working microphone
    assert d.feed(noise) is False
    assert [d.feed(zeros) for _ in range(4)] == [False, False, False, True]  # re-armed
    assert d.feed(np.zeros(0, dtype=np.int16)) is False


def test_microphone_reports_silence_with_a_hint() -> None:
    sd = FakeSD()
    statuses: list[SourceStatus] = []
    mic = MicrophoneSource("USB", sd=sd, on_status=statuses.append, silence_after_s=0.1)
    mic.start()
    (stream,) = sd.streams
    for _ in range(4):  # 4 × 512 samples = 128 ms of zeros
        stream.push(np.zeros((512, 1), dtype=np.int16))
        assert mic.read(timeout=1) is not None  # the audio still flows
    silent = [s for s in statuses if s.kind is SourceStatusKind.SILENT]
    assert [str(s) for s in silent] == [SILENCE_HINT]
    mic.stop()


def test_windows_hint_names_the_privacy_setting(monkeypatch: Any) -> None:
    monkeypatch.setattr("desktop.audio.source.sys.platform", "win32")
    sd = FakeSD()
    statuses: list[SourceStatus] = []
    mic = MicrophoneSource("USB", sd=sd, on_status=statuses.append, silence_after_s=0.05)
    mic.start()
    sd.streams[0].push(np.zeros((1024, 1), dtype=np.int16))
    mic.read(timeout=1)
    mic.stop()
    (silent,) = [s for s in statuses if s.kind is SourceStatusKind.SILENT]
    assert "Let desktop apps access your microphone" in str(silent)
