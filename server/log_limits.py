"""Keeping the log quiet and honest under abuse (pure: the caller passes the clock).

- :class:`LogThrottle`: a repeated warning is written once per interval per kind, the
  next one carrying how many were left out meanwhile.
- :func:`escape`: client-chosen text as one printable line, so it cannot forge lines.
- :class:`FailureBackoff`: addresses that keep presenting wrong tokens wait, doubling.

The one side effect here is :func:`log_throttled`, a thin helper that writes through
a logger the caller owns.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

#: Longest piece of client text written to the log.
MAX_LOGGED_CHARS = 200


def escape(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """``text`` with every control, line-break and non-ASCII character escaped
    (``\\n``, ``\\x1b``, ``\\u2028``...), cut to ``limit`` characters."""
    cut = text[:limit]
    escaped = cut.encode("ascii", "backslashreplace").decode("ascii")
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in escaped)
    return escaped + ("..." if len(text) > limit else "")


@dataclass
class _Window:
    opened_at: float
    suppressed: int = 0


class LogThrottle:
    """Decides which of many similar log records to write.

    ``check(key, now)`` returns None to drop a record, or how many records of that
    key were dropped since the last one written (0 for the first).
    """

    def __init__(self, interval_s: float = 10.0, max_keys: int = 1024) -> None:
        self.interval_s = interval_s
        self._max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def check(self, key: str, now: float) -> int | None:
        window = self._windows.get(key)
        if window is not None and now - window.opened_at < self.interval_s:
            window.suppressed += 1
            return None
        dropped = window.suppressed if window is not None else 0
        self._windows[key] = _Window(opened_at=now)
        self._windows.move_to_end(key)
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        return dropped


@dataclass
class _Failures:
    count: int
    blocked_until: float


class FailureBackoff:
    """Per-address back-off after failed authentication.

    The first ``free_tries`` failures cost nothing; each later one blocks the address
    for ``base_s`` doubled per failure, up to ``max_s``. A success clears the address.
    At most ``max_addresses`` are remembered (the oldest are forgotten first).
    """

    def __init__(
        self,
        free_tries: int = 5,
        base_s: float = 1.0,
        max_s: float = 60.0,
        max_addresses: int = 4096,
    ) -> None:
        self.free_tries = free_tries
        self.base_s = base_s
        self.max_s = max_s
        self._max_addresses = max_addresses
        self._by_address: OrderedDict[str, _Failures] = OrderedDict()

    def blocked_for(self, address: str, now: float) -> float:
        """Seconds ``address`` must still wait (0: it may try)."""
        entry = self._by_address.get(address)
        if entry is None:
            return 0.0
        return max(0.0, entry.blocked_until - now)

    def failed(self, address: str, now: float) -> None:
        entry = self._by_address.pop(address, None) or _Failures(0, now)
        entry.count += 1
        over = entry.count - self.free_tries
        if over > 0:
            entry.blocked_until = now + min(self.max_s, self.base_s * 2 ** min(over - 1, 32))
        self._by_address[address] = entry
        while len(self._by_address) > self._max_addresses:
            self._by_address.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._by_address.pop(address, None)


def log_throttled(
    logger: logging.Logger | logging.LoggerAdapter,  # type: ignore[type-arg]
    throttle: LogThrottle,
    key: str,
    now: float,
    level: int,
    msg: str,
    *args: object,
) -> None:
    """``logger.log(level, msg, *args)`` unless ``key`` was logged within the
    throttle's interval; the next record written says how many were left out."""
    dropped = throttle.check(key, now)
    if dropped is None:
        return
    if dropped:
        msg += " (and %d more like it in the last %.0f s)"
        args = (*args, dropped, throttle.interval_s)
    logger.log(level, msg, *args)
