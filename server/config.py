"""Server configuration: command-line flags, then ``TINGXIE_*`` variables, then defaults."""

from __future__ import annotations

import argparse
import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from protocol.cli_help import own_default
from protocol.endpoint import DEFAULT_HOST, DEFAULT_PORT
from protocol.limits import HARD_MAX_FRAME_BYTES, MAX_AUDIO_FRAME_BYTES, Limits
from protocol.version import __version__
from server.engine import fake
from server.engine.qwen import (
    CPU_MAX_BATCH_SIZE,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_MAX_MODEL_LEN,
    DEFAULT_RENDERER_THREADS,
    GPU_MAX_BATCH_SIZE,
)
from server.engine.qwen.policy import WindowedConfig, windowed_config_from_spec

ENV_PREFIX = "TINGXIE_"


class ConfigError(ValueError):
    """A setting is invalid; the message names the flag and the variable."""


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
    engine: str
    model: str
    backend: str
    policy: str
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
    max_pending_handshakes: int
    listen_backlog: int
    shutdown_timeout_s: float
    log_level: str
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tingxie-server",
        description="Streaming speech recognition server for tingxie (WebSocket, protocol v1). "
        f"Every option can also be set as an environment variable {ENV_PREFIX}<OPTION> "
        "(e.g. TINGXIE_PORT=9000); flags win over variables.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"tingxie-server {__version__}")
    net = p.add_argument_group("network")
    net.add_argument("--host", default=DEFAULT_HOST, help="address to bind")
    net.add_argument(
        "--port", type=_whole, default=DEFAULT_PORT, help="TCP port (0: any free port)"
    )
    net.add_argument(
        "--token",
        default=None,
        help=f"bearer token clients must present; prefer {ENV_PREFIX}TOKEN, since other "
        f"local users can read a command line "
        + own_default(f"{ENV_PREFIX}TOKEN if set, else none"),
    )
    net.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback --host without --token (anyone on the network can use it)",
    )
    net.add_argument(
        "--tls-cert",
        default=None,
        metavar="PEM",
        help="serve wss:// and https:// with this certificate (chain) file "
        + own_default("none: plain ws:// and http://"),
    )
    net.add_argument(
        "--tls-key",
        default=None,
        metavar="PEM",
        help="private key of --tls-cert " + own_default("none: the --tls-cert file holds it"),
    )
    net.add_argument(
        "--allowed-origin",
        dest="allowed_origins",
        action="append",
        type=normalize_origin,
        default=None,
        metavar="ORIGIN",
        help="web page origin (https://host[:port]) whose scripts may connect; repeatable. "
        "Requests with any other Origin header (browsers always send one) get 403; "
        "clients that send none are not affected. Env: comma-separated list "
        f"{ENV_PREFIX}ALLOWED_ORIGINS " + own_default("none allowed"),
    )
    eng = p.add_argument_group("engine")
    eng.add_argument("--engine", choices=["fake", "qwen"], default="qwen", help="recognizer")
    eng.add_argument(
        "--model", default="Qwen/Qwen3-ASR-1.7B", help="qwen: hub model id or local directory"
    )
    eng.add_argument(
        "--backend",
        choices=["auto", "vllm", "transformers"],
        default="auto",
        help="qwen: vLLM (GPU) or transformers (CPU/any); auto picks vLLM when usable",
    )
    eng.add_argument(
        "--policy",
        choices=["windowed", "article"],
        default="windowed",
        help="qwen: streaming policy (article = qwen-asr's own streaming, for comparison; "
        "transformers backend only)",
    )
    eng.add_argument(
        "--max-model-len", type=_positive_int, default=DEFAULT_MAX_MODEL_LEN, help="qwen/vLLM"
    )
    eng.add_argument(
        "--gpu-memory-utilization",
        type=_fraction,
        default=DEFAULT_GPU_MEMORY_UTILIZATION,
        help="qwen/vLLM: VRAM fraction",
    )
    eng.add_argument(
        "--fake-per-batch-ms", type=_non_negative_float, default=0.0, help="fake: cost per batch"
    )
    eng.add_argument(
        "--fake-per-request-ms",
        type=_non_negative_float,
        default=0.0,
        help="fake: extra cost per request in a batch",
    )
    eng.add_argument(
        "--fake-block-seconds",
        type=_non_negative_float,
        default=1.0,
        help="fake: seconds of audio per fake word",
    )
    eng.add_argument(
        "--fake-concurrent-batches",
        type=_positive_int,
        default=1,
        help="fake: model calls at once (>1 behaves like a continuous-batching backend)",
    )
    eng.add_argument(
        "--fake-faults",
        action="store_true",
        help="fake: fail utterances whose context is 'fault:raise', hang on 'fault:hang' "
        "(fault-handling tests)",
    )
    eng.add_argument(
        "--max-batch-size",
        type=_positive_int,
        default=None,
        help="requests per model call (transformers and fake engines; refused with vLLM, "
        "which batches continuously: see --max-num-seqs) "
        + own_default(
            f"the engine's own: transformers {GPU_MAX_BATCH_SIZE} on a GPU, "
            f"{CPU_MAX_BATCH_SIZE} on CPU; fake {fake.DEFAULT_MAX_BATCH_SIZE}"
        ),
    )
    eng.add_argument(
        "--partials-with-final",
        type=_partials_with_final,
        default=2,
        help="most partial steps that may share a model call with finals, or 'fill'; "
        "small values keep finals fast when the model is busy (docs/benchmarks.md); "
        "transformers and fake engines only, refused with vLLM (see --max-partials-in-flight)",
    )
    eng.add_argument(
        "--max-partials-in-flight",
        type=_positive_int,
        default=64,
        help="partial steps sent to the model at once, all sessions together; more wait "
        "(and then run on newer audio), so a burst of partials cannot take the seats "
        "finals need (keep it below vLLM's --max-num-seqs)",
    )
    eng.add_argument(
        "--max-num-seqs",
        type=_positive_int,
        default=None,
        help="qwen/vLLM: most requests vLLM runs at once per GPU " + own_default("vLLM's own"),
    )
    eng.add_argument(
        "--data-parallel-size",
        type=_positive_int,
        default=1,
        help="qwen/vLLM: GPUs of this host that each run a copy of the model "
        "(vLLM data parallel; docs/engine.md)",
    )
    eng.add_argument(
        "--renderer-threads",
        type=_positive_int,
        default=DEFAULT_RENDERER_THREADS,
        help="qwen/vLLM: threads that tokenise requests and compute their audio features "
        "before the GPU (about 2 renders per second per stream; docs/engine.md)",
    )
    eng.add_argument(
        "--enforce-eager",
        action="store_true",
        help="qwen/vLLM: no CUDA graphs (starts faster, runs slower)",
    )
    eng.add_argument(
        "--windowed",
        type=windowed_config_from_spec,
        default="",
        metavar="NAME=VALUE,...",
        help="qwen windowed policy settings, e.g. segment_soft_sec=8,segment_max_sec=15 "
        "(names and defaults: docs/engine.md); unnamed ones keep their defaults "
        + own_default("none: every setting at its default"),
    )
    eng.add_argument(
        "--partial-interval-ms",
        type=_non_negative_float,
        default=500.0,
        help="new audio between partial steps (0: no partials)",
    )
    eng.add_argument(
        "--request-timeout",
        type=_non_negative_float,
        default=60.0,
        help="seconds a model call may take; past it the utterance gets engine_error (0: no limit)",
    )
    lim = p.add_argument_group("limits")
    lim.add_argument(
        "--max-frame-bytes",
        type=_positive_int,
        default=MAX_AUDIO_FRAME_BYTES,
        help=f"largest audio frame (at most {HARD_MAX_FRAME_BYTES})",
    )
    lim.add_argument(
        "--max-utterance-seconds", type=_non_negative_float, default=120.0, help="per utterance"
    )
    lim.add_argument(
        "--max-sessions-per-connection",
        type=_positive_int,
        default=4,
        help="open plus still-decoding utterances per connection",
    )
    lim.add_argument(
        "--max-connections",
        type=_positive_int,
        default=256,
        help="open WebSocket connections; at the limit a new one displaces the connection "
        "idle longest (none open or decoding an utterance); if all are dictating, one of "
        "the address holding the most, when the newcomer's address holds at least two "
        "fewer; else the newcomer gets server_busy",
    )
    lim.add_argument(
        "--max-connections-per-address",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="connections one client IP address may hold; a newcomer past "
        "it displaces that address's connection idle longest, else gets server_busy. "
        "Loopback clients are exempt (an app and its server in WSL share 127.0.0.1); "
        "0: no cap",
    )
    lim.add_argument(
        "--idle-timeout",
        type=_non_negative_float,
        default=300.0,
        help="seconds a connection with no utterance open or decoding may stay silent "
        "before it is closed (0: never); sent to clients in ready",
    )
    lim.add_argument(
        "--max-buffered-audio-mb",
        type=_positive_float,
        default=256.0,
        help="MiB of audio all utterances together may hold (2 bytes a sample; 1 MiB is "
        "33 s); past it an utterance is finished early with a server_busy error",
    )
    lim.add_argument(
        "--handshake-timeout",
        type=_positive_float,
        default=10.0,
        help="seconds from TCP connect to a finished WebSocket (or TLS) handshake",
    )
    lim.add_argument(
        "--max-pending-handshakes",
        type=_positive_int,
        default=128,
        help="connections still in their handshake; past it the oldest is dropped",
    )
    lim.add_argument(
        "--listen-backlog",
        type=_positive_int,
        default=1024,
        help="TCP connections the kernel queues before the server accepts them",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=_non_negative_float,
        default=30.0,
        help="seconds to finish pending finals on SIGINT/SIGTERM",
    )
    p.add_argument(
        "--keep-serving-on-load-failure",
        action="store_true",
        help="when the model fails to load, keep listening so /healthz reports why (the "
        "tray app starts its server so); without it the server exits with code 1 and says "
        "what to do",
    )
    p.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="shut down (finishing pending finals) when standard input reaches end of file; "
        "the tray app starts its local servers so, holding their input open, so that a "
        "server never outlives the app",
    )
    p.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default="INFO",
        help="how much the server logs (WARNING: only what needs attention)",
    )
    p.add_argument(
        "--log-transcripts",
        action="store_true",
        help="let transcripts, hotwords and audio bytes into the log (with --log-level DEBUG); "
        "for debugging only: without it the log never holds what was said",
    )
    return p


