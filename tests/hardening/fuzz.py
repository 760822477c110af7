"""Live fuzzing of the server, the pure part: frames to send and what must come back.

:class:`ServerModel` mirrors the connection state machine of docs/protocol.md for one
socket of a fake-engine server, so every frame has a predicted answer: the exact error
replies (code, utterance id, fatal flag), a ``ready``, a close code, or nothing — and
every final the exact text the fake engine gives for the bytes the server accepted.
:class:`FrameMaker` draws frames from a seeded RNG: valid messages in random orders,
mutated and random text, invalid UTF-8, empty, oversized and tiny frames, floods.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from protocol.audio import BYTES_PER_SECOND
from protocol.codec import ProtocolError, decode_client, encode_client
from protocol.limits import HARD_MAX_FRAME_BYTES, MAX_TEXT_FRAME_BYTES, Limits
from protocol.messages import Cancel, ErrorCode, Hello, Start, Stop
from server.engine.fake import FAULT_HANG, FAULT_RAISE, text_for_audio

#: Close codes the transport uses for frames it refuses (RFC 6455).
CLOSE_INVALID_UTF8 = 1007
CLOSE_TOO_BIG = 1009
CLOSE_PROTOCOL_VERSION = 1002


@dataclass(frozen=True)
class Frame:
    """One WebSocket frame: ``text`` (str payload), ``binary``, or ``raw_text`` (bytes
    sent in a text frame, so possibly invalid UTF-8)."""

    kind: str
    text: str = ""
    data: bytes = b""

    def summary(self) -> str:
        if self.kind == "text":
            return f"text[{len(self.text)}] {self.text[:60]!r}"
        return f"{self.kind}[{len(self.data)}] {self.data[:24]!r}"


@dataclass(frozen=True)
class Reply:
    """An answer the server sends at once, in order: an ``error``, a ``ready`` or a
    ``started``."""

    type: str
    code: str = ""
    id: str = ""
    fatal: bool = False


@dataclass
class Utterance:
    id: str
    language: str | None
    context: str
    pcm: bytearray = field(default_factory=bytearray)
    stopped_at: float | None = None

    @property
    def fails(self) -> bool:
        """The fake engine answers this utterance with engine_error, not a final."""
        return self.context in (FAULT_RAISE, FAULT_HANG) and len(self.pcm) >= 2

    def transcript(self, n_bytes: int | None = None) -> str:
        data = bytes(self.pcm[:n_bytes] if n_bytes is not None else self.pcm)
        data = data[: len(data) - len(data) % 2]
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        return text_for_audio(samples, language=self.language)


@dataclass
class Outcome:
    replies: list[Reply] = field(default_factory=list)
    close_code: int | None = None


class ModelError(AssertionError):
    """The server did something the protocol does not allow."""


class ServerModel:
    """What one connection of the server must answer (docs/protocol.md).

    Finals are asynchronous: the model knows they will come, for which utterance, in
    which order and with which text, but not when. A ``start`` whose answer depends on
    whether a final still in flight has been sent (session limit, duplicate id) is
    *uncertain*: the fuzzer waits for the outstanding finals before sending it.
    """

    def __init__(self, limits: Limits, request_timeout_s: float) -> None:
        self.limits = limits
        self.request_timeout_s = request_timeout_s
        self.reset()

    def reset(self) -> None:
        """A new connection."""
        self.open: Utterance | None = None
        self.decoding: dict[str, Utterance] = {}  # stopped, answer not received; stop order
        self.utterances: dict[str, Utterance] = {}  # every one started, by id (latest)
        self.told_no_utterance = False
        self.said_hello = False  # accepted starts are answered with "started"
        self.next_number = 1
        self.finals_checked = 0
        self.engine_errors_checked = 0
        self.partials_checked = 0

    # ---------------------------------------------------------------- predicting

    def _sessions(self) -> set[str]:
        ids = set(self.decoding)
        if self.open is not None:
            ids.add(self.open.id)
        return ids

    def _take_number(self) -> str:
        number = self.next_number
        self.next_number += 1
        return f"u{number}"

    def _is_surely_decoding(self, utterance: Utterance, now: float) -> bool:
        """A hung utterance is certainly still decoding well before its timeout."""
        if utterance.context != FAULT_HANG or utterance.stopped_at is None:
            return False
        return now - utterance.stopped_at < self.request_timeout_s / 2

    def start_is_uncertain(self, frame: Frame, now: float) -> bool:
        """Whether the answer to ``frame`` depends on answers still in flight."""
        if frame.kind != "text" or not self.decoding:
            return False
        try:
            start = decode_client(frame.text)
        except ProtocolError:
            return False
        if not isinstance(start, Start) or start.sample_rate != 16_000 or self.open:
            return False  # decided before the sessions are looked at
        unsure = {i for i, u in self.decoding.items() if not self._is_surely_decoding(u, now)}
        if not unsure:
            return False
        if len(self._sessions()) >= self.limits.max_sessions_per_connection:
            return True
        if start.id:
            return start.id in unsure
        number = self.next_number
        while f"u{number}" in self._sessions():
            if f"u{number}" in unsure:
                return True
            number += 1
        return False

    def on_frame(self, frame: Frame, now: float) -> Outcome:
        if frame.kind == "binary":
            return self._on_audio(frame.data, now)
        if frame.kind == "raw_text":
            try:
                text = frame.data.decode("utf-8")
            except UnicodeDecodeError:
                return Outcome(close_code=CLOSE_INVALID_UTF8)
            return self._on_text(text, now)
        return self._on_text(frame.text, now)

    def _on_text(self, text: str, now: float) -> Outcome:
        if len(text.encode("utf-8", "surrogatepass")) > HARD_MAX_FRAME_BYTES:
            return Outcome(close_code=CLOSE_TOO_BIG)
        try:
            message = decode_client(text)
        except ProtocolError as exc:
            return Outcome([Reply("error", exc.code.value)])
        if isinstance(message, Start):
            return self._on_start(message)
        if isinstance(message, Stop):
            utterance = self._resolve(message.id)
            if utterance is None:
                return Outcome([Reply("error", ErrorCode.NO_UTTERANCE.value, message.id)])
            self._close_open(utterance, now)
            return Outcome()
        if isinstance(message, Cancel):
            utterance = self._resolve(message.id)
            if utterance is None:
                return Outcome([Reply("error", ErrorCode.NO_UTTERANCE.value, message.id)])
            self.open = None
            return Outcome()
        if message.protocol < 1:
            error = Reply("error", ErrorCode.UNSUPPORTED_VERSION.value, fatal=True)
            return Outcome([error], close_code=CLOSE_PROTOCOL_VERSION)
        self.said_hello = True
        return Outcome([Reply("ready")])

    def _on_start(self, start: Start) -> Outcome:
        def refuse(code: ErrorCode) -> Outcome:
            return Outcome([Reply("error", code.value, start.id)])

        if start.sample_rate != 16_000:
            return refuse(ErrorCode.UNSUPPORTED_AUDIO)
        if self.open is not None:
            return refuse(ErrorCode.ALREADY_STARTED)
        sessions = self._sessions()
        if start.id and start.id in sessions:
            return refuse(ErrorCode.DUPLICATE_ID)
        if len(sessions) >= self.limits.max_sessions_per_connection:
            return refuse(ErrorCode.TOO_MANY_SESSIONS)
        utterance_id = start.id or self._take_number()
        while utterance_id in sessions:
            utterance_id = self._take_number()
        self.open = Utterance(utterance_id, start.language, start.context)
        self.utterances[utterance_id] = self.open
        self.told_no_utterance = False
        return Outcome([Reply("started", id=utterance_id)] if self.said_hello else [])

    def _resolve(self, utterance_id: str) -> Utterance | None:
        if self.open is not None and utterance_id in ("", self.open.id):
            return self.open
        return None

    def _close_open(self, utterance: Utterance, now: float) -> None:
        utterance.stopped_at = now
        self.decoding[utterance.id] = utterance
        self.open = None

    def _on_audio(self, data: bytes, now: float) -> Outcome:
        if len(data) > HARD_MAX_FRAME_BYTES:
            return Outcome(close_code=CLOSE_TOO_BIG)
        utterance = self.open
        if utterance is None:
            if self.told_no_utterance:
                return Outcome()
            self.told_no_utterance = True
            return Outcome([Reply("error", ErrorCode.NO_UTTERANCE.value)])
        if len(data) > self.limits.max_audio_frame_bytes:
            return Outcome([Reply("error", ErrorCode.FRAME_TOO_LARGE.value, utterance.id)])
        limit = int(self.limits.max_utterance_seconds * BYTES_PER_SECOND)
        room = limit - len(utterance.pcm)
        if len(data) > room:  # the frame that crosses the limit is not kept
            self._close_open(utterance, now)
            return Outcome([Reply("error", ErrorCode.UTTERANCE_TOO_LONG.value, utterance.id)])
        utterance.pcm += data
        return Outcome()

    # ---------------------------------------------------------------- checking

    def _next_answer(self, utterance_id: str, what: str) -> Utterance:
        if not self.decoding:
            raise ModelError(f"{what} for {utterance_id!r}, but no utterance is decoding")
        first = next(iter(self.decoding))
        if first != utterance_id:
            raise ModelError(f"{what} for {utterance_id!r} before the one stopped first, {first!r}")
        return self.decoding.pop(first)

    def on_final(self, utterance_id: str, text: str) -> None:
        utterance = self._next_answer(utterance_id, "final")
        if utterance.fails:
            raise ModelError(f"final for {utterance_id!r}, whose engine fails: {text!r}")
        expected = utterance.transcript()
        if text != expected:
            raise ModelError(f"final of {utterance_id!r} is {text!r}, expected {expected!r}")
        self.finals_checked += 1

    def on_engine_error(self, utterance_id: str, now: float) -> None:
        utterance = self._next_answer(utterance_id, "engine_error")
        if not utterance.fails:
            raise ModelError(f"engine_error for {utterance_id!r}, which should have a final")
        if utterance.context == FAULT_HANG and utterance.stopped_at is not None:
            waited = now - utterance.stopped_at
            if waited < self.request_timeout_s * 0.9:
                raise ModelError(f"hung {utterance_id!r} failed after {waited:.2f} s, too early")
        self.engine_errors_checked += 1

    def on_partial(self, utterance_id: str, text: str, audio_ms: float) -> None:
        utterance = self.utterances.get(utterance_id)
        if utterance is None:
            raise ModelError(f"partial for {utterance_id!r}, never started here")
        if utterance.fails:
            raise ModelError(f"partial for {utterance_id!r}, whose engine fails")
        # audio_ms is rounded to 0.1 ms; a sample is 0.0625 ms: try the samples it can be.
        around = round(audio_ms * 16)
        candidates = [
            n for n in (around - 1, around, around + 1) if n >= 0 and round(n / 16, 1) == audio_ms
        ]
        if not any(2 * n <= len(utterance.pcm) for n in candidates):
            raise ModelError(f"partial of {utterance_id!r} covers {audio_ms} ms, more than sent")
        if text not in {utterance.transcript(2 * n) for n in candidates}:
            raise ModelError(f"partial of {utterance_id!r} at {audio_ms} ms is {text!r}")
        self.partials_checked += 1


# ---------------------------------------------------------------- frames


@dataclass(frozen=True)
class Step:
    """Frames sent back to back, then a probe; ``label`` names the kind for the tally."""

    label: str
    frames: list[Frame]


def text(message: str) -> Frame:
    return Frame("text", text=message)


def control(message: Start | Stop | Cancel | Hello) -> Frame:
    return text(encode_client(message))


def binary(data: bytes) -> Frame:
    return Frame("binary", data=data)


class FrameMaker:
    """Seeded source of fuzz steps. ``speech`` is real PCM to cut audio frames from."""

    def __init__(self, seed: int, speech: bytes, limits: Limits) -> None:
        self.rng = random.Random(seed)
        self.speech = speech
        self.limits = limits
        self._flood_ids = (f"flood-{n}" for n in range(10**9))

    # ---------------------------------------------------------------- pieces

    def _audio(self, size: int) -> bytes:
        source = self.rng.random()
        if source < 0.6:  # real speech, at a random place
            at = self.rng.randrange(0, max(1, len(self.speech) - size))
            chunk = self.speech[at : at + size]
            return chunk + bytes(size - len(chunk))
        if source < 0.9:
            return self.rng.randbytes(size)
        return bytes(size)  # silence

    def _audio_size(self) -> int:
        limit = self.limits.max_audio_frame_bytes
        sizes = [0, 1, 2, 3, 17, 640, 3200, 3200, 3200, 6400, limit, limit + 1]
        sizes += [self.rng.randint(1, limit), self.rng.randint(limit + 1, 3 * limit)]
        return self.rng.choice(sizes)

    def _id(self) -> str:
        return self.rng.choice(
            ["", "", "a", "b", "u1", "u2", "x" * 64, "x" * 65, "声音", self._random_text(20)]
        )

    def _random_text(self, max_len: int) -> str:
        alphabet = 'abc{}[]":, \\\x00\n\u00e9\u4f60\U0001f600'
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, max_len)))

    def _language(self) -> str | None:
        return self.rng.choice([None, None, "en", "zh", "Chinese", " ", "x" * 33, "klingon"])

    def _context(self) -> str:
        return self.rng.choice(["", "", "", "hotwords", FAULT_RAISE, "y" * 2001])

    def _control(self) -> Start | Stop | Cancel | Hello:
        kind = self.rng.choice(["start", "start", "stop", "stop", "cancel", "hello"])
        if kind == "start":
            rate = 16_000 if self.rng.random() < 0.9 else self.rng.choice([8000, 44100, 0, -1])
            return Start(
                id=self._id(), language=self._language(), context=self._context(), sample_rate=rate
            )
        if kind == "stop":
            return Stop(id=self._id())
        if kind == "cancel":
            return Cancel(id=self._id())
        protocol = self.rng.choice([1, 1, 1, 2, 0, -3])  # below 1 closes the socket
        return Hello(protocol=protocol, client=self._random_text(10))

    def _mutate(self, data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(self.rng.randint(1, 4)):
            at = self.rng.randrange(0, max(1, len(out)))
            edit = self.rng.randrange(5)
            if edit == 0 and out:
                out[at] ^= 1 << self.rng.randrange(8)
            elif edit == 1:
                del out[at : at + self.rng.randint(1, 6)]
            elif edit == 2:
                out[at:at] = self.rng.choice([b'"', b"{", b"}", b"\\", b",", b"\xff", b"\xc3"])
            elif edit == 3:
                out[at:at] = out[at : at + self.rng.randint(1, 12)]
            else:
                del out[at:]
        return bytes(out)

    def _random_json(self, depth: int = 0) -> object:
        pick = self.rng.randrange(7 if depth < 3 else 4)
        if pick == 0:
            return None
        if pick == 1:
            return self.rng.choice([True, False, 0, -1, 10**30, 1.5])
        if pick == 2:
            return self._random_text(12)
        if pick == 3:
            return self.rng.choice(["start", "stop", "cancel", "hello"])
        if pick == 4:
            return [self._random_json(depth + 1) for _ in range(self.rng.randint(0, 3))]
        keys = ["event", "id", "language", "context", "sample_rate", "protocol", "x"]
        return {
            self.rng.choice(keys): self._random_json(depth + 1)
            for _ in range(self.rng.randint(0, 4))
        }

    # ---------------------------------------------------------------- steps

    def step(self) -> Step:
        """One random step (weights favour cheap, state-changing frames)."""
        kinds: list[tuple[float, str]] = [
            (25, "valid control"),
            (25, "audio"),
            (12, "mutated control"),
            (6, "random json"),
            (4, "random text"),
            (2, "empty text"),
            (2, "oversized text"),
            (2, "deep nesting"),
            (2, "tiny audio flood"),
            (2, "tiny text flood"),
            (2, "start-cancel flood"),
            (0.5, "invalid utf-8"),  # these two cost a reconnect
            (0.3, "over the hard limit"),
        ]
        label = self.rng.choices([k for _, k in kinds], weights=[w for w, _ in kinds])[0]
        return Step(label, self._frames(label))

    def _frames(self, label: str) -> list[Frame]:
        rng = self.rng
        if label == "valid control":
            return [control(self._control())]
        if label == "audio":
            return [binary(self._audio(self._audio_size())) for _ in range(rng.randint(1, 4))]
        if label == "mutated control":
            mutated = self._mutate(encode_client(self._control()).encode())
            return [text(mutated.decode("utf-8", "replace"))]
        if label == "random json":
            return [text(json.dumps(self._random_json(), ensure_ascii=rng.random() < 0.5))]
        if label == "random text":
            return [text(self._random_text(80))]
        if label == "empty text":
            return [text("")]
        if label == "oversized text":
            size = rng.randint(MAX_TEXT_FRAME_BYTES - 40, 3 * MAX_TEXT_FRAME_BYTES)
            return [text(json.dumps({"event": "start", "context": "z" * size}))]
        if label == "deep nesting":
            depth = rng.randint(500, 7000)
            return [text('{"event": "stop", "x": ' + "[" * depth + "]" * depth + "}")]
        if label == "tiny audio flood":
            return [binary(self._audio(rng.randint(1, 3))) for _ in range(rng.randint(50, 400))]
        if label == "tiny text flood":
            junk = ["", "{", "[]", "0", '{"event": 1}', '{"event": "stop", "id": 5}']
            return [text(rng.choice(junk)) for _ in range(rng.randint(20, 150))]
        if label == "start-cancel flood":
            frames = []
            for _ in range(rng.randint(10, 40)):
                utterance_id = next(self._flood_ids)
                frames += [
                    control(Start(id=utterance_id)),
                    binary(self._audio(rng.randint(0, 640))),
                    control(Cancel(id=utterance_id)),
                ]
            return frames
        if label == "invalid utf-8":
            return [
                Frame(
                    "raw_text", data=rng.choice([b"\xff", b'{"event": "st\xc3"}', b"\xed\xa0\x80"])
                )
            ]
        # over the hard limit: the transport drops the connection (1009)
        if rng.random() < 0.5:
            return [binary(bytes(HARD_MAX_FRAME_BYTES + 1))]
        return [text("x" * (HARD_MAX_FRAME_BYTES + 1))]


def tour(speech: bytes, limits: Limits) -> Iterator[Step]:
    """Scripted steps that reach every frame-level answer at least once, in order."""
    second = speech[:BYTES_PER_SECOND]
    yield Step("tour: stop before start", [control(Stop())])
    yield Step("tour: cancel before start", [control(Cancel(id="nothing"))])
    yield Step("tour: audio before start", [binary(second[:3200]) for _ in range(5)])
    yield Step("tour: hello", [control(Hello(client="fuzz"))])
    yield Step("tour: bad sample rate", [control(Start(id="r", sample_rate=44_100))])
    yield Step("tour: start", [control(Start(id="t1", language="en"))])
    yield Step("tour: double start", [control(Start(id="t2"))])
    yield Step("tour: frame too large", [binary(bytes(limits.max_audio_frame_bytes + 1))])
    yield Step("tour: odd frames", [binary(second[i : i + 3]) for i in range(0, 3000, 3)])
    yield Step("tour: stop with a wrong id", [control(Stop(id="t9"))])
    yield Step("tour: stop", [control(Stop(id="t1"))])
    yield Step("tour: audio after stop", [binary(second[:640])])
    frames_to_limit = int(limits.max_utterance_seconds) + 1
    yield Step(
        "tour: utterance too long",
        [control(Start(id="long"))]
        + [binary(second[: limits.max_audio_frame_bytes]) for _ in range(frames_to_limit)],
    )
    yield Step("tour: engine raises", [control(Start(id="boom", context=FAULT_RAISE)),
                                       binary(second[:3200]), control(Stop())])  # fmt: skip
    hung = [f"hang{i}" for i in range(limits.max_sessions_per_connection)]
    for utterance_id in hung:
        yield Step(
            "tour: engine hangs",
            [control(Start(id=utterance_id, context=FAULT_HANG)), binary(second[:3200]),
             control(Stop())],
        )  # fmt: skip
    yield Step("tour: duplicate id", [control(Start(id=hung[0]))])
    yield Step("tour: too many sessions", [control(Start(id="one-more"))])
    yield Step("tour: cancel a decoding one", [control(Cancel(id=hung[1]))])
    yield Step("tour: bad version", [control(Hello(protocol=0))])
    yield Step(
        "tour: deep nesting", [text('{"event": "stop", "x": ' + "[" * 5000 + "]" * 5000 + "}")]
    )
    yield Step("tour: invalid utf-8", [Frame("raw_text", data=b'{"event": "st\xc3"}')])
    yield Step("tour: text over the hard limit", [text(" " * (HARD_MAX_FRAME_BYTES + 1))])
    yield Step("tour: audio over the hard limit", [binary(bytes(HARD_MAX_FRAME_BYTES + 1))])
