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
import contextlib
import errno
import itertools
import logging
import os
import resource
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

from chatproto import HANDSHAKE_FLOOR_S, Connection, ErrorCode, Sender, State
from chatproto.messages import Error, Ping
from reference_server.backplane import LocalBackplane
from reference_server.config import ServerConfig
from reference_server.service import ChatService
from reference_server.session import Session
from reference_server.store import Store
from reference_server.throttle import RareLog

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


class ConnectionSlot:
    """One admitted connection's place under the caps; ``release`` when it ends (idempotent)."""

    __slots__ = ("_held", "_slots", "address")

    def __init__(self, slots: ConnectionSlots, address: str) -> None:
        self._slots = slots
        self.address = address
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release(self.address)


class ConnectionSlots:
    """Connections open, in all and per address, against the caps (CP-SEC-12).

    ``cap`` is ``max_connections`` lowered to what the file-descriptor limit
    allows, so that a refusal (one ERROR, then close) is always possible: past
    ``cap`` the accept still finds a descriptor, and the ERROR is sent. The
    refusals in progress are bounded too (``refusal_room``); beyond that, in a
    flood, a connection is closed at once without a frame (why CP-SEC-12 is a
    SHOULD).
    """

    def __init__(self, cap: int, per_address: int, refusal_room: int) -> None:
        self.cap = cap
        self.per_address = per_address
        self.refusal_room = refusal_room
        self.open = 0
        self.refusing = 0
        self.by_address: dict[str, int] = {}

    def take(self, address: str) -> ConnectionSlot | str:
        """A slot for a connection from ``address``, or the name of the cap it would pass."""
        if self.open >= self.cap:
            return "max_connections"
        if self.by_address.get(address, 0) >= self.per_address:
            return "max_connections_per_address"
        self.open += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1
        return ConnectionSlot(self, address)

    def release(self, address: str) -> None:
        self.open -= 1
        left = self.by_address[address] - 1
        if left:
            self.by_address[address] = left
        else:
            del self.by_address[address]


_FD_RESERVE = 64
"""Descriptors kept for everything but connections: stdio, SQLite's files, the listening
sockets, the event loop's own (epoll, wake-up pipe), log files, the spare below."""


