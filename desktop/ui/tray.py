"""Tray icon and menu, or a small window where the platform has no tray.

Every text the tray shows -- the tooltip (which carries the server's status and error
messages and its name) and notifications (failure messages quoting the server) -- passes
:func:`desktop.ui.look.tray_text` here, the one door (notifications through
:func:`desktop.ui.look.notification_text`, which also escapes markup where it would be
rendered): a server that is buggy or not ours cannot put control characters, bidi
overrides, line breaks, markup or 100 KB into the shell's tooltip or balloon."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication
from PySide6.QtWidgets import (
    QLabel,
    QMenu,
    QPushButton,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.icons import current_taskbar_theme, tray_icon
from desktop.ui.look import (
    MESSAGE_MAX_CHARS,
    TITLE_MAX_CHARS,
    TOOLTIP_MAX_CHARS,
    Look,
    as_plain_tooltip,
    notification_text,
    tray_text,
)

#: Where the tray's tooltip is native plain text; elsewhere Qt may render it as markup.
_PLAIN_TOOLTIPS = sys.platform in ("win32", "darwin")
#: Where QSystemTrayIcon.showMessage may hand title and message to a reader of markup.
#: Windows (shell balloon or toast) and macOS show them as plain text. On Linux, with a
#: StatusNotifier tray, Qt passes them unchanged to the freedesktop notification daemon
#: (org.freedesktop.Notifications.Notify), whose body may carry a subset of HTML (<b>,
#: <i>, <a href>, <img src>) that daemons render; the summary is plain text by the
#: specification, but not every daemon keeps to that, and our titles are fixed words, so
#: both are escaped. (Qt's own balloon on an XEmbed tray shows plain text: a server's
#: '<' or '&' there appears as its entity -- legible, never rendered.)
_MARKUP_NOTIFICATIONS = not _PLAIN_TOOLTIPS


class FallbackWindow(QWidget):
    """Stands in for the tray: same menu, a status line and a big dictate button."""

    def __init__(self, menu: QMenu) -> None:
        super().__init__(None, Qt.WindowType.Tool | Qt.WindowType.WindowStaysOnTopHint)
        self.setWindowTitle("tingxie")
        self.status = QLabel("")
        self.status.setTextFormat(Qt.TextFormat.PlainText)  # server text is never markup
        self.dictate = QPushButton("Dictate")
        self.more = QPushButton("Menu")
        self.more.setMenu(menu)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.dictate)
        layout.addWidget(self.more)

    def closeEvent(self, event: QCloseEvent) -> None:
        event.ignore()  # closing the only window would look like quitting: minimise instead
        self.showMinimized()


class Tray(QObject):
    toggle_dictation = Signal()
    start_server = Signal()
    stop_server = Signal()
    show_settings = Signal()
    show_history = Signal()
    show_server_log = Signal()
    show_about = Signal()
    quit_requested = Signal()

    def __init__(self, force_fallback: bool = False) -> None:
        super().__init__()
        self.menu = QMenu()
        self.dictate_action = self._action("Start dictation", self.toggle_dictation)
        self.ptt_action = QAction("Push-to-talk key: —")
        self.ptt_action.setEnabled(False)
        self.menu.addAction(self.ptt_action)
        self.menu.addSeparator()
        self.server_action = self._action("Start server", self.start_server)
        self.stop_server_action = self._action("Stop server", self.stop_server)
        self._action("Server log…", self.show_server_log)
        self.menu.addSeparator()
        self._action("Settings…", self.show_settings)
        self._action("History…", self.show_history)
        self._action("About tingxie", self.show_about)
        self.menu.addSeparator()
        self._action("Quit", self.quit_requested)
        self.icon: QSystemTrayIcon | None = None
        self.window: FallbackWindow | None = None
        self._look: Look | None = None
        if QSystemTrayIcon.isSystemTrayAvailable() and not force_fallback:
            self.icon = QSystemTrayIcon()
            self.icon.setContextMenu(self.menu)
            self.icon.activated.connect(self._activated)
        else:
            self.window = FallbackWindow(self.menu)
            self.window.dictate.clicked.connect(self.toggle_dictation)
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):  # light/dark switched: redraw in the other variant
            app.styleHints().colorSchemeChanged.connect(self._restyle)

    def _action(self, text: str, signal: object) -> QAction:
        action = QAction(text, self.menu)
        # PySide6 releases type Signal.connect differently: the ignore is not always needed
        action.triggered.connect(signal)  # type: ignore[arg-type,unused-ignore]
        self.menu.addAction(action)
        return action

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:  # left click
            self.toggle_dictation.emit()

    def show(self) -> None:
        if self.icon is not None:
            self.icon.show()
        elif self.window is not None:
            self.window.show()

    def hide(self) -> None:
        if self.icon is not None:
            self.icon.hide()
        if self.window is not None:
            self.window.hide()

    def set_look(self, look: Look) -> None:
        self._look = look
        icon = tray_icon(look.key, current_taskbar_theme())
        tooltip = tray_text(look.tooltip, TOOLTIP_MAX_CHARS)
        if self.icon is not None:
            self.icon.setIcon(icon)
            self.icon.setToolTip(tooltip if _PLAIN_TOOLTIPS else as_plain_tooltip(tooltip))
        if self.window is not None:
            self.window.setWindowIcon(icon)
            self.window.status.setText(tooltip)

    def _restyle(self) -> None:
        if self._look is not None:
            self.set_look(self._look)

    def set_dictating(self, on: bool) -> None:
        text = "Stop dictation" if on else "Start dictation"
        self.dictate_action.setText(text)
        if self.window is not None:
            self.window.dictate.setText(text.replace(" dictation", "") + " dictating")

    def set_talk_key(self, key: str) -> None:
        self.ptt_action.setText(f"Push-to-talk key: {key or '—'} (hold)")

    def set_server_running(self, running: bool) -> None:
        self.server_action.setEnabled(not running)
        self.stop_server_action.setEnabled(running)

    def notify(self, title: str, message: str) -> None:
        if self.icon is not None and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(
                notification_text(title, TITLE_MAX_CHARS, _MARKUP_NOTIFICATIONS),
                notification_text(message, MESSAGE_MAX_CHARS, _MARKUP_NOTIFICATIONS),
                QSystemTrayIcon.MessageIcon.Information,
                5000,
            )
        elif self.window is not None:  # a plain-text label: nothing to escape
            title = notification_text(title, TITLE_MAX_CHARS, markup=False)
            message = notification_text(message, MESSAGE_MAX_CHARS, markup=False)
            self.window.status.setText(f"{title}: {message}")