def _apply_environment(
    parser: argparse.ArgumentParser, env: Mapping[str, str]
) -> dict[str, list[object]]:
    """Turn ``TINGXIE_<DEST>`` variables into parser defaults, validated like flags.

    Returns the values of repeatable options (comma-separated in the variable): these
    apply only where no flag is given, since argparse would append flags to them.
    """
    defaults: dict[str, object] = {}
    lists: dict[str, list[object]] = {}
    for action in parser._actions:  # argparse has no public iterator over actions
        if not action.option_strings or action.dest in {"help", "version"}:
            continue
        name = ENV_PREFIX + action.dest.upper()
        if name not in env:
            continue
        raw = env[name]
        if isinstance(action, argparse._StoreTrueAction):
            if raw.lower() not in {"1", "true", "yes", "0", "false", "no", ""}:
                raise ConfigError(f"{name}={raw!r}: expected 1/0, true/false or yes/no")
            defaults[action.dest] = raw.lower() in {"1", "true", "yes"}
            continue
        if isinstance(action, argparse._AppendAction):
            try:
                convert = action.type if callable(action.type) else str
                lists[action.dest] = [convert(item) for item in raw.split(",") if item.strip()]
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise ConfigError(f"{name}={raw!r}: {exc}") from None
            continue
        try:
            value = action.type(raw) if callable(action.type) else raw
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(f"{name}={raw!r}: {exc}") from None
        if action.choices is not None and value not in action.choices:
            raise ConfigError(f"{name}={raw!r}: choose from {', '.join(map(str, action.choices))}")
        defaults[action.dest] = value
    parser.set_defaults(**defaults)
    return lists


#: Options only the transformers (and fake) engines honour; vLLM refuses them when given.
TRANSFORMERS_ONLY = ("max_batch_size", "partials_with_final")


def _given(argv: Sequence[str] | None, env: Mapping[str, str]) -> set[str]:
    """Destinations set by a flag or a ``TINGXIE_*`` variable (not left at the default)."""
    parser = build_parser()
    for action in parser._actions:  # argparse has no public iterator over actions
        action.default = argparse.SUPPRESS
    given = set(vars(parser.parse_args(argv)))
    given.update(
        action.dest for action in parser._actions if ENV_PREFIX + action.dest.upper() in env
    )
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
        engine=args.engine,
        model=args.model,
        backend=args.backend,
        policy=args.policy,
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
        max_pending_handshakes=args.max_pending_handshakes,
        listen_backlog=args.listen_backlog,
        shutdown_timeout_s=args.shutdown_timeout,
        log_level=args.log_level,
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
