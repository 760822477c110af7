"""Clipboard paste: put the text on the clipboard, press the paste chord, restore the
user's clipboard.

Sequence (:meth:`ClipboardPasteOutput.type_text`):

1. snapshot the clipboard: every format the owner offers (text, HTML, images, …); a
   snapshot that could not save everything (size or time caps) stops here with
   :class:`~desktop.output.base.ClipboardUnavailable`, the clipboard untouched;
2. set our text (only text that passed the text sink);
3. confirm the clipboard holds it (:meth:`Clipboard.confirm_set`); if not, nothing is
   pasted (Ctrl+V would paste whatever is there, possibly a password);
4. press the paste chord for the target (``ctrl+v``; ``ctrl+shift+v`` in terminals, see
   :mod:`desktop.output.policy`); if that fails the text stays on the clipboard
   (:class:`~desktop.output.base.TextLeftOnClipboard`);
5. wait until the target has read the clipboard (where that can be observed) or a timeout
   (a :class:`DeferredRestore` clipboard does 5 and 6 on its own thread, later);
6. restore the snapshot (or clear the clipboard if it was empty). When setting the text
   failed, a non-empty snapshot is put back; an empty one is never "restored" over a
   clipboard that may still hold the user's content.

On Windows :class:`desktop.win32.clipboard.Win32Clipboard` implements :class:`Clipboard`
(all formats, ownership check, reads counted only from the target's process).

The target reads the clipboard *asynchronously*, when it processes the key event; restoring
too early makes it paste the old content. :class:`QtClipboard` observes the read: Qt asks
our ``QMimeData`` for its data lazily (X11 selection request, Windows delayed rendering),
so the restore follows ~50 ms after the read. :class:`XclipClipboard` cannot observe it and
waits the whole timeout.

Caveats, inherent to X11: restoring makes *this* process the clipboard owner with the old
content (it cannot be given back to the original owner), so the restored content lives as
long as the app, unless a clipboard manager takes it over on exit.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from desktop.hotkey.keys import parse_key_spec
from desktop.output.base import (
    ClipboardUnavailable,
    OutputError,
    OutputTarget,
    TextLeftOnClipboard,
)
from desktop.output.keystrokes import KeySender, PynputKeySender
from desktop.output.policy import DEFAULT_PASTE_CHORD
from desktop.output.text_sink import sanitize

log = logging.getLogger(__name__)

TEXT = "text/plain"


@dataclass(frozen=True)
class ClipboardSnapshot:
    """The clipboard's formats as (MIME type, X11 target or Win32 ``#id``, bytes), in the
    owner's order. ``complete`` is False when a cap left formats out."""

    formats: tuple[tuple[str, bytes], ...] = ()
    complete: bool = True

    @property
    def is_empty(self) -> bool:
        return not self.formats

    def get(self, fmt: str) -> bytes | None:
        for name, data in self.formats:
            if name == fmt:
                return data
        return None

    @property
    def text(self) -> str | None:
        data = self.get(TEXT)
        if data is None:
            data = self.get("text/plain;charset=utf-8")
        return None if data is None else data.decode("utf-8", "replace")


class Clipboard(Protocol):
    """The system clipboard (the CLIPBOARD selection on X11)."""

    def snapshot(self) -> ClipboardSnapshot: ...

    def set_text(self, text: str) -> None: ...

    def confirm_set(self) -> bool:
        """True if the clipboard holds the text of the last :meth:`set_text`."""
        ...

    def restore(self, snapshot: ClipboardSnapshot) -> None:
        """Put the snapshot back; an empty snapshot clears the clipboard."""
        ...

    def wait_for_paste(
        self, sent_at: float, timeout_s: float, reader_pid: int | None = None
    ) -> bool:
        """Wait until our text was read after ``sent_at`` (``time.monotonic()``) or for
        ``timeout_s``. True if the read was observed. ``reader_pid``: count only reads by
        that process, where the platform can tell (Windows)."""
        ...


@runtime_checkable
class DeferredRestore(Protocol):
    """A clipboard that can wait for the paste and restore on a thread of its own (the
    Windows clipboard worker), in order with its other calls, so typing does not block."""

    def wait_then_restore(
        self,
        sent_at: float,
        timeout_s: float,
        reader_pid: int | None,
        snapshot: ClipboardSnapshot,
    ) -> None: ...


# --- Qt --------------------------------------------------------------------------------


