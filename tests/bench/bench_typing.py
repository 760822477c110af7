"""Benchmark: the last leg of latency, final handed to the typist → text in the window.

docs/benchmarks.md's pipeline section ends at "final received"; this one starts there.
The script starts its own X screen (Xvfb, never the user's desktop: it injects keys) with
openbox, and the target window of the X11 output tests (tests/output/target_window.py: a
QLineEdit in another process). In this process, on the Qt main thread of a QApplication
on xcb, the tray app's own typist (``build_default_typist``, built as
``desktop.parts.AppTypist`` builds it: pynput keystrokes, characters the
keyboard map lacks on spare keycodes with XTest, Qt clipboard paste with the clipboard
restored, the X11 focus probe and the wait for held modifiers) is handed each final with
``type_final``, as the dictation core does.

Per output method (keystrokes, clipboard paste, auto) and text (short English, a long
English paragraph, a Chinese sentence, mixed Chinese and English): from the call to the
first moment the target's text equals the final exactly (a thread asks the target for
its text every ``--poll-ms`` until then or until ``--wait-s`` after the typist
returned), and when the typist returned. A run whose text never arrives exactly is a
failure: counted and shown, not timed. The cells run interleaved, one repetition of each
in turn, so a busy moment of the machine hits them all alike.

    python tests/bench/bench_typing.py [--reps 20] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from desktop.output.base import OutputMethod  # noqa: E402
from desktop.output.clipboard import ClipboardPasteOutput  # noqa: E402
from desktop.output.keystrokes import KeystrokeOutput, char_keysym, shared_borrower  # noqa: E402
from desktop.output.policy import OutputPolicy, needs_clipboard  # noqa: E402
from desktop.output.text_sink import sanitize  # noqa: E402
from tests.bench.report import machine_description, percentile, write_section  # noqa: E402
from tests.output.x11 import (  # noqa: E402
    TargetWindow,
    window_manager,
    window_manager_caught_up,
)

log = logging.getLogger(__name__)

TITLE = "Typing: final to text in the window (X11)"

#: (kind, text): what dictation produces, in the scripts the app is made for.
TEXTS: tuple[tuple[str, str], ...] = (
    ("short English", "Let's meet at noon tomorrow."),
    (
        "long English",
        "Thanks for sending the draft so quickly. I read it this morning and I think the "
        "second section needs a shorter introduction, because readers will skip it. Could "
        "you also check the numbers in table 3? The totals don't match the figures we "
        "agreed on last week. If you can send a new version by Friday, I'll review it over "
        "the weekend and we can ship on Monday.",
    ),
    ("Chinese", "今天下午三点我们在会议室讨论新版本的发布计划。"),
    ("mixed", "明天的 meeting 改到下午 3 点，请通知 Alice 和 Bob。"),
)

METHODS: tuple[OutputMethod, ...] = (
    OutputMethod.KEYSTROKES,
    OutputMethod.CLIPBOARD_PASTE,
    OutputMethod.AUTO,
)

#: The steps shown per method (PHASES names).
STEP_TABLES: tuple[tuple[OutputMethod, tuple[str, ...]], ...] = (
    (
        OutputMethod.KEYSTROKES,
        ("to the output", "keys sent", "last key → in window"),
    ),
    (
        OutputMethod.CLIPBOARD_PASTE,
        (
            "to the output",
            "clipboard saved",
            "text set + confirmed",
            "settle",
            "paste chord sent",
            "chord → in window",
            "in window → returned",
        ),
    ),
)

#: pytest-xvfb's defaults, so the screen is the one the X11 tests run on.
SCREEN = (800, 600)
COLOR_DEPTH = 16


@dataclass
class Cell:
    """The runs of one (text, method)."""

    kind: str
    text: str
    method: OutputMethod
    visible_ms: list[float] = field(default_factory=list)
    returned_ms: list[float] = field(default_factory=list)
    used: set[OutputMethod] = field(default_factory=set)
    failures: int = 0
    example_failure: str | None = None
    #: phase name → ms per timed run (see PHASES)
    phases: dict[str, list[float]] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return len(self.visible_ms) + self.failures


#: Where the time goes, as (name, from mark, to mark): marks are "call", "seen" (exact text
#: in the window), "returned", and "<step>>" / "<step><" for entering / leaving a step
#: of the typist (Marks.wrap).
PHASES: tuple[tuple[str, str, str], ...] = (
    ("to the output", "call", "output>"),
    ("clipboard saved", "snapshot>", "snapshot<"),
    ("text set + confirmed", "set>", "confirm<"),
    ("settle", "confirm<", "chord>"),
    ("keys sent", "keys>", "keys<"),
    ("paste chord sent", "chord>", "chord<"),
    ("last key → in window", "keys<", "seen"),
    ("chord → in window", "chord<", "seen"),
    ("in window → returned", "seen", "returned"),
)


class Marks:
    """Timestamps (``time.perf_counter()``) of one run's steps, taken by wrapping the
    methods of the typist's parts on their instances: the parts run as built, and each
    wrapper adds well under a microsecond."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def wrap(self, obj: object, method: str, step: str) -> None:
        inner = getattr(obj, method)

        def timed(*args: object, **kwargs: object) -> object:
            self.at.setdefault(step + ">", time.perf_counter())
            try:
                return inner(*args, **kwargs)
            finally:
                self.at[step + "<"] = time.perf_counter()

        setattr(obj, method, timed)

    def phases(self) -> dict[str, float]:
        """ms per phase whose two marks were taken in this run."""
        return {
            name: (self.at[end] - self.at[begin]) * 1000
            for name, begin, end in PHASES
            if begin in self.at and end in self.at
        }


