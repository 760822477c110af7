"""Settings dialog. Apply/OK emit the new settings; the app applies them at once."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.audio.source import AudioSource
from desktop.hotkey.keys import KeySpecError, normalize_key_spec
from desktop.settings import (
    LAUNCHERS,
    MODES,
    OUTPUT_METHODS,
    OVERLAY_POSITIONS,
    Launcher,
    OverlayPosition,
    Settings,
    parse_choice,
    parse_mode,
    parse_output_method,
    setting_text,
)

log = logging.getLogger(__name__)

#: Qt keys the capture button understands without help from the global hotkey library.
_QT_KEY_NAMES = {
    **{getattr(Qt.Key, f"Key_F{i}"): f"f{i}" for i in range(1, 25)},
    Qt.Key.Key_Pause: "pause",
    Qt.Key.Key_ScrollLock: "scroll_lock",
    Qt.Key.Key_Insert: "insert",
    Qt.Key.Key_Menu: "menu",
    Qt.Key.Key_CapsLock: "caps_lock",
}


def level_dbfs(block: np.ndarray) -> float:
    """RMS level of an int16 block, in dBFS (−90 for digital silence)."""
    if block.size == 0:
        return -90.0
    rms = float(np.sqrt(np.mean((block.astype(np.float64) / 32768.0) ** 2)))
    return max(-90.0, 20.0 * math.log10(rms)) if rms > 0 else -90.0


def parse_overrides(text: str) -> dict[str, str]:
    """``app = method`` lines → dict; unknown methods are reported, not kept."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        app, sep, method = line.partition("=")
        if not sep or method.strip() not in OUTPUT_METHODS or not app.strip():
            raise ValueError(f"“{line}”: write app = {' | '.join(OUTPUT_METHODS)}")
        result[app.strip()] = method.strip()
    return result


