"""Property tests of everything that parses input from outside.

- protocol/ decoders (client and server frames): on any input they return a message
  (or ``None`` for an unknown server type) or raise :class:`ProtocolError` with a code
  that docs/protocol.md lists for frames; valid messages round-trip; mutated valid
  frames decode to a message that re-encodes stably, or are refused with a code.
- the server's audio frame parsing (AudioBuffer): any cut of a PCM stream into frames,
  empty and odd-sized ones included, gives exactly the samples of the whole stream.
- the server's environment configuration and the launcher's parsing of ``wsl.exe``
  output: a clear error or a value, never a crash.

Every property counts its inputs (tests/hardening/conftest.py prints the tally).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from protocol.limits import (
    HARD_MAX_FRAME_BYTES,
    MAX_CONTEXT_CHARS,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_SERVER_MESSAGE_BYTES,
    MAX_TEXT_FRAME_BYTES,
)
from server.audio_buffer import AudioBuffer
from server.config import ENV_PREFIX, OPTIONS, ConfigError, parse_config
from tests.hardening.conftest import tried

#: The only codes a decoder may give: everything else is about state, not the frame.
FRAME_CODES = {ErrorCode.BAD_MESSAGE, ErrorCode.FRAME_TOO_LARGE}
CLIENT_TYPES = (Hello, Start, Stop, Cancel)
SERVER_TYPES = (Ready, Status, Started, Partial, Final, Error)


def frame_limit(decode: Any) -> int:
    """Clients send small control frames; servers may send long finals."""
    return MAX_TEXT_FRAME_BYTES if decode is decode_client else MAX_SERVER_MESSAGE_BYTES


# ---------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
CLIENT_FIELDS = ["event", "id", "language", "context", "sample_rate", "protocol", "client"]
SERVER_FIELDS = [
    "type", "text", "id", "stable", "unstable", "seq", "audio_ms", "language", "timings",
    "code", "message", "fatal", "protocol", "server", "engine", "model", "model_state",
    "capabilities", "limits",
]  # fmt: skip
EVENTS = ["start", "stop", "cancel", "hello"]
TYPES = ["partial", "final", "error", "ready", "status", "started"]


@st.composite
def near_valid_objects(draw: st.DrawFn, key: str, kinds: list[str], fields: list[str]) -> str:
    """A JSON object with the right key, a known or random kind, and fields of any type."""
    obj: dict[str, Any] = {key: draw(st.sampled_from(kinds) | json_values)}
    for name in draw(st.lists(st.sampled_from(fields), max_size=6, unique=True)):
        obj[name] = draw(json_values | st.text(max_size=80))
    return json.dumps(obj, ensure_ascii=draw(st.booleans()))


short = st.text(max_size=40)
ids = st.text(max_size=MAX_ID_CHARS)
languages = st.none() | st.text(min_size=1, max_size=32).filter(lambda s: s.strip() == s != "")
tenths = st.integers(-(10**9), 10**9).map(lambda n: n / 10)  # what encoders round to

client_messages = st.one_of(
    st.builds(Hello, protocol=st.integers(), client=st.text(max_size=200)),
    st.builds(
        Start,
        id=ids,
        language=languages,
        context=st.text(max_size=MAX_CONTEXT_CHARS // 4),
        sample_rate=st.integers(),
    ),
    st.builds(Stop, id=ids),
    st.builds(Cancel, id=ids),
)
server_messages = st.one_of(
    st.builds(
        Ready,
        protocol=st.integers(),
        server=short,
        engine=short,
        model=short,
        model_state=st.text(max_size=32),
        capabilities=st.lists(short, max_size=8).map(tuple),
        limits=st.dictionaries(
            short, st.integers() | st.floats(allow_nan=False, allow_infinity=False), max_size=5
        ),
    ),
    st.builds(Status, model_state=st.text(max_size=32), message=st.text(max_size=200)),
    st.builds(Started, id=ids),
    st.builds(
        Partial,
        text=st.text(max_size=200),
        id=ids,
        stable=st.text(max_size=100),
        unstable=st.text(max_size=100),
        seq=st.integers(),
        audio_ms=tenths,
    ),
    st.builds(
        Final,
        text=st.text(max_size=200),
        id=ids,
        language=st.none() | st.text(min_size=1, max_size=32),
        timings=st.none() | st.builds(Timings, tenths, tenths, tenths, tenths),
    ),
    st.builds(
        Error,
        code=st.sampled_from(ErrorCode),
        message=st.text(max_size=200),
        id=ids,
        fatal=st.booleans(),
    ),
)


@st.composite
def mutated(draw: st.DrawFn, frame: bytes) -> bytes:
    """``frame`` after 1–5 random edits: flips, deletions, insertions, duplications, cuts."""
    data = bytearray(frame)
    for _ in range(draw(st.integers(1, 5))):
        edit = draw(st.sampled_from(["flip", "delete", "insert", "duplicate", "truncate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif edit == "insert":
            piece = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b'"', b"{", b"\\"]))
            data[at:at] = piece
        elif edit == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


# ---------------------------------------------------------------- checks


def decode_or_code(decode: Any, frame: str | bytes) -> Any:
    """The decoded message, or the ProtocolError's code; anything else raised fails."""
    try:
        return decode(frame)
    except ProtocolError as exc:
        assert exc.code in FRAME_CODES, exc.code
        assert exc.message
        return exc.code


