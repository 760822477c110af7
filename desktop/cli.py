"""``tingxie-cli``: stream WAV files to a tingxie server and print what comes back.

Each WAV file is one utterance. With ``--json`` every event is one JSON line with a
``t`` field (seconds since the connection opened), which tests and benchmarks parse.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
import wave
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from websockets.exceptions import ConnectionClosed

from desktop.client import (
    AuthFailed,
    ClientError,
    ServerBusy,
    ServerLink,
    ServerUnreachable,
    TlsError,
    VersionMismatch,
)
from desktop.output.text_sink import escape_for_terminal
from protocol.audio import BYTES_PER_SECOND, CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH
from protocol.cli_help import own_default
from protocol.client_events import (
    ClientEvent,
    ClientState,
    FailReason,
    FinalText,
    PartialText,
    StateChanged,
    UtteranceCancelled,
    UtteranceFailed,
)
from protocol.client_machine import ClientMachine, Frame, MachineConfig
from protocol.endpoint import DEFAULT_SERVER_URL
from protocol.log_redaction import TRANSCRIPTS_ENV, env_flag
from protocol.version import __version__

log = logging.getLogger(__name__)

#: Exit codes, one per outcome (docs/configuration.md lists them).
EXIT_OK = 0  # every utterance got its final
EXIT_SERVER_ERROR = 1  # the server refused or failed an utterance
EXIT_USAGE = 2  # bad arguments, unreadable WAV, no microphone
EXIT_UNREACHABLE = 3  # no connection, or it was lost before every final came
EXIT_AUTH = 4  # the token was refused
EXIT_TLS = 5  # no trusted TLS connection
EXIT_TIMEOUT = 6  # an utterance got no final within --final-timeout
EXIT_BUSY = 7  # the server is full (connection limit) or shutting down
EXIT_VERSION = 8  # the server speaks another protocol version
EXIT_INTERRUPTED = 130  # stopped by Ctrl+C / SIGTERM while streaming files

#: Exit code per failure reason; the worst outcome of a run decides (see ``worst_exit_code``).
EXIT_BY_REASON = {
    FailReason.REFUSED: EXIT_SERVER_ERROR,
    FailReason.ENGINE_ERROR: EXIT_SERVER_ERROR,
    FailReason.MODEL_UNAVAILABLE: EXIT_SERVER_ERROR,
    FailReason.TOO_MANY_RETRIES: EXIT_SERVER_ERROR,
    FailReason.BACKLOG_FULL: EXIT_SERVER_ERROR,
    FailReason.TIMED_OUT: EXIT_TIMEOUT,
    FailReason.UNREACHABLE: EXIT_UNREACHABLE,
    FailReason.DISCONNECTED: EXIT_UNREACHABLE,
    FailReason.STOPPED: EXIT_INTERRUPTED,
}
SEVERITY = [EXIT_OK, EXIT_SERVER_ERROR, EXIT_TIMEOUT, EXIT_UNREACHABLE, EXIT_INTERRUPTED]


def worst_exit_code(codes: list[int]) -> int:
    return max(codes, key=SEVERITY.index, default=EXIT_OK)


class WavError(ValueError):
    pass


def _empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def load_wav_pcm(path: Path) -> bytes:
    """The file's audio as the wire format (s16le mono 16 kHz)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        why = str(exc) or ("the file is empty" if _empty(path) else "the file ends early")
        raise WavError(f"{path}: not a PCM WAV file ({why})") from None
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


def _json_line(record: dict[str, Any]) -> str:
    """One JSON line that a terminal shows as it is: characters the text sink would
    remove (C1 controls such as CSI, bidi overrides) are written as JSON escapes, which
    parse back to the same text."""
    line = json.dumps(record, ensure_ascii=False)
    return "".join(c if escape_for_terminal(c) == c else _json_escape(c) for c in line)


def _json_escape(c: str) -> str:
    o = ord(c)
    if o <= 0xFFFF:
        return f"\\u{o:04x}"
    o -= 0x10000
    return f"\\u{0xD800 + (o >> 10):04x}\\u{0xDC00 + (o & 0x3FF):04x}"


