"""Child process for the tray test: shows tingxie's real tray icon, prints its geometry,
then prints a line for every toggle the tray emits (a left click on the icon)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from desktop.coordinator import Stage
from desktop.streaming import ClientState
from desktop.ui.look import tray_look
from desktop.ui.tray import Tray


def main() -> None:
    app = QApplication([])
    if not QSystemTrayIcon.isSystemTrayAvailable():
        print("NO-TRAY", flush=True)
        return
    tray = Tray()
    tray.set_look(tray_look(ClientState.READY, Stage.IDLE))
    tray.toggle_dictation.connect(lambda: print("TOGGLED", flush=True))
    tray.show()

    def report() -> None:
        assert tray.icon is not None
        g = tray.icon.geometry()
        if g.width() == 0:
            QTimer.singleShot(100, report)
            return
        print(f"ICON {g.x()} {g.y()} {g.width()} {g.height()} {tray.icon.toolTip()}", flush=True)

    QTimer.singleShot(100, report)
    QTimer.singleShot(20_000, app.quit)
    sys.exit(app.exec())


if __name__ == "__main__":
    main()
