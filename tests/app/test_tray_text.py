"""What the tray shows of server text (issue 12): the client state's detail (a server's
``status``/``error`` message, its name from ``ready``) reaches the tooltip through
``tray_look``, and failure messages quoting the server reach notifications. Both pass
``tray_text`` in the tray: only visible text, one line, capped. Pure tests of the function,
offscreen tests of both doors (the tray icon and the fallback window)."""

from __future__ import annotations

import html
import sys
from typing import ClassVar

import pytest
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QSystemTrayIcon

import desktop.ui.look as look_module
import desktop.ui.tray as tray_module
from desktop.dictation import Stage
from desktop.output.text_sink import classify, sanitize
from desktop.ui.look import (
    ELLIPSIS,
    MESSAGE_MAX_CHARS,
    TITLE_MAX_CHARS,
    TOOLTIP_MAX_CHARS,
    as_plain_tooltip,
    notification_text,
    tray_look,
    tray_text,
)
from desktop.ui.tray import Tray
from protocol.client_events import ClientState

#: A status message as a hostile server might send it: a line break, ESC/CSI, OSC 52,
#: NUL, backspace, a bidi override and isolate, C1 CSI, a zero-width space, a tab, markup.
HOSTILE = (
    "loading\nmodel \x1b[31mred\x1b]52;c;aGk=\x07\x00\x08 a\u202eb\u2066c\u2069"
    "\x9b1m\u200bz\tend<b>x</b>\r\n"
)
#: ... and 100 KB of it.
HUGE = "warming up \x1b[2J\u202e" + "x\n" * 50_000


def forbidden(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if classify(c) is not None]


def test_the_hostile_inputs_really_are_hostile() -> None:
    assert forbidden(HOSTILE) and forbidden(HUGE) and len(HUGE) > 100_000


def test_tray_text_keeps_the_visible_text_on_one_line() -> None:
    shown = tray_text(HOSTILE, MESSAGE_MAX_CHARS)
    assert forbidden(shown) == []
    assert shown == "loading model [31mred]52;c;aGk= abc1mz end<b>x</b>"


def test_tray_text_leaves_clean_text_alone() -> None:
    for text in ("server ready: qwen3-asr-1.7b on gpu0", "模型加载中 (3/4)", "a" * 127):
        assert tray_text(text, TOOLTIP_MAX_CHARS) == text


