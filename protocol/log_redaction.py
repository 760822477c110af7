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

from websockets.frames import Frame, Opcode

#: Set to 1/true/yes/on to let transcripts and audio frames into the logs (debugging).
TRANSCRIPTS_ENV = "TINGXIE_LOG_TRANSCRIPTS"
REDACTED = "[redacted]"

#: Query parameters that carry secrets.
SECRET_PARAMETERS = frozenset({"token"})
#: Handshake headers that carry secrets.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_DATA_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})
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


def redact_wire_record(
    msg: object, args: tuple[Any, ...], log_content: bool
) -> tuple[object, tuple[Any, ...]]:
    """The arguments of one websockets log call with secrets (and, unless
    ``log_content``, frame payloads) replaced. Other records pass unchanged."""
    if msg in _FRAME_FORMATS and len(args) == 1 and isinstance(args[0], Frame):
        frame = args[0]
        if log_content or frame.opcode not in _DATA_OPCODES:
            return msg, args
        return msg, (f"{frame.opcode.name} {REDACTED} [{len(frame.data)} bytes]",)
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
