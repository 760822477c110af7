"""Factories for the tray app's platform parts (microphone, VAD, typing, hotkeys).

Kept apart from app.py so tests can build the app with the same parts, and so heavy
imports (torch for the VAD, sounddevice, pynput) happen only when a part is made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from desktop.audio.source import AudioSource, MicrophoneSource, SourceStatus, list_input_devices
from desktop.audio.vad import SileroVad, SpeechDetector
from desktop.settings import Settings

log = logging.getLogger(__name__)


def microphone_spec(name: str) -> str | int | None:
    """Settings hold a device name substring or an index; empty = system default."""
    name = name.strip()
    if not name:
        return None
    return int(name) if name.isdigit() else name


def make_source(settings: Settings, on_status: Callable[[str], None]) -> AudioSource:
    def status(s: SourceStatus) -> None:
        on_status(str(s))

    return MicrophoneSource(microphone_spec(settings.microphone), on_status=status)


def make_detector() -> SpeechDetector:
    return SileroVad()


def input_device_names() -> list[str]:
    try:
        return [device.name for device in list_input_devices()]
    except Exception as exc:  # no PortAudio: the dialog still opens, with a free-text field
        log.warning("cannot list microphones: %s", exc)
        return []


def open_meter_source(name: str) -> AudioSource:
    """A second, short-lived stream on the device for the settings dialog's level meter."""
    return MicrophoneSource(microphone_spec(name), rescan_on_reopen=False)
