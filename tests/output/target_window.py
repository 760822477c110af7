"""A separate process with one QLineEdit, the target the X11 typing tests type into.

Run: ``python tests/output/target_window.py`` (QT_QPA_PLATFORM=xcb, DISPLAY set).
Prints ``READY <pid> <x11 window id>`` once the line edit has keyboard focus, then answers
one line per command read from stdin:

* ``text``: ``TEXT <json string>`` with the line edit's content;
* ``clear``: empties it, ``OK``;
* ``focus``: raises and activates the window, ``OK`` when the line edit has focus;
* ``setclip``: puts a three-format clipboard (text/plain, text/html, a private binary
  type) owned by this process, ``OK``;
* ``quit`` (or stdin closed, or the window closed): ``TEXT <json>``, then exits.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from PySide6.QtCore import QMimeData, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QLineEdit

CLIP_TEXT = "clipboard before 剪贴板"
CLIP_HTML = b"<b>clipboard before</b>"
CLIP_PRIVATE_TYPE = "application/x-tingxie-test"
CLIP_PRIVATE = b"\x00\x01\x02binary\xff"


class Stdin(QObject):
    line = Signal(str)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for raw in sys.stdin:
            self.line.emit(raw.strip())
        self.line.emit("quit")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> int:
    app = QApplication(sys.argv[:1])
    app.setApplicationName("tingxie-target")
    app.setDesktopFileName("tingxie-target")
    edit = QLineEdit()
    edit.setWindowTitle("tingxie test target")
    edit.resize(600, 60)
    done = {"quit": False}

    def report_text() -> None:
        say("TEXT " + json.dumps(edit.text(), ensure_ascii=False))

    def when_focused(reply: str) -> None:
        def check() -> None:
            if edit.hasFocus() and edit.isActiveWindow():
                say(reply)
            else:
                edit.activateWindow()
                edit.setFocus(Qt.FocusReason.OtherFocusReason)
                QTimer.singleShot(20, check)

        check()

    def on_command(cmd: str) -> None:
        if cmd == "text":
            report_text()
        elif cmd == "clear":
            edit.clear()
            say("OK")
        elif cmd == "focus":
            edit.raise_()
            edit.activateWindow()
            when_focused("OK")
        elif cmd == "setclip":
            md = QMimeData()
            md.setText(CLIP_TEXT)
            md.setData("text/html", CLIP_HTML)
            md.setData(CLIP_PRIVATE_TYPE, CLIP_PRIVATE)
            QApplication.clipboard().setMimeData(md)
            say("OK")
        elif cmd == "quit" and not done["quit"]:
            done["quit"] = True
            report_text()
            app.quit()

    stdin = Stdin()
    stdin.line.connect(on_command)
    edit.show()
    when_focused(f"READY {os.getpid()} {int(edit.winId())}")
    stdin.start()
    code = app.exec()
    if not done["quit"]:
        report_text()
    return code


if __name__ == "__main__":
    sys.exit(main())
