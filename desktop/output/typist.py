"""The typist: puts a final utterance into the focused window.

Per utterance (:meth:`Typist.type_final`): pass the text through the text sink
(:func:`desktop.output.text_sink.sanitize`: no controls, no line breaks pressed as Enter,
a length cap; what it changed is reported as a notice); look at the focused window; refuse
if it is one of ours; join the text to the previous utterance (a space between words, see
:func:`desktop.output.policy.join_for_typing`); choose the method for that text and
application; type it; report what happened.

Threading: ``type_final`` blocks. With :class:`~desktop.output.clipboard.QtClipboard` it
must run on the Qt main thread, and it runs a local event loop while waiting for the
target to read the clipboard, so Qt slots can run meanwhile; a ``type_final`` called from
such a slot is queued and typed, in order, before the outer call returns (its result then
says ``deferred``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from desktop.output.base import (
    ClipboardUnavailable,
    InjectionGuard,
    OutputMethod,
    OutputTarget,
    TextLeftOnClipboard,
    TextOutput,
)
from desktop.output.clipboard import Clipboard, ClipboardPasteOutput
from desktop.output.focus import FocusInfo, FocusProbe, NullFocusProbe, is_own_window
from desktop.output.keystrokes import KeySender, KeystrokeOutput
from desktop.output.modifiers import ModifiersHeld, ModifierWait
from desktop.output.policy import OutputPolicy, join_for_typing
from desktop.output.text_sink import DEFAULT_MAX_CHARS, SanitizedText, sanitize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TypingResult:
    """What :meth:`Typist.type_final` did.

    ``text`` is the final as given; ``sink`` what the text sink let through (and what it
    changed). ``method`` is None when nothing was typed. ``typed`` is the text actually
    sent (sanitized, with a joining space, if any). ``error`` is set when the output failed
    (the message; the exception is logged).
    """

    text: str
    typed: str = ""
    method: OutputMethod | None = None
    target: FocusInfo | None = None
    skipped_own_window: bool = False
    deferred: bool = False
    seconds: float = 0.0
    error: str | None = None
    sink: SanitizedText | None = None
    left_on_clipboard: bool = False
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.method is not None and self.error is None

    @property
    def notice(self) -> str | None:
        """What the user should be told: why the text was not typed (``problem``, e.g.
        "... the text is on the clipboard") and what the text sink changed, if anything."""
        parts = [p for p in (self.problem, self.sink.notice if self.sink else None) if p]
        return " ".join(parts) if parts else None


class TargetGate(Protocol):
    """Says why text must not be typed into a window (None: go ahead). On Windows: the
    window's process runs elevated, so UIPI would drop our input without an error."""

    def refusal(self, target: FocusInfo) -> str | None: ...


@dataclass
class _Previous:
    end: str
    at: float
    window_id: int | None