class SettingsDialog(QDialog):
    applied = Signal(object)  # Settings
    setup_requested = Signal()  # "Run setup again"
    key_captured = Signal(str)  # from the hotkey listener's thread

    def __init__(
        self,
        settings: Settings,
        *,
        devices: list[str] | None = None,
        open_meter: Callable[[str], AudioSource] | None = None,
        wsl_distros: list[str] | None = None,
        capture_key: Callable[[Callable[[str], None]], None] | None = None,
        can_start_at_login: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("tingxie settings")
        self.setMinimumWidth(560)
        self._settings = settings
        self._can_start_at_login = can_start_at_login
        self._open_meter = open_meter
        self._meter_source: AudioSource | None = None
        self._capturing: QLineEdit | None = None
        self._capture_key = capture_key  # the global hotkey library tells left from right
        self.key_captured.connect(self._captured)
        tabs = QTabWidget(self)
        tabs.addTab(self._server_tab(settings, wsl_distros or []), "Server")
        tabs.addTab(self._audio_tab(settings, devices or []), "Microphone")
        tabs.addTab(self._dictation_tab(settings), "Dictation")
        tabs.addTab(self._overlay_tab(settings), "Overlay")
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c0392b;")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Apply
            | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._ok)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._meter_timer = QTimer(self)
        self._meter_timer.timeout.connect(self._poll_meter)

    # ---------------------------------------------------------------- tabs

    def _server_tab(self, s: Settings, distros: list[str]) -> QWidget:
        page, form = QWidget(), QFormLayout()
        page.setLayout(form)
        self.server_url = QLineEdit(s.server_url)
        self.token = QLineEdit(s.token)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.start_server = QCheckBox("Start the server when tingxie starts")
        self.start_server.setChecked(s.start_server_on_launch)
        self.start_at_login = QCheckBox("Start tingxie when I log in to Windows")
        self.start_at_login.setChecked(s.start_at_login)
        self.start_at_login.setVisible(self._can_start_at_login)
        self.launcher = QComboBox()
        self.launcher.addItems(LAUNCHERS)
        self.launcher.setCurrentText(setting_text(s.launcher))
        self.wsl_distro = QComboBox()
        self.wsl_distro.setEditable(True)
        self.wsl_distro.addItems(["", *distros])
        self.wsl_distro.setCurrentText(s.wsl_distro)
        self.server_command = QLineEdit(s.server_command)
        form.addRow("Server URL", self.server_url)
        form.addRow("Token", self.token)
        self.ca_file = QLineEdit(s.ca_file)
        self.ca_file.setPlaceholderText("wss:// with a self-signed certificate: its .pem file")
        form.addRow("Trusted certificate", self.ca_file)
        form.addRow(self.start_server)
        form.addRow(self.start_at_login)
        form.addRow("Run the server", self.launcher)
        form.addRow("WSL distribution", self.wsl_distro)
        form.addRow("Server command", self.server_command)
        self.run_setup = QPushButton("Run setup again…")
        self.run_setup.setToolTip("Find out what this PC can do and set up a server")
        self.run_setup.clicked.connect(self.setup_requested.emit)
        form.addRow("", self.run_setup)
        return page

    def _audio_tab(self, s: Settings, devices: list[str]) -> QWidget:
        page, form = QWidget(), QFormLayout()
        page.setLayout(form)
        self.microphone = QComboBox()
        self.microphone.setEditable(True)
        self.microphone.addItems(["", *devices])
        self.microphone.setCurrentText(s.microphone)
        self.microphone.currentTextChanged.connect(self._restart_meter)
        self.level = QProgressBar()
        self.level.setRange(-60, 0)
        self.level.setFormat("%v dBFS")
        self.level.setValue(-60)
        self.level_note = QLabel("")
        self.warm_mic = QCheckBox("Keep the microphone open between key presses")
        self.warm_mic.setToolTip(
            "Keeps the first syllable spoken just before the key goes down. Off: the "
            "microphone opens only while you dictate, so a Bluetooth headset keeps its good "
            "sound and the microphone-in-use icon goes out."
        )
        self.warm_mic.setChecked(s.warm_mic)
        self.vad_threshold = self._spin(s.vad_threshold, 0.05, 1.0, 0.05, 2)
        self.min_silence = self._spin(s.min_silence_ms, 100, 5000, 20, 0, " ms")
        self.pre_roll = self._spin(s.pre_roll_ms, 0, 2000, 32, 0, " ms")
        self.tail = self._spin(s.tail_ms, 0, 2000, 32, 0, " ms")
        self.release_tail = self._spin(s.release_tail_ms, 0, 2000, 32, 0, " ms")
        form.addRow("Microphone (empty = default)", self.microphone)
        form.addRow("Level", self.level)
        form.addRow("", self.level_note)
        form.addRow(self.warm_mic)
        form.addRow("Speech threshold", self.vad_threshold)
        form.addRow("Silence that ends a sentence", self.min_silence)
        form.addRow("Audio kept before speech", self.pre_roll)
        form.addRow("Audio kept after speech", self.tail)
        form.addRow("Audio kept after key release", self.release_tail)
        return page

    def _dictation_tab(self, s: Settings) -> QWidget:
        page, form = QWidget(), QFormLayout()
        page.setLayout(form)
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.mode.setCurrentText(setting_text(s.mode))
        self.hold_key = QLineEdit(s.hold_key)
        self.toggle_key = QLineEdit(s.toggle_key)
        self.language = QLineEdit(s.language)
        self.language.setPlaceholderText("empty = detect; e.g. en, zh, Chinese")
        self.context = QPlainTextEdit(s.context)
        self.context.setPlaceholderText("Names and terms to recognise: 通义千问, vLLM, …")
        self.context.setMaximumHeight(70)
        self.output_method = QComboBox()
        self.output_method.addItems(OUTPUT_METHODS)
        self.output_method.setCurrentText(setting_text(s.output_method))
        self.overrides = QPlainTextEdit(
            "\n".join(f"{app} = {setting_text(method)}" for app, method in s.app_overrides.items())
        )
        self.overrides.setPlaceholderText("WindowsTerminal.exe = clipboard")
        self.overrides.setMaximumHeight(70)
        self.sound_cues = QCheckBox("Play a short tone when recording starts and stops")
        self.sound_cues.setChecked(s.sound_cues)
        form.addRow("Mode", self.mode)
        form.addRow("Hold-to-talk key", self._with_capture(self.hold_key))
        form.addRow("Toggle key (optional)", self._with_capture(self.toggle_key))
        form.addRow("Language", self.language)
        form.addRow("Context / hotwords", self.context)
        form.addRow("Typing method", self.output_method)
        form.addRow("Per-application method", self.overrides)
        form.addRow(self.sound_cues)
        return page

    def _overlay_tab(self, s: Settings) -> QWidget:
        page, form = QWidget(), QFormLayout()
        page.setLayout(form)
        self.overlay_position = QComboBox()
        self.overlay_position.addItems(OVERLAY_POSITIONS)
        self.overlay_position.setCurrentText(setting_text(s.overlay_position))
        self.show_latency = QCheckBox("Show the latency of the last sentence")
        self.show_latency.setChecked(s.show_latency)
        form.addRow("Position", self.overlay_position)
        form.addRow(self.show_latency)
        self.log_transcripts = QCheckBox("Debugging: write what I say into the log file")
        self.log_transcripts.setChecked(s.log_transcripts)
        form.addRow(self.log_transcripts)
        return page

    @staticmethod
    def _spin(
        value: float, low: float, high: float, step: float, decimals: int, suffix: str = ""
    ) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setDecimals(decimals)
        spin.setSuffix(suffix)
        spin.setValue(value)
        return spin

    def _with_capture(self, field_edit: QLineEdit) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(field_edit)
        button = QPushButton("Press a key…")
        button.clicked.connect(lambda: self._start_capture(field_edit, button))
        row.addWidget(button)
        return box

    def set_wsl_distros(self, distros: list[str]) -> None:
        """Fill the distribution list once ``wsl.exe -l -q`` has answered (it runs off
        the UI thread); what the user typed or chose meanwhile stays."""
        chosen = self.wsl_distro.currentText()
        self.wsl_distro.clear()
        self.wsl_distro.addItems(["", *distros])
        self.wsl_distro.setCurrentText(chosen)

    # ---------------------------------------------------------------- key capture

    def _start_capture(self, target: QLineEdit, button: QPushButton) -> None:
        self._capturing = target
        self._capture_button = button
        button.setText("Waiting for a key…")
        if self._capture_key is not None:
            self._capture_key(self.key_captured.emit)
        else:
            self.grabKeyboard()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self._capturing is None or self._capture_key is not None:
            super().keyPressEvent(event)
            return
        self.releaseKeyboard()
        name = _QT_KEY_NAMES.get(Qt.Key(event.key()))
        if name is None and event.text().strip():
            name = event.text().strip().lower()
        self._captured(name or "")

    def _captured(self, spec: str) -> None:
        if self._capturing is None:
            return
        if spec:
            self._capturing.setText(spec)
        self._capture_button.setText("Press a key…")
        self._capturing = None

    # ---------------------------------------------------------------- level meter

    def showEvent(self, event: object) -> None:
        self._restart_meter()
        super().showEvent(event)  # type: ignore[arg-type]

    def _restart_meter(self) -> None:
        self._stop_meter()
        if self._open_meter is None or not self.isVisible():
            return
        try:
            self._meter_source = self._open_meter(self.microphone.currentText())
            self._meter_source.start()
            self.level_note.setText("")
        except Exception as exc:
            self._meter_source = None
            self.level_note.setText(f"Cannot open this microphone: {exc}")
            return
        self._meter_timer.start(50)

    def _poll_meter(self) -> None:
        source = self._meter_source
        if source is None:
            return
        peak = -90.0
        try:
            while (block := source.read(timeout=0)) is not None:
                peak = max(peak, level_dbfs(block))
        except Exception as exc:
            self.level_note.setText(f"Microphone stopped: {exc}")
            self._stop_meter()
            return
        if peak > -90.0:
            self.level.setValue(int(max(-60.0, peak)))

    def _stop_meter(self) -> None:
        self._meter_timer.stop()
        if self._meter_source is not None:
            try:
                self._meter_source.close()
            except Exception:
                log.exception("closing the level-meter microphone failed")
            self._meter_source = None

    def closeEvent(self, event: QCloseEvent) -> None:
        self._stop_meter()
        super().closeEvent(event)

    def done(self, result: int) -> None:
        self._stop_meter()
        super().done(result)

    # ---------------------------------------------------------------- results

    def current(self) -> Settings:
        """The settings as edited. Raises ValueError with a message for the user."""
        server_url = self.server_url.text().strip()
        if not server_url.startswith(("ws://", "wss://")):
            raise ValueError("The server URL must start with ws:// or wss://")
        hold_key = self._key(self.hold_key.text(), "hold-to-talk")
        toggle_key = self._key(self.toggle_key.text(), "toggle") if self.toggle_key.text() else ""
        server = (
            server_url,
            self.token.text().strip(),
            self.ca_file.text().strip(),
            parse_choice(Launcher, self.launcher.currentText()),
            self.wsl_distro.currentText().strip(),
            self.server_command.text().strip(),
        )
        s = self._settings
        changed = server != (
            s.server_url,
            s.token,
            s.ca_file,
            s.launcher,
            s.wsl_distro,
            s.server_command,
        )
        return replace(
            self._settings,
            # A server entered here by hand counts as set up: no first-run setup next time.
            server_configured=s.server_configured or changed,
            server_url=server_url,
            token=self.token.text().strip(),
            ca_file=self.ca_file.text().strip(),
            start_server_on_launch=self.start_server.isChecked(),
            launcher=parse_choice(Launcher, self.launcher.currentText()),
            wsl_distro=self.wsl_distro.currentText().strip(),
            server_command=self.server_command.text().strip(),
            microphone=self.microphone.currentText().strip(),
            warm_mic=self.warm_mic.isChecked(),
            vad_threshold=self.vad_threshold.value(),
            min_silence_ms=self.min_silence.value(),
            pre_roll_ms=self.pre_roll.value(),
            tail_ms=self.tail.value(),
            release_tail_ms=self.release_tail.value(),
            mode=parse_mode(self.mode.currentText()),
            hold_key=hold_key,
            toggle_key=toggle_key,
            language=self.language.text().strip(),
            context=self.context.toPlainText().strip(),
            output_method=parse_output_method(self.output_method.currentText()),
            app_overrides=parse_overrides(self.overrides.toPlainText()),
            sound_cues=self.sound_cues.isChecked(),
            overlay_position=parse_choice(OverlayPosition, self.overlay_position.currentText()),
            show_latency=self.show_latency.isChecked(),
            log_transcripts=self.log_transcripts.isChecked(),
            start_at_login=self.start_at_login.isChecked(),
        )

    @staticmethod
    def _key(text: str, what: str) -> str:
        if not text.strip():
            raise ValueError(f"Choose a {what} key")
        try:
            return normalize_key_spec(text)
        except KeySpecError as exc:
            raise ValueError(f"The {what} key “{text}” is not a key: {exc}") from None

    def apply(self) -> bool:
        try:
            settings = self.current()
        except ValueError as exc:
            self.error.setText(str(exc))
            return False
        self.error.setText("")
        self._settings = settings
        self.applied.emit(settings)
        return True

    def _ok(self) -> None:
        if self.apply():
            self.accept()