class WindowWatch:
    """Asks the target window for its text, from a thread, until it equals ``expected``.

    ``seen_at`` is the ``time.perf_counter()`` at which the exact text came back (an upper
    bound on when it arrived: one round trip plus at most one pause late). The watch
    gives up once :meth:`give_up_at` has set a deadline and it has passed.
    """

    def __init__(self, target: TargetWindow, expected: str, poll_s: float) -> None:
        self.target = target
        self.expected = expected
        self.poll_s = poll_s
        self.seen_at: float | None = None
        self.last = ""
        self._deadline: float | None = None
        self._pause = threading.Event()  # never set: a pause between polls that yields
        self._thread = threading.Thread(target=self._run, daemon=True, name="window-watch")

    def start(self) -> None:
        self._thread.start()

    def give_up_at(self, deadline: float) -> None:
        self._deadline = deadline

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise RuntimeError("the target window stopped answering")

    def _run(self) -> None:
        while True:
            text = self.target.text()
            now = time.perf_counter()
            self.last = text
            if text == self.expected:
                self.seen_at = now
                return
            if self._deadline is not None and now >= self._deadline:
                return
            self._pause.wait(self.poll_s)


class Bench:
    """The typists (one per method, as the app builds them for each setting) and the
    target window."""

    def __init__(self, target: TargetWindow, poll_s: float, wait_s: float) -> None:
        from desktop.output.base import InjectionGuard
        from desktop.output.typist import build_default_typist
        from desktop.parts import output_policy
        from desktop.settings import Settings

        self.target = target
        self.poll_s = poll_s
        self.wait_s = wait_s
        # built as the tray app's AppTypist builds it for each setting
        self.typists = {
            m: build_default_typist(
                output_policy(Settings(output_method=m)), guard=InjectionGuard(), own_window_ids=[]
            )
            for m in METHODS
        }
        self.marks = Marks()
        for typist in self.typists.values():
            outputs = typist.outputs
            for output in outputs.values():
                self.marks.wrap(output, "type_text", "output")
            paste = outputs[OutputMethod.CLIPBOARD_PASTE]
            keys = outputs[OutputMethod.KEYSTROKES]
            assert isinstance(paste, ClipboardPasteOutput) and isinstance(keys, KeystrokeOutput)
            assert keys.sender is paste.sender
            self.marks.wrap(paste.clipboard, "snapshot", "snapshot")
            self.marks.wrap(paste.clipboard, "set_text", "set")
            self.marks.wrap(paste.clipboard, "confirm_set", "confirm")
            self.marks.wrap(paste.sender, "tap_chord", "chord")
            self.marks.wrap(paste.sender, "type", "keys")  # the keystroke output's sender

    def measure(self, cell: Cell, record: bool = True) -> None:
        """One run: a fresh field and a user clipboard owned by another process, then
        the final handed to the typist."""
        from PySide6.QtWidgets import QApplication

        expected = sanitize(cell.text).text
        assert expected == cell.text, "bench texts must pass the text sink unchanged"
        typist = self.typists[cell.method]
        # each run is the first utterance into this field: no joining space before it
        typist.reset_spacing()
        # the clipboard as the user left it: three formats, owned by another application
        assert self.target.command("setclip") == "OK"
        self.target.reset()
        QApplication.processEvents()  # losing the clipboard's ownership is handled here
        watch = WindowWatch(self.target, expected, self.poll_s)
        watch.start()
        self.marks.at.clear()
        started = self.marks.at["call"] = time.perf_counter()
        result = typist.type_final(cell.text)
        returned = self.marks.at["returned"] = time.perf_counter()
        watch.give_up_at(returned + self.wait_s)
        watch.join(self.wait_s + 10)
        if not record:
            return
        if watch.seen_at is None or not result.ok:
            cell.failures += 1
            if cell.example_failure is None:
                cell.example_failure = watch.last if result.ok else f"error: {result.error}"
            return
        assert result.method is not None
        cell.used.add(result.method)
        cell.visible_ms.append((watch.seen_at - started) * 1000)
        cell.returned_ms.append((returned - started) * 1000)
        self.marks.at["seen"] = watch.seen_at
        for name, ms in self.marks.phases().items():
            cell.phases.setdefault(name, []).append(ms)

    def run(self, reps: int) -> list[Cell]:
        cells = [Cell(kind, text, m) for kind, text in TEXTS for m in METHODS]
        for cell in cells:  # warm-up: pynput's controller, Qt's clipboard, first paint
            self.measure(cell, record=False)
        for rep in range(reps):
            for cell in cells:
                self.measure(cell)
            log.info("repetition %d/%d done", rep + 1, reps)
        return cells


