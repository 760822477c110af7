"""Composition root of the server: builds the engine and the WebSocket server, wires
signals. ``main()`` is the ``tingxie-server`` entry point.

Models are built inside ``main()`` (never at import time): vLLM spawns worker
processes that re-import the main module.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import ssl
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from protocol.limits import HARD_MAX_FRAME_BYTES
from protocol.log_level import LogLevel
from protocol.log_redaction import WireLogRedactor
from protocol.write_stall import WriteStallGuard
from server.access import offered_token, origin_allowed, token_matches
from server.audio_buffer import AudioBudget
from server.config import ConfigError, EngineKind, ServerConfig, is_loopback_host, parse_config
from server.connection import Connection
from server.download import (
    cached_locally,
    load_failure_advice,
    offline_if_hub_unreachable,
    summarise_hub_retries,
)
from server.engine.base import Engine
from server.engine.fake import FakeGenerator
from server.engine.full_decode import FullDecodeEngine
from server.log_limits import FailureBackoff, LogThrottle, log_throttled
from server.memory import trim_after_bursts
from server.scheduler import Scheduler
from server.slots import peer_address
from server.state import ModelState, ServerState, displaced_drain_s
from server.tls import server_tls_context

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
#: Shorter tokens draw a warning at start-up.
MIN_TOKEN_CHARS = 16


def build_engine(config: ServerConfig) -> Engine:
    """The engine named by the configuration (nothing is loaded yet)."""
    if config.engine is EngineKind.FAKE:
        generator = FakeGenerator(
            per_batch_ms=config.fake_per_batch_ms,
            per_request_ms=config.fake_per_request_ms,
            max_batch_size=config.max_batch_size,
            block_seconds=config.fake_block_seconds,
            concurrent_batches=config.fake_concurrent_batches,
            inject_faults=config.fake_faults,
        )
        return FullDecodeEngine(generator)
    try:
        from server.engine.qwen import build_qwen_engine
    except ImportError as exc:
        raise ConfigError(
            f"--engine qwen needs the Qwen3-ASR engine ({exc}); install "
            "'tingxie[vllm]' on a GPU box or 'tingxie[transformers]' elsewhere, or try "
            "tingxie without a model: --engine fake"
        ) from None
    return build_qwen_engine(
        config.model,
        backend=config.backend,
        policy=config.policy,
        max_model_len=config.max_model_len,
        gpu_memory_utilization=config.gpu_memory_utilization,
        max_batch_size=config.max_batch_size,
        windowed=config.windowed,
        vllm_kwargs=vllm_engine_kwargs(config),
        transformers_only=config.transformers_only,
    )


def vllm_engine_kwargs(config: ServerConfig) -> dict[str, object]:
    """vLLM engine arguments the configuration passes through (those it sets, and the
    renderer threads, whose default is ours)."""
    kwargs: dict[str, object] = {}
    if config.max_num_seqs is not None:
        kwargs["max_num_seqs"] = config.max_num_seqs
    if config.data_parallel_size > 1:
        kwargs["data_parallel_size"] = config.data_parallel_size
    kwargs["renderer_num_workers"] = config.renderer_threads
    if config.enforce_eager:
        kwargs["enforce_eager"] = True
    return kwargs


def make_request_handler(
    state: ServerState,
    token: str | None,
    allowed_origins: frozenset[str] = frozenset(),
    *,
    public_details: bool = True,
    backoff: FailureBackoff | None = None,
) -> Callable[[ServerConnection, Request], Response | None]:
    """HTTP hook, before any WebSocket handshake: Origin check, ``/healthz``, token.

    ``public_details``: whether ``/healthz`` shows everything to anyone (loopback
    binds); else only liveness and readiness, details to token holders.
    ``backoff``: addresses with repeated wrong tokens get 429 until their wait is over.
    """
    throttle = state.log_throttle

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        now = asyncio.get_running_loop().time()
        origins = request.headers.get_all("Origin")
        if not origin_allowed(origins, allowed_origins):
            log_throttled(
                log,
                throttle,
                "origin",
                now,
                logging.WARNING,
                "rejected %s: origin %.100r not allowed (see --allowed-origin)",
                connection.remote_address,
                ", ".join(origins),
            )
            return connection.respond(403, "origin not allowed\n")
        path = urlsplit(request.path).path
        if path == HEALTH_PATH:
            ready = state.model_state is ModelState.READY and not state.shutting_down
            detailed = public_details or (
                token is not None
                and token_matches(offered_token(request.headers.get("Authorization"), ""), token)
            )
            body = state.health() if detailed else state.readiness()
            response = connection.respond(200 if ready else 503, json.dumps(body) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if token is not None:
            peer = peer_address(connection.remote_address).key
            if backoff is not None and (wait := backoff.blocked_for(peer, now)) > 0:
                response = connection.respond(429, "too many wrong tokens; wait\n")
                response.headers["Retry-After"] = str(int(wait) + 1)
                return response
            offered = offered_token(request.headers.get("Authorization"), request.path)
            if not token_matches(offered, token):
                if backoff is not None:
                    backoff.failed(peer, now)
                log_throttled(
                    log,
                    throttle,
                    "token",
                    now,
                    logging.WARNING,
                    "rejected %s: missing or wrong token",
                    connection.remote_address,
                )
                return connection.respond(401, "missing or invalid token\n")
            if backoff is not None:
                backoff.succeeded(peer)
        return None

    return process_request


@dataclass
class HandshakeGate:
    """Bounds connections still in their opening handshake: past ``limit`` the oldest
    is dropped, so a crowd of silent sockets cannot keep a newcomer from its handshake
    for longer than it takes to do it."""

    limit: int
    pending: OrderedDict[int, asyncio.BaseTransport] = field(default_factory=OrderedDict)
    dropped: int = 0

    def opened(self, key: int, transport: asyncio.BaseTransport) -> None:
        self.pending[key] = transport
        while len(self.pending) > self.limit:
            _, oldest = self.pending.popitem(last=False)
            self.dropped += 1
            oldest.close()  # it sent nothing we answered: nothing to flush

    def done(self, key: int) -> None:
        self.pending.pop(key, None)


def connection_class(
    gate: HandshakeGate, write_timeout_s: float, throttle: LogThrottle
) -> type[ServerConnection]:
    """A ServerConnection that reports its handshake to ``gate`` and is dropped once its
    client has taken nothing for ``write_timeout_s`` while the server had more to send
    (it stopped reading): protocol/write_stall.py says why the keepalive cannot."""

    class ClientConnection(WriteStallGuard, ServerConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            gate.opened(id(self), transport)

        def connection_lost(self, exc: Exception | None) -> None:
            gate.done(id(self))
            super().connection_lost(exc)

        def write_stalled(self) -> None:
            log_throttled(
                log,
                throttle,
                "write-stalled",
                asyncio.get_running_loop().time(),
                logging.WARNING,
                "a client took nothing the server sent for %g s (it stopped reading): "
                "connection dropped",
                write_timeout_s,
            )

    ClientConnection.write_timeout_s = write_timeout_s
    return ClientConnection


#: accept() errors that mean "out of file descriptors or memory": asyncio retries
#: after a second; a traceback each time only floods the log.
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def quiet_exception_handler(
    throttle: LogThrottle,
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """A loop exception handler: running out of descriptors is one throttled warning
    without a traceback; everything else goes to asyncio's default handler."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS:
            log_throttled(
                log,
                throttle,
                f"accept:{exc.errno}",
                loop.time(),
                logging.WARNING,
                "cannot accept connections: %s (raise the open-files limit, ulimit -n, "
                "or lower --max-connections)",
                exc.strerror or exc,
            )
            return
        loop.default_exception_handler(context)

    return handle


