"""The packaged tray app (build.spec): how the tests and the bundle benchmark build it."""

from __future__ import annotations

import sys
from pathlib import Path


def pyinstaller_command(workdir: Path, clean: bool = False) -> list[str]:
    """``pyinstaller build.spec`` (run from the repository root) into ``workdir``: the app
    folder lands in ``workdir/dist/tingxie``."""
    return [
        sys.executable,
        "-m",
        "PyInstaller",
        "build.spec",
        "--noconfirm",
        "--distpath",
        str(workdir / "dist"),
        "--workpath",
        str(workdir / "build"),
        *(["--clean"] if clean else []),
    ]
