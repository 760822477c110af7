"""The wheel ships every package and the app's resources, and an installed copy finds
them (a source checkout finds resources/ itself; the PyInstaller bundle is tested in
test_bundle.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

from tests.packaging.install import install_wheel

ROOT = Path(__file__).parents[2]


def pyproject() -> dict:  # type: ignore[type-arg]
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())  # type: ignore[no-any-return]


def test_every_package_is_listed() -> None:
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    found = set(find_packages(str(ROOT), include=["protocol*", "server*", "desktop*"]))
    assert listed - {"desktop._resources"} == found, "update [tool.setuptools] packages"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the sources, so the checkout gets no build/ folder."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("protocol", "server", "desktop", "resources"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (path,) = out.glob("tingxie-*.whl")
    return path


def test_wheel_holds_the_resources_and_not_their_sources(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = [
        p.relative_to(ROOT / "resources")
        for p in (ROOT / "resources").rglob("*")
        if p.is_file() and p.parts[-2] in ("icons", "tray", "sounds")
    ]
    assert len(tracked) >= 50
    assert {f"desktop/_resources/{p.as_posix()}" for p in tracked} <= names
    assert not [n for n in names if "/source/" in n or n.endswith("make_icons.py")]


def test_an_installed_wheel_finds_its_resources(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install_wheel(wheel, target)
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r})\n"
        "import desktop\n"
        "from desktop.resources import resource_path\n"
        "from desktop.sounds import Cue, cue_path, read_sound\n"
        "print(desktop.__file__)\n"
        "print(resource_path('icons', 'tray', 'ready-dark-16.png'))\n"
        "print(read_sound(cue_path(Cue.START)).rate)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert out.returncode == 0, out.stderr
    package, icon, rate = out.stdout.splitlines()
    assert package.startswith(str(target)), "the installed copy, not the checkout"
    assert icon == str(target / "desktop" / "_resources" / "icons" / "tray" / "ready-dark-16.png")
    assert rate == "48000"
