"""Server configuration: command-line flags, then ``TINGXIE_*`` variables, then defaults."""

from __future__ import annotations

import argparse
import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

from protocol.cli_help import own_default
from protocol.endpoint import DEFAULT_HOST, DEFAULT_PORT
from protocol.limits import HARD_MAX_FRAME_BYTES, MAX_AUDIO_FRAME_BYTES, Limits
from protocol.log_level import DEFAULT_LOG_LEVEL, LogLevel
from protocol.version import __version__
from server.engine import fake
from server.engine.qwen import (
    CPU_MAX_BATCH_SIZE,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_MAX_MODEL_LEN,
    DEFAULT_RENDERER_THREADS,
    GPU_MAX_BATCH_SIZE,
    Backend,
    Policy,
)
from server.engine.qwen.policy import WindowedConfig, windowed_config_from_spec

ENV_PREFIX = "TINGXIE_"


class ConfigError(ValueError):
    """A setting is invalid; the message names the flag and the variable."""


class EngineKind(str, Enum):
    """The recognizer ``--engine`` names."""

    #: Deterministic stand-in with no model (server/engine/fake.py).
    FAKE = "fake"
    #: Qwen3-ASR (server/engine/qwen/).
    QWEN = "qwen"


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    token: str | None
    insecure_no_auth: bool
    tls_cert: str | None
    tls_key: str | None
    allowed_origins: frozenset[str]
    log_transcripts: bool
    engine: EngineKind
    model: str
    backend: Backend
    policy: Policy
    max_model_len: int
    gpu_memory_utilization: float
    fake_per_batch_ms: float
    fake_per_request_ms: float
    fake_block_seconds: float
    fake_concurrent_batches: int
    fake_faults: bool
    max_batch_size: int | None  # None: the engine's own (by device for transformers)
    partials_with_final: int | None
    partial_interval_ms: float
    request_timeout_s: float | None
    limits: Limits
    max_buffered_audio_bytes: int
    handshake_timeout_s: float
    #: A client that takes none of what the server sends for this long is dropped.
    write_timeout_s: float
    max_pending_handshakes: int
    listen_backlog: int
    shutdown_timeout_s: float
    log_level: LogLevel
    #: After a failed model load: keep listening (/healthz tells why) instead of exiting.
    keep_serving_on_load_failure: bool = False
    #: Shut down (as on SIGTERM) when stdin reaches end of file: the app that started the
    #: server holds it open, so the server cannot outlive that app, even after a crash.
    stop_on_stdin_eof: bool = False
    #: Connections one non-loopback address may hold (0: no cap); server/slots.py.
    max_connections_per_address: int = 0
    #: Partial steps the scheduler keeps in flight at once (finals are never held back).
    max_partials_in_flight: int = 64
    #: vLLM engine arguments passed through (None: vLLM's own default).
    max_num_seqs: int | None = None
    data_parallel_size: int = 1
    renderer_threads: int = DEFAULT_RENDERER_THREADS
    enforce_eager: bool = False
    #: The windowed streaming policy's settings (--windowed).
    windowed: WindowedConfig = field(default_factory=WindowedConfig)
    #: Options set by flag or variable that only some backends honour (refused elsewhere).
    transformers_only: frozenset[str] = frozenset()


# Option types: a bad value is refused with what was wrong ("argument --port: 'x' is not
# a whole number"), not argparse's "invalid _positive_int value" naming our function.


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _real(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def _non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not >= 0")
    return value


def _partials_with_final(text: str) -> int | None:
    if text.strip().lower() == "fill":
        return None
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not >= 0 (or 'fill')")
    return value


def _non_negative_float(text: str) -> float:
    value = _real(text)
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"{value} is not >= 0")
    return value


def _positive_float(text: str) -> float:
    value = _real(text)
    if not value > 0 or value == float("inf"):  # also rejects NaN
        raise argparse.ArgumentTypeError(f"{value} is not > 0")
    return value


