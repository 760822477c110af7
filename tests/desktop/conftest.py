"""Desktop audio fixtures: a real virtual microphone (PulseAudio pipe source).

A private PulseAudio daemon is started whose default source reads s16le 16 kHz mono PCM
from a FIFO. Tests write PCM into the FIFO; the code under test opens the default input
device through sounddevice/PortAudio (ALSA's pulse plugin) as it would a real microphone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


class VirtualMic:
    def __init__(self, fifo: str, rate: int, runtime_dir: str) -> None:
        self.fifo, self.rate, self.runtime_dir = fifo, rate, runtime_dir

    def feed(self, samples: np.ndarray, pace: bool = True, block: int = 512) -> None:
        """Write int16 samples into the microphone, in real time when ``pace``."""
        pcm = np.asarray(samples, dtype="<i2").tobytes()
        fd = os.open(self.fifo, os.O_WRONLY)
        t0 = time.perf_counter()
        try:
            for i in range(0, len(pcm), block * 2):
                if pace:
                    delay = t0 + (i // 2) / self.rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                os.write(fd, pcm[i : i + block * 2])
        finally:
            os.close(fd)

    def feed_in_background(self, samples: np.ndarray, pace: bool = True) -> threading.Thread:
        t = threading.Thread(target=self.feed, args=(samples, pace), name="vmic-feed", daemon=True)
        t.start()
        return t

    def feed_until(self, stop: threading.Event, value: int = 1000) -> threading.Thread:
        """Write a constant ``value`` in real time until ``stop``, reopening the FIFO
        whenever the pipe source goes away and comes back."""

        def run() -> None:
            block = np.full(512, value, dtype="<i2").tobytes()
            while not stop.is_set():
                try:
                    fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:  # no FIFO or no reader right now
                    time.sleep(0.05)
                    continue
                t0, i = time.perf_counter(), 0
                try:
                    while not stop.is_set():
                        delay = t0 + i * 512 / self.rate - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        with contextlib.suppress(BlockingIOError):
                            os.write(fd, block)
                        i += 1
                except OSError:  # reader gone (source unloaded)
                    pass
                finally:
                    os.close(fd)

        t = threading.Thread(target=run, name="vmic-feed-until", daemon=True)
        t.start()
        return t

    def source_module_id(self) -> str | None:
        for line in self.pactl("list", "short", "modules").splitlines():
            if "module-pipe-source" in line:
                return line.split()[0]
        return None

    def unplug(self) -> None:
        module = self.source_module_id()
        assert module is not None
        self.pactl("unload-module", module)

    def plug(self) -> None:
        if self.source_module_id() is None:
            self.pactl(
                "load-module",
                "module-pipe-source",
                "source_name=vmic",
                f"file={self.fifo}",
                "format=s16le",
                f"rate={self.rate}",
                "channels=1",
            )
        self.pactl("set-default-source", "vmic")

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], check=True, capture_output=True, text=True).stdout


def _rescan_portaudio() -> None:
    import sounddevice as sd

    # PortAudio enumerates devices at initialisation only.
    sd._terminate()
    sd._initialize()


@pytest.fixture(scope="session")
def virtual_mic() -> Iterator[VirtualMic]:
    if not shutil.which("pulseaudio") or not shutil.which("pactl"):
        pytest.skip("pulseaudio/pactl not installed (apt install pulseaudio pulseaudio-utils)")
    rt = tempfile.mkdtemp(prefix="pa-rt-")
    os.chmod(rt, 0o700)
    old = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = rt
    fifo = os.path.join(rt, "vmic.fifo")
    subprocess.run(
        [
            "pulseaudio",
            "--daemonize=yes",
            "--exit-idle-time=-1",
            "--system=false",
            "--disallow-exit",
            "-n",
            f"--log-target=file:{rt}/pulse.log",
            "--load=module-native-protocol-unix",
            f"--load=module-pipe-source source_name=vmic file={fifo} "
            "format=s16le rate=16000 channels=1",
        ],
        check=True,
    )
    try:
        for _ in range(100):
            if subprocess.run(["pactl", "info"], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        subprocess.run(["pactl", "set-default-source", "vmic"], check=True)
        _rescan_portaudio()
        yield VirtualMic(fifo, 16000, rt)
    finally:
        with contextlib.suppress(OSError, ValueError):
            pid = int(Path(rt, "pulse", "pid").read_text().strip())
            os.kill(pid, signal.SIGTERM)
        if old is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = old
        shutil.rmtree(rt, ignore_errors=True)


@pytest.fixture(scope="session")
def silero():  # type: ignore[no-untyped-def]
    from desktop.audio.vad import SileroVad

    return SileroVad()
