"""The app side of the Qt-clipboard test, in its own process (as in the real app).

``python tests/output/qt_typist_driver.py TEXT_JSON [METHOD]``: a QGuiApplication on xcb
builds the production typist (``build_default_typist``: QtClipboard + pynput + the X11
focus probe) with the output method METHOD (default ``clipboard_paste``), types TEXT into
the focused window on the Qt main thread, prints ``RESULT <json>``, then
keeps the event loop running (it owns the restored clipboard, which it must keep serving)
until stdin says ``quit``.
"""

from __future__ import annotations

import json
import sys
import threading

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication

from desktop.output.base import OutputMethod
from desktop.output.clipboard import ClipboardPasteOutput
from desktop.output.focus import X11FocusProbe
from desktop.output.policy import OutputPolicy
from desktop.output.typist import build_default_typist


class Stdin(QObject):
    line = Signal(str)


def main() -> int:
    text = json.loads(sys.argv[1])
    app = QGuiApplication(sys.argv[:1])
    method = OutputMethod(sys.argv[2]) if len(sys.argv) > 2 else OutputMethod.CLIPBOARD_PASTE
    typist = build_default_typist(OutputPolicy(method=method), paste_timeout_s=2.0)
    assert isinstance(typist.focus, X11FocusProbe)
    paste = typist.outputs[OutputMethod.CLIPBOARD_PASTE]
    assert isinstance(paste, ClipboardPasteOutput)

    def run() -> None:
        r = typist.type_final(text)
        print(
            "RESULT "
            + json.dumps(
                {
                    "method": r.method.value if r.method else None,
                    "typed": r.typed,
                    "error": r.error,
                    "seconds": r.seconds,
                    "read_observed": paste.last_read_observed,
                    "target_pid": r.target.pid if r.target else None,
                },
                ensure_ascii=False,
            ),
            flush=True,
        )

    stdin = Stdin()
    stdin.line.connect(lambda cmd: app.quit() if cmd == "quit" else None)
    threading.Thread(
        target=lambda: ([stdin.line.emit(x.strip()) for x in sys.stdin], stdin.line.emit("quit")),
        daemon=True,
    ).start()
    QTimer.singleShot(0, run)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
