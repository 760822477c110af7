"""Builds the desktop app with PyInstaller (build.spec) and runs what it built.

The build takes about 20–40 s, once per run of this module. The built program runs from
a scratch folder with a bare environment, so it can only use what the bundle holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.setup.wheel import bundled_wheel
from protocol.version import __version__
from tests.conftest import spawn_fake_server
from tests.packaging import pyinstaller_command
from tests.packaging.install import install_wheel

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
#: Never in the desktop app: model runtimes and the server (a regression here costs GBs).
FORBIDDEN = {
    "torch",
    "torchaudio",
    "vllm",
    "transformers",
    "qwen_asr",
    "server",
    "silero_vad",
    "faster_whisper",
    "ctranslate2",
}
#: The Linux folder is ~260 MB (Qt's ICU data and GTK theme libraries included); torch
#: alone would add ~700 MB.
SIZE_BUDGET_MB = 350
STEPS = ["resources", "vad", "modules", "ui", "server"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("PyInstaller", reason="pip install -e '.[build]'")
    out = tmp_path_factory.mktemp("pyinstaller")
    t0 = time.monotonic()
    build = subprocess.run(
        pyinstaller_command(out),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    folder = out / "dist" / "tingxie"
    print(f"\nbuilt {folder} in {time.monotonic() - t0:.0f} s, {size_mb(folder):.0f} MB")
    return folder


def size_mb(folder: Path) -> float:
    """Bytes on disk; the bundle links some libraries to one copy (counted once)."""
    files = (p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return sum(p.stat().st_size for p in files) / 1e6


def executable(bundle: Path) -> Path:
    return bundle / ("tingxie-console.exe" if sys.platform == "win32" else "tingxie")


def bare_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH, no virtualenv, no TINGXIE_*: the bundle must stand alone."""
    keep = ("PATH", "HOME", "USER", "LANG", "TMPDIR", "SYSTEMROOT", "XDG_RUNTIME_DIR")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}


def run_bundle(bundle: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(executable(bundle)), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=bare_env(**env),
        cwd=bundle.parent.parent,
    )


