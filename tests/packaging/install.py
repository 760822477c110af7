"""Installing a built wheel into a folder of its own, as the packaging tests do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def install_wheel(wheel: Path, target: Path) -> None:
    """``pip install --no-deps --target target wheel``: the wheel alone, beside nothing of
    the checkout; fails the test with pip's message if pip fails."""
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