@contextmanager
def virtual_screen() -> Iterator[str]:
    """A fresh Xvfb display with openbox, made this process's ``DISPLAY`` (whatever it
    was: keys injected here must never reach a real desktop)."""
    from pyvirtualdisplay.display import Display

    os.environ["QT_QPA_PLATFORM"] = "xcb"
    for attempt in range(1, 4):
        display = Display(backend="xvfb", size=SCREEN, color_depth=COLOR_DEPTH)
        display.start()
        try:
            with ExitStack() as stack:
                try:
                    stack.enter_context(window_manager())
                except RuntimeError as exc:
                    # seen while another session's Xvfb and openbox ran: openbox quit at
                    # once, silently; on a fresh screen it started
                    if attempt == 3:
                        raise
                    log.warning("%s (attempt %d); a new screen", exc, attempt)
                    continue
                yield os.environ["DISPLAY"]
                return
        finally:
            display.stop()


def spare_keycodes() -> int:
    """Keycodes with no keysym at all in the screen's keyboard map now: those the
    keystroke sender may map characters the map lacks to."""
    from Xlib import display as xdisplay  # type: ignore[import-untyped,unused-ignore]

    d = xdisplay.Display()
    try:
        first, last = d.display.info.min_keycode, d.display.info.max_keycode
        return sum(not any(row) for row in d.get_keyboard_mapping(first, last - first + 1))
    finally:
        d.close()


def keymapped_chars(spare: int) -> list[str]:
    """What the keystroke rows of CJK text cost, in words."""

    def missing(text: str) -> set[str]:
        return {c for c in text if (char_keysym(c) or 0) > 0xFF}

    every = set().union(*(missing(text) for _, text in TEXTS))
    each = ", ".join(f"{kind} {len(missing(text))}" for kind, text in TEXTS if missing(text))
    gap_ms = shared_borrower().remap_gap_s * 1000
    return [
        "",
        "Keystrokes type a character the keyboard map lacks with XTest on a spare keycode "
        "mapped to it alone (`X11KeyBorrower`, desktop/output/keystrokes.py); every X "
        f"client reloads its keymap for each new mapping. Xvfb's map has {spare} spare "
        f"keycodes and the texts here {len(every)} distinct such characters ({each}), so "
        "most characters are mapped anew in every run: the most a text can cost (a "
        "character typed again while its keycode still holds it needs no mapping). A "
        f"keycode is mapped again no sooner than {gap_ms:g} ms after its last mapping: a "
        "text with more such characters than there are spare keycodes waits for that.",
    ]


