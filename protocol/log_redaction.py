"""What may reach a log: never the token; transcripts and audio only when asked for.

The websockets library logs at DEBUG every frame with the start of its payload (text
frames carry transcripts and hotwords, binary frames carry audio) and every handshake
header and request path (where the token rides). Both halves hand websockets a
:class:`WireLogRedactor` instead of its own logger, so turning on DEBUG logging to
chase a connection problem does not write what the user said, or their token, to disk.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Set to 1/true/yes/on to let transcripts and audio frames into the logs (debugging).
TRANSCRIPTS_ENV = "TINGXIE_LOG_TRANSCRIPTS"
REDACTED = "[redacted]"

#: Query parameters that carry secrets.
SECRET_PARAMETERS = frozenset({"token"})
#: Handshake headers that carry secrets.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
#: websockets' frame opcodes whose payload is data (ping, pong, close are not).
_DATA_OPCODES = frozenset({"TEXT", "BINARY", "CONT"})
_FRAME_FORMATS = frozenset({"< %s", "> %s"})
_HEADER_FORMATS = frozenset({"< %s: %s", "> %s: %s"})
_SERVER_REQUEST_LINE = "< %s %s %s"  # method, path, protocol
_CLIENT_REQUEST_LINE = "> GET %s HTTP/1.1"  # path


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no environment variable; anything but 1/true/yes/on is no."""
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def redact_url(url: str) -> str:
    """``url`` (or a bare request path) with the values of secret parameters hidden."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(key in SECRET_PARAMETERS for key, _ in pairs):
        return url
    hidden = [(key, REDACTED if key in SECRET_PARAMETERS else value) for key, value in pairs]
    return urlunsplit(parts._replace(query=urlencode(hidden, safe="[]")))


def text_for_log(text: str, reveal: bool) -> str:
    """A transcript as it may appear in a log line: itself only when ``reveal``."""
    return repr(text) if reveal else f"<{len(text)} chars>"


def _data_frame(arg: object) -> tuple[str, int] | None:
    """(opcode name, payload size) of a websockets data frame; None for anything else.
    Duck-typed: protocol/ depends on the standard library only."""
    name = getattr(getattr(arg, "opcode", None), "name", None)
    data = getattr(arg, "data", None)
    if name in _DATA_OPCODES and isinstance(data, (bytes, bytearray, memoryview)):
        return str(name), len(data)
    return None


def redact_wire_record(
    msg: object, args: tuple[Any, ...], log_content: bool
) -> tuple[object, tuple[Any, ...]]:
    """The arguments of one websockets log call with secrets (and, unless
    ``log_content``, frame payloads) replaced. Other records pass unchanged."""
    if msg in _FRAME_FORMATS and len(args) == 1 and not log_content:
        frame = _data_frame(args[0])
        if frame is not None:
            name, size = frame
            return msg, (f"{name} {REDACTED} [{size} bytes]",)
        return msg, args
    if msg in _HEADER_FORMATS and len(args) == 2 and str(args[0]).lower() in SECRET_HEADERS:
        return msg, (args[0], REDACTED)
    if msg == _SERVER_REQUEST_LINE and len(args) == 3:
        return msg, (args[0], redact_url(str(args[1])), args[2])
    if msg == _CLIENT_REQUEST_LINE and len(args) == 1:
        return msg, (redact_url(str(args[0])),)
    return msg, args


class WireLogRedactor(logging.LoggerAdapter[logging.Logger]):
    """The logger to give websockets (``logger=``): redacts each record on its way."""

    def __init__(self, logger: logging.Logger, *, log_content: bool = False) -> None:
        super().__init__(logger, {})
        self.log_content = log_content

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            msg, args = redact_wire_record(msg, args, self.log_content)
            self.logger.log(level, msg, *args, **kwargs)