class QtClipboard:
    """``QGuiApplication.clipboard()``. Every method must run on the Qt main thread (Qt's
    clipboard is not thread-safe, and on X11 the main thread's event loop answers other
    applications' requests for our data, which is why :meth:`wait_for_paste` runs a local
    event loop instead of sleeping).

    ``max_bytes`` bounds what a snapshot keeps; larger formats are dropped (logged).
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, read_grace_s: float = 0.05) -> None:
        from PySide6.QtGui import QGuiApplication

        app = QGuiApplication.instance()
        if app is None:
            raise OutputError("QtClipboard needs a QGuiApplication")
        self._app = app
        self.max_bytes = max_bytes
        self.read_grace_s = read_grace_s
        self._reads: list[float] = []
        self._mime_class = _tracking_mime_class()

    def _clipboard(self) -> Any:
        from PySide6.QtCore import QThread
        from PySide6.QtGui import QGuiApplication

        if QThread.currentThread() is not self._app.thread():
            raise OutputError("QtClipboard used outside the Qt main thread")
        return QGuiApplication.clipboard()

    def snapshot(self) -> ClipboardSnapshot:
        md = self._clipboard().mimeData()
        if md is None:
            return ClipboardSnapshot()
        formats: list[tuple[str, bytes]] = []
        total = 0
        complete = True
        for fmt in md.formats():
            data = bytes(md.data(fmt).data())
            if total + len(data) > self.max_bytes:
                log.warning(
                    "clipboard format %s (%d bytes) not saved: over %d bytes",
                    fmt,
                    len(data),
                    self.max_bytes,
                )
                complete = False
                continue
            total += len(data)
            formats.append((str(fmt), data))
        return ClipboardSnapshot(tuple(formats), complete=complete)

    def set_text(self, text: str) -> None:
        cb = self._clipboard()
        md = self._mime_class(self._reads.append)
        md.setText(text)
        cb.setMimeData(md)

    def confirm_set(self) -> bool:
        # setMimeData only warns when the system clipboard refused it (Windows:
        # CLIPBRD_E_CANT_OPEN): ownership says whether it took our data
        return bool(self._clipboard().ownsClipboard())

    def restore(self, snapshot: ClipboardSnapshot) -> None:
        from PySide6.QtCore import QMimeData

        cb = self._clipboard()
        if snapshot.is_empty:
            cb.clear()
            return
        md = QMimeData()
        for fmt, data in snapshot.formats:
            md.setData(fmt, data)
        cb.setMimeData(md)

    def wait_for_paste(
        self, sent_at: float, timeout_s: float, reader_pid: int | None = None
    ) -> bool:
        """Qt cannot tell who read: ``reader_pid`` is ignored."""
        from PySide6.QtCore import QEventLoop

        self._clipboard()  # thread check
        deadline = time.monotonic() + timeout_s
        read_at: float | None = None
        while True:
            now = time.monotonic()
            if read_at is None:
                read_at = next((t for t in self._reads if t >= sent_at), None)
            end = deadline if read_at is None else min(deadline, read_at + self.read_grace_s)
            if now >= end:
                break
            self._app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
            time.sleep(0.002)
        self._reads.clear()
        return read_at is not None


def _tracking_mime_class() -> Any:
    """A QMimeData subclass that reports each lazy data read (made on first use so that
    importing this module does not import Qt)."""
    from PySide6.QtCore import QMimeData

    class TrackingMimeData(QMimeData):
        def __init__(self, on_read: Any) -> None:
            super().__init__()
            self._on_read = on_read

        def retrieveData(self, mimetype: str, preferred_type: Any) -> Any:
            self._on_read(time.monotonic())
            return super().retrieveData(mimetype, preferred_type)

    return TrackingMimeData


# --- xclip -----------------------------------------------------------------------------

#: X11 targets that describe the selection rather than hold its content.
_META_TARGETS = frozenset(
    {
        "TARGETS",
        "TIMESTAMP",
        "MULTIPLE",
        "SAVE_TARGETS",
        "DELETE",
        "INSERT_SELECTION",
        "INSERT_PROPERTY",
        "LENGTH",
        "CLIENT_WINDOW",
        "HOST_NAME",
        "USER",
        "OWNER_OS",
    }
)
_TEXT_TARGETS = ("UTF8_STRING", "text/plain;charset=utf-8", "text/plain", "STRING", "TEXT")


class XclipClipboard:
    """The X11 CLIPBOARD through the ``xclip`` command (tests, headless tools).

    Snapshots keep text and every MIME-typed target; a restore serves the text (or, with no
    text, the first other format) because one xclip process serves one target. It cannot
    observe reads, so :meth:`wait_for_paste` always waits the full timeout.
    """

    def __init__(
        self, selection: str = "clipboard", display: str | None = None, timeout_s: float = 5.0
    ) -> None:
        if shutil.which("xclip") is None:
            raise OutputError("xclip is not installed")
        self.selection = selection
        self.display = display
        self.timeout_s = timeout_s
        self._last_set: bytes | None = None

    def _cmd(self, *args: str) -> list[str]:
        cmd = ["xclip", "-selection", self.selection, *args]
        if self.display:
            cmd += ["-display", self.display]
        return cmd

    def _read(self, target: str) -> bytes | None:
        out = subprocess.run(
            self._cmd("-o", "-t", target), capture_output=True, timeout=self.timeout_s, check=False
        )
        return out.stdout if out.returncode == 0 else None

    def _write(self, data: bytes, target: str | None = None) -> None:
        args = ("-i",) if target is None else ("-i", "-t", target)
        # xclip forks a child that keeps serving the selection: it must not inherit pipes
        # we would wait on, hence DEVNULL for its output.
        proc = subprocess.run(
            self._cmd(*args),
            input=data,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=self.timeout_s,
            check=False,
        )
        if proc.returncode != 0:
            raise OutputError(f"xclip -i failed with exit code {proc.returncode}")

    def targets(self) -> list[str]:
        raw = self._read("TARGETS")
        if raw is None:
            return []
        return [t for t in raw.decode("latin-1").split() if t]

    def snapshot(self) -> ClipboardSnapshot:
        targets = self.targets()
        formats: list[tuple[str, bytes]] = []
        text_target = next((t for t in _TEXT_TARGETS if t in targets), None)
        if text_target is not None:
            data = self._read(text_target)
            if data is not None:
                formats.append((TEXT, data))
        for t in targets:
            if t in _META_TARGETS or t in _TEXT_TARGETS or "/" not in t:
                continue
            data = self._read(t)
            if data is not None:
                formats.append((t, data))
        return ClipboardSnapshot(tuple(formats))

    def set_text(self, text: str) -> None:
        self._last_set = text.encode("utf-8")
        self._write(self._last_set, "UTF8_STRING")

    def confirm_set(self) -> bool:
        """Reads the clipboard back (xclip cannot ask who owns it)."""
        return self._last_set is not None and self._read("UTF8_STRING") == self._last_set

    def restore(self, snapshot: ClipboardSnapshot) -> None:
        text = snapshot.get(TEXT)
        if text is not None:
            self._write(text, "UTF8_STRING")
        elif snapshot.formats:
            fmt, data = snapshot.formats[0]
            self._write(data, fmt)
        else:
            self._write(b"", "UTF8_STRING")  # xclip cannot disown: leave it empty

    def wait_for_paste(
        self, sent_at: float, timeout_s: float, reader_pid: int | None = None
    ) -> bool:
        time.sleep(max(0.0, sent_at + timeout_s - time.monotonic()))
        return False


# --- the output ------------------------------------------------------------------------


class ClipboardPasteOutput:
    """Types text by pasting it, then restores the user's clipboard.

    ``paste_timeout_s``: the longest wait for the target to read the clipboard before the
    restore (with :class:`QtClipboard` the wait normally ends ~50 ms after the read); a
    target's ``read_timeout_s`` (slow readers: Electron apps, remote desktops) overrides it.
    ``settle_s``: pause between taking the clipboard and pressing the chord. ``clock``
    must be the clock the clipboard's ``wait_for_paste`` measures with.
    """

    name = "clipboard_paste"

    def __init__(
        self,
        clipboard: Clipboard,
        sender: KeySender | None = None,
        *,
        default_chord: str = DEFAULT_PASTE_CHORD,
        paste_timeout_s: float = 0.5,
        settle_s: float = 0.01,
        restore: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clipboard = clipboard
        self.sender = sender if sender is not None else PynputKeySender()
        self.default_chord = default_chord
        self.paste_timeout_s = paste_timeout_s
        self.settle_s = settle_s
        self.restore = restore
        self._clock = clock
        self.last_read_observed: bool | None = None

    def type_text(
        self, text: str, paste_chord: str | None = None, target: OutputTarget | None = None
    ) -> None:
        # the text sink again (no cap): only visible text reaches the clipboard
        text = sanitize(text, max_chars=None).text
        if not text:
            return
        chord = parse_key_spec(paste_chord or self.default_chord)
        timeout = self.paste_timeout_s
        if target is not None and target.read_timeout_s is not None:
            timeout = target.read_timeout_s
        saved = self.clipboard.snapshot() if self.restore else None
        if saved is not None and not saved.complete:
            raise ClipboardUnavailable("the clipboard could not be saved whole; not pasting")
        try:
            self.clipboard.set_text(text)
        except Exception:
            if saved is not None and not saved.is_empty:
                self.clipboard.restore(saved)
            raise
        if not self.clipboard.confirm_set():
            raise OutputError("the clipboard did not take the text; nothing was pasted")
        if self.settle_s > 0:
            time.sleep(self.settle_s)
        sent_at = self._clock()
        try:
            self.sender.tap_chord(chord)
        except Exception as e:
            raise TextLeftOnClipboard(f"paste failed ({e}); the text is on the clipboard") from e
        reader = target.pid if target is not None else None
        if saved is not None and isinstance(self.clipboard, DeferredRestore):
            # the clipboard's own thread waits and restores; the caller goes on
            self.last_read_observed = None
            self.clipboard.wait_then_restore(sent_at, timeout, reader, saved)
            return
        try:
            self.last_read_observed = self.clipboard.wait_for_paste(sent_at, timeout, reader)
        finally:
            if saved is not None:
                self.clipboard.restore(saved)
