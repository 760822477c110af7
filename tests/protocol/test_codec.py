"""The wire contract: every message round-trips; bad input is refused with a code."""

from __future__ import annotations

import json

import pytest

from protocol import (
    Cancel,
    Error,
    ErrorCode,
    Final,
    Hello,
    Partial,
    ProtocolError,
    Ready,
    Start,
    Started,
    Status,
    Stop,
    Timings,
    decode_client,
    decode_server,
    encode_client,
    encode_server,
)
from protocol.limits import MAX_CONTEXT_CHARS, MAX_TEXT_FRAME_BYTES

CLIENT_MESSAGES = [
    Hello(),
    Hello(protocol=1, client="tingxie-cli/0.1"),
    Start(),
    Start(id="u-7", language="zh", context="通义千问, vLLM", sample_rate=16000),
    Stop(),
    Stop(id="u-7"),
    Cancel(),
    Cancel(id="abc"),
]

SERVER_MESSAGES = [
    Ready(
        server="tingxie/0.1.0",
        engine="fake",
        model="m",
        model_state="loading",
        capabilities=("hello", "cancel"),
        limits={"max_audio_frame_bytes": 32000, "max_utterance_seconds": 120.0},
    ),
    Status(model_state="ready"),
    Started(id="u1"),
    Status(model_state="failed", message="out of memory"),
    Partial(text="你好世界", id="u1", stable="你好", unstable="世界", seq=3, audio_ms=1500.0),
    Final(
        text="hello world",
        id="u1",
        language="English",
        timings=Timings(audio_ms=1000.0, queue_ms=1.5, engine_ms=20.0, total_ms=21.5),
    ),
    Final(text=""),
    Error(code=ErrorCode.NO_UTTERANCE, message="no open utterance", id="u2", fatal=False),
    Error(code=ErrorCode.SERVER_BUSY, message="busy", fatal=True),
]


@pytest.mark.parametrize("message", CLIENT_MESSAGES, ids=repr)
def test_client_messages_round_trip(message: object) -> None:
    assert decode_client(encode_client(message)) == message  # type: ignore[arg-type]


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=repr)
def test_server_messages_round_trip(message: object) -> None:
    assert decode_server(encode_server(message)) == message  # type: ignore[arg-type]


def test_original_protocol_messages_are_exactly_the_articles() -> None:
    assert json.loads(encode_client(Start())) == {"event": "start"}
    assert json.loads(encode_client(Stop())) == {"event": "stop"}
    assert decode_client('{"event": "start"}') == Start()
    assert decode_client('{"event":"stop"}') == Stop()
    # The article's client reads only "type" and "text".
    final = json.loads(encode_server(Final(text="好的", id="u1")))
    assert final["type"] == "final" and final["text"] == "好的"
    partial = json.loads(encode_server(Partial(text="ab", stable="a", unstable="b")))
    assert partial["type"] == "partial" and partial["text"] == "ab"
    assert decode_server('{"type": "final", "text": "x"}') == Final(text="x")


def test_cjk_text_is_sent_as_utf8_not_escapes() -> None:
    assert "你好" in encode_server(Final(text="你好"))


def test_unknown_server_type_is_skipped_not_an_error() -> None:
    assert decode_server('{"type": "something-new", "x": 1}') is None


def test_started_names_the_accepted_utterance() -> None:
    assert json.loads(encode_server(Started(id="u1"))) == {"type": "started", "id": "u1"}
    assert decode_server('{"type": "started", "id": "a", "later": 1}') == Started(id="a")
    with pytest.raises(ProtocolError):
        decode_server('{"type": "started", "id": 7}')


def test_unknown_error_code_from_newer_server_is_still_an_error() -> None:
    message = decode_server('{"type": "error", "code": "brand_new", "message": "m"}')
    assert isinstance(message, Error) and message.code is ErrorCode.INTERNAL


def test_unknown_fields_are_ignored() -> None:
    assert decode_client('{"event": "stop", "future_field": [1, 2]}') == Stop()


def test_blank_language_means_detect() -> None:
    assert decode_client('{"event": "start", "language": " "}').language is None
    assert decode_client('{"event": "start", "language": null}').language is None


BAD_CLIENT_FRAMES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('"start"', "expected a JSON object"),
    ("{}", '"event"'),
    ('{"event": 5}', '"event"'),
    ('{"event": "explode"}', "unknown event"),
    ('{"event": "start", "id": 7}', '"id" must be a string'),
    ('{"event": "start", "language": ["en"]}', '"language" must be a string'),
    ('{"event": "start", "sample_rate": "16000"}', '"sample_rate" must be an integer'),
    ('{"event": "start", "sample_rate": true}', '"sample_rate" must be an integer'),
    ('{"event": "hello", "protocol": 1.5}', '"protocol" must be an integer'),
    ('{"event": "start", "id": "' + "x" * 65 + '"}', "limit 64"),
    ('{"event": "start", "context": "' + "x" * (MAX_CONTEXT_CHARS + 1) + '"}', "limit"),
]


@pytest.mark.parametrize(("frame", "why"), BAD_CLIENT_FRAMES)
def test_bad_client_frames_raise_bad_message(frame: str, why: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client(frame)
    assert info.value.code is ErrorCode.BAD_MESSAGE
    assert why in info.value.message


def test_oversized_control_frame_is_frame_too_large() -> None:
    frame = json.dumps({"event": "start", "pad": "x" * MAX_TEXT_FRAME_BYTES})
    with pytest.raises(ProtocolError) as info:
        decode_client(frame)
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE


def test_invalid_utf8_bytes_are_bad_message() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client(b'{"event": "start", "id": "\xff"}')
    assert info.value.code is ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "final", "text": 3}',
        '{"type": "error", "code": "internal", "message": "m", "fatal": "yes"}',
        '{"type": "ready", "capabilities": "all"}',
        '{"type": "ready", "limits": {"a": "b"}}',
        '{"type": "final", "text": "x", "timings": [1]}',
    ],
)
def test_bad_server_frames_raise(frame: str) -> None:
    with pytest.raises(ProtocolError):
        decode_server(frame)