@pytest.mark.parametrize("cap", [TOOLTIP_MAX_CHARS, TITLE_MAX_CHARS, MESSAGE_MAX_CHARS])
def test_tray_text_caps_100_kb_with_an_ellipsis_reading_only_its_head(
    cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []

    def recording_sanitize(text: str, **kwargs: object) -> object:
        read.append(len(text))
        return sanitize(text, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(look_module, "sanitize", recording_sanitize)
    shown = tray_text(HUGE, cap)
    assert cap - 2 <= len(shown) <= cap  # a space before the cut is dropped
    assert shown.endswith(ELLIPSIS)
    assert shown.startswith("warming up [2Jx x x")
    assert forbidden(shown) == []
    # The whole 100 KB is not walked (walking it took ~0.3 s): only a few caps' worth.
    assert read and max(read) <= 4 * cap < len(HUGE) // 10


def test_a_cut_always_shows_the_ellipsis() -> None:
    assert tray_text("b" * 128, 127) == "b" * 126 + ELLIPSIS
    # nearly all removed, yet more was there than was read: still marked as cut
    assert tray_text("ok" + "\x00" * 1000 + "hidden", 10) == "ok" + ELLIPSIS


def test_tooltip_from_a_hostile_status_message(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The client state's detail (server text) goes into the tooltip via tray_look; the
    fallback window's status line shows it as plain visible text."""
    tray = Tray(force_fallback=True)
    assert tray.window is not None
    qtbot.addWidget(tray.window)
    for state in (ClientState.MODEL_LOADING, ClientState.UNREACHABLE):
        for detail in (HOSTILE, HUGE):
            look = tray_look(state, Stage.IDLE, None, detail)
            assert forbidden(look.tooltip)  # without the tray's door it would get through
            tray.set_look(look)
            shown = tray.window.status.text()
            assert forbidden(shown) == []
            assert len(shown) <= TOOLTIP_MAX_CHARS
            assert shown.startswith("tingxie — ")
    tray.set_look(tray_look(ClientState.CONNECTING, Stage.IDLE, None, HOSTILE))
    assert "loading model [31mred" in tray.window.status.text()


def test_fallback_window_notification_is_plain_visible_text(qtbot) -> None:  # type: ignore[no-untyped-def]
    tray = Tray(force_fallback=True)
    assert tray.window is not None
    qtbot.addWidget(tray.window)
    tray.notify("tingxie", f"Recognition failed: {HOSTILE}")
    shown = tray.window.status.text()
    assert forbidden(shown) == []
    assert shown.startswith("tingxie: Recognition failed: loading model")
    tray.notify("tingxie", HUGE)
    assert len(tray.window.status.text()) <= TITLE_MAX_CHARS + 2 + MESSAGE_MAX_CHARS


class _RecordingTrayIcon(QSystemTrayIcon):
    """A tray icon where the platform has a tray and balloon messages; records them."""

    shown: ClassVar[list[tuple[str, str]]] = []

    @staticmethod
    def isSystemTrayAvailable() -> bool:
        return True

    @staticmethod
    def supportsMessages() -> bool:
        return True

    def showMessage(self, title: str, message: str, *args: object) -> None:  # type: ignore[override]
        self.shown.append((title, message))


def test_tray_icon_tooltip_and_balloon_get_only_visible_text(qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tray_module, "QSystemTrayIcon", _RecordingTrayIcon)
    _RecordingTrayIcon.shown = []
    tray = Tray()
    assert tray.icon is not None
    tray.set_look(tray_look(ClientState.CONNECTING, Stage.IDLE, None, HUGE))
    tooltip = tray.icon.toolTip()
    assert forbidden(tooltip) == [] and len(tooltip) <= TOOLTIP_MAX_CHARS
    assert tooltip.endswith(ELLIPSIS)
    # a title and a message that quote the server (the launcher's detail, a failure)
    tray.notify(f"Server failed {HOSTILE}", f"The server refused the token: {HUGE}")
    [(title, message)] = _RecordingTrayIcon.shown
    if tray_module._MARKUP_NOTIFICATIONS:  # the caps count what is shown, not entities
        title, message = html.unescape(title), html.unescape(message)
    assert forbidden(title) == [] and forbidden(message) == []
    assert len(title) <= TITLE_MAX_CHARS and len(message) <= MESSAGE_MAX_CHARS
    assert message.startswith("The server refused the token: warming up [2Jx x")


def test_markup_in_a_tooltip_qt_may_render_is_escaped() -> None:
    assert as_plain_tooltip("tingxie — ready") == "tingxie — ready"
    shown = as_plain_tooltip('offline: <img src="x"> &lt; & <b>bold</b>')
    assert shown == ('<p>offline: &lt;img src="x"&gt; &amp;lt; &amp; &lt;b&gt;bold&lt;/b&gt;</p>')
    doc = QTextDocument()
    doc.setHtml(shown)
    assert doc.toPlainText() == 'offline: <img src="x"> &lt; & <b>bold</b>'


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="native plain tooltips there")
def test_tray_icon_tooltip_shows_server_markup_as_text(qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tray_module, "QSystemTrayIcon", _RecordingTrayIcon)
    tray = Tray()
    assert tray.icon is not None
    look = tray_look(ClientState.UNREACHABLE, Stage.IDLE, None, '<img src="/etc/x.png"> down')
    tray.set_look(look)
    doc = QTextDocument()
    doc.setHtml(tray.icon.toolTip())
    assert doc.toPlainText() == look.tooltip  # the tags are shown, not rendered


# ---------------------------------------------------------------- notifications as markup

#: An error message as a hostile server might word it: markup, an escape sequence and a
#: line break before a command.
MARKUP_ATTACK = "<b>x</b>\x1b[31m\nrm -rf"


def test_notification_text_escapes_markup_where_it_would_be_rendered() -> None:
    assert notification_text(MARKUP_ATTACK, MESSAGE_MAX_CHARS, markup=True) == (
        "&lt;b&gt;x&lt;/b&gt;[31m rm -rf"
    )
    assert notification_text(MARKUP_ATTACK, MESSAGE_MAX_CHARS, markup=False) == (
        "<b>x</b>[31m rm -rf"
    )
    # an entity the server wrote shows as written; quotes need no escaping in text
    assert notification_text("a &lt; b & 'c' \"d\"", 63, markup=True) == (
        "a &amp;lt; b &amp; 'c' \"d\""
    )
    assert notification_text("server ready", 63, markup=True) == "server ready"


def test_notification_text_escapes_after_the_cut() -> None:
    """The cap counts visible characters; escaping comes after it, so a cut never
    leaves half an entity (``&am``) for the daemon to misread."""
    text = "x" * (MESSAGE_MAX_CHARS - 2) + "&<" * 50
    shown = notification_text(text, MESSAGE_MAX_CHARS, markup=True)
    assert shown.endswith("x&amp;" + ELLIPSIS)
    assert len(html.unescape(shown)) == MESSAGE_MAX_CHARS


@pytest.mark.parametrize("markup", [True, False])
def test_a_hostile_notification_reaches_show_message_as_plain_text(  # type: ignore[no-untyped-def]
    qtbot, monkeypatch, markup: bool
) -> None:
    """Linux (markup read by the notification daemon) and Windows (plain balloons): what
    showMessage gets displays as the sanitised text, tags and all, never as bold."""
    monkeypatch.setattr(tray_module, "QSystemTrayIcon", _RecordingTrayIcon)
    monkeypatch.setattr(tray_module, "_MARKUP_NOTIFICATIONS", markup)
    _RecordingTrayIcon.shown = []
    tray = Tray()
    tray.notify(f"Server failed {MARKUP_ATTACK}", f"Recognition failed: {MARKUP_ATTACK}")
    [(title, message)] = _RecordingTrayIcon.shown
    assert forbidden(title) == [] and forbidden(message) == []
    if markup:
        assert message == "Recognition failed: &lt;b&gt;x&lt;/b&gt;[31m rm -rf"
        assert title == "Server failed &lt;b&gt;x&lt;/b&gt;[31m rm -rf"
        doc = QTextDocument()  # read as markup, it is the text itself
        doc.setHtml(message)
        assert doc.toPlainText() == "Recognition failed: <b>x</b>[31m rm -rf"
    else:
        assert message == "Recognition failed: <b>x</b>[31m rm -rf"
        assert title == "Server failed <b>x</b>[31m rm -rf"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="plain balloons there")
def test_linux_notifications_are_escaped(qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tray_module, "QSystemTrayIcon", _RecordingTrayIcon)
    _RecordingTrayIcon.shown = []
    Tray().notify("tingxie", '<img src="/etc/x.png"> down')
    assert _RecordingTrayIcon.shown == [("tingxie", '&lt;img src="/etc/x.png"&gt; down')]