def fmt(values: Sequence[float]) -> str:
    if not values:
        return "— | —"
    return f"{statistics.median(values):.0f} | {percentile(list(values), 0.95):.0f}"


def ratio(a: Sequence[float], b: Sequence[float], q: float | None) -> str:
    """a ÷ b at the median (q None) or a percentile; — when either side has no run."""
    if not a or not b:
        return "—"
    if q is None:
        return f"{statistics.median(a) / statistics.median(b):.2f}"
    return f"{percentile(list(a), q) / percentile(list(b), q):.2f}"


def shown(text: str, limit: int = 60) -> str:
    out = json.dumps(text, ensure_ascii=False)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def summary(by: dict[tuple[str, OutputMethod], Cell]) -> list[str]:
    """The trade-off in a sentence, from the longest text both methods typed exactly."""
    both = [
        (len(text), by[(kind, OutputMethod.KEYSTROKES)], by[(kind, OutputMethod.CLIPBOARD_PASTE)])
        for kind, text in TEXTS
        if by[(kind, OutputMethod.KEYSTROKES)].phases.get("keys sent")
        and by[(kind, OutputMethod.CLIPBOARD_PASTE)].visible_ms
    ]
    if not both:
        return []
    chars, keys, paste = max(both, key=lambda b: b[0])
    per_char = statistics.median(keys.phases["keys sent"]) / chars
    paste_ms = statistics.median(paste.visible_ms)
    settle = statistics.median(paste.phases.get("settle") or [math.nan])
    saved = statistics.median(paste.phases.get("clipboard saved") or [math.nan])
    threshold = OutputPolicy().max_keystroke_chars
    return [
        "",
        f"Keystrokes cost {per_char:.2f} ms per character ({keys.kind}, keys sent ÷ "
        f"characters); paste costs {paste_ms:.0f} ms whatever the length, {settle:.0f} ms of "
        f"it the settle pause and {saved:.0f} ms saving the user's clipboard. They break "
        f"even near {paste_ms / per_char:.0f} characters; auto types ASCII text of up to "
        f"{threshold} characters as keystrokes (`max_keystroke_chars`), about "
        f"{threshold * per_char:.0f} ms at {threshold}.",
    ]


