"""The listening server: accepts connections, flushes output once per loop turn.

Per turn of the event loop, every session that received data has had its
events handled; requests wrote their effects to the store and queued frames.
``_flush`` then runs once: commit the store, then one ``write`` per session
with everything queued for it. Nothing reaches a client before its database
change is committed, and a burst of messages into a big room costs one commit
and one write per recipient, not one per message per recipient.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any

from chatproto import ErrorCode
from chatproto.messages import Ping
from reference_server.backplane import LocalBackplane
from reference_server.config import ServerConfig
from reference_server.service import ChatService
from reference_server.session import Session
from reference_server.store import Store

log = logging.getLogger("chatproto.server")

_KEEPALIVE_TICK_S = 0.5
_BACKLOG = 1024
TLS_HANDSHAKE_TIMEOUT_S = 60.0
"""asyncio's and uvloop's default, named so that both loops get the same."""
_ACCEPT_RETRY_S = 1.0
"""After accept() fails for want of file descriptors or memory, as asyncio.Server waits."""

# Why a handshake failed, in words for the person reading the log, by OpenSSL's
# reason code (or our own for errors that are not ssl.SSLError).
_HANDSHAKE_HINTS = {
    "WRONG_VERSION_NUMBER": "not TLS: a plain-TCP client?",
    "HTTP_REQUEST": "an HTTP request, not TLS",
    "UNSUPPORTED_PROTOCOL": "the client offers only TLS older than 1.2",
    "TLSV1_ALERT_PROTOCOL_VERSION": "the client offers only TLS older than 1.2",
    "NO_SHARED_CIPHER": "no cipher suite both sides accept",
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust the certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client does not trust the certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the client does not trust the certificate",
    "CONNECTION_RESET": "the client hung up, as one does that does not trust the certificate",
    "TIMEOUT": f"no handshake within {TLS_HANDSHAKE_TIMEOUT_S:g} s",
}


def handshake_failure(exc: OSError) -> str:
    """``CODE: hint`` for a failed TLS handshake, for the log (no traceback)."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        code = exc.reason
    elif isinstance(exc, ConnectionResetError | BrokenPipeError):
        code = "CONNECTION_RESET"
    elif isinstance(exc, ConnectionAbortedError):  # both loops abort a handshake that is late
        code = "TIMEOUT"
    elif exc.errno is not None:
        code = errno.errorcode.get(exc.errno, str(exc.errno))
    else:
        code = type(exc).__name__
    hint = _HANDSHAKE_HINTS.get(code)
    return f"{code}: {hint}" if hint else code


def _peer_text(address: Any) -> str:
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


class TlsListener:
    """Listens on TCP and does every connection's TLS handshake itself, to log the failures.

    ``loop.create_server(ssl=...)`` would do the handshakes, but neither asyncio
    nor uvloop reports a failed one outside debug mode; and ``loop.start_tls``
    on an accepted plain connection loses its first bytes under uvloop, which
    starts reading after ``connection_made`` whatever the protocol asked.
    ``connect_accepted_socket`` behaves the same under both loops: it raises
    the handshake's error, and only a connection that completed it reaches
    ``protocol_factory``'s protocol.
    """

    def __init__(self, protocol_factory: Callable[[], asyncio.Protocol],
                 context: ssl.SSLContext) -> None:
        self._protocol_factory = protocol_factory
        self._context = context
        self.sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._handshakes: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        """Listen on every address ``host`` resolves to, as ``loop.create_server`` does."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        try:
            for family, address in dict.fromkeys((info[0], info[4]) for info in infos):
                listener = socket.create_server(address, family=family, backlog=_BACKLOG)
                listener.setblocking(False)
                self.sockets.append(listener)
        except OSError:
            for listener in self.sockets:
                listener.close()
            raise
        self._accepting = [loop.create_task(self._accept(listener)) for listener in self.sockets]

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    connection, _ = await loop.sock_accept(listener)
                except ConnectionAbortedError:  # gone before we accepted it
                    continue
                except OSError as exc:  # out of file descriptors or memory
                    log.warning("accept failed: %s; retrying in %g s", exc, _ACCEPT_RETRY_S)
                    await asyncio.sleep(_ACCEPT_RETRY_S)
                    continue
                task = loop.create_task(self._handshake(connection))
                self._handshakes.add(task)
                task.add_done_callback(self._handshakes.discard)
        finally:  # cancelled by close(): sock_accept has let go of the socket by now
            listener.close()

    async def _handshake(self, connection: socket.socket) -> None:
        try:
            peer = _peer_text(connection.getpeername())
        except OSError:  # reset before we got here
            connection.close()
            return
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                self._protocol_factory, connection, ssl=self._context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)
        except OSError as exc:  # the transport has closed the connection
            log.info("TLS handshake failed peer=%s reason=%s", peer, handshake_failure(exc))

    def close(self) -> None:
        """Stop accepting, and drop the connections still in their handshake."""
        for task in (*self._accepting, *self._handshakes):
            task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._accepting, *self._handshakes, return_exceptions=True)
        for listener in self.sockets:  # in case an accept task was cancelled before it ran
            listener.close()


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``asyncio`` or ``uvloop``: which event loop serves, for the start-up log line."""
    return type(loop).__module__.split(".")[0]


