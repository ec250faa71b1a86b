"""One client connection of a bench script: pipelined requests over ``chatproto.Connection``.

``send`` numbers a request and returns its id at once (so that many can be in
flight); ``answer`` waits for its frames up to the final response. Pairing is
chatproto's ``PendingRequests``; server PINGs are answered here. Frames that
answer nothing (events, refusals with request_id 0) go to ``events``, and
every frame, answers included, to ``on_message`` in arrival order.

Shared by ``attacks.py`` and ``soak.py`` (run as scripts, so this directory is
on ``sys.path``); it imports nothing from ``tests/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import cast

from chatproto import (
    Connection,
    ConnectionClosed,
    FinalResponse,
    FrameRejected,
    LocalProtocolError,
    Message,
    PendingRequests,
    RemoteProtocolError,
    Sender,
    encode,
    error_name,
)
from chatproto.messages import Error, Hello, Ping, Pong, Welcome

HOST = "127.0.0.1"

MessageHook = Callable[["ChatConnection", Message], None]
FaultHook = Callable[[str, str], None]
"""Told (kind, detail) of what went wrong: BAD_FRAME_FROM_SERVER, BAD_STREAM_FROM_SERVER,
TIMEOUT."""


class Lost(Exception):
    """The connection ended, or an answer did not come in time."""


class ChatConnection:
    """One TCP connection to a chatproto server, for a bench script."""

    def __init__(self, *, on_message: MessageHook | None = None,
                 on_fault: FaultHook | None = None, keep_events: bool = True,
                 timeout: float = 10.0, client_name: str = "bench/1") -> None:
        self.conn = Connection(Sender.CLIENT)
        self.client_name = client_name
        """What HELLO says the client is."""
        self.on_message = on_message
        self.on_fault = on_fault
        self.keep_events = keep_events
        self.timeout = timeout
        """The default wait for a connect or an answer, in seconds."""
        self.events: list[Message] = []
        self.closed = asyncio.Event()
        self.opened_at = 0.0
        self.closed_at = 0.0
        self.reset = False
        """The connection ended with a reset (RST), not an orderly end of stream."""
        self.crashed = False
        """Reset by us on purpose (``crash``): what was on its way to it is not owed to it."""
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: PendingRequests[asyncio.Future[list[Message]]] = PendingRequests()
        self._answers: dict[int, asyncio.Future[list[Message]]] = {}
        """Each request's answer until ``answer`` collects it (it may come first)."""

    async def open(self, port: int, host: str = HOST, *, source: str | None = None,
                   receive_buffer: int = 0, nodelay: bool = False) -> ChatConnection:
        """Connect (from the loopback address ``source``, if given); no HELLO yet."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if receive_buffer:  # before connect, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if source is not None:
                sock.bind((source, 0))
            async with asyncio.timeout(self.timeout):
                await asyncio.get_running_loop().sock_connect(sock, (host, port))
            reader, self._writer = await asyncio.open_connection(sock=sock)
        except (OSError, TimeoutError) as exc:
            sock.close()
            raise Lost(f"connect: {exc!r}") from None
        self.opened_at = time.monotonic()
        self._task = asyncio.create_task(self._read(reader))
        return self

    # ------------------------------------------------------------ requests

    def send(self, message: Message) -> int:
        """Send ``message`` (a request gets the next request id); its id (0: no request)."""
        if message.is_request:
            message = message.model_copy(update={"request_id": self._pending.next_id()})
        try:
            data = self.conn.send(message)
        except LocalProtocolError as exc:
            raise Lost(f"cannot send {message.NAME}: {exc}") from None
        return self._write(data, message)

    def send_unchecked(self, message: Message) -> int:
        """Send ``message``'s frame as it is, past every check of our ``Connection``."""
        message = message.model_copy(update={"request_id": self._pending.next_id()})
        return self._write(encode(message), message)

    def _write(self, data: bytes, message: Message) -> int:
        if self._writer is None or self._writer.is_closing() or self.closed.is_set():
            raise Lost("connection closed")
        if message.is_request:
            future = asyncio.get_running_loop().create_future()
            self._pending.track(message, future)
            self._answers[message.request_id] = future
        self._writer.write(data)
        return message.request_id if message.is_request else 0

    async def answer(self, request_id: int, timeout: float | None = None) -> list[Message]:
        """The frames answering request ``request_id``, its final response last."""
        future = self._answers.get(request_id)
        if future is None:
            raise Lost(f"no request {request_id} was sent")
        wait = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(wait):
                frames = await future
            del self._answers[request_id]
            return frames
        except TimeoutError:
            self._fault("TIMEOUT", f"no answer to request {request_id}")
            raise Lost(f"no answer to request {request_id} in {wait} s") from None

    async def request(self, message: Message, timeout: float | None = None) -> list[Message]:
        return await self.answer(self.send(message), timeout)

    async def hello(self, nick: str, password: str = "", *,
                    timeout: float | None = None) -> Message:
        """HELLO; the final answer (WELCOME, or the ERROR)."""
        frames = await self.request(Hello(min_version=1, max_version=1, nick=nick,
                                          password=password, client_name=self.client_name),
                                    timeout)
        return frames[-1]

    async def welcomed(self, nick: str, password: str = "") -> ChatConnection:
        """HELLO that must be answered by WELCOME (Lost otherwise); this connection."""
        answer = await self.hello(nick, password)
        if not isinstance(answer, Welcome):
            refusal = error_name(answer.code) if isinstance(answer, Error) else answer.NAME
            raise Lost(f"HELLO {nick} refused: {refusal}")
        return self

    # ------------------------------------------------------------ the connection

    def pause_reading(self) -> None:
        if self._writer is not None:
            cast(asyncio.Transport, self._writer.transport).pause_reading()

    async def wait_closed(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.closed.wait()
        return self.closed.is_set()

    def crash(self) -> None:
        """Reset the connection now, as a crashed client would."""
        self.crashed = True
        if self._writer is not None:
            self._writer.transport.abort()

    async def close(self, *, reset: bool = False) -> None:
        """Close (``reset``: with a TCP reset) and wait for the reader to finish."""
        if self._writer is not None:
            if reset:
                self._writer.transport.abort()
            elif not self._writer.is_closing():
                self._writer.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(5):
                    await self._task

    def _fault(self, kind: str, detail: str) -> None:
        if self.on_fault is not None:
            self.on_fault(kind, detail)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                try:
                    data = await reader.read(65536)
                except OSError:
                    self.reset = True
                    data = b""
                self.conn.receive_data(data)
                for event in self.conn.events():
                    if isinstance(event, ConnectionClosed):
                        return
                    if isinstance(event, FrameRejected):
                        self._fault("BAD_FRAME_FROM_SERVER", event.detail)
                        continue
                    self._dispatch(event)
                if not data:
                    return
        except RemoteProtocolError as exc:
            if not self.crashed:
                self._fault("BAD_STREAM_FROM_SERVER", f"{exc.code.name} {exc.detail}")
        finally:
            self.closed_at = time.monotonic()
            self.closed.set()
            for outstanding in self._pending.clear():
                if not outstanding.payload.done():
                    outstanding.payload.set_exception(Lost("connection ended before the answer"))
                    outstanding.payload.exception()  # retrieved: nobody may be waiting for it
            if self._writer is not None:
                self._writer.transport.abort()

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, Ping) and message.request_id == 0:
            with contextlib.suppress(Lost):
                self.send(Pong(token=message.token))
            return
        if self.on_message is not None:
            # Answers' frames too, in arrival order: a JOIN's replay must be seen
            # before the live events that follow it in the same read.
            self.on_message(self, message)
        answer = self._pending.receive(message)
        if answer is None:
            if self.keep_events:
                self.events.append(message)
        elif isinstance(answer, FinalResponse) and not answer.payload.done():
            answer.payload.set_result(answer.frames)
