"""Audio sources: where 16 kHz mono int16 blocks come from.

``MicrophoneSource`` records a sounddevice (PortAudio) input; ``WavFileSource`` and
``ArraySource`` replay audio for tests and benchmarks, in real time or as fast as possible.
All of them hand out int16 mono 16 kHz blocks through ``read()``; block sizes vary, the
pipeline re-chunks them.

sounddevice, soundfile and soxr are imported lazily: ``import sounddevice`` raises OSError
when the PortAudio library is missing, and a module that merely mentions a microphone
must stay importable on such a machine.
"""

from __future__ import annotations

import enum
import functools
import logging
import queue
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
Int16Array = npt.NDArray[np.int16]

__all__ = [
    "SAMPLE_RATE",
    "ArraySource",
    "AudioBackendUnavailableError",
    "AudioDeviceError",
    "AudioSource",
    "DigitalSilence",
    "EndOfStream",
    "InputDevice",
    "MicrophoneSource",
    "SourceStatus",
    "SourceStatusKind",
    "WavFileSource",
    "import_sounddevice",
    "list_input_devices",
    "load_audio_16k_mono",
    "resolve_input_device",
]


class AudioBackendUnavailableError(RuntimeError):
    """sounddevice or the PortAudio library is not installed."""


class AudioDeviceError(RuntimeError):
    """An input device cannot be found or opened."""


class EndOfStream(Exception):
    """The source has no more audio (file ended, or the source was stopped/closed)."""


