"""tingxie-cli's printer (pure): server text cannot drive the terminal, JSON lines parse
back to the exact text, and exit codes follow the worst outcome."""

from __future__ import annotations

import io
import json

from desktop.cli import (
    EXIT_BY_REASON,
    EXIT_OK,
    EXIT_SERVER_ERROR,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    Printer,
    worst_exit_code,
)
from protocol.client_events import FailReason, FinalText, PartialText, UtteranceFailed
from protocol.client_timeline import UtteranceTimeline

NASTY = "你好 \x1b]52;c;ZXZpbA==\x07 \x9b2J \u202eevil \U000e0041 ok"


def final(text: str) -> FinalText:
    return FinalText(1, text, "zh", UtteranceTimeline(1))


def test_json_lines_escape_what_a_terminal_would_obey_and_parse_back_exactly() -> None:
    out = io.StringIO()
    printer = Printer(out, as_json=True, t0=0.0)
    printer.names[1] = "clip-1"
    printer.client_event(final(NASTY))
    line = out.getvalue().splitlines()[0]
    for bad in ("\x1b", "\x07", "\x9b", "\u202e", "\U000e0041"):
        assert bad not in line
    assert "你好" in line  # readable text stays readable
    record = json.loads(line)
    assert record["text"] == NASTY and record["id"] == "clip-1" and record["stale"] is False


def test_human_output_shows_escapes_instead_of_running_them() -> None:
    out = io.StringIO()
    printer = Printer(out, as_json=False, t0=0.0)
    printer.client_event(PartialText(1, "a\x1b[2J", "b"))
    printer.client_event(final(NASTY))
    printer.client_event(UtteranceFailed(2, "bad\x9bthing", FailReason.REFUSED))
    shown = out.getvalue()
    assert "\x1b" not in shown and "\x9b" not in shown and "\u202e" not in shown
    assert "partial: a\\x1b[2Jb" in shown and "error [refused]: bad\\x9bthing" in shown


def test_every_fail_reason_has_an_exit_code_and_the_worst_wins() -> None:
    assert set(EXIT_BY_REASON) == set(FailReason)
    assert worst_exit_code([]) == EXIT_OK
    assert worst_exit_code([EXIT_OK, EXIT_SERVER_ERROR]) == EXIT_SERVER_ERROR
    assert worst_exit_code([EXIT_SERVER_ERROR, EXIT_TIMEOUT, EXIT_OK]) == EXIT_TIMEOUT
    assert worst_exit_code([EXIT_TIMEOUT, EXIT_UNREACHABLE]) == EXIT_UNREACHABLE
