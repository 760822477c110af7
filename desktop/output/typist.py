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
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from desktop.output.base import InjectionGuard, OutputMethod, TextOutput
from desktop.output.focus import FocusInfo, FocusProbe, NullFocusProbe, is_own_window
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

    @property
    def ok(self) -> bool:
        return self.method is not None and self.error is None

    @property
    def notice(self) -> str | None:
        """What the user should be told: the text sink's changes, if any."""
        return self.sink.notice if self.sink is not None else None


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
    sender uses; the hotkey listener is given ``guard.active``.
    """

    policy: OutputPolicy
    outputs: Mapping[OutputMethod, TextOutput]
    focus: FocusProbe = field(default_factory=NullFocusProbe)
    own_pid: int = field(default_factory=os.getpid)
    own_window_ids: Collection[int] = ()
    guard: InjectionGuard = field(default_factory=InjectionGuard)
    clock: Callable[[], float] = time.monotonic
    max_chars: int | None = DEFAULT_MAX_CHARS
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

    def type_final(self, text: str) -> TypingResult:
        if self._busy:
            self._queue.append(text)
            return TypingResult(text=text, deferred=True)
        self._busy = True
        try:
            result = self._type_one(text)
            while self._queue:
                self._type_one(self._queue.pop(0))
            return result
        finally:
            self._busy = False

    def _type_one(self, raw: str) -> TypingResult:
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
        method = self.policy.choose(typed, names)
        output = self.outputs.get(method)
        if output is None:
            method = next(
                m
                for m in (OutputMethod.CLIPBOARD_PASTE, OutputMethod.KEYSTROKES)
                if m in self.outputs
            )
            output = self.outputs[method]
        chord = self.policy.paste_chord_for(names)
        try:
            with self.guard:
                output.type_text(typed, paste_chord=chord)
        except Exception as e:
            log.exception("typing %d chars with %s failed", len(typed), output.name)
            self._previous = None
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
            "typed %d chars with %s into %s in %.3f s", len(typed), output.name, target, end - start
        )
        return TypingResult(
            text=raw, typed=typed, method=method, target=target, seconds=end - start, sink=sink
        )


def build_default_typist(
    policy: OutputPolicy,
    *,
    guard: InjectionGuard | None = None,
    own_window_ids: Collection[int] = (),
    paste_timeout_s: float = 0.5,
) -> Typist:
    """The production typist: pynput keystrokes, Qt clipboard paste, the platform's focus
    probe. Call on the Qt main thread after the QApplication exists; give the hotkey
    listener ``typist.guard.active`` as its ``ignore_while``."""
    from desktop.output.clipboard import ClipboardPasteOutput, QtClipboard
    from desktop.output.focus import default_focus_probe
    from desktop.output.keystrokes import KeystrokeOutput, PynputKeySender

    guard = guard or InjectionGuard()
    sender = PynputKeySender(guard)
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: KeystrokeOutput(sender),
        OutputMethod.CLIPBOARD_PASTE: ClipboardPasteOutput(
            QtClipboard(),
            sender,
            default_chord=policy.default_paste_chord,
            paste_timeout_s=paste_timeout_s,
        ),
    }
    return Typist(
        policy, outputs, default_focus_probe(), own_window_ids=own_window_ids, guard=guard
    )