def connection_caps(max_connections: int) -> tuple[int, int, int | None]:
    """(cap, refusal room, descriptor limit): ``max_connections`` within ``ulimit -n``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections, max(8, max_connections // 8), None
    budget = max(2, soft - _FD_RESERVE)
    refusal_room = max(1, min(budget // 8, 1024))
    return max(1, min(max_connections, budget - refusal_room)), refusal_room, soft


REFUSAL_RETRY_AFTER_MS = 10_000
"""What TOO_MANY_CONNECTIONS tells a refused client to wait: long enough that a crowd
retrying does not keep the server full of refusals, short enough for a person."""
REFUSAL_GRACE_S = 2.0
"""How long a refused connection may take to read its ERROR before it is cut."""


class _Refusal(asyncio.Protocol):
    """Sends one fatal ERROR TOO_MANY_CONNECTIONS and closes, reading and dropping the rest.

    Closing with unread input makes the kernel send a reset, which can destroy
    the ERROR before the client reads it (a client that sent HELLO at once);
    so the sending side is shut and input is read until the client hangs up or
    the grace period ends (CP-CLOSE-6).
    """

    def __init__(self, frame: bytes, done: Callable[[], None]) -> None:
        self._frame = frame
        self._done = done
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        transport.write(self._frame)
        if transport.can_write_eof():
            transport.write_eof()
        else:  # TLS cannot half-close: close() sends close_notify after the ERROR
            transport.close()
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_GRACE_S, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._done()


class Listener:
    """Listens on TCP, admits or refuses each connection, and does TLS handshakes itself.

    Accepting here rather than in ``loop.create_server`` puts the connection
    caps before any work (a TLS handshake, a ``Session``) and keeps accept()
    failures (out of file descriptors) out of the event loop's handler, which
    logs a traceback per attempt. For TLS, ``loop.create_server(ssl=...)``
    would do the handshakes, but neither asyncio nor uvloop reports a failed
    one outside debug mode; and ``loop.start_tls`` on an accepted plain
    connection loses its first bytes under uvloop, which starts reading after
    ``connection_made`` whatever the protocol asked. ``connect_accepted_socket``
    behaves the same under both loops: it raises the handshake's error, and
    only a connection that completed it reaches its protocol.
    """

    def __init__(self, protocol_factory: Callable[[ConnectionSlot], asyncio.Protocol],
                 context: ssl.SSLContext | None, slots: ConnectionSlots,
                 refusal: Callable[[str], bytes]) -> None:
        self._protocol_factory = protocol_factory
        self._context = context
        self.slots = slots
        self._refusal = refusal
        self.sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._connecting: set[asyncio.Task[None]] = set()
        self._rare_log = RareLog()
        self._spare_fd: int | None = _open_spare()

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
                if port == 0:  # every address on the port the first one got
                    port = listener.getsockname()[1]
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
                    connection, address = await loop.sock_accept(listener)
                except ConnectionAbortedError:  # gone before we accepted it
                    continue
                except OSError as exc:
                    await self._accept_failed(listener, exc)
                    continue
                self._admit(connection, address)
        finally:  # cancelled by close(): sock_accept has let go of the socket by now
            listener.close()

    def _admit(self, connection: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        slot = self.slots.take(host)
        if isinstance(slot, str):
            self._refuse(connection, host, slot)
            return
        self._connect(connection, lambda: self._protocol_factory(slot), slot.release)

    def _refuse(self, connection: socket.socket, host: str, cap: str) -> None:
        slots = self.slots
        if slots.refusing >= slots.refusal_room:  # a flood: no ERROR, just close
            self._rare_log.warning("refuse", "refused connection peer=%s: %s reached (%d "
                                   "open), closed without ERROR", host, cap, slots.open)
            connection.close()
            return
        self._rare_log.warning("refuse", "refused connection peer=%s: %s reached (%d open)",
                               host, cap, slots.open)
        slots.refusing += 1
        refusing = True

        def done() -> None:
            nonlocal refusing
            if refusing:
                refusing = False
                slots.refusing -= 1

        frame = self._refusal(f"{cap} reached")
        self._connect(connection, lambda: _Refusal(frame, done), done)

    def _connect(self, connection: socket.socket, factory: Callable[[], asyncio.Protocol],
                 failed: Callable[[], None]) -> None:
        task = asyncio.get_running_loop().create_task(self._handshake(connection, factory,
                                                                      failed))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _handshake(self, connection: socket.socket,
                         factory: Callable[[], asyncio.Protocol],
                         failed: Callable[[], None]) -> None:
        """Hand the connection to a protocol from ``factory`` (after the TLS handshake).

        ``failed`` runs if that does not happen; it must be idempotent, since a
        protocol that got the connection also calls it from ``connection_lost``.
        """
        try:
            peer = _peer_text(connection.getpeername())
        except OSError:  # reset before we got here
            connection.close()
            failed()
            return
        loop = asyncio.get_running_loop()
        try:
            if self._context is None:
                await loop.connect_accepted_socket(factory, connection)
            else:
                await loop.connect_accepted_socket(
                    factory, connection, ssl=self._context,
                    ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)
        except OSError as exc:  # the transport has closed the connection
            if self._context is not None:
                log.info("TLS handshake failed peer=%s reason=%s", peer, handshake_failure(exc))
            failed()
        except BaseException:  # cancelled by close() in the middle of a handshake
            connection.close()
            failed()
            raise

    async def _accept_failed(self, listener: socket.socket, exc: OSError) -> None:
        """accept() failed: out of descriptors (EMFILE, ENFILE) or memory.

        At the descriptor limit, the connection waiting in the backlog is taken
        with the spare descriptor and closed at once (after an ERROR, over plain
        TCP), so that waiting clients are refused rather than left hanging, and
        the server accepts again as soon as connections close.
        """
        if exc.errno not in (errno.EMFILE, errno.ENFILE) or self._spare_fd is None:
            self._rare_log.warning("accept", "accept failed: %s; retrying in %g s",
                                   exc.strerror or exc, _ACCEPT_RETRY_S)
            await asyncio.sleep(_ACCEPT_RETRY_S)
            return
        self._rare_log.warning("accept", "accept failed: %s; refusing new connections until "
                               "some close (%d open)", exc.strerror or exc, self.slots.open)
        os.close(self._spare_fd)
        try:
            connection, _ = listener.accept()
        except OSError:  # nobody waiting (Linux says EMFILE before it looks)
            connection = None
        if connection is not None:
            with contextlib.suppress(OSError):
                if self._context is None:
                    connection.send(self._refusal("the file-descriptor limit reached"))
            connection.close()
        self._spare_fd = _open_spare()
        if connection is None:  # wait for the next client rather than spin
            await _readable(listener, _ACCEPT_RETRY_S)

    def close(self) -> None:
        """Stop accepting, and drop the connections still in their handshake."""
        for task in (*self._accepting, *self._connecting):
            task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._accepting, *self._connecting, return_exceptions=True)
        for listener in self.sockets:  # in case an accept task was cancelled before it ran
            listener.close()
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None


async def _readable(sock: socket.socket, timeout: float) -> None:
    """Return when ``sock`` is readable (a connection waits), or after ``timeout``."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await ready
    finally:
        loop.remove_reader(sock.fileno())


