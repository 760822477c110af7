"""The tray's state icons and the app icon, loaded from resources/icons.

The PNGs are drawn per size on the pixel grid by resources/source/make_icons.py, in two
variants: ``light`` for light taskbars (a dark glyph) and ``dark`` for dark ones. Which
variant the taskbar needs is decided by :func:`choose_taskbar_theme` (pure); the inputs
come from the platform (the Windows registry, Qt's colour scheme, the palette).
"""

from __future__ import annotations

import enum
import logging
import sys
from functools import cache

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QIcon

from desktop.resources import resource_path

log = logging.getLogger(__name__)

#: One icon per ``Look.key`` (desktop/ui/look.py), each at these pixel sizes.
TRAY_STATES = ("offline", "connecting", "ready", "listening", "speaking", "finalizing")
TRAY_SIZES = (16, 20, 24, 32)


class TaskbarTheme(enum.Enum):
    LIGHT = "light"  # a light taskbar: dark glyphs
    DARK = "dark"  # a dark taskbar: light glyphs


def choose_taskbar_theme(
    windows_taskbar_light: bool | None, color_scheme: str, window_lightness: int
) -> TaskbarTheme:
    """Pick the icon variant for the taskbar.

    On Windows the taskbar follows the *Windows* mode (``SystemUsesLightTheme``), which
    can differ from the app mode that Qt reports: a dark taskbar with light apps is the
    default on Windows 10. Elsewhere Qt's colour scheme ("light", "dark", "unknown") is
    the best hint; failing that, the palette's window colour (0–255 lightness).
    """
    if windows_taskbar_light is not None:
        return TaskbarTheme.LIGHT if windows_taskbar_light else TaskbarTheme.DARK
    if color_scheme in ("light", "dark"):
        return TaskbarTheme(color_scheme)
    return TaskbarTheme.DARK if window_lightness < 128 else TaskbarTheme.LIGHT


def windows_taskbar_light() -> bool | None:
    """Windows' ``SystemUsesLightTheme`` (the taskbar's mode); None elsewhere or unset."""
    if sys.platform != "win32":
        return None
    import winreg

    key = r"Software\Microsoft\Windows\CurrentVersion\Themes\Personalize"
    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as handle:
            value, _kind = winreg.QueryValueEx(handle, "SystemUsesLightTheme")
    except OSError:
        return None  # Windows 7/8 have no such value: their taskbars are dark
    return bool(value)


def current_taskbar_theme() -> TaskbarTheme:
    app = QGuiApplication.instance()
    scheme, lightness = "unknown", 255
    if isinstance(app, QGuiApplication):
        scheme = {
            Qt.ColorScheme.Light: "light",
            Qt.ColorScheme.Dark: "dark",
        }.get(app.styleHints().colorScheme(), "unknown")
        lightness = app.palette().window().color().lightness()
    return choose_taskbar_theme(windows_taskbar_light(), scheme, lightness)


def tray_icon_file(state: str, theme: TaskbarTheme, size: int) -> str:
    return f"{state}-{theme.value}-{size}.png"


@cache
def tray_icon(state: str, theme: TaskbarTheme) -> QIcon:
    """The icon for a tray state, with every drawn size (Qt picks the one it needs)."""
    if state not in TRAY_STATES:
        raise ValueError(f"no tray icon for state {state!r}")
    icon = QIcon()
    for size in TRAY_SIZES:
        icon.addFile(str(resource_path("icons", "tray", tray_icon_file(state, theme, size))))
    return icon


@cache
def app_icon() -> QIcon:
    """The application icon (windows, dialogs, the taskbar button), 16–256 px."""
    return QIcon(str(resource_path("icons", "tingxie.ico")))
