"""Tooling for the reference client library's tests (this is not a test module).

* ``Watched``: a ``ChatClient`` whose ``events()`` a background task drains into
  a list; tests wait for an event with ``expect`` (bounded by a timeout) and
  find out "everything up to now has arrived" with ``barrier``, which sends a
  private message to the client's own nick: the server delivers it behind every
  event it queued to that connection before (spec: messaging, "Private
  messages"; CP-REQ-10), so nothing is left in flight when it comes back.
* ``ClientMaker``: connects ``Watched`` clients to an in-process server, a
  server process or a port, and closes every one of them at teardown.
* ``FakeServer``: a scripted chatproto server built on the sans-IO
  ``chatproto.Connection(Sender.SERVER)``, for the situations a correct server
  never creates on demand (a seq that skips, a drop in the middle of a request,
  a fatal error, two frames in one TCP segment).
* ``free_port``: a port that was free a moment ago (bind 127.0.0.1:0, close).

Every wait is bounded by an asyncio timeout; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import pytest
from server_harness import HOST, describe

from chatproto import Connection, ConnectionClosed, ErrorCode, Limits, Message, Sender, fold
from chatproto.messages import (
    Bye,
    Hello,
    Join,
    ListMembers,
    ListUsers,
    Ok,
    Ping,
    Pong,
    PrivateMessage,
    Quit,
    RoomInfo,
    RoomMessage,
    SendPrivate,
    UserInfo,
    Welcome,
)
from reference_client import ChatClient, ChatError, ClientEvent, Disconnected

DEFAULT_TIMEOUT = 5.0

E = TypeVar("E")
AnyEvent = Message | ClientEvent
Match = type[Any] | tuple[type[Any], ...] | Callable[[Any], bool]
Handlers = dict[type[Message], Callable[[Any], "list[Message] | None"]]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def show(event: object) -> str:
    if isinstance(event, Message):
        return describe(event)
    return repr(event)[:300]


def show_all(events: Iterable[object]) -> str:
    lines = [show(e) for e in events]
    return "\n  ".join(["", *lines]) if lines else " (none)"


def one_line(text: str) -> bool:
    """A one-line human message: not empty, no newline, no traceback."""
    return bool(text.strip()) and "\n" not in text and "Traceback" not in text


# Generous buckets: the barrier (a private message to oneself) and the extra
# requests of the library must never be what a test runs into.
RELAXED = {"msg_rate_burst": 1000, "cmd_rate_burst": 1000}


def check_refused(exc: BaseException, code: ErrorCode, request: str) -> ChatError:
    """``exc`` is a ChatError for ``request`` with ``code``, and prints as one line."""
    assert isinstance(exc, ChatError), repr(exc)
    assert exc.code == code, f"expected {code.name}, got {exc.code}: {exc}"
    assert exc.request == request, exc.request
    assert one_line(str(exc)), repr(str(exc))
    return exc


async def refused(call: object, code: ErrorCode, request: str) -> ChatError:
    """Await ``call`` (a coroutine); it must raise ChatError ``code`` for ``request``."""
    assert asyncio.iscoroutine(call)
    with pytest.raises(ChatError) as info:
        await call
    return check_refused(info.value, code, request)


def room_messages(events: Iterable[object]) -> list[RoomMessage]:
    return [e for e in events if isinstance(e, RoomMessage)]


def without_barriers(events: Iterable[object]) -> list[object]:
    return [e for e in events
            if not (isinstance(e, PrivateMessage) and e.text.startswith("barrier "))]


def _matches(match: Match, event: object) -> bool:
    if isinstance(match, type | tuple):
        return isinstance(event, match)
    return bool(match(event))


class Watched:
    """A ChatClient and everything its ``events()`` has yielded.

    ``log`` keeps every event in arrival order; ``pending`` the ones that no
    ``expect``/``barrier``/``drain`` has handed out yet (as indexes into ``log``).
    """

    def __init__(self, client: ChatClient, label: str = "") -> None:
        self.client = client
        self.label = label or client.nick
        self.log: list[AnyEvent] = []
        self._pending: list[int] = []
        self.ended = asyncio.Event()
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._collect())

    def __repr__(self) -> str:
        return f"<Watched {self.label}>"

    @property
    def pending(self) -> list[AnyEvent]:
        return [self.log[i] for i in self._pending]

    async def _collect(self) -> None:
        try:
            async for event in self.client.events():
                self.log.append(event)
                self._pending.append(len(self.log) - 1)
                self._changed.set()
        finally:
            self.ended.set()
            self._changed.set()

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    async def expect(self, match: Match, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Hand out (remove from ``pending``) the first pending event that matches."""
        return self.log[await self._expect_index(match, timeout)]

    async def _expect_index(self, match: Match, timeout: float) -> int:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for position, index in enumerate(self._pending):
                        if _matches(match, self.log[index]):
                            del self._pending[position]
                            return index
                    if self.ended.is_set():
                        raise AssertionError(
                            f"{self!r}: events() ended without a matching event; "
                            f"pending:{show_all(self.pending)}")
                    await self._wait_change()
        except TimeoutError:
            raise AssertionError(f"{self!r}: no matching event within {timeout} s; "
                                 f"pending:{show_all(self.pending)}") from None

    async def expect_type(self, cls: type[E], timeout: float = DEFAULT_TIMEOUT) -> E:
        event = await self.expect(cls, timeout)
        assert isinstance(event, cls)
        return event

    async def wait_ended(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.ended.wait()
        except TimeoutError:
            raise AssertionError(f"{self!r}: events() still running after {timeout} s; "
                                 f"pending:{show_all(self.pending)}") from None

    async def barrier(self, timeout: float = DEFAULT_TIMEOUT) -> list[AnyEvent]:
        """Everything the server sent this client so far; hands it out.

        A private message to our own nick is queued behind every event queued to
        us before (CP-MSG-4, CP-REQ-10) and events() keeps arrival order, so once
        it comes out of events(), so has everything before it.
        """
        token = "barrier " + secrets.token_hex(8)
        await self.client.send_private(self.client.nick, token)
        marker = await self._expect_index(
            lambda e: isinstance(e, PrivateMessage) and e.text == token, timeout)
        before = [self.log[i] for i in self._pending if i < marker]
        self._pending = [i for i in self._pending if i > marker]
        return before

    def drain(self) -> list[AnyEvent]:
        events = self.pending
        self._pending = []
        return events

    def of_type(self, cls: type[E], *, pending_only: bool = False) -> list[E]:
        source = self.pending if pending_only else self.log
        return [e for e in source if isinstance(e, cls)]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()
        try:
            async with asyncio.timeout(DEFAULT_TIMEOUT):
                await self.ended.wait()
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            raise AssertionError(f"{self!r}: events() did not end after close()") from None

    @property
    def disconnected(self) -> list[Disconnected]:
        return self.of_type(Disconnected)


class ClientMaker:
    """``await maker("alice", port, **options)``: a Watched, connected ChatClient."""

    def __init__(self) -> None:
        self.clients: list[Watched] = []

    async def __call__(self, nick: str, port: int, **options: Any) -> Watched:
        client = await ChatClient.connect(HOST, port, nick=nick, **options)
        watched = Watched(client)
        self.clients.append(watched)
        return watched

    async def close_all(self) -> None:
        clients, self.clients = self.clients, []
        results = await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]


