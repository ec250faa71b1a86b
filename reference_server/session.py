"""One client connection: socket events in, ``chatproto.Connection`` in the middle.

A ``Session`` is an ``asyncio.Protocol``: it feeds received bytes to its sans-IO
connection, hands each event to the chat service in order, and queues the
bytes to send. It never writes on its own: the server flushes every session's
queue once per event-loop turn, after committing the database, so a client
gets one write per turn however many frames were queued for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, cast

from chatproto import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    ErrorCode,
    Event,
    FrameRejected,
    LocalProtocolError,
    RemoteProtocolError,
    Sender,
    State,
    error_message,
)
from chatproto.messages import Error, Limits, Message

if TYPE_CHECKING:
    from reference_server.backplane import Member
    from reference_server.server import ChatServer, ConnectionSlot

log = logging.getLogger("chatproto.server")

_EVENTS_PER_TURN = 32
_OUTPUT_PER_TURN = 65_536
"""Requests of one connection handled in one loop turn before the others get theirs: at
most this many, and none more once this many bytes are queued for it in the turn."""


class TokenBucket:
    """``capacity`` tokens, one more every ``interval_ms``: the spec's rate limit (CP-RATE-1)."""

    def __init__(self, capacity: int, interval_ms: float) -> None:
        self.capacity = capacity
        self.interval_s = interval_ms / 1000
        self.tokens = float(capacity)
        self.updated = time.monotonic()

    def take(self) -> int:
        """Take a token: 0 on success, else the milliseconds until one is there."""
        wait_ms = self.wait_ms()
        if not wait_ms:
            self.tokens -= 1
        return wait_ms

    def wait_ms(self) -> int:
        """0 if a token is there, else the milliseconds until one is (takes none)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) / self.interval_s)
        self.updated = now
        if self.tokens >= 1:
            return 0
        return max(1, int((1 - self.tokens) * self.interval_s * 1000 + 0.999))


class Session(asyncio.Protocol):
    """A connected client: its protocol state, identity and output queue."""

    def __init__(self, server: ChatServer, session_id: int, limits: Limits,
                 slot: ConnectionSlot | None = None) -> None:
        self.server = server
        self.session_id = session_id
        self.conn = Connection(Sender.SERVER, limits)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.slot = slot
        """Its place under the connection caps, given back when the connection ends."""
        self._hello_timer: asyncio.TimerHandle | None = None
        self.address = "?"
        """The peer's IP address: the key of the buckets shared by its connections."""
        # Identity, set by the chat service.
        self.nick = ""
        self.nick_fold = ""
        self.logged_in = False
        self.operator = False
        self.away_message = ""
        # Output: frames queued this turn, written by the server's flush.
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._out_room = server.config.max_output_buffer
        """What may be queued without asking ``exceeds_output_bound``: the bound less the
        transport's buffer as of our last write. That buffer only shrinks until we write
        again, so staying under this is staying under the bound (a check per turn, not
        per delivery)."""
        self.dirty = False
        self._close_after_flush = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self.gone = False
        """Set once the session left the chat (closed, dropped): deliver nothing more."""
        # Input: events are pulled from self.conn and handled one at a time, in
        # order (CP-REQ-8); none is pulled while one is still being answered.
        self.answering = False
        """A request of this client is still being worked on (a password check)."""
        self._hello_overdue = False
        self._pump_scheduled = False
        self._reading = True
        # Keepalive bookkeeping, in loop time.
        now = time.monotonic()
        self.accepted_at = now
        """When the connection was accepted: the handshake floor counts from here (CP-HS-12)."""
        self.idle_since = now
        """When the client's silence began: its last complete frame, or the end of a wait
        of ours on its behalf (a password check): time the server takes is not the
        client's silence (CP-KEEP-5)."""
        self.last_sent = now
        self.pinged_at = float("-inf")
        """When the server last sent this client a PING (CP-KEEP-6)."""
        self.msg_bucket = TokenBucket(limits.msg_rate_burst, limits.msg_rate_interval_ms)
        self.cmd_bucket = TokenBucket(limits.cmd_rate_burst, limits.cmd_rate_interval_ms)

    # ------------------------------------------------------------ asyncio side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports implement the interface
        # without subclassing asyncio.Transport.
        self.transport = transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Frames are small and interactive; Nagle would hold them back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        log.info("connect peer=%s session=%d", self.peer, self.session_id)
        self.server.sessions[self.session_id] = self
        self._hello_timer = asyncio.get_running_loop().call_later(
            self.server.config.hello_timeout_s, self._hello_timed_out)

    def _hello_timed_out(self) -> None:
        """No WELCOME within hello_timeout_s: close, so that silent connections do not pile
        up for the whole idle timeout (CP-HS-11)."""
        self._hello_timer = None
        if self.gone or self.conn.state not in (State.AWAIT_HELLO, State.AWAIT_WELCOME):
            return
        if self.answering:  # a HELLO being checked: the wait is ours; judge it once answered
            self._hello_overdue = True
            return
        timeout = self.server.config.hello_timeout_s
        log.info("handshake timeout peer=%s session=%d", self.peer, self.session_id)
        self.close_with_error(ErrorCode.IDLE_TIMEOUT, f"no handshake within {timeout:g} s")
        self.server.service.leave_chat(self, "handshake timeout")

    def data_received(self, data: bytes) -> None:
        if self.gone:  # closing after a fatal error or QUIT: the rest is read and dropped
            return
        self.conn.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        if not self.gone:
            self.conn.receive_data(b"")
            self._pump()
        # Keep our side open until BYE is flushed; TLS cannot half-close.
        return self.transport is not None and \
            self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._out_room = -1  # fan_out then takes its slow path, which sees no transport
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None
        if self.slot is not None:
            self.slot.release()
        if self._abort_timer is not None:  # the socket is gone: nothing left to cut
            self._abort_timer.cancel()
            self._abort_timer = None
        self.server.sessions.pop(self.session_id, None)
        self.server.service.leave_chat(self, "connection lost" if exc else "closed")

    # ----------------------------------------------------------- input, in order

    def _pump(self) -> None:
        """Hand events to the service until one goes asynchronous or none are left.

        After ``_EVENTS_PER_TURN`` events, or once their answers fill
        ``_OUTPUT_PER_TURN``, it goes on in the next loop turn, so that one
        connection's pipelined requests do not hold everyone else's.
        """
        self._pump_scheduled = False
        handled = 0
        while not self.answering and not self.gone:
            if handled == _EVENTS_PER_TURN or self._out_bytes >= _OUTPUT_PER_TURN:
                # Read nothing more until these are handled: the Connection would
                # buffer whatever a pipelining client sends meanwhile, without bound.
                self._set_reading(False)
                self._schedule_pump()
                return
            handled += 1
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                self.fail(exc)
                return
            if event is NEED_DATA:
                self._set_reading(True)
                return
            if not isinstance(event, ConnectionClosed):
                self.idle_since = time.monotonic()
            pending = self.handle_event(event)
            if pending is not None:
                self._wait_for(pending)

    def handle_event(self, event: Event) -> Awaitable[None] | None:
        """Act on one event from the Connection: a request, a rejected frame, the end."""
        if isinstance(event, ConnectionClosed):
            self.server.service.leave_chat(self, "client closed the connection")
            self.close_after_flush()
            return None
        if isinstance(event, FrameRejected):
            self.reply(event.error_reply())
            return None
        return self.server.service.handle(self, event)

    def _set_reading(self, reading: bool) -> None:
        if self.transport is None or self._reading == reading:
            return
        self._reading = reading
        if reading:
            self.transport.resume_reading()
        else:
            self.transport.pause_reading()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _wait_for(self, pending: Awaitable[None]) -> None:
        # A handler that must wait (a password check in a worker thread) holds
        # back every later frame of this connection until it is done.
        self.answering = True
        self._set_reading(False)

        async def finish() -> None:
            try:
                await pending  # answers its own failures (ChatService.handle)
            finally:
                self.answering = False
                self.idle_since = time.monotonic()
                if self._hello_overdue:
                    self._hello_timed_out()
                self._pump()  # reads again once the events held back are handled

        self.server.spawn(finish())

    # ------------------------------------------------------------------ output

    def backlog(self) -> int:
        """Bytes queued for this client: this turn's frames and the transport's buffer."""
        buffered = self.transport.get_write_buffer_size() if self.transport is not None else 0
        return self._out_bytes + buffered

    def reply(self, message: Message) -> None:
        """Queue a message to this client through its Connection (state-checked).

        Answers count against ``max_output_buffer`` as deliveries do (CP-FLOW-2).
        """
        if self.gone or self.conn.state is State.CLOSED:
            return
        try:
            frame = self.conn.send(message)
        except LocalProtocolError:
            log.exception("refused to send %s session=%d", message.NAME, self.session_id)
            return
        if self.exceeds_output_bound(self.backlog() + len(frame)) and self._out:
            self._write_now()  # let the kernel take what it can, as the turn's end would
        if self.exceeds_output_bound(self.backlog() + len(frame)):
            self.drop_slow_consumer()
            return
        self._queue(frame)
        if self._connection_closed():  # a fatal ERROR or BYE: nothing may follow
            self.close_after_flush()

    def _connection_closed(self) -> bool:
        return self.conn.state is State.CLOSED

    def deliver(self, event_type: type[Message], frame: bytes) -> None:
        """Queue an event frame encoded once for many recipients (no per-recipient work).

        An event this connection may not carry now (before WELCOME, after BYE) is
        not queued: the same state table as ``reply`` decides, without encoding.
        """
        self.fan_out((self,), event_type, frame)

    @staticmethod
    def fan_out(members: Iterable[Member], event_type: type[Message], frame: bytes) -> None:
        """``deliver`` one frame to each of ``members`` (sessions all): the backplane's loop.

        Its body runs once per recipient of every broadcast, so ``deliver``'s checks
        are written out here with no call per recipient: the state table read as an
        attribute (``Connection.sendable``), the output bound asked only once the
        queue passes what it surely allows (``_out_room``), the server told only of
        a session's first frame in the turn.
        """
        size = len(frame)
        for session in cast("Iterable[Session]", members):
            if session.gone or event_type not in session.conn.sendable:
                continue
            queued = session._out_bytes + size
            if queued > session._out_room and session._past_output_bound(queued):
                continue
            session._out.append(frame)
            session._out_bytes = queued
            if not session.dirty:
                session.dirty = True
                session.server.mark_dirty(session)

    def _past_output_bound(self, queued: int) -> bool:
        """``fan_out``'s slow path: True, with the client dropped (CP-FLOW-2), when
        ``queued`` more bytes would pass the bound; True too once the socket is gone."""
        transport = self.transport
        if transport is None:
            return True
        if self.exceeds_output_bound(queued + transport.get_write_buffer_size()):
            self.drop_slow_consumer()
            return True
        return False

    def _queue(self, frame: bytes) -> None:
        self._out.append(frame)
        self._out_bytes += len(frame)
        if not self.dirty:
            self.dirty = True
            self.server.mark_dirty(self)

    def flush(self) -> None:
        """Write everything queued this turn in one write (called by the server)."""
        self.dirty = False
        transport = self.transport
        if transport is None:
            self._out.clear()
            return
        if self._out:
            self.write(transport, b"".join(self._out) if len(self._out) > 1 else self._out[0])
            self._written(transport)
        if self._close_after_flush:
            transport.close()
            self._abort_later(transport)
        elif self.exceeds_output_bound(transport.get_write_buffer_size()):
            self.drop_slow_consumer()

    # The two decisions of the output path, each made in one method, so that a
    # subclass can change one of them alone (tests/faulty_servers.py does, to
    # break CP-FLOW-1 or CP-FLOW-4 and nothing else).

    def write(self, transport: asyncio.Transport, data: bytes) -> None:
        """Hand a turn's frames to the transport: the one place output leaves a session."""
        transport.write(data)

    def _written(self, transport: asyncio.Transport) -> None:
        """After a write: the queue is empty, and what ``deliver`` may queue is new."""
        self.last_sent = time.monotonic()
        self._out.clear()
        self._out_bytes = 0
        self._out_room = self.server.config.max_output_buffer - transport.get_write_buffer_size()

    def exceeds_output_bound(self, queued: int) -> bool:
        """Would ``queued`` bytes for this client pass ``max_output_buffer`` (CP-FLOW-1)?"""
        return queued > self.server.config.max_output_buffer

    def _write_now(self) -> None:
        """Write this turn's frames before the turn ends, their changes committed first."""
        if self.transport is None:
            return
        self.server.service.before_commit()
        assert self.server.store is not None
        self.server.store.commit()
        self.write(self.transport, b"".join(self._out))
        self._written(self.transport)

    def close_after_flush(self) -> None:
        self._close_after_flush = True
        if not self.dirty:
            self.dirty = True
            self.server.mark_dirty(self)

    def fail(self, exc: RemoteProtocolError) -> None:
        """The client broke a fatal rule: tell it (CP-ERR-1) and close."""
        log.info("protocol error peer=%s nick=%s code=%s detail=%s", self.peer,
                 self.nick or "-", exc.code.name, exc.detail)
        self.reply(error_message(exc))
        self.server.service.leave_chat(self, f"protocol error {exc.code.name}")
        self.close_after_flush()

    def close_with_error(self, code: ErrorCode, detail: str, retry_after_ms: int = 0) -> None:
        """Send a fatal ERROR of ours (shutdown, idle timeout) and close."""
        self.reply(Error(code=int(code), fatal=True, retry_after_ms=retry_after_ms,
                         detail=detail))
        self.close_after_flush()

    def drop_slow_consumer(self) -> None:
        """Past the output bound: discard the queue, try to say why, close (CP-FLOW-2)."""
        if self.gone:
            return
        log.info("slow consumer peer=%s nick=%s backlog=%d", self.peer, self.nick or "-",
                 self._out_bytes + (self.transport.get_write_buffer_size()
                                    if self.transport else 0))
        self._out.clear()
        self._out_bytes = 0
        self.server.service.leave_chat(self, "slow consumer")
        transport = self.transport
        if transport is not None:
            # Whole frames only ever reach the transport, so this lands on a
            # frame boundary (CP-FLOW-3); the client may never read it.
            with contextlib.suppress(LocalProtocolError):  # unless it is closed already
                transport.write(self.conn.send(Error(code=int(ErrorCode.SLOW_CONSUMER),
                                                     fatal=True, detail="output buffer exceeded")))
            transport.close()
            self._abort_later(transport)

    def _abort_later(self, transport: asyncio.Transport) -> None:
        # close() waits for the buffer to drain; a client that never reads would
        # hold the socket forever, so give it a grace period and then cut it.
        # connection_lost cancels the timer: aborting a transport that already
        # closed raises inside the event loop.
        if self._abort_timer is None:
            loop = asyncio.get_running_loop()
            self._abort_timer = loop.call_later(self.server.config.shutdown_grace_s,
                                                transport.abort)
