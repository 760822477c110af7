"""Throttled warnings, escaped client text, token back-off (pure, fake clock)."""

from __future__ import annotations

import errno
import logging

import pytest

from server.app import quiet_exception_handler
from server.log_limits import FailureBackoff, LogThrottle, escape, log_throttled


def test_a_repeated_record_is_written_once_per_interval_with_a_count() -> None:
    throttle = LogThrottle(interval_s=10.0)
    assert throttle.check("token", 0.0) == 0
    assert [throttle.check("token", t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert throttle.check("other", 5.0) == 0  # kinds are counted apart
    assert throttle.check("token", 10.0) == 3
    assert throttle.check("token", 25.0) == 0


def test_the_throttle_forgets_the_oldest_kinds_first() -> None:
    throttle = LogThrottle(interval_s=10.0, max_keys=2)
    throttle.check("a", 0.0)
    throttle.check("b", 0.0)
    throttle.check("c", 0.0)
    assert throttle.check("a", 1.0) == 0  # forgotten: written again
    assert throttle.check("c", 1.0) is None


def test_log_throttled_writes_the_count(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.throttle")
    throttle = LogThrottle(interval_s=10.0)
    with caplog.at_level(logging.WARNING, logger="tests.throttle"):
        for second in range(25):
            log_throttled(logger, throttle, "k", float(second), logging.WARNING, "bad %s", "x")
    assert [r.getMessage() for r in caplog.records] == [
        "bad x",
        "bad x (and 9 more like it in the last 10 s)",
        "bad x (and 9 more like it in the last 10 s)",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "stop\n2026-01-01 00:00:00 WARNING server.app: forged",
        "a\r\nb",
        "\x1b[31mred\x1b[0m",
        "line\u2028separator\u0085next",
        "bidi\u202eevil",
        "好\x00",
    ],
)
def test_escaped_client_text_is_one_printable_ascii_line(text: str) -> None:
    escaped = escape(text)
    assert escaped.isascii() and escaped.isprintable()
    assert "\n" not in escaped and "\r" not in escaped


def test_escape_keeps_plain_text_and_cuts_long_text() -> None:
    assert escape("unknown event 'foo'") == "unknown event 'foo'"
    assert escape("x" * 1000) == "x" * 200 + "..."


def test_failed_tokens_back_off_per_address_doubling_up_to_a_cap() -> None:
    backoff = FailureBackoff(free_tries=3, base_s=1.0, max_s=8.0)
    for _ in range(3):
        backoff.failed("10.0.0.1", 0.0)
    assert backoff.blocked_for("10.0.0.1", 0.0) == 0.0  # the free tries
    waits = []
    for _ in range(6):
        backoff.failed("10.0.0.1", 100.0)
        waits.append(backoff.blocked_for("10.0.0.1", 100.0))
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.blocked_for("10.0.0.1", 107.0) == pytest.approx(1.0)
    assert backoff.blocked_for("10.0.0.2", 100.0) == 0.0  # others are not affected
    backoff.succeeded("10.0.0.1")
    assert backoff.blocked_for("10.0.0.1", 100.0) == 0.0


def test_backoff_remembers_a_bounded_number_of_addresses() -> None:
    backoff = FailureBackoff(free_tries=0, max_addresses=10)
    for index in range(100):
        backoff.failed(f"10.0.0.{index}", 0.0)
    assert backoff.blocked_for("10.0.0.99", 0.0) > 0
    assert backoff.blocked_for("10.0.0.0", 0.0) == 0.0  # forgotten


class _Loop:
    """What the exception handler needs of a loop: its clock and default handler."""

    def __init__(self) -> None:
        self.now = 0.0
        self.passed_on: list[dict[str, object]] = []

    def time(self) -> float:
        return self.now

    def default_exception_handler(self, context: dict[str, object]) -> None:
        self.passed_on.append(context)


def test_running_out_of_descriptors_is_one_line_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = quiet_exception_handler(LogThrottle(interval_s=10.0))
    loop = _Loop()
    exc = OSError(errno.EMFILE, "Too many open files")
    with caplog.at_level(logging.WARNING, logger="server.app"):
        for step in range(200):
            loop.now = step * 0.1  # 20 s of failed accepts
            handler(loop, {"message": "socket.accept() out of system resource", "exception": exc})  # type: ignore[arg-type]
    records = [r for r in caplog.records if r.name == "server.app"]
    assert len(records) == 2
    assert all(r.exc_info is None for r in records)
    assert "Too many open files" in records[0].getMessage()
    assert loop.passed_on == []
    other = {"message": "boom", "exception": RuntimeError("x")}
    handler(loop, other)  # type: ignore[arg-type]
    assert loop.passed_on == [other]
