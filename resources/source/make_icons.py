"""Draws tingxie's icons: the tray state icons and the app icon (the source of every PNG
and ICO under resources/icons/).

    python resources/source/make_icons.py                  # rewrite resources/icons/
    python resources/source/make_icons.py --out DIR        # somewhere else (tests)
    python resources/source/make_icons.py --sheet FILE.png # contact sheet for review

Small icons are drawn per size on the pixel grid rather than scaled from one drawing:
stroke widths are whole pixels and edges sit on pixel boundaries, so a 16 px icon is
sharp instead of blurred. Each tray state comes in two variants: ``light`` for light
taskbars (dark glyph) and ``dark`` for dark taskbars (light glyph). States differ in
shape as well as colour (slash, badge, ring, filled disc, dots), so they can be told
apart without colour vision.

Runs headless: QT_QPA_PLATFORM defaults to offscreen.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QGuiApplication,
    QImage,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPen,
)

RESOURCES = Path(__file__).resolve().parents[1]
STATES = ("offline", "connecting", "ready", "listening", "speaking", "finalizing")
THEMES = ("light", "dark")  # the taskbar's colour
TRAY_SIZES = (16, 20, 24, 32)
APP_SIZES = (16, 20, 24, 32, 40, 48, 64, 128, 256)
#: Taskbar colours the contact sheet (and the contrast test) put the icons on.
TASKBARS = {"light": "#f3f3f3", "dark": "#202020"}


@dataclass(frozen=True)
class Palette:
    glyph: str  # the microphone on the taskbar itself
    dim: str  # offline
    ring: str  # listening
    badge: str  # connecting
    speaking: str  # filled discs with a white glyph: dark enough for white on top,
    finalizing: str  # light enough to stand out from a dark taskbar


PALETTES = {
    "light": Palette(
        glyph="#1f1f1f",
        dim="#5c5c5c",
        ring="#1a5fd1",
        badge="#c77700",
        speaking="#d32f2f",
        finalizing="#7b3fb0",
    ),
    "dark": Palette(
        glyph="#ffffff",
        dim="#a8a8a8",
        ring="#5b9bff",
        badge="#ffb300",
        speaking="#e53935",
        finalizing="#9d5fdb",
    ),
}
APP_TILE_TOP, APP_TILE_BOTTOM = "#3d7fe6", "#1d4fae"


# ---------------------------------------------------------------- geometry


def stroke_width(box: int) -> int:
    return 1 if box < 22 else max(2, round(box / 14))


def even(n: float) -> int:
    """The even integer nearest to n (keeps a shape centred on an even-sized grid)."""
    return max(2, round(n / 2) * 2)


@dataclass(frozen=True)
class Mic:
    """A microphone glyph laid out on the pixel grid of a ``box`` × ``box`` square."""

    box: int

    @property
    def stroke(self) -> int:
        return stroke_width(self.box)

    @property
    def pad(self) -> int:
        return max(1, round(self.box / 16))

    @property
    def capsule(self) -> QRectF:
        width = even(self.box * 0.375) if self.box % 2 == 0 else even(self.box * 0.375) + 1
        height = round(self.box * 0.5)
        return QRectF((self.box - width) / 2, self.pad, width, height)

    def draw(self, p: QPainter, x: float, y: float, color: QColor) -> None:
        s, cap = self.stroke, self.capsule.translated(x, y)
        half = cap.width() / 2
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(color)
        p.drawRoundedRect(cap, half, half)
        # cradle: a U around the capsule's lower half, one stroke away from it
        centre_y = cap.bottom() - half
        radius = half + s + s / 2
        arms_top = cap.top() + round(cap.height() / 2)
        left, right = cap.center().x() - radius, cap.center().x() + radius
        cradle = QPainterPath(QPointF(left, arms_top))
        cradle.lineTo(left, centre_y)
        cradle.arcTo(QRectF(left, centre_y - radius, 2 * radius, 2 * radius), 180, 180)
        cradle.lineTo(right, arms_top)
        p.setPen(pen(color, s, Qt.PenCapStyle.FlatCap))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPath(cradle)
        # stem and base; the stem is 2 px on even grids so it stays centred
        bottom = y + self.box - self.pad
        stem = s if (self.box - s) % 2 == 0 else s + 1
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(color)
        stem_top = centre_y + radius + s / 2
        p.drawRect(QRectF(x + (self.box - stem) / 2, stem_top, stem, bottom - stem_top))
        p.drawRect(QRectF(cap.left(), bottom - s, cap.width(), s))


# ---------------------------------------------------------------- tray icons


def new_image(size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    return image


def pen(color: QColor, width: float, cap: Qt.PenCapStyle) -> QPen:
    result = QPen(color, width)
    result.setCapStyle(cap)
    return result


def clear(p: QPainter) -> None:
    p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Clear)


def normal(p: QPainter) -> None:
    p.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)


def inner_mic(size: int) -> tuple[Mic, float]:
    """The smaller microphone drawn inside a disc, and its offset."""
    margin = max(2, round(size * 0.15))
    return Mic(size - 2 * margin), margin


def tray_image(state: str, theme: str, size: int, shift: float = 0.0) -> QImage:
    """One tray icon. ``shift`` moves the drawing off the pixel grid (tests compare)."""
    palette = PALETTES[theme]
    image = new_image(size)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.translate(shift, shift)
    disc = QRectF(0, 0, size, size)
    if state in ("ready", "connecting"):
        Mic(size).draw(p, 0, 0, QColor(palette.glyph))
    if state == "connecting":  # a badge in the corner, cut out of the glyph
        diameter = round(size * 0.44) | 1  # odd: centred on a pixel
        gap = stroke_width(size)
        badge = QRectF(size - diameter, size - diameter, diameter, diameter)
        clear(p)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("black"))
        p.drawEllipse(badge.adjusted(-gap, -gap, gap, gap))
        normal(p)
        p.setBrush(QColor(palette.badge))
        p.drawEllipse(badge)
    elif state == "offline":  # a dimmed glyph, struck through
        Mic(size).draw(p, 0, 0, QColor(palette.dim))
        s = stroke_width(size)
        a, b = QPointF(size * 0.12, size * 0.12), QPointF(size * 0.88, size * 0.88)
        clear(p)
        p.setPen(pen(QColor("black"), 3 * s, Qt.PenCapStyle.FlatCap))
        p.drawLine(a, b)
        normal(p)
        p.setPen(pen(QColor(palette.dim), s * 1.5, Qt.PenCapStyle.RoundCap))
        p.drawLine(a, b)
    elif state == "listening":  # a ring: the microphone is open, nobody is speaking
        s = max(2, stroke_width(size))
        p.setPen(QPen(QColor(palette.ring), s))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(disc.adjusted(s / 2, s / 2, -s / 2, -s / 2))
        mic, offset = inner_mic(size)
        mic.draw(p, offset, offset, QColor(palette.ring))
    elif state == "speaking":  # filled: sound is going to the server
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(palette.speaking))
        p.drawEllipse(disc)
        mic, offset = inner_mic(size)
        mic.draw(p, offset, offset, QColor("white"))
    elif state == "finalizing":  # filled, with an ellipsis: waiting for the text
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(palette.finalizing))
        p.drawEllipse(disc)
        dot = max(2, even(size / 8))
        step = dot * 2 if size < 24 else dot + even(size / 10)
        top = (size - dot) / 2
        p.setBrush(QColor("white"))
        for k in (-1, 0, 1):
            left = (size - dot) / 2 + k * step
            p.drawEllipse(QRectF(left, top, dot, dot))
    p.end()
    return image


# ---------------------------------------------------------------- app icon


def app_image(size: int) -> QImage:
    image = new_image(size)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    inset = 0 if size <= 32 else round(size / 32)
    tile = QRectF(inset, inset, size - 2 * inset, size - 2 * inset)
    brush = QBrush(QColor(APP_TILE_BOTTOM))  # flat when small: a gradient only blurs
    if size > 24:
        gradient = QLinearGradient(tile.topLeft(), tile.bottomLeft())
        gradient.setColorAt(0, QColor(APP_TILE_TOP))
        gradient.setColorAt(1, QColor(APP_TILE_BOTTOM))
        brush = QBrush(gradient)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(brush)
    radius = tile.width() * 0.22
    p.drawRoundedRect(tile, radius, radius)
    margin = max(2, round(size * 0.14))
    if (size - 2 * margin) % 2:
        margin += 1
    Mic(size - 2 * margin).draw(p, margin, margin, QColor("white"))
    p.end()
    return image


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise RuntimeError("PNG encoding failed")
    return bytes(data.data())


def ico_bytes(images: list[QImage]) -> bytes:
    """An ICO container with PNG-compressed entries (read by Windows Vista and later)."""
    pngs = [png_bytes(image) for image in images]
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = len(header) + 16 * len(pngs)
    entries = b""
    for image, data in zip(images, pngs, strict=True):
        side = image.width() if image.width() < 256 else 0  # 0 means 256
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
    return header + entries + b"".join(pngs)


# ---------------------------------------------------------------- output


def tray_icon_name(state: str, theme: str, size: int) -> str:
    return f"{state}-{theme}-{size}.png"


def write_icons(out: Path) -> list[Path]:
    written = []
    tray = out / "tray"
    tray.mkdir(parents=True, exist_ok=True)
    for state in STATES:
        for theme in THEMES:
            for size in TRAY_SIZES:
                path = tray / tray_icon_name(state, theme, size)
                path.write_bytes(png_bytes(tray_image(state, theme, size)))
                written.append(path)
    app = [app_image(size) for size in APP_SIZES]
    (out / "tingxie.ico").write_bytes(ico_bytes(app))
    (out / "tingxie.png").write_bytes(png_bytes(app[-1]))
    written += [out / "tingxie.ico", out / "tingxie.png"]
    return written


def contact_sheet(path: Path, zoom: int = 6) -> None:
    """Every tray icon at 1:1 on both taskbars, the 16 px ones magnified, the app icon."""
    cell, label_w, gap = 40, 90, 12
    zoomed = 16 * zoom + 8
    tray_width = label_w + len(TRAY_SIZES) * 2 * cell + 2 * zoomed + 16
    width = max(tray_width, label_w + sum(APP_SIZES) + gap * len(APP_SIZES))
    height = 28 + len(STATES) * zoomed + 16 + 256 + 16
    sheet = QImage(width, height, QImage.Format.Format_ARGB32)
    sheet.fill(QColor("#ffffff"))
    p = QPainter(sheet)
    p.setFont(QFont("DejaVu Sans", 9))
    x = label_w
    p.setPen(QColor("#000000"))
    for size in TRAY_SIZES * len(THEMES):
        p.drawText(QRectF(x, 4, cell, 20), Qt.AlignmentFlag.AlignCenter, f"{size}")
        x += cell
    for theme in THEMES:
        p.drawText(QRectF(x, 4, zoomed, 20), Qt.AlignmentFlag.AlignCenter, f"16 ×{zoom} {theme}")
        x += zoomed
    for row, state in enumerate(STATES):
        y = 28 + row * zoomed
        p.setPen(QColor("#000000"))
        p.drawText(QRectF(4, y, label_w, zoomed), Qt.AlignmentFlag.AlignVCenter, state)
        x = label_w
        for theme in THEMES:
            p.fillRect(QRectF(x, y, cell * len(TRAY_SIZES), zoomed), QColor(TASKBARS[theme]))
            for size in TRAY_SIZES:
                icon = tray_image(state, theme, size)
                p.drawImage(QPointF(x + (cell - size) // 2, y + (zoomed - size) // 2), icon)
                x += cell
        for theme in THEMES:
            p.fillRect(QRectF(x, y, zoomed, zoomed), QColor(TASKBARS[theme]))
            big = tray_image(state, theme, 16).scaled(16 * zoom, 16 * zoom)  # nearest: pixels
            p.drawImage(QPointF(x + 4, y + 4), big)
            x += zoomed
    y = 28 + len(STATES) * zoomed + 16
    x = label_w
    for size in APP_SIZES:
        p.drawImage(QPointF(x, y + 256 - size), app_image(size))
        x += size + gap
    p.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not sheet.save(str(path)):
        raise RuntimeError(f"cannot write {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESOURCES / "icons")
    parser.add_argument("--sheet", type=Path, default=None, help="also write a contact sheet")
    args = parser.parse_args(argv)
    written = write_icons(args.out)
    if args.sheet is not None:
        contact_sheet(args.sheet)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


if __name__ == "__main__":
    app = QGuiApplication(sys.argv[:1])  # fonts for the contact sheet's labels
    sys.exit(main())
