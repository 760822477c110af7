"""One protocol-v1 connection to a tingxie server, for asyncio code.

This is the thin transport: hello/ready on connect, start/audio/stop/cancel, and the
server's messages as an async iterator. Reconnection and replay live one layer up.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from types import TracebackType

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
)

from desktop.loopback import websocket_proxy
from protocol.codec import ProtocolError, decode_server, encode_client
from protocol.limits import MAX_SERVER_MESSAGE_BYTES
from protocol.log_redaction import WireLogRedactor, redact_url
from protocol.messages import (
    PROTOCOL_VERSION,
    Cancel,
    Error,
    ErrorCode,
    Hello,
    Ready,
    ServerMessage,
    Start,
    Stop,
)
from protocol.version import __version__
from protocol.write_stall import WriteStallGuard

log = logging.getLogger(__name__)


class ClientError(Exception):
    """Base of the connection failures a user should be told about."""


class ServerUnreachable(ClientError):
    pass


class AuthFailed(ClientError):
    pass


class VersionMismatch(ClientError):
    pass


class ServerBusy(ServerUnreachable):
    """The server is at its connection limit (or going away); trying later may work."""


class TlsError(ServerUnreachable):
    """No trusted TLS connection: unverifiable certificate, unreadable CA file, or a
    server that does not speak TLS. Retrying does not help until something changes."""


_NOT_TLS_HINT = " (if the server does not use TLS, the URL must start with ws://)"


def client_tls_context(url: str, ca_file: str | None) -> ssl.SSLContext | None:
    """For ``wss://``: a verifying context that trusts the system's CAs, or only
    ``ca_file`` (a CA certificate, or a self-signed server certificate) when given."""
    if not url.lower().startswith("wss://"):
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise TlsError(f"cannot load the CA file {ca_file}: {detail}") from None


def _tls_failure(url: str, exc: ssl.SSLError) -> TlsError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsError(
            f"{url}: the server's certificate is not trusted "
            f"(certificate verify failed: {exc.verify_message}); give the certificate of "
            "the CA that signed it (or the self-signed certificate itself) as the CA file"
        )
    return TlsError(f"{url}: TLS handshake failed ({exc.reason or exc})" + _NOT_TLS_HINT)


def _scheme_hint(url: str, exc: BaseException) -> str:
    """A likely ws:// vs wss:// mix-up, judged from how the handshake failed."""
    secure = url.lower().startswith("wss://")
    if secure and isinstance(exc, ConnectionResetError):
        return _NOT_TLS_HINT
    if not secure and isinstance(exc, InvalidMessage):
        return " (if the server uses TLS, the URL must start with wss://)"
    return ""


def _closed_during_hello(shown: str, exc: ConnectionClosed) -> ServerUnreachable:
    if exc.rcvd is not None and exc.rcvd.code == 1013:  # "try again later": full
        return ServerBusy(f"{shown} is busy ({exc.rcvd.reason or 'try again later'})")
    return ServerUnreachable(f"{shown} closed the connection during hello: {exc}")


#: A closing handshake is waited for at most this long: a live server answers a close
#: at once, a dead link never does.
MAX_CLOSE_WAIT_S = 2.0


def close_wait_s(ping_timeout_s: float) -> float:
    """How long a link given up (no pong, or closed by us) waits for the server's close
    before the socket is dropped: never longer than the pong timeout itself."""
    return min(MAX_CLOSE_WAIT_S, ping_timeout_s)


def _stall_guarded(write_timeout_s: float) -> type[ClientConnection]:
    """The link's connection class: given up once the server has taken nothing we sent
    for ``write_timeout_s`` (a frozen server whose machine keeps the connection open);
    its keepalive ping would wait behind the same full buffer and never time out."""

    class GuardedConnection(WriteStallGuard, ClientConnection):
        def write_stalled(self) -> None:
            log.warning(
                "the server took nothing we sent for %g s (it stopped reading); link dropped",
                write_timeout_s,
            )

    GuardedConnection.write_timeout_s = write_timeout_s
    return GuardedConnection


