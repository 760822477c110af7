"""Where the app's bundled files (icons, sounds, the VAD model) are on this install.

Three layouts exist:

* the PyInstaller bundle: everything under ``sys._MEIPASS`` (``resources/`` and
  ``models/``, laid out by build.spec);
* an installed wheel: ``resources/`` shipped inside the package as ``desktop/_resources``
  (pyproject.toml maps it there);
* a source checkout or editable install: ``resources/`` next to the ``desktop`` package.
  Looked at last: in site-packages, a ``resources`` folder beside ``desktop`` would be
  some other distribution's.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: Inside the frozen bundle: the folder that holds models copied in by build.spec.
BUNDLED_MODELS = "models"
_PACKAGE_DIR = Path(__file__).resolve().parent


class ResourceMissingError(FileNotFoundError):
    """A file the app ships with is not where the install layout puts it."""


def frozen_root() -> Path | None:
    """The bundle's data folder when running as a PyInstaller app, else None."""
    root = getattr(sys, "_MEIPASS", None)
    return Path(root) if isinstance(root, str) else None


def resources_dir() -> Path:
    candidates = []
    frozen = frozen_root()
    if frozen is not None:
        candidates.append(frozen / "resources")
    candidates += [_PACKAGE_DIR / "_resources", _PACKAGE_DIR.parent / "resources"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ResourceMissingError(
        "tingxie's resources folder is missing; looked in " + ", ".join(map(str, candidates))
    )


def resource_path(*parts: str) -> Path:
    """A file under resources/, e.g. ``resource_path("sounds", "start.wav")``."""
    path = resources_dir().joinpath(*parts)
    if not path.is_file():
        raise ResourceMissingError(f"missing resource: {path}")
    return path
