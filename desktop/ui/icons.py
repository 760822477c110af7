"""Tray icons drawn at run time: a coloured disc with a microphone."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap


@cache
def mic_icon(color: str, size: int = 64) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(color))
    p.drawEllipse(QRectF(1, 1, size - 2, size - 2))
    s = size / 64.0
    p.setBrush(QColor("white"))
    p.drawRoundedRect(QRectF(25 * s, 12 * s, 14 * s, 26 * s), 7 * s, 7 * s)  # capsule
    pen = QPen(QColor("white"), 3.5 * s)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawArc(QRectF(19 * s, 20 * s, 26 * s, 24 * s), 200 * 16, 140 * 16)  # cradle
    p.drawLine(int(32 * s), int(44 * s), int(32 * s), int(51 * s))  # stem
    p.drawLine(int(25 * s), int(52 * s), int(39 * s), int(52 * s))  # base
    p.end()
    return QIcon(pixmap)
