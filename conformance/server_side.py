"""The kit as a client: connections to the server under test, and a case's context.

``Peer`` is one TCP connection to the target. A reader task files every frame
the server sends; a case then waits, with a deadline, for the answer to a
request (``request``, ``ok``, ``refused``), for an event (``expect``), or for
the PING barrier (``barrier``), and checks what arrived against the spec.

Every wait names the requirement that a timeout would break, so a server that
never answers is failed on the rule it broke, not on a generic timeout. The
kit paces its own requests to the rate limits the server advertised in
WELCOME, so a RATE_LIMITED answer the kit did not provoke is itself a finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
import string
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from chatproto import (
    FINAL_RESPONSE_TYPES,
    HEADER_SIZE,
    HEADER_STRUCT,
    LENGTH_FIELD_SIZE,
    MAX_FRAME_LENGTH,
    MIN_FRAME_LENGTH,
    ErrorCode,
    FinalResponse,
    Message,
    PendingRequests,
    encode,
    error_name,
    is_final_response,
)
from chatproto.messages import (
    Error,
    Hello,
    Join,
    Limits,
    Ok,
    Oper,
    Part,
    Ping,
    Pong,
    Quit,
    SendPrivate,
    SendRoom,
    Welcome,
)
from conformance.case_context import CaseContext
from conformance.inbox import Inbox, M, Matcher, T, matches
from conformance.options import KitOptions
from conformance.outcomes import KitError, NotApplicable, Violation
from conformance.registry import Case
from conformance.transcript import describe
from conformance.wire import (
    FrameStreamError,
    Received,
    decode,
    length_at,
    read_frame,
)

FINAL_TYPES = frozenset(cls.NAME for cls in FINAL_RESPONSE_TYPES)
"""The names of the messages that end an answer (CP-REQ-4)."""
MESSAGE_BUCKET = {"SEND_ROOM", "SEND_PRIVATE"}
UNCOUNTED = {"HELLO", "PING", "QUIT", "PONG"}
"""Requests no bucket applies to (spec: Rate limits)."""
KIT_CLIENT_NAME = "chatproto-conformance"
ZERO_ID_ERRORS = frozenset({
    ErrorCode.IDLE_TIMEOUT, ErrorCode.SLOW_CONSUMER, ErrorCode.SERVER_SHUTDOWN,
    ErrorCode.MALFORMED_FRAME, ErrorCode.FRAME_TOO_LARGE, ErrorCode.INVALID_REQUEST_ID})
"""ERROR codes that rightly carry request_id 0 whatever the kit sent: events that answer
no request, faults of a frame header (CP-ERR-3), and the refusal of request_id 0 (CP-REQ-3)."""



@dataclass(frozen=True)
class Answer:
    """Everything a server sent with one request's request_id, the final response last."""

    frames: tuple[Message, ...]
    final: Message

    @property
    def intermediate(self) -> tuple[Message, ...]:
        return self.frames[:-1]

    def of_type(self, cls: type[M]) -> list[M]:
        return [f for f in self.frames if isinstance(f, cls)]


@dataclass
class _Bucket:
    burst: int
    interval_s: float
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def wait_time(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.interval_s)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * self.interval_s

    def take(self) -> None:
        self.tokens -= 1


