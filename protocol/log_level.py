"""The log levels ``--log-level`` offers, shared by ``tingxie-server`` and ``tingxie``
so the two cannot offer different ones."""

from __future__ import annotations

import enum

__all__ = ["DEFAULT_LOG_LEVEL", "LogLevel"]


class LogLevel(str, enum.Enum):
    """A ``--log-level`` choice; the value is the ``logging`` level name (pass it, not
    the member, to ``logging``)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


DEFAULT_LOG_LEVEL = LogLevel.INFO
