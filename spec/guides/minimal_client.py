# --8<-- [start:overview]
"""A minimal chatproto v1 client in plain Python: sockets and struct, nothing else.

It connects, says HELLO, joins ROOM, sends TEXT if given, prints the room's
messages for a while (or until it has seen COUNT of them), then leaves with QUIT:

    python minimal_client.py HOST PORT NICK ROOM [TEXT] [--wait SECONDS] [--count N]

This is the code of the guide "Implement the protocol" (spec/guides/implement.md).
It imports nothing from chatproto, so that it reads as a recipe for any language.
Exit status: 0 after an orderly QUIT and BYE; 1 when the server refused a request
or the connection failed; 2 for bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
import sys
import time
from dataclasses import dataclass
from enum import Enum
from typing import NoReturn

# --8<-- [end:overview]
# --8<-- [start:constants]
PROTOCOL_VERSION = 1
CLIENT_NAME = "minimal_client/1.0"

# Message type codes: the spec's message index.
HELLO, WELCOME, OK, ERROR, PING, PONG, QUIT, BYE, NOTICE = (
    0x0001, 0x0002, 0x0003, 0x0004, 0x0005, 0x0006, 0x0007, 0x0008, 0x0009)
JOIN = 0x0201
ROOM_INFO = 0x0204
HISTORY_GAP = 0x020B
SEND_ROOM = 0x0301
ROOM_MESSAGE = 0x0303
FINAL_RESPONSES = {WELCOME, OK, ERROR, PONG, BYE}
# What a server may send in READY and QUITTING (the state table); BYE only in QUITTING.
SERVER_MESSAGES = {OK, ERROR, PING, PONG, NOTICE, 0x0107, 0x0108, 0x0109, ROOM_INFO,
                   0x0207, 0x0208, 0x0209, HISTORY_GAP, ROOM_MESSAGE, 0x0304, 0x0405}
# What only clients send: from a server, these are violations, not unknown types.
CLIENT_MESSAGES = {HELLO, QUIT, 0x0101, 0x0102, 0x0103, 0x0104, 0x0105, 0x0106, JOIN,
                   0x0202, 0x0203, 0x0205, 0x0206, 0x020A, SEND_ROOM, 0x0302,
                   0x0401, 0x0402, 0x0403, 0x0404}
KNOWN_TYPES = SERVER_MESSAGES | CLIENT_MESSAGES | {WELCOME, BYE}

# The error codes this client sends itself; the others only need a name to print.
MALFORMED_FRAME, FRAME_TOO_LARGE, STATE_VIOLATION, UNSUPPORTED_VERSION = 100, 101, 105, 106
ERROR_NAMES = {
    100: "MALFORMED_FRAME", 101: "FRAME_TOO_LARGE", 102: "MALFORMED_MESSAGE",
    103: "INVALID_UTF8", 104: "UNKNOWN_TYPE", 105: "STATE_VIOLATION",
    106: "UNSUPPORTED_VERSION", 107: "TRUNCATED_FRAME", 108: "IDLE_TIMEOUT",
    109: "INVALID_REQUEST_ID", 110: "INVALID_FIELD", 200: "INVALID_NICK",
    201: "NICK_IN_USE", 202: "NICK_REGISTERED", 203: "AUTH_FAILED",
    204: "ALREADY_REGISTERED", 300: "INVALID_ROOM_NAME", 301: "NO_SUCH_ROOM",
    302: "NOT_IN_ROOM", 303: "ALREADY_IN_ROOM", 304: "TOO_MANY_ROOMS",
    305: "BANNED_FROM_ROOM", 306: "MUTED", 307: "NO_SUCH_NICK", 308: "MESSAGE_TOO_LONG",
    400: "NOT_OPERATOR", 500: "RATE_LIMITED", 501: "SLOW_CONSUMER",
    502: "SERVER_SHUTDOWN", 503: "INTERNAL_ERROR", 504: "TOO_MANY_CONNECTIONS",
}

HEADER = struct.Struct(">IHI")  # length u32, type u16, request_id u32: 10 bytes, big-endian
MIN_LENGTH = 6  # a frame without body: type and request_id follow the length field
CLIENT_FRAME_LIMIT = 65536  # a client accepts up to this length, and refuses more
PRE_WELCOME_LIMIT = 4096  # the most a client may send before WELCOME
REQUEST_TIMEOUT_S = 10.0  # how long to wait for the answer to a request
# --8<-- [end:constants]
# --8<-- [start:framing]


@dataclass(frozen=True)
class Frame:
    """One frame as it arrived: the header's type and request_id, the body undecoded."""

    type: int
    request_id: int
    body: bytes


