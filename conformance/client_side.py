"""The kit as a server: the client under test, launched per case, and its connection.

For each case the kit listens on a fresh port of 127.0.0.1, launches the client
command with ``{host}`` and ``{port}`` replaced, and waits for it to connect.
The contract with the client (the test guide states it for implementers) is
that it connects and sends HELLO on its own, and that it acts on the lines the
kit writes to its standard input (``CONTRACT_LINES``: join a room, send text to
it, quit), closing stdin meaning ``/quit``. A client that does not read stdin
still runs every case but those that ask it to act; those are SKIP.

``ClientLink`` is that connection seen from the server's side. A reader task
files every frame the client sends, answers the requests a client may make on
its own (so that any reasonable client keeps going), and runs the monitor
(``conformance.client_monitor``): the rules that hold for every frame a client
sends, in every case (it decodes, it fits the frame limit, a request has a
nonzero request_id, the state table allows it...). A case then sends frames,
valid or deliberately broken, and waits, with a deadline, for what the spec
says must follow. The PING barrier works from this side too: the kit PINGs,
and the client's PONG proves that it read everything sent before and is still
in step.

The kit's idea of the client's state comes from the spec's state table, derived
from the message declarations (who sends what), never from chatproto's own
state machine: the kit must test other implementations, not agree with ours.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import shlex
import signal
import socket
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from chatproto import (
    ERROR_REGISTRY,
    LENGTH_FIELD_SIZE,
    MAX_FRAME_LENGTH,
    MESSAGE_TYPES,
    MIN_FRAME_LENGTH,
    ErrorCode,
    Message,
    encode,
    fold,
)
from chatproto.messages import (
    Bye,
    Error,
    Hello,
    Join,
    Ok,
    Ping,
    Pong,
    Quit,
    RoomInfo,
    SendPrivate,
    SendRoom,
    Welcome,
)
from conformance.case_context import CaseContext
from conformance.client_monitor import (
    ClientMonitor,
    frame_name,
)
from conformance.inbox import Inbox, T
from conformance.options import KitOptions
from conformance.outcomes import KitError, NotApplicable, Violation
from conformance.registry import Case, requirement
from conformance.transcript import describe
from conformance.wire import FrameStreamError, Received, decode, length_at, read_frame

HOST = "127.0.0.1"
KIT_SERVER_NAME = "chatproto-conformance"
KIT_VERSION = 1
"""The protocol version the kit speaks as a server."""
READ_CAP = 1 << 20
"""Longest client frame the kit still reads to show it in the report (CP-FRAME-5 is judged
against the advertised limit, far below)."""
CONNECT_TIMEOUT_S = 10.0
"""How long the launched client may take to start and connect (times --timeout-scale)."""
OUTPUT_CAP = 256 * 1024
"""Bytes of the client's stdout and of its stderr kept for checks and the report."""
REPORT_OUTPUT_CHARS = 3000
CONTRACT_LINES = {
    "/join ROOM": "send JOIN for ROOM (resume 0)",
    "/msg ROOM TEXT": "send TEXT to ROOM with SEND_ROOM, once the ROOM's JOIN is sent",
    "/quit": "in READY send QUIT and wait for BYE; before WELCOME close without QUIT",
}
"""The stdin lines a client under test acts on (the guide's contract; closing stdin is
``/quit``)."""
BYTE_PACE_S = 0.002
"""Pause between pieces of a split write, so that each piece travels as its own segment
(pacing the split, not waiting for the client)."""





def unchecked(cls: type[Message], **fields: Any) -> bytes:
    """A frame of ``cls`` encoded without validating its fields: the kit as a faulty server."""
    return encode(cls.model_construct(**fields))


def split_frames(data: bytes) -> list[bytes]:
    """Whole frames at the start of ``data`` (a partial or broken tail is left out)."""
    frames, start = [], 0
    while len(data) - start >= LENGTH_FIELD_SIZE:
        length = length_at(data, start)
        end = start + LENGTH_FIELD_SIZE + length
        if length < MIN_FRAME_LENGTH or length > MAX_FRAME_LENGTH or end > len(data):
            break
        frames.append(data[start:end])
        start = end
    return frames


