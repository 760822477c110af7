"""The tray app as a user runs it: a real process on an X display (Xvfb + openbox), a
real microphone (PulseAudio pipe source) hearing real speech, a real server process
(fake engine), push-to-talk held with ``xdotool``, and the final typed into a QLineEdit
of another process. For ASCII (keystrokes) and Chinese (clipboard paste, with the
user's clipboard restored), and the overlay never takes the focus."""

from __future__ import annotations

import ast
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Recording, spawn_fake_server
from tests.desktop.conftest import VirtualMic
from tests.output.target_window import CLIP_TEXT
from tests.output.x11 import TargetWindow, child_env, xclip_get, xdotool

FINAL_LINE = re.compile(r"final(?: \d+)?: (?P<text>'.*'|\".*\") \(")


class LiveMicrophone:
    """Keeps the virtual microphone fed in real time: quiet room noise, and speech when
    asked. (A pipe source with no writer delivers nothing, like an unplugged mic.)"""

    def __init__(self, mic: VirtualMic) -> None:
        self._mic = mic
        self._speech: queue.Queue[tuple[np.ndarray, threading.Event]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="live-mic")
        self._rng = np.random.default_rng(7)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def say(self, samples: np.ndarray) -> threading.Event:
        """Queue speech; the event is set when its first sample goes into the mic."""
        started = threading.Event()
        self._speech.put((samples.astype("<i2"), started))
        return started

    def _run(self) -> None:
        import os

        block = 512
        fd = os.open(self._mic.fifo, os.O_WRONLY)
        t0, written = time.perf_counter(), 0
        current: np.ndarray | None = None
        try:
            while not self._stop.is_set():
                if current is None or len(current) == 0:
                    try:
                        current, started = self._speech.get_nowait()
                        started.set()
                    except queue.Empty:
                        current = None
                if current is not None and len(current):
                    chunk, current = current[:block], current[block:]
                    chunk = np.pad(chunk, (0, block - len(chunk)))
                else:
                    chunk = np.round(self._rng.normal(0, 20, block)).astype("<i2")
                delay = t0 + written / 16000 - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                os.write(fd, chunk.astype("<i2").tobytes())
                written += block
        finally:
            os.close(fd)


@pytest.fixture(scope="module")
def live_mic(virtual_mic: VirtualMic) -> Iterator[LiveMicrophone]:
    mic = LiveMicrophone(virtual_mic)
    mic.start()
    yield mic
    mic.stop()


@pytest.fixture(scope="module")
def fake_server() -> Iterator[int]:
    proc, port = spawn_fake_server(env=child_env())
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def start_app(settings_dir: Path, port: int, language: str) -> subprocess.Popen[bytes]:
    settings_dir.mkdir(parents=True, exist_ok=True)
    (settings_dir / "tingxie.ini").write_text(
        "[General]\nschema_version=1\n"
        f"server_url=ws://127.0.0.1:{port}\nmode=push_to_talk\nhold_key=f9\nwarm_mic=true\n"
        f"language={language}\n"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "desktop.app", "--settings-dir", str(settings_dir)],
        # The final depends on where the VAD cut, so the test reads it from the app's log,
        # which carries what was said only with the debugging option on.
        env={**child_env(), "TINGXIE_LOG_TRANSCRIPTS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_log(log: Path, pattern: str, timeout: float = 30.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8") if log.exists() else ""
        if match := re.search(pattern, text):
            return match
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in the app log:\n{text[-3000:]}")


def active_window() -> int:
    out = subprocess.run(["xdotool", "getactivewindow"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


@pytest.mark.parametrize(
    ("language", "recording_id", "clipboard_used"),
    [("en", "ps_goforward", False), ("zh", "ps_forever2", True)],
)
def test_push_to_talk_types_the_final_into_another_app(
    language: str,
    recording_id: str,
    clipboard_used: bool,
    live_mic: LiveMicrophone,
    fake_server: int,
    target: TargetWindow,
    recordings: list[Recording],
    tmp_path: Path,
) -> None:
    settings_dir = tmp_path / "settings"
    app = start_app(settings_dir, fake_server, language)
    log = settings_dir / "logs" / "tingxie.log"
    try:
        wait_log(log, r"global hotkeys bound")
        wait_log(log, r"client state: ready")
        target.reset()
        deadline = time.monotonic() + 10
        while active_window() != target.window_id and time.monotonic() < deadline:
            time.sleep(0.05)  # the window manager activates the target a little later
        assert active_window() == target.window_id, "the target window never became active"
        assert target.command("setclip") == "OK"  # the user's clipboard, three formats
        focus_seen: list[int] = []
        watching = threading.Event()

        def watch_focus() -> None:
            while not watching.is_set():
                focus_seen.append(active_window())
                time.sleep(0.05)

        watcher = threading.Thread(target=watch_focus, daemon=True)
        watcher.start()
        recording = next(r for r in recordings if r.id == recording_id)
        speech = np.frombuffer(recording.pcm(), "<i2")
        started = live_mic.say(speech)
        assert started.wait(5)
        time.sleep(0.2)  # the key goes down a little after the first syllable
        xdotool("keydown", "F9")
        time.sleep(len(speech) / 16000)
        xdotool("keyup", "F9")
        match = wait_log(log, FINAL_LINE.pattern)
        final = ast.literal_eval(match.group("text"))
        assert final, "the final is not empty"
        if language == "zh":
            assert all("\u4e00" <= ch <= "\u9fff" for ch in final), final
        else:
            assert final.isascii()
        assert target.wait_text(final, timeout=10) == final  # typed, exactly
        time.sleep(0.3)
        watching.set()
        watcher.join(2)
        assert focus_seen and set(focus_seen) == {target.window_id}, "focus moved"
        clip = xclip_get()
        assert clip is not None and clip.decode() == CLIP_TEXT  # clipboard restored
        method = "clipboard_paste" if clipboard_used else "keystrokes"
        typed = wait_log(log, r"typed (\d+) chars by (\w+) into")
        assert typed.group(2) == method and int(typed.group(1)) == len(final)
    finally:
        app.terminate()
        app.wait(10)