def check_client_result(result: object) -> None:
    if isinstance(result, ErrorCode):
        return
    assert isinstance(result, CLIENT_TYPES), result
    if isinstance(result, (Start, Stop, Cancel)):
        assert len(result.id) <= MAX_ID_CHARS
    if isinstance(result, Start):
        assert len(result.context) <= MAX_CONTEXT_CHARS
        assert result.language is None or result.language.strip() == result.language != ""
    # Whatever decodes is a message the encoder reproduces exactly.
    assert decode_client(encode_client(result)) == result


def check_server_result(result: object) -> None:
    if isinstance(result, ErrorCode) or result is None:
        return
    assert isinstance(result, SERVER_TYPES), result
    # Encoding normalises once (numbers to 0.1 ms); after that it is a fixpoint.
    once = decode_server(encode_server(result))
    assert once is not None
    assert decode_server(encode_server(once)) == once


# ---------------------------------------------------------------- client frames


@given(st.text() | st.binary())
def test_decode_client_on_anything(frame: str | bytes) -> None:
    tried("decode_client: arbitrary text and bytes")
    check_client_result(decode_or_code(decode_client, frame))


@given(json_values.map(json.dumps))
def test_decode_client_on_any_json(frame: str) -> None:
    tried("decode_client: arbitrary JSON")
    check_client_result(decode_or_code(decode_client, frame))


@given(near_valid_objects("event", EVENTS, CLIENT_FIELDS))
def test_decode_client_on_near_valid_objects(frame: str) -> None:
    tried("decode_client: near-valid objects")
    check_client_result(decode_or_code(decode_client, frame))


@given(client_messages)
def test_client_messages_round_trip(message: Any) -> None:
    tried("client messages: round trip")
    assert decode_client(encode_client(message)) == message


@given(client_messages.flatmap(lambda m: mutated(encode_client(m).encode())))
def test_mutated_client_frames(frame: bytes) -> None:
    tried("decode_client: mutated valid frames")
    check_client_result(decode_or_code(decode_client, frame))
    # The server receives text frames as str (websockets checks UTF-8 first).
    text = frame.decode("utf-8", "replace")
    check_client_result(decode_or_code(decode_client, text))


# ---------------------------------------------------------------- server frames


@given(st.text() | st.binary())
def test_decode_server_on_anything(frame: str | bytes) -> None:
    tried("decode_server: arbitrary text and bytes")
    check_server_result(decode_or_code(decode_server, frame))


@given(near_valid_objects("type", TYPES, SERVER_FIELDS))
def test_decode_server_on_near_valid_objects(frame: str) -> None:
    tried("decode_server: near-valid objects")
    check_server_result(decode_or_code(decode_server, frame))


@given(server_messages)
def test_server_messages_round_trip(message: Any) -> None:
    tried("server messages: round trip")
    assert decode_server(encode_server(message)) == message


@given(server_messages.flatmap(lambda m: mutated(encode_server(m).encode())))
def test_mutated_server_frames(frame: bytes) -> None:
    tried("decode_server: mutated valid frames")
    check_server_result(decode_or_code(decode_server, frame))


# ---------------------------------------------------------------- sizes and depth


