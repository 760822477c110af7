"""``tingxie``: what the tray app needs, checked before Qt is imported.

``desktop.app`` imports PySide6 at once and Qt aborts without a display, so a missing
desktop extra (``pip install -e .`` installs only the core) or a session with no screen
would end in a traceback or in Qt's misleading plugin hints. Here each is one line that
says what to do; everything else goes to :func:`desktop.app.main`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from protocol.version import __version__

#: Arguments that need no screen (they print and exit, or run offscreen on purpose).
_NO_SCREEN_NEEDED = frozenset({"-h", "--help", "--version", "--self-check"})


def missing_desktop_extra() -> str:
    """Why Qt cannot be imported ("" when it can)."""
    try:
        import PySide6  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return ""


def no_display(env: Mapping[str, str], platform: str) -> bool:
    """A Linux (or BSD) session without X11 or Wayland, and no Qt platform chosen."""
    if platform in ("win32", "darwin"):
        return False
    wanted = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    return not any(env.get(name) for name in wanted)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if why := missing_desktop_extra():
        if "--version" in args:
            print(f"tingxie {__version__}")
            return 0
        print(
            "tingxie: the tray app needs the desktop extra: pip install 'tingxie[desktop]' "
            f"(from a checkout: pip install -e '.[desktop]'). [{why}]\n"
            "  tingxie-server and tingxie-cli work without it.",
            file=sys.stderr,
        )
        return 2
    if not _NO_SCREEN_NEEDED & set(args) and no_display(os.environ, sys.platform):
        print(
            "tingxie: no display to show the tray on (DISPLAY and WAYLAND_DISPLAY are not "
            "set). Start it in a desktop session; without one, tingxie-cli dictates from a "
            "terminal and 'QT_QPA_PLATFORM=offscreen tingxie --self-check' checks this install.",
            file=sys.stderr,
        )
        return 2
    from desktop.app import main as app_main

    return app_main(args)


if __name__ == "__main__":
    sys.exit(main())
