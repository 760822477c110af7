"""``tingxie``: the tray app's entry point and composition root.

Start-up order (as desktop apps that survive users do it): excepthook → arguments →
logging to the user log folder → QApplication → single instance → settings → parts.
This module builds and wires objects; the behaviour lives in the parts.
"""

from __future__ import annotations

import argparse
import faulthandler
import getpass
import hashlib
import logging
import logging.handlers
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QMessageBox, QPlainTextEdit, QWidget

from desktop.coordinator import Coordinator, HistoryEntry
from desktop.hotkey.keys import KeySpecError, describe_key_spec, parse_key_spec
from desktop.launcher import (
    Launcher,
    LauncherState,
    ServerLauncher,
    SubprocessRunner,
    build_server_command,
    build_wsl_stop_command,
    server_environment,
)
from desktop.parts import (
    BoundHotkeys,
    bind_hotkeys,
    input_device_names,
    make_detector,
    make_source,
    make_typist,
    open_meter_source,
)
from desktop.selfcheck import run_self_check
from desktop.settings import Settings, SettingsStore, restrict_to_user, with_changes
from desktop.setup.probe import probe_config_for_this_pc
from desktop.sounds import CuePlayer
from desktop.streaming import ClientState
from desktop.ui.first_run import FirstRunDialog
from desktop.ui.history import HistoryWindow
from desktop.ui.icons import app_icon
from desktop.ui.look import tray_look
from desktop.ui.overlay import Overlay
from desktop.ui.settings_dialog import SettingsDialog
from desktop.ui.tray import Tray
from desktop.win32.foreground import (
    ForegroundTracker,
    windows_foreground_tracker,
    windows_typing_probe,
)
from desktop.win32.instance import acquire_single_instance
from desktop.win32.login import StartAtLogin, start_at_login
from desktop.win32.shell import windows_key_backend
from desktop.win32.wsl_distros import DistroLister
from protocol.log_level import DEFAULT_LOG_LEVEL, LogLevel
from protocol.version import __version__

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- start-up helpers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tingxie", description="tingxie dictation tray app")
    parser.add_argument("--version", action="version", version=f"tingxie {__version__}")
    parser.add_argument(
        "--settings-dir",
        type=Path,
        default=None,
        help="keep settings and logs in this folder (tests, portable use)",
    )
    parser.add_argument(
        "--log-level",
        default=DEFAULT_LOG_LEVEL.value,
        choices=[level.value for level in LogLevel],
    )
    parser.add_argument(
        "--no-tray", action="store_true", help="use the small window even where a tray exists"
    )
    parser.add_argument(
        "--self-check",
        action="store_true",
        help="check this install (VAD model, tray, overlay, bundled files) and exit; "
        "0 when every step passed",
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        default=None,
        help="with --self-check: also dictate a short tone to this server "
        "(token from TINGXIE_TOKEN)",
    )
    return parser


def log_directory(settings_dir: Path | None) -> Path:
    if settings_dir is not None:
        return settings_dir / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir("tingxie", appauthor=False))


def configure_logging(directory: Path, level: LogLevel) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    # The log names servers and files, and holds what was said when the user turns that
    # on for debugging: its folder is for its owner only (POSIX; per-user on Windows).
    restrict_to_user(directory, 0o700)
    path = directory / "tingxie.log"
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(level.value)
    root.addHandler(handler)
    root.addHandler(console)
    return path


#: The file native crashes are written to (kept open for the life of the process).
_crash_file: list[IO[str]] = []


def enable_faulthandler(directory: Path) -> Path:
    """Native crashes (a segfault in Qt, PortAudio, onnxruntime) write their Python
    tracebacks to ``native-crashes.log`` in the log folder. The windowed Windows app has no
    stderr for faulthandler's default; the rotating log cannot take it (faulthandler writes
    to a file descriptor, which rotation would leave behind)."""
    path = directory / "native-crashes.log"
    stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open until the process ends
    _crash_file[:] = [stream]
    faulthandler.enable(file=stream, all_threads=True)
    return path