# ---------------------------------------------------------------- fake server


class FakePeer:
    """The server end of one connection to a FakeServer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 limits: Limits) -> None:
        self.reader = reader
        self.writer = writer
        self.limits = limits
        self.conn = Connection(Sender.SERVER, limits)
        self.received: list[Message] = []
        self._unread: list[Message] = []
        self.eof = False
        self.nick = ""
        self.msg_ids = 1000

    async def receive(self, timeout: float = DEFAULT_TIMEOUT) -> Message:
        """The next message from the client (AssertionError at EOF or timeout)."""
        async with asyncio.timeout(timeout):
            while not self._unread:
                if self.eof:
                    raise AssertionError("the client closed the connection")
                data = await self.reader.read(65536)
                if not data:
                    self.eof = True
                self.conn.receive_data(data)
                for event in self.conn.events():
                    if isinstance(event, ConnectionClosed):
                        self.eof = True
                    elif isinstance(event, Message):
                        self.received.append(event)
                        self._unread.append(event)
                    else:
                        raise AssertionError(f"the client sent a bad frame: {event}")
        return self._unread.pop(0)

    async def receive_type(self, cls: type[E], timeout: float = DEFAULT_TIMEOUT) -> E:
        message = await self.receive(timeout)
        assert isinstance(message, cls), f"expected {cls.__name__}, got {show(message)}"
        return message

    async def wait_eof(self, timeout: float = DEFAULT_TIMEOUT) -> list[Message]:
        """Read until the client closes; return what it sent meanwhile."""
        extra: list[Message] = []
        with contextlib.suppress(AssertionError):
            while True:
                extra.append(await self.receive(timeout))
        return extra  # TimeoutError (not caught) when the client keeps it open

    def send(self, *messages: Message) -> None:
        """Write every message in ONE write (they usually arrive in one TCP read)."""
        self.writer.write(b"".join(self.conn.send(message) for message in messages))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def welcome(self, *, nick: str | None = None) -> Hello:
        """Read the client's HELLO and answer WELCOME (with this server's limits)."""
        hello = await self.receive_type(Hello)
        self.nick = nick or hello.nick
        self.send(Welcome(request_id=hello.request_id, version=1, server_name="fake/0.1",
                          nick=self.nick, logged_in=False, casemapping="ascii",
                          capabilities=(), **self.limits.model_dump()))
        return hello

    def answer(self, request: Message) -> list[Message]:
        """What a well-behaved server answers to ``request`` with no state to speak of."""
        rid = request.request_id
        if isinstance(request, Ping):
            return [Pong(request_id=rid, token=request.token)]
        if isinstance(request, Quit):
            return [Bye(request_id=rid)]
        if isinstance(request, SendPrivate):
            self.msg_ids += 1
            if fold(request.nick) == fold(self.nick):  # to oneself: the barrier
                return [PrivateMessage(msg_id=self.msg_ids, timestamp_ms=1, sender=self.nick,
                                       client_msg_id=request.client_msg_id, text=request.text),
                        Ok(request_id=rid, msg_id=self.msg_ids, timestamp_ms=1)]
            return [Ok(request_id=rid, msg_id=self.msg_ids, timestamp_ms=1)]
        if isinstance(request, ListMembers | ListUsers):
            return [UserInfo(request_id=rid, nick=self.nick, away=False, operator=False,
                             registered=False), Ok(request_id=rid)]
        if isinstance(request, Join):
            return [RoomInfo(request_id=rid, room=request.room, member_count=1, last_seq=0),
                    Ok(request_id=rid)]
        return [Ok(request_id=rid)]

    async def serve(self, handlers: Handlers | None = None) -> None:
        """Answer every request until the client closes: ``handlers[type](request)`` gives
        the frames to send (all in one write), ``answer`` does the rest. A handler that
        returns None drops the connection instead (abort)."""
        handlers = handlers or {}
        while True:
            try:
                request = await self.receive(timeout=60)
            except AssertionError:
                return
            handler = handlers.get(type(request))
            frames = handler(request) if handler is not None else self.answer(request)
            if frames is None:
                self.abort()
                return
            self.send(*frames)
            if isinstance(request, Quit):
                await self.close()
                return

    def abort(self) -> None:
        """Drop the connection at once (an RST, no goodbye)."""
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


Script = Callable[[FakePeer], Awaitable[None]]


async def welcome_and_serve(peer: FakePeer) -> None:
    """The plainest script: WELCOME, then ``serve`` with default answers."""
    await peer.welcome()
    await peer.serve()


class FakeServer:
    """Runs ``scripts[n]`` for the n-th accepted connection (the last one for later ones)."""

    def __init__(self, *scripts: Script, limits: Limits | None = None) -> None:
        self.scripts = list(scripts)
        self.limits = limits or Limits()
        self.peers: list[FakePeer] = []
        self.errors: list[BaseException] = []
        self.connected = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.port = 0

    async def start(self) -> FakeServer:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = FakePeer(reader, writer, self.limits)
        index = len(self.peers)
        self.peers.append(peer)
        self.connected.set()
        script = self.scripts[min(index, len(self.scripts) - 1)]
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await script(peer)
        except Exception as exc:  # reported by close(), unless we were closing anyway
            if not self._closing:
                self.errors.append(exc)
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def wait_connections(self, count: int, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.peers) < count:
                self.connected.clear()
                await self.connected.wait()

    async def close(self) -> None:
        """Stop listening, drop every connection, let the scripts end; report their errors."""
        if self._server is not None:
            self._closing = True
            self._server.close()
            for peer in self.peers:
                peer.writer.transport.abort()
            tasks = set(self._tasks)
            if tasks:
                _, stuck = await asyncio.wait(tasks, timeout=5)
                for task in stuck:  # a script waiting for something else than its peer
                    task.cancel()
                if stuck:
                    await asyncio.wait(stuck, timeout=5)
            self._server = None
        if self.errors:
            raise AssertionError(f"the fake server's script failed: {self.errors[0]!r}")