class Printer:
    """Human-readable or JSON-lines output of events. Server text is printed escaped
    (issue: a hostile server's OSC/CSI sequences must not reach the terminal)."""

    def __init__(self, out: TextIO, as_json: bool, t0: float) -> None:
        self._out = out
        self._json = as_json
        self._t0 = t0
        self._tty = out.isatty()
        self._partial_shown = False
        self.names: dict[int, str] = {}  # local utterance id → what the output calls it

    def event(self, kind: str, **fields: Any) -> None:
        if self._json:
            record = {"t": round(time.monotonic() - self._t0, 4), "type": kind, **fields}
            self._out.write(_json_line(record) + "\n")
            self._out.flush()

    def _name(self, utterance_id: int) -> str:
        return self.names.get(utterance_id, str(utterance_id))

    def client_event(self, event: ClientEvent) -> None:
        if isinstance(event, PartialText):
            text = event.stable + event.unstable
            self.event(
                "partial",
                text=text,
                id=self._name(event.utterance_id),
                stable=event.stable,
                unstable=event.unstable,
            )
            if self._json:
                return
            if self._tty:
                self._out.write(f"\r\x1b[2K… {escape_for_terminal(text)}")
                self._partial_shown = True
            else:
                self._out.write(f"partial: {escape_for_terminal(text)}\n")
        elif isinstance(event, FinalText):
            timings = asdict(event.timings) if event.timings else None
            self.event(
                "final",
                text=event.text,
                id=self._name(event.utterance_id),
                language=event.language,
                stale=event.stale,
                timings=timings,
            )
            if self._json:
                self.event("timeline", **event.timeline.as_dict())
                return
            self._clear_partial()
            timing = f"  ({event.timings.total_ms:.0f} ms)" if event.timings else ""
            self._out.write(f"final: {escape_for_terminal(event.text)}{timing}\n")
        elif isinstance(event, UtteranceFailed):
            self.event(
                "error",
                code=event.reason.value,
                message=event.message,
                id=self._name(event.utterance_id),
            )
            if self._json:
                return
            self._clear_partial()
            self._out.write(f"error [{event.reason.value}]: {escape_for_terminal(event.message)}\n")
        elif isinstance(event, UtteranceCancelled):
            self.event("cancelled", id=self._name(event.utterance_id))
        elif isinstance(event, StateChanged):
            self.event("state", state=event.state.value, detail=event.detail)
            return
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


class Outcomes:
    """What became of each utterance of a run, and the exit code that follows."""

    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.changed = asyncio.Event()
        self._lost: set[int] = set()  # utterances that were pending when a link was lost
        self.stopped: set[int] = set()  # utterances whose last "stop" was written

    def link_lost(self, pending: list[int]) -> None:
        self._lost.update(pending)

    def record(self, event: ClientEvent) -> None:
        if isinstance(event, FinalText):
            self.codes[event.utterance_id] = EXIT_OK
            self.stopped.add(event.utterance_id)  # a final follows only a stop
        elif isinstance(event, UtteranceFailed):
            if event.stop_sent:
                self.stopped.add(event.utterance_id)
            code = EXIT_BY_REASON[event.reason]
            if code == EXIT_TIMEOUT and event.utterance_id in self._lost:
                code = EXIT_UNREACHABLE  # no final because links kept being lost
            self.codes[event.utterance_id] = code
        elif isinstance(event, UtteranceCancelled):
            self.codes[event.utterance_id] = EXIT_OK
        else:
            return
        self.changed.set()

    def exit_code(self) -> int:
        return worst_exit_code(list(self.codes.values()))


#: Reconnecting in file mode: the first delay, doubling up to the second.
RECONNECT_FIRST_S = 0.25
RECONNECT_MAX_S = 2.0
#: Lost links that end a run at once: retrying cannot fix a refused token, an
#: untrusted certificate or another protocol version.
_FATAL_ON_RECONNECT: tuple[tuple[type[ClientError], int], ...] = (
    (AuthFailed, EXIT_AUTH),
    (TlsError, EXIT_TLS),
    (VersionMismatch, EXIT_VERSION),
)