def describe_raw(data: bytes) -> str:
    """How bytes the kit writes read as frames, for the transcript."""
    frames = split_frames(data)
    parts = []
    for raw in frames:
        frame = decode(raw)
        parts.append(describe(frame.message) if frame.message is not None
                     else f"{frame.name} ({len(raw)} bytes, {frame.fault})")
    rest = len(data) - sum(len(f) for f in frames)
    if rest:
        parts.append(f"{rest} more byte(s): {data[-rest:][:16].hex(' ')}")
    return "raw: " + " | ".join(parts)


class ClientLink(Inbox):
    """One connection from the client under test, as the server end sees it."""

    def __init__(self, ctx: ClientContext, label: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        super().__init__(ctx.timeout, ctx.options.timeout_scale)
        self.ctx = ctx
        self.label = label
        self.connected_at = time.monotonic()
        self.monitor = ClientMonitor(ctx.warn)
        self.hello: Hello | None = None
        self.welcome_sent: Welcome | None = None
        self.received: list[Received] = []
        """Every frame the client sent, in order, including those already consumed."""
        self.auto_respond = True
        """Answer the requests a client makes on its own (JOIN, LIST_*, SEND_*, PING...)."""
        self.answer_quit = True
        """Answer QUIT with BYE and shut down the sending direction."""
        self.case_answers: Callable[[Message], bool] = lambda message: False
        """Requests the case answers itself (the others are answered as ``auto_respond``
        says)."""
        self._reader = reader
        self._writer = writer
        self._eof_sent = False
        self._msg_ids = 0
        self._seqs: dict[str, int] = {}
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    # ------------------------------------------------------------ sending
    def _write_now(self, data: bytes, note: str | None) -> None:
        """Write at once; ``note`` None leaves the bytes out of the transcript (a piece of
        data already recorded whole)."""
        if note is not None:
            self.ctx.transcript.add(self.label, "sent", data, note)
        if self._eof_sent or self._writer.is_closing():
            self.ctx.transcript.note(self.label, "not written: the connection is shut down")
            return
        self.monitor.kit_sent(data)
        try:
            self._writer.write(data)
        except (ConnectionError, OSError, RuntimeError) as exc:
            self.ctx.transcript.note(self.label, f"write failed: {exc!r}")

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self._writer.drain(), self.ctx.timeout)
        except (ConnectionError, TimeoutError, OSError, RuntimeError) as exc:
            # The client closed or stopped reading; a later wait reports what that breaks.
            self.ctx.transcript.note(self.label, f"write failed: {exc!r}")

    async def send(self, *messages: Message) -> None:
        """Send messages as frames, all in one write."""
        data = b"".join(encode(m) for m in messages)
        self._write_now(data, " | ".join(describe(m) for m in messages))
        await self._drain()

    async def send_raw(self, data: bytes, *, chunk_size: int | Sequence[int] | None = None,
                       note: str | None = None) -> None:
        """Write bytes as they are: in one write, or in pieces of ``chunk_size`` bytes (a
        sequence of sizes is used in turn, over and over)."""
        if chunk_size is None:
            self._write_now(data, note or describe_raw(data))
            await self._drain()
            return
        sizes = itertools.cycle([chunk_size] if isinstance(chunk_size, int) else chunk_size)
        self.ctx.transcript.add(self.label, "sent", data, f"in writes of {chunk_size} byte(s): "
                                f"{note or describe_raw(data)}")
        start = 0
        while start < len(data):
            piece = data[start:start + next(sizes)]
            self._write_now(piece, None)
            start += len(piece)
            await self._drain()
            # Pacing, not synchronisation: each piece leaves as its own TCP segment.
            await asyncio.sleep(BYTE_PACE_S)

    def half_close(self) -> None:
        """Shut down the kit's sending direction (as a server does after BYE or a fatal
        ERROR, CP-CLOSE-6) and keep reading."""
        if self._eof_sent:
            return
        self._eof_sent = True
        self.monitor.kit_eof()
        self.ctx.transcript.note(self.label, "kit shut down its sending direction")
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if self._writer.can_write_eof():
                self._writer.write_eof()

    # ------------------------------------------------------------ the server's part
    def make_welcome(self, hello: Hello, **fields: Any) -> Welcome:
        """The WELCOME a correct server sends for ``hello`` (fields may override)."""
        values: dict[str, Any] = {
            "request_id": hello.request_id, "version": KIT_VERSION,
            "server_name": KIT_SERVER_NAME, "nick": hello.nick, "logged_in": False,
            "casemapping": "ascii", "capabilities": (),
            # Long keepalive and idle times: the client has no reason to act on its own.
            "keepalive_interval_s": 300, "idle_timeout_s": 900,
        }
        values.update(fields)
        return Welcome(**values)

    async def expect_hello(self) -> Hello:
        """The client's HELLO; SKIP when it does not offer version 1."""
        try:
            hello = await self.expect_type(Hello, req="CP-STATE-1")
        except Violation as exc:
            if exc.kind == "mismatch":
                self.ctx.mark_broken("handshake", exc)
                raise
            refused = [f for f in self.received if f.type_code == Hello.TYPE]
            why = (f"its HELLO breaks a field constraint ({refused[0].fault}), which a "
                   "server refuses (the kit did) and no client rule forbids; check the "
                   "client command" if refused else exc.message)
            self.ctx.block("handshake", f"{self.ctx.case.id}: the client sent no usable HELLO")
            raise KitError(f"the client sent no usable HELLO: {why}") from None
        self.hello = hello
        if not hello.min_version <= KIT_VERSION <= hello.max_version:
            await self.send(Error(request_id=hello.request_id,
                                  code=ErrorCode.UNSUPPORTED_VERSION, fatal=True,
                                  detail=f"{KIT_VERSION}-{KIT_VERSION}"))
            self.half_close()
            raise NotApplicable(f"the client offers versions {hello.min_version}-"
                                f"{hello.max_version}; the kit speaks version {KIT_VERSION}")
        return hello

    async def welcome(self, hello: Hello, **fields: Any) -> Welcome:
        welcome = self.make_welcome(hello, **fields)
        await self.send(welcome)
        self.welcome_sent = welcome
        return welcome

    def _respond(self, message: Message) -> None:
        """Answer a request the client made on its own, as a plain server would."""
        rid = message.request_id
        if isinstance(message, Ping):
            self._answer(Pong(request_id=rid, token=message.token))
        elif isinstance(message, Quit):
            if self.answer_quit:
                self._answer(Bye(request_id=rid, reason="goodbye"))
                self.half_close()
        elif not message.is_request or isinstance(message, Hello) or rid == 0:
            return
        elif isinstance(message, Join):
            self._answer(RoomInfo(request_id=rid, room=message.room, topic="", member_count=1,
                                  last_seq=self._seqs.get(fold(message.room), 0)))
            self._answer(Ok(request_id=rid))
        elif isinstance(message, SendRoom):
            room = fold(message.room)
            self._seqs[room] = self._seqs.get(room, 0) + 1
            self._msg_ids += 1
            self._answer(Ok(request_id=rid, msg_id=self._msg_ids, seq=self._seqs[room],
                            timestamp_ms=int(time.time() * 1000)))
        elif isinstance(message, SendPrivate):
            self._msg_ids += 1
            self._answer(Ok(request_id=rid, msg_id=self._msg_ids,
                            timestamp_ms=int(time.time() * 1000)))
        else:
            self._answer(Ok(request_id=rid))

    async def respond(self, request: Message) -> None:
        """Answer a request the case held (``case_answers``) as a plain server would."""
        self._respond(request)
        await self._drain()

    def _answer(self, message: Message) -> None:
        self._write_now(encode(message), describe(message))

    def _refuse_undecodable(self, frame: Received) -> None:
        """A request the kit cannot decode is refused the way a server refuses it."""
        cls = MESSAGE_TYPES.get(frame.type_code)
        if not self.auto_respond or cls is None or cls.FINAL_RESPONSE is None:
            return
        if cls is Quit:  # every QUIT is answered with BYE (CP-CLOSE-2)
            if self.answer_quit:
                self._answer(Bye(request_id=frame.request_id, reason="goodbye"))
                self.half_close()
            return
        if frame.request_id == 0 or frame.fault_code is None:
            return
        code = frame.fault_code
        self._answer(Error(request_id=frame.request_id, code=code,
                           fatal=ERROR_REGISTRY[code].fatal, detail=f"{cls.NAME} refused"))

    # ------------------------------------------------------------ receiving
    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    frame = await read_frame(self._reader, READ_CAP)
                except FrameStreamError as exc:
                    self._stream_fault(exc)
                    break
                if frame is None:
                    self.close_note = "the client closed the connection"
                    break
                self._file(frame)
        except (ConnectionError, OSError) as exc:
            self.close_note = f"connection reset ({exc.__class__.__name__})"
        finally:
            self.ctx.transcript.note(self.label, f"closed: {self.close_note}")
            self._closed.set()
            self._changed.set()

    def _stream_fault(self, exc: FrameStreamError) -> None:
        self.ctx.transcript.add(self.label, "received", exc.data, f"bad stream: {exc}")
        self.close_note = "the client's byte stream could not be split into frames"
        if len(exc.data) == LENGTH_FIELD_SIZE and length_at(exc.data) > READ_CAP:
            self._fault(Violation("CP-FRAME-5", f"the client sent a frame with length "
                                  f"{length_at(exc.data)}, above every frame limit"))
        else:
            self._fault(Violation("CP-FRAME-2", f"the client's length field does not count "
                                  f"the bytes that follow it: {exc}"))

    def _file(self, frame: Received) -> None:
        self.received.append(frame)
        if frame.message is not None:
            text = describe(frame.message)
        else:
            text = f"undecodable {frame.name}: {frame.fault}"
        self.ctx.transcript.add(self.label, "received", frame.raw, text)
        violations = self.monitor.check(frame)
        for violation in violations:
            self._fault(violation)
        if frame.message is not None:
            self._unclaimed.append(frame.message)
            if self.auto_respond and not violations \
                    and not self.case_answers(frame.message):
                self._respond(frame.message)
        elif not violations:
            self._refuse_undecodable(frame)
        self._changed.set()

    def _fault(self, violation: Violation) -> None:
        if requirement(violation.requirement).level.value == "MUST":
            self._faults.append(violation)
        else:
            self.ctx.warn(violation)

    def mark(self) -> int:
        """A position in ``received``, for 'nothing after this' checks."""
        return len(self.received)

    # ------------------------------------------------------------ waiting
    async def _wait(self, found: Callable[[], T | None], deadline: float, req: str,
                    what: str) -> T:
        while True:
            self.raise_fault()
            result = found()
            if result is not None:
                return result
            if self.closed:
                raise Violation(req, f"{self.close_note} while the kit waited for {what}",
                                "closed")
            if not await self._until(deadline):
                raise Violation(req, f"no {what} from the client in time", "timeout")

    async def expect_pong(self, token: bytes, *, req: str = "CP-KEEP-1",
                          timeout: float | None = None) -> Pong:
        """The client's PONG to the kit's PING with ``token``, which must echo request_id 0."""
        pong = await self.expect_type(Pong, req=req, where=lambda p: p.token == token,
                                      timeout=timeout)
        if pong.request_id != 0:
            raise Violation("CP-KEEP-1", f"the client answered the kit's PING (request_id 0, "
                            f"token {token.hex()}) with a PONG carrying request_id "
                            f"{pong.request_id}")
        return pong

    async def expect_ignored(self, mark: int, token: bytes, *, req: str, what: str,
                             request_ids: Collection[int] = ()) -> None:
        """Wait for the PONG to the PING with ``token``, written behind frames (sent since
        ``mark``) that the client must ignore: an answer to them (an ERROR, or a frame with
        one of their ``request_ids``), a close or a missing PONG breaks ``req``."""
        def answers() -> list[Received]:
            return [f for f in self.received[mark:] if isinstance(f.message, Error)
                    or (f.request_id != 0 and f.request_id in request_ids)]
        try:
            try:
                await self.expect_pong(token)
            except Violation as exc:
                if exc.kind in ("timeout", "closed"):
                    raise Violation(req, f"after {what}: {exc.message}", exc.kind) from None
                raise
        except Violation:
            if answers():  # the answer is the fault, whatever else it breaks
                raise Violation(req, f"the client answered {what} with "
                                f"{frame_name(answers()[0])}") from None
            raise
        found = answers()
        if found:
            raise Violation(req, f"the client answered {what} with {frame_name(found[0])}")

    async def barrier(self, *, req: str = "CP-KEEP-1", timeout: float | None = None) -> None:
        """The PING barrier: when it returns, the client has read everything sent before it
        and is still in step."""
        token = secrets.token_bytes(8)
        await self.send(Ping(token=token))
        await self.expect_pong(token, req=req, timeout=timeout)

    async def first_barrier(self) -> None:
        """The barrier right behind WELCOME; a lost PING is told apart from a lost frame.

        The PING follows WELCOME at once, so both often arrive in one read. When it
        goes unanswered, a second PING sent on its own tells a client that does not
        answer PINGs (CP-KEEP-1) from one that lost the frame behind WELCOME (CP-FRAME-8).
        """
        try:
            await self.barrier()
        except Violation as exc:
            if exc.kind != "timeout" or self.closed:
                raise
            token = secrets.token_bytes(8)
            self.ctx.transcript.note(self.label, "no PONG: asking again with a PING on its own")
            await self.send(Ping(token=token))
            try:
                await self.expect_pong(token)
            except Violation:
                raise exc from None
            raise Violation("CP-FRAME-8", "the client answered a PING written on its own but "
                            "not the PING written right behind WELCOME (two frames in one "
                            "read?)") from None

    async def expect_closed(self, *, req: str, after: str,
                            timeout: float | None = None) -> None:
        """Wait for the client to close the connection (``req`` requires it, ``after`` says
        after what)."""
        deadline = self._deadline(timeout)
        while not self.closed:
            self.raise_fault()
            if not await self._until(deadline):
                raise Violation(req, f"the client did not close the connection within "
                                f"{self.ctx.timeout:.1f} s after {after}", "timeout")
        self.raise_fault()

    async def silent_since(self, mark: int, *, req: str, after: str,
                           timeout: float | None = None,
                           ignore: Callable[[Received], bool] | None = None) -> bool:
        """No frame from the client since ``mark``, until it closes or the window ends.

        Returns True when the client closed the connection within the window.
        """
        deadline = self._deadline(timeout)
        while True:
            extra = [f for f in self.received[mark:] if ignore is None or not ignore(f)]
            if extra:  # the very fault checked, before anything the monitor found in it
                raise Violation(req, f"the client sent {frame_name(extra[0])} after {after}")
            self.raise_fault()
            if self.closed:
                return True
            if not await self._until(deadline):
                return False



