"""The global hotkey listener: key events (pynput, or a :class:`KeyBackend`) → router.

Threads: the key source's thread only timestamps events and queues them; one worker
thread owns the router (and its debouncers' release-grace deadlines) and calls
``on_command``, ``on_user_key`` and the capture callback. All run on the worker thread: a
Qt user must forward them to the main thread (a signal on a QObject, queued connection).

Keys the app types itself are ignored: while ``ignore_while()`` is true (give it
``InjectionGuard.active`` of the typist) key *presses* are dropped; releases are always
processed so that a hold can never get stuck. Where the source flags synthesized events
(pynput on macOS; the Windows backend for input without a source device) only those
presses are dropped while typing and the user's real keys still count; X11 (XRecord)
cannot tell XTest events from real ones.

Backends: on X11 and macOS the keys come from pynput's listener (built in here). On
Windows they come from Raw Input on a thread of its own (:mod:`desktop.win32.shell`),
not from pynput's low-level hook, whose callback needs the GIL and is silently removed by
Windows when it answers late (docs/windows.md). A :class:`KeyBackend` reports key names
through a :class:`KeySink`; it may also say whether a key is down now (polled while a hold
is active, so a release Windows never delivered still ends the hold), report a locked
session (every hold is cancelled) and suppress hold keys.

Stopping on X11: pynput's ``Listener.stop()`` only takes effect when the next X event
arrives at the XRecord connection (``record_enable_context`` blocks until then). The
listener thread would hang in ``join`` until the user presses a key, so :meth:`stop` sends
one harmless Shift tap after ``stop()`` (the ``xdotool key shift`` trick of testing.md,
done with pynput's XTest controller, or ``xdotool`` when pynput cannot) and then joins.
"""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from desktop.hotkey.debounce import DebounceConfig
from desktop.hotkey.keys import KeySpec, KeySpecError, canonical_key_name, parse_key_spec
from desktop.hotkey.router import HotkeyRouter, Routed

log = logging.getLogger(__name__)

CommandCallback = Callable[[Routed], None]
CaptureCallback = Callable[[str], None]
UserKeyCallback = Callable[[str], None]

#: pynput names whose value equals the left-hand key on some platforms (X11 reports left
#: Ctrl as ``Key.ctrl``): they are renamed to the sided name.
_GENERIC_MODIFIERS = ("ctrl", "alt", "shift", "cmd")

#: Backends that flag injected events (pynput ``injected`` argument).
_REPORTS_INJECTED = sys.platform in ("win32", "darwin")

#: X11 keysym of Shift+Tab (ISO_Left_Tab), which pynput reports as a bare keysym.
_XK_ISO_LEFT_TAB = 0xFE20


def pynput_key_name(key: Any) -> str | None:
    """Canonical name for a pynput ``Key``/``KeyCode`` (None for unknown keys).

    Characters are lower-cased; keys without a character become ``vk<code>`` (the
    platform's virtual-key code, the keysym on X11), stable on one platform.
    """
    from pynput.keyboard import Key, KeyCode  # type: ignore[import-untyped,unused-ignore]

    if key is None:
        return None
    if isinstance(key, Key):
        name = str(key.name)
        if name in _GENERIC_MODIFIERS and key.value == Key[name + "_l"].value:
            name += "_l"
        return name
    if isinstance(key, KeyCode):
        if key.char is not None and len(key.char) == 1 and key.char.isprintable():
            try:
                return canonical_key_name(key.char)
            except KeySpecError:
                return None
        vk = key.vk
        if vk is None:
            return None
        if vk == _XK_ISO_LEFT_TAB and sys.platform.startswith("linux"):
            return "tab"  # the Tab key with Shift held, as Windows names it
        if sys.platform == "win32" and (0x30 <= vk <= 0x39 or 0x41 <= vk <= 0x5A):
            return chr(vk).lower()  # Ctrl+letter reports a control char: use the VK
        return f"vk{vk}"
    return None


class KeySink(Protocol):
    """Where a :class:`KeyBackend` reports keys (called on the backend's thread)."""

    def key_down(self, name: str, injected: bool = False) -> None: ...
    def key_up(self, name: str) -> None: ...
    def session_locked(self) -> None: ...


class KeyBackend(Protocol):
    """A source of global key events other than pynput (Raw Input on Windows)."""

    def start(self, sink: KeySink, timeout: float) -> None:
        """Begin reporting to ``sink``; return once ready (raise if it cannot work)."""
        ...

    def stop(self, timeout: float) -> None: ...

    def is_down(self, name: str) -> bool | None:
        """Whether the key is held now (None: cannot tell). Called on the worker thread."""
        ...

    def suppress(self, specs: list[KeySpec]) -> None:
        """Keep these chords from reaching the focused application (best effort)."""
        ...