def step_status(stdout: str) -> dict[str, str]:
    lines = [line.split(maxsplit=2) for line in stdout.splitlines() if line[:4] in ("ok  ", "FAIL")]
    return {name: status for status, name, _ in lines}


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    proc, port = spawn_fake_server()
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_version(bundle: Path) -> None:
    out = run_bundle(bundle, "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"tingxie {__version__}"


def test_self_check_offscreen_with_a_real_server(bundle: Path, server_url: str) -> None:
    out = run_bundle(bundle, "--self-check", "--server", server_url, QT_QPA_PLATFORM="offscreen")
    assert out.returncode == 0, out.stdout + out.stderr
    assert step_status(out.stdout) == dict.fromkeys(STEPS, "ok")
    # the bundled copies were used, not the source tree or the silero-vad package
    lines = {line.split()[1]: line for line in out.stdout.splitlines() if line[:4] == "ok  "}
    assert str(bundle) in lines["resources"] and str(bundle) in lines["vad"]


def test_self_check_on_an_x_display(
    bundle: Path, server_url: str, request: pytest.FixtureRequest
) -> None:
    """The xcb platform plugin and the libraries it needs are in the bundle too."""
    xvfb = (
        request.getfixturevalue("xvfb") if request.config.pluginmanager.hasplugin("xvfb") else None
    )
    if xvfb is None or not os.environ.get("DISPLAY"):
        pytest.skip("needs pytest-xvfb's virtual X display")
    out = run_bundle(
        bundle,
        "--self-check",
        "--server",
        server_url,
        QT_QPA_PLATFORM="xcb",
        DISPLAY=os.environ["DISPLAY"],
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert step_status(out.stdout) == dict.fromkeys(STEPS, "ok")
    assert "Qt xcb" in out.stdout


def test_a_broken_bundle_names_the_failing_step(bundle: Path, tmp_path: Path) -> None:
    """The self-check notices a missing model (the bundle is copied, then damaged)."""
    import shutil

    damaged = tmp_path / "tingxie"
    shutil.copytree(bundle, damaged, symlinks=True)
    model = next(damaged.rglob("silero_vad.onnx"))
    model.unlink()
    spec = next((damaged.rglob("silero_vad*.dist-info")), None)
    assert spec is not None, "the model's licence travels with it"
    out = run_bundle(damaged, "--self-check", QT_QPA_PLATFORM="offscreen")
    assert out.returncode == 1
    assert step_status(out.stdout)["vad"] == "FAIL"
    assert out.stdout.rstrip().endswith("self-check failed: vad")


def test_bundle_holds_no_model_runtime_or_server(bundle: Path) -> None:
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(executable(bundle)))
    modules = set(archive.open_embedded_archive("PYZ.pyz").toc)
    assert {m.split(".")[0] for m in modules} & FORBIDDEN == set()
    assert {"desktop.app", "desktop.audio.vad", "protocol.codec", "onnxruntime"} <= modules
    files = {p.name for p in bundle.rglob("*")}
    assert files & FORBIDDEN == set()
    assert not [name for name in files if name.startswith(("libtorch", "libc10", "libcudart"))]
    size = size_mb(bundle)
    print(f"\nbundle size: {size:.0f} MB")
    assert size < SIZE_BUDGET_MB


def data_folder(bundle: Path) -> Path:
    """What ``sys._MEIPASS`` is in the built folder (``_internal`` since PyInstaller 6)."""
    inner = bundle / "_internal"
    return inner if inner.is_dir() else bundle


class RecordingRunner:
    """Records what the setup would run; every command succeeds at once."""

    def __init__(self) -> None:
        self.started: list[list[str]] = []

    def start(self, argv, on_line, env=None, keep_input=False):  # type: ignore[no-untyped-def]
        from tests.setup.recorded import FinishedProcess

        self.started.append(list(argv))
        return FinishedProcess(0)

    def run(self, argv, timeout):  # type: ignore[no-untyped-def]
        return 0

    def capture(self, argv, timeout):  # type: ignore[no-untyped-def]
        raise AssertionError(f"not expected: {argv}")


def test_bundle_carries_its_own_wheel_and_the_setup_installs_from_it(
    bundle: Path, tmp_path: Path
) -> None:
    """tingxie is on no package index: the app folder holds the wheel of its version,
    the setup finds it where the bundle keeps it, and its install step uses it."""
    from desktop.launcher import ServerLauncher
    from desktop.setup.commands import Target
    from desktop.setup.decide import CPU_MODEL, PathKind
    from desktop.setup.steps import SetupChoice, SetupListener, SetupRun, build_steps

    wheel = bundled_wheel(data_folder(bundle))
    assert wheel is not None, "no tingxie wheel in the app folder"
    assert wheel.name == f"tingxie-{__version__}-py3-none-any.whl"

    runner = RecordingRunner()
    target = Target(str(tmp_path / "server"), (sys.executable,))
    choice = SetupChoice(
        PathKind.LOCAL_CPU, target=target, model=CPU_MODEL, wheel=str(wheel), test_engine=True
    )
    launcher = ServerLauncher(runner, lambda state, detail: None)  # type: ignore[arg-type]
    steps = [s for s in build_steps(choice, launcher) if s.key == "install"]
    assert SetupRun(steps, runner, SetupListener()).run() is None  # type: ignore[arg-type]
    (pip,) = runner.started
    assert pip[-1] == f"tingxie[server,transformers] @ {wheel.as_uri()}"

    # The wheel is whole and of this version: installed, its server says so.
    site = tmp_path / "site"
    install_wheel(wheel, site)
    code = f"import sys; sys.path.insert(0, {str(site)!r}); from server.app import main; main()"
    out = subprocess.run(
        [sys.executable, "-c", code, "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.stdout.strip() == f"tingxie-server {__version__}", out.stderr
