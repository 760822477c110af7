"""The live-text overlay: shows partials while you speak, the final briefly, then fades.

It must never take focus or clicks: the window you dictate into keeps receiving keys.
Every text it shows passes the text sink first (:func:`partial_html`): partials and
finals come from the server, and a bidi override or a control character would make the
overlay show something other than what will be typed.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEasingCurve, QPoint, QPropertyAnimation, Qt, QTimer
from PySide6.QtGui import QColor, QCursor, QGuiApplication, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from desktop.output.text_sink import sanitize
from desktop.settings import OverlayPosition

STABLE_COLOR = "#ffffff"
UNSTABLE_COLOR = "#a9b4c2"
MAX_CHARS = 240  # long dictation: show the end, where the words are changing


def partial_html(stable: str, unstable: str) -> str:
    """Stable text plain and bright; the still-changing tail dimmer and italic.

    Both parts pass the text sink (no cap: the overlay shows the tail itself), so the
    overlay shows what the typist would type: line breaks as spaces, no controls, no
    bidi overrides, no invisible characters."""
    stable = sanitize(stable, max_chars=None).text
    unstable = sanitize(unstable, max_chars=None).text
    text_len = len(stable) + len(unstable)
    if text_len > MAX_CHARS:  # keep the tail visible
        cut = text_len - MAX_CHARS
        if cut < len(stable):
            stable = "…" + stable[cut:]
        else:
            unstable = "…" + unstable[cut - len(stable) :]
            stable = ""
    return (
        f'<span style="color:{STABLE_COLOR}">{html.escape(stable)}</span>'
        f'<span style="color:{UNSTABLE_COLOR}; font-style:italic">{html.escape(unstable)}</span>'
    )


class Overlay(QWidget):
    def __init__(
        self, position: OverlayPosition = OverlayPosition.BOTTOM, show_latency: bool = False
    ) -> None:
        super().__init__(
            None,
            Qt.WindowType.Tool
            | Qt.WindowType.FramelessWindowHint
            | Qt.WindowType.WindowStaysOnTopHint
            | Qt.WindowType.WindowDoesNotAcceptFocus
            | Qt.WindowType.WindowTransparentForInput,
        )
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setObjectName("tingxie-overlay")
        self.position = position
        self.show_latency = show_latency
        self.text = QLabel(self)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)
        self.text.setStyleSheet("font-size: 18px;")
        self.latency = QLabel(self)
        self.latency.setStyleSheet(f"color: {UNSTABLE_COLOR}; font-size: 11px;")
        self.latency.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 12, 18, 12)
        layout.addWidget(self.text)
        layout.addWidget(self.latency)
        self.setFixedWidth(640)
        self._fade = QPropertyAnimation(self, b"windowOpacity", self)
        self._fade.setDuration(400)
        self._fade.setEasingCurve(QEasingCurve.Type.InQuad)
        self._fade.finished.connect(self._faded)
        self._hold = QTimer(self)
        self._hold.setSingleShot(True)
        self._hold.timeout.connect(self._start_fade)

    # ---------------------------------------------------------------- content

    def show_partial(self, stable: str, unstable: str) -> None:
        self._hold.stop()
        self._fade.stop()
        self.setWindowOpacity(0.92)
        self.text.setText(partial_html(stable, unstable))
        self.latency.hide()
        self._appear()

    def show_final(self, text: str, latency_ms: float | None, hold_ms: int = 1500) -> None:
        self._fade.stop()
        self.setWindowOpacity(0.92)
        self.text.setText(partial_html(text, ""))
        if self.show_latency and latency_ms is not None:
            self.latency.setText(f"{latency_ms:.0f} ms from end of speech to typed")
            self.latency.show()
        else:
            self.latency.hide()
        self._appear()
        self._hold.start(hold_ms)

    def show_message(self, text: str, hold_ms: int = 3000) -> None:
        self.show_final(text, None, hold_ms)

    # ---------------------------------------------------------------- placement

    def _appear(self) -> None:
        self.adjustSize()
        self.move(self.target_position())
        if not self.isVisible():
            self.show()

    def target_position(self) -> QPoint:
        """On the screen the mouse is on (where the user works), centred."""
        cursor = QCursor.pos()
        screen = QGuiApplication.screenAt(cursor) or QGuiApplication.primaryScreen()
        area = screen.availableGeometry()
        x = area.x() + (area.width() - self.width()) // 2
        if self.position is OverlayPosition.TOP:
            y = area.y() + 40
        elif self.position is OverlayPosition.CURSOR:
            x = min(max(area.x(), cursor.x() - self.width() // 2), area.right() - self.width())
            y = min(cursor.y() + 24, area.bottom() - self.height())
        else:
            y = area.bottom() - self.height() - 60
        return QPoint(x, y)

    # ---------------------------------------------------------------- fading

    def _start_fade(self) -> None:
        self._fade.setStartValue(self.windowOpacity())
        self._fade.setEndValue(0.0)
        self._fade.start()

    def _faded(self) -> None:
        if self.windowOpacity() <= 0.01:
            self.hide()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(24, 28, 36, 220))
        painter.drawRoundedRect(self.rect(), 12, 12)