#: How often a held key's state is read while a hold is active (see check_held).
HELD_KEY_POLL_S = 0.1


@dataclass(frozen=True)
class _Raw:
    op: str  # "press" | "release" | "call" | "lock"
    key: str | None = None
    t: float = 0.0
    call: Callable[[], None] | None = None
    injected: bool = False


class HotkeyListener:
    """Global hotkeys through pynput, debounced.

    ``bindings`` maps a binding name (``"hold"``, ``"toggle"``) to a key spec;
    ``on_command`` receives :class:`Routed` commands (binding name + PRESS/RELEASE/TAP/CANCEL).
    ``on_user_key`` (optional, on the worker thread) receives the canonical name of every
    other key the user presses: not injected (where the source can tell), not holding a
    binding, not captured for the settings; the typist uses it to notice the caret moved.
    """

    def __init__(
        self,
        bindings: Mapping[str, str | KeySpec],
        on_command: CommandCallback,
        *,
        config: DebounceConfig | None = None,
        ignore_while: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        backend: KeyBackend | None = None,
        on_user_key: UserKeyCallback | None = None,
    ) -> None:
        self._router = HotkeyRouter(bindings, config)
        self._backend = backend
        self._next_poll: float | None = None  # when to read the held keys' state next
        self._on_command = on_command
        self._on_user_key = on_user_key
        self._ignore_while = ignore_while or (lambda: False)
        self._clock = clock
        self._queue: queue.Queue[_Raw | None] = queue.Queue()
        self._listener: Any = None
        self._worker: threading.Thread | None = None
        self._capture_cb: CaptureCallback | None = None
        self.ignored_presses = 0

    # --- life cycle ---

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def start(self, timeout: float = 5.0) -> None:
        """Start listening; returns once pynput's listener is ready.

        Raises ImportError if pynput cannot work here (no DISPLAY, Wayland without X).
        """
        if self.running:
            return
        if self._backend is not None:
            self._worker = threading.Thread(target=self._work, name="hotkey-router", daemon=True)
            self._worker.start()
            try:
                self._backend.start(self, timeout)
            except BaseException:
                self.stop()
                raise
            self._suppress()
            return
        from pynput import keyboard  # type: ignore[import-untyped,unused-ignore]

        self._worker = threading.Thread(target=self._work, name="hotkey-router", daemon=True)
        self._worker.start()
        self._listener = keyboard.Listener(on_press=self._on_press, on_release=self._on_release)
        self._listener.daemon = True
        self._listener.start()
        ready = threading.Event()

        def wait_ready() -> None:
            self._listener.wait()
            ready.set()

        threading.Thread(target=wait_ready, daemon=True).start()
        if not ready.wait(timeout):
            log.warning("pynput listener not ready after %.1f s", timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening and join the threads (see the module docstring for X11)."""
        if self._backend is not None:
            self._backend.stop(timeout)
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
            if listener.is_alive() and sys.platform.startswith("linux"):
                _wake_x11_listener()
            listener.join(timeout)
            if listener.is_alive():
                log.warning("pynput listener thread did not stop within %.1f s", timeout)
        worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(None)
            worker.join(timeout)

    def __enter__(self) -> HotkeyListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- configuration (thread-safe: executed on the worker) ---

    def set_bindings(self, bindings: Mapping[str, str | KeySpec]) -> None:
        """Apply new bindings without restarting (a held binding gets CANCEL)."""
        parsed = dict(bindings)
        HotkeyRouter(parsed)  # validate now, in the caller's thread (raises KeySpecError)
        self._call(lambda: self._emit(self._router.set_bindings(parsed, self._clock())))
        self._suppress(parsed)

    def _suppress(self, bindings: Mapping[str, str | KeySpec] | None = None) -> None:
        if self._backend is None:
            return  # pynput on X11 can only grab the whole keyboard: nothing is suppressed
        chosen = self._router.bindings if bindings is None else bindings
        specs = [s if isinstance(s, KeySpec) else parse_key_spec(s) for s in chosen.values()]
        try:
            self._backend.suppress(specs)
        except Exception:
            log.exception("cannot suppress the hotkeys; they also reach the focused window")

    def capture_next(self, on_captured: CaptureCallback) -> None:
        """Deliver the spec of the next key or chord pressed (bindings are paused meanwhile).

        A lone modifier is captured when it is released with no other key pressed
        (``"ctrl_r"``); otherwise the first non-modifier key with the modifiers held
        (``"ctrl+alt+space"``).
        """

        def begin() -> None:
            self._capture_cb = on_captured
            self._emit(self._router.start_capture(self._clock()))

        self._call(begin)

    def cancel_capture(self) -> None:
        def end() -> None:
            self._capture_cb = None
            self._router.cancel_capture()

        self._call(end)

    def capture_next_key(self, timeout: float) -> str | None:
        """Blocking :meth:`capture_next` (not for the Qt main thread): the spec or None."""
        got: list[str] = []
        done = threading.Event()

        def on(spec: str) -> None:
            got.append(spec)
            done.set()

        self.capture_next(on)
        if not done.wait(timeout):
            self.cancel_capture()
            return None
        return got[0]

    @property
    def bindings(self) -> dict[str, str]:
        return self._router.bindings

    # --- KeySink: called on a backend's thread ---

    def key_down(self, name: str, injected: bool = False) -> None:
        """A key went down (``injected``: synthesized, possibly by our own typist)."""
        t = self._clock()
        if injected and self._ignore_while():
            self.ignored_presses += 1
            return
        self._queue.put(_Raw("press", name, t, injected=injected))

    def key_up(self, name: str) -> None:
        self._queue.put(_Raw("release", name, self._clock()))

    def session_locked(self) -> None:
        """The session was locked: cancel every hold and forget the keys held."""
        self._queue.put(_Raw("lock", t=self._clock()))

    # --- pynput thread ---

    # pynput calls these on its thread and, for keys this process types itself,
    # synchronously inside Controller.type(): they must never raise.

    def _on_press(self, key: Any, injected: bool = False) -> None:
        try:
            self._press(key, injected)
        except Exception:
            log.exception("hotkey listener: ignoring a key press it could not handle")

    def _on_release(self, key: Any, injected: bool = False) -> None:
        try:
            self._release(key)
        except Exception:
            log.exception("hotkey listener: ignoring a key release it could not handle")

    def _press(self, key: Any, injected: bool) -> None:
        t = self._clock()
        if self._ignore_while() and (injected or not _REPORTS_INJECTED):
            self.ignored_presses += 1
            return
        name = pynput_key_name(key)
        if name is not None:
            self._queue.put(_Raw("press", name, t, injected=injected))

    def _release(self, key: Any) -> None:
        t = self._clock()
        name = pynput_key_name(key)
        if name is not None:
            self._queue.put(_Raw("release", name, t))

    # --- worker thread ---

    def _call(self, fn: Callable[[], None]) -> None:
        if self.running:
            self._queue.put(_Raw("call", call=fn))
        else:
            fn()  # not started: nothing else touches the router

    def _next_wake(self, now: float) -> float | None:
        deadline = self._router.deadline()
        if self._backend is None or not self._router.held_keys():
            self._next_poll = None
            return deadline
        if self._next_poll is None:
            self._next_poll = now + HELD_KEY_POLL_S
        return self._next_poll if deadline is None else min(deadline, self._next_poll)

    def _work(self) -> None:
        while True:
            deadline = self._next_wake(self._clock())
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                now = self._clock()
                if self._next_poll is not None and now >= self._next_poll:
                    self._next_poll = None
                    assert self._backend is not None
                    self._emit(self._router.check_held(now, self._backend.is_down))
                else:
                    self._emit(self._router.poll(now))
                continue
            if item is None:
                return
            if item.op == "call" and item.call is not None:
                item.call()
                continue
            if item.op == "lock":
                log.info("session locked: cancelling any hold")
                self._emit(self._router.forget_keys(item.t))
                continue
            assert item.key is not None
            user_key = False
            if item.op == "press":
                capturing = self._router.capturing
                routed, captured = self._router.press(item.key, item.t)
                user_key = not (capturing or item.injected or item.key in self._router.held_keys())
            else:
                routed, captured = self._router.release(item.key, item.t)
            self._emit(routed)
            if user_key and self._on_user_key is not None:
                self._safe(self._on_user_key, item.key)
            if captured is not None:
                callback, self._capture_cb = self._capture_cb, None
                if callback is not None:
                    self._safe(callback, captured)

    def _emit(self, routed: list[Routed]) -> None:
        for r in routed:
            log.debug("hotkey %s: %s", r.binding, r.command)
            self._safe(self._on_command, r)

    @staticmethod
    def _safe(fn: Callable[[Any], None], arg: Any) -> None:
        try:
            fn(arg)
        except Exception:  # a failing consumer must not kill the hotkey thread
            log.exception("hotkey callback %r failed", fn)


def _wake_x11_listener() -> None:
    """Send one X key event (Shift tap) so a stopped XRecord listener returns."""
    try:
        from pynput.keyboard import Controller, Key  # type: ignore[import-untyped,unused-ignore]

        c = Controller()
        c.press(Key.shift)
        c.release(Key.shift)
        return
    except Exception:
        log.debug("pynput cannot send the wake-up key; trying xdotool", exc_info=True)
    if shutil.which("xdotool"):
        subprocess.run(
            ["xdotool", "key", "shift"],
            check=False,
            timeout=5,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
