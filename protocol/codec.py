"""JSON encoding and validating decoding of protocol v1 messages.

Decoders raise :class:`ProtocolError` with an :class:`ErrorCode` for anything a peer
should be told about; they never raise anything else on untrusted input. Unknown
fields are ignored (forward compatibility); unknown server ``type``s decode to ``None``
so older clients skip messages added later, as the original protocol's clients do.
"""

from __future__ import annotations

import json
import math
from typing import Any

from protocol.limits import (
    MAX_CONTEXT_CHARS,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_LANGUAGE_CHARS,
    MAX_SERVER_MESSAGE_BYTES,
    MAX_TEXT_FRAME_BYTES,
)
from protocol.messages import (
    Cancel,
    ClientMessage,
    Error,
    ErrorCode,
    Final,
    Hello,
    Partial,
    Ready,
    ServerMessage,
    Start,
    Started,
    Status,
    Stop,
    Timings,
)


class ProtocolError(ValueError):
    """Invalid input from a peer; ``code`` is what to send back."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _bad(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_MESSAGE, message)


def _too_large(text: str | bytes, limit: int) -> bool:
    """Whether a frame exceeds ``limit`` in UTF-8 bytes on the wire."""
    if len(text) > limit:  # every character takes at least one byte
        return True
    return isinstance(text, str) and len(text.encode("utf-8", "surrogatepass")) > limit


def _too_deep(text: str) -> bool:
    """Whether arrays and objects nest deeper than :data:`MAX_JSON_DEPTH` (outside
    strings). The parser's own limit depends on the caller's stack and ends in a
    RecursionError; this one is the same for every frame everywhere."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _load_object(text: str | bytes, key: str, limit: int) -> tuple[str, dict[str, Any]]:
    if _too_large(text, limit):
        raise ProtocolError(ErrorCode.FRAME_TOO_LARGE, f"text frame larger than {limit} bytes")
    if isinstance(text, bytes):  # a text frame's payload is UTF-8, nothing else
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(f"not valid UTF-8: {exc}") from None
    if _too_deep(text):
        raise _bad(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise _bad(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _bad(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get(key)
    if not isinstance(kind, str):
        raise _bad(f'missing or non-string "{key}" field')
    return kind, obj


def _str(obj: dict[str, Any], name: str, default: str, max_len: int) -> str:
    value = obj.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _bad(f'"{name}" must be a string, got {type(value).__name__}')
    if len(value) > max_len:
        raise _bad(f'"{name}" is {len(value)} characters, limit {max_len}')
    return value


def _int(obj: dict[str, Any], name: str, default: int) -> int:
    value = obj.get(name, default)
    # bool is an int subclass; true/false is never a valid number here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f'"{name}" must be an integer, got {type(value).__name__}')
    return value


def _is_number(value: object) -> bool:
    """A JSON number: not a bool, and not NaN or Infinity (which JSON does not have)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _float(obj: dict[str, Any], name: str, default: float) -> float:
    value = obj.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f'"{name}" must be a number, got {type(value).__name__}')
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        raise _bad(f'"{name}" must be a finite number')
    return number


def _bool(obj: dict[str, Any], name: str, default: bool) -> bool:
    value = obj.get(name, default)
    if not isinstance(value, bool):
        raise _bad(f'"{name}" must be true or false, got {type(value).__name__}')
    return value


# ---------------------------------------------------------------- client messages


def decode_client(text: str | bytes) -> ClientMessage:
    """Decode a client's text frame."""
    event, obj = _load_object(text, "event", MAX_TEXT_FRAME_BYTES)
    if event == "start":
        language = _str(obj, "language", "", MAX_LANGUAGE_CHARS).strip()
        return Start(
            id=_str(obj, "id", "", MAX_ID_CHARS),
            language=language or None,
            context=_str(obj, "context", "", MAX_CONTEXT_CHARS),
            sample_rate=_int(obj, "sample_rate", 16_000),
        )
    if event == "stop":
        return Stop(id=_str(obj, "id", "", MAX_ID_CHARS))
    if event == "cancel":
        return Cancel(id=_str(obj, "id", "", MAX_ID_CHARS))
    if event == "hello":
        return Hello(protocol=_int(obj, "protocol", 1), client=_str(obj, "client", "", 200))
    raise _bad(f'unknown event "{event[:40]}"')


def encode_client(message: ClientMessage) -> str:
    """Encode a client message; fields left at their defaults are omitted, so
    ``Start()`` is exactly the original protocol's ``{"event": "start"}``."""
    obj: dict[str, Any]
    if isinstance(message, Start):
        obj = {"event": "start"}
        if message.id:
            obj["id"] = message.id
        if message.language:
            obj["language"] = message.language
        if message.context:
            obj["context"] = message.context
        if message.sample_rate != 16_000:
            obj["sample_rate"] = message.sample_rate
    elif isinstance(message, (Stop, Cancel)):
        obj = {"event": "stop" if isinstance(message, Stop) else "cancel"}
        if message.id:
            obj["id"] = message.id
    else:
        obj = {"event": "hello", "protocol": message.protocol}
        if message.client:
            obj["client"] = message.client
    return json.dumps(obj, ensure_ascii=False)


# ---------------------------------------------------------------- server messages


#: Ends a text that was cut to fit the limits a client accepts.
TRUNCATION_MARKER = " […]"
#: Longest value of each short server field that :func:`decode_server` accepts.
_SERVER_FIELD_CHARS = {
    "id": MAX_ID_CHARS,
    "language": MAX_LANGUAGE_CHARS,
    "message": 4096,
    "server": 200,
    "engine": 200,
    "model": 1000,
    "model_state": 32,
}
#: Fields that may be long (transcripts); cut, longest first, to fit the frame limit.
_LONG_FIELDS = ("text", "stable", "unstable")


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    keep = max(0, max_chars - len(TRUNCATION_MARKER))
    return text[:keep] + TRUNCATION_MARKER


def _fit(obj: dict[str, Any]) -> str:
    """JSON of ``obj`` within what a conforming client accepts: short fields cut to
    their limits, long text cut (with :data:`TRUNCATION_MARKER`) until the whole
    message fits :data:`MAX_SERVER_MESSAGE_BYTES`."""
    for name, max_chars in _SERVER_FIELD_CHARS.items():
        value = obj.get(name)
        if isinstance(value, str) and len(value) > max_chars:
            obj[name] = value[:max_chars] if name == "id" else _cut(value, max_chars)
    long_fields = [name for name in _LONG_FIELDS if isinstance(obj.get(name), str)]
    while True:
        encoded = json.dumps(obj, ensure_ascii=False)
        if 4 * len(encoded) <= MAX_SERVER_MESSAGE_BYTES:  # at most 4 bytes a character
            return encoded
        excess = len(encoded.encode("utf-8", "surrogatepass")) - MAX_SERVER_MESSAGE_BYTES
        if excess <= 0 or not long_fields:
            return encoded
        # Every character takes at least one byte: cutting ``excess`` characters (and
        # room for the marker) from the longest field shrinks the frame enough or
        # brings the next field up; each round strictly shortens a field.
        name = max(long_fields, key=lambda n: len(obj[n]))
        value = obj[name]
        if not value:
            return encoded  # nothing left to cut (cannot happen with capped fields)
        obj[name] = _cut(value, max(0, len(value) - excess - 2 * len(TRUNCATION_MARKER)))
        if obj[name] == value:
            obj[name] = ""


def encode_server(message: ServerMessage) -> str:
    """Encode a server message. Every message carries ``type``; partial and final
    always carry ``text`` (all the original protocol's clients read).

    The result is always one that :func:`decode_server` accepts: a text too long for
    :data:`MAX_SERVER_MESSAGE_BYTES` is cut and ends in :data:`TRUNCATION_MARKER`."""
    obj: dict[str, Any]
    if isinstance(message, Partial):
        obj = {
            "type": "partial",
            "text": message.text,
            "id": message.id,
            "stable": message.stable,
            "unstable": message.unstable,
            "seq": message.seq,
            "audio_ms": round(message.audio_ms, 1),
        }
    elif isinstance(message, Final):
        obj = {
            "type": "final",
            "text": message.text,
            "id": message.id,
            "language": message.language,
        }
        if message.timings is not None:
            t = message.timings
            obj["timings"] = {
                "audio_ms": round(t.audio_ms, 1),
                "queue_ms": round(t.queue_ms, 1),
                "engine_ms": round(t.engine_ms, 1),
                "total_ms": round(t.total_ms, 1),
            }
    elif isinstance(message, Error):
        obj = {
            "type": "error",
            "code": message.code.value,
            "message": message.message,
            "id": message.id,
            "fatal": message.fatal,
        }
    elif isinstance(message, Ready):
        obj = {
            "type": "ready",
            "protocol": message.protocol,
            "server": message.server,
            "engine": message.engine,
            "model": message.model,
            "model_state": message.model_state,
            "capabilities": list(message.capabilities),
            "limits": dict(message.limits),
        }
    elif isinstance(message, Started):
        obj = {"type": "started", "id": message.id}
    else:
        obj = {"type": "status", "model_state": message.model_state, "message": message.message}
    return _fit(obj)


def decode_server(text: str | bytes) -> ServerMessage | None:
    """Decode a server's text frame; ``None`` for a ``type`` this version does not know.
    Accepts frames up to :data:`MAX_SERVER_MESSAGE_BYTES` (long finals)."""
    kind, obj = _load_object(text, "type", MAX_SERVER_MESSAGE_BYTES)
    if kind == "partial":
        return Partial(
            text=_str(obj, "text", "", 1 << 20),
            id=_str(obj, "id", "", MAX_ID_CHARS),
            stable=_str(obj, "stable", "", 1 << 20),
            unstable=_str(obj, "unstable", "", 1 << 20),
            seq=_int(obj, "seq", 0),
            audio_ms=_float(obj, "audio_ms", 0.0),
        )
    if kind == "final":
        timings_obj = obj.get("timings")
        timings = None
        if timings_obj is not None:
            if not isinstance(timings_obj, dict):
                raise _bad('"timings" must be an object')
            timings = Timings(
                audio_ms=_float(timings_obj, "audio_ms", 0.0),
                queue_ms=_float(timings_obj, "queue_ms", 0.0),
                engine_ms=_float(timings_obj, "engine_ms", 0.0),
                total_ms=_float(timings_obj, "total_ms", 0.0),
            )
        language = _str(obj, "language", "", MAX_LANGUAGE_CHARS)
        return Final(
            text=_str(obj, "text", "", 1 << 20),
            id=_str(obj, "id", "", MAX_ID_CHARS),
            language=language or None,
            timings=timings,
        )
    if kind == "error":
        raw_code = _str(obj, "code", ErrorCode.INTERNAL.value, 64)
        try:
            code = ErrorCode(raw_code)
        except ValueError:
            code = ErrorCode.INTERNAL  # a newer server's code: still an error
        return Error(
            code=code,
            message=_str(obj, "message", "", 4096),
            id=_str(obj, "id", "", MAX_ID_CHARS),
            fatal=_bool(obj, "fatal", False),
        )
    if kind == "ready":
        caps = obj.get("capabilities", [])
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise _bad('"capabilities" must be a list of strings')
        limits = obj.get("limits", {})
        if not isinstance(limits, dict) or not all(_is_number(v) for v in limits.values()):
            raise _bad('"limits" must be an object of numbers')
        return Ready(
            protocol=_int(obj, "protocol", 1),
            server=_str(obj, "server", "", 200),
            engine=_str(obj, "engine", "", 200),
            model=_str(obj, "model", "", 1000),
            model_state=_str(obj, "model_state", "ready", 32),
            capabilities=tuple(caps),
            limits=limits,
        )
    if kind == "started":
        return Started(id=_str(obj, "id", "", MAX_ID_CHARS))
    if kind == "status":
        return Status(
            model_state=_str(obj, "model_state", "", 32),
            message=_str(obj, "message", "", 4096),
        )
    return None
