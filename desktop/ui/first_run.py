"""The first-run dialog: what this PC can do, the recommended server, setting it up.

Three pages: checking (the probes), choosing (the options, the recommended one
selected), setting up (each step with progress, the log, and on failure the reason in
plain words with Retry). Probes and steps run on worker threads; their results come
back through Qt signals, so the dialog never blocks.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.launcher import ProcessRunner, ServerLauncher
from desktop.settings import Settings
from desktop.setup.decide import MachineFacts, Option, PathKind, Recommendation, decide
from desktop.setup.decide import models_that_fit as fitting_models
from desktop.setup.probe import ProbeConfig, Prober
from desktop.setup.problems import Problem
from desktop.setup.steps import SetupListener, SetupRun, build_steps, choice_from_option
from desktop.setup.wheel import bundled_wheel
from protocol.endpoint import DEFAULT_PORT

log = logging.getLogger(__name__)

_MARK = {"waiting": "○", "running": "◐", "done": "✓", "failed": "✗"}


class _Bridge(QObject, SetupListener):
    """Worker threads emit; the dialog (Qt thread) receives."""

    probed = Signal(object)  # MachineFacts
    probe_failed = Signal(str)
    probe_status = Signal(str)
    started = Signal(int)
    progressed = Signal(int, object, str)
    logged = Signal(int, str)
    done = Signal(int)
    failed = Signal(int, object)
    completed = Signal(object)
    stopped = Signal()

    def step_started(self, index: int) -> None:
        self.started.emit(index)

    def step_progress(self, index: int, fraction: float | None, text: str) -> None:
        self.progressed.emit(index, fraction, text)

    def step_log(self, index: int, line: str) -> None:
        self.logged.emit(index, line)

    def step_done(self, index: int) -> None:
        self.done.emit(index)

    def step_failed(self, index: int, problem: Problem) -> None:
        self.failed.emit(index, problem)

    def finished(self, settings: dict[str, Any]) -> None:
        self.completed.emit(settings)

    def cancelled(self) -> None:
        self.stopped.emit()


def problem_html(problem: Problem) -> str:
    return f"<b>{_escape(problem.message)}</b><br>{_escape(problem.next_step)}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class FirstRunDialog(QDialog):
    configured = Signal(object)  # Settings, once a server works

    PAGE_CHECK, PAGE_CHOOSE, PAGE_STEPS, PAGE_DONE = range(4)

    def __init__(
        self,
        settings: Settings,
        runner: ProcessRunner,
        launcher: ServerLauncher,
        probe_config: ProbeConfig,
        parent: QWidget | None = None,
        wheel_file: str | None = None,
    ) -> None:
        """``wheel_file``: the tingxie wheel to install the server from; None: the one
        in the app folder (if this is the packaged app), "": the package index."""
        super().__init__(parent)
        if wheel_file is None:
            found = bundled_wheel()
            wheel_file = str(found) if found is not None else ""
        self._wheel_file = wheel_file
        self.setWindowTitle("Set up tingxie")
        self.setMinimumSize(680, 560)
        self._settings = settings
        self._runner = runner
        self._launcher = launcher
        self._probe_config = probe_config
        self._facts: MachineFacts | None = None
        self.recommendation: Recommendation | None = None
        self._run: SetupRun | None = None
        self._failed_at: int | None = None
        self._worker: threading.Thread | None = None
        self.bridge = _Bridge()
        self.bridge.probed.connect(self._show_options)
        self.bridge.probe_failed.connect(self._probe_failed)
        self.bridge.probe_status.connect(lambda text: self.check_status.setText(text))
        self.bridge.started.connect(self._step_started)
        self.bridge.progressed.connect(self._step_progress)
        self.bridge.logged.connect(lambda _i, line: self.log_view.appendPlainText(line))
        self.bridge.done.connect(self._step_done)
        self.bridge.failed.connect(self._step_failed)
        self.bridge.completed.connect(self._completed)
        self.bridge.stopped.connect(self._stopped)

        self.pages = QStackedWidget()
        self.pages.addWidget(self._check_page())
        self.pages.addWidget(self._choose_page())
        self.pages.addWidget(self._steps_page())
        self.pages.addWidget(self._done_page())
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)

    # ---------------------------------------------------------------- pages

    def _check_page(self) -> QWidget:
        page = QWidget()
        box = QVBoxLayout(page)
        title = QLabel("<h2>Setting up tingxie</h2>tingxie needs a speech recognition server. "
                       "Finding out what this PC can do…")  # fmt: skip
        title.setWordWrap(True)
        busy = QProgressBar()
        busy.setRange(0, 0)
        self.check_status = QLabel("")
        box.addWidget(title)
        box.addWidget(busy)
        box.addWidget(self.check_status)
        box.addStretch(1)
        return page

    def _choose_page(self) -> QWidget:
        page = QWidget()
        box = QVBoxLayout(page)
        box.addWidget(QLabel("<h2>Choose where the speech server runs</h2>"))
        self.findings = QLabel("")
        self.findings.setWordWrap(True)
        self.findings.setStyleSheet("color: #555;")
        box.addWidget(self.findings)
        self.options_box = QVBoxLayout()
        box.addLayout(self.options_box)
        self.option_group = QButtonGroup(self)
        self.option_group.buttonToggled.connect(lambda *_: self._option_changed())
        self.option_buttons: dict[PathKind, QRadioButton] = {}

        extra = QFormLayout()
        self.model = QComboBox()
        # The app folder's own wheel by default: tingxie is on no package index.
        self.wheel = QLineEdit(self._wheel_file)
        self.wheel.setPlaceholderText("empty: install from the package index (pip)")
        self.wheel.setToolTip(
            "The tingxie wheel the server is installed from (by default the one in the app "
            "folder, of this app's version). Empty: pip looks for it on the package index."
        )
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_wheel)
        wheel_row = QWidget()
        row = QHBoxLayout(wheel_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.wheel)
        row.addWidget(browse)
        self.remote_url = QLineEdit("")
        self.remote_url.setPlaceholderText(f"ws://192.168.1.20:{DEFAULT_PORT}")
        self.token = QLineEdit(self._settings.token)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("the server's --token (empty if it has none)")
        self.ca_file = QLineEdit(self._settings.ca_file)
        self.ca_file.setPlaceholderText("wss:// with a self-signed certificate: its .pem file")
        extra.addRow("Model", self.model)
        extra.addRow("Package (tingxie wheel)", wheel_row)
        extra.addRow("Server address", self.remote_url)
        extra.addRow("Token", self.token)
        extra.addRow("Trusted certificate", self.ca_file)
        self.local_rows = [self.model, wheel_row]
        self.remote_rows = [self.remote_url, self.token, self.ca_file]
        box.addLayout(extra)
        box.addStretch(1)
        buttons = QHBoxLayout()
        self.recheck = QPushButton("Check again")
        self.recheck.clicked.connect(self.start_probe)
        self.later = QPushButton("Set up later")
        self.later.clicked.connect(self.reject)
        self.setup_button = QPushButton("Set up")
        self.setup_button.setDefault(True)
        self.setup_button.clicked.connect(self.start_setup)
        buttons.addWidget(self.recheck)
        buttons.addStretch(1)
        buttons.addWidget(self.later)
        buttons.addWidget(self.setup_button)
        box.addLayout(buttons)
        return page

    def _steps_page(self) -> QWidget:
        page = QWidget()
        box = QVBoxLayout(page)
        self.steps_title = QLabel("")
        box.addWidget(self.steps_title)
        self.step_list = QListWidget()
        self.step_list.setMaximumHeight(130)
        box.addWidget(self.step_list)
        self.step_text = QLabel("")
        self.step_text.setWordWrap(True)
        self.step_bar = QProgressBar()
        self.step_bar.setRange(0, 1000)
        self.step_bar.setTextVisible(False)
        box.addWidget(self.step_text)
        box.addWidget(self.step_bar)
        self.problem = QLabel("")
        self.problem.setWordWrap(True)
        self.problem.setTextFormat(Qt.TextFormat.RichText)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.setStyleSheet(
            "background: #fdecea; color: #611a15; padding: 8px; border-radius: 4px;"
        )
        self.problem.hide()
        box.addWidget(self.problem)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        box.addWidget(self.log_view, 1)
        buttons = QHBoxLayout()
        self.back = QPushButton("Back")
        self.back.clicked.connect(lambda: self.pages.setCurrentIndex(self.PAGE_CHOOSE))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        self.retry = QPushButton("Retry")
        self.retry.clicked.connect(self._retry)
        buttons.addWidget(self.back)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.retry)
        box.addLayout(buttons)
        return page

    def _done_page(self) -> QWidget:
        page = QWidget()
        box = QVBoxLayout(page)
        self.done_text = QLabel("")
        self.done_text.setWordWrap(True)
        box.addWidget(self.done_text)
        box.addStretch(1)
        finish = QPushButton("Start dictating")
        finish.clicked.connect(self.accept)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(finish)
        box.addLayout(row)
        return page

    # ---------------------------------------------------------------- probing

    def showEvent(self, event: object) -> None:
        super().showEvent(event)  # type: ignore[arg-type]
        if self._facts is None and self._worker is None:
            self.start_probe()

    @Slot()
    def start_probe(self) -> None:
        self.pages.setCurrentIndex(self.PAGE_CHECK)
        prober = Prober(self._runner, self._probe_config)

        def work() -> None:
            try:
                self.bridge.probed.emit(prober.run(self.bridge.probe_status.emit))
            except Exception as exc:  # a probe bug must not leave the page spinning
                log.exception("probing this PC failed")
                self.bridge.probe_failed.emit(str(exc))

        self._start_worker(work, "setup-probe")

    def _start_worker(self, work: Any, name: str) -> None:
        self._worker = threading.Thread(target=work, name=name, daemon=True)
        self._worker.start()

    @Slot(str)
    def _probe_failed(self, text: str) -> None:
        self._worker = None
        self.check_status.setText(f"Checking this PC failed: {text}")

    @Slot(object)
    def _show_options(self, facts: MachineFacts) -> None:
        self._worker = None
        self._facts = facts
        rec = self.recommendation = decide(facts)
        log.info("first run: %s; recommended %s", "; ".join(rec.findings), rec.recommended.value)
        self.findings.setText("Found: " + " · ".join(rec.findings))
        while self.options_box.count():
            item = self.options_box.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        for button in list(self.option_group.buttons()):
            self.option_group.removeButton(button)
        self.option_buttons = {}
        for option in rec.options:
            self.options_box.addWidget(self._option_widget(option, option.kind is rec.recommended))
        self.option_buttons[rec.recommended].setChecked(True)
        if not self.remote_url.text():
            self.remote_url.setText(self._settings.server_url)
        self._option_changed()
        self.pages.setCurrentIndex(self.PAGE_CHOOSE)

    def _option_widget(self, option: Option, recommended: bool) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 4, 0, 4)
        title = option.title + ("  — recommended" if recommended else "")
        button = QRadioButton(title)
        button.setEnabled(option.available)
        font = button.font()
        font.setBold(recommended)
        button.setFont(font)
        self.option_group.addButton(button)
        self.option_buttons[option.kind] = button
        lay.addWidget(button)
        text = [_escape(option.summary)]
        text += [f"<i>{_escape(note)}</i>" for note in option.notes]
        if not option.available:
            text += [f"<span style='color:#a33'>{problem_html(p)}</span>" for p in option.problems]
        detail = QLabel("<br>".join(text))
        detail.setWordWrap(True)
        detail.setTextFormat(Qt.TextFormat.RichText)
        detail.setContentsMargins(24, 0, 0, 0)
        lay.addWidget(detail)
        return box

    def selected_kind(self) -> PathKind | None:
        return next((k for k, b in self.option_buttons.items() if b.isChecked()), None)

    def _option_changed(self) -> None:
        kind = self.selected_kind()
        local = kind in (PathKind.WSL_GPU, PathKind.LOCAL_CPU)
        remote = kind in (PathKind.REMOTE, PathKind.EXISTING)
        for widget in self.local_rows:
            widget.setEnabled(local)
        for widget in self.remote_rows:
            widget.setEnabled(remote)
        self.remote_url.setEnabled(kind is PathKind.REMOTE)
        self.model.clear()
        if self.recommendation is not None and kind is not None and local:
            option = self.recommendation.option(kind)
            plan = option.gpu_plan
            models = fitting_models(plan.budget_mib) if plan else [option.model]
            for model in models:
                if model is not None:
                    self.model.addItem(model.label, model)
        self.setup_button.setEnabled(kind is not None)

    def _browse_wheel(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "tingxie wheel", "", "Wheels (*.whl)")
        if path:
            self.wheel.setText(path)

    # ---------------------------------------------------------------- setting up

    @Slot()
    def start_setup(self) -> None:
        kind = self.selected_kind()
        if self.recommendation is None or self._facts is None or kind is None:
            return
        option = self.recommendation.option(kind)
        local_server = kind in (PathKind.WSL_GPU, PathKind.LOCAL_CPU)
        choice = choice_from_option(
            option,
            self._facts,
            model=self.model.currentData(),
            wheel=self.wheel.text().strip(),
            remote_url=self.remote_url.text().strip(),
            # A local server keeps the token already in the settings (or gets a new one);
            # a remote one takes what the user typed.
            token=self._settings.token if local_server else self.token.text().strip(),
            ca_file=self.ca_file.text().strip(),
        )
        steps = build_steps(choice, self._launcher)
        self._run = SetupRun(steps, self._runner, self.bridge)
        self.steps_title.setText(f"<h2>{option.title}</h2>")
        self.step_list.clear()
        for step in steps:
            self.step_list.addItem(QListWidgetItem(f"{_MARK['waiting']}  {step.title}"))
        self.log_view.clear()
        self.pages.setCurrentIndex(self.PAGE_STEPS)
        self._run_from(0)

    def _run_from(self, index: int) -> None:
        run = self._run
        assert run is not None
        self.problem.hide()
        self.retry.setVisible(False)
        self.back.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._failed_at = None
        run.rearm()
        self._start_worker(lambda: run.run(index), "setup-steps")

    def _mark(self, index: int, state: str) -> None:
        assert self._run is not None
        item = self.step_list.item(index)
        if item is not None:
            item.setText(f"{_MARK[state]}  {self._run.steps[index].title}")

    @Slot(int)
    def _step_started(self, index: int) -> None:
        self._mark(index, "running")
        self.step_list.setCurrentRow(index)
        self.step_text.setText("")
        self.step_bar.setRange(0, 0)

    @Slot(int, object, str)
    def _step_progress(self, index: int, fraction: float | None, text: str) -> None:
        self.step_text.setText(text)
        if fraction is None:
            self.step_bar.setRange(0, 0)  # busy: the program gives no total
        else:
            self.step_bar.setRange(0, 1000)
            self.step_bar.setValue(int(fraction * 1000))

    @Slot(int)
    def _step_done(self, index: int) -> None:
        self._mark(index, "done")
        self.step_bar.setRange(0, 1000)
        self.step_bar.setValue(1000)

    @Slot(int, object)
    def _step_failed(self, index: int, problem: Problem) -> None:
        self._worker = None
        self._failed_at = index
        self._mark(index, "failed")
        self.step_bar.setRange(0, 1000)
        self.step_bar.setValue(0)
        self.problem.setText(problem_html(problem))
        self.problem.show()
        if problem.detail:
            self.log_view.appendPlainText(problem.detail)
        self.retry.setVisible(True)
        self.back.setEnabled(True)
        self.cancel_button.setEnabled(False)

    @Slot()
    def _retry(self) -> None:
        if self._failed_at is not None:
            self._run_from(self._failed_at)

    @Slot()
    def _cancel(self) -> None:
        if self._run is not None:
            self._run.cancel()

    @Slot()
    def _stopped(self) -> None:
        self._worker = None
        self.step_text.setText("Stopped. Press Retry to go on, or Back to choose again.")
        self._failed_at = self._failed_at if self._failed_at is not None else 0
        for row in range(self.step_list.count()):
            item = self.step_list.item(row)
            if item is not None and item.text().startswith(_MARK["running"]):
                self._failed_at = row
                self._mark(row, "waiting")
        self.retry.setVisible(True)
        self.back.setEnabled(True)
        self.cancel_button.setEnabled(False)

    @Slot(object)
    def _completed(self, changes: dict[str, Any]) -> None:
        self._worker = None
        settings = replace(self._settings, **changes)
        self.done_text.setText(
            "<h2>tingxie is ready</h2>"
            f"The server at {_escape(settings.server_url)} answers."
            + (" tingxie starts it whenever it starts." if settings.start_server_on_launch else "")
            + "<br><br>Hold the talk key (right Ctrl unless you changed it) and speak; the "
            "text is typed where the cursor is. Settings → Server has everything chosen here; "
            "“Run setup again” is there too."
        )
        self.pages.setCurrentIndex(self.PAGE_DONE)
        log.info("first run: set up %s", settings.server_url)
        self.configured.emit(settings)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._cancel()
        super().closeEvent(event)

    def reject(self) -> None:
        self._cancel()
        super().reject()