class ServerLink:
    """A connected, greeted server. Use :meth:`open`, then ``async with``."""

    def __init__(self, ws: ClientConnection, ready: Ready) -> None:
        self._ws = ws
        self.ready = ready

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        token: str | None = None,
        client_name: str = f"tingxie/{__version__}",
        timeout_s: float = 10.0,
        ca_file: str | None = None,
        log_content: bool = False,
        ping_interval_s: float = 20.0,
        ping_timeout_s: float = 60.0,
    ) -> ServerLink:
        """Connect and exchange hello/ready. Raises a :class:`ClientError` subclass.

        The token goes in an ``Authorization`` header (not the URL, where proxies and
        logs would see it). ``ca_file`` is trusted for ``wss://`` instead of the
        system's CAs. ``log_content`` lets frame payloads into the DEBUG log.
        """
        shown = redact_url(url)  # error messages end up in logs and on screen
        headers = {"Authorization": f"Bearer {token}"} if token else None
        tls = client_tls_context(url, ca_file)
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                ssl=tls,
                open_timeout=timeout_s,
                # Larger messages are refused by the transport (close code 1009): a
                # hostile server cannot make us buffer 100 MB.
                max_size=MAX_SERVER_MESSAGE_BYTES,
                compression=None,
                proxy=websocket_proxy(url),  # loopback never through the system proxy
                # A link that goes silent (no pong within ping_timeout_s) is closed; a
                # live server answers a close at once, a dead link never does.
                ping_interval=ping_interval_s,
                ping_timeout=ping_timeout_s,
                close_timeout=close_wait_s(ping_timeout_s),
                create_connection=_stall_guarded(ping_timeout_s),
                logger=WireLogRedactor(
                    logging.getLogger("websockets.client"), log_content=log_content
                ),
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                what = "refused the token" if token else "needs a token and none was sent"
                raise AuthFailed(f"{shown} {what} (HTTP 401)") from None
            if status == 403:
                raise AuthFailed(
                    f"{shown} refused the connection (HTTP 403: the server does not allow "
                    "this client's web origin)"
                ) from None
            raise ServerUnreachable(
                f"{shown} answered HTTP {status}, not a tingxie server"
            ) from None
        except ssl.SSLError as exc:
            raise _tls_failure(shown, exc) from None
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
            raise ServerUnreachable(
                f"cannot connect to {shown}: {str(exc) or type(exc).__name__}"
                + _scheme_hint(url, exc)
            ) from None
        try:
            await ws.send(encode_client(Hello(protocol=PROTOCOL_VERSION, client=client_name)))
            ready = await asyncio.wait_for(cls._await_ready(ws), timeout_s)
        except ConnectionClosed as exc:  # e.g. a full server that closes right after 101
            await ws.close()
            raise _closed_during_hello(shown, exc) from None
        except asyncio.TimeoutError:
            await ws.close()
            raise ServerUnreachable(
                f"{shown} did not answer hello within {timeout_s:g} s"
            ) from None
        except BaseException:
            await ws.close()
            raise
        if ready.protocol != PROTOCOL_VERSION:
            await ws.close()
            raise VersionMismatch(
                f"server speaks protocol {ready.protocol}, this client {PROTOCOL_VERSION}"
            )
        return cls(ws, ready)

    @staticmethod
    async def _await_ready(ws: ClientConnection) -> Ready:
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                message = decode_server(raw)
                if isinstance(message, Ready):
                    return message
                if isinstance(message, Error):
                    if message.code is ErrorCode.UNSUPPORTED_VERSION:
                        raise VersionMismatch(message.message)
                    if message.code in (ErrorCode.SERVER_BUSY, ErrorCode.SHUTTING_DOWN):
                        raise ServerBusy(f"server is busy: {message.message}")
                    raise ServerUnreachable(f"server refused the connection: {message.message}")
        except ConnectionClosed as exc:
            raise _closed_during_hello("server", exc) from None
        except ProtocolError as exc:  # a broken or foreign server: retried like a dead one
            raise ServerUnreachable(f"server sent an invalid message before ready: {exc}") from None
        raise ServerUnreachable("server closed the connection before ready")

    async def __aenter__(self) -> ServerLink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(
        self, utterance_id: str = "", language: str | None = None, context: str = ""
    ) -> None:
        await self._ws.send(
            encode_client(Start(id=utterance_id, language=language, context=context))
        )

    async def send_audio(self, pcm: bytes) -> None:
        await self._ws.send(pcm)

    async def stop(self, utterance_id: str = "") -> None:
        await self._ws.send(encode_client(Stop(id=utterance_id)))

    async def cancel(self, utterance_id: str = "") -> None:
        await self._ws.send(encode_client(Cancel(id=utterance_id)))

    async def send(self, frame: Start | Stop | Cancel | bytes) -> None:
        """One frame as the client machine produced it."""
        await self._ws.send(frame if isinstance(frame, bytes) else encode_client(frame))

    async def messages(self) -> AsyncIterator[ServerMessage]:
        """Server messages until the connection closes (unknown types are skipped)."""
        invalid = 0
        try:
            async for raw in self._ws:
                if isinstance(raw, bytes):
                    continue
                try:
                    message = decode_server(raw)
                except ProtocolError as exc:
                    invalid += 1
                    if invalid == 1:  # once per link: a broken server could send thousands
                        log.warning("ignoring invalid server message: %s", exc)
                    continue
                if message is not None:
                    yield message
        except ConnectionClosed:
            return

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    def close_reason(self) -> str:
        """Why the link ended, in words (after :meth:`messages` returned)."""
        code = self._ws.close_code
        sent = self._ws.protocol.close_sent  # we may have failed it: no answer to our close
        if code == 1009 or (sent is not None and sent.code == 1009):
            return f"the server sent a message larger than {MAX_SERVER_MESSAGE_BYTES} bytes"
        reason = self._ws.close_reason
        if code is None or code == 1006:
            return "connection lost"
        return f"server closed the connection ({code}{': ' + reason if reason else ''})"

    async def close(self) -> None:
        await self._ws.close()