class Peer(Inbox):
    """One connection from the kit to the server under test."""

    def __init__(self, ctx: ServerContext, label: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        super().__init__(ctx.timeout, ctx.options.timeout_scale)
        self.ctx = ctx
        self.label = label
        self.nick = ""
        self.welcome: Welcome | None = None
        self.auto_pong = True
        """Answer the server's PINGs (a client must); off for the idle-timeout case."""
        self.received: list[Received] = []
        """Every frame received, in order, including those already consumed."""
        self._reader = reader
        self._writer = writer
        self.stream_tail = b""
        """When the stream broke: the bytes after the last whole frame (a cut or garbled frame)."""
        self._next_id = 0
        self._sent_id_zero = False
        """The kit sent a frame with request_id 0, which an ERROR with request_id 0 may answer."""
        self._buckets: dict[str, _Bucket] = {}
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    # ------------------------------------------------------------ sending
    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def with_id(self, message: M) -> M:
        """``message`` with a fresh request_id unless it has one already."""
        if message.request_id:
            return message
        return message.model_copy(update={"request_id": self.next_id()})

    async def send(self, message: M, *, pace: bool = True) -> M:
        """Send one message as a frame; requests without a request_id get a fresh one."""
        if message.is_request and message.request_id == 0 and message.NAME != "QUIT":
            message = self.with_id(message)
        if pace:
            await self._pace(message)
        data = encode(message)
        self._sent_id_zero |= message.request_id == 0
        self.ctx.transcript.add(self.label, "sent", data, describe(message))
        await self._write(data)
        return message

    async def send_together(self, messages: Sequence[Message], *,
                            pace: bool = True) -> list[Message]:
        """Send several messages in a single write (pipelining), each paced as ``send`` does."""
        sent: list[Message] = []
        for message in messages:
            if message.is_request and message.request_id == 0 and message.NAME != "QUIT":
                message = self.with_id(message)
            if pace:
                await self._pace(message)
            sent.append(message)
        chunks = [encode(message) for message in sent]
        self._sent_id_zero |= any(message.request_id == 0 for message in sent)
        for message, data in zip(sent, chunks, strict=True):
            self.ctx.transcript.add(self.label, "sent", data, describe(message))
        await self._write(b"".join(chunks))
        return sent

    async def send_raw(self, data: bytes, *, chunk_size: int | None = None,
                       note: str | None = None, pace: Message | None = None) -> None:
        """Write bytes as they are, optionally ``chunk_size`` bytes per write.

        ``pace``: a message of the kind these bytes stand for, so that they wait
        for (and take) a token from its bucket, as ``send`` would.
        """
        if pace is not None:
            await self._pace(pace)
        self._sent_id_zero |= self._holds_id_zero(data)
        self.ctx.transcript.add(self.label, "sent", data, note or self._describe_raw(data))
        if chunk_size is None:
            await self._write(data)
            return
        for start in range(0, len(data), chunk_size):
            await self._write(data[start:start + chunk_size])
            # Let the kernel send this piece on its own before the next one.
            await asyncio.sleep(0)

    @staticmethod
    def _holds_id_zero(data: bytes) -> bool:
        """Raw bytes hold a frame header with request_id 0, or cannot be split to tell."""
        offset = 0
        while offset < len(data):
            if len(data) - offset < HEADER_SIZE:
                return True
            length, _, request_id = HEADER_STRUCT.unpack_from(data, offset)
            if request_id == 0 or length < MIN_FRAME_LENGTH:
                return True
            offset += LENGTH_FIELD_SIZE + length
        return False

    def _describe_raw(self, data: bytes) -> str:
        """How raw bytes read, when they happen to be exactly one decodable frame."""
        if len(data) >= HEADER_SIZE and length_at(data) + LENGTH_FIELD_SIZE == len(data):
            frame = decode(data)
            if frame.message is not None:
                return f"raw: {describe(frame.message)}"
            return f"raw {frame.name} frame ({len(data)} bytes): {frame.fault}"
        return f"raw bytes ({len(data)})"

    async def _write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), self.ctx.timeout)
        except (ConnectionError, TimeoutError, OSError) as exc:
            # The server closed or stopped reading; a later wait reports what
            # that breaks, with the frames that arrived before.
            self.ctx.transcript.note(self.label, f"write failed: {exc!r}")

    async def _pace(self, message: Message) -> None:
        if not message.is_request or message.NAME in UNCOUNTED or self.welcome is None:
            return
        bucket = self._buckets["msg" if message.NAME in MESSAGE_BUCKET else "cmd"]
        # A deadline the server itself advertised, not a guess; plus a margin, because
        # the server's bucket runs on when our frames reach it, and that jitters.
        margin = max(0.005, 0.1 * bucket.interval_s)
        for _ in range(3):
            delay = bucket.wait_time()
            if delay <= 0:
                break
            await asyncio.sleep(delay + margin)
        bucket.take()

    def _start_buckets(self, welcome: Welcome) -> None:
        self._buckets = {
            "msg": _Bucket(welcome.msg_rate_burst, welcome.msg_rate_interval_ms / 1000,
                           welcome.msg_rate_burst),
            "cmd": _Bucket(welcome.cmd_rate_burst, welcome.cmd_rate_interval_ms / 1000,
                           welcome.cmd_rate_burst),
        }

    # ------------------------------------------------------------ receiving
    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    frame = await read_frame(self._reader, MAX_FRAME_LENGTH)
                except FrameStreamError as exc:
                    self.ctx.transcript.add(self.label, "received", exc.data, f"bad stream: {exc}")
                    self._faults.append(Violation(
                        "CP-FRAME-1" if "length field" in str(exc) and "EOF" not in str(exc)
                        else "CP-FRAME-2",
                        f"{self.label}: the server's byte stream breaks the frame format: {exc}"))
                    self.close_note = "the stream could not be split into frames"
                    self.stream_tail = exc.data
                    break
                if frame is None:
                    self.close_note = "the server closed the connection"
                    break
                self.received.append(frame)
                self._file(frame)
                self._changed.set()
        except (ConnectionError, OSError) as exc:
            self.close_note = f"connection reset ({exc.__class__.__name__})"
        finally:
            self.ctx.transcript.note(self.label, f"closed: {self.close_note}")
            self._closed.set()
            self._changed.set()

    def _file(self, frame: Received) -> None:
        if frame.message is None:
            self.ctx.transcript.add(self.label, "received", frame.raw,
                                    f"undecodable {frame.name}: {frame.fault}")
            # Which rule an undecodable frame breaks depends on what is wrong.
            if frame.type_code == 0 or frame.type_code >= 0x8000:
                # The kit offers no capability, so no extension type is in effect.
                rule, what = "CP-EXT-1", "a reserved or extension type code"
            elif frame.fault_code == ErrorCode.UNKNOWN_TYPE:
                rule, what = "CP-STATE-1", "a message type that spec v1 does not define"
            elif frame.fault_code == ErrorCode.MALFORMED_MESSAGE:
                rule, what = "CP-FRAME-1", "a body that does not match its declared fields"
            elif frame.fault_code == ErrorCode.INVALID_UTF8:
                rule, what = "CP-FIELD-1", "a text field that is not well-formed UTF-8"
            elif frame.name == "WELCOME" and "max_frame_size must be at least" in (
                    frame.fault or ""):
                rule, what = "CP-HS-10", "limits a largest SEND_ROOM does not fit"
            elif frame.name == "WELCOME":
                rule, what = "CP-HS-2", "limits outside the protocol ranges"
            elif "control character" in (frame.fault or ""):
                rule, what = "CP-FIELD-4", "text that is not safe text"
            else:
                rule, what = "CP-FIELD-1", "a field outside its declared constraints"
            self._faults.append(Violation(
                rule, f"{self.label} received {frame.name} with {what}: {frame.fault}"))
            return
        message = frame.message
        self.ctx.transcript.add(self.label, "received", frame.raw, describe(message))
        if isinstance(message, Ping) and self.auto_pong and not self._writer.is_closing():
            pong = Pong(request_id=message.request_id, token=message.token)
            data = encode(pong)
            self.ctx.transcript.add(self.label, "sent", data, describe(pong))
            with contextlib.suppress(ConnectionError, OSError):
                self._writer.write(data)
        self._unclaimed.append(message)

    async def _wait(self, found: Callable[[], T | None], deadline: float, timeout_req: str,
                    what: str) -> T:
        """Wait until ``found()`` returns something, the connection closes, or the deadline."""
        while True:
            self.raise_fault()
            result = found()
            if result is not None:
                return result
            if self.closed:
                raise Violation(timeout_req, f"{self.label}: {self.close_note} while waiting "
                                f"for {what}{self._last_error_note()}", "closed")
            if not await self._until(deadline):
                raise Violation(timeout_req, f"{self.label}: no {what} within "
                                f"{self.ctx.timeout:.1f} s", "timeout")

    def _last_error_note(self) -> str:
        errors = [m for m in self._unclaimed if isinstance(m, Error)]
        if errors:
            last = errors[-1]
            return f" (it sent ERROR {error_name(last.code)}: {last.detail!r})"
        return ""

    async def response(self, request_id: int, name: str = "request", *,
                       req: str = "CP-REQ-4", timeout: float | None = None) -> Answer:
        """The frames answering ``request_id``, up to and including its final response."""
        def find() -> Answer | None:
            # Paired when a case asks, not as frames arrive: other waits claim from
            # the same inbox, and raw frames carry ids the kit never tracked.
            if request_id == 0:  # events carry 0 too: only a final frame can answer it
                index = next((i for i, m in enumerate(self._unclaimed)
                              if m.request_id == 0 and is_final_response(m)), None)
                if index is None:
                    return None
                final = self._unclaimed.pop(index)
                return Answer((final,), final)
            waiting: PendingRequests[None] = PendingRequests()
            waiting.track_raw(request_id, None)
            for index, message in enumerate(self._unclaimed):
                answer = waiting.receive(message)
                if isinstance(answer, FinalResponse):
                    claimed = {id(frame) for frame in answer.frames}
                    self._unclaimed = [m for m in self._unclaimed[:index + 1]
                                       if id(m) not in claimed] + self._unclaimed[index + 1:]
                    return Answer(tuple(answer.frames), message)
            return None
        try:
            return await self._wait(find, self._deadline(timeout), req,
                                    f"final response to {name} (request {request_id})")
        except Violation as exc:
            if exc.kind in ("timeout", "closed"):
                self._raise_uncorrelated_refusal(exc, request_id, name)
            raise

    def _raise_uncorrelated_refusal(self, unanswered: Violation, request_id: int,
                                    name: str) -> None:
        """A request went unanswered, but an ERROR with request_id 0 came: CP-ERR-2.

        Not for an ERROR that rightly carries 0: an event, a header fault, or the
        answer to a frame the kit itself sent with request_id 0.
        """
        if request_id == 0 or self._sent_id_zero:
            return
        for message in self._unclaimed:
            if not isinstance(message, Error) or message.request_id != 0 \
                    or message.code in ZERO_ID_ERRORS:
                continue
            raise Violation("CP-ERR-2", f"{self.label}: {name} (request {request_id}) got no "
                            f"final response, but {describe(message)} arrived; an ERROR that "
                            "refuses a request carries that request's request_id "
                            f"({unanswered.message})")

    async def request(self, message: Message, *, req: str = "CP-REQ-4",
                      timeout: float | None = None) -> Answer:
        """Send a request and return its answer, whatever it is."""
        sent = await self.send(message)
        return await self.response(sent.request_id, sent.NAME, req=req, timeout=timeout)

    async def ok(self, message: Message, *, req: str, timeout: float | None = None) -> Answer:
        """Send a request the spec says must succeed; ``req`` is the rule that says so."""
        sent = await self.send(message)
        answer = await self.response(sent.request_id, sent.NAME, req=req, timeout=timeout)
        assert sent.FINAL_RESPONSE is not None
        expected = sent.FINAL_RESPONSE.NAME
        if isinstance(answer.final, Error):
            if answer.final.code == ErrorCode.RATE_LIMITED:
                raise Violation("CP-RATE-1", f"{self.label}: {sent.NAME} was refused with "
                                "RATE_LIMITED although the kit stayed within the advertised "
                                "bucket")
            raise Violation(req, f"{self.label}: {sent.NAME} was refused with ERROR "
                            f"{error_name(answer.final.code)} ({answer.final.detail!r}); "
                            f"the spec requires {expected}")
        if answer.final.NAME != expected:
            raise Violation("CP-REQ-4", f"{self.label}: {sent.NAME} was answered with "
                            f"{answer.final.NAME}, not {expected}")
        return answer

    async def refused(self, message: Message, code: ErrorCode | Collection[ErrorCode], *,
                      req: str, timeout: float | None = None) -> Error:
        """Send a request the spec says must be refused with ``code`` (or one of several)."""
        codes = {code} if isinstance(code, ErrorCode) else set(code)
        sent = await self.send(message)
        answer = await self.response(sent.request_id, sent.NAME, req=req, timeout=timeout)
        names = " or ".join(sorted(c.name for c in codes))
        if not isinstance(answer.final, Error):
            raise Violation(req, f"{self.label}: {sent.NAME} was answered with "
                            f"{answer.final.NAME}; the spec requires ERROR {names}")
        if answer.final.code not in codes:
            if answer.final.code == ErrorCode.RATE_LIMITED:
                raise Violation("CP-RATE-1", f"{self.label}: {sent.NAME} was refused with "
                                "RATE_LIMITED although the kit stayed within the advertised "
                                "bucket")
            raise Violation(req, f"{self.label}: {sent.NAME} was refused with ERROR "
                            f"{error_name(answer.final.code)}; the spec requires {names}")
        return answer.final

    def pending(self) -> list[Message]:
        """Frames received and not consumed yet (mostly events)."""
        self.raise_fault()
        return list(self._unclaimed)

    async def barrier(self, *, timeout: float | None = None) -> None:
        """The PING barrier: when it returns, everything queued to us before it has arrived."""
        self.ctx.require_working("ping")
        token = secrets.token_bytes(8)
        ping = await self.send(Ping(token=token), pace=False)
        try:
            answer = await self.response(ping.request_id, "PING", req="CP-KEEP-1",
                                         timeout=timeout)
        except Violation as exc:
            # Only an unanswered PING says PING is broken; a connection that closed
            # or a bad frame that arrived meanwhile is the case's own finding.
            if exc.requirement == "CP-KEEP-1" and exc.kind == "timeout":
                self.ctx.mark_broken("ping", exc)
            raise
        if not isinstance(answer.final, Pong) or answer.final.token != token:
            wrong = Violation("CP-KEEP-1", f"{self.label}: PING was answered with "
                            f"{describe(answer.final)}, not a PONG with token {token.hex()}")
            self.ctx.mark_broken("ping", wrong)
            raise wrong

    async def assert_none(self, match: Matcher, *, req: str, why: str) -> None:
        """After a barrier, check that no matching frame arrived."""
        await self.barrier()
        found = [m for m in self._unclaimed if matches(match, m)]
        if found:
            raise Violation(req, f"{self.label} received {describe(found[0])}: {why}")

    async def expect_closed(self, *, req: str, timeout: float | None = None) -> list[Message]:
        """Wait for the server to close; returns the frames not consumed before that."""
        deadline = self._deadline(timeout)
        while not self.closed:
            if not await self._until(deadline):
                raise Violation(req, f"{self.label}: the server did not close the connection "
                                f"within {self.ctx.timeout:.1f} s", "timeout")
        self.raise_fault()
        return list(self._unclaimed)

    # ------------------------------------------------------------ lifecycle
    def shutdown_write(self) -> None:
        """Close our sending direction (EOF to the server) and keep reading."""
        self.ctx.transcript.note(self.label, "sent EOF (half-close)")
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if self._writer.can_write_eof():
                self._writer.write_eof()

    def stop_reading(self) -> None:
        """Stop reading from the socket, so the server's data piles up (slow reader)."""
        transport = self._writer.transport
        if isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self._writer.transport
        if isinstance(transport, asyncio.ReadTransport):
            transport.resume_reading()

    def abort(self) -> None:
        """Reset the connection at once (RST), as a crashed client would."""
        transport = self._writer.transport
        with contextlib.suppress(Exception):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00"
                                b"\x00\x00\x00\x00")
            transport.abort()

    # ------------------------------------------------------------ common requests
    async def hello(self, nick: str, *, password: str = "", req: str = "CP-ACCT-5",
                    min_version: int = 1, max_version: int = 1,
                    capabilities: tuple[str, ...] = (),
                    timeout: float | None = None) -> Welcome:
        """HELLO that the spec says must be welcomed; the connection then holds ``nick``."""
        answer = await self.ok(Hello(min_version=min_version, max_version=max_version,
                                     nick=nick, password=password,
                                     client_name=KIT_CLIENT_NAME,
                                     capabilities=capabilities), req=req, timeout=timeout)
        welcome = answer.final
        assert isinstance(welcome, Welcome)
        self.welcome = welcome
        self.nick = welcome.nick
        self._start_buckets(welcome)
        self.ctx.limits = welcome
        return welcome

    async def join(self, room: str, *, resume: bool = False, last_seen_seq: int = 0) -> Answer:
        return await self.ok(Join(room=room, resume=resume, last_seen_seq=last_seen_seq),
                             req="CP-ROOM-9")

    async def part(self, room: str, reason: str = "") -> Answer:
        return await self.ok(Part(room=room, reason=reason), req="CP-ROOM-14")

    async def say(self, room: str, text: str, client_msg_id: int = 0) -> Ok:
        answer = await self.ok(SendRoom(room=room, text=text, client_msg_id=client_msg_id),
                               req="CP-MSG-1")
        assert isinstance(answer.final, Ok)
        return answer.final

    async def tell(self, nick: str, text: str, client_msg_id: int = 0) -> Ok:
        answer = await self.ok(SendPrivate(nick=nick, text=text, client_msg_id=client_msg_id),
                               req="CP-MSG-4")
        assert isinstance(answer.final, Ok)
        return answer.final

    async def oper(self) -> None:
        """Become an operator with the credentials given to the kit (SKIP without them)."""
        name, password = self.ctx.need_oper()
        await self.ok(Oper(name=name, password=password), req="CP-OPER-1")

    async def quit(self, reason: str = "") -> Answer:
        sent = await self.send(Quit(request_id=self.next_id(), reason=reason))
        return await self.response(sent.request_id, "QUIT", req="CP-CLOSE-1")