@dataclass
class RunningServer:
    """A started server, for the entry point and for tests."""

    state: ServerState
    server: Server
    config: ServerConfig
    load_task: asyncio.Task[None]
    gate: HandshakeGate | None = None
    trimmer: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        sockname = next(iter(self.server.sockets)).getsockname()
        return int(sockname[1])

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        scheme = "wss" if self.config.tls_cert else "ws"
        return f"{scheme}://{host}:{self.port}"

    async def wait_loaded(self) -> None:
        await asyncio.shield(self.load_task)

    async def shutdown(self) -> None:
        """Refuse new work, finish pending finals (bounded), close everything."""
        state = self.state
        if state.shutting_down:
            return
        state.shutting_down = True
        log.info("shutting down: finishing %d connection(s)", len(state.connections))
        drains = [c.drain() for c in list(state.connections)]
        try:
            await asyncio.wait_for(
                asyncio.gather(*drains, return_exceptions=True), self.config.shutdown_timeout_s
            )
        except asyncio.TimeoutError:
            log.warning("finals not finished after %.0f s; closing", self.config.shutdown_timeout_s)
        self.server.close()
        await self.server.wait_closed()
        for task in (self.load_task, self.trimmer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await state.scheduler.close()
        await state.engine.generator.close()
        log.info("stopped")


async def _load_model(state: ServerState) -> None:
    generator = state.engine.generator
    log.info("loading model %s (%s)...", generator.model or "-", generator.name)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        await generator.load()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("model failed to load: %s", exc)
        state.set_model_state(ModelState.FAILED, f"{type(exc).__name__}: {exc}")
        return
    log.info("model ready in %.1f s", loop.time() - began)
    state.set_model_state(ModelState.READY)


def load_tls(config: ServerConfig) -> ssl.SSLContext | None:
    """The TLS context the config asks for, or None. Raises ConfigError."""
    if config.tls_cert is None:
        return None
    return server_tls_context(config.tls_cert, config.tls_key)


async def start_server(
    config: ServerConfig, engine: Engine | None = None, tls: ssl.SSLContext | None = None
) -> RunningServer:
    """Bind the socket at once (so clients and /healthz see 'loading'), then load.

    ``tls`` is the context :func:`load_tls` made; without it, it is loaded here.
    """
    tls = tls or load_tls(config)
    engine = engine or build_engine(config)
    scheduler = Scheduler(
        engine.generator,
        config.partials_with_final,
        config.request_timeout_s,
        max_partials_in_flight=config.max_partials_in_flight,
    )
    scheduler.start()
    budget = AudioBudget(config.max_buffered_audio_bytes)
    state = ServerState(
        engine=engine,
        scheduler=scheduler,
        limits=config.limits,
        partial_interval_s=config.partial_interval_ms / 1000.0,
        audio_budget=budget,
        max_connections_per_address=config.max_connections_per_address,
        displaced_drain_s=displaced_drain_s(config.request_timeout_s),
    )
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(quiet_exception_handler(state.log_throttle))
    gate = HandshakeGate(config.max_pending_handshakes)

    async def handler(ws: ServerConnection) -> None:
        gate.done(id(ws))  # handshake finished: the slot policy takes over
        await Connection(ws, state).serve()

    server = await serve(
        handler,
        config.host,
        config.port,
        process_request=make_request_handler(
            state,
            config.token,
            config.allowed_origins,
            public_details=is_loopback_host(config.host),
            backoff=FailureBackoff() if config.token is not None else None,
        ),
        ssl=tls,
        create_connection=connection_class(gate, config.write_timeout_s, state.log_throttle),
        open_timeout=config.handshake_timeout_s,
        backlog=config.listen_backlog,
        # websockets logs frame payloads and handshake headers at DEBUG: keep the
        # token out always, transcripts and audio unless --log-transcripts.
        logger=WireLogRedactor(
            logging.getLogger("websockets.server"), log_content=config.log_transcripts
        ),
        max_size=HARD_MAX_FRAME_BYTES,
        # Dictation idles for minutes between utterances: keep the socket alive with
        # pings, but allow a busy client or server a generous pong delay.
        ping_interval=20,
        ping_timeout=60,
        compression=None,  # PCM does not compress; deflate only costs latency
    )
    load_task = asyncio.create_task(_load_model(state), name="load-model")
    trimmer = asyncio.create_task(trim_after_bursts(budget), name="trim-heap")
    running = RunningServer(
        state=state, server=server, config=config, load_task=load_task, gate=gate, trimmer=trimmer
    )
    log.info(
        "listening on %s (engine %s, auth %s, web origins allowed: %s)",
        running.url,
        engine.name,
        "token" if config.token else "none",
        ", ".join(sorted(config.allowed_origins)) or "none",
    )
    if config.token is not None and len(config.token) < MIN_TOKEN_CHARS:
        log.warning(
            "the token has fewer than %d characters; a long random one is much harder "
            "to guess: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
            MIN_TOKEN_CHARS,
        )
    if config.log_transcripts:
        log.warning("--log-transcripts: what users say is written to the log at DEBUG level")
    return running


def _wait_for_end_of_input(stream: BinaryIO, on_end: Callable[[], object]) -> None:
    """Read ``stream`` until end of file (its writer closed it or died), then ``on_end``."""
    try:
        while stream.read(4096):
            pass
    except (OSError, ValueError):  # closed under us: the same as end of file
        pass
    on_end()


async def _serve_until_signal(
    config: ServerConfig, engine: Engine, tls: ssl.SSLContext | None
) -> int:
    running = await start_server(config, engine, tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: no signal handlers
            loop.add_signal_handler(signum, stop.set)

    if config.stop_on_stdin_eof and sys.stdin is None:  # pythonw: nothing to watch
        log.warning("--stop-on-stdin-eof: this process has no standard input; ignored")
    elif config.stop_on_stdin_eof:
        threading.Thread(
            target=_wait_for_end_of_input,
            args=(sys.stdin.buffer, lambda: loop.call_soon_threadsafe(stop.set)),
            name="stdin-watch",
            daemon=True,
        ).start()

    async def end_if_load_failed() -> None:
        await running.wait_loaded()
        if running.state.model_state is ModelState.FAILED:
            stop.set()

    # In a terminal a failed load ends the server (what it should do next is printed);
    # the tray app asks it to stay up so that /healthz can report the error.
    watch = None if config.keep_serving_on_load_failure else loop.create_task(end_if_load_failed())
    try:
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
        await running.shutdown()
    if watch is not None and running.state.model_state is ModelState.FAILED:
        print(load_failure_advice(config.model, running.state.model_error), file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(argv, os.environ)
        tls = load_tls(config)  # before the model: a bad certificate path fails fast
    except ConfigError as exc:
        print(f"tingxie-server: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.value,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if config.log_level is LogLevel.INFO:
        # websockets writes a line per connection opened and closed; the server's own
        # (throttled) lines say the same without letting a crowd of sockets flood the log.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    if config.engine is EngineKind.QWEN:
        summarise_hub_retries()  # one line per retry of the model hub, printed once
        unreachable = offline_if_hub_unreachable(config.model, os.environ)  # the cache only
        if (
            unreachable
            and not config.keep_serving_on_load_failure
            and not cached_locally(config.model)
        ):  # the load can only fail: say so now, not after importing the model's libraries
            error = f"the model hub cannot be reached ({unreachable}) and the model is not cached"
            print(load_failure_advice(config.model, error), file=sys.stderr)
            return 1
    try:
        # Built here, inside main(): vLLM's workers re-import the main module.
        engine = build_engine(config)
    except (ConfigError, OSError, ValueError) as exc:  # bad model path, bad option...
        print(f"tingxie-server: error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve_until_signal(config, engine, tls))
    except OSError as exc:
        print(
            f"tingxie-server: error: cannot listen on {config.host}:{config.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
