"""The output seam: how final text gets into the focused window.

:class:`TextOutput` is what the :class:`~desktop.output.typist.Typist` calls; the
implementations are :class:`~desktop.output.keystrokes.KeystrokeOutput` (synthetic key
events) and :class:`~desktop.output.clipboard.ClipboardPasteOutput` (clipboard + paste
chord, then the user's clipboard restored). :class:`InjectionGuard` lets the hotkey
listener ignore the keys the app sends itself.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable


class OutputMethod(enum.Enum):
    """How to type a text. ``AUTO`` lets :mod:`desktop.output.policy` decide per text."""

    KEYSTROKES = "keystrokes"
    CLIPBOARD_PASTE = "clipboard_paste"
    AUTO = "auto"

    @classmethod
    def parse(cls, value: str) -> OutputMethod:
        """From a settings string (the enum value, case-insensitive; ``"paste"``,
        ``"clipboard"`` and ``"keys"``/``"type"`` are accepted too)."""
        v = value.strip().lower().replace("-", "_")
        aliases = {
            "paste": "clipboard_paste",
            "clipboard": "clipboard_paste",
            "keys": "keystrokes",
            "type": "keystrokes",
            "typing": "keystrokes",
        }
        return cls(aliases.get(v, v))


class OutputError(RuntimeError):
    """Typing failed (no display, clipboard unavailable, key injection refused, …)."""


class ClipboardUnavailable(OutputError):
    """The clipboard could not be used (e.g. the user's clipboard could not be saved);
    nothing was changed, so another method may type the text."""


class TextLeftOnClipboard(OutputError):
    """The text was not typed but is on the clipboard for the user to paste."""


@dataclass(frozen=True)
class OutputTarget:
    """The window being typed into, as an output needs it: the process that must read
    the clipboard (``pid``) and how long to wait for that read (``read_timeout_s``, None:
    the output's default)."""

    pid: int | None = None
    app_names: tuple[str, ...] = ()
    read_timeout_s: float | None = None


@runtime_checkable
class TextOutput(Protocol):
    """Types text into whatever window has keyboard focus.

    ``type_text`` blocks until the text has been handed to the target (for paste: until
    the user's clipboard is restored). ``paste_chord`` is the key chord (a
    :mod:`desktop.hotkey.keys` spec) a clipboard output presses for this target; outputs
    that do not paste ignore it, and ``target`` too. Raises :class:`OutputError` on
    failure (:class:`TextLeftOnClipboard` when the text waits on the clipboard).
    """

    @property
    def name(self) -> str: ...

    def type_text(
        self, text: str, paste_chord: str | None = None, target: OutputTarget | None = None
    ) -> None: ...


class InjectionGuard:
    """Marks the time the app is injecting keys, so the hotkey listener can ignore them.

    Use as a context manager around injection (nesting and several threads are fine).
    :meth:`active` stays true for ``tail_s`` after the last injection ends, because a
    listener sees the injected events a little later than they were sent.
    """

    def __init__(self, tail_s: float = 0.15, clock: Callable[[], float] = time.monotonic):
        self.tail_s = tail_s
        self._clock = clock
        self._lock = threading.Lock()
        self._depth = 0
        self._ended_at: float | None = None

    def __enter__(self) -> InjectionGuard:
        with self._lock:
            self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._depth -= 1
            self._ended_at = self._clock()

    def active(self) -> bool:
        with self._lock:
            if self._depth > 0:
                return True
            return self._ended_at is not None and self._clock() - self._ended_at < self.tail_s
