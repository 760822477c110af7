"""The Windows clipboard through the Win32 API (logic; the calls go through a seam).

Implements :class:`desktop.output.clipboard.Clipboard` for Windows, where Qt's clipboard
falls short (issue 12): ``QClipboard.setMimeData`` gives up after a few
``CLIPBRD_E_CANT_OPEN`` with only a warning (Ctrl+V then pastes the user's old clipboard),
a snapshot through ``QMimeData`` turns images into 0 bytes, and Qt cannot say *who* read
the clipboard.

* **Snapshot** (:meth:`Win32Clipboard.snapshot`): every format that is a memory block
  (``GetClipboardData`` → ``GlobalLock``/``GlobalSize``) in the owner's order, images
  (``CF_DIB``, ``CF_DIBV5``, ``PNG``) included; GDI-handle formats (``CF_BITMAP``,
  ``CF_ENHMETAFILE``, ``CF_PALETTE``, ``CF_METAFILEPICT``), owner-display, ``CF_DSP*``
  and ``CF_PRIVATE*`` formats are not copied (``CF_BITMAP`` is synthesized from ``CF_DIB``
  again). Caps: bytes per format, bytes in all, and a time budget (a delayed-rendering
  owner renders on demand, which can be slow); a snapshot that hit a cap says so
  (``complete=False``) and the paste output then leaves the clipboard alone.
* **Locked clipboard**: ``OpenClipboard`` fails while another window has it open; it is
  retried ``open_attempts`` times, then :class:`ClipboardBusy` is raised.
* **Our text** is set with delayed rendering (``SetClipboardData(CF_UNICODETEXT, NULL)``):
  Windows asks our window (``WM_RENDERFORMAT``) when a program reads it, and the seam
  notes the reader's process (the window that has the clipboard open,
  ``GetOpenClipboardWindow``). A read counts only when it comes from the target's process,
  so a clipboard manager or history reader reading first cannot trigger the restore while
  the target has not pasted yet. Our text is marked for monitors and history:
  ``ExcludeClipboardContentFromMonitorProcessing``, ``CanIncludeInClipboardHistory`` =
  DWORD 0, ``CanUploadToCloudClipboard`` = DWORD 0.
* **Ownership** (:meth:`Win32Clipboard.confirm_set`): before the paste chord, the owner
  must still be our window and the sequence number the one our set produced; otherwise
  someone else changed the clipboard and Ctrl+V would paste their content.
* **Restore**: only while we still own the clipboard (a newer copy by the user wins),
  with the monitor/history marks, so the user's own content does not enter the history a
  second time.

Threading: every call runs on the thread that owns the seam's clipboard window (the
window must pump messages to render our text); see :mod:`desktop.win32.output`.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from desktop.output.base import ClipboardUnavailable, OutputError
from desktop.output.clipboard import ClipboardSnapshot

log = logging.getLogger(__name__)

CF_TEXT = 1
CF_BITMAP = 2
CF_METAFILEPICT = 3
CF_OEMTEXT = 7
CF_DIB = 8
CF_PALETTE = 9
CF_UNICODETEXT = 13
CF_ENHMETAFILE = 14
CF_DIBV5 = 17
CF_OWNERDISPLAY = 0x0080
CF_DSPTEXT = 0x0081
CF_DSPBITMAP = 0x0082
CF_DSPMETAFILEPICT = 0x0083
CF_DSPENHMETAFILE = 0x008E
CF_PRIVATEFIRST, CF_PRIVATELAST = 0x0200, 0x02FF
CF_GDIOBJFIRST, CF_GDIOBJLAST = 0x0300, 0x03FF

#: Formats whose handle is not a global memory block (or means nothing to another owner).
NOT_MEMORY_FORMATS = frozenset(
    {
        CF_BITMAP,
        CF_METAFILEPICT,
        CF_PALETTE,
        CF_ENHMETAFILE,
        CF_OWNERDISPLAY,
        CF_DSPTEXT,
        CF_DSPBITMAP,
        CF_DSPMETAFILEPICT,
        CF_DSPENHMETAFILE,
    }
)

EXCLUDE_FROM_MONITORS = "ExcludeClipboardContentFromMonitorProcessing"
CAN_INCLUDE_IN_HISTORY = "CanIncludeInClipboardHistory"
CAN_UPLOAD_TO_CLOUD = "CanUploadToCloudClipboard"
#: Registered formats set with our text and with a restore, and their data.
PRIVACY_MARKS: tuple[tuple[str, bytes], ...] = (
    (EXCLUDE_FROM_MONITORS, struct.pack("<I", 0)),
    (CAN_INCLUDE_IN_HISTORY, struct.pack("<I", 0)),  # DWORD 0: not in Win+V history
    (CAN_UPLOAD_TO_CLOUD, struct.pack("<I", 0)),  # DWORD 0: not synced to other devices
)


def is_copyable(fmt: int) -> bool:
    """True for formats whose data is a global memory block we can copy and set again.
    (The CF_GDIOBJ range holds GMEM_MOVEABLE memory despite its name; a private format's
    handle can be anything, and the system does not free it.)"""
    if fmt in NOT_MEMORY_FORMATS:
        return False
    return not CF_PRIVATEFIRST <= fmt <= CF_PRIVATELAST


def format_key(fmt: int) -> str:
    """How a Win32 format id is named in a :class:`ClipboardSnapshot` (``"#13"``).
    Registered ids stay the same for the session, which is all a restore needs."""
    return f"#{fmt}"


def format_id(key: str) -> int:
    if not key.startswith("#") or not key[1:].isdigit():
        raise ValueError(f"not a Win32 clipboard format key: {key!r}")
    return int(key[1:])


def utf16z(text: str) -> bytes:
    """CF_UNICODETEXT data: UTF-16LE with a terminating NUL."""
    return text.encode("utf-16-le") + b"\x00\x00"


@dataclass(frozen=True)
class RenderRequest:
    """A program asked for our delayed-rendered format: when, which, from which process
    (None: the reader opened the clipboard without a window, so it cannot be told)."""

    at: float
    fmt: int
    pid: int | None


class ClipboardApi(Protocol):
    """The Win32 clipboard calls (desktop.win32.api on Windows, a recording fake in tests).
    ``get_data``/``set_data`` wrap the global-memory handling; ``set_data(fmt, None)`` is
    delayed rendering, answered by the seam's window from ``set_pending``."""

    def clipboard_window(self) -> int: ...
    def open_clipboard(self, hwnd: int) -> bool: ...
    def close_clipboard(self) -> None: ...
    def empty_clipboard(self) -> bool: ...
    def count_formats(self) -> int: ...
    def enum_formats(self) -> list[int]: ...
    def get_data(self, fmt: int) -> bytes | None: ...
    def set_data(self, fmt: int, data: bytes | None) -> bool: ...
    def set_pending(self, fmt: int, data: bytes) -> None: ...
    def register_format(self, name: str) -> int: ...
    def sequence_number(self) -> int: ...
    def clipboard_owner(self) -> int: ...
    def pump(self, timeout_s: float) -> None:
        """Dispatch the clipboard window's messages for up to ``timeout_s``."""
        ...

    def render_requests(self) -> list[RenderRequest]:
        """The WM_RENDERFORMAT requests seen since the last call (drained)."""
        ...