def import_sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio into a clear error."""
    try:
        import sounddevice  # type: ignore[import-untyped]
    except OSError as exc:  # sounddevice raises OSError, not ImportError, without PortAudio
        raise AudioBackendUnavailableError(
            "the PortAudio library is missing (on Debian/Ubuntu: apt install libportaudio2)"
        ) from exc
    except ImportError as exc:
        raise AudioBackendUnavailableError(
            "the 'sounddevice' package is missing (pip install 'tingxie[desktop]')"
        ) from exc
    return sounddevice


# ---- devices --------------------------------------------------------------------------


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    default_samplerate: float
    is_default: bool

    def __str__(self) -> str:
        mark = "*" if self.is_default else " "
        return (
            f"{mark}{self.index:3d} {self.name} ({self.hostapi}, "
            f"{self.max_input_channels} ch, {self.default_samplerate:g} Hz)"
        )


def _default_input_index(sd: Any) -> int | None:
    try:
        dev = sd.default.device
        idx = dev[0] if isinstance(dev, (list, tuple)) or hasattr(dev, "__getitem__") else dev
        idx = int(idx)
    except (TypeError, ValueError, IndexError):
        return None
    return idx if idx >= 0 else None


#: Host APIs to list on Windows, best first. PortAudio shows every microphone once per
#: host API (MME, DirectSound, WASAPI, WDM-KS), and MME cuts names at 31 characters;
#: WASAPI has full names and is what Windows' own sound settings list.
WINDOWS_HOST_APIS = ("Windows WASAPI", "MME")


def preferred_host_api(hostapi_names: Sequence[str], platform: str) -> int | None:
    """The one host API whose devices are listed (its index), or None to list all
    (every platform but Windows, where one device appears once anyway)."""
    if platform != "win32":
        return None
    for wanted in WINDOWS_HOST_APIS:
        if wanted in hostapi_names:
            return list(hostapi_names).index(wanted)
    return None


def list_input_devices(sd: Any = None, platform: str | None = None) -> list[InputDevice]:
    """Input-capable devices as PortAudio sees them (``*`` marks the default); on
    Windows only those of one host API (:func:`preferred_host_api`)."""
    sd = sd or import_sounddevice()
    default = _default_input_index(sd)
    try:
        hostapi_infos = list(sd.query_hostapis())
        hostapis = [str(h["name"]) for h in hostapi_infos]
    except Exception:  # a fake or odd backend without host APIs: names are optional
        hostapi_infos, hostapis = [], []
    only = preferred_host_api(hostapis, platform or sys.platform)
    if only is not None:
        # the system default is MME's; within WASAPI its own default input is the default
        chosen_default = int(hostapi_infos[only].get("default_input_device", -1))
        default = chosen_default if chosen_default >= 0 else default
    out = []
    for i, d in enumerate(sd.query_devices()):
        if int(d["max_input_channels"]) <= 0:
            continue
        ha = int(d.get("hostapi", -1))
        if only is not None and ha != only:
            continue
        out.append(
            InputDevice(
                index=i,
                name=str(d["name"]),
                hostapi=hostapis[ha] if 0 <= ha < len(hostapis) else "?",
                max_input_channels=int(d["max_input_channels"]),
                default_samplerate=float(d["default_samplerate"]),
                is_default=(i == default),
            )
        )
    return out


def resolve_input_device(spec: str | int | None, sd: Any = None) -> int | None:
    """Device index for ``spec``: None (the default device), an index, a string of digits,
    or a case-insensitive name substring (an exact name wins over substrings)."""
    if spec is None or spec == "":
        return None
    devices = list_input_devices(sd)
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        idx = int(spec)
        if any(d.index == idx for d in devices):
            return idx
        raise AudioDeviceError(
            f"no input device with index {idx}; have: "
            + ", ".join(f"{d.index}: {d.name}" for d in devices)
        )
    want = spec.strip().lower()
    exact = [d for d in devices if d.name.lower() == want]
    if exact:
        return exact[0].index
    matches = [d for d in devices if want in d.name.lower()]
    if not matches:
        raise AudioDeviceError(
            f"no input device matching {spec!r}; have: " + ", ".join(d.name for d in devices)
        )
    if len(matches) > 1:
        log.info("%d input devices match %r; using %s", len(matches), spec, matches[0].name)
    return matches[0].index


# ---- the interface ----------------------------------------------------------------------


class AudioSource(ABC):
    """int16 mono 16 kHz blocks. ``start`` begins capture, ``read`` returns the next block
    (None when ``timeout`` passes first; raises EndOfStream when there will be no more),
    ``stop`` ends capture (``read`` then raises EndOfStream), ``close`` frees everything."""

    sample_rate: int = SAMPLE_RATE

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def read(self, timeout: float | None = None) -> Int16Array | None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def close(self) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Int16Array]:
        while True:
            try:
                block = self.read(timeout=0.5)
            except EndOfStream:
                return
            if block is not None:
                yield block

    def __enter__(self) -> AudioSource:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---- replay -------------------------------------------------------------------------------


def _float_to_int16(x: npt.NDArray[np.floating[Any]]) -> Int16Array:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def load_audio_16k_mono(path: str | Path) -> Int16Array:
    """Read an audio file as 16 kHz mono int16. A file already in that format comes back
    bit-exact; anything else is downmixed and resampled with soxr."""
    import soundfile  # type: ignore[import-untyped]

    info = soundfile.info(str(path))
    if info.samplerate == SAMPLE_RATE and info.channels == 1:
        data, _ = soundfile.read(str(path), dtype="int16")
        return np.asarray(data, dtype=np.int16)
    import soxr  # type: ignore[import-untyped]

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return _float_to_int16(mono)


class ArraySource(AudioSource):
    """Replays int16 samples in blocks, paced in real time (``realtime=True``: each block is
    handed out when it would have been fully captured) or as fast as they are read."""

    def __init__(
        self,
        samples: Int16Array,
        *,
        realtime: bool = False,
        block_samples: int = 512,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if samples.ndim != 1:
            raise ValueError("samples must be mono (1-D)")
        self.samples = np.asarray(samples, dtype=np.int16)
        self.realtime = realtime
        self.block_samples = block_samples
        self._clock, self._sleep = clock, sleep
        self._pos = 0
        self._t0: float | None = None
        self._stopped = False

    def start(self) -> None:
        self._pos, self._t0, self._stopped = 0, self._clock(), False

    def read(self, timeout: float | None = None) -> Int16Array | None:
        if self._t0 is None:
            raise RuntimeError("start() the source first")
        if self._stopped or self._pos >= len(self.samples):
            raise EndOfStream
        end = min(self._pos + self.block_samples, len(self.samples))
        if self.realtime:
            wait = self._t0 + end / SAMPLE_RATE - self._clock()
            if timeout is not None and wait > timeout:
                self._sleep(timeout)
                return None
            if wait > 0:
                self._sleep(wait)
        block: Int16Array = self.samples[self._pos : end].copy()
        self._pos = end
        return block

    def stop(self) -> None:
        self._stopped = True


class WavFileSource(ArraySource):
    """An audio file (WAV, FLAC...) as a source; converted to 16 kHz mono if needed."""

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = False,
        block_samples: int = 512,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        super().__init__(
            load_audio_16k_mono(self.path),
            realtime=realtime,
            block_samples=block_samples,
            clock=clock,
            sleep=sleep,
        )


# ---- the microphone ------------------------------------------------------------------------


class SourceStatusKind(enum.Enum):
    OPENED = "opened"
    LOST = "lost"  # the device stopped delivering audio or failed
    RETRYING = "retrying"  # a reopen attempt failed; another follows after a backoff
    REOPENED = "reopened"
    OVERFLOW = "overflow"  # blocks were lost (PortAudio overflow or our queue full)
    SILENT = "silent"  # only exact zeros for a while: muted, or blocked by the OS


#: What to tell the user when the microphone delivers digital silence. On Windows the
#: usual cause is the privacy switch: with "Let desktop apps access your microphone"
#: off, the device opens normally and records zeros.
SILENCE_HINT_WINDOWS = (
    "The microphone records only silence. Check Windows Settings › Privacy & security › "
    "Microphone: “Microphone access” and “Let desktop apps access your microphone” must be "
    "on. Also check that the microphone is not muted."
)
SILENCE_HINT = "The microphone records only silence: is it muted?"


class DigitalSilence:
    """Counts samples of exact digital silence (every sample 0) in a row.

    Real microphones always carry some noise, so seconds of exact zeros mean the audio
    is blocked (Windows' privacy setting, a hardware mute switch). :meth:`feed` returns
    True once when ``after_s`` of zeros have been seen; any non-zero sample starts over
    (and re-arms the report). Pure: it counts samples, it has no clock.
    """

    def __init__(self, after_s: float = 3.0, sample_rate: int = SAMPLE_RATE) -> None:
        self.after_samples = int(after_s * sample_rate)
        self._zeros = 0
        self._reported = False

    def feed(self, block: Int16Array) -> bool:
        if block.size == 0:
            return False
        if np.any(block):
            self._zeros = 0
            self._reported = False
            return False
        self._zeros += int(block.size)
        if self._zeros >= self.after_samples and not self._reported:
            self._reported = True
            return True
        return False


@dataclass(frozen=True)
class SourceStatus:
    kind: SourceStatusKind
    message: str

    def __str__(self) -> str:
        return self.message


class MicrophoneSource(AudioSource):
    """A sounddevice InputStream. The PortAudio callback only copies each block into a
    queue; conversion, stall detection and reopening happen in ``read`` (the audio thread).

    If the device gives 16 kHz mono int16 (PortAudio or the host API converting), blocks
    pass through untouched. Otherwise it is opened at its native rate and channels, and
    ``read`` downmixes and resamples with a streaming soxr resampler.

    A device that fails or goes silent for ``stall_timeout_s`` is closed and reopened with
    backoff; ``on_status`` hears about it (LOST, RETRYING, REOPENED). ``sd`` injects a
    sounddevice-like module (tests).
    """

    def __init__(
        self,
        device: str | int | None = None,
        *,
        block_ms: float = 32,
        on_status: Callable[[SourceStatus], None] | None = None,
        stall_timeout_s: float = 2.0,
        backoff_s: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
        max_queued_blocks: int = 1000,
        rescan_on_reopen: bool = True,
        silence_after_s: float = 3.0,
        sd: Any = None,
    ) -> None:
        self.device_spec = device
        self._silence = DigitalSilence(silence_after_s)
        self.block_ms = block_ms
        self.on_status = on_status
        self.stall_timeout_s = stall_timeout_s
        self.backoff_s = tuple(backoff_s) or (1.0,)
        # PortAudio enumerates devices once: a replugged device is only seen after a
        # re-init. Only safe while this process has no other PortAudio streams open.
        self.rescan_on_reopen = rescan_on_reopen
        self._sd = sd
        self._queue: queue.Queue[tuple[int, npt.NDArray[Any], bool]] = queue.Queue(
            max_queued_blocks
        )
        self._stream: Any = None
        self._gen = 0  # which stream a queued block came from
        self._finished = threading.Event()
        self._resampler: Any = None
        self._native_rate: float = SAMPLE_RATE
        self._started = False
        self._last_block = 0.0
        self._next_retry = 0.0
        self._attempt = 0
        self._dropped_blocks = 0  # written only by the PortAudio callback
        self._reported_drops = 0
        self.device_name: str | None = None
        self.converting = False

    # -- lifecycle

    def start(self) -> None:
        if self._started:
            return
        if self._sd is None:
            self._sd = import_sounddevice()
        self._open()
        self._started = True
        self._notify(SourceStatusKind.OPENED, f"microphone open: {self.device_name}")

    def stop(self) -> None:
        self._started = False
        self._close_stream()

    # -- reading

    def read(self, timeout: float | None = None) -> Int16Array | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._started:
                raise EndOfStream
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return None
            if self._stream is None:
                self._try_reopen()
                if self._stream is None:
                    pause = self._next_retry - time.monotonic()
                    if deadline is not None:
                        pause = min(pause, deadline - time.monotonic())
                    if pause > 0:
                        time.sleep(min(pause, 0.1))
                    continue
            wait = 0.1 if deadline is None else max(0.0, min(0.1, deadline - now))
            try:
                gen, block, flagged = self._queue.get(timeout=wait)
            except queue.Empty:
                self._check_alive()
                continue
            if gen != self._gen:
                continue  # left over from a stream we already closed
            self._last_block = time.monotonic()
            self._attempt = 0
            if flagged:
                self._notify(SourceStatusKind.OVERFLOW, "audio input overflow: samples lost")
            if self._dropped_blocks != self._reported_drops:
                n = self._dropped_blocks - self._reported_drops
                self._reported_drops = self._dropped_blocks
                self._notify(
                    SourceStatusKind.OVERFLOW,
                    f"audio queue full: {n} blocks dropped (audio thread too slow)",
                )
            out = self._convert(block)
            if self._silence.feed(out):
                log.warning("microphone %s: only digital silence", self.device_name)
                hint = SILENCE_HINT_WINDOWS if sys.platform == "win32" else SILENCE_HINT
                self._notify(SourceStatusKind.SILENT, hint)
            if len(out):
                return out

    def _convert(self, block: npt.NDArray[Any]) -> Int16Array:
        if not self.converting:
            return block.reshape(-1)  # int16 mono: the callback's copy, untouched
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono)
        return _float_to_int16(mono)

    # -- PortAudio thread: copy the block into the queue and nothing else

    def _callback(
        self, gen: int, indata: npt.NDArray[Any], frames: int, time_info: Any, status: Any
    ) -> None:
        try:
            self._queue.put_nowait((gen, indata.copy(), bool(status)))
        except queue.Full:
            self._dropped_blocks += 1

    # -- opening, losing, reopening

    def _open(self) -> None:
        sd = self._sd
        index = resolve_input_device(self.device_spec, sd)
        info = sd.query_devices(index if index is not None else None, "input")
        self.device_name = str(info["name"])
        try:
            sd.check_input_settings(device=index, channels=1, dtype="int16", samplerate=SAMPLE_RATE)
            rate, channels, dtype, self.converting = float(SAMPLE_RATE), 1, "int16", False
        except Exception as exc:  # PortAudioError/ValueError: not supported as is
            rate = float(info["default_samplerate"])
            channels = 1
            try:
                sd.check_input_settings(device=index, channels=1, dtype="float32", samplerate=rate)
            except Exception:
                channels = max(1, int(info["max_input_channels"]))
            dtype, self.converting = "float32", True
            log.info(
                "%s cannot record 16 kHz mono int16 (%s); recording %g Hz, %d ch and converting",
                self.device_name,
                exc,
                rate,
                channels,
            )
        import soxr

        self._resampler = (
            soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            if self.converting and rate != SAMPLE_RATE
            else None
        )
        self._native_rate = rate
        self._gen += 1
        self._drain()
        self._finished.clear()
        stream = sd.InputStream(
            device=index,
            samplerate=rate,
            channels=channels,
            dtype=dtype,
            blocksize=max(1, round(rate * self.block_ms / 1000)),
            callback=functools.partial(self._callback, self._gen),
            finished_callback=self._finished.set,
        )
        try:
            stream.start()
        except Exception:
            stream.close()
            raise
        self._stream = stream
        self._last_block = time.monotonic()

    def _check_alive(self) -> None:
        if self._stream is None:
            return
        silent_for = time.monotonic() - self._last_block
        if self._finished.is_set() or not self._stream.active:
            self._lose("the input stream stopped")
        elif silent_for > self.stall_timeout_s:
            self._lose(f"no audio for {silent_for:.1f} s")

    def _lose(self, reason: str) -> None:
        log.warning("microphone %s lost: %s", self.device_name, reason)
        self._close_stream()
        # The attempt count is only reset by audio arriving: a device that opens but
        # never delivers is retried less and less often.
        self._next_retry = (
            time.monotonic() + self.backoff_s[min(self._attempt, len(self.backoff_s) - 1)]
        )
        self._notify(SourceStatusKind.LOST, f"microphone lost ({reason}); reconnecting")

    def _try_reopen(self) -> None:
        if time.monotonic() < self._next_retry:
            return
        try:
            if self.rescan_on_reopen:
                self._sd._terminate()
                self._sd._initialize()
            self._open()
        except Exception as exc:  # any open failure: the device may come back later
            delay = self.backoff_s[min(self._attempt, len(self.backoff_s) - 1)]
            self._attempt += 1
            self._next_retry = time.monotonic() + delay
            log.info("reopening microphone failed (%s); next try in %.2f s", exc, delay)
            self._notify(
                SourceStatusKind.RETRYING,
                f"microphone unavailable ({exc}); retrying in {delay:g} s",
            )
            return
        self._notify(SourceStatusKind.REOPENED, f"microphone reopened: {self.device_name}")

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        self._gen += 1  # anything still queued from it is stale
        try:
            stream.abort()  # stop() can hang when the device delivers nothing
        except Exception as exc:  # a vanished device may fail to abort; close anyway
            log.debug("abort failed: %s", exc)
        try:
            stream.close()
        except Exception as exc:
            log.debug("close failed: %s", exc)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _notify(self, kind: SourceStatusKind, message: str) -> None:
        if self.on_status is None:
            return
        try:
            self.on_status(SourceStatus(kind, message))
        except Exception:
            log.exception("on_status listener failed")
