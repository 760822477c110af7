"""Is the target window's process elevated above us? (logic; calls go through a seam)

``SendInput`` is subject to User Interface Privilege Isolation: a process may inject input
only into windows of an equal or lower integrity level, and when UIPI blocks it neither
the return value nor ``GetLastError`` says so. Typing into an elevated window (an
administrator terminal, Task Manager, an installer) would silently drop the text while the
typist reported success, and a paste would restore the clipboard over text never pasted.
So before typing, :class:`ElevationGate` compares integrity levels:

``OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION)`` on the target's pid,
``OpenProcessToken(TOKEN_QUERY)``, ``GetTokenInformation(TokenIntegrityLevel)`` (the last
sub-authority of the mandatory label's SID: 0x2000 medium, 0x3000 high, 0x4000 system),
against the same for our own process. When the target's token cannot be opened with
``ERROR_ACCESS_DENIED`` -- the usual answer for an elevated process's token when we are
not elevated -- the target is taken to be above us; any other failure is "unknown" and
typing goes ahead (refusing every window we cannot inspect would break typing for good).
The typist then leaves the text on the clipboard with a notice.
"""

from __future__ import annotations

import enum
import logging
from typing import Protocol

from desktop.output.focus import FocusInfo

log = logging.getLogger(__name__)

ERROR_ACCESS_DENIED = 5
SECURITY_MANDATORY_MEDIUM_RID = 0x2000
SECURITY_MANDATORY_HIGH_RID = 0x3000
SECURITY_MANDATORY_SYSTEM_RID = 0x4000


class Elevation(enum.Enum):
    NOT_ABOVE = "not_above"  # same or lower integrity: input gets through
    ABOVE = "above"  # higher integrity: UIPI drops our input
    UNKNOWN = "unknown"


class ProcessApi(Protocol):
    """The Win32 process/token calls (desktop.win32.api on Windows, a fake in tests).
    Handles are ints, 0 on failure (then ``last_error`` says why)."""

    def open_process(self, pid: int) -> int:
        """OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid)."""
        ...

    def current_process(self) -> int:
        """GetCurrentProcess() (a pseudo handle; closing it is harmless)."""
        ...

    def open_process_token(self, process: int) -> int:
        """OpenProcessToken(process, TOKEN_QUERY)."""
        ...

    def token_integrity(self, token: int) -> int | None:
        """The integrity level RID from GetTokenInformation(TokenIntegrityLevel)."""
        ...

    def close_handle(self, handle: int) -> None: ...

    def last_error(self) -> int: ...


def _integrity(api: ProcessApi, process: int) -> tuple[int | None, int]:
    """(integrity RID or None, the error when the token could not be opened)."""
    token = api.open_process_token(process)
    if not token:
        return None, api.last_error()
    try:
        return api.token_integrity(token), 0
    finally:
        api.close_handle(token)


def own_integrity(api: ProcessApi) -> int | None:
    return _integrity(api, api.current_process())[0]


def target_elevation(api: ProcessApi, pid: int, ours: int | None) -> Elevation:
    """Where the process ``pid`` stands relative to our integrity level ``ours``."""
    process = api.open_process(pid)
    if not process:
        error = api.last_error()
        log.debug("OpenProcess(%d) failed: %d", pid, error)
        return Elevation.ABOVE if error == ERROR_ACCESS_DENIED else Elevation.UNKNOWN
    try:
        theirs, error = _integrity(api, process)
    finally:
        api.close_handle(process)
    if theirs is None:
        log.debug("token of %d not readable: %d", pid, error)
        return Elevation.ABOVE if error == ERROR_ACCESS_DENIED else Elevation.UNKNOWN
    if ours is None:
        return Elevation.UNKNOWN
    return Elevation.ABOVE if theirs > ours else Elevation.NOT_ABOVE


class ElevationGate:
    """:class:`desktop.output.typist.TargetGate`: refuses windows of processes elevated
    above us. Our own integrity level is read once."""

    def __init__(self, api: ProcessApi) -> None:
        self.api = api
        self._ours: int | None = None
        self._ours_read = False

    def refusal(self, target: FocusInfo) -> str | None:
        if target.pid is None:
            return None
        if not self._ours_read:
            self._ours = own_integrity(self.api)
            self._ours_read = True
        if target_elevation(self.api, target.pid, self._ours) is not Elevation.ABOVE:
            return None
        app = target.app or target.title or f"process {target.pid}"
        return f"{app} runs as administrator"
