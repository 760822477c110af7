"""ctypes prototypes for the Win32 functions tingxie calls, each declared once.

Import this module only on Windows (``sys.platform == "win32"``); elsewhere it raises
ImportError so a wrong import fails loudly instead of at the first call. Each section
belongs to one area of the app; docs/windows.md lists the documented behaviour relied on.
"""

from __future__ import annotations

import sys

if sys.platform != "win32":  # pragma: no cover - the seam exists only on Windows
    raise ImportError("desktop.win32.api is only available on Windows")

# ---------------------------------------------------------------- keyboard input (SendInput)

# ---------------------------------------------------------------- clipboard

# ---------------------------------------------------------------- processes, tokens, elevation

# ---------------------------------------------------------------- windows, foreground, WinEvents

# ---------------------------------------------------------------- hooks, raw input, key state

# ---------------------------------------------------------------- single instance, session, registry
