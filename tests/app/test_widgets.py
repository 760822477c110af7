"""Overlay, tray, settings dialog, history: behaviour and screenshots."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from desktop.audio.source import ArraySource
from desktop.coordinator import HistoryEntry, Stage
from desktop.launcher import LauncherState
from desktop.settings import Settings
from desktop.streaming import ClientState
from desktop.ui.history import HistoryWindow
from desktop.ui.look import tray_look
from desktop.ui.overlay import Overlay, partial_html
from desktop.ui.settings_dialog import SettingsDialog, level_dbfs, parse_overrides
from desktop.ui.tray import Tray
from tests.app.conftest import SCREENSHOTS
from tests.conftest import load_recordings


def save_screenshot(widget, name: str, artifacts: Path) -> QImage:  # type: ignore[no-untyped-def]
    image = widget.grab().toImage()
    assert not image.isNull()
    assert image.width() == widget.width() and image.height() == widget.height()
    colors = {
        image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)
    }
    assert len(colors) > 3, f"{name}: screenshot is blank"
    for folder in (artifacts, SCREENSHOTS):
        folder.mkdir(parents=True, exist_ok=True)
        assert image.save(str(folder / f"{name}.png"))
    return image


def test_tray_look_follows_server_then_stage() -> None:
    assert tray_look(ClientState.UNREACHABLE, Stage.SPEAKING).key == "offline"
    assert tray_look(ClientState.AUTH_FAILED, Stage.IDLE).tooltip.endswith("refused the token")
    assert tray_look(ClientState.MODEL_LOADING, Stage.IDLE).key == "connecting"
    assert tray_look(ClientState.READY, Stage.IDLE, LauncherState.LOADING).key == "connecting"
    assert tray_look(ClientState.READY, Stage.IDLE).key == "ready"
    assert tray_look(ClientState.READY, Stage.LISTENING).key == "listening"
    assert tray_look(ClientState.READY, Stage.SPEAKING).key == "speaking"
    assert tray_look(ClientState.READY, Stage.FINALIZING).key == "finalizing"
    assert tray_look(ClientState.READY, Stage.TYPING).key == "finalizing"


def test_partial_html_styles_stable_and_unstable_apart() -> None:
    html = partial_html("今天 <b>", "天气")
    assert "今天 &lt;b&gt;" in html  # text is escaped, never interpreted
    assert html.index("#ffffff") < html.index("今天") < html.index("italic") < html.index("天气")
    long = partial_html("x" * 300, "tail")
    assert "tail" in long and long.count("x") < 300


def test_overlay_never_takes_focus_or_input(qtbot, artifacts: Path) -> None:
    overlay = Overlay(show_latency=True)
    qtbot.addWidget(overlay)
    flags = overlay.windowFlags()
    assert flags & Qt.WindowType.WindowDoesNotAcceptFocus
    assert flags & Qt.WindowType.WindowTransparentForInput
    assert flags & Qt.WindowType.WindowStaysOnTopHint
    assert overlay.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    overlay.show_partial("今天天气很好，", "我们去公园")
    assert overlay.isVisible() and "我们去公园" in overlay.text.text()
    save_screenshot(overlay, "overlay-partial", artifacts)
    overlay.show_final("Today the weather is fine.", 412.0, hold_ms=50)
    assert overlay.latency.isVisible() and "412 ms" in overlay.latency.text()
    save_screenshot(overlay, "overlay-final", artifacts)
    qtbot.waitUntil(lambda: not overlay.isVisible(), timeout=3000)  # faded out


def test_tray_menu_and_fallback_window(qtbot, artifacts: Path) -> None:
    tray = Tray(force_fallback=True)
    assert tray.window is not None
    qtbot.addWidget(tray.window)
    tray.set_look(tray_look(ClientState.READY, Stage.LISTENING))
    tray.set_talk_key("f9")
    tray.set_dictating(True)
    texts = [a.text() for a in tray.menu.actions() if a.text()]
    for wanted in (
        "Stop dictation",
        "Push-to-talk key: f9 (hold)",
        "Start server",
        "Stop server",
        "Settings…",
        "History…",
        "About tingxie",
        "Quit",
    ):
        assert wanted in texts
    with qtbot.waitSignal(tray.toggle_dictation, timeout=1000):
        qtbot.mouseClick(tray.window.dictate, Qt.MouseButton.LeftButton)
    assert "listening" in tray.window.status.text()
    tray.menu.adjustSize()
    save_screenshot(tray.menu, "tray-menu", artifacts)


def test_settings_dialog_edits_validates_and_applies(qtbot, artifacts: Path) -> None:
    speech = load_recordings()[0].samples()
    pcm = np.round(speech * 32768).astype(np.int16)
    dialog = SettingsDialog(
        Settings(),
        devices=["Built-in Microphone", "USB Headset"],
        open_meter=lambda name: ArraySource(pcm, realtime=True),
        wsl_distros=["Ubuntu-24.04"],
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.level.value() > -45, timeout=3000)  # live level meter
    dialog.language.setText("zh")
    dialog.context.setPlainText("通义千问")
    dialog.mode.setCurrentText("hands_free")
    dialog.overrides.setPlainText("WindowsTerminal.exe = clipboard")
    dialog.wsl_distro.setCurrentText("Ubuntu-24.04")
    with qtbot.waitSignal(dialog.applied, timeout=1000) as applied:
        assert dialog.apply()
    new: Settings = applied.args[0]
    assert new == replace(
        Settings(),
        language="zh",
        context="通义千问",
        mode="hands_free",
        app_overrides={"WindowsTerminal.exe": "clipboard"},
        wsl_distro="Ubuntu-24.04",
        server_configured=True,
    )  # a server setting was edited by hand
    save_screenshot(dialog, "settings-dialog", artifacts)
    dialog.server_url.setText("http://wrong")
    assert not dialog.apply() and "ws://" in dialog.error.text()
    dialog.close()


def test_override_parsing_and_level() -> None:
    assert parse_overrides("a.exe = clipboard\n# note\n\nb = keystrokes") == {
        "a.exe": "clipboard",
        "b": "keystrokes",
    }
    with pytest.raises(ValueError, match="app = "):
        parse_overrides("a.exe = telepathy")
    assert level_dbfs(np.zeros(512, np.int16)) == -90.0
    assert level_dbfs(np.full(512, 32767, np.int16)) == pytest.approx(0.0, abs=0.01)


def test_history_lists_newest_first_and_retypes(qtbot) -> None:
    typed: list[str] = []
    history = HistoryWindow(typed.append)
    qtbot.addWidget(history)
    history.add(HistoryEntry(1_700_000_000, "first", 420.0, True))
    history.add(HistoryEntry(1_700_000_010, "第二句", None, False, "not typed: late"))
    assert history.table.item(0, 1).text() == "第二句"
    assert history.table.item(0, 2).text() == "— (not typed)"
    assert history.table.item(0, 2).toolTip() == "not typed: late"  # says why
    assert history.table.item(1, 2).text() == "420 ms"
    history.table.selectRow(1)
    history.retype_selected()
    assert typed == ["first"]
