"""The Qt binding itself must survive a long-running app.

PySide6 6.12.0 drops a reference to ``None`` on every call of a C++ method that returns
nothing. Before Python 3.12 ``None`` is reference-counted like any object, so after a few
thousand such calls (the overlay makes seven per partial result) the interpreter aborts
with "deallocating None". pyproject.toml excludes that release; this catches any other.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CALLS = 20_000  # several times the references None starts with

PROGRAM = f"""
import sys
from PySide6.QtWidgets import QApplication
from desktop.ui.overlay import Overlay

app = QApplication([])
overlay = Overlay()
before = sys.getrefcount(None)
for _ in range({CALLS} // 7):
    overlay.show_partial("stable text", "unstable tail")
print(sys.getrefcount(None) - before)
"""


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_many_overlay_updates_keep_none_alive() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, f"the process died ({out.returncode}): {out.stderr[-600:]}"
    assert abs(int(out.stdout.strip())) < 1000, "references to None leak on every call"
