"""The calm state on the tray (pure lane): ready, not offline, and it says why."""

from __future__ import annotations

from desktop.dictation import Stage
from desktop.ui.look import tray_look
from protocol.client_events import ClientState, CloseCode
from protocol.client_machine import ClientMachine


def test_the_calm_state_looks_ready_and_says_it_connects_when_you_speak() -> None:
    calm = tray_look(ClientState.IDLE_DISCONNECTED, Stage.IDLE)
    assert calm.key == "ready"
    assert "connects when you speak" in calm.tooltip
    assert calm != tray_look(ClientState.READY, Stage.IDLE)  # told apart from a live link
    assert tray_look(ClientState.UNREACHABLE, Stage.IDLE).key == "offline"


def test_speaking_while_calm_shows_the_stage() -> None:
    assert tray_look(ClientState.IDLE_DISCONNECTED, Stage.SPEAKING).key == "speaking"


def test_speaking_from_the_calm_state_shows_speaking_while_the_link_opens() -> None:
    """The machine's state while it connects for the user's speech, as the tray draws it
    with the core's stage: speaking, then finalizing, never "connecting"."""
    machine = ClientMachine("t")
    machine.link_down("idle", 0.0, int(CloseCode.IDLE_TIMEOUT))
    machine.utterance_started(1, 1.0)
    machine.connecting(1.0)
    assert tray_look(machine.state, Stage.SPEAKING).key == "speaking"
    machine.utterance_ended(1, 2.0)
    assert tray_look(machine.state, Stage.FINALIZING).key == "finalizing"