@given(
    st.sampled_from([decode_client, decode_server]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60),
    st.integers(0, 2 * MAX_TEXT_FRAME_BYTES),
)
def test_frame_size_limit_counts_utf8_bytes(decode: Any, unit: str, repeat: int) -> None:
    tried("frame size limit")
    padding = (unit * (repeat // len(unit) + 1))[: max(0, repeat // len(unit.encode()))]
    frame = json.dumps({"event": "stop", "type": "status", "pad": padding}, ensure_ascii=False)
    result = decode_or_code(decode, frame)
    too_large = len(frame.encode()) > frame_limit(decode)
    assert (result == ErrorCode.FRAME_TOO_LARGE) == too_large, (len(frame.encode()), result)


@given(st.sampled_from([decode_client, decode_server]), st.integers(1, 8000), st.booleans())
def test_nesting_deeper_than_the_limit_is_a_bad_message(
    decode: Any, depth: int, arrays: bool
) -> None:
    tried("deeply nested JSON")
    opener, closer = ("[", "]") if arrays else ('{"a":', "}")
    frame = '{"event": "stop", "type": "status", "x": ' + opener * depth + "1" + closer * depth
    frame += "}"
    result = decode_or_code(decode, frame)
    if len(frame.encode()) > frame_limit(decode):
        assert result == ErrorCode.FRAME_TOO_LARGE
    elif 1 + depth > MAX_JSON_DEPTH:  # the message itself is the first level
        assert result == ErrorCode.BAD_MESSAGE
    else:
        assert isinstance(result, (Stop, Status))


BRACKETS = '[]{}"\\a'
#: Quotes and backslashes, then a run of brackets: escaped quotes must not end the string.
quote_then_brackets = st.builds(
    lambda quote, opener, n, tail: quote + opener * n + tail,
    st.sampled_from(['"', "\\", '\\"', '"\\', "a"]),
    st.sampled_from(["[", "{"]),
    st.integers(MAX_JSON_DEPTH - 2, 200),
    st.text(alphabet=BRACKETS, max_size=20),
)


@given(st.text(alphabet=BRACKETS, max_size=MAX_CONTEXT_CHARS) | quote_then_brackets)
def test_brackets_inside_strings_do_not_count_as_nesting(context: str) -> None:
    tried("brackets inside strings")
    assert decode_client(json.dumps({"event": "start", "context": context})) == Start(
        context=context
    )


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("audio_ms", "NaN"),
        ("audio_ms", "Infinity"),
        ("audio_ms", "-Infinity"),
        ("audio_ms", "1e999"),
        ("audio_ms", "9" * 400),  # a valid integer, but no float holds it
        ("seq", "NaN"),
        ("seq", "1e999"),
    ],
)
def test_numbers_json_cannot_carry_are_refused(field: str, literal: str) -> None:
    tried("non-finite numbers")
    frame = '{"type": "partial", "text": "", "' + field + '": ' + literal + "}"
    assert decode_or_code(decode_server, frame) == ErrorCode.BAD_MESSAGE


# ---------------------------------------------------------------- audio frames


@given(st.binary(max_size=20_000), st.lists(st.integers(0, 20_000), max_size=40))
def test_audio_frames_cut_anywhere_give_the_whole_streams_samples(
    pcm: bytes, cuts: list[int]
) -> None:
    tried("audio frame parsing")
    bounds = sorted({0, len(pcm), *(c for c in cuts if c <= len(pcm))})
    frames = [pcm[a:b] for a, b in itertools.pairwise(bounds)]
    frames.insert(len(frames) // 2, b"")  # empty frames are legal and change nothing
    buffer = AudioBuffer(initial_seconds=0.01)  # forces the buffer to grow
    for frame in frames:
        buffer.append(frame)
    whole = len(pcm) - len(pcm) % 2
    expected = np.frombuffer(pcm[:whole], dtype="<i2").astype(np.float32) / 32768.0
    assert buffer.raw_bytes == len(pcm)
    assert buffer.n_samples == whole // 2
    np.testing.assert_array_equal(buffer.samples(), expected)
    assert np.all(np.abs(buffer.samples()) <= 1.0)


# ---------------------------------------------------------------- other parsers of input


def _env_options() -> list[str]:
    return [option.variable for option in OPTIONS]


#: Hosts that need no name service: odd text, addresses, and names the system knows.
HOSTS = ["", " ", ":", "\x80", "a\x00b", "[::1]", "::1", "127.0.0.1", "0.0.0.0", "localhost"]


@st.composite
def server_environments(draw: st.DrawFn) -> dict[str, str]:
    env = {}
    for name in draw(st.lists(st.sampled_from(_env_options()), max_size=4, unique=True)):
        odd = st.sampled_from(["0", "-1", "nan", "inf", "1e9", "fill", "true"])
        values = st.sampled_from(HOSTS) if name == ENV_PREFIX + "HOST" else st.text(max_size=12)
        env[name] = draw(values | odd)
    return env


@given(server_environments())
def test_server_environment_is_a_config_or_a_clear_error(env: dict[str, str]) -> None:
    tried("server configuration from the environment")
    try:
        config = parse_config([], env)
    except ConfigError as exc:  # names the variable or its flag
        flags = ["--" + name[len(ENV_PREFIX) :].lower().replace("_", "-") for name in env]
        assert any(name in str(exc) for name in [*env, *flags]), str(exc)
        return
    assert 1 <= config.limits.max_audio_frame_bytes <= HARD_MAX_FRAME_BYTES
    # None: not given, the engine picks its own batch
    assert config.max_batch_size is None or config.max_batch_size >= 1
    assert config.partial_interval_ms >= 0
    assert config.request_timeout_s is None or config.request_timeout_s > 0


@pytest.mark.parametrize("host", HOSTS)
def test_any_host_is_a_config_or_a_clear_error(host: str) -> None:
    tried("server configuration: hosts")
    try:
        config = parse_config(["--host", host], {})
    except ConfigError as exc:
        assert "--host" in str(exc)
        return
    assert config.host.strip("[]") in host


launcher = pytest.importorskip("desktop.launcher")


@given(st.binary(max_size=400) | st.text(max_size=100).map(lambda t: t.encode("utf-16-le")))
def test_wsl_distro_list_parsing_never_fails(output: bytes) -> None:
    tried("wsl.exe distro list")
    names = launcher.parse_wsl_distros(output)
    assert all(isinstance(name, str) and not set(name) & set("\r\n") for name in names)
