"""Factories for the tray app's platform parts (microphone, VAD, typing, hotkeys).

Kept apart from app.py so tests can build the app with the same parts, and so heavy
imports (onnxruntime for the VAD, sounddevice, pynput) happen only when a part is made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal, Slot

from desktop.audio.source import AudioSource, MicrophoneSource, SourceStatus, list_input_devices
from desktop.audio.vad import SileroOnnxVad, SpeechDetector
from desktop.coordinator import Coordinator
from desktop.hotkey.debounce import CommandKind
from desktop.hotkey.listener import HotkeyListener, KeyBackend
from desktop.hotkey.router import Routed
from desktop.output.base import InjectionGuard, OutputError
from desktop.output.focus import FocusProbe
from desktop.output.policy import OutputPolicy, moves_caret
from desktop.output.typist import TypingResult, Typist, build_default_typist
from desktop.settings import Settings

log = logging.getLogger(__name__)


def microphone_spec(name: str) -> str | int | None:
    """Settings hold a device name substring or an index; empty = system default."""
    name = name.strip()
    if not name:
        return None
    return int(name) if name.isdigit() else name


def make_source(settings: Settings, on_status: Callable[[str], None]) -> AudioSource:
    def status(s: SourceStatus) -> None:
        on_status(str(s))

    return MicrophoneSource(microphone_spec(settings.microphone), on_status=status)


def make_detector() -> SpeechDetector:
    return SileroOnnxVad()


def input_device_names() -> list[str]:
    try:
        return [device.name for device in list_input_devices()]
    except Exception as exc:  # no PortAudio: the dialog still opens, with a free-text field
        log.warning("cannot list microphones: %s", exc)
        return []


def open_meter_source(name: str) -> AudioSource:
    """A second, short-lived stream on the device for the settings dialog's level meter."""
    return MicrophoneSource(microphone_spec(name), rescan_on_reopen=False)


# ---------------------------------------------------------------- typing


def output_policy(settings: Settings) -> OutputPolicy:
    return OutputPolicy(
        method=settings.output_method,
        app_methods=dict(settings.app_overrides),
    )


class AppTypist:
    """The typist for the current settings; rebuilt when they change.

    ``own_window_ids`` is a live list: windows the app opens later (history, settings)
    are added to it, and the typist refuses to type into any of them.
    """

    def __init__(self, settings: Settings) -> None:
        self.guard = InjectionGuard()
        self.own_window_ids: list[int] = []
        self.focus: FocusProbe | None = None  # None: the platform's own probe
        self._typist = self._build(settings)

    def _build(self, settings: Settings) -> Typist:
        return build_default_typist(
            output_policy(settings),
            guard=self.guard,
            own_window_ids=self.own_window_ids,
            focus=self.focus,
        )

    def use_focus(self, focus: FocusProbe, settings: Settings) -> None:
        """Type with ``focus`` deciding the target window (Windows: the foreground
        tracker's probe, which brings back the window a tray click took the focus from)."""
        self.focus = focus
        self._typist = self._build(settings)

    def apply_settings(self, settings: Settings) -> None:
        self._typist = self._build(settings)

    def held_modifiers(self) -> tuple[str, ...]:
        """The modifier keys held now, without waiting (the dictation core's probe)."""
        return self._typist.held_modifiers()

    def reset_spacing(self) -> None:
        """The caret moved (the user pressed Enter, an arrow...): no joining space next."""
        self._typist.reset_spacing()

    def type_final(self, text: str, *, modifiers_held: tuple[str, ...] = ()) -> TypingResult:
        result = self._typist.type_final(text, modifiers_held=modifiers_held)
        if result.error and result.notice is None:  # a notice ("... on the clipboard") is shown
            raise OutputError(result.error)
        if result.skipped_own_window:
            log.info("not typing %d chars into tingxie's own window", len(text))
        elif result.method is not None:
            app = result.target.app if result.target is not None else "unknown window"
            log.info(
                "typed %d chars by %s into %s in %.0f ms",
                len(result.typed),
                result.method.value,
                app or "unknown window",
                result.seconds * 1000,
            )
        return result


def make_typist(settings: Settings) -> AppTypist:
    return AppTypist(settings)


# ---------------------------------------------------------------- hotkeys


class HotkeyBridge(QObject):
    """Hotkey commands arrive on the listener's thread; act on them on the Qt thread.

    :meth:`user_key` (the listener's ``on_user_key``) turns the user's caret keys into
    ``on_caret_moved`` calls on the Qt thread, where the typist lives.
    """

    command = Signal(object)  # Routed
    caret_moved = Signal()

    def __init__(
        self, coordinator: Coordinator, on_caret_moved: Callable[[], None] | None = None
    ) -> None:
        super().__init__()
        self._coordinator = coordinator
        self._on_caret_moved = on_caret_moved
        self.command.connect(self._dispatch)
        self.caret_moved.connect(self._caret_moved)

    def user_key(self, name: str) -> None:
        """On the listener's thread: only caret keys cross to the Qt thread."""
        if moves_caret(name):
            self.caret_moved.emit()

    @Slot()
    def _caret_moved(self) -> None:
        if self._on_caret_moved is not None:
            self._on_caret_moved()

    @Slot(object)
    def _dispatch(self, routed: Routed) -> None:
        c, kind = self._coordinator, routed.command.kind
        if routed.binding == "toggle":
            if kind is CommandKind.PRESS:
                c.talk_toggled()
        elif kind is CommandKind.PRESS:
            c.talk_pressed()
        elif kind is CommandKind.RELEASE:
            c.talk_released()
        elif kind is CommandKind.TAP:  # a short press: kept if the VAD heard speech in it
            c.talk_tapped()
        else:  # CANCEL (it was part of a shortcut): discard
            c.talk_cancelled()


class BoundHotkeys:
    def __init__(self, listener: HotkeyListener, bridge: HotkeyBridge) -> None:
        self.listener = listener
        self.bridge = bridge  # kept alive as long as the listener

    def stop(self) -> None:
        self.listener.stop()


def hotkey_bindings(settings: Settings) -> dict[str, str]:
    bindings = {"hold": settings.hold_key}
    if settings.toggle_key:
        bindings["toggle"] = settings.toggle_key
    return bindings


def bind_hotkeys(
    settings: Settings,
    coordinator: Coordinator,
    typist: AppTypist,
    backend: KeyBackend | None = None,
) -> BoundHotkeys:
    """Start the global hotkey listener (raises if the platform has none, e.g. no X).
    ``backend``: where keys come from instead of pynput (Raw Input on Windows)."""
    bridge = HotkeyBridge(coordinator, typist.reset_spacing)
    listener = HotkeyListener(
        hotkey_bindings(settings),
        bridge.command.emit,
        ignore_while=typist.guard.active,
        backend=backend,
        on_user_key=bridge.user_key,
    )
    listener.start()
    return BoundHotkeys(listener, bridge)
