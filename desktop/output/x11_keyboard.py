"""Which modifier keys are down on an X11 display (python-xlib), for the wait before typing.

:class:`X11ModifierProbe` asks the X server on a connection of its own: GetModifierMapping
(which keycodes are modifiers now; a layout switch can change them) and QueryKeymap (which
keys are down, physically or injected with XTest). :mod:`desktop.output.modifiers`
decodes the replies and decides. python-xlib is imported on first use, so importing this
module needs no display.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from desktop.output.modifiers import held_modifiers, modifier_keycodes

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class PerDisplay(Generic[_T]):
    """One ``make(display)`` per X display for the whole process (thread-safe): the app
    rebuilds its typist whenever the settings change, and each would otherwise open
    another X connection (and lose what the previous one knew)."""

    def __init__(self, make: Callable[[str | None], _T]) -> None:
        self._make = make
        self._made: dict[str | None, _T] = {}
        self._lock = threading.Lock()

    def get(self, display: str | None = None) -> _T:
        with self._lock:
            if display not in self._made:
                self._made[display] = self._make(display)
            return self._made[display]


def shared_probe(display: str | None = None) -> X11ModifierProbe:
    """The process's modifier probe for ``display``."""
    return _probes.get(display)


class X11ModifierProbe:
    """:class:`~desktop.output.modifiers.ModifierProbe` on an X11 display. Thread-safe.

    The connection opens on the first :meth:`held`. If the display cannot be opened or a
    query fails, :meth:`held` reports nothing held (typing goes ahead rather than never)
    and logs it once.
    """

    def __init__(self, display: str | None = None) -> None:
        self._name = display
        self._display: Any = None
        self._lock = threading.Lock()
        self._warned = False

    def close(self) -> None:
        with self._lock:
            if self._display is not None:
                self._display.close()
                self._display = None

    def held(self) -> tuple[str, ...]:
        with self._lock:
            try:
                return self._held()
            except Exception:
                if not self._warned:
                    log.warning("cannot read the X keyboard state", exc_info=True)
                    self._warned = True
                self._drop()
                return ()

    def _held(self) -> tuple[str, ...]:
        if self._display is None:
            from Xlib import display as xdisplay  # type: ignore[import-untyped,unused-ignore]

            self._display = xdisplay.Display(self._name)
        d = self._display
        # the keyboard mapping fresh from the server: python-xlib's cached copy goes stale
        # when a layout switch (or pynput's spare-keycode remapping) changes it
        first, last = d.display.info.min_keycode, d.display.info.max_keycode
        keysyms = d.get_keyboard_mapping(first, last - first + 1)

        def keysym_of(keycode: int) -> int:
            if not first <= keycode <= last or not len(keysyms[keycode - first]):
                return 0
            return int(keysyms[keycode - first][0])

        modifiers = modifier_keycodes(d.get_modifier_mapping(), keysym_of)
        return held_modifiers(list(d.query_keymap()), modifiers)

    def _drop(self) -> None:
        """Forget a connection that failed, so the next call opens a new one."""
        if self._display is not None:
            close_quietly(self._display)
            self._display = None


def close_quietly(display: Any) -> None:
    """Close an X connection that may already be broken: logged, never raised."""
    try:
        display.close()
    except Exception:
        log.debug("closing the X connection failed", exc_info=True)


_probes: PerDisplay[X11ModifierProbe] = PerDisplay(X11ModifierProbe)