def render(cells: list[Cell], reps: int, args: argparse.Namespace, spare: int) -> str:
    niceness = os.nice(0)
    lines = [
        f"Machine: {machine_description()}, shared with other work during the run "
        f"(run at nice {niceness}). Xvfb {SCREEN[0]}×{SCREEN[1]}×{COLOR_DEPTH} with "
        "openbox; the target is a Qt QLineEdit in another process "
        "(tests/output/target_window.py). The typist is the tray app's "
        "(`build_default_typist`, built as the app's `AppTypist` builds it, output method "
        "set as in Settings), called with "
        "`type_final` on the Qt main thread of this process.",
        "",
        f"Per cell {reps} runs after one warm-up run, the cells interleaved. Before each "
        "run the field is emptied and focused, and the clipboard holds three formats "
        "(text, HTML, a binary type) owned by the target process, as when the user copied "
        "something in another application. **Final → in window**: `type_final` called → "
        "the target's text equals the final exactly, polled every "
        f"{args.poll_ms:g} ms over its stdin/stdout (the figure is late by up to one poll "
        "and one round trip, ~1–2 ms). **Typist busy**: `type_final` called → returned "
        "(for paste: the clipboard restored): the call blocks that long (paste runs a "
        "local Qt event loop meanwhile) and a next final waits behind it. A run whose "
        "text is not exact within "
        f"{args.wait_s:g} s of the typist returning counts as not exact and is not timed. "
        "Times in ms, p50 | p95.",
        "",
        "| text | chars | method | typed by | exact | final → in window p50 | p95 "
        "| typist busy p50 | p95 |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        used = ", ".join(sorted(m.value for m in c.used)) or "—"
        lines.append(
            f"| {c.kind} | {len(c.text)} | {c.method.value} | {used} "
            f"| {len(c.visible_ms)}/{c.runs} | {fmt(c.visible_ms)} | {fmt(c.returned_ms)} |"
        )
    by = {(c.kind, c.method): c for c in cells}
    lines += [
        "",
        "Clipboard paste against keystrokes, side by side in this run (paste ÷ keystrokes, "
        "final → in window; < 1: paste is faster; — where keystrokes never typed the text "
        "exactly):",
        "",
        "| text | chars | p50 ratio | p95 ratio | auto types it by |",
        "|---|---:|---:|---:|---|",
    ]
    for kind, text in TEXTS:
        keys = by[(kind, OutputMethod.KEYSTROKES)].visible_ms
        paste = by[(kind, OutputMethod.CLIPBOARD_PASTE)].visible_ms
        auto = ", ".join(sorted(m.value for m in by[(kind, OutputMethod.AUTO)].used)) or "—"
        lines.append(
            f"| {kind} | {len(text)} | {ratio(paste, keys, None)} "
            f"| {ratio(paste, keys, 0.95)} | {auto} |"
        )
    lines += [
        "",
        "Where the time goes, p50 in ms of each step (the medians of the steps need "
        "not add up to the median of the whole):",
        "",
    ]
    for method, steps in STEP_TABLES:
        lines += [
            f"| {method.value}: text | " + " | ".join(steps) + " |",
            "|---|" + "---:|" * len(steps),
        ]
        for kind, _ in TEXTS:
            phases = by[(kind, method)].phases
            row = [f"{statistics.median(phases[s]):.1f}" if phases.get(s) else "—" for s in steps]
            lines.append(f"| {kind} | " + " | ".join(row) + " |")
        lines.append("")
    lines += [
        "To the output: `type_final` called → the output starts (text sink, focus probe, "
        "policy, the wait for held modifiers). Settle: the output's pause between taking "
        "the clipboard and pressing the chord (`settle_s`). In window → returned, for "
        "paste: the typist waits for the target's read of the clipboard plus a grace "
        "period (`QtClipboard.read_grace_s`), then restores the user's clipboard. Steps "
        "are timed by wrapping the parts' methods on their instances.",
    ]
    lines += summary(by)
    lines += keymapped_chars(spare)
    failed = [c for c in cells if c.failures]
    if failed:
        lines += ["", "What arrived instead, first failed run of each cell:", ""]
        for c in failed:
            lines.append(
                f"- {c.kind}, {c.method.value}: {shown(c.example_failure or '')} "
                f"(expected {shown(c.text)})"
            )
        if any(c.method is OutputMethod.KEYSTROKES and needs_clipboard(c.text) for c in failed):
            lines += [
                "",
                "A character the keyboard map lacks comes out as another when the target "
                "reads its key by a mapping other than the one it was typed with "
                "(desktop/output/keystrokes.py, `X11KeyBorrower`).",
            ]
    lines += [
        "",
        "Not measured here: Windows (SendInput keystrokes, the Win32 clipboard on its own "
        "thread; no Windows machine here); the hop from the client thread, where the final "
        "arrives, to the Qt thread that calls the typist (the bench calls `type_final` "
        "directly); the wait for held modifier keys (none is held here, so it returns at "
        'once); the screen itself (Xvfb has no compositor: "in window" means the '
        "QLineEdit holds the text, its repaint is not timed); other targets (terminals, "
        "Electron apps, whose paste chords and read timeouts differ).",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=20, help="runs per text and method")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 runs per cell, nothing written"
    )
    parser.add_argument("--poll-ms", type=float, default=1.0, help="pause between polls")
    parser.add_argument(
        "--wait-s", type=float, default=3.0, help="wait for the exact text after typing"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    reps = 2 if args.quick else args.reps
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("desktop").setLevel(logging.WARNING)

    with virtual_screen():
        from PySide6.QtWidgets import QApplication

        spare = spare_keycodes()
        target = TargetWindow()
        try:
            app = QApplication([sys.argv[0]])
            bench = Bench(target, args.poll_ms / 1000, args.wait_s)
            cells = bench.run(reps)
            app.processEvents()
            # the keystroke runs changed the keyboard map hundreds of times: the window
            # manager must be through them, or it does not stop in time at the end
            window_manager_caught_up()
            # pynput's controllers close their X connections when collected: while the
            # screen is still there
            del bench
            gc.collect()
        finally:
            target.close()

    body = render(cells, reps, args, spare)
    print(body)
    if not (args.no_write or args.quick):
        command = "python tests/bench/bench_typing.py"
        if sys.argv[1:]:
            command = " ".join(["python", *sys.argv])
        write_section(TITLE, command, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