def _fraction(text: str) -> float:
    value = _real(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not in (0, 1]")
    return value


def normalize_origin(text: str) -> str:
    """An ``Origin`` as browsers send it: ``scheme://host[:port]``, lower case, no
    default port, no path. Raises ValueError for anything else."""
    value = text.strip().rstrip("/")
    if value.lower() in {"null", "*"}:
        raise ValueError(
            f"{value!r} cannot be allowed: 'null' is sent by sandboxed pages of any site "
            "and '*' would allow every site; name each origin"
        )
    parts = urlsplit(value)
    if not parts.scheme or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(f"{text!r} is not an origin like https://app.example.com[:port]")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
    if port is None or port == default_port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class OptionKind(Enum):
    """How an option is given on the command line and as a ``TINGXIE_*`` variable."""

    #: A switch (``--insecure-no-auth``); the variable is 1/0, true/false or yes/no.
    FLAG = "flag"
    #: One value (``--port 9000``); the variable holds it.
    VALUE = "value"
    #: Given once per value (``--allowed-origin``); the variable is a comma-separated list.
    REPEATABLE = "repeatable"


class OptionGroup(Enum):
    """The ``--help`` section an option is listed in; the value is its title."""

    GENERAL = "options"  # the parser's own section, listed first
    NETWORK = "network"
    ENGINE = "engine"
    LIMITS = "limits"


@dataclass(frozen=True)
class Option:
    """One server option: its flag, its ``TINGXIE_*`` variable and how to read both."""

    flag: str
    help: str
    group: OptionGroup
    kind: OptionKind = OptionKind.VALUE
    #: Turns the text of a flag or variable into the value, or says what is wrong.
    type: Callable[[str], object] = str
    default: object = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    #: The setting's name (and its variable's); by default the flag's words.
    dest: str = ""

    def __post_init__(self) -> None:
        if not self.dest:
            object.__setattr__(self, "dest", self.flag.removeprefix("--").replace("-", "_"))

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.dest.upper()


def _values(kind: type[Enum]) -> tuple[str, ...]:
    """An enum's values, in order: the choices of the option that names its members."""
    return tuple(str(member.value) for member in kind)


#: Every option of ``tingxie-server`` (``--help`` lists them in this order, by group).
OPTIONS: tuple[Option, ...] = (
    Option("--host", "address to bind", OptionGroup.NETWORK, default=DEFAULT_HOST),
    Option(
        "--port",
        "TCP port (0: any free port)",
        OptionGroup.NETWORK,
        type=_whole,
        default=DEFAULT_PORT,
    ),
    Option(
        "--token",
        f"bearer token clients must present; prefer {ENV_PREFIX}TOKEN, since other "
        f"local users can read a command line "
        + own_default(f"{ENV_PREFIX}TOKEN if set, else none"),
        OptionGroup.NETWORK,
    ),
    Option(
        "--insecure-no-auth",
        "allow a non-loopback --host without --token (anyone on the network can use it)",
        OptionGroup.NETWORK,
        OptionKind.FLAG,
    ),
    Option(
        "--tls-cert",
        "serve wss:// and https:// with this certificate (chain) file "
        + own_default("none: plain ws:// and http://"),
        OptionGroup.NETWORK,
        metavar="PEM",
    ),
    Option(
        "--tls-key",
        "private key of --tls-cert " + own_default("none: the --tls-cert file holds it"),
        OptionGroup.NETWORK,
        metavar="PEM",
    ),
    Option(
        "--allowed-origin",
        "web page origin (https://host[:port]) whose scripts may connect; repeatable. "
        "Requests with any other Origin header (browsers always send one) get 403; "
        "clients that send none are not affected. Env: comma-separated list "
        f"{ENV_PREFIX}ALLOWED_ORIGINS " + own_default("none allowed"),
        OptionGroup.NETWORK,
        OptionKind.REPEATABLE,
        type=normalize_origin,
        metavar="ORIGIN",
        dest="allowed_origins",
    ),
    Option(
        "--engine",
        "recognizer",
        OptionGroup.ENGINE,
        default=EngineKind.QWEN.value,
        choices=_values(EngineKind),
    ),
    Option(
        "--model",
        "qwen: hub model id or local directory",
        OptionGroup.ENGINE,
        default="Qwen/Qwen3-ASR-1.7B",
    ),
    Option(
        "--backend",
        "qwen: vLLM (GPU) or transformers (CPU/any); auto picks vLLM when usable",
        OptionGroup.ENGINE,
        default=Backend.AUTO.value,
        choices=_values(Backend),
    ),
    Option(
        "--policy",
        "qwen: streaming policy (article = qwen-asr's own streaming, for comparison; "
        "transformers backend only)",
        OptionGroup.ENGINE,
        default=Policy.WINDOWED.value,
        choices=_values(Policy),
    ),
    Option(
        "--max-model-len",
        "qwen/vLLM",
        OptionGroup.ENGINE,
        type=_positive_int,
        default=DEFAULT_MAX_MODEL_LEN,
    ),
    Option(
        "--gpu-memory-utilization",
        "qwen/vLLM: VRAM fraction",
        OptionGroup.ENGINE,
        type=_fraction,
        default=DEFAULT_GPU_MEMORY_UTILIZATION,
    ),
    Option(
        "--fake-per-batch-ms",
        "fake: cost per batch",
        OptionGroup.ENGINE,
        type=_non_negative_float,
        default=0.0,
    ),
    Option(
        "--fake-per-request-ms",
        "fake: extra cost per request in a batch",
        OptionGroup.ENGINE,
        type=_non_negative_float,
        default=0.0,
    ),
    Option(
        "--fake-block-seconds",
        "fake: seconds of audio per fake word",
        OptionGroup.ENGINE,
        type=_non_negative_float,
        default=1.0,
    ),
    Option(
        "--fake-concurrent-batches",
        "fake: model calls at once (>1 behaves like a continuous-batching backend)",
        OptionGroup.ENGINE,
        type=_positive_int,
        default=1,
    ),
    Option(
        "--fake-faults",
        "fake: fail utterances whose context is 'fault:raise', hang on 'fault:hang' "
        "(fault-handling tests)",
        OptionGroup.ENGINE,
        OptionKind.FLAG,
    ),
    Option(
        "--max-batch-size",
        "requests per model call (transformers and fake engines; refused with vLLM, "
        "which batches continuously: see --max-num-seqs) "
        + own_default(
            f"the engine's own: transformers {GPU_MAX_BATCH_SIZE} on a GPU, "
            f"{CPU_MAX_BATCH_SIZE} on CPU; fake {fake.DEFAULT_MAX_BATCH_SIZE}"
        ),
        OptionGroup.ENGINE,
        type=_positive_int,
    ),
    Option(
        "--partials-with-final",
        "most partial steps that may share a model call with finals, or 'fill'; "
        "small values keep finals fast when the model is busy (docs/benchmarks.md); "
        "transformers and fake engines only, refused with vLLM (see --max-partials-in-flight)",
        OptionGroup.ENGINE,
        type=_partials_with_final,
        default=2,
    ),
    Option(
        "--max-partials-in-flight",
        "partial steps sent to the model at once, all sessions together; more wait "
        "(and then run on newer audio), so a burst of partials cannot take the seats "
        "finals need (keep it below vLLM's --max-num-seqs)",
        OptionGroup.ENGINE,
        type=_positive_int,
        default=64,
    ),
    Option(
        "--max-num-seqs",
        "qwen/vLLM: most requests vLLM runs at once per GPU " + own_default("vLLM's own"),
        OptionGroup.ENGINE,
        type=_positive_int,
    ),
    Option(
        "--data-parallel-size",
        "qwen/vLLM: GPUs of this host that each run a copy of the model "
        "(vLLM data parallel; docs/engine.md)",
        OptionGroup.ENGINE,
        type=_positive_int,
        default=1,
    ),
    Option(
        "--renderer-threads",
        "qwen/vLLM: threads that tokenise requests and compute their audio features "
        "before the GPU (about 2 renders per second per stream; docs/engine.md)",
        OptionGroup.ENGINE,
        type=_positive_int,
        default=DEFAULT_RENDERER_THREADS,
    ),
    Option(
        "--enforce-eager",
        "qwen/vLLM: no CUDA graphs (starts faster, runs slower)",
        OptionGroup.ENGINE,
        OptionKind.FLAG,
    ),
    Option(
        "--windowed",
        "qwen windowed policy settings, e.g. segment_soft_sec=8,segment_max_sec=15 "
        "(names and defaults: docs/engine.md); unnamed ones keep their defaults "
        + own_default("none: every setting at its default"),
        OptionGroup.ENGINE,
        type=windowed_config_from_spec,
        default="",  # a text default goes through the type: every setting at its default
        metavar="NAME=VALUE,...",
    ),
    Option(
        "--partial-interval-ms",
        "new audio between partial steps (0: no partials)",
        OptionGroup.ENGINE,
        type=_non_negative_float,
        default=500.0,
    ),
    Option(
        "--request-timeout",
        "seconds a model call may take; past it the utterance gets engine_error (0: no limit)",
        OptionGroup.ENGINE,
        type=_non_negative_float,
        default=60.0,
    ),
    Option(
        "--max-frame-bytes",
        f"largest audio frame (at most {HARD_MAX_FRAME_BYTES})",
        OptionGroup.LIMITS,
        type=_positive_int,
        default=MAX_AUDIO_FRAME_BYTES,
    ),
    Option(
        "--max-utterance-seconds",
        "per utterance",
        OptionGroup.LIMITS,
        type=_non_negative_float,
        default=120.0,
    ),
    Option(
        "--max-sessions-per-connection",
        "open plus still-decoding utterances per connection",
        OptionGroup.LIMITS,
        type=_positive_int,
        default=4,
    ),
    Option(
        "--max-connections",
        "open WebSocket connections; at the limit a new one displaces the connection "
        "idle longest (none open or decoding an utterance); if all are dictating, one of "
        "the address holding the most, when the newcomer's address holds at least two "
        "fewer; else the newcomer gets server_busy",
        OptionGroup.LIMITS,
        type=_positive_int,
        default=256,
    ),
    Option(
        "--max-connections-per-address",
        "connections one client IP address may hold; a newcomer past "
        "it displaces that address's connection idle longest, else gets server_busy. "
        "Loopback clients are exempt (an app and its server in WSL share 127.0.0.1); "
        "0: no cap",
        OptionGroup.LIMITS,
        type=_non_negative_int,
        default=0,
        metavar="N",
    ),
    Option(
        "--idle-timeout",
        "seconds a connection with no utterance open or decoding may stay silent "
        "before it is closed (0: never); sent to clients in ready",
        OptionGroup.LIMITS,
        type=_non_negative_float,
        default=300.0,
    ),
    Option(
        "--max-buffered-audio-mb",
        "MiB of audio all utterances together may hold (2 bytes a sample; 1 MiB is "
        "33 s); past it an utterance is finished early with a server_busy error",
        OptionGroup.LIMITS,
        type=_positive_float,
        default=256.0,
    ),
    Option(
        "--handshake-timeout",
        "seconds from TCP connect to a finished WebSocket (or TLS) handshake",
        OptionGroup.LIMITS,
        type=_positive_float,
        default=10.0,
    ),
    Option(
        "--write-timeout",
        "seconds a client may take none of what the server sends (its buffers full: it "
        "stopped reading) before its connection is dropped",
        OptionGroup.LIMITS,
        type=_positive_float,
        default=30.0,
    ),
    Option(
        "--max-pending-handshakes",
        "connections still in their handshake; past it the oldest is dropped",
        OptionGroup.LIMITS,
        type=_positive_int,
        default=128,
    ),
    Option(
        "--listen-backlog",
        "TCP connections the kernel queues before the server accepts them",
        OptionGroup.LIMITS,
        type=_positive_int,
        default=1024,
    ),
    Option(
        "--shutdown-timeout",
        "seconds to finish pending finals on SIGINT/SIGTERM",
        OptionGroup.GENERAL,
        type=_non_negative_float,
        default=30.0,
    ),
    Option(
        "--keep-serving-on-load-failure",
        "when the model fails to load, keep listening so /healthz reports why (the "
        "tray app starts its server so); without it the server exits with code 1 and says "
        "what to do",
        OptionGroup.GENERAL,
        OptionKind.FLAG,
    ),
    Option(
        "--stop-on-stdin-eof",
        "shut down (finishing pending finals) when standard input reaches end of file; "
        "the tray app starts its local servers so, holding their input open, so that a "
        "server never outlives the app",
        OptionGroup.GENERAL,
        OptionKind.FLAG,
    ),
    Option(
        "--log-level",
        "how much the server logs (WARNING: only what needs attention)",
        OptionGroup.GENERAL,
        default=DEFAULT_LOG_LEVEL.value,
        choices=_values(LogLevel),
    ),
    Option(
        "--log-transcripts",
        "let transcripts, hotwords and audio bytes into the log (with --log-level DEBUG); "
        "for debugging only: without it the log never holds what was said",
        OptionGroup.GENERAL,
        OptionKind.FLAG,
    ),
)


def _parser(*, with_defaults: bool) -> argparse.ArgumentParser:
    """The parser of :data:`OPTIONS`; without defaults it sets only what is given."""
    p = argparse.ArgumentParser(
        prog="tingxie-server",
        description="Streaming speech recognition server for tingxie (WebSocket, protocol v1). "
        f"Every option can also be set as an environment variable {ENV_PREFIX}<OPTION> "
        "(e.g. TINGXIE_PORT=9000); flags win over variables.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"tingxie-server {__version__}")
    # Sections in enum order: the parser's own first, as argparse lists it anyway.
    sections = {
        group: p if group is OptionGroup.GENERAL else p.add_argument_group(group.value)
        for group in OptionGroup
    }
    for option in OPTIONS:
        if not with_defaults:
            default: object = argparse.SUPPRESS
        else:
            default = False if option.kind is OptionKind.FLAG else option.default
        section = sections[option.group]
        if option.kind is OptionKind.FLAG:
            section.add_argument(
                option.flag,
                action="store_true",
                dest=option.dest,
                default=default,
                help=option.help,
            )
            continue
        section.add_argument(
            option.flag,
            action="append" if option.kind is OptionKind.REPEATABLE else "store",
            dest=option.dest,
            type=option.type,
            default=default,
            choices=option.choices,
            metavar=option.metavar,
            help=option.help,
        )
    return p


def build_parser() -> argparse.ArgumentParser:
    return _parser(with_defaults=True)


def _apply_environment(
    parser: argparse.ArgumentParser, env: Mapping[str, str]
) -> dict[str, list[object]]:
    """Turn ``TINGXIE_<DEST>`` variables into parser defaults, validated like flags.

    Returns the values of repeatable options (comma-separated in the variable): these
    apply only where no flag is given, since argparse would append flags to them.
    """
    defaults: dict[str, object] = {}
    lists: dict[str, list[object]] = {}
    for option in OPTIONS:
        name = option.variable
        if name not in env:
            continue
        raw = env[name]
        if option.kind is OptionKind.FLAG:
            if raw.lower() not in {"1", "true", "yes", "0", "false", "no", ""}:
                raise ConfigError(f"{name}={raw!r}: expected 1/0, true/false or yes/no")
            defaults[option.dest] = raw.lower() in {"1", "true", "yes"}
            continue
        convert = option.type
        try:
            if option.kind is OptionKind.REPEATABLE:
                lists[option.dest] = [convert(item) for item in raw.split(",") if item.strip()]
                continue
            value = convert(raw)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(f"{name}={raw!r}: {exc}") from None
        if option.choices is not None and value not in option.choices:
            raise ConfigError(f"{name}={raw!r}: choose from {', '.join(option.choices)}")
        defaults[option.dest] = value
    parser.set_defaults(**defaults)
    return lists


#: Options only the transformers (and fake) engines honour; vLLM refuses them when given.
TRANSFORMERS_ONLY = ("max_batch_size", "partials_with_final")


def _given(argv: Sequence[str] | None, env: Mapping[str, str]) -> set[str]:
    """Destinations set by a flag or a ``TINGXIE_*`` variable (not left at the default)."""
    # Options left out of argv stay out of the namespace: their default is SUPPRESS.
    given = set(vars(_parser(with_defaults=False).parse_args(argv)))
    given.update(option.dest for option in OPTIONS if option.variable in env)
    return given


Resolver = Callable[[str], list[str]]


def resolve_host(host: str) -> list[str]:
    """Every address ``host`` resolves to (the server binds all of them)."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _ip_is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_loopback_host(host: str, resolve: Resolver = resolve_host) -> bool:
    """True when binding ``host`` listens on loopback addresses only.

    An empty host or an any-address (0.0.0.0, ::) listens everywhere; a name counts
    as loopback only if every address it resolves to is loopback. Raises ConfigError
    for a name that does not resolve.
    """
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if not name:
        return False
    try:
        return _ip_is_loopback(ipaddress.ip_address(name.split("%", 1)[0]))
    except ValueError:
        pass  # a name, not an address
    try:
        addresses = resolve(name)
    except (OSError, UnicodeError) as exc:  # UnicodeError: not a valid host name at all
        raise ConfigError(f"--host {host!r}: cannot resolve this name ({exc})") from None
    if not addresses:
        raise ConfigError(f"--host {host}: the name resolves to no address")
    return all(_ip_is_loopback(ipaddress.ip_address(a.split("%", 1)[0])) for a in addresses)


def _bare_host(host: str) -> str:
    """``[::1]`` (URL form) → ``::1`` (what the socket layer binds)."""
    name = host.strip()
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


def parse_config(
    argv: Sequence[str] | None, env: Mapping[str, str], resolve: Resolver = resolve_host
) -> ServerConfig:
    """Parse flags and environment. Raises ConfigError (or exits for --help/--version).

    ``resolve`` looks up a --host name, to refuse a non-loopback bind without a token.
    """
    parser = build_parser()
    env_lists = _apply_environment(parser, env)
    args = parser.parse_args(argv)
    given = _given(argv, env)
    for dest, values in env_lists.items():
        if getattr(args, dest) is None:
            setattr(args, dest, values)
    if args.max_frame_bytes > HARD_MAX_FRAME_BYTES:
        raise ConfigError(f"--max-frame-bytes may be at most {HARD_MAX_FRAME_BYTES}")
    token = args.token or None
    if token is None and not args.insecure_no_auth and not is_loopback_host(args.host, resolve):
        raise ConfigError(
            f"--host {args.host!r} listens beyond this machine: set a token with --token "
            f"(or {ENV_PREFIX}TOKEN), or pass --insecure-no-auth (or "
            f"{ENV_PREFIX}INSECURE_NO_AUTH=1) to let anyone who can reach it use it"
        )
    if args.tls_key and not args.tls_cert:
        raise ConfigError("--tls-key needs --tls-cert (the certificate it belongs to)")
    return ServerConfig(
        host=_bare_host(args.host),
        port=args.port,
        token=token,
        insecure_no_auth=args.insecure_no_auth,
        tls_cert=args.tls_cert or None,
        tls_key=args.tls_key or None,
        allowed_origins=frozenset(args.allowed_origins or ()),
        log_transcripts=args.log_transcripts,
        # Choices arrive as text (argparse checked them): members from here on.
        engine=EngineKind(args.engine),
        model=args.model,
        backend=Backend(args.backend),
        policy=Policy(args.policy),
        max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        fake_per_batch_ms=args.fake_per_batch_ms,
        fake_per_request_ms=args.fake_per_request_ms,
        fake_block_seconds=args.fake_block_seconds or 1.0,
        fake_concurrent_batches=args.fake_concurrent_batches,
        fake_faults=args.fake_faults,
        max_batch_size=args.max_batch_size,
        partials_with_final=args.partials_with_final,
        partial_interval_ms=args.partial_interval_ms,
        request_timeout_s=args.request_timeout or None,
        limits=Limits(
            max_audio_frame_bytes=args.max_frame_bytes,
            max_utterance_seconds=args.max_utterance_seconds,
            max_sessions_per_connection=args.max_sessions_per_connection,
            max_connections=args.max_connections,
            idle_timeout_s=args.idle_timeout,
        ),
        max_connections_per_address=args.max_connections_per_address,
        max_buffered_audio_bytes=int(args.max_buffered_audio_mb * 1024 * 1024),
        handshake_timeout_s=args.handshake_timeout,
        write_timeout_s=args.write_timeout,
        max_pending_handshakes=args.max_pending_handshakes,
        listen_backlog=args.listen_backlog,
        shutdown_timeout_s=args.shutdown_timeout,
        log_level=LogLevel(args.log_level),
        keep_serving_on_load_failure=args.keep_serving_on_load_failure,
        stop_on_stdin_eof=args.stop_on_stdin_eof,
        max_partials_in_flight=args.max_partials_in_flight,
        max_num_seqs=args.max_num_seqs,
        data_parallel_size=args.data_parallel_size,
        renderer_threads=args.renderer_threads,
        enforce_eager=args.enforce_eager,
        windowed=args.windowed,
        transformers_only=frozenset(
            f"--{dest.replace('_', '-')}" for dest in TRANSFORMERS_ONLY if dest in given
        ),
    )