def mixed_case(name: str) -> str:
    """``name`` with every other character upper-cased: a spelling a fold would lose."""
    return "".join(c.upper() if i % 2 == 0 else c.lower() for i, c in enumerate(name))


def fresh_client_msg_id() -> int:
    """A fresh nonzero client_msg_id."""
    return secrets.randbits(63) | 1


class ServerContext(CaseContext):
    """What a server-suite case works with: the target, fresh names, connections, checks."""

    def __init__(self, case: Case, host: str, port: int, options: KitOptions,
                 broken: dict[str, str]) -> None:
        super().__init__(case, options, broken)
        self.host = host
        self.port = port
        self.limits: Limits | None = None
        """The limits of the latest WELCOME (targets may differ from the defaults)."""
        self.peers: list[Peer] = []
        self._labels: dict[str, int] = {}

    # ------------------------------------------------------------ names
    def nick(self, base: str = "u") -> str:
        """A nick no other case uses: ``base`` plus a random suffix, 12 bytes at most.

        The kit thus needs targets to allow nicks of 12 bytes and room names of 13
        (the protocol's defaults are 32 and 64).
        """
        alphabet = string.ascii_lowercase + string.digits
        suffix = "".join(secrets.choice(alphabet) for _ in range(6))
        return f"{base[:6]}{suffix}"

    def room(self, base: str = "r") -> str:
        """A room name no other case uses."""
        return "#" + self.nick("cf" + base)

    # ------------------------------------------------------------ connections
    async def connect(self, label: str = "c", *, receive_buffer: int | None = None) -> Peer:
        """A TCP connection to the target, before any HELLO."""
        count = self._labels.get(label, 0) + 1
        self._labels[label] = count
        name = label if count == 1 else f"{label}{count}"
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, (self.host, self.port)),
                self.timeout)
            tls = self.options.tls_context() if self.options.tls else None
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                sock=sock, limit=2 * MAX_FRAME_LENGTH, ssl=tls,
                server_hostname=self.host if tls else None), self.timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            sock.close()
            raise KitError(f"cannot connect to {self.host}:{self.port}: {exc!r}") from None
        peer = Peer(self, name, reader, writer)
        self.peers.append(peer)
        self.transcript.note(name, "connected")
        return peer

    async def client(self, base: str = "u", *, nick: str | None = None, password: str = "",
                     receive_buffer: int | None = None) -> Peer:
        """A connection that has been welcomed with a fresh nick (or ``nick``)."""
        self.require_working("handshake")
        peer = await self.connect(base, receive_buffer=receive_buffer)
        try:
            await peer.hello(nick or self.nick(base), password=password)
        except Violation as exc:
            self.mark_broken("handshake", exc)
            raise
        return peer

    async def close_all(self) -> None:
        await asyncio.gather(*(peer.close() for peer in self.peers))

    # ------------------------------------------------------------ what a case needs
    def need_shutdown(self) -> list[str]:
        if self.options.shutdown_command is None:
            raise NotApplicable("needs a command that shuts the server down: "
                                "--shutdown-command CMD")
        return self.options.shutdown_command

    def need_oper(self) -> tuple[str, str]:
        if self.options.oper is None:
            raise NotApplicable("needs operator credentials: --oper NAME:PASSWORD")
        return self.options.oper
