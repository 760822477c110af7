"""The overlay position and the launcher as the settings dialog and the overlay use
them: enum members in, enum members out, shown in the settings file's spelling."""

from __future__ import annotations

from dataclasses import replace

from desktop.settings import Launcher, OverlayPosition, Settings
from desktop.ui.overlay import Overlay
from desktop.ui.settings_dialog import SettingsDialog


def test_dialog_shows_and_returns_position_and_launcher(qtbot) -> None:  # type: ignore[no-untyped-def]
    opened_with = replace(
        Settings(), overlay_position=OverlayPosition.CURSOR, launcher=Launcher.DIRECT
    )
    dialog = SettingsDialog(opened_with)
    qtbot.addWidget(dialog)
    assert dialog.overlay_position.currentText() == "cursor"
    assert dialog.launcher.currentText() == "direct"
    offered = [dialog.launcher.itemText(i) for i in range(dialog.launcher.count())]
    assert offered == ["wsl", "direct"]
    # Untouched, the dialog gives back what it was opened with: the launcher it shows is
    # the one stored, so no server setting counts as edited by hand.
    assert dialog.current() == opened_with
    dialog.overlay_position.setCurrentText("top")
    dialog.launcher.setCurrentText("wsl")
    edited = dialog.current()
    assert edited.overlay_position is OverlayPosition.TOP
    assert edited.launcher is Launcher.WSL
    assert edited.server_configured  # the launcher was changed here


def test_overlay_places_itself_by_position(qtbot) -> None:  # type: ignore[no-untyped-def]
    overlay = Overlay(OverlayPosition.TOP)
    qtbot.addWidget(overlay)
    top = overlay.target_position().y()
    overlay.position = OverlayPosition.BOTTOM
    bottom = overlay.target_position().y()
    assert top < bottom