def install_excepthook(log_path_holder: list[Path]) -> None:
    """Unhandled exceptions are logged and shown, not silently fatal."""

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        text = "".join(traceback.format_exception(kind, value, tb))
        logging.getLogger("tingxie").critical("unhandled exception:\n%s", text)
        on_gui_thread = threading.current_thread() is threading.main_thread()
        if QApplication.instance() is not None and on_gui_thread:
            where = f"\n\nDetails are in {log_path_holder[0]}" if log_path_holder else ""
            QMessageBox.critical(None, "tingxie: something went wrong", f"{value}{where}")

    sys.excepthook = hook
    threading.excepthook = lambda args: hook(
        args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback
    )


def instance_name(settings_dir: Path | None) -> str:
    """One instance per user (and per settings folder, so tests can run side by side)."""
    key = f"{getpass.getuser()}:{settings_dir.resolve() if settings_dir else ''}"
    return "tingxie-" + hashlib.sha1(key.encode()).hexdigest()[:12]


def already_running(name: str) -> bool:
    """Ask a running instance to show itself; True if there was one."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if socket.waitForConnected(300):
        socket.write(b"show\n")
        socket.waitForBytesWritten(300)
        socket.disconnectFromServer()
        return True
    return False


def key_label(spec: str) -> str:
    try:
        return describe_key_spec(parse_key_spec(spec))
    except KeySpecError:
        return spec


# ---------------------------------------------------------------- the app


class _Signals(QObject):
    """Carries launcher and microphone callbacks (other threads) to the Qt thread."""

    launcher_state = Signal(object, str)
    microphone_status = Signal(str)
    wsl_distros = Signal(object)  # list[str], from the wsl.exe -l -q worker
    session_lock = Signal(bool)  # the Windows session was locked / unlocked (shell thread)


class TingxieApp(QObject):
    def __init__(self, settings: Settings, store: SettingsStore, no_tray: bool = False) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self._first_run: FirstRunDialog | None = None
        self.signals = _Signals()
        self.tray = Tray(force_fallback=no_tray)
        self.overlay = Overlay(settings.overlay_position, settings.show_latency)

        self.typist = make_typist(settings)
        self.coordinator = Coordinator(
            settings,
            self.typist,
            lambda s: make_source(s, self.signals.microphone_status.emit),
            make_detector,
            held_modifiers=self.typist.held_modifiers,
        )
        self.history = HistoryWindow(self.coordinator.retype)
        self.cues = CuePlayer(settings.sound_cues)
        self._own_window(self.overlay)
        self._own_window(self.history)
        if self.tray.window is not None:
            self._own_window(self.tray.window)
        self.launcher = ServerLauncher(SubprocessRunner(), self.signals.launcher_state.emit)
        self.hotkeys: BoundHotkeys | None = None
        # Windows: the window dictation is for (a tray click must not type into the taskbar)
        self.foreground: ForegroundTracker | None = (
            windows_foreground_tracker(self.typist.own_window_ids)
            if sys.platform == "win32"
            else None
        )
        if self.foreground is not None:  # before typing, bring that window back
            self.typist.use_focus(windows_typing_probe(self.foreground), settings)
        self.login: StartAtLogin | None = start_at_login()
        self._dialog: SettingsDialog | None = None
        self._server_state = ClientState.CONNECTING
        self._server_detail = ""
        self._wire()

    def _own_window(self, widget: QWidget) -> None:
        """Never type into our own windows (the typist checks the focused window's id)."""
        self.typist.own_window_ids.append(int(widget.winId()))

    def _wire(self) -> None:
        c, t = self.coordinator, self.tray
        t.toggle_dictation.connect(self.toggle_from_tray)
        t.show_settings.connect(self.show_settings)
        t.show_history.connect(self.show_history)
        t.show_server_log.connect(self.show_server_log)
        t.show_about.connect(self.show_about)
        t.start_server.connect(self.start_server)
        t.stop_server.connect(self.launcher.stop)
        t.quit_requested.connect(self.quit)
        c.stage_changed.connect(self._refresh)
        c.server_state.connect(self._on_server_state)
        c.partial.connect(self.overlay.show_partial)
        c.final.connect(self._on_final)
        c.problem.connect(lambda text: self.tray.notify("tingxie", text))
        c.recording_changed.connect(self.cues.on_recording_changed)
        self.signals.launcher_state.connect(self._on_launcher_state)
        self.signals.microphone_status.connect(lambda text: self.tray.notify("Microphone", text))
        self.signals.wsl_distros.connect(self._on_wsl_distros)
        self.signals.session_lock.connect(c.session_lock_changed)

    def start(self) -> None:
        self.tray.set_talk_key(key_label(self.settings.hold_key))
        self.tray.set_server_running(False)
        self._refresh()
        self.tray.show()
        self.coordinator.start()
        self._bind_hotkeys()
        self._apply_start_at_login()
        if self.settings.start_server_on_launch:
            self.start_server()
        if not self.settings.server_configured:
            log.info("no server configured yet: opening the first-run setup")
            self.show_first_run()

    def _bind_hotkeys(self) -> None:
        if self.hotkeys is not None:
            self.hotkeys.stop()
        try:
            backend = None
            if sys.platform == "win32":  # Raw Input, not pynput's low-level hook
                tracker = self.foreground
                backend = windows_key_backend(
                    tracker.on_foreground if tracker else None, self.signals.session_lock.emit
                )
            self.hotkeys = bind_hotkeys(self.settings, self.coordinator, self.typist, backend)
            log.info("global hotkeys bound: %s", self.hotkeys.listener.bindings)
        except Exception as exc:  # e.g. no X display, or a key spec we cannot parse
            log.exception("global hotkeys unavailable")
            self.hotkeys = None
            self.tray.notify("Hotkeys unavailable", str(exc))

    def _apply_start_at_login(self) -> None:
        if self.login is None:
            return
        try:
            self.login.apply(self.settings.start_at_login)
        except OSError as exc:
            log.warning("cannot change start at login: %s", exc)
            self.tray.notify("Start at login", f"Windows did not accept the change: {exc}")

    @Slot()
    def toggle_from_tray(self) -> None:
        """A tray click made the taskbar the foreground window: bring back the window the
        user was in, so the dictation lands there, then toggle."""
        if self.foreground is not None:
            self.foreground.restore()
        self.coordinator.toggle_dictation()

    # ---------------------------------------------------------------- state display

    @Slot()
    def _refresh(self) -> None:
        stage = self.coordinator.facts.stage
        launcher = self.launcher.state if self.launcher.running else None
        self.tray.set_look(tray_look(self._server_state, stage, launcher, self._server_detail))
        self.tray.set_dictating(self.coordinator.facts.active)

    @Slot(object, str)
    def _on_server_state(self, state: ClientState, detail: str) -> None:
        self._server_state, self._server_detail = state, detail
        self._refresh()

    @Slot(object, str)
    def _on_launcher_state(self, state: LauncherState, detail: str) -> None:
        self.tray.set_server_running(self.launcher.running)
        if state is LauncherState.CRASHED:
            self.tray.notify("Server crashed", detail)
        elif state is LauncherState.FAILED:
            self.tray.notify("Server failed", detail)
        elif state is LauncherState.READY:
            self.tray.notify("Server ready", detail)
        self._server_detail = detail if state is not LauncherState.READY else ""
        self._refresh()

    @Slot(object)
    def _on_final(self, entry: HistoryEntry) -> None:
        if entry.text:
            self.overlay.show_final(entry.text, entry.latency_ms)
            self.history.add(entry)

    # ---------------------------------------------------------------- menu actions

    @Slot()
    def start_server(self) -> None:
        s = self.settings
        try:
            argv = build_server_command(s.launcher, s.server_command, s.wsl_distro)
        except ValueError as exc:
            self.tray.notify("Cannot start the server", str(exc))
            return
        stop_argv = build_wsl_stop_command(s.wsl_distro) if s.launcher is Launcher.WSL else None
        env = server_environment(s.token, s.launcher, os.environ.get("WSLENV", ""))
        self.launcher.start(argv, s.server_url, stop_argv, env, ca_file=s.ca_file or None)
        self.tray.set_server_running(True)

    @Slot()
    def show_first_run(self) -> None:
        if self._first_run is not None and self._first_run.isVisible():
            self._first_run.raise_()
            self._first_run.activateWindow()
            return
        opened_with = self.settings
        config = probe_config_for_this_pc(opened_with.server_url)
        dialog = FirstRunDialog(opened_with, SubprocessRunner(), self.launcher, config)
        self._own_window(dialog)
        dialog.configured.connect(
            lambda chosen: self.apply_settings(with_changes(self.settings, opened_with, chosen))
        )
        dialog.show()
        self._first_run = dialog  # keep it alive while open

    @Slot()
    def show_settings(self) -> None:
        capture = self.hotkeys.listener.capture_next if self.hotkeys is not None else None
        dialog = SettingsDialog(
            self.settings,
            devices=input_device_names(),
            open_meter=open_meter_source,
            capture_key=capture,
            can_start_at_login=self.login is not None,
        )
        if sys.platform == "win32":  # wsl.exe can take seconds: never on the UI thread
            DistroLister(SubprocessRunner(), self.signals.wsl_distros.emit).start()
        self._own_window(dialog)
        dialog.applied.connect(self.apply_settings)
        dialog.setup_requested.connect(self.show_first_run)
        dialog.setModal(False)
        dialog.show()
        self._dialog = dialog  # keep it alive while open

    @Slot(object)
    def _on_wsl_distros(self, distros: list[str]) -> None:
        if self._dialog is not None:
            self._dialog.set_wsl_distros(distros)

    @Slot(object)
    def apply_settings(self, settings: Settings) -> None:
        old, self.settings = self.settings, settings
        self.store.save(settings)
        self.coordinator.apply_settings(settings)
        self.overlay.position = settings.overlay_position
        self.overlay.show_latency = settings.show_latency
        self.cues.enabled = settings.sound_cues
        self.typist.apply_settings(settings)
        if (old.hold_key, old.toggle_key) != (settings.hold_key, settings.toggle_key):
            self._bind_hotkeys()
        self.tray.set_talk_key(key_label(settings.hold_key))
        if old.start_at_login != settings.start_at_login:
            self._apply_start_at_login()
        log.info("settings applied")

    @Slot()
    def show_history(self) -> None:
        self.history.show()
        self.history.raise_()

    @Slot()
    def show_server_log(self) -> None:
        view = QPlainTextEdit()
        view.setWindowTitle("tingxie server log")
        view.setReadOnly(True)
        view.setPlainText(self.launcher.log_text() or "The server has not been started from here.")
        view.resize(800, 480)
        view.show()
        self._log_view = view

    @Slot()
    def show_about(self) -> None:
        QMessageBox.about(
            None,
            "About tingxie",
            f"tingxie {__version__}\nSelf-hosted dictation with Qwen3-ASR.\n\n"
            f"Settings: {self.store.location}",
        )

    @Slot()
    def show_from_other_instance(self) -> None:
        if self.tray.window is not None:
            self.tray.window.showNormal()
            self.tray.window.raise_()
        else:
            self.tray.notify("tingxie", "tingxie is already running (in the tray).")

    @Slot()
    def quit(self) -> None:
        log.info("quitting")
        if self.hotkeys is not None:
            self.hotkeys.stop()
        self.coordinator.shutdown()
        self.cues.close()
        if self.launcher.running:
            self.launcher.stop()
        self.tray.hide()
        QApplication.quit()


def main(argv: Sequence[str] | None = None) -> int:
    log_path: list[Path] = []
    install_excepthook(log_path)
    args = build_parser().parse_args(argv)
    if args.self_check:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return run_self_check(args.server)
    name = instance_name(args.settings_dir)
    # Windows: a named mutex before anything else (QLocalServer cannot tell there)
    if not acquire_single_instance(name):
        if QApplication.instance() is None:  # QLocalSocket needs the application object
            QApplication([sys.argv[0]])
        already_running(name)
        print("tingxie is already running; showed the running one", file=sys.stderr)
        return 0
    log_dir = log_directory(args.settings_dir)
    log_path.append(configure_logging(log_dir, LogLevel(args.log_level)))
    log.info("native crashes are written to %s", enable_faulthandler(log_dir))
    log.info("tingxie %s starting (settings dir: %s)", __version__, args.settings_dir or "default")
    qt_app = QApplication([sys.argv[0]])
    qt_app.setApplicationName("tingxie")
    qt_app.setWindowIcon(app_icon())
    qt_app.setQuitOnLastWindowClosed(False)
    if already_running(name):
        print("tingxie is already running; showed the running one", file=sys.stderr)
        return 0
    QLocalServer.removeServer(name)  # a stale socket from a crash
    server = QLocalServer()
    server.listen(name)
    store = SettingsStore(args.settings_dir)
    app = TingxieApp(store.load(), store, no_tray=args.no_tray)
    server.newConnection.connect(app.show_from_other_instance)
    app.start()
    return int(qt_app.exec())


if __name__ == "__main__":
    sys.exit(main())
