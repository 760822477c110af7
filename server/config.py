"""Server configuration: command-line flags, then ``TINGXIE_*`` variables, then defaults."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol.limits import HARD_MAX_FRAME_BYTES, MAX_AUDIO_FRAME_BYTES, Limits
from protocol.version import __version__

ENV_PREFIX = "TINGXIE_"


class ConfigError(ValueError):
    """A setting is invalid; the message names the flag and the variable."""


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    token: str | None
    insecure_no_auth: bool
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
    max_batch_size: int
    partials_with_final: int | None
    partial_interval_ms: float
    request_timeout_s: float | None
    limits: Limits
    shutdown_timeout_s: float
    log_level: str


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{value} is not >= 1")
    return value


def _partials_with_final(text: str) -> int | None:
    if text.strip().lower() == "fill":
        return None
    value = int(text)
    if value < 0:
        raise ValueError(f"{value} is not >= 0 (or 'fill')")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{value} is not >= 0")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError(f"{value} is not in (0, 1]")
    return value


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
    net.add_argument("--host", default="127.0.0.1", help="address to bind")
    net.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    net.add_argument("--token", default=None, help="bearer token clients must present")
    net.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback --host without --token (anyone on the network can use it)",
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
        help="qwen: streaming policy (article = qwen-asr's own streaming, for comparison)",
    )
    eng.add_argument("--max-model-len", type=_positive_int, default=4096, help="qwen/vLLM")
    eng.add_argument(
        "--gpu-memory-utilization", type=_fraction, default=0.8, help="qwen/vLLM: VRAM fraction"
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
        "--max-batch-size", type=_positive_int, default=16, help="requests per model call"
    )
    eng.add_argument(
        "--partials-with-final",
        type=_partials_with_final,
        default=2,
        help="most partial steps that may share a model call with finals, or 'fill'; "
        "small values keep finals fast when the model is busy (docs/benchmarks.md)",
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
    lim.add_argument("--max-connections", type=_positive_int, default=256)
    p.add_argument(
        "--shutdown-timeout",
        type=_non_negative_float,
        default=30.0,
        help="seconds to finish pending finals on SIGINT/SIGTERM",
    )
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="INFO")
    return p


def _apply_environment(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """Turn ``TINGXIE_<DEST>`` variables into parser defaults, validated like flags."""
    defaults: dict[str, object] = {}
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
        try:
            value = action.type(raw) if callable(action.type) else raw
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name}={raw!r}: {exc}") from None
        if action.choices is not None and value not in action.choices:
            raise ConfigError(f"{name}={raw!r}: choose from {', '.join(map(str, action.choices))}")
        defaults[action.dest] = value
    parser.set_defaults(**defaults)


def _is_loopback(host: str) -> bool:
    return host in {"localhost", "::1"} or host.startswith("127.")


def parse_config(argv: Sequence[str] | None, env: Mapping[str, str]) -> ServerConfig:
    """Parse flags and environment. Raises ConfigError (or exits for --help/--version)."""
    parser = build_parser()
    _apply_environment(parser, env)
    args = parser.parse_args(argv)
    if args.max_frame_bytes > HARD_MAX_FRAME_BYTES:
        raise ConfigError(f"--max-frame-bytes may be at most {HARD_MAX_FRAME_BYTES}")
    token = args.token or None
    if not _is_loopback(args.host) and token is None and not args.insecure_no_auth:
        raise ConfigError(
            f"--host {args.host} exposes the server beyond this machine: set --token "
            f"(or {ENV_PREFIX}TOKEN), or pass --insecure-no-auth to allow anyone to use it"
        )
    return ServerConfig(
        host=args.host,
        port=args.port,
        token=token,
        insecure_no_auth=args.insecure_no_auth,
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
        ),
        shutdown_timeout_s=args.shutdown_timeout,
        log_level=args.log_level,
    )