def _open_spare() -> int | None:
    """A descriptor held in reserve, given up to accept (and refuse) at the limit."""
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``asyncio`` or ``uvloop``: which event loop serves, for the start-up log line."""
    return type(loop).__module__.split(".")[0]


class ChatServer:
    """The reference server: ``await start()``, later ``await shutdown()``."""

    session_class: type[Session] = Session
    """What each connection is served by; a subclass may override its public methods."""
    service_class: type[ChatService] = ChatService
    """What carries out the requests; a subclass may override its handlers."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.sessions: dict[int, Session] = {}
        self.store: Store | None = None
        self._service: ChatService | None = None
        self._ids = itertools.count(1)
        self._dirty: list[Session] = []
        self._flush_scheduled = False
        self._server: Listener | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keepalive: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.port = 0
        self.connection_slots = ConnectionSlots(
            config.max_connections, config.max_connections_per_address, 8)
        """Replaced at start by one whose cap fits the file-descriptor limit."""

    @property
    def service(self) -> ChatService:
        assert self._service is not None, "the server is not started"
        return self._service

    async def start(self) -> None:
        self.store = Store(self.config.database_path)
        self._service = self.service_class(self.config, self.store,
                                           LocalBackplane(self.session_class.fan_out))
        loop = asyncio.get_running_loop()
        cap, refusal_room, fd_limit = connection_caps(self.config.max_connections)
        if cap < self.config.max_connections:
            log.warning("max_connections lowered from %d to %d: the file-descriptor limit "
                        "(ulimit -n) is %s", self.config.max_connections, cap, fd_limit)
        self.connection_slots = ConnectionSlots(cap, self.config.max_connections_per_address,
                                                refusal_room)
        self._server = Listener(self._new_session, self._tls_context(), self.connection_slots,
                                self._refusal_frame)
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

    def _new_session(self, slot: ConnectionSlot) -> Session:
        return self.session_class(self, next(self._ids), self.config.limits, slot)

    @staticmethod
    def _refusal_frame(detail: str) -> bytes:
        """The ERROR that refuses a connection over a cap (CP-SEC-12)."""
        # No session exists for it: a fresh server Connection checks it as any other ERROR.
        return Connection(Sender.SERVER).send(Error(
            code=int(ErrorCode.TOO_MANY_CONNECTIONS), fatal=True,
            retry_after_ms=REFUSAL_RETRY_AFTER_MS, detail=detail))

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
                if session.gone or session.answering:  # we owe it an answer: not idle
                    continue
                silent = now - session.idle_since
                if silent > limits.idle_timeout_s and (
                        now - session.accepted_at >= HANDSHAKE_FLOOR_S
                        or session.conn.state not in (State.AWAIT_HELLO, State.AWAIT_WELCOME)):
                    # CP-KEEP-5; before WELCOME, not within the floor (CP-HS-12)
                    log.info("idle timeout peer=%s nick=%s", session.peer, session.nick or "-")
                    session.close_with_error(ErrorCode.IDLE_TIMEOUT,
                                             f"nothing received for {limits.idle_timeout_s} s")
                    self.service.leave_chat(session, "idle timeout")
                elif (silent > limits.keepalive_interval_s
                      and now - max(session.idle_since, session.pinged_at)
                      >= limits.keepalive_interval_s
                      and session.conn.state.value == "READY"):
                    # One PING per interval of silence: after the first, after each
                    # further one, never more often (CP-KEEP-4, CP-KEEP-6).
                    session.pinged_at = now
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