class ProtocolViolation(Exception):
    """The server broke a rule that ends the connection; ``code`` is the ERROR to send."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class FrameBuffer:
    """Bytes in, frames out: cuts the TCP byte stream into frames.

    TCP keeps no message boundaries: one recv() can return half a frame, or
    several frames and the start of the next one. So whatever arrives is
    appended here, and a frame is cut off the front once all of it is here.
    """

    def __init__(self, limit: int = CLIENT_FRAME_LIMIT) -> None:
        self._buffer = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes have arrived."""
        if len(self._buffer) < 4:
            return None
        (length,) = struct.unpack_from(">I", self._buffer)
        # Judge the length as soon as its 4 bytes are here, before waiting for
        # (and buffering) a body we would refuse anyway.
        if length > self._limit:
            raise ProtocolViolation(FRAME_TOO_LARGE, f"length {length} exceeds {self._limit}")
        if length < MIN_LENGTH:
            raise ProtocolViolation(MALFORMED_FRAME, f"length {length} is below 6")
        if len(self._buffer) < 4 + length:
            return None
        _, message_type, request_id = HEADER.unpack_from(self._buffer)
        body = bytes(self._buffer[HEADER.size:4 + length])
        del self._buffer[:4 + length]
        return Frame(message_type, request_id, body)

    @property
    def holds_partial_frame(self) -> bool:
        return len(self._buffer) > 0
# --8<-- [end:framing]
# --8<-- [start:encoding]


def u8(value: int) -> bytes:
    return struct.pack(">B", value)


