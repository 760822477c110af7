"""What the tray shows for a combination of states (pure): which icon, which tooltip."""

from __future__ import annotations

from dataclasses import dataclass

from desktop.dictation import Stage
from desktop.launcher import LauncherState
from protocol.client_events import ClientState


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
    if server is not ClientState.READY:
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
    return look("ready", "ready (click to dictate, or hold the talk key)")
