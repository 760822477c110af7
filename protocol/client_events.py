"""The client's vocabulary: connection state, model state, what happens to an utterance,
and what the server's error codes mean for it.

Defined once here (no Qt, no asyncio) for the client machine
(:mod:`protocol.client_machine`), its drivers (the tray's client thread, ``tingxie-cli``,
live mode) and the dictation core that consumes the events.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.client_timeline import UtteranceTimeline
from protocol.messages import CloseCode, ErrorCode, Timings

__all__ = [
    "ERROR_OUTCOMES",
    "ClientEvent",
    "ClientState",
    "CloseCode",
    "ErrorOutcome",
    "FailReason",
    "FinalText",
    "ModelState",
    "PartialText",
    "StateChanged",
    "UtteranceCancelled",
    "UtteranceFailed",
]


class ClientState(enum.Enum):
    """The link to the server, as the tray shows it."""

    CONNECTING = "connecting"
    READY = "ready"  # connected, model ready
    MODEL_LOADING = "model_loading"  # connected; the model is loading (or failed: see detail)
    UNREACHABLE = "unreachable"  # retrying with backoff
    AUTH_FAILED = "auth_failed"  # token refused; retrying slowly
    VERSION_MISMATCH = "version_mismatch"  # retried slowly until reconfigured
    CLOSED = "closed"
    #: No link, on purpose: the server closed an idle link (idle timeout, or displaced
    #: at its connection limit). Nothing is wrong; the next utterance connects (the
    #: state stays calm while that link opens, so the tray shows the user speaking).
    IDLE_DISCONNECTED = "idle_disconnected"


class ModelState(enum.Enum):
    """The server's model, from ``ready`` and ``status``."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"

    @classmethod
    def parse(cls, value: str) -> ModelState:
        """A newer server's unknown state counts as not ready (it is retried, bounded)."""
        try:
            return cls(value)
        except ValueError:
            return cls.LOADING


class FailReason(enum.Enum):
    """Why an utterance ended without text; the message says it in words."""

    REFUSED = "refused"  # the server refused it (language, audio format, our message)
    ENGINE_ERROR = "engine_error"  # the model failed on it
    MODEL_UNAVAILABLE = "model_unavailable"  # model not ready after bounded retries / failed
    TIMED_OUT = "timed_out"  # no final before its deadline
    UNREACHABLE = "unreachable"  # its deadline passed with no server to send it to
    TOO_MANY_RETRIES = "too_many_retries"  # refused or lost again and again
    BACKLOG_FULL = "backlog_full"  # too much audio waiting for an unreachable server
    DISCONNECTED = "disconnected"  # the link went away and this driver does not replay
    STOPPED = "stopped"  # the client was closed with it unfinished


class ErrorOutcome(enum.Enum):
    """What the client does about a server ``error`` that names one of its utterances."""

    FAIL = "fail"  # the utterance ends: failed, with the server's message
    RETRY = "retry"  # send the utterance again on this link (bounded)
    WAIT_FOR_MODEL = "wait_for_model"  # again once the server says the model is ready (bounded)
    WAIT_FOR_SLOT = "wait_for_slot"  # again once an earlier utterance got its final (bounded)
    #: The server is closing the link: nothing new goes on it, the finals still due on it
    #: are awaited, then the utterance is sent again after reconnecting.
    REPLAY_ELSEWHERE = "replay_elsewhere"
    #: The server ended the utterance early and decodes what it got: its final covers
    #: the audio up to the cut (``timings.audio_ms``), the rest follows as a new part.
    FINISHED_EARLY = "finished_early"
    RECONNECT = "reconnect"  # client and server disagree about the link: start a new one
    IGNORE = "ignore"  # about nothing that is pending (logged)


#: The one table: every error code → what becomes of the utterance it names.
ERROR_OUTCOMES: dict[ErrorCode, ErrorOutcome] = {
    ErrorCode.BAD_MESSAGE: ErrorOutcome.FAIL,  # resending the same message cannot help
    ErrorCode.UNSUPPORTED_VERSION: ErrorOutcome.RECONNECT,  # the hello exchange decides
    ErrorCode.UNSUPPORTED_AUDIO: ErrorOutcome.FAIL,
    ErrorCode.UNSUPPORTED_LANGUAGE: ErrorOutcome.FAIL,
    ErrorCode.NO_UTTERANCE: ErrorOutcome.RETRY,  # the server lost it: its audio is still here
    ErrorCode.ALREADY_STARTED: ErrorOutcome.RECONNECT,
    ErrorCode.DUPLICATE_ID: ErrorOutcome.RETRY,  # every attempt gets a fresh id
    ErrorCode.FRAME_TOO_LARGE: ErrorOutcome.RETRY,  # with frames half as large
    ErrorCode.UTTERANCE_TOO_LONG: ErrorOutcome.FINISHED_EARLY,  # the rest in shorter parts
    ErrorCode.TOO_MANY_SESSIONS: ErrorOutcome.WAIT_FOR_SLOT,
    ErrorCode.SERVER_BUSY: ErrorOutcome.FINISHED_EARLY,  # audio budget; fatal (no slot) names none
    ErrorCode.NOT_READY: ErrorOutcome.WAIT_FOR_MODEL,
    ErrorCode.ENGINE_ERROR: ErrorOutcome.FAIL,
    ErrorCode.SHUTTING_DOWN: ErrorOutcome.REPLAY_ELSEWHERE,
    ErrorCode.INTERNAL: ErrorOutcome.FAIL,
}


@dataclass(frozen=True)
class StateChanged:
    state: ClientState
    detail: str = ""


@dataclass(frozen=True)
class PartialText:
    utterance_id: int
    stable: str
    unstable: str


@dataclass(frozen=True)
class FinalText:
    """The utterance's text. ``stale``: it arrived so long after the speech (replayed
    after a reconnect) that it must not be typed into whatever has focus now: history
    only, with a notice."""

    utterance_id: int
    text: str
    language: str | None
    timeline: UtteranceTimeline
    stale: bool = False
    timings: Timings | None = None  # the server's, for its last segment


@dataclass(frozen=True)
class UtteranceFailed:
    utterance_id: int
    message: str  # for the user
    reason: FailReason = FailReason.REFUSED
    stop_sent: bool = False  # its last "stop" had been written when it failed


@dataclass(frozen=True)
class UtteranceCancelled:
    """The segmenter cancelled it; nothing follows."""

    utterance_id: int


ClientEvent = StateChanged | PartialText | FinalText | UtteranceFailed | UtteranceCancelled
