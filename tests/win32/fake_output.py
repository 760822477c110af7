"""A recording stand-in for the Windows output seams (KeyboardApi, ClipboardApi, ProcessApi).

Every call is appended to ``calls`` as a tuple, so tests assert exactly what would have
been asked of Win32. Time is a fake clock (``now``) that ``sleep`` and ``pump`` advance.
It simulates what issue 12 lists:

* a **held modifier** (``hold(vk, until)``): GetAsyncKeyState reports it down until then;
* a **non-Latin layout** (``scan_codes``): MapVirtualKeyW answers from this table; the
  fake has no character → key lookup at all, so a chord can only be built from VK codes;
* a **locked clipboard** (``lock_opens``): the next N OpenClipboard calls fail;
* **delayed rendering** by the user's clipboard owner (``render_delay``): GetClipboardData
  of those formats costs that much clock time;
* **readers** of our delayed-rendered text (``read_at(t, pid)``): when ``pump`` reaches
  ``t`` a WM_RENDERFORMAT is noted for that process (a history reader, then the target);
* another program **copying** at a given moment (``copy_at(t, formats)``) or right after
  our set (``steal_after_set``);
* process **integrity levels** (``integrity``) and processes whose token is denied.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from desktop.win32.clipboard import CF_UNICODETEXT, RenderRequest
from desktop.win32.elevation import ERROR_ACCESS_DENIED, SECURITY_MANDATORY_MEDIUM_RID
from desktop.win32.keyboard import KEY_DOWN_BIT

OUR_WINDOW = 0xC11B
OTHER_WINDOW = 0x0711
US_SCAN_CODES = {0x11: 0x1D, 0x10: 0x2A, 0x12: 0x38, 0x56: 0x2F, 0x2D: 0x52, 0x5B: 0x5B}


@dataclass
class DecodedInput:
    """One INPUT read back from the packed bytes (x64 layout)."""

    type: int
    vk: int
    scan: int
    flags: int
    time: int
    extra: int


def decode_inputs(packed: bytes, count: int, size: int) -> list[DecodedInput]:
    assert size == 40 and len(packed) == count * size
    out = []
    for i in range(count):
        chunk = packed[i * size : (i + 1) * size]
        (type_,) = struct.unpack_from("<I", chunk, 0)
        vk, scan, flags, time, extra = struct.unpack_from("<HHIIxxxxQ", chunk, 8)
        assert chunk[4:8] == b"\0\0\0\0" and chunk[32:] == bytes(8)
        out.append(DecodedInput(type_, vk, scan, flags, time, extra))
    return out


class FakeWin32Output:
    pointer_size = 8

    def __init__(self) -> None:
        self.now = 100.0
        self.calls: list[tuple[object, ...]] = []
        # keyboard
        self.held: dict[int, float] = {}
        self.scan_codes = dict(US_SCAN_CODES)
        self.sent: list[list[DecodedInput]] = []
        self.insert_limit: int | None = None  # SendInput inserts at most this many
        # clipboard
        self.formats: dict[int, bytes | None] = {}
        self.owner = 0
        self.seq = 1
        self.open_by: int | None = None
        self.lock_opens = 0
        self.render_delay: dict[int, float] = {}
        self.unrendered: set[int] = set()  # the owner never renders these
        self.pending: dict[int, bytes] = {}
        self.reads: list[tuple[float, int | None]] = []
        self.requests: list[RenderRequest] = []
        self.copies: list[tuple[float, dict[int, bytes | None]]] = []
        self.steal_after_set = False
        self.registered: dict[str, int] = {}
        # processes
        self.integrity: dict[int, int | None] = {}
        self.token_denied: set[int] = set()
        self.process_denied: set[int] = set()
        self.our_integrity = SECURITY_MANDATORY_MEDIUM_RID
        self.error = 0
        self.open_handles: set[int] = set()
        self._handles: dict[int, int] = {}

    # --- scripting -----------------------------------------------------------------

    def hold(self, vk: int, until: float) -> None:
        self.held[vk] = until

    def read_at(self, t: float, pid: int | None) -> None:
        self.reads.append((t, pid))

    def copy_at(self, t: float, formats: dict[int, bytes | None]) -> None:
        self.copies.append((t, formats))

    def user_clipboard(self, formats: dict[int, bytes | None]) -> None:
        self.formats = dict(formats)
        self.owner = OTHER_WINDOW
        self.seq += 1

    def typed_text(self) -> str:
        """What a target would receive as WM_CHAR from the KEYEVENTF_UNICODE events."""
        units = [i.scan for batch in self.sent for i in batch if i.flags == 0x0004]
        return struct.pack(f"<{len(units)}H", *units).decode("utf-16-le")

    def names(self) -> list[str]:
        return [str(c[0]) for c in self.calls]

    def _advance(self, dt: float) -> None:
        self.now += dt
        for t, formats in list(self.copies):
            if t <= self.now:
                self.copies.remove((t, formats))
                self.user_clipboard(formats)

    # --- clock -------------------------------------------------------------------

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.calls.append(("sleep", round(s, 4)))
        self._advance(s)

    # --- KeyboardApi -------------------------------------------------------------

    def send_input(self, packed: bytes, count: int, size: int) -> int:
        batch = decode_inputs(packed, count, size)
        self.calls.append(("SendInput", count, size))
        inserted = count if self.insert_limit is None else min(count, self.insert_limit)
        self.sent.append(batch[:inserted])
        return inserted

    def async_key_state(self, vk: int) -> int:
        self.calls.append(("GetAsyncKeyState", vk))
        return KEY_DOWN_BIT if self.held.get(vk, -1.0) > self.now else 0

    def scan_code(self, vk: int) -> int:
        self.calls.append(("MapVirtualKeyW", vk))
        return self.scan_codes.get(vk, 0)

    # --- ClipboardApi ------------------------------------------------------------

    def clipboard_window(self) -> int:
        return OUR_WINDOW

    def open_clipboard(self, hwnd: int) -> bool:
        self.calls.append(("OpenClipboard", hwnd))
        if self.lock_opens > 0:
            self.lock_opens -= 1
            return False
        assert self.open_by is None, "clipboard opened twice"
        self.open_by = hwnd
        return True

    def close_clipboard(self) -> None:
        self.calls.append(("CloseClipboard",))
        assert self.open_by is not None
        self.open_by = None
        if self.steal_after_set and self.owner == OUR_WINDOW:
            self.steal_after_set = False
            self.user_clipboard({CF_UNICODETEXT: "someone else".encode("utf-16-le")})

    def empty_clipboard(self) -> bool:
        self.calls.append(("EmptyClipboard",))
        assert self.open_by is not None
        self.formats = {}
        self.owner = self.open_by
        self.seq += 1
        return True

    def count_formats(self) -> int:
        self.calls.append(("CountClipboardFormats",))
        return len(self.formats)

    def enum_formats(self) -> list[int]:
        self.calls.append(("EnumClipboardFormats",))
        assert self.open_by is not None
        return list(self.formats)

    def get_data(self, fmt: int) -> bytes | None:
        self.calls.append(("GetClipboardData", fmt))
        assert self.open_by is not None
        self._advance(self.render_delay.get(fmt, 0.0))
        if fmt in self.unrendered:
            return None
        return self.formats.get(fmt)

    def set_data(self, fmt: int, data: bytes | None) -> bool:
        self.calls.append(("SetClipboardData", fmt, data))
        assert self.open_by == OUR_WINDOW and self.owner == OUR_WINDOW
        self.formats[fmt] = data
        self.seq += 1
        return True

    def set_pending(self, fmt: int, data: bytes) -> None:
        self.calls.append(("set_pending", fmt, data))
        self.pending[fmt] = data

    def register_format(self, name: str) -> int:
        self.calls.append(("RegisterClipboardFormatW", name))
        return self.registered.setdefault(name, 0xC100 + len(self.registered))

    def sequence_number(self) -> int:
        return self.seq

    def clipboard_owner(self) -> int:
        return self.owner

    def pump(self, timeout_s: float) -> None:
        self._advance(timeout_s)
        for t, pid in list(self.reads):
            if t <= self.now:
                self.reads.remove((t, pid))
                if self.owner == OUR_WINDOW and self.formats.get(CF_UNICODETEXT, b"") is None:
                    self.requests.append(RenderRequest(t, CF_UNICODETEXT, pid))
                    self.formats[CF_UNICODETEXT] = self.pending[CF_UNICODETEXT]

    def render_requests(self) -> list[RenderRequest]:
        out, self.requests = self.requests, []
        return out

    # --- ProcessApi --------------------------------------------------------------

    def _handle(self, pid: int) -> int:
        h = 0x400 + len(self._handles) * 4
        self._handles[h] = pid
        self.open_handles.add(h)
        return h

    def open_process(self, pid: int) -> int:
        self.calls.append(("OpenProcess", pid))
        if pid in self.process_denied:
            self.error = ERROR_ACCESS_DENIED
            return 0
        return self._handle(pid)

    def current_process(self) -> int:
        self.calls.append(("GetCurrentProcess",))
        return -1

    def open_process_token(self, process: int) -> int:
        self.calls.append(("OpenProcessToken", process))
        pid = -1 if process == -1 else self._handles[process]
        if pid in self.token_denied:
            self.error = ERROR_ACCESS_DENIED
            return 0
        return self._handle(pid)

    def token_integrity(self, token: int) -> int | None:
        self.calls.append(("GetTokenInformation", token))
        pid = self._handles[token]
        return self.our_integrity if pid == -1 else self.integrity.get(pid)

    def close_handle(self, handle: int) -> None:
        self.calls.append(("CloseHandle", handle))
        self.open_handles.discard(handle)

    def last_error(self) -> int:
        return self.error