class ClientContext(CaseContext):
    """What a client-suite case works with: the launched client, its connection, checks."""

    one_warning_per_requirement = True
    """The monitor judges every frame the client sends; one warning per rule is enough."""

    def __init__(self, case: Case, command: list[str], options: KitOptions,
                 broken: dict[str, str]) -> None:
        super().__init__(case, options, broken)
        self.command = list(command)
        self.links: list[ClientLink] = []
        self.host = HOST
        self.port = 0
        self._server: asyncio.Server | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._pumps: list[asyncio.Task[None]] = []
        self._arrivals: asyncio.Queue[ClientLink] = asyncio.Queue()

    # ------------------------------------------------------------ the client process
    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        label = "client" if not self.links else f"client{len(self.links) + 1}"
        link = ClientLink(self, label, reader, writer)
        self.links.append(link)
        peer = writer.get_extra_info("peername")
        self.transcript.note(label, f"the client connected from {peer}")
        self._arrivals.put_nowait(link)

    async def launch(self) -> ClientLink:
        """Listen on a fresh port, launch the client, and return its first connection."""
        for fundamental in ("launch", "handshake"):
            self.require_working(fundamental)
        if self._server is not None:
            raise KitError("a case launches the client once")
        self._server = await asyncio.start_server(self._on_connect, HOST, 0,
                                                  limit=2 * MAX_FRAME_LENGTH)
        self.port = self._server.sockets[0].getsockname()[1]
        argv = [part.replace("{host}", HOST).replace("{port}", str(self.port))
                for part in self.command]
        self.transcript.note("process", f"listening on {HOST}:{self.port}; launching "
                             f"{shlex.join(argv)}")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            self.block("launch", f"the client could not be started ({exc})")
            raise KitError(f"cannot launch the client {shlex.join(argv)}: {exc}") from None
        assert self._process.stdout is not None and self._process.stderr is not None
        loop = asyncio.get_running_loop()
        self._pumps = [loop.create_task(self._pump(self._process.stdout, self._stdout)),
                       loop.create_task(self._pump(self._process.stderr, self._stderr))]
        link = await self.next_connection(CONNECT_TIMEOUT_S)
        if link is None:
            status = self._process.returncode
            limit = CONNECT_TIMEOUT_S * self.options.timeout_scale
            why = (f"exited with status {status} before connecting" if status is not None
                   else f"did not connect within {limit:.0f} s")
            stderr = bytes(self._stderr[-500:]).decode("utf-8", "replace").strip()
            self.block("launch", f"the client never connected (it {why})")
            raise KitError(f"the client {why}" + (f"; its stderr: {stderr}" if stderr else ""))
        return link

    async def next_connection(self, timeout: float) -> ClientLink | None:
        """The next connection the client opens within ``timeout`` seconds (scaled), or None
        (also when the client process exits first)."""
        if not self._arrivals.empty():
            return self._arrivals.get_nowait()
        assert self._process is not None
        arrival = asyncio.ensure_future(self._arrivals.get())
        exit_ = asyncio.ensure_future(self._process.wait())
        try:
            await asyncio.wait({arrival, exit_}, timeout=timeout * self.options.timeout_scale,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            exit_.cancel()
            if not arrival.done():
                arrival.cancel()
        if arrival.done() and not arrival.cancelled():
            return arrival.result()
        if not self._arrivals.empty():  # the client connected and exited at once
            return self._arrivals.get_nowait()
        return None

    async def _pump(self, stream: asyncio.StreamReader, into: bytearray) -> None:
        with contextlib.suppress(Exception):
            while chunk := await stream.read(65536):
                if len(into) < OUTPUT_CAP:
                    into += chunk[:OUTPUT_CAP - len(into)]

    async def welcomed(self, **welcome_fields: Any) -> ClientLink:
        """Launch the client, check and welcome its HELLO, and pass a PING barrier."""
        self.require_working("ping")
        link = await self.launch()
        hello = await link.expect_hello()
        await link.welcome(hello, **welcome_fields)
        try:
            await link.first_barrier()
        except Violation as exc:
            self.mark_broken("ping" if exc.requirement == "CP-KEEP-1" else "handshake", exc)
            raise
        return link

    async def type_line(self, line: str) -> None:
        """Write one contract line (``CONTRACT_LINES``) to the client's stdin."""
        stdin = self._process.stdin if self._process is not None else None
        if stdin is None or stdin.is_closing():
            raise KitError("the client's stdin is already closed")
        self.transcript.note("process", f"kit typed on the client's stdin: {line!r}")
        stdin.write(line.encode("utf-8") + b"\n")
        with contextlib.suppress(ConnectionError, OSError):
            await asyncio.wait_for(stdin.drain(), self.timeout)

    def finish_client(self) -> None:
        """Ask the client to finish: close its standard input (the documented contract)."""
        if self._process is not None and self._process.stdin is not None \
                and not self._process.stdin.is_closing():
            self._process.stdin.close()
            self.transcript.note("process", "kit closed the client's stdin (asking it to finish)")

    async def wait_exit(self, timeout: float | None = None) -> int | None:
        """The client's exit status, or None if it is still running after ``timeout`` s."""
        if self._process is None:
            return None
        seconds = self.timeout if timeout is None else timeout * self.options.timeout_scale
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._process.wait()), seconds)
        return self._process.returncode

    async def output(self) -> bytes:
        """What the client wrote to stdout and stderr so far (pipes drained after exit)."""
        if self._process is not None and self._process.returncode is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._pumps), 1.0)
        return bytes(self._stdout) + bytes(self._stderr)

    async def close_all(self) -> None:
        for link in self.links:
            await link.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        await self._stop_process()
        self._report_process()

    async def _stop_process(self) -> None:
        """Let the client exit on its own (its connection is closed), then TERM, then KILL."""
        process = self._process
        if process is None:
            return
        self.finish_client()
        for sig, grace in ((None, 1.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            if sig is not None and process.returncode is None:
                self.transcript.note("process", f"sending {sig.name} to the client")
                self._signal(process.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
            if process.returncode is not None:
                break
        # Children the client started live in its process group; end them too.
        self._signal(process.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._pumps, return_exceptions=True), 1.0)
        for pump in self._pumps:
            pump.cancel()

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        # start_new_session made the client the leader of its own process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def _report_process(self) -> None:
        if self._process is None:
            return
        self.transcript.note("process", f"client exit status: {self._process.returncode}")
        for name, data in (("stdout", self._stdout), ("stderr", self._stderr)):
            if data:
                text = bytes(data).decode("utf-8", "backslashreplace")
                if len(text) > REPORT_OUTPUT_CHARS:
                    text = text[:REPORT_OUTPUT_CHARS] + f"... ({len(data)} bytes in all)"
                self.transcript.note("process", f"client {name}: {text!r}")
