"""``tingxie-cli``: stream WAV files to a tingxie server and print what comes back.

Each WAV file is one utterance. With ``--json`` every event is one JSON line with a
``t`` field (seconds since the connection opened), which tests and benchmarks parse.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import wave
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from desktop.client import AuthFailed, ClientError, ServerLink, ServerUnreachable, TlsError
from protocol.audio import BYTES_PER_SECOND, CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH
from protocol.log_redaction import TRANSCRIPTS_ENV, env_flag
from protocol.messages import Error, ErrorCode, Final, Partial, Ready, ServerMessage, Status
from protocol.version import __version__

log = logging.getLogger(__name__)

#: Errors after which the utterance will get no final (others are warnings).
NO_FINAL_FOLLOWS = frozenset(
    {
        ErrorCode.ENGINE_ERROR,
        ErrorCode.NOT_READY,
        ErrorCode.SHUTTING_DOWN,
        ErrorCode.ALREADY_STARTED,
        ErrorCode.DUPLICATE_ID,
        ErrorCode.TOO_MANY_SESSIONS,
        ErrorCode.UNSUPPORTED_AUDIO,
        ErrorCode.UNSUPPORTED_LANGUAGE,
        ErrorCode.INTERNAL,
    }
)

EXIT_OK, EXIT_SERVER_ERROR, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH, EXIT_TLS = 0, 1, 2, 3, 4, 5


class WavError(ValueError):
    pass


def load_wav_pcm(path: Path) -> bytes:
    """The file's audio as the wire format (s16le mono 16 kHz)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not a PCM WAV file ({exc})") from None
    if (rate, channels, width) == (SAMPLE_RATE, CHANNELS, SAMPLE_WIDTH):
        return frames
    return _convert(path, frames, rate, channels, width)


