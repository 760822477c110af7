"""Symmetric limits: whatever the server encodes, a conforming client accepts (pure)."""

from __future__ import annotations

import json

import pytest

from protocol.codec import TRUNCATION_MARKER, decode_server, encode_server
from protocol.limits import MAX_SERVER_MESSAGE_BYTES
from protocol.messages import Error, ErrorCode, Final, Partial, Ready, ServerMessage, Status


def wire_bytes(frame: str) -> int:
    return len(frame.encode("utf-8"))


@pytest.mark.parametrize(
    ("unit", "count"),
    [
        ("好", MAX_SERVER_MESSAGE_BYTES // 3 + 10),  # 3 bytes a character in UTF-8
        ("a", MAX_SERVER_MESSAGE_BYTES + 1),
        ("\x01", MAX_SERVER_MESSAGE_BYTES // 6 + 1),  # JSON escapes it to 6 bytes
        ("😀", MAX_SERVER_MESSAGE_BYTES // 4),  # 4 bytes, just over with the envelope
    ],
)
def test_a_final_too_long_for_a_client_is_cut_with_a_marker(unit: str, count: int) -> None:
    text = unit * count
    frame = encode_server(Final(text=text, id="u1", language="zh"))
    assert wire_bytes(frame) <= MAX_SERVER_MESSAGE_BYTES
    decoded = decode_server(frame)
    assert isinstance(decoded, Final)
    assert decoded.id == "u1" and decoded.language == "zh"
    assert decoded.text.endswith(TRUNCATION_MARKER)
    kept = decoded.text[: -len(TRUNCATION_MARKER)]
    assert text.startswith(kept)
    assert wire_bytes(frame) > MAX_SERVER_MESSAGE_BYTES * 0.9  # cut, not emptied


def test_a_final_that_fits_is_sent_unchanged() -> None:
    text = "好" * (MAX_SERVER_MESSAGE_BYTES // 3 - 100)
    frame = encode_server(Final(text=text, id="u1"))
    assert json.loads(frame)["text"] == text
    assert TRUNCATION_MARKER not in frame


def test_a_huge_partial_fits_and_keeps_its_parts_in_order() -> None:
    stable, unstable = "s" * 700_000, "u" * 700_000
    frame = encode_server(
        Partial(text=stable + unstable, id="u1", stable=stable, unstable=unstable)
    )
    assert wire_bytes(frame) <= MAX_SERVER_MESSAGE_BYTES
    decoded = decode_server(frame)
    assert isinstance(decoded, Partial)
    for part, full in ((decoded.stable, stable), (decoded.unstable, unstable)):
        assert full.startswith(part.removesuffix(TRUNCATION_MARKER))


@pytest.mark.parametrize(
    "message",
    [
        Error(code=ErrorCode.ENGINE_ERROR, message="x\n" * 10_000, id="u1"),
        Status(model_state="failed", message="E" * 50_000),
        Ready(
            protocol=1,
            server="s" * 1000,
            engine="e" * 1000,
            model="/models/" + "m" * 5000,
            model_state="ready",
            capabilities=("hello",),
            limits={"max_connections": 1},
        ),
        Final(text="ok", id="i" * 500, language="l" * 100),
    ],
)
def test_short_fields_are_cut_to_what_the_client_decoder_accepts(message: ServerMessage) -> None:
    frame = encode_server(message)
    decoded = decode_server(frame)  # raises ProtocolError if any field is over its limit
    assert decoded is not None and type(decoded) is type(message)


def test_long_error_messages_say_they_were_cut() -> None:
    frame = encode_server(Error(code=ErrorCode.ENGINE_ERROR, message="y" * 9000))
    decoded = decode_server(frame)
    assert isinstance(decoded, Error)
    assert decoded.message.endswith(TRUNCATION_MARKER) and decoded.message.startswith("yyy")