def u16(value: int) -> bytes:
    return struct.pack(">H", value)


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def boolean(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


def str8(text: str) -> bytes:
    """A u8 byte count, then the UTF-8 bytes: counts are of bytes, not characters."""
    data = text.encode("utf-8")
    if len(data) > 0xFF:
        raise ValueError(f"{len(data)} bytes of UTF-8 do not fit in a str8")
    return u8(len(data)) + data


def str16(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError(f"{len(data)} bytes of UTF-8 do not fit in a str16")
    return u16(len(data)) + data


def bytes8(data: bytes) -> bytes:
    if len(data) > 0xFF:
        raise ValueError(f"{len(data)} bytes do not fit in a bytes8")
    return u8(len(data)) + data


def strlist8(items: list[str]) -> bytes:
    return u8(len(items)) + b"".join(str8(item) for item in items)


def encode_frame(message_type: int, request_id: int, body: bytes) -> bytes:
    """The 10-byte header, then the body; ``length`` counts the 6 header bytes after it."""
    return HEADER.pack(MIN_LENGTH + len(body), message_type, request_id) + body


# One function per request this client sends: the fields in the order of the
# spec's field table, each in its wire kind.


def hello_body(min_version: int, max_version: int, nick: str, password: str,
               client_name: str, capabilities: list[str]) -> bytes:
    return (u8(min_version) + u8(max_version) + str8(nick) + str8(password)
            + str8(client_name) + strlist8(capabilities))


def join_body(room: str, resume: bool, last_seen_seq: int) -> bytes:
    return str8(room) + boolean(resume) + u64(last_seen_seq)


def send_room_body(room: str, client_msg_id: int, text: str) -> bytes:
    return str8(room) + u64(client_msg_id) + str16(text)


def pong_body(token: bytes) -> bytes:
    return bytes8(token)


def quit_body(reason: str) -> bytes:
    return str8(reason)


def error_body(code: int, fatal: bool, retry_after_ms: int, detail: str) -> bytes:
    return u16(code) + boolean(fatal) + u32(retry_after_ms) + str8(detail)
# --8<-- [end:encoding]
# --8<-- [start:decoding]


class MalformedBody(Exception):
    """A body that does not match its message's fields: too short, too long, a bad value."""


class BodyReader:
    """Reads the fields of one body in order; every read checks that its bytes are there."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._offset = 0

    def _take(self, size: int) -> bytes:
        end = self._offset + size
        if end > len(self._body):
            raise MalformedBody("the body is too short")
        data = self._body[self._offset:end]
        self._offset = end
        return data

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self._take(4), "big")

    def u64(self) -> int:
        return int.from_bytes(self._take(8), "big")

    def boolean(self) -> bool:
        value = self.u8()
        if value > 1:
            raise MalformedBody(f"a bool is {value}, not 0 or 1")
        return value == 1

    def _utf8(self, size: int) -> str:
        try:
            return self._take(size).decode("utf-8")  # strict: refuses overlong forms, surrogates
        except UnicodeDecodeError:
            raise MalformedBody("a string is not UTF-8") from None

    def str8(self) -> str:
        return self._utf8(self.u8())

    def str16(self) -> str:
        return self._utf8(self.u16())

    def bytes8(self) -> bytes:
        return self._take(self.u8())

    def strlist8(self) -> list[str]:
        return [self.str8() for _ in range(self.u8())]

    def end(self) -> None:
        """Call after the last field: bytes left over make the body malformed too."""
        if self._offset != len(self._body):
            raise MalformedBody(f"{len(self._body) - self._offset} bytes after the last field")
# --8<-- [end:decoding]
# --8<-- [start:connection]


class ConnectionEnded(Exception):
    """The session is over without BYE: the server closed, went silent or sent a fatal ERROR."""


class State(Enum):
    """The spec's connection states, as this client tracks them."""

    AWAIT_HELLO = "AWAIT_HELLO"
    AWAIT_WELCOME = "AWAIT_WELCOME"
    READY = "READY"
    QUITTING = "QUITTING"
    CLOSED = "CLOSED"


class Connection:
    """A socket with its FrameBuffer: sends frames and receives them, with deadlines."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames = FrameBuffer()
        self.send_limit = PRE_WELCOME_LIMIT  # WELCOME's max_frame_size replaces it
        self.max_message_length = 0  # set from WELCOME
        self.state = State.AWAIT_HELLO
        self.live_messages = 0  # live ROOM_MESSAGE events received
        self._last_request_id = 0

    def new_request_id(self) -> int:
        """1, 2, 3, ...: never 0, which marks events, and never two pending alike."""
        self._last_request_id = self._last_request_id % 0xFFFF_FFFF + 1
        return self._last_request_id

    def send(self, message_type: int, request_id: int, body: bytes) -> None:
        data = encode_frame(message_type, request_id, body)
        if len(data) - 4 > self.send_limit:
            raise ValueError(f"a frame of length {len(data) - 4} is over the server's limit "
                             f"of {self.send_limit}")
        self.sock.sendall(data)

    def receive(self, deadline: float) -> Frame | None:
        """The next frame, or None when ``deadline`` (a time.monotonic() value) passes."""
        while True:
            try:
                frame = self.frames.next_frame()
            except ProtocolViolation as violation:
                self.fail(violation)
            if frame is not None:
                self.check_allowed(frame)
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not data:  # end of stream
                if self.frames.holds_partial_frame:  # the server stopped mid-frame
                    raise ConnectionEnded("the connection ended inside a frame (TRUNCATED_FRAME)")
                raise ConnectionEnded("the server closed the connection")
            self.frames.feed(data)

    def check_allowed(self, frame: Frame) -> None:
        """Close on a message the state table does not allow from a server in this state."""
        if self.state is State.AWAIT_WELCOME:  # only the answer to HELLO, or an ERROR
            allowed = frame.type in (WELCOME, ERROR)
        elif frame.type not in KNOWN_TYPES:  # a later version's type: ignored, see below
            allowed = True
        else:
            allowed = frame.type in SERVER_MESSAGES or (
                frame.type == BYE and self.state is State.QUITTING)
        if not allowed and frame.type == BYE:  # the session is over: send nothing more
            self.close()
            raise ConnectionEnded("the server said BYE to a QUIT we never sent")
        if not allowed:
            self.fail(ProtocolViolation(STATE_VIOLATION, f"type 0x{frame.type:04x} "
                                        f"in {self.state.value}"))

    def fail(self, violation: ProtocolViolation) -> NoReturn:
        """Tell the server why we give up (a fatal ERROR with request_id 0), then close."""
        with contextlib.suppress(OSError):
            self.sock.sendall(encode_frame(ERROR, 0, error_body(
                violation.code, True, 0, violation.detail)))
        self.close()
        raise ConnectionEnded(f"the server broke the protocol: {violation.detail}")

    def close(self) -> None:
        self.state = State.CLOSED
        self.sock.close()
# --8<-- [end:connection]
# --8<-- [start:requests]


@dataclass(frozen=True)
class ErrorReply:
    code: int
    fatal: bool
    retry_after_ms: int
    detail: str

    def __str__(self) -> str:
        name = ERROR_NAMES.get(self.code, "unknown code")
        return f"ERROR {self.code} {name}: {printable(self.detail)}"


def decode_error(body: bytes) -> ErrorReply:
    fields = BodyReader(body)
    error = ErrorReply(code=fields.u16(), fatal=fields.boolean(),
                       retry_after_ms=fields.u32(), detail=fields.str8())
    fields.end()
    return error


class Refused(Exception):
    """The server answered a request with a non-fatal ERROR: that request failed, no more."""

    def __init__(self, error: ErrorReply) -> None:
        super().__init__(str(error))
        self.error = error


def request(conn: Connection, message_type: int, body: bytes,
            answer: int) -> tuple[Frame, list[Frame]]:
    """Send a request; return its final response (of type ``answer``) and the
    intermediate frames that came before it.

    Events (request_id 0) that arrive meanwhile go to handle_event. An ERROR
    answer raises Refused, or ConnectionEnded when it is fatal.
    """
    request_id = conn.new_request_id()
    conn.send(message_type, request_id, body)
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    intermediate: list[Frame] = []
    while True:
        frame = conn.receive(deadline)
        if frame is None:
            raise ConnectionEnded(f"no answer to request {request_id} in {REQUEST_TIMEOUT_S} s")
        if frame.request_id != request_id:  # this client has only one request pending
            handle_event(conn, frame)
        elif frame.type == ERROR:
            error = decode_error(frame.body)
            if error.fatal:  # the server closes after a fatal ERROR; so do we
                conn.close()
                raise ConnectionEnded(str(error))
            raise Refused(error)
        elif frame.type == answer:
            return frame, intermediate
        elif frame.type in FINAL_RESPONSES:  # e.g. PONG answering a JOIN
            conn.fail(ProtocolViolation(STATE_VIOLATION, f"type 0x{frame.type:04x} answered "
                                        f"request {request_id}"))
        else:
            intermediate.append(frame)
# --8<-- [end:requests]
# --8<-- [start:handshake]


@dataclass(frozen=True)
class Welcome:
    version: int
    server_name: str
    nick: str
    logged_in: bool
    casemapping: str
    capabilities: list[str]
    max_frame_size: int
    max_nick_length: int
    max_room_name_length: int
    max_message_length: int
    max_topic_length: int
    max_rooms_per_user: int
    msg_rate_burst: int
    msg_rate_interval_ms: int
    cmd_rate_burst: int
    cmd_rate_interval_ms: int
    keepalive_interval_s: int
    idle_timeout_s: int
    history_on_join: int
    history_page_max: int


def decode_welcome(body: bytes) -> Welcome:
    fields = BodyReader(body)
    # Arguments are evaluated left to right: this reads the fields in wire order.
    welcome = Welcome(
        version=fields.u8(), server_name=fields.str8(), nick=fields.str8(),
        logged_in=fields.boolean(), casemapping=fields.str8(), capabilities=fields.strlist8(),
        max_frame_size=fields.u32(), max_nick_length=fields.u8(),
        max_room_name_length=fields.u8(), max_message_length=fields.u16(),
        max_topic_length=fields.u16(), max_rooms_per_user=fields.u16(),
        msg_rate_burst=fields.u16(), msg_rate_interval_ms=fields.u32(),
        cmd_rate_burst=fields.u16(), cmd_rate_interval_ms=fields.u32(),
        keepalive_interval_s=fields.u16(), idle_timeout_s=fields.u16(),
        history_on_join=fields.u16(), history_page_max=fields.u16(),
    )
    fields.end()
    return welcome


def hello(conn: Connection, nick: str) -> Welcome:
    """HELLO, answered by WELCOME: the session is READY."""
    body = hello_body(PROTOCOL_VERSION, PROTOCOL_VERSION, nick, "", CLIENT_NAME, [])
    conn.state = State.AWAIT_WELCOME
    try:
        final, _ = request(conn, HELLO, body, answer=WELCOME)
    except Refused:  # NICK_IN_USE and the like: another HELLO, or close (never QUIT)
        conn.state = State.AWAIT_HELLO
        raise
    welcome = decode_welcome(final.body)
    if welcome.version != PROTOCOL_VERSION:  # not in the range we offered
        conn.fail(ProtocolViolation(UNSUPPORTED_VERSION, f"version {welcome.version} "
                                    "was not offered"))
    conn.send_limit = welcome.max_frame_size
    conn.max_message_length = welcome.max_message_length
    conn.state = State.READY
    return welcome
# --8<-- [end:handshake]
# --8<-- [start:join]


@dataclass(frozen=True)
class RoomInfo:
    room: str
    topic: str
    member_count: int
    last_seq: int


@dataclass(frozen=True)
class HistoryGap:
    room: str
    first_seq: int
    last_seq: int


@dataclass(frozen=True)
class RoomMessage:
    room: str
    seq: int
    msg_id: int
    timestamp_ms: int
    sender: str
    client_msg_id: int
    history: bool
    text: str


def decode_room_info(body: bytes) -> RoomInfo:
    fields = BodyReader(body)
    info = RoomInfo(room=fields.str8(), topic=fields.str16(), member_count=fields.u32(),
                    last_seq=fields.u64())
    fields.end()
    return info


def decode_history_gap(body: bytes) -> HistoryGap:
    fields = BodyReader(body)
    gap = HistoryGap(room=fields.str8(), first_seq=fields.u64(), last_seq=fields.u64())
    fields.end()
    return gap


def decode_room_message(body: bytes) -> RoomMessage:
    fields = BodyReader(body)
    message = RoomMessage(
        room=fields.str8(), seq=fields.u64(), msg_id=fields.u64(), timestamp_ms=fields.u64(),
        sender=fields.str8(), client_msg_id=fields.u64(), history=fields.boolean(),
        text=fields.str16(),
    )
    fields.end()
    return message


def join(conn: Connection, room: str) -> RoomInfo:
    """JOIN, answered by ROOM_INFO, maybe HISTORY_GAP, the recent history, then OK."""
    _, intermediate = request(conn, JOIN, join_body(room, False, 0), answer=OK)
    info: RoomInfo | None = None
    for frame in intermediate:
        if frame.type == ROOM_INFO:
            info = decode_room_info(frame.body)
        elif frame.type == HISTORY_GAP:
            gap = decode_history_gap(frame.body)
            say(f"{printable(gap.room)}: messages {gap.first_seq} to {gap.last_seq} are gone")
        elif frame.type == ROOM_MESSAGE:
            show_message(decode_room_message(frame.body))
    if info is None:
        conn.fail(ProtocolViolation(STATE_VIOLATION, "JOIN answered without ROOM_INFO"))
    return info
# --8<-- [end:join]
# --8<-- [start:send]


@dataclass(frozen=True)
class Ok:
    msg_id: int
    seq: int
    timestamp_ms: int


def decode_ok(body: bytes) -> Ok:
    fields = BodyReader(body)
    ok = Ok(msg_id=fields.u64(), seq=fields.u64(), timestamp_ms=fields.u64())
    fields.end()
    return ok


def send_room(conn: Connection, room: str, text: str) -> Ok:
    """SEND_ROOM, answered by OK with the new message's msg_id, seq and timestamp."""
    size = len(text.encode("utf-8"))
    if size > conn.max_message_length:  # check the advertised limit before sending
        raise ValueError(f"the text is {size} bytes; the server takes at most "
                         f"{conn.max_message_length}")
    # client_msg_id 0: this client never resends, so it needs no idempotency key.
    final, _ = request(conn, SEND_ROOM, send_room_body(room, 0, text), answer=OK)
    return decode_ok(final.body)
# --8<-- [end:send]
# --8<-- [start:events]


def decode_token(body: bytes) -> bytes:
    """The body of PING and PONG."""
    fields = BodyReader(body)
    token = fields.bytes8()
    fields.end()
    return token


def decode_notice(body: bytes) -> str:
    fields = BodyReader(body)
    text = fields.str16()
    fields.end()
    return text


def handle_event(conn: Connection, frame: Frame) -> None:
    """React to a frame that answers no pending request of ours."""
    try:
        if frame.type == PING:
            token = decode_token(frame.body)
            if conn.state is State.READY:  # after QUIT, only a fatal ERROR may be sent
                conn.send(PONG, frame.request_id, pong_body(token))  # same token, same id
        elif frame.type == ROOM_MESSAGE:
            message = decode_room_message(frame.body)
            show_message(message)
            if not message.history:
                conn.live_messages += 1
        elif frame.type == NOTICE:
            say(f"notice: {printable(decode_notice(frame.body))}")
        elif frame.type == ERROR:
            error = decode_error(frame.body)
            if error.fatal:  # SERVER_SHUTDOWN, IDLE_TIMEOUT, SLOW_CONSUMER, or a new code
                conn.close()
                raise ConnectionEnded(str(error))
            print(f"server: {error}", file=sys.stderr)
        # Everything else (members joining and leaving, topics, presence, and types
        # this client has never heard of) is ignored: no answer, no close.
    except MalformedBody as fault:
        print(f"skipped a malformed frame of type 0x{frame.type:04x}: {fault}", file=sys.stderr)


def printable(text: str) -> str:
    """Text from the network with control characters escaped, safe for a terminal."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
                   for char in text)


def say(line: str) -> None:
    print(line, flush=True)  # flush: a pipe reader sees each line as it happens


def show_message(message: RoomMessage) -> None:
    replayed = " (history)" if message.history else ""
    say(f"{printable(message.room)} [{message.seq}] <{printable(message.sender)}> "
        f"{printable(message.text)}{replayed}")


def listen(conn: Connection, seconds: float, count: int | None) -> None:
    """Handle events for ``seconds``, or until ``count`` live room messages have arrived."""
    deadline = time.monotonic() + seconds
    while count is None or conn.live_messages < count:
        frame = conn.receive(deadline)
        if frame is None:
            return
        handle_event(conn, frame)
# --8<-- [end:events]
# --8<-- [start:quit]


def decode_reason(body: bytes) -> str:
    """The body of BYE (and QUIT)."""
    fields = BodyReader(body)
    reason = fields.str8()
    fields.end()
    return reason


def quit_session(conn: Connection, reason: str) -> str:
    """QUIT, answered by BYE; then the server closes. Returns BYE's reason."""
    body = quit_body(reason)
    conn.state = State.QUITTING  # from the moment QUIT is sent: no more PONGs
    final, _ = request(conn, QUIT, body, answer=BYE)
    conn.close()  # nothing may follow BYE
    return decode_reason(final.body)
# --8<-- [end:quit]
# --8<-- [start:main]


def is_safe_text(text: str) -> bool:
    """No C0 controls but TAB and LF, no DEL, no C1 controls, nothing that is not UTF-8."""
    return not any(
        (ord(char) < 0x20 and char not in "\t\n") or 0x7F <= ord(char) <= 0x9F
        or 0xD800 <= ord(char) <= 0xDFFF  # undecodable bytes of the command line
        for char in text)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="minimal_client.py",
        description="Join a chatproto room, optionally send TEXT to it, print what arrives, quit.")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("nick")
    parser.add_argument("room", help="for example '#general' (quote the #)")
    parser.add_argument("text", nargs="?", help="a message to send after joining")
    parser.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                        help="how long to print room messages before quitting (default 10)")
    parser.add_argument("--count", type=int, metavar="N",
                        help="quit as soon as N live room messages have arrived")
    args = parser.parse_args(argv)
    if args.text is not None and (not args.text or not is_safe_text(args.text)):
        parser.error("TEXT must be non-empty and contain no control characters but TAB and LF")
    return args