def _convert(path: Path, frames: bytes, rate: int, channels: int, width: int) -> bytes:
    import numpy as np

    if width != 2:
        raise WavError(f"{path}: {8 * width}-bit samples; convert to 16-bit PCM first")
    try:
        import soxr
    except ImportError:
        raise WavError(
            f"{path}: {rate} Hz, {channels} channel(s); resampling needs the desktop extra "
            f"(pip install 'tingxie[desktop]') or convert it: sox IN -r 16000 -c 1 -b 16 OUT.wav"
        ) from None
    samples = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).astype(np.float32)
    mono = samples.mean(axis=1) / 32768.0
    resampled = soxr.resample(mono, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else mono
    return bytes(np.clip(np.round(resampled * 32768.0), -32768, 32767).astype("<i2").tobytes())


class Printer:
    """Human-readable or JSON-lines output of events."""

    def __init__(self, out: TextIO, as_json: bool, t0: float) -> None:
        self._out = out
        self._json = as_json
        self._t0 = t0
        self._tty = out.isatty()
        self._partial_shown = False

    def event(self, kind: str, **fields: Any) -> None:
        if self._json:
            record = {"t": round(time.monotonic() - self._t0, 4), "type": kind, **fields}
            self._out.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._out.flush()

    def message(self, message: ServerMessage) -> None:
        if self._json:
            fields = asdict(message)
            fields.pop("type", None)
            if isinstance(message, Error):
                fields["code"] = message.code.value
            kind = type(message).__name__.lower()
            self.event(kind, **fields)
            return
        if isinstance(message, Partial):
            if self._tty:
                self._out.write(f"\r\x1b[2K… {message.text}")
                self._partial_shown = True
            else:
                self._out.write(f"partial: {message.text}\n")
        elif isinstance(message, Final):
            self._clear_partial()
            timing = f"  ({message.timings.total_ms:.0f} ms)" if message.timings else ""
            self._out.write(f"final: {message.text}{timing}\n")
        elif isinstance(message, Error):
            self._clear_partial()
            self._out.write(f"error [{message.code.value}]: {message.message}\n")
        elif isinstance(message, Status):
            self._out.write(f"server: model {message.model_state} {message.message}\n")
        self._out.flush()

    def _clear_partial(self) -> None:
        if self._partial_shown:
            self._out.write("\r\x1b[2K")
            self._partial_shown = False


async def connect_with_retry(
    url: str,
    token: str | None,
    wait_s: float,
    ca_file: str | None = None,
    log_content: bool = False,
) -> ServerLink:
    """Connect; while the server is not up yet, retry for up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await ServerLink.open(
                url,
                token=token,
                client_name=f"tingxie-cli/{__version__}",
                ca_file=ca_file,
                log_content=log_content,
            )
        except TlsError:
            raise  # waiting does not make a certificate trusted
        except ServerUnreachable:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.25)


async def stream_files(
    url: str,
    token: str | None,
    files: Sequence[Path],
    *,
    realtime: bool,
    chunk_ms: int,
    language: str | None,
    context: str,
    printer: Printer,
    final_timeout_s: float,
    wait_s: float = 0.0,
    ca_file: str | None = None,
    log_content: bool = False,
) -> int:
    """Stream each file as one utterance; return an exit code."""
    audio = [load_wav_pcm(path) for path in files]  # fail on a bad file before connecting
    link = await connect_with_retry(url, token, wait_s, ca_file, log_content)
    async with link:
        ready: Ready = link.ready
        printer.event(
            "ready",
            server=ready.server,
            engine=ready.engine,
            model=ready.model,
            model_state=ready.model_state,
        )
        finals: asyncio.Queue[ServerMessage | None] = asyncio.Queue()
        failed = False

        async def receive() -> None:
            nonlocal failed
            async for message in link.messages():
                printer.message(message)
                if isinstance(message, Error):
                    failed = True
                    if message.fatal or message.code in NO_FINAL_FOLLOWS:
                        await finals.put(message)
                elif isinstance(message, Final):
                    await finals.put(message)
            await finals.put(None)

        receiver = asyncio.create_task(receive())
        chunk_bytes = max(SAMPLE_WIDTH, int(BYTES_PER_SECOND * chunk_ms / 1000) // 2 * 2)
        try:
            for index, (path, pcm) in enumerate(zip(files, audio, strict=True), start=1):
                utterance_id = f"{path.stem}-{index}"
                await link.start(utterance_id, language=language, context=context)
                printer.event(
                    "start",
                    id=utterance_id,
                    file=str(path),
                    audio_ms=round(len(pcm) / BYTES_PER_SECOND * 1000, 1),
                )
                began = time.monotonic()
                for offset in range(0, len(pcm), chunk_bytes):
                    if realtime:  # absolute schedule: no drift over long files
                        due = began + offset / BYTES_PER_SECOND
                        await asyncio.sleep(max(0.0, due - time.monotonic()))
                    await link.send_audio(pcm[offset : offset + chunk_bytes])
                if realtime:
                    await asyncio.sleep(
                        max(0.0, began + len(pcm) / BYTES_PER_SECOND - time.monotonic())
                    )
                await link.stop(utterance_id)
                printer.event("stop", id=utterance_id)
                result = await asyncio.wait_for(finals.get(), final_timeout_s)
                if result is None:
                    raise ServerUnreachable("server closed the connection before the final")
                if isinstance(result, Error) and result.fatal:
                    return EXIT_SERVER_ERROR
        finally:
            receiver.cancel()
        return EXIT_SERVER_ERROR if failed else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tingxie-cli",
        description="Stream WAV files to a tingxie server and print partial and final text.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"tingxie-cli {__version__}")
    p.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="WAV",
        help="one utterance per file (or, with --vad, cut by the VAD)",
    )
    live = p.add_argument_group(
        "live dictation (Silero VAD cuts utterances; needs the desktop extra)"
    )
    live.add_argument("--mic", action="store_true", help="dictate from the microphone until Ctrl+C")
    live.add_argument(
        "--device",
        default=None,
        help="microphone: name substring or index (default: system default)",
    )
    live.add_argument(
        "--vad",
        action="store_true",
        help="play the WAV files through the VAD pipeline as if spoken into the mic",
    )
    p.add_argument(
        "--url",
        default=os.environ.get("TINGXIE_URL", "ws://127.0.0.1:8765"),
        help="server URL (env TINGXIE_URL)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("TINGXIE_TOKEN"),
        help="bearer token, sent in the Authorization header (env TINGXIE_TOKEN)",
    )
    p.add_argument(
        "--ca-file",
        default=os.environ.get("TINGXIE_CA_FILE"),
        metavar="PEM",
        help="wss://: trust this CA certificate (or self-signed server certificate) "
        "instead of the system's CAs (env TINGXIE_CA_FILE)",
    )
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--realtime",
        dest="realtime",
        action="store_true",
        default=True,
        help="send audio at the pace it was spoken",
    )
    pace.add_argument(
        "--fast", dest="realtime", action="store_false", help="send audio as fast as possible"
    )
    p.add_argument("--chunk-ms", type=int, default=100, help="audio per frame")
    p.add_argument("--language", default=None, help="e.g. en, zh (default: detect)")
    p.add_argument("--context", default="", help="hotwords / context text")
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    p.add_argument("--final-timeout", type=float, default=60.0, help="seconds to wait for a final")
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep trying to connect this long (server still starting)",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log connection details (what was said only with TINGXIE_LOG_TRANSCRIPTS=1)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not 10 <= args.chunk_ms <= 1000:
        print("tingxie-cli: error: --chunk-ms must be between 10 and 1000", file=sys.stderr)
        return EXIT_USAGE
    if args.mic == bool(args.files):
        print("tingxie-cli: error: give WAV files or --mic (not both)", file=sys.stderr)
        return EXIT_USAGE
    printer = Printer(sys.stdout, args.json, time.monotonic())
    if args.mic or args.vad:
        return run_live(args, printer)
    try:
        return asyncio.run(
            stream_files(
                args.url,
                args.token,
                args.files,
                realtime=args.realtime,
                chunk_ms=args.chunk_ms,
                language=args.language,
                context=args.context,
                printer=printer,
                final_timeout_s=args.final_timeout,
                wait_s=args.wait,
                ca_file=args.ca_file,
                log_content=env_flag(os.environ, TRANSCRIPTS_ENV),
            )
        )
    except WavError as exc:
        print(f"tingxie-cli: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TlsError as exc:
        print(
            f"tingxie-cli: error: {exc}\n  CA file: --ca-file PEM (env TINGXIE_CA_FILE)",
            file=sys.stderr,
        )
        return EXIT_TLS
    except AuthFailed as exc:
        print(f"tingxie-cli: error: {exc}; check --token", file=sys.stderr)
        return EXIT_AUTH
    except ServerUnreachable as exc:
        print(f"tingxie-cli: error: {exc}\n  is tingxie-server running?", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ClientError as exc:
        print(f"tingxie-cli: error: {exc}", file=sys.stderr)
        return EXIT_SERVER_ERROR
    except asyncio.TimeoutError:
        print(f"tingxie-cli: error: no final within {args.final_timeout:g} s", file=sys.stderr)
        return EXIT_SERVER_ERROR
    except KeyboardInterrupt:
        return 130


def run_live(args: argparse.Namespace, printer: Printer) -> int:
    """--mic / --vad: the desktop pipeline without a GUI."""
    from desktop.audio.source import (
        AudioBackendUnavailableError,
        AudioDeviceError,
        AudioSource,
        MicrophoneSource,
        WavFileSource,
    )
    from desktop.audio.vad import VadUnavailableError
    from desktop.live import LiveDictation, LiveOptions
    from desktop.streaming import ClientEvent, ClientState, FinalText, PartialText, StateChanged
    from desktop.streaming import UtteranceFailed as Failed

    fatal: list[str] = []

    def on_event(event: ClientEvent) -> None:
        if isinstance(event, PartialText):
            printer.message(
                Partial(
                    text=event.stable + event.unstable,
                    id=str(event.utterance_id),
                    stable=event.stable,
                    unstable=event.unstable,
                )
            )
        elif isinstance(event, FinalText):
            printer.message(
                Final(text=event.text, id=str(event.utterance_id), language=event.language)
            )
            printer.event("timeline", **event.timeline.as_dict())
        elif isinstance(event, Failed):
            printer.message(
                Error(
                    code=ErrorCode.ENGINE_ERROR, message=event.message, id=str(event.utterance_id)
                )
            )
        elif isinstance(event, StateChanged):
            printer.event("state", state=event.state.value, detail=event.detail)
            quiet = (ClientState.READY, ClientState.CONNECTING, ClientState.CLOSED)
            if not args.json and event.state not in quiet:
                print(f"[{event.state.value}] {event.detail}", file=sys.stderr)
            if event.state in (ClientState.AUTH_FAILED, ClientState.VERSION_MISMATCH):
                fatal.append(event.detail)

    def on_status(status: object) -> None:
        print(f"[microphone] {status}", file=sys.stderr)

    try:
        sources: list[AudioSource] = (
            [MicrophoneSource(args.device, on_status=on_status)]
            if args.mic
            else [WavFileSource(path, realtime=args.realtime) for path in args.files]
        )
        options = LiveOptions(
            args.url, args.token, args.language, args.context, ca_file=args.ca_file
        )
        for source in sources:
            live = LiveDictation(source, options, on_event)
            live.start()
            try:
                while not live.wait_source_end(0.2):
                    if fatal:
                        print(f"tingxie-cli: error: {fatal[0]}", file=sys.stderr)
                        return EXIT_AUTH
            except KeyboardInterrupt:
                pass
            finally:
                live.pipeline.stop()
            ok = live.wait_all_finals(args.final_timeout)
            live.client.close()
            if not ok:
                print("tingxie-cli: error: not every utterance got its final", file=sys.stderr)
                return EXIT_SERVER_ERROR
    except (AudioBackendUnavailableError, AudioDeviceError, VadUnavailableError, OSError) as exc:
        print(f"tingxie-cli: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
