"""``tingxie --self-check``: proves an install (above all the packaged app) works here.

Each step exercises a real part: the bundled files, the VAD model, the platform modules
the packager must not have left out, the tray and overlay, and, given ``--server``, one
real dictation round trip (hello → ready, start, audio, stop → final). Every step runs;
the report names each one, and the exit status is non-zero if any failed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import numpy as np

if TYPE_CHECKING:
    from desktop.client import ServerLink
    from protocol.messages import Final

#: A check returns a one-line detail on success and raises on failure.
Check = Callable[[], str]


@dataclass(frozen=True)
class StepResult:
    name: str
    ok: bool
    detail: str
    seconds: float


def run_steps(steps: Sequence[tuple[str, Check]]) -> list[StepResult]:
    results = []
    for name, check in steps:
        t0 = time.perf_counter()
        try:
            detail, ok = check(), True
        except Exception as exc:  # the report says what broke; the next step still runs
            detail, ok = f"{type(exc).__name__}: {exc or repr(exc)}", False
        results.append(StepResult(name, ok, detail, time.perf_counter() - t0))
    return results


def format_report(results: Sequence[StepResult]) -> str:
    lines = [
        f"{'ok  ' if r.ok else 'FAIL'} {r.name:<10} {r.detail} ({r.seconds * 1000:.0f} ms)"
        for r in results
    ]
    failed = [r.name for r in results if not r.ok]
    lines.append(f"self-check failed: {', '.join(failed)}" if failed else "self-check passed")
    return "\n".join(lines)


# ---------------------------------------------------------------- the checks


def check_resources() -> str:
    from desktop.resources import resource_path, resources_dir
    from desktop.sounds import Cue, cue_path, read_sound
    from desktop.ui.icons import TRAY_SIZES, TRAY_STATES, TaskbarTheme, tray_icon_file

    for state in TRAY_STATES:
        for theme in TaskbarTheme:
            for size in TRAY_SIZES:
                resource_path("icons", "tray", tray_icon_file(state, theme, size))
    resource_path("icons", "tingxie.ico")
    for cue in Cue:
        read_sound(cue_path(cue))
    return f"icons and sounds in {resources_dir()}"


def check_vad() -> str:
    from desktop.audio.vad import VAD_CHUNK_SAMPLES, SileroOnnxVad

    vad = SileroOnnxVad()
    rng = np.random.default_rng(0)
    quiet = np.round(rng.normal(0, 20, VAD_CHUNK_SAMPLES * 30)).astype(np.int16)
    t0 = time.perf_counter()
    chunks = quiet.reshape(-1, VAD_CHUNK_SAMPLES)
    probabilities = [vad.speech_probability(chunk) for chunk in chunks]
    per_chunk_ms = (time.perf_counter() - t0) * 1000 / len(probabilities)
    if not all(0.0 <= p <= 1.0 and math.isfinite(p) for p in probabilities):
        raise RuntimeError(f"the model returned {probabilities}")
    if max(probabilities) >= 0.5:
        raise RuntimeError(f"quiet noise scored as speech ({max(probabilities):.2f})")
    return f"{vad.model_path}, {per_chunk_ms:.2f} ms per 32 ms chunk"


def platform_modules() -> list[str]:
    """Modules chosen at run time (so a packager's import scan cannot see them)."""
    if sys.platform == "win32":
        return [
            "pynput.keyboard._win32",
            "pynput.mouse._win32",
            "pynput._util.win32",
            "desktop.win32.native",  # imported by name: the ctypes side of the Win32 seam
        ]
    if sys.platform == "darwin":
        return ["pynput.keyboard._darwin", "pynput.mouse._darwin", "pynput._util.darwin"]
    return ["pynput.keyboard._xorg", "pynput.mouse._xorg", "pynput._util.xorg", "Xlib.display"]


def check_modules() -> str:
    if "pynput" not in sys.modules:
        # Importing pynput's packages loads the platform backend, which needs a display on
        # X11; its dummy backend lets the spec lookups below run anywhere. This process
        # ends after the check, so the choice does not leak into a running app.
        previous = os.environ.get("PYNPUT_BACKEND")
        os.environ["PYNPUT_BACKEND"] = "dummy"
        try:
            importlib.import_module("pynput.keyboard")
        finally:
            if previous is None:
                del os.environ["PYNPUT_BACKEND"]
            else:
                os.environ["PYNPUT_BACKEND"] = previous
    missing = [name for name in platform_modules() if importlib.util.find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(f"not bundled: {', '.join(missing)}")
    import sounddevice  # type: ignore[import-untyped]  # loads the PortAudio library

    portaudio = str(sounddevice.get_portaudio_version()[1]).split(",")[0]
    return f"{len(platform_modules())} hotkey modules, {portaudio}"


def check_ui() -> str:
    from PySide6.QtWidgets import QApplication

    from desktop.dictation import Stage
    from desktop.ui.icons import app_icon, current_taskbar_theme
    from desktop.ui.look import tray_look
    from desktop.ui.overlay import Overlay
    from desktop.ui.tray import Tray
    from protocol.client_events import ClientState

    app = QApplication.instance()
    if not isinstance(app, QApplication):
        raise RuntimeError("no QApplication")
    if app_icon().isNull():
        raise RuntimeError("the app icon did not load")
    tray = Tray()
    for server in (ClientState.UNREACHABLE, ClientState.CONNECTING, ClientState.READY):
        for stage in Stage:
            tray.set_look(tray_look(server, stage))
    overlay = Overlay()
    overlay.show_partial("self-check", "…")
    shot = overlay.grab()
    overlay.hide()
    if shot.isNull() or shot.width() == 0:
        raise RuntimeError("the overlay did not draw")
    host = "system tray" if tray.icon is not None else "window (no system tray here)"
    platform = app.platformName()
    return f"tray: {host}, overlay drawn, {current_taskbar_theme().value} taskbar, Qt {platform}"


def check_server(url: str, token: str | None, ca_file: str | None) -> str:
    return asyncio.run(_round_trip(url, token, ca_file))


async def _round_trip(url: str, token: str | None, ca_file: str | None) -> str:
    from desktop.client import ServerLink

    t0 = time.perf_counter()
    link = await ServerLink.open(url, token=token, ca_file=ca_file, timeout_s=10)
    async with link:
        # half a second of a soft 440 Hz tone: any engine answers it with a final
        t = np.arange(8000) / 16_000
        tone = np.round(0.1 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
        await link.start("self-check")
        await link.send_audio(tone.tobytes())
        await link.stop("self-check")
        final = await asyncio.wait_for(_final(link, "self-check"), timeout=20)
    seconds = time.perf_counter() - t0
    engine = f"{link.ready.engine} {link.ready.model}".strip() or "server"
    return f"{engine}: final {final.text!r} in {seconds:.2f} s"


async def _final(link: ServerLink, utterance_id: str) -> Final:
    from protocol.messages import Error, Final

    async for message in link.messages():
        if isinstance(message, Error):
            raise RuntimeError(f"server error {message.code.value}: {message.message}")
        if isinstance(message, Final) and message.id == utterance_id:
            return message
    raise ConnectionError("the server closed the connection before the final")


def run_self_check(server_url: str | None, out: TextIO = sys.stdout) -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    steps: list[tuple[str, Check]] = [
        ("resources", check_resources),
        ("vad", check_vad),
        ("modules", check_modules),
        ("ui", check_ui),
    ]
    if server_url:
        token = os.environ.get("TINGXIE_TOKEN") or None
        ca_file = os.environ.get("TINGXIE_CA_FILE") or None
        steps.append(("server", lambda: check_server(server_url, token, ca_file)))
    results = run_steps(steps)
    print(format_report(results), file=out, flush=True)
    del app
    return 0 if all(r.ok for r in results) else 1
