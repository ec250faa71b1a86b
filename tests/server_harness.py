"""Tooling for the reference server's integration tests (this is not a test module).

* ``ChatTestClient``: an asyncio client over a real TCP socket (TLS with an
  ``ssl.SSLContext``), built on the sans-IO ``chatproto.Connection(Sender.CLIENT)``.
  It numbers requests, sorts every incoming frame into "part of the answer to
  request N" or "event", keeps the events it has not handed out yet in a queue,
  answers server PINGs, and offers the PING barrier (spec: "The PING barrier")
  so that tests never sleep.
* ``ServerProcess``: ``python -m reference_server`` (or another ``entry``) as a
  child process, started by the bench's launcher (``bench/server_process.py``,
  the one copy of it), its bound port read from the "listening on HOST:PORT"
  line on its stderr, stopped with SIGTERM (SIGKILL as a last resort) whatever
  happens to the test; ``run_to_exit`` for command lines that end by themselves.

Every wait here is bounded by an asyncio (or subprocess) timeout; nothing sleeps
for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast, overload

import trustme
from pairs import raw_frame as raw_frame

# The server launcher is the bench's: the bench may not import the tests, so the
# tests import it (bench/ holds scripts, not a package; pytest's pythonpath has it).
from server_process import SERVER_ENTRY as SERVER_ENTRY
from server_process import ServerProcess as ChildServer
from server_process import server_command, server_environment

from chatproto import (
    Connection,
    ConnectionClosed,
    ErrorCode,
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
from chatproto.messages import (
    Bye,
    Error,
    Hello,
    Ping,
    Pong,
    Quit,
    Welcome,
)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 5.0
CLIENT_NAME = "chatproto-tests/0.1"

M = TypeVar("M", bound=Message)
Matcher = type[Message] | tuple[type[Message], ...] | Callable[[Message], bool]


@dataclass(frozen=True)
class Pki:
    """A throw-away CA (trustme) and a certificate it issued for ``HOST``, on disk."""

    ca: trustme.CA
    ca_pem: Path
    cert: Path
    key: Path

    @classmethod
    def issue(cls, directory: Path) -> Pki:
        ca = trustme.CA()
        issued = ca.issue_cert(HOST)  # an IP address SAN for 127.0.0.1
        ca_pem, cert, key = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
        ca.cert_pem.write_to_path(str(ca_pem))
        cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        issued.private_key_pem.write_to_path(str(key))
        return cls(ca, ca_pem, cert, key)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        return context


def unchecked(cls: type[Message], request_id: int = 0, **fields: Any) -> bytes:
    """The frame of a ``cls`` message built WITHOUT validation, for invalid requests.

    Missing fields take their defaults; field values are encoded as given
    (``"\\x1b"`` in a text, a Cyrillic nick, an empty password...).
    """
    return encode(cls.model_construct(request_id=request_id, **fields))


def str8(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return bytes([len(data)]) + data


def str16(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(data)) + data


def describe(event: object) -> str:
    """One short line for a frame or event, for assertion messages."""
    if isinstance(event, str):
        return event
    if isinstance(event, Message):
        fields = event.model_dump()
        if isinstance(event, Error):
            fields["code"] = error_name(event.code)
        text = " ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"{event.NAME} {text}"[:300]
    return repr(event)[:300]


def describe_all(events: Iterable[object]) -> str:
    lines = [describe(e) for e in events]
    return "\n  ".join(["", *lines]) if lines else " (none)"


class HarnessError(AssertionError):
    """A wait of the harness failed: timeout, closed connection, protocol fault."""


class HelloRefused(HarnessError):
    """The server answered HELLO with ERROR; ``error`` is that frame."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"HELLO refused: {describe(error)}")
        self.error = error


class ConnectionLost(HarnessError):
    """The connection ended while a request was still waiting for its answer."""


@dataclass
class _Awaited:
    """What a test waits for of one request (the payload of ``PendingRequests``)."""

    request: Message | str
    future: asyncio.Future[list[Message]]
    frames: list[Message] = field(default_factory=list)
    """The answer so far, the final response last once it came."""
    first_serial: int = -1
    """Serial number of the next event when the first frame of the answer arrived."""
    final_serial: int = -1
    """Serial number of the next event when the final response arrived."""


