"""What the overlay and the history window show of server text: only what the text sink
lets through (issue 12). A partial or final with controls, an escape sequence, a bidi
override or line breaks is shown as its visible text, offscreen."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication, QTextDocument

from desktop.coordinator import HistoryEntry
from desktop.output.text_sink import ZWJ, classify, sanitize
from desktop.ui.history import HistoryWindow
from desktop.ui.overlay import Overlay, partial_html

#: Line breaks, ESC/CSI, OSC 52, NUL, backspaces, bidi override and isolate, C1 CSI,
#: a zero-width space and a tab: everything the sink removes or replaces.
HOSTILE_STABLE = "x\ntouch /tmp/PWNED\nx \x1b[201~done\x08\x08 a\u202eb\x00c"
HOSTILE_UNSTABLE = "\x1b]52;c;aGk=\x07 tail\u2066q\u2069\x9b1m\u200bz\tend\r\n"
#: A final as the issue's hostile server sent it.
HOSTILE_FINAL = "x\ntouch /tmp/PWNED\nx\x1b[201~\x08\x08 a\u202eb\x00c\x1b]52\x07 end\tz\r\n"


def forbidden(text: str) -> list[str]:
    """The code points in ``text`` the sink would not let through (ZWJ aside, which it
    keeps inside words)."""
    return [f"U+{ord(c):04X}" for c in text if c != ZWJ and classify(c) is not None]


def visible(rich_text: str) -> str:
    """What a QLabel showing ``rich_text`` displays, as plain text."""
    doc = QTextDocument()
    doc.setHtml(rich_text)
    return doc.toPlainText()


def test_the_hostile_parts_really_are_hostile() -> None:
    """Guards the inputs: without the sink, the widgets would get forbidden characters."""
    for text in (HOSTILE_STABLE, HOSTILE_UNSTABLE, HOSTILE_FINAL):
        assert forbidden(text)
        assert sanitize(text, max_chars=None).text != text


def test_partial_html_carries_only_visible_text() -> None:
    html = partial_html(HOSTILE_STABLE, HOSTILE_UNSTABLE)
    assert forbidden(html) == []
    # the visible characters are all there, in order, each line break as a space
    assert "x touch /tmp/PWNED x [201~done ab" in html
    assert "]52;c;aGk= tailq1mz end " in html


def test_overlay_shows_a_hostile_partial_as_its_visible_text(qtbot) -> None:  # type: ignore[no-untyped-def]
    overlay = Overlay()
    qtbot.addWidget(overlay)
    overlay.show_partial(HOSTILE_STABLE, HOSTILE_UNSTABLE)
    shown = overlay.text.text()
    assert forbidden(shown) == []
    expected = (
        sanitize(HOSTILE_STABLE, max_chars=None).text
        + sanitize(HOSTILE_UNSTABLE, max_chars=None).text
    )
    assert visible(shown) == expected
    assert "touch /tmp/PWNED" in visible(shown)


def test_overlay_shows_a_hostile_final_and_message_as_visible_text(qtbot) -> None:  # type: ignore[no-untyped-def]
    overlay = Overlay(show_latency=True)
    qtbot.addWidget(overlay)
    overlay.show_final(HOSTILE_FINAL, 120.0, hold_ms=10_000)
    shown = overlay.text.text()
    assert forbidden(shown) == []
    assert visible(shown) == sanitize(HOSTILE_FINAL).text
    overlay.show_message("server says:\x1b[2J\u202eoops\n")
    assert forbidden(overlay.text.text()) == []
    assert visible(overlay.text.text()) == "server says:[2Joops "


def test_overlay_keeps_clean_text_exactly(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The sink changes nothing a reader sees: CJK, emoji with a joiner, Persian ZWNJ."""
    overlay = Overlay()
    qtbot.addWidget(overlay)
    stable, unstable = "今天天气很好，", f"👩{ZWJ}💻 می\u200cخواهم"
    overlay.show_partial(stable, unstable)
    assert visible(overlay.text.text()) == stable + unstable


def test_history_lists_a_hostile_final_as_its_visible_text(qtbot) -> None:  # type: ignore[no-untyped-def]
    typed: list[str] = []
    history = HistoryWindow(typed.append)
    qtbot.addWidget(history)
    history.add(HistoryEntry(1_700_000_000, HOSTILE_FINAL, 300.0, True))
    history.set_entries(
        [
            HistoryEntry(1_700_000_000, "clean", None, True),
            HistoryEntry(1_700_000_005, HOSTILE_FINAL, 300.0, True),
        ]
    )
    expected = sanitize(HOSTILE_FINAL, max_chars=None).text
    assert "touch /tmp/PWNED" in expected
    item = history.table.item(0, 1)  # newest first
    assert item is not None and item.text() == expected
    assert forbidden(item.text()) == []
    history.table.selectRow(0)
    history.copy_selected()  # Copy: only the visible text reaches the clipboard
    assert QGuiApplication.clipboard().text() == expected
    history.retype_selected()
    assert typed == [expected]
