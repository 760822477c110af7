"""What the tray shows for a combination of states (pure): which icon, which tooltip,
and how any text becomes fit for the tray (:func:`tray_text`, and for a notification
:func:`notification_text`)."""

from __future__ import annotations

import html
from dataclasses import dataclass

from desktop.dictation import Stage
from desktop.launcher import LauncherState
from desktop.output.text_sink import sanitize
from protocol.client_events import ClientState

#: Caps in characters, those of the Windows shell (NOTIFYICONDATAW: szTip[128],
#: szInfoTitle[64], szInfo[256], each with its terminating NUL); longer text is cut there
#: by the shell anyway, so cut it ourselves with a visible ellipsis.
TOOLTIP_MAX_CHARS = 127
TITLE_MAX_CHARS = 63
MESSAGE_MAX_CHARS = 255

#: Read at most this many characters per character shown: a 100 KB status message is
#: not walked whole on every tray refresh (what lies beyond could not be shown anyway,
#: unless nearly all of it were characters the sink removes).
_READ_FACTOR = 4

ELLIPSIS = "\u2026"


def as_plain_tooltip(text: str) -> str:
    """``text`` for a tooltip that Qt may read as markup (X11 and StatusNotifier trays:
    text with a tag such as ``<img>`` or an entity in it is shown as rich text): markup
    characters escaped inside a paragraph, so it shows as the text it is. Text without
    ``<`` or ``&`` is returned as it is."""
    if "<" not in text and "&" not in text:
        return text
    return "<p>" + html.escape(text, quote=False) + "</p>"


def tray_text(text: str, max_chars: int) -> str:
    """``text`` as the tray may show it: what the text sink lets through (no controls,
    line breaks as spaces, no bidi overrides or invisible characters), at most
    ``max_chars`` characters, an ellipsis marking a cut. Server text (status and error
    messages, the server's name, failure reasons) reaches the tooltip and notifications
    only through here."""
    read = text[: max_chars * _READ_FACTOR]
    shown = sanitize(read, max_chars=None).text.strip()
    if len(shown) > max_chars or len(read) < len(text):
        if len(shown) >= max_chars:
            shown = shown[: max_chars - 1].rstrip()
        shown += ELLIPSIS
    return shown


def notification_text(text: str, max_chars: int, markup: bool) -> str:
    """A notification's title or message: :func:`tray_text`, and where the platform reads
    it as markup (``markup``) ``&``, ``<`` and ``>`` escaped, so a server's ``<b>`` or
    ``<img src=…>`` shows as the characters it is. Every notification passes here."""
    shown = tray_text(text, max_chars)
    # quote=False: quotes mean nothing in element text, and a daemon that strips markup
    # without reading entities would show every apostrophe as &#x27;
    return html.escape(shown, quote=False) if markup else shown


@dataclass(frozen=True)
class Look:
    key: str  # offline | connecting | ready | listening | speaking | finalizing (the icon)
    tooltip: str


def tray_look(
    server: ClientState, stage: Stage, launcher: LauncherState | None = None, detail: str = ""
) -> Look:
    """The tray's icon and tooltip. The server's state wins until it is ready."""

    def look(key: str, text: str) -> Look:
        return Look(key, f"tingxie — {text}")

    if server in (ClientState.CONNECTING, ClientState.MODEL_LOADING) or launcher in (
        LauncherState.STARTING,
        LauncherState.LOADING,
    ):
        what = detail or ("loading the model" if server is ClientState.MODEL_LOADING else "")
        return look("connecting", f"connecting {what}".strip())
    # The server closed our idle link: nothing is wrong, the next utterance connects.
    calm = server is ClientState.IDLE_DISCONNECTED
    if server is not ClientState.READY and not calm:
        reasons = {
            ClientState.AUTH_FAILED: "server refused the token",
            ClientState.VERSION_MISMATCH: "server speaks another protocol version",
            ClientState.CLOSED: "stopped",
        }
        return look("offline", f"server offline: {reasons.get(server, detail or 'unreachable')}")
    if stage is Stage.SPEAKING:
        return look("speaking", "hearing you")
    if stage in (Stage.FINALIZING, Stage.TYPING):
        return look("finalizing", "finishing the sentence")
    if stage is Stage.LISTENING:
        return look("listening", "listening")
    if calm:
        return look("ready", "ready — connects when you speak")
    return look("ready", "ready (click to dictate, or hold the talk key)")