class ClipboardBusy(ClipboardUnavailable):
    """Another program kept the clipboard open through every retry."""


class Win32Clipboard:
    """:class:`desktop.output.clipboard.Clipboard` over the Win32 API (see the module
    docstring). ``read_grace_s``: how long to keep our text after the target's read
    (it may read more than one format)."""

    def __init__(
        self,
        api: ClipboardApi,
        *,
        open_attempts: int = 10,
        open_retry_s: float = 0.02,
        max_format_bytes: int = 32 * 1024 * 1024,
        max_bytes: int = 64 * 1024 * 1024,
        snapshot_budget_s: float = 1.0,
        read_grace_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api
        self.open_attempts = open_attempts
        self.open_retry_s = open_retry_s
        self.max_format_bytes = max_format_bytes
        self.max_bytes = max_bytes
        self.snapshot_budget_s = snapshot_budget_s
        self.read_grace_s = read_grace_s
        self._clock = clock
        self._sleep = sleep
        self._our_sequence: int | None = None
        self._marks: list[tuple[int, bytes]] | None = None

    # -- helpers -----------------------------------------------------------------------

    @contextmanager
    def _opened(self) -> Iterator[None]:
        hwnd = self.api.clipboard_window()
        for attempt in range(self.open_attempts):
            if self.api.open_clipboard(hwnd):
                break
            if attempt + 1 < self.open_attempts:
                self._sleep(self.open_retry_s)
        else:
            raise ClipboardBusy(
                f"the clipboard stayed open in another program ({self.open_attempts} tries)"
            )
        try:
            yield
        finally:
            self.api.close_clipboard()

    def _privacy_marks(self) -> list[tuple[int, bytes]]:
        if self._marks is None:
            self._marks = [(self.api.register_format(n), d) for n, d in PRIVACY_MARKS]
        return self._marks

    def _owned(self) -> bool:
        return self.api.clipboard_owner() == self.api.clipboard_window()

    # -- Clipboard ---------------------------------------------------------------------

    def snapshot(self) -> ClipboardSnapshot:
        if self.api.count_formats() == 0:
            return ClipboardSnapshot()
        deadline = self._clock() + self.snapshot_budget_s
        formats: list[tuple[str, bytes]] = []
        complete = True
        total = 0
        with self._opened():
            for fmt in self.api.enum_formats():
                if not is_copyable(fmt):
                    continue
                if self._clock() > deadline:
                    log.warning("clipboard snapshot over %.1f s: stopped", self.snapshot_budget_s)
                    complete = False
                    break
                data = self.api.get_data(fmt)
                if data is None:
                    log.info("clipboard format %d has no data (owner did not render it)", fmt)
                    continue
                if len(data) > self.max_format_bytes or total + len(data) > self.max_bytes:
                    log.warning("clipboard format %d (%d bytes) over the cap", fmt, len(data))
                    complete = False
                    continue
                total += len(data)
                formats.append((format_key(fmt), data))
        return ClipboardSnapshot(tuple(formats), complete=complete)

    def set_text(self, text: str) -> None:
        marks = self._privacy_marks()
        self._our_sequence = None
        with self._opened():
            if not self.api.empty_clipboard():
                raise OutputError("EmptyClipboard failed")
            self.api.set_pending(CF_UNICODETEXT, utf16z(text))
            if not self.api.set_data(CF_UNICODETEXT, None):
                raise OutputError("SetClipboardData(CF_UNICODETEXT) failed")
            for fmt, data in marks:
                if not self.api.set_data(fmt, data):
                    raise OutputError(f"SetClipboardData(format {fmt}) failed")
        self._our_sequence = self.api.sequence_number()
        self.api.render_requests()  # forget reads of an earlier text

    def confirm_set(self) -> bool:
        return (
            self._our_sequence is not None
            and self._owned()
            and self.api.sequence_number() == self._our_sequence
        )

    def wait_for_paste(
        self, sent_at: float, timeout_s: float, reader_pid: int | None = None
    ) -> bool:
        deadline = sent_at + timeout_s
        read_at: float | None = None
        while True:
            now = self._clock()
            if read_at is None:
                for req in self.api.render_requests():
                    if reader_pid is None or req.pid == reader_pid:
                        read_at = req.at
                        break
                    log.info(
                        "clipboard read by pid %s, not the target %s: ignored", req.pid, reader_pid
                    )
            end = deadline if read_at is None else min(deadline, read_at + self.read_grace_s)
            if now >= end:
                return read_at is not None
            self.api.pump(min(0.02, end - now))

    def restore(self, snapshot: ClipboardSnapshot) -> None:
        if not self._owned():
            log.info("clipboard changed by another program since our paste: not restored")
            return
        if not snapshot.complete:
            log.warning("clipboard snapshot incomplete: our text left in place")
            return
        with self._opened():
            if not self.api.empty_clipboard():
                raise OutputError("EmptyClipboard failed")
            present = set()
            for key, data in snapshot.formats:
                fmt = format_id(key)
                present.add(fmt)
                if not self.api.set_data(fmt, data):
                    log.warning("clipboard format %d not restored", fmt)
            if snapshot.formats:
                for fmt, data in self._privacy_marks():
                    if fmt not in present:
                        self.api.set_data(fmt, data)
        self._our_sequence = None