@dataclass
class Typist:
    """Ties policy, outputs and focus together.

    ``outputs`` maps KEYSTROKES / CLIPBOARD_PASTE to an output; when the chosen method has
    no output the other one is used. ``own_window_ids``: ids of our windows, for platforms
    where the focus probe reports no pid. ``guard`` should be the guard the outputs' key
    sender uses; the hotkey listener is given ``guard.active``. ``max_chars`` caps each
    final (the text sink's cap; None: no cap). ``gate`` may refuse a target; ``fallback``
    is the clipboard the text is left on when the target is refused or typing fails, with
    a notice saying so. ``modifier_wait`` (where the platform can read the keyboard) runs
    before each output, outside ``guard``: where the hotkey listener cannot tell our keys
    from the user's (X11) it drops every press while the guard is active, and the key the
    user holds -- often the next utterance's hold key -- must still count; if a modifier
    stays held the text is left on ``fallback``. ``modifier_probe`` reads the held
    modifiers without waiting (:meth:`held_modifiers`): the dictation core asks it before
    it starts a job and waits on its own clock, so the blocking ``modifier_wait`` is only
    the last line of defence.
    """

    policy: OutputPolicy
    outputs: Mapping[OutputMethod, TextOutput]
    focus: FocusProbe = field(default_factory=NullFocusProbe)
    own_pid: int = field(default_factory=os.getpid)
    own_window_ids: Collection[int] = ()
    guard: InjectionGuard = field(default_factory=InjectionGuard)
    clock: Callable[[], float] = time.monotonic
    max_chars: int | None = DEFAULT_MAX_CHARS
    gate: TargetGate | None = None
    fallback: Clipboard | None = None
    modifier_wait: Callable[[], None] | None = None
    modifier_probe: Callable[[], tuple[str, ...]] | None = None
    _previous: _Previous | None = field(default=None, init=False, repr=False)
    _busy: bool = field(default=False, init=False, repr=False)
    _queue: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not any(
            m in self.outputs for m in (OutputMethod.KEYSTROKES, OutputMethod.CLIPBOARD_PASTE)
        ):
            raise ValueError("Typist needs a KEYSTROKES or CLIPBOARD_PASTE output")

    def reset_spacing(self) -> None:
        """Forget the previous utterance (e.g. the user pressed Enter or clicked away)."""
        self._previous = None

    def held_modifiers(self) -> tuple[str, ...]:
        """The modifier keys held now, read without waiting (() where the keyboard cannot
        be read)."""
        return self.modifier_probe() if self.modifier_probe is not None else ()

    def type_final(self, text: str, *, modifiers_held: tuple[str, ...] = ()) -> TypingResult:
        """``modifiers_held``: the caller already waited for these keys and they stayed
        held: the text is not typed but left on the clipboard, as after the wait."""
        if self._busy:
            self._queue.append(text)
            return TypingResult(text=text, deferred=True)
        self._busy = True
        try:
            result = self._type_one(text, modifiers_held)
            while self._queue:
                self._type_one(self._queue.pop(0))
            return result
        finally:
            self._busy = False

    def _type_one(self, raw: str, modifiers_held: tuple[str, ...] = ()) -> TypingResult:
        start = self.clock()
        sink = sanitize(raw, self.max_chars)
        if sink.changed:
            log.warning("text sink: %s", sink.notice)
        text = sink.text
        target = self.focus.current()
        if not text:
            return TypingResult(text=raw, target=target, sink=sink)
        if is_own_window(target, self.own_pid, self.own_window_ids):
            log.info("not typing into our own window %s", target)
            return TypingResult(text=raw, target=target, skipped_own_window=True, sink=sink)

        window_id = target.window_id if target is not None else None
        prev = self._previous
        typed = text
        if prev is not None:
            typed = join_for_typing(
                prev.end,
                text,
                start - prev.at,
                focus_changed=window_id is not None and window_id != prev.window_id,
            )
        names = target.app_names if target is not None else ()
        refusal = self.gate.refusal(target) if self.gate is not None and target else None
        if refusal is not None:
            log.warning("not typing: %s", refusal)
            self._previous = None
            return self._leave_on_clipboard(raw, text, target, sink, start, refusal)
        method = self.policy.choose(typed, names)
        if method not in self.outputs:
            method = next(
                m
                for m in (OutputMethod.CLIPBOARD_PASTE, OutputMethod.KEYSTROKES)
                if m in self.outputs
            )
        chord = self.policy.paste_chord_for(names)
        out_target = OutputTarget(
            pid=target.pid if target is not None else None,
            app_names=names,
            read_timeout_s=self.policy.read_timeout_for(names),
        )
        try:
            if modifiers_held:
                raise ModifiersHeld(
                    f"modifier keys still held: {', '.join(modifiers_held)}", modifiers_held
                )
            if self.modifier_wait is not None:
                self.modifier_wait()
            method = self._output(method, typed, chord, out_target)
        except ModifiersHeld as e:
            log.warning("not typing %d chars: %s", len(typed), e)
            self._previous = None
            return self._leave_on_clipboard(
                raw, text, target, sink, start, f"{_held_keys(e)} stayed held", error=e
            )
        except TextLeftOnClipboard as e:
            log.warning("typing %d chars failed: %s", len(typed), e)
            self._previous = None
            return TypingResult(
                text=raw,
                target=target,
                seconds=self.clock() - start,
                error=f"{type(e).__name__}: {e}",
                sink=sink,
                left_on_clipboard=True,
                problem="Paste failed — the text is on the clipboard.",
            )
        except Exception as e:
            log.exception("typing %d chars with %s failed", len(typed), method.value)
            self._previous = None
            if self.fallback is not None:
                return self._leave_on_clipboard(
                    raw, text, target, sink, start, "Typing failed", error=e
                )
            return TypingResult(
                text=raw,
                typed="",
                method=None,
                target=target,
                seconds=self.clock() - start,
                error=f"{type(e).__name__}: {e}",
                sink=sink,
            )
        end = self.clock()
        self._previous = _Previous(end=typed[-16:], at=end, window_id=window_id)
        log.debug(
            "typed %d chars with %s into %s in %.3f s",
            len(typed),
            method.value,
            target,
            end - start,
        )
        return TypingResult(
            text=raw, typed=typed, method=method, target=target, seconds=end - start, sink=sink
        )

    def _output(
        self, method: OutputMethod, typed: str, chord: str, target: OutputTarget
    ) -> OutputMethod:
        """Type with ``method``; if its clipboard is unavailable (nothing was changed),
        with the other method. Returns the method that typed."""
        try:
            with self.guard:
                self.outputs[method].type_text(typed, paste_chord=chord, target=target)
            return method
        except ClipboardUnavailable as e:
            other = next((m for m in self.outputs if m is not method), None)
            if other is None:
                raise
            log.warning("%s; typing with %s instead", e, other.value)
            with self.guard:
                self.outputs[other].type_text(typed, paste_chord=chord, target=target)
            return other

    def _leave_on_clipboard(
        self,
        raw: str,
        text: str,
        target: FocusInfo | None,
        sink: SanitizedText,
        start: float,
        reason: str,
        error: Exception | None = None,
    ) -> TypingResult:
        """Not typed: put the (sanitized) text on the fallback clipboard for the user."""
        detail = f"{type(error).__name__}: {error}" if error is not None else reason
        left = False
        if self.fallback is not None:
            try:
                self.fallback.set_text(text)
                left = self.fallback.confirm_set()
            except Exception:
                log.exception("putting the text on the clipboard failed")
        problem = (
            f"{reason}; the text is on the clipboard."
            if left
            else f"{reason}; the text was not typed."
        )
        return TypingResult(
            text=raw,
            target=target,
            seconds=self.clock() - start,
            error=detail,
            sink=sink,
            left_on_clipboard=left,
            problem=problem,
        )