def run(conn: Connection, args: argparse.Namespace) -> int:
    status = 0
    try:
        welcome = hello(conn, args.nick)
        say(f"welcome: {printable(welcome.server_name)} knows us as {printable(welcome.nick)}")
        info = join(conn, args.room)
        say(f"joined {printable(info.room)}: member_count {info.member_count}, "
            f"last_seq {info.last_seq}")
        if args.text is not None:
            ok = send_room(conn, info.room, args.text)
            say(f"sent to {printable(info.room)}: seq {ok.seq}, msg_id {ok.msg_id}")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop listening, still QUIT
            listen(conn, args.wait, args.count)
    except (Refused, ValueError) as refused:
        print(f"refused: {refused}", file=sys.stderr)
        status = 1
    if conn.state is not State.READY:  # before WELCOME a client leaves by closing, no QUIT
        return status
    reason = quit_session(conn, "")
    say(f"bye: {printable(reason)}")
    return status


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        sock = socket.create_connection((args.host, args.port), timeout=REQUEST_TIMEOUT_S)
    except OSError as exc:
        print(f"cannot connect to {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    with sock:
        try:
            return run(Connection(sock), args)
        except (ConnectionEnded, MalformedBody, OSError) as exc:
            print(f"connection failed: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
# --8<-- [end:main]