class ChatServer:
    """The reference server: ``await start()``, later ``await shutdown()``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.sessions: dict[int, Session] = {}
        self.store: Store | None = None
        self._service: ChatService | None = None
        self._ids = itertools.count(1)
        self._dirty: list[Session] = []
        self._flush_scheduled = False
        self._server: asyncio.Server | TlsListener | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keepalive: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.port = 0

    @property
    def service(self) -> ChatService:
        assert self._service is not None, "the server is not started"
        return self._service

    async def start(self) -> None:
        self.store = Store(self.config.database_path)
        self._service = ChatService(self.config, self.store, LocalBackplane())
        loop = asyncio.get_running_loop()
        context = self._tls_context()
        if context is None:
            self._server = await loop.create_server(
                self._new_session, self.config.host, self.config.port, reuse_address=True,
                backlog=_BACKLOG)
        else:
            self._server = TlsListener(self._new_session, context)
            await self._server.start(self.config.host, self.config.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._keepalive = loop.create_task(self._keepalive_loop())
        log.info("listening on %s:%d%s pid=%d loop=%s", self.config.host, self.port,
                 " (TLS)" if self.config.tls_cert else "", os.getpid(), _loop_name(loop))

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None or self.config.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # CP-SEC-2
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    def _new_session(self) -> Session:
        return Session(self, next(self._ids), self.config.limits)

    async def serve_forever(self) -> None:
        await self._stopped.wait()

    # ---------------------------------------------------------------- output

    def mark_dirty(self, session: Session) -> None:
        self._dirty.append(session)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.service.before_commit()
        assert self.store is not None
        self.store.commit()
        dirty, self._dirty = self._dirty, []
        for session in dirty:
            session.flush()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------- keepalive

    async def _keepalive_loop(self) -> None:
        limits = self.config.limits
        tokens = itertools.count(1)
        while True:
            await asyncio.sleep(_KEEPALIVE_TICK_S)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if session.gone:
                    continue
                silent = now - session.last_received
                if silent > limits.idle_timeout_s:  # CP-KEEP-5
                    log.info("idle timeout peer=%s nick=%s", session.peer, session.nick or "-")
                    session.close_with_error(ErrorCode.IDLE_TIMEOUT,
                                             f"nothing received for {limits.idle_timeout_s} s")
                    self.service.leave_chat(session, "idle timeout")
                elif (silent > limits.keepalive_interval_s and not session.ping_outstanding
                      and session.conn.state.value == "READY"):  # CP-KEEP-4
                    session.ping_outstanding = True
                    session.reply(Ping(token=next(tokens).to_bytes(4, "big")))

    # -------------------------------------------------------------- shutdown

    async def shutdown(self) -> None:
        """Tell every client (SERVER_SHUTDOWN, CP-CLOSE-7), let them drain, close the store."""
        if self._server is None:
            return
        log.info("shutting down: %d connections", len(self.sessions))
        self._server.close()
        if self._keepalive is not None:
            self._keepalive.cancel()
        grace_ms = int(self.config.shutdown_grace_s * 1000)
        # No MEMBER_LEFT storm: once told, a client's Connection is CLOSED and
        # takes no more events, so its later connection_lost tells nobody.
        for session in list(self.sessions.values()):
            session.close_with_error(ErrorCode.SERVER_SHUTDOWN, "server shutting down",
                                     retry_after_ms=grace_ms)
        if self._dirty:
            self._flush()
        deadline = time.monotonic() + self.config.shutdown_grace_s
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions.values()):
            if session.transport is not None:
                session.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await self._server.wait_closed()
        assert self.store is not None
        self.store.close()
        self._server = None
        self._stopped.set()
        log.info("stopped")
