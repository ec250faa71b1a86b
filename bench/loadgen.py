"""The load generator: many chatproto connections in one process, cheap enough to outpace a server.

A ``Member`` is one connection. It says HELLO, joins one room, and then only
counts: it walks the frames it receives by their headers and reads the two
fields a benchmark needs from a ROOM_MESSAGE or PRIVATE_MESSAGE (the room's
``seq``, or the sender's counter, and the send time the sender put in the
text). Anything else (WELCOME, OK, ERROR, PING, events) goes through
chatproto's decoder. That is why this is not ``chat_connection.ChatConnection``:
that one decodes every frame into a pydantic model, which costs more than the
server spends relaying it. The frames a member sends are built by struct, and
``check_frames`` proves them byte-identical to chatproto's encoder first.

What a run proves about delivery, per member: every ROOM_MESSAGE's seq is
above the previous one (in order, never twice), none is one of the member's
own messages (no echo), and the count equals the room's messages minus its
own; so each member got each message of its room exactly once, in the order
the server assigned. Private messages carry a per (sender, receiver) counter
and must arrive as 1, 2, 3, ...
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chatproto import decode_frame, encode, is_final_response
from chatproto.messages import (
    Error,
    Hello,
    Join,
    Ok,
    Ping,
    Pong,
    PrivateMessage,
    RoomMessage,
    SendPrivate,
    SendRoom,
    Welcome,
)

HOST = "127.0.0.1"
TEXT_LENGTH = 64
"""Every message text is this many octets: a send time, a counter, then padding."""

_HEADER = struct.Struct(">IHI")  # length, type, request_id
_LENGTH_TYPE = struct.Struct(">IH")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")
_ROOM_MESSAGE = RoomMessage.TYPE
_PRIVATE_MESSAGE = PrivateMessage.TYPE
_OK = Ok.TYPE
_SEND_ROOM = SendRoom.TYPE
_SEND_PRIVATE = SendPrivate.TYPE
_MIN_FRAME_LENGTH = 6  # type and request_id: what the length field counts besides the body


def message_text(sent_ns: int, counter: int) -> bytes:
    """``TEXT_LENGTH`` octets of ASCII: the send time (ns), a counter, padding."""
    head = b"%020d %010d " % (sent_ns, counter)
    return head + b"x" * (TEXT_LENGTH - len(head))


def send_room_frame(request_id: int, room: bytes, client_msg_id: int, text: bytes) -> bytes:
    """A SEND_ROOM frame, built by hand (``check_frames`` holds it to chatproto's encoder)."""
    body = b"".join((bytes((len(room),)), room, _U64.pack(client_msg_id),
                     _U16.pack(len(text)), text))
    return _HEADER.pack(_MIN_FRAME_LENGTH + len(body), _SEND_ROOM, request_id) + body


def send_private_frame(request_id: int, nick: bytes, client_msg_id: int, text: bytes) -> bytes:
    """A SEND_PRIVATE frame, built by hand."""
    body = b"".join((bytes((len(nick),)), nick, _U64.pack(client_msg_id),
                     _U16.pack(len(text)), text))
    return _HEADER.pack(_MIN_FRAME_LENGTH + len(body), _SEND_PRIVATE, request_id) + body


def check_frames() -> None:
    """The hand-built frames equal chatproto's encoding of the same messages."""
    text = message_text(123456789, 42)
    ours = send_room_frame(7, b"#bench", 9, text)
    theirs = encode(SendRoom(request_id=7, room="#bench", client_msg_id=9, text=text.decode()))
    if ours != theirs:
        raise AssertionError("the load generator's SEND_ROOM differs from chatproto's")
    ours = send_private_frame(8, b"u00001", 10, text)
    theirs = encode(SendPrivate(request_id=8, nick="u00001", client_msg_id=10,
                                text=text.decode()))
    if ours != theirs:
        raise AssertionError("the load generator's SEND_PRIVATE differs from chatproto's")


@dataclass
class Tally:
    """What the members of one run saw, summed when the run ends."""

    out_of_order: int = 0
    echoed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ns: list[int] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class Member(asyncio.Protocol):
    """One connection of the load: handshake, one room, then counting and sending."""

    def __init__(self, index: int, nick: str, tally: Tally, *, measure_latency: bool) -> None:
        self.index = index
        self.nick = nick
        self.tally = tally
        self.measure_latency = measure_latency
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._answers: dict[int, asyncio.Future[object]] = {}
        self._next_request_id = 1
        self.closed = asyncio.get_running_loop().create_future()
        # Room traffic.
        self.room = b""
        self.last_seq = 0
        self.received = 0
        self.own_seqs: set[int] = set()
        # Sending.
        self.on_ok: Callable[[Member, int], None] | None = None
        """Told the seq of each of its SEND_ROOMs acknowledged with OK."""
        self.private_seen: dict[bytes, int] = {}
        """Sender nick -> the last counter of its private messages to this member."""
        self.private_received = 0

    # ------------------------------------------------------------ asyncio side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)
        for future in self._answers.values():
            if not future.done():
                future.set_exception(ConnectionError(f"{self.nick}: connection lost"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        size = len(buffer)
        pos = 0
        while size - pos >= 10:
            length, type_code = _LENGTH_TYPE.unpack_from(buffer, pos)
            end = pos + 4 + length
            if end > size:
                break
            if type_code == _ROOM_MESSAGE:
                self._room_message(buffer, pos)
            elif type_code == _OK and self.on_ok is not None:
                self._ok(buffer, pos)
            elif type_code == _PRIVATE_MESSAGE:
                self._private_message(buffer, pos)
            else:
                self._other(bytes(buffer[pos:end]))
            pos = end
        del buffer[:pos]

    # ---------------------------------------------------------------- frames

    def _room_message(self, buffer: bytearray, pos: int) -> None:
        room_end = pos + 11 + buffer[pos + 10]
        (seq,) = _U64.unpack_from(buffer, room_end)
        if seq <= self.last_seq:
            self.tally.out_of_order += 1
        if seq in self.own_seqs:
            self.tally.echoed += 1
        self.last_seq = seq
        self.received += 1
        if self.measure_latency:
            sender_at = room_end + 24
            text_at = sender_at + 1 + buffer[sender_at] + 8 + 1 + 2
            sent_ns = int(buffer[text_at:text_at + 20])
            self.tally.latencies_ns.append(time.monotonic_ns() - sent_ns)

    def _ok(self, buffer: bytearray, pos: int) -> None:
        (length,) = _U32.unpack_from(buffer, pos)
        (request_id,) = _U32.unpack_from(buffer, pos + 6)
        future = self._answers.pop(request_id, None)
        if future is not None:  # an answer someone awaits (JOIN): decoded in full
            future.set_result(decode_frame(bytes(buffer[pos:pos + 4 + length])))
            return
        (seq,) = _U64.unpack_from(buffer, pos + 18)
        self.own_seqs.add(seq)
        assert self.on_ok is not None
        self.on_ok(self, seq)

    def _private_message(self, buffer: bytearray, pos: int) -> None:
        sender_at = pos + 10 + 16
        sender_end = sender_at + 1 + buffer[sender_at]
        sender = bytes(buffer[sender_at + 1:sender_end])
        text_at = sender_end + 8 + 2
        counter = int(buffer[text_at + 21:text_at + 31])
        if counter != self.private_seen.get(sender, 0) + 1:
            self.tally.out_of_order += 1
        self.private_seen[sender] = counter
        self.private_received += 1
        if self.measure_latency:
            sent_ns = int(buffer[text_at:text_at + 20])
            self.tally.latencies_ns.append(time.monotonic_ns() - sent_ns)

    def _other(self, frame: bytes) -> None:
        message = decode_frame(frame)
        # Only a final response ends a request (JOIN's ROOM_INFO comes before its OK).
        future = self._answers.pop(message.request_id, None) \
            if message.request_id and is_final_response(message) else None
        if isinstance(message, Ping):  # the server's keepalive
            self.write(encode(Pong(request_id=message.request_id, token=message.token)))
        elif isinstance(message, Error) and future is None:
            self.tally.error(f"ERROR {message.code} {message.detail}")
        if future is not None and not future.done():
            future.set_result(message)

    # --------------------------------------------------------------- sending

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def next_request_id(self) -> int:
        request_id = self._next_request_id
        self._next_request_id += 1
        return request_id

    async def request(self, frame: bytes, request_id: int, timeout: float) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = future
        self.write(frame)
        return await asyncio.wait_for(future, timeout)

    async def hello(self, timeout: float) -> None:
        request_id = self.next_request_id()
        answer = await self.request(encode(Hello(
            request_id=request_id, min_version=1, max_version=1, nick=self.nick,
            client_name="chatproto-bench/1")), request_id, timeout)
        if not isinstance(answer, Welcome):
            raise ConnectionError(f"{self.nick}: HELLO was answered with {answer!r}")

    async def join(self, room: str, timeout: float) -> int:
        """Join ``room``; the room's last seq at that moment."""
        request_id = self.next_request_id()
        answer = await self.request(encode(Join(request_id=request_id, room=room)),
                                    request_id, timeout)
        if not isinstance(answer, Ok):
            raise ConnectionError(f"{self.nick}: JOIN {room} was answered with {answer!r}")
        self.room = room.encode()
        self.last_seq = answer.seq
        return answer.seq

    def send_room(self, counter: int) -> None:
        request_id = self.next_request_id()
        self.write(send_room_frame(request_id, self.room, request_id,
                                   message_text(time.monotonic_ns(), counter)))

    def send_private(self, to: bytes, counter: int) -> None:
        request_id = self.next_request_id()
        self.write(send_private_frame(request_id, to, request_id,
                                      message_text(time.monotonic_ns(), counter)))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int, index: int, tally: Tally, *, measure_latency: bool = False,
                  host: str = HOST, timeout: float = 30.0, nick_prefix: str = "u") -> Member:
    """A member with nick ``u000042`` (fixed width: every frame of a run has one size)."""
    loop = asyncio.get_running_loop()
    nick = f"{nick_prefix}{index:06d}"
    _, member = await asyncio.wait_for(loop.create_connection(
        lambda: Member(index, nick, tally, measure_latency=measure_latency), host, port),
        timeout)
    await member.hello(timeout)
    return member