def standard_outputs(
    sender: KeySender, clipboard: Clipboard, policy: OutputPolicy, paste_timeout_s: float
) -> dict[OutputMethod, TextOutput]:
    """The two output methods every platform offers, over that platform's key sender and
    clipboard."""
    return {
        OutputMethod.KEYSTROKES: KeystrokeOutput(sender),
        OutputMethod.CLIPBOARD_PASTE: ClipboardPasteOutput(
            clipboard,
            sender,
            default_chord=policy.default_paste_chord,
            paste_timeout_s=paste_timeout_s,
        ),
    }


def build_default_typist(
    policy: OutputPolicy,
    *,
    guard: InjectionGuard | None = None,
    own_window_ids: Collection[int] = (),
    paste_timeout_s: float = 0.5,
    focus: FocusProbe | None = None,
) -> Typist:
    """The production typist. Windows: SendInput keystrokes, the Win32 clipboard on its
    own thread, the elevation gate and a clipboard fallback
    (:func:`desktop.win32.output.build_windows_typist`). Elsewhere: pynput keystrokes, Qt
    clipboard paste, the platform's focus probe (or ``focus``); call on the Qt main thread
    after the QApplication exists. Give the hotkey listener ``typist.guard.active`` as its
    ``ignore_while``."""
    if sys.platform == "win32":
        from desktop.win32.output import build_windows_typist

        return build_windows_typist(
            policy,
            guard=guard,
            own_window_ids=own_window_ids,
            focus=focus,
            paste_timeout_s=paste_timeout_s,
        )
    from desktop.output.clipboard import QtClipboard
    from desktop.output.focus import default_focus_probe
    from desktop.output.keystrokes import PynputKeySender, shared_borrower

    guard = guard or InjectionGuard()
    modifier_wait = default_modifier_wait()
    # X11: characters missing from the keyboard map on spare keycodes of their own
    borrower = shared_borrower() if _on_x11() else None
    sender = PynputKeySender(guard, modifier_wait=modifier_wait, borrower=borrower)
    clipboard = QtClipboard()
    outputs = standard_outputs(sender, clipboard, policy, paste_timeout_s)
    return Typist(
        policy,
        outputs,
        focus if focus is not None else default_focus_probe(),
        own_window_ids=own_window_ids,
        guard=guard,
        fallback=clipboard,
        modifier_wait=modifier_wait,
        modifier_probe=modifier_wait.probe.held if modifier_wait is not None else None,
    )


def _held_keys(e: ModifiersHeld) -> str:
    return f"A modifier key ({', '.join(e.held)})" if e.held else "A modifier key"


def _on_x11() -> bool:
    """Linux with an X display (Xorg or XWayland): the keyboard can be read and typed on."""
    return sys.platform.startswith("linux") and bool(os.environ.get("DISPLAY"))


def default_modifier_wait() -> ModifierWait | None:
    """The wait for held modifiers on this platform: on X11 (a ``DISPLAY`` on Linux) over
    :class:`~desktop.output.x11_keyboard.X11ModifierProbe`; None where the keyboard cannot
    be read (Wayland without XWayland, macOS). Windows builds its own
    (:mod:`desktop.win32.keyboard`)."""
    if not _on_x11():
        return None
    from desktop.output.x11_keyboard import shared_probe

    return ModifierWait(shared_probe())
