"""The tingxie wheel the app folder carries, for installing the server from it.

tingxie is on no package index, so first-run setup installs the server from the wheel
that build.spec builds into the app folder (``wheels/`` in the bundle's data folder),
of exactly the app's version. A source checkout or pip install has none: the setup then
asks for a wheel file or uses the package index.
"""

from __future__ import annotations

from pathlib import Path

from desktop.resources import frozen_root
from protocol.version import __version__

#: The folder under the bundle's data folder that build.spec puts the wheel in.
WHEEL_FOLDER = "wheels"


def wheel_name(version: str = __version__) -> str:
    return f"tingxie-{version}-py3-none-any.whl"


def bundled_wheel(root: Path | None = None) -> Path | None:
    """The wheel of this app's version in the app folder, or None (not a bundle, or it
    is missing). ``root``: the bundle's data folder (default: this process's)."""
    base = root if root is not None else frozen_root()
    if base is None:
        return None
    path = base / WHEEL_FOLDER / wheel_name()
    return path if path.is_file() else None
