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
import itertools
import logging
import os
import ssl
import time
from collections.abc import Coroutine
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
        self._server: asyncio.Server | None = None
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
        self._server = await loop.create_server(
            self._new_session, self.config.host, self.config.port, ssl=self._tls_context(),
            reuse_address=True, backlog=1024)
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