def _read_write(writer: asyncio.StreamWriter) -> asyncio.Transport:
    # A cast, not an isinstance check: uvloop's transports have the methods
    # without subclassing asyncio's classes.
    return cast(asyncio.Transport, writer.transport)


def _matches(match: Matcher, event: Message) -> bool:
    if isinstance(match, type | tuple):
        return isinstance(event, match)
    return match(event)


class ChatTestClient:
    """One client connection to a chatproto server, for tests.

    Events (``request_id`` 0, or a request id that no pending request owns) are
    queued until ``expect``, ``barrier`` or ``drain`` hands them out. Server
    PINGs are answered at once (unless ``auto_pong`` is False) and also queued.
    Types listed in ``drop`` are decoded but not queued (a client in a room of
    a thousand members does not need every MEMBER_JOINED).
    """

    def __init__(
        self,
        port: int,
        host: str = HOST,
        *,
        name: str = "",
        auto_pong: bool = True,
        drop: Iterable[type[Message]] = (),
        rcvbuf: int | None = None,
        source_host: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.auto_pong = auto_pong
        self.drop = tuple(drop)
        self.rcvbuf = rcvbuf
        self.source_host = source_host
        self.tls = tls
        """Speak TLS with this context (the certificate must name ``host``); None: plain TCP."""
        self.conn = Connection(Sender.CLIENT)
        self.welcome: Welcome | None = None
        self.nick: str | None = None
        self.protocol_faults: list[str] = []
        """Frames from the server that broke the protocol (should stay empty)."""
        self.truncated = False
        """The stream ended in the middle of a frame (TRUNCATED_FRAME)."""
        self.reset = False
        """The connection was reset (or another socket error ended it)."""
        self.pings_received = 0
        self.bytes_received = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: PendingRequests[_Awaited] = PendingRequests()
        """Requests waiting for their final response; it numbers them too."""
        self._answered: dict[int, _Awaited] = {}
        """Requests answered whose answer nobody has collected yet."""
        self._events: list[tuple[int, Message]] = []
        self._serial = 0
        self.last_answer_window = (0, 0)
        """Event serials [first, final) that arrived between the first and the final frame
        of the last answer ``response`` returned (see ``events_in_window``)."""
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = asyncio.Event()
        self._reading = asyncio.Event()
        self._reading.set()

    def __repr__(self) -> str:
        return f"<ChatTestClient {self.name or self.nick or '?'} port={self.port}>"

    # ------------------------------------------------------------ connection

    async def connect(self, timeout: float = DEFAULT_TIMEOUT) -> ChatTestClient:
        """Open the connection (and do the TLS handshake with ``tls``); no HELLO yet."""
        server_hostname = self.host if self.tls is not None else None
        async with asyncio.timeout(timeout):
            if self.rcvbuf is None and self.source_host is None:
                self._reader, self._writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.tls, server_hostname=server_hostname)
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                if self.rcvbuf is not None:
                    # Set before connect, so the advertised window stays small.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
                if self.source_host is not None:
                    sock.bind((self.source_host, 0))
                try:
                    await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
                except BaseException:
                    sock.close()
                    raise
                self._reader, self._writer = await asyncio.open_connection(
                    sock=sock, ssl=self.tls, server_hostname=server_hostname)
        self._writer.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self._task = asyncio.create_task(self._read_loop(), name=f"reader {self!r}")
        return self

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS session (``version()``, ``getpeercert()``) of a ``tls`` connection."""
        if self._writer is None:
            return None
        ssl_object = self._writer.get_extra_info("ssl_object")
        return ssl_object if isinstance(ssl_object, ssl.SSLObject) else None

    @property
    def closed(self) -> bool:
        """The connection has ended (EOF read, reset, or closed by us)."""
        return self._closed.is_set()

    async def close(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Close the socket (without QUIT) and stop the reader."""
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.close()
        if writer is not None:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(timeout):
                    await writer.wait_closed()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._mark_closed()

    def abort(self) -> None:
        """Drop the connection with a TCP reset, as a crashed client would."""
        if self._writer is not None:
            self._writer.transport.abort()

    def pause_reading(self) -> None:
        """Stop reading from the socket, so that the server's data piles up."""
        self._reading.clear()
        if self._writer is not None:
            _read_write(self._writer).pause_reading()

    def resume_reading(self) -> None:
        self._reading.set()
        if self._writer is not None and not self._writer.transport.is_closing():
            _read_write(self._writer).resume_reading()

    # --------------------------------------------------------------- sending

    def next_request_id(self) -> int:
        return self._pending.next_id()

    async def send(self, message: Message, *, chunk_size: int | None = None) -> int:
        """Send ``message`` (a request gets the next request id); return its id.

        ``chunk_size`` splits the frame into writes of that many bytes.
        """
        return (await self.send_many([message], chunk_size=chunk_size))[0]

    async def send_many(self, messages: Sequence[Message], *,
                        chunk_size: int | None = None) -> list[int]:
        """Send several messages in ONE write (or in ``chunk_size`` pieces); their ids."""
        frames = []
        ids = []
        loop = asyncio.get_running_loop()
        for message in messages:
            if message.is_request and message.request_id == 0:
                message = message.model_copy(update={"request_id": self.next_request_id()})
            frames.append(self.conn.send(message))
            if message.is_request:
                self._pending.track(message, _Awaited(message, loop.create_future()))
            ids.append(message.request_id)
        await self.send_raw(b"".join(frames), chunk_size=chunk_size)
        return ids

    async def request_raw(self, frame: bytes, request_id: int,
                          timeout: float = DEFAULT_TIMEOUT) -> list[Message]:
        """Write ``frame`` as it is and collect the answer to ``request_id`` like ``request``.

        The sans-IO connection does not see the frame: use it for frames that
        break a rule the server must enforce.
        """
        loop = asyncio.get_running_loop()
        label = f"raw frame {frame[:24].hex()}... (request {request_id})"
        self._pending.track_raw(request_id, _Awaited(label, loop.create_future()))
        await self.send_raw(frame)
        return await self.response(request_id, timeout)

    async def request_unchecked(self, cls: type[Message], timeout: float = DEFAULT_TIMEOUT,
                                **fields: Any) -> list[Message]:
        """``request`` of a ``cls`` message built without validation (see ``unchecked``)."""
        request_id = self.next_request_id()
        return await self.request_raw(unchecked(cls, request_id, **fields), request_id, timeout)

    async def response(self, request_id: int, timeout: float = DEFAULT_TIMEOUT) -> list[Message]:
        """The intermediate frames and the final response of request ``request_id``."""
        pending = self._answered.pop(request_id, None) or self._awaited(request_id)
        if pending is None:
            raise HarnessError(f"{self!r}: no request {request_id} is waiting")
        try:
            async with asyncio.timeout(timeout):
                frames = await asyncio.shield(pending.future)
            self._answered.pop(request_id, None)
            self.last_answer_window = (pending.first_serial, pending.final_serial)
            return frames
        except TimeoutError:
            raise HarnessError(
                f"{self!r}: no final response to {describe(pending.request)} within "
                f"{timeout} s; got so far:{describe_all(pending.frames)}; "
                f"unconsumed events:{describe_all(self.events)}"
            ) from None

    async def request(self, message: Message, timeout: float = DEFAULT_TIMEOUT) -> list[Message]:
        """Send a request; return its intermediate frames and final response (last)."""
        request_id = await self.send(message)
        return await self.response(request_id, timeout)

    async def ok(self, message: Message, timeout: float = DEFAULT_TIMEOUT) -> list[Message]:
        """``request`` that must end with OK (or the request's own final type)."""
        frames = await self.request(message, timeout)
        final = frames[-1]
        if isinstance(final, Error):
            raise HarnessError(f"{self!r}: {describe(message)} failed: {describe(final)}")
        return frames

    async def error(self, message: Message, code: ErrorCode | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> Error:
        """``request`` that must be refused (with ``code``, if given); returns the ERROR."""
        frames = await self.request(message, timeout)
        final = frames[-1]
        if not isinstance(final, Error):
            raise HarnessError(
                f"{self!r}: {describe(message)} expected ERROR "
                f"{code.name if code else ''}, got:{describe_all(frames)}"
            )
        if code is not None and final.code != code:
            raise HarnessError(
                f"{self!r}: {describe(message)} expected ERROR {code.name}, got {describe(final)}"
            )
        if len(frames) != 1:
            raise HarnessError(f"{self!r}: intermediate frames before an ERROR:"
                               f"{describe_all(frames)}")
        return final

    async def hello(
        self,
        nick: str,
        password: str = "",
        *,
        min_version: int = 1,
        max_version: int = 1,
        client_name: str = CLIENT_NAME,
        capabilities: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Welcome:
        """Send HELLO; return WELCOME or raise HelloRefused carrying the ERROR."""
        frames = await self.request(
            Hello(min_version=min_version, max_version=max_version, nick=nick,
                  password=password, client_name=client_name,
                  capabilities=tuple(capabilities)),
            timeout,
        )
        final = frames[-1]
        if isinstance(final, Error):
            raise HelloRefused(final)
        if not isinstance(final, Welcome) or len(frames) != 1:
            raise HarnessError(f"{self!r}: HELLO answered with:{describe_all(frames)}")
        self.welcome = final
        self.nick = final.nick
        return final

    async def quit(self, reason: str = "", timeout: float = DEFAULT_TIMEOUT) -> list[Message]:
        """QUIT, wait for BYE and for the server to close; return the answer frames."""
        frames = await self.request(Quit(reason=reason), timeout)
        if not isinstance(frames[-1], Bye):
            raise HarnessError(f"{self!r}: QUIT answered with:{describe_all(frames)}")
        await self.wait_closed(timeout)
        return frames

    async def send_raw(self, data: bytes, *, chunk_size: int | None = None) -> None:
        """Write bytes as they are (split into ``chunk_size`` writes if given)."""
        if self._writer is None:
            raise HarnessError(f"{self!r}: not connected")
        if chunk_size is None:
            self._writer.write(data)
            await self._writer.drain()
            return
        for start in range(0, len(data), chunk_size):
            self._writer.write(data[start:start + chunk_size])
            await self._writer.drain()

    # ------------------------------------------------------------- receiving

    @property
    def events(self) -> list[Message]:
        """The events received and not handed out yet, oldest first."""
        return [event for _, event in self._events]

    def events_in_window(self, window: tuple[int, int]) -> list[Message]:
        """The queued events whose arrival lies in ``window`` (see ``last_answer_window``)."""
        first, final = window
        return [event for serial, event in self._events if first <= serial < final]

    def drain(self) -> list[Message]:
        """Hand out (and forget) every queued event."""
        events = self.events
        self._events.clear()
        return events

    @overload
    async def expect(self, match: type[M], timeout: float = ...) -> M: ...

    @overload
    async def expect(self, match: tuple[type[Message], ...] | Callable[[Message], bool],
                     timeout: float = ...) -> Message: ...

    async def expect(self, match: Matcher, timeout: float = DEFAULT_TIMEOUT) -> Message:
        """The oldest queued (or next arriving) event that matches; it is removed.

        ``match`` is a message class, a tuple of classes, or a predicate.
        Events that do not match stay queued.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        scanned = -1  # serials up to this one did not match (skip them when woken again)
        while True:
            for index, (serial, event) in enumerate(self._events):
                if serial <= scanned:
                    continue
                if _matches(match, event):
                    del self._events[index]
                    return event
                scanned = serial
            if self.closed:
                raise HarnessError(
                    f"{self!r}: connection closed before an event matching {match!r} came; "
                    f"unconsumed events:{describe_all(self.events)}"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise HarnessError(
                    f"{self!r}: no event matching {match!r} within {timeout} s; "
                    f"unconsumed events:{describe_all(self.events)}"
                )
            await self._wait_change(remaining)

    async def expect_error(self, code: ErrorCode, timeout: float = DEFAULT_TIMEOUT) -> Error:
        """The next queued ERROR event with ``code``."""
        event = await self.expect(lambda e: isinstance(e, Error) and e.code == code, timeout)
        assert isinstance(event, Error)
        return event

    async def barrier(self, timeout: float = DEFAULT_TIMEOUT, *,
                      drain: bool = True) -> list[Message]:
        """PING with a random token and wait for its PONG (spec: the PING barrier).

        Returns the queued events that arrived before the PONG, in order (and
        removes them unless ``drain`` is False): with CP-REQ-10 and CP-KEEP-2,
        that is everything that the requests answered before this call caused.
        """
        token = secrets.token_bytes(8)
        request_id = await self.send(Ping(token=token))
        pending = self._awaited(request_id) or self._answered[request_id]
        frames = await self.response(request_id, timeout)
        pong = frames[-1]
        if not isinstance(pong, Pong) or pong.token != token or len(frames) != 1:
            raise HarnessError(f"{self!r}: PING barrier answered with:{describe_all(frames)}")
        before = [(serial, event) for serial, event in self._events
                  if serial < pending.final_serial]
        if drain:
            self._events = [(s, e) for s, e in self._events if s >= pending.final_serial]
        return [event for _, event in before]

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the server has closed the connection."""
        try:
            async with asyncio.timeout(timeout):
                await self._closed.wait()
        except TimeoutError:
            raise HarnessError(
                f"{self!r}: still open after {timeout} s; "
                f"unconsumed events:{describe_all(self.events)}"
            ) from None

    async def read_until_closed(self, timeout: float = DEFAULT_TIMEOUT) -> list[Message]:
        """Wait for the server to close the connection; return (and drain) the queued events."""
        await self.wait_closed(timeout)
        return self.drain()

    # -------------------------------------------------------------- internals

    def _awaited(self, request_id: int) -> _Awaited | None:
        outstanding = self._pending.get(request_id)
        return None if outstanding is None else outstanding.payload

    async def _wait_change(self, timeout: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                await self._reading.wait()
                try:
                    data = await self._reader.read(65536)
                except OSError:
                    self.reset = True
                    data = b""
                self.bytes_received += len(data)
                self._feed(data)
                if not data or self.conn.their_error is not None:
                    break
        finally:
            self._mark_closed()

    def _mark_closed(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for outstanding in self._pending.clear():
            pending = outstanding.payload
            if not pending.future.done():
                pending.future.set_exception(ConnectionLost(
                    f"{self!r}: connection ended before the answer to "
                    f"{describe(pending.request)}; got so far:{describe_all(pending.frames)}"
                ))
                # Mark the exception retrieved: nobody may be waiting for it.
                pending.future.exception()
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
        self._notify()

    def _feed(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data)
            for event in self.conn.events():
                self._dispatch(event)
        except RemoteProtocolError as exc:
            if exc.code == ErrorCode.TRUNCATED_FRAME:
                self.truncated = True
            else:
                self.protocol_faults.append(f"{exc.code.name}: {exc.detail}")
            if self._writer is not None:
                self._writer.transport.abort()
        self._notify()

    def _dispatch(self, event: Message | FrameRejected | ConnectionClosed) -> None:
        if isinstance(event, ConnectionClosed):
            return
        if isinstance(event, FrameRejected):
            self.protocol_faults.append(
                f"server sent a bad frame: {event.code.name} {event.detail}")
            return
        if isinstance(event, Ping) and event.request_id == 0:
            self.pings_received += 1
            if self.auto_pong:
                self._answer_ping(event)
        answer = self._pending.receive(event)
        if answer is not None:
            pending = answer.outstanding.payload
            if not pending.frames:
                pending.first_serial = self._serial
            pending.frames.append(event)
            if isinstance(answer, FinalResponse):
                pending.final_serial = self._serial
                self._answered[event.request_id] = pending
                if not pending.future.done():
                    pending.future.set_result(pending.frames)
            return
        if self.drop and isinstance(event, self.drop):
            return
        self._events.append((self._serial, event))
        self._serial += 1

    def _answer_ping(self, ping: Ping) -> None:
        try:
            frame = self.conn.send(Pong(request_id=ping.request_id, token=ping.token))
        except LocalProtocolError:
            return  # e.g. after QUIT: the client may send nothing more
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(frame)


# ----------------------------------------------------------------- processes

class ServerProcess:
    """``python -m reference_server`` as a child process (the bench's launcher), for tests.

    ``entry`` replaces ``-m reference_server`` (``("-c", CODE)`` for a wrapped
    server); the options ``--host``, ``--port 0``, ``--data-dir`` and ``args``
    follow it.

    ``start`` waits for "listening on HOST:PORT" on stderr and sets ``port``;
    every stderr line is kept in ``stderr_lines`` (a thread drains the pipe, so
    a chatty server never blocks on a full pipe). ``stop`` sends SIGTERM and
    waits; ``kill`` is the last resort; ``close`` does whatever is needed and is
    safe to call any number of times (the fixtures call it at teardown).
    """

    def __init__(self, data_dir: Path, *args: str, host: str = HOST,
                 env: dict[str, str] | None = None,
                 entry: Sequence[str] = SERVER_ENTRY) -> None:
        self.data_dir = data_dir
        self.host = host
        self.args = list(args)
        self.env = env
        self.entry = tuple(entry)
        self.stderr_lines: list[str] = []
        self._child: ChildServer | None = None

    @property
    def command(self) -> list[str]:
        return server_command(self.data_dir, self.args, host=self.host, entry=self.entry)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return None if self._child is None else self._child.proc

    @property
    def port(self) -> int:
        return 0 if self._child is None else self._child.port

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines[-60:])

    async def start(self, timeout: float = 15.0) -> ServerProcess:
        """Start the process and wait until it is listening."""
        self._child = ChildServer(self.data_dir, self.args, host=self.host, env=self.env,
                                  entry=self.entry, keep_lines=sys.maxsize,
                                  lines=self.stderr_lines)
        if not await asyncio.to_thread(self._child.listening, timeout):
            code = self._child.proc.poll()
            self.close()
            state = "still running" if code is None else f"exited with {code}"
            raise HarnessError(f"server did not report 'listening on' within {timeout} s "
                               f"({state}); stderr:\n{self.stderr_text()}")
        return self

    def run_to_exit(self, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the command until it exits by itself (a usage error, a port in use...).

        Its stdout and stderr are captured as text; no ``port``, nothing to stop.
        """
        return subprocess.run(self.command, cwd=ROOT, env=server_environment(self.env),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def stop(self, timeout: float = 15.0, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` (SIGTERM) and wait for the exit status (killing after ``timeout``)."""
        return await asyncio.to_thread(self.stop_sync, timeout, signum)

    def stop_sync(self, timeout: float = 15.0, signum: int = signal.SIGTERM) -> int:
        assert self.proc is not None, "not started"
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise HarnessError(f"server did not exit within {timeout} s of signal "
                                   f"{signum}; killed. stderr:\n{self.stderr_text()}") from None
        self._join_drainer()
        return self.proc.returncode

    async def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit by itself; ``stderr_lines`` is then complete."""
        assert self.proc is not None
        proc = self.proc
        try:
            status = await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"server still running after {timeout} s") from None
        await asyncio.to_thread(self._join_drainer)
        return status

    def kill(self) -> None:
        """SIGKILL, and reap the process."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self._join_drainer()

    def close(self) -> None:
        """Make sure the process is gone: SIGTERM, a short wait, then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._join_drainer()

    def _join_drainer(self) -> None:
        if self._child is not None:
            self._child.join_drain(5)

    def rss_kib(self) -> int:
        """The process's resident set size (VmRSS), in KiB."""
        assert self._child is not None, "not started"
        rss = self._child.rss_kib()
        if not rss:
            raise HarnessError("no VmRSS line in /proc/PID/status")
        return rss


# ------------------------------------------------------------------- helpers


def of_type(events: Iterable[Message], cls: type[M]) -> list[M]:
    """The events of class ``cls``, in order."""
    return [event for event in events if isinstance(event, cls)]


def refused(frames: Sequence[Message], code: ErrorCode, *, fatal: bool = False) -> Error:
    """Check that ``frames`` (an answer) is exactly one ERROR ``code``; return it (CP-ERR-1/2)."""
    if len(frames) != 1 or not isinstance(frames[0], Error):
        raise HarnessError(f"expected only ERROR {code.name}, got:{describe_all(frames)}")
    error = frames[0]
    if error.code != code or error.fatal != fatal:
        raise HarnessError(f"expected ERROR {code.name} fatal={fatal}, got {describe(error)}")
    return error


async def join_all(room: str, *clients: ChatTestClient) -> None:
    """Each client joins ``room`` in turn; then every client's events are drained."""
    from chatproto.messages import Join

    for client in clients:
        await client.ok(Join(room=room))
    await asyncio.gather(*(client.barrier() for client in clients))