class _Links:
    """File mode's links: the first one given, later ones opened after a loss (with
    backoff) while utterances are pending; each one drives the machine until it ends.
    What a lost link left unfinished is replayed on the next by the machine; an
    utterance whose deadline passes first fails there (exit 3 or 6)."""

    def __init__(
        self,
        machine: ClientMachine,
        printer: Printer,
        outcomes: Outcomes,
        open_link: Callable[[], Awaitable[ServerLink]],
    ) -> None:
        self.machine = machine
        self.printer = printer
        self.outcomes = outcomes
        self._open_link = open_link
        self.link: ServerLink | None = None
        self.outbox: asyncio.Queue[Frame] | None = None
        self.ended = asyncio.Event()  # the current link ended (set while there is none)
        self.ended.set()
        self.progress = asyncio.Event()  # the machine took an input
        self.losses: list[str] = []  # why links were lost, for the user
        self.fatal: tuple[int, str] | None = None  # a refusal that ends the run
        self._giving_up = False
        self._closers: set[asyncio.Task[None]] = set()

    def pump(self) -> None:
        machine = self.machine
        self.progress.set()
        frames = machine.data_to_send()
        if self.outbox is not None:
            for frame in frames:
                self.outbox.put_nowait(frame)
        for event in machine.events_to_deliver():
            self.printer.client_event(event)
            self.outcomes.record(event)
        if machine.wants_reconnect and self.link is not None and not self._giving_up:
            log.info("giving up this connection; the next one replays what is unfinished")
            self._giving_up = True
            closer = asyncio.ensure_future(self.link.close())
            self._closers.add(closer)
            closer.add_done_callback(self._closers.discard)

    async def drained(self) -> None:
        """Until what the machine produced so far is written or the link is gone:
        back-pressure (and "stop" is printed once the stop is really sent). With no
        link the machine keeps the audio for the next one."""
        outbox = self.outbox
        if outbox is None:
            return
        written = asyncio.ensure_future(outbox.join())
        gone = asyncio.ensure_future(self.ended.wait())
        await asyncio.wait([written, gone], return_when=asyncio.FIRST_COMPLETED)
        written.cancel()
        gone.cancel()

    async def run(self, first: ServerLink) -> None:
        """Links until cancelled (the run is over) or a refusal ends the run."""
        link: ServerLink | None = first
        attempt = 0
        clock = time.monotonic
        while True:
            if link is None:
                attempt += 1
                await asyncio.sleep(min(RECONNECT_MAX_S, RECONNECT_FIRST_S * 2 ** (attempt - 1)))
                self.machine.connecting(clock())
                try:
                    link = await self._open_link()
                except Exception as exc:  # whatever it is, the next try may work
                    for kind, code in _FATAL_ON_RECONNECT:
                        if isinstance(exc, kind):
                            self.fatal = (code, str(exc))
                            self.machine.abandon(FailReason.DISCONNECTED, str(exc), clock())
                            self.pump()
                            return
                    detail = str(exc) or type(exc).__name__
                    self.machine.link_failed(ClientState.UNREACHABLE, detail, clock())
                    self.pump()
                    continue
            opened = clock()
            try:
                reason = await self._drive(link)
            except Exception as exc:  # a failure nobody foresaw: still only this link's
                log.warning("connection failed: %s: %s", type(exc).__name__, exc)
                reason = f"connection failed: {exc or type(exc).__name__}"
            link = None
            if clock() - opened >= RECONNECT_MAX_S:
                attempt = 0  # a link that lasted: the next try comes soon
            if self.machine.pending:
                log.warning("%s; reconnecting (unfinished utterances are sent again)", reason)
                self.losses.append(reason)
                self.outcomes.link_lost(self.machine.pending_ids())

    async def _drive(self, link: ServerLink) -> str:
        machine, clock = self.machine, time.monotonic
        self.link, self.outbox, self._giving_up = link, asyncio.Queue(), False
        self.ended.clear()
        sender = asyncio.create_task(self._send(link, self.outbox))
        reason = "connection lost"
        try:
            machine.link_up(link.ready, clock())
            self.pump()
            async for message in link.messages():
                machine.receive(message, clock())
                self.pump()
            reason = link.close_reason()
        except (OSError, ConnectionError) as exc:
            reason = f"connection lost: {exc}"
        finally:
            self.link, self.outbox = None, None
            self.ended.set()
            sender.cancel()
            machine.link_down(reason, clock())
            self.pump()
            # asyncio.wait, not "await sender" under suppress(CancelledError): that would
            # swallow this task's own cancellation and the run would never end.
            await asyncio.wait([sender])
            with contextlib.suppress(Exception):
                await link.close()
        return reason

    @staticmethod
    async def _send(link: ServerLink, outbox: asyncio.Queue[Frame]) -> None:
        """One writer per link keeps frames in the machine's order."""
        while True:
            frame = await outbox.get()
            try:
                await link.send(frame)
            except Exception as exc:  # the receive loop notices the dead link
                log.info("send failed: %s", exc)
                with contextlib.suppress(Exception):
                    await link.close()
                return
            finally:
                outbox.task_done()


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
    """Stream each file as one utterance (one after the other, each waiting for its
    outcome); return an exit code. A lost link is reopened with backoff and what is
    unfinished is sent again; each utterance still ends by its deadline
    (``final_timeout_s`` after its audio), so the run is bounded."""
    audio = [load_wav_pcm(path) for path in files]  # fail on a bad file before connecting
    first = await connect_with_retry(url, token, wait_s, ca_file, log_content)
    clock = time.monotonic
    # --final-timeout: seconds after the end of the audio; the CLI never types, so no
    # text is stale.
    config = MachineConfig(
        final_base_s=final_timeout_s, final_per_audio_s=0.0, stale_after_s=float("inf")
    )
    machine = ClientMachine(secrets.token_hex(3), config, language=language, context=context)
    outcomes = Outcomes()

    async def reopen() -> ServerLink:
        return await ServerLink.open(
            url,
            token=token,
            client_name=f"tingxie-cli/{__version__}",
            ca_file=ca_file,
            log_content=log_content,
        )

    links = _Links(machine, printer, outcomes, reopen)

    async def tick() -> None:
        while True:
            due = machine.next_deadline()
            await asyncio.sleep(0.25 if due is None else min(0.25, max(0.0, due - clock())))
            machine.tick(clock())
            links.pump()

    ready = first.ready
    printer.event(
        "ready", server=ready.server, engine=ready.engine, model=ready.model,
        model_state=ready.model_state,
    )  # fmt: skip
    runner = asyncio.create_task(links.run(first))
    ticker = asyncio.create_task(tick())
    chunk_bytes = max(SAMPLE_WIDTH, int(BYTES_PER_SECOND * chunk_ms / 1000) // 2 * 2)
    try:
        for index, (path, pcm) in enumerate(zip(files, audio, strict=True), start=1):
            if links.fatal or EXIT_UNREACHABLE in outcomes.codes.values():
                break  # the server is gone for longer than an utterance may wait
            name = f"{path.stem}-{index}"
            printer.names[index] = name
            machine.utterance_started(index, clock())
            printer.event(
                "start",
                id=name,
                file=str(path),
                audio_ms=round(len(pcm) / BYTES_PER_SECOND * 1000, 1),
            )
            links.pump()
            began = clock()
            for offset in range(0, len(pcm), chunk_bytes):
                if realtime:  # absolute schedule: no drift over long files
                    due = began + offset / BYTES_PER_SECOND
                    await asyncio.sleep(max(0.0, due - clock()))
                machine.audio(index, pcm[offset : offset + chunk_bytes], clock())
                links.pump()
                await links.drained()
            if realtime:
                await asyncio.sleep(max(0.0, began + len(pcm) / BYTES_PER_SECOND - clock()))
            machine.utterance_ended(index, clock())
            links.pump()
            # "stop" is printed once the stop is really sent: with start-ack it waits
            # for the server's "started" (or the utterance ends first).
            while not machine.stop_written(index) and not runner.done():
                links.progress.clear()
                progressed = asyncio.ensure_future(links.progress.wait())
                await asyncio.wait([progressed, runner], return_when=asyncio.FIRST_COMPLETED)
                progressed.cancel()
            await links.drained()
            # Only a stop that was written: not for one that failed before (a start
            # never accepted) or that the links ended without.
            if machine.deadline_of(index) is None:  # it has its outcome already
                written = index in outcomes.stopped
            else:
                written = machine.stop_written(index)
            if written:
                printer.event("stop", id=name)
            while index not in outcomes.codes and not runner.done():
                outcomes.changed.clear()
                changed = asyncio.ensure_future(outcomes.changed.wait())
                await asyncio.wait([changed, runner], return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
        # Nothing is left without an outcome, even if the links ended early.
        machine.abandon(FailReason.DISCONNECTED, "the connection to the server ended", clock())
        links.pump()
    finally:
        ticker.cancel()
        runner.cancel()
        for result in await asyncio.gather(ticker, runner, return_exceptions=True):
            if isinstance(result, Exception):  # a bug: say so, without a traceback
                log.warning("file streaming failed: %s: %s", type(result).__name__, result)
        if links.link is not None:
            with contextlib.suppress(Exception):
                await links.link.close()
    if links.fatal:
        print(f"tingxie-cli: error: {links.fatal[1]}", file=sys.stderr)
        return links.fatal[0]
    code = outcomes.exit_code()
    if code == EXIT_UNREACHABLE and links.losses:
        print(f"tingxie-cli: error: {links.losses[-1]}", file=sys.stderr)
    return code


def websocket_url(text: str) -> str:
    """``--url``: a ws:// or wss:// address (an http:// one says which to use instead)."""
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("ws", "wss") and text.split("://", 1)[1]:
        return text
    if scheme in ("http", "https"):
        fixed = ("wss" if scheme == "https" else "ws") + text[len(scheme) :]
        raise argparse.ArgumentTypeError(f"{text!r} is a web address; the server's is {fixed!r}")
    raise argparse.ArgumentTypeError(f"{text!r} is not a server address like ws://host:port")


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
        help="one utterance per file (or, with --vad, cut by the VAD) "
        + own_default("none; give files or --mic"),
    )
    live = p.add_argument_group(
        "live dictation (Silero VAD cuts utterances; needs the desktop extra)"
    )
    live.add_argument("--mic", action="store_true", help="dictate from the microphone until Ctrl+C")
    live.add_argument(
        "--device",
        default=None,
        help="microphone: name substring or index " + own_default("system default"),
    )
    live.add_argument(
        "--vad",
        action="store_true",
        help="play the WAV files through the VAD pipeline as if spoken into the mic",
    )
    p.add_argument(
        "--url",
        type=websocket_url,
        default=os.environ.get("TINGXIE_URL", DEFAULT_SERVER_URL),
        # The variables' values are not shown: a URL may carry ?token=.
        help="server URL, ws://host:port or wss://host:port "
        + own_default(f"TINGXIE_URL if set, else {DEFAULT_SERVER_URL}"),
    )
    p.add_argument(
        "--token",
        default=os.environ.get("TINGXIE_TOKEN"),
        help="bearer token, sent in the Authorization header "
        + own_default("TINGXIE_TOKEN if set, else none"),
    )
    p.add_argument(
        "--ca-file",
        default=os.environ.get("TINGXIE_CA_FILE"),
        metavar="PEM",
        help="wss://: trust this CA certificate (or self-signed server certificate) "
        "instead of the system's CAs "
        + own_default("TINGXIE_CA_FILE if set, else the system's CAs"),
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
        "--fast",
        dest="realtime",
        action="store_false",
        default=argparse.SUPPRESS,  # the default is --realtime's (help shows it once)
        help="send audio as fast as possible",
    )
    p.add_argument("--chunk-ms", type=int, default=100, help="audio per frame")
    p.add_argument("--language", default=None, help="e.g. en, zh " + own_default("detect"))
    p.add_argument("--context", default="", help="hotwords / context text " + own_default("none"))
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


def _stop_on_sigterm() -> None:
    """SIGTERM stops the CLI as Ctrl+C does: --mic ends the recording and waits for the
    last finals, file streaming ends at once. A SIGINT ignored by whoever started us
    (a background job) stays ignored."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


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
    if args.mic and args.files:
        print("tingxie-cli: error: give WAV files or --mic, not both", file=sys.stderr)
        return EXIT_USAGE
    if not args.mic and not args.files:
        print(
            "tingxie-cli: error: nothing to dictate: give WAV files, or --mic to dictate "
            "from the microphone (see --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    _stop_on_sigterm()
    printer = Printer(sys.stdout, args.json, time.monotonic())
    if args.mic or args.vad:
        return run_live(args, printer)
    try:
        return _run_stoppable(
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
        hint = "check --token" if args.token else "give it with --token or TINGXIE_TOKEN"
        print(f"tingxie-cli: error: {exc}; {hint}", file=sys.stderr)
        return EXIT_AUTH
    except ServerBusy as exc:
        print(f"tingxie-cli: error: {exc}; try again later", file=sys.stderr)
        return EXIT_BUSY
    except ServerUnreachable as exc:
        print(f"tingxie-cli: error: {exc}\n  is tingxie-server running?", file=sys.stderr)
        return EXIT_UNREACHABLE
    except VersionMismatch as exc:
        print(f"tingxie-cli: error: {exc}", file=sys.stderr)
        return EXIT_VERSION
    except ClientError as exc:
        print(f"tingxie-cli: error: {exc}", file=sys.stderr)
        return EXIT_SERVER_ERROR
    except (ConnectionClosed, OSError) as exc:  # the link died mid-send
        print(f"tingxie-cli: error: connection lost: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl+C, SIGTERM
        return EXIT_INTERRUPTED


def _run_stoppable(work: Coroutine[Any, Any, int]) -> int:
    """``asyncio.run(work)``, with SIGTERM cancelling it as asyncio.run does for Ctrl+C
    (CancelledError out of here). An exception raised by a signal handler could land
    anywhere inside the event loop and leave its shutdown waiting for ever; a
    cancellation unwinds ``work`` through its own ``finally`` blocks."""

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        with contextlib.suppress(NotImplementedError):  # Windows: _stop_on_sigterm's stays
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await work

    return asyncio.run(main())


def run_live(args: argparse.Namespace, printer: Printer) -> int:
    """--mic / --vad: the desktop pipeline without a GUI (the tray's client driver,
    reconnecting; an utterance that cannot be finished fails at --final-timeout)."""
    from desktop.audio.source import (
        AudioBackendUnavailableError,
        AudioDeviceError,
        AudioSource,
        MicrophoneSource,
        WavFileSource,
    )
    from desktop.audio.vad import VadUnavailableError
    from desktop.live import LiveDictation, LiveOptions

    fatal: list[int] = []
    outcomes: dict[int, int] = {}

    def on_event(event: ClientEvent) -> None:
        printer.client_event(event)
        if isinstance(event, FinalText):
            outcomes[event.utterance_id] = EXIT_OK
        elif isinstance(event, UtteranceFailed):
            outcomes[event.utterance_id] = EXIT_BY_REASON[event.reason]
        elif isinstance(event, StateChanged):
            quiet = (ClientState.READY, ClientState.CONNECTING, ClientState.CLOSED)
            if not args.json and event.state not in quiet:
                print(f"[{event.state.value}] {event.detail}", file=sys.stderr)
            if event.state is ClientState.AUTH_FAILED:
                fatal.append(EXIT_AUTH)
                print(f"tingxie-cli: error: {event.detail}", file=sys.stderr)
            elif event.state is ClientState.VERSION_MISMATCH:
                fatal.append(EXIT_VERSION)
                print(f"tingxie-cli: error: {event.detail}", file=sys.stderr)

    def on_status(status: object) -> None:
        print(f"[microphone] {status}", file=sys.stderr)

    machine = MachineConfig(final_base_s=args.final_timeout, final_per_audio_s=0.0)
    try:
        sources: list[AudioSource] = (
            [MicrophoneSource(args.device, on_status=on_status)]
            if args.mic
            else [WavFileSource(path, realtime=args.realtime) for path in args.files]
        )
        options = LiveOptions(
            args.url,
            args.token,
            args.language,
            args.context,
            ca_file=args.ca_file,
            machine=machine,
        )
        for source in sources:
            live = LiveDictation(source, options, on_event)
            live.start()
            try:
                while not live.wait_source_end(0.2):
                    if fatal:
                        return fatal[0]
            except KeyboardInterrupt:
                pass  # the recording ends; what was said still gets its final
            finally:
                live.pipeline.stop()
            # The machine's deadlines end every utterance; the margin covers its timer.
            ok = live.wait_all_finals(args.final_timeout + 5.0)
            live.client.close()
            if fatal:
                return fatal[0]
            if not ok:
                print("tingxie-cli: error: not every utterance got its final", file=sys.stderr)
                return EXIT_TIMEOUT
    except (AudioBackendUnavailableError, AudioDeviceError, VadUnavailableError, OSError) as exc:
        print(f"tingxie-cli: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:  # --vad reads the WAV files with soundfile
        print(
            "tingxie-cli: error: --mic and --vad need the desktop extra: "
            f"pip install 'tingxie[desktop]' ({exc})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    code = worst_exit_code(list(outcomes.values()))
    if code != EXIT_OK:
        print("tingxie-cli: error: not every utterance got its text", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
