"""The sans-IO Connection: byte streams in, events out; messages in, bytes out.

Framing (segmentation, coalescing, length checks, EOF), body errors (non-fatal
FrameRejected, the next frame still arrives), unknown types, request ids,
advertised limits, frame size limits, version negotiation, and the ERROR a
breach is reported with. No sockets and no sleeps: bytes are handed over by
hand. The last section checks that every error code the core can produce from
bad input is produced here.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import struct
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from pairs import (
    Pair,
    Step,
    class_of,
    feed,
    message_for_key,
    minimal,
    pair_in,
    peer,
    raw_frame,
    receive_until_error,
    sender_keys,
    state_allowing,
    welcome,
    with_body,
)

from chatproto import (
    ERROR_REGISTRY,
    MAX_FRAME_LENGTH,
    MESSAGE_TYPES,
    PRE_WELCOME_FRAME_LENGTH,
    Connection,
    ConnectionClosed,
    ErrorCode,
    Event,
    FrameRejected,
    Limits,
    LocalProtocolError,
    Message,
    ProtocolError,
    RemoteProtocolError,
    Sender,
    State,
    encode,
    error_message,
)
from chatproto._schema import BODY_FIELDS, HEADER_SIZE, TRANSITIONS
from chatproto.messages import (
    Bye,
    Error,
    Hello,
    Join,
    Login,
    MemberJoined,
    MemberLeft,
    Nick,
    Notice,
    Ok,
    Oper,
    Part,
    Ping,
    Pong,
    Quit,
    RoomInfo,
    RoomMessage,
    SendPrivate,
    SendRoom,
    SetTopic,
    Welcome,
)

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER


def length_prefix(length: int) -> bytes:
    return struct.pack(">I", length)


def describe(event: Event) -> str:
    if isinstance(event, FrameRejected):
        return f"rejected:{event.code.name}"
    if isinstance(event, ConnectionClosed):
        return "EOF"
    return event.NAME


def rejection(event: Event) -> tuple[ErrorCode, int, int]:
    """(code, request_id, type_code) of a FrameRejected; fails on anything else."""
    assert isinstance(event, FrameRejected), event
    return event.code, event.request_id, event.type_code


def send_room(request_id: int, text: str, room: str = "#room") -> SendRoom:
    return SendRoom(request_id=request_id, room=room, text=text)


def send_room_of_length(length: int, request_id: int = 5) -> SendRoom:
    """A SEND_ROOM whose frame has exactly this ``length`` field."""
    base = len(encode(send_room(request_id, "a"))) - 4
    message = send_room(request_id, "a" * (length - base + 1))
    assert len(encode(message)) - 4 == length
    return message


# =========================================================== a scripted session
#
# A client and a server that react to each event as a real application would.
# The session is first run with every chunk delivered whole; then each side is
# replayed from scratch with its peer's byte stream cut up in other ways, and
# must produce the same events and send the same bytes back.

ROOM = "#general"
HELLO = Hello(request_id=1, min_version=1, max_version=1, nick="alice", client_name="cpcli/0.1")
UNKNOWN_REQUEST = raw_frame(0x7ABC, 90, b"\x01\x02\x03")
BAD_UTF8_SEND = encode(send_room(91, "Zzzz", ROOM)).replace(b"Zzzz", b"Z\xffzz")
EXTENSION_EVENT = raw_frame(0x8001, 0, b"an event from the future")
T0 = 1_700_000_000_000


def client_app(conn: Connection, event: Event) -> bytes:
    if isinstance(event, Welcome):
        return conn.send(Join(request_id=2, room=ROOM))
    if isinstance(event, Ok) and event.request_id == 2:
        text = "h\u00e9llo\tw\u00f6rld\n\U0001f600"
        return (
            conn.send(SendRoom(request_id=3, room=ROOM, client_msg_id=11, text=text))
            + UNKNOWN_REQUEST
            + BAD_UTF8_SEND
        )
    if isinstance(event, Ok) and event.request_id == 3:
        return conn.send(Ping(request_id=4, token=b"\x00\xff"))
    if isinstance(event, Ping):
        return conn.send(Pong(request_id=event.request_id, token=event.token))
    if isinstance(event, Pong) and event.request_id == 4:
        return conn.send(Quit(request_id=5, reason="lunch"))
    return b""


def server_app(conn: Connection, event: Event) -> bytes:
    if isinstance(event, Hello):
        return (
            conn.send(welcome(event.request_id, nick=event.nick, server_name="cpserve/0.1"))
            + conn.send(Notice(text="Welcome."))
            + conn.send(Notice(text="Be nice."))
        )
    if isinstance(event, Join):
        rid = event.request_id
        return (
            conn.send(RoomInfo(request_id=rid, room=event.room, topic="t", member_count=2,
                               last_seq=1))
            + conn.send(RoomMessage(request_id=rid, room=event.room, seq=1, msg_id=100,
                                    timestamp_ms=T0, sender="bob", history=True, text="earlier"))
            + EXTENSION_EVENT
            + conn.send(Ok(request_id=rid))
        )
    if isinstance(event, SendRoom):
        return (
            conn.send(MemberJoined(room=event.room, nick="carol"))
            + conn.send(RoomMessage(room=event.room, seq=2, msg_id=101, timestamp_ms=T0 + 1,
                                    sender="bob", text="hi alice"))
            + conn.send(Ok(request_id=event.request_id, msg_id=102, seq=3, timestamp_ms=T0 + 2))
        )
    if isinstance(event, Ping):
        return conn.send(Ping(request_id=0, token=b"srv")) + conn.send(
            Pong(request_id=event.request_id, token=event.token)
        )
    if isinstance(event, FrameRejected):
        return conn.send(event.error_reply())
    if isinstance(event, Quit):
        return conn.send(Bye(request_id=event.request_id, reason="bye"))
    return b""


class Session:
    """The reference run: both byte streams and both event lists."""

    def __init__(self) -> None:
        client, server = Connection(CLIENT), Connection(SERVER)
        self.client_stream = bytearray(client.send(HELLO))
        self.server_stream = bytearray()
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []
        to_server, to_client = bytes(self.client_stream), b""
        while to_server or to_client:
            out = bytearray()
            if to_server:  # an empty receive_data() would mean end of stream
                server.receive_data(to_server)
                for event in server.events():
                    self.server_events.append(event)
                    out += server_app(server, event)
            self.server_stream += out
            to_client, out = bytes(out), bytearray()
            if to_client:
                client.receive_data(to_client)
                for event in client.events():
                    self.client_events.append(event)
                    out += client_app(client, event)
            self.client_stream += out
            to_server = bytes(out)
        self.server_events += feed(server, b"")
        self.client_events += feed(client, b"")
        self.final_states = (client.state, server.state)


SESSION = Session()


def replay(role: Sender, chunks: list[bytes]) -> tuple[list[Event], bytes]:
    """A fresh ``role`` end fed its peer's stream in ``chunks``, then EOF."""
    conn = Connection(role)
    app = client_app if role is CLIENT else server_app
    out = bytearray(conn.send(HELLO) if role is CLIENT else b"")
    events: list[Event] = []
    for chunk in [*(c for c in chunks if c), b""]:  # b"" is end of stream, not an empty read
        conn.receive_data(chunk)
        for event in conn.events():
            events.append(event)
            out += app(conn, event)
    return events, bytes(out)


def incoming(role: Sender) -> bytes:
    return bytes(SESSION.server_stream if role is CLIENT else SESSION.client_stream)


def check_replay(role: Sender, chunks: list[bytes]) -> None:
    assert b"".join(chunks) == incoming(role)
    events, sent = replay(role, chunks)
    if role is CLIENT:
        assert events == SESSION.client_events
        assert sent == bytes(SESSION.client_stream)
    else:
        assert events == SESSION.server_events
        assert sent == bytes(SESSION.server_stream)


def test_the_scripted_session_runs_as_intended() -> None:
    assert [describe(e) for e in SESSION.server_events] == [
        "HELLO", "JOIN", "SEND_ROOM", "rejected:UNKNOWN_TYPE", "rejected:INVALID_UTF8",
        "PING", "PONG", "QUIT", "EOF",
    ]  # fmt: skip
    assert [describe(e) for e in SESSION.client_events] == [
        "WELCOME", "NOTICE", "NOTICE", "ROOM_INFO", "ROOM_MESSAGE", "OK",  # extension skipped
        "MEMBER_JOINED", "ROOM_MESSAGE", "OK", "ERROR", "ERROR", "PING", "PONG", "BYE", "EOF",
    ]  # fmt: skip
    assert SESSION.final_states == (State.CLOSED, State.CLOSED)


@pytest.mark.parametrize("role", [CLIENT, SERVER])
def test_whole_stream_in_one_chunk_gives_the_same_events(role: Sender) -> None:
    check_replay(role, [incoming(role)])


@pytest.mark.parametrize("role", [CLIENT, SERVER])
def test_stream_fed_one_byte_at_a_time_gives_the_same_events(role: Sender) -> None:
    stream = incoming(role)
    check_replay(role, [stream[i : i + 1] for i in range(len(stream))])


@pytest.mark.parametrize("role", [CLIENT, SERVER])
def test_stream_split_at_every_offset_gives_the_same_events(role: Sender) -> None:
    stream = incoming(role)
    for offset in range(len(stream) + 1):
        check_replay(role, [stream[:offset], stream[offset:]])


@settings(max_examples=200, deadline=None)
@given(role=hst.sampled_from([CLIENT, SERVER]), data=hst.data())
def test_stream_cut_anywhere_gives_the_same_events(role: Sender, data: hst.DataObject) -> None:
    stream = incoming(role)
    cuts = sorted(data.draw(hst.sets(hst.integers(0, len(stream)), max_size=40)))
    bounds = [0, *cuts, len(stream)]
    check_replay(role, [stream[a:b] for a, b in pairwise(bounds)])


def test_many_coalesced_frames_in_one_chunk_arrive_in_order() -> None:
    pair = pair_in(State.READY)
    pings = [Ping(request_id=i, token=i.to_bytes(2, "big")) for i in range(1, 501)]
    notices = [Notice(text=f"line {i}") for i in range(500)]

    assert feed(pair.server, b"".join(map(pair.client.send, pings))) == pings
    assert feed(pair.client, b"".join(map(pair.server.send, notices))) == notices


def test_frame_completed_by_the_next_chunk_is_not_yielded_early() -> None:
    pair = pair_in(State.READY)
    first, second = Ping(request_id=1), Ping(request_id=2)
    stream = encode(first) + encode(second)
    cut = len(encode(first)) + 3

    assert feed(pair.server, stream[:cut]) == [first]
    assert feed(pair.server, stream[cut:]) == [second]


# ===================================================================== framing


@pytest.mark.parametrize(
    ("role", "limits", "length"),
    [
        (SERVER, Limits(max_frame_size=4096, max_message_length=4000), 4097),
        (SERVER, Limits(), MAX_FRAME_LENGTH + 1),
        (SERVER, Limits(), 0xFFFFFFFF),
        (CLIENT, None, MAX_FRAME_LENGTH + 1),
        (CLIENT, None, 0xFFFFFFFF),
    ],
)
def test_oversized_length_is_fatal_as_soon_as_its_four_bytes_arrive(
    role: Sender, limits: Limits | None, length: int
) -> None:
    receiver = pair_in(State.READY, limits).side(role)
    prefix = length_prefix(length)

    assert feed(receiver, prefix[:3]) == []
    events, exc = receive_until_error(receiver, prefix[3:])  # no body byte has been sent

    assert events == []
    assert exc.code is ErrorCode.FRAME_TOO_LARGE
    assert exc.fatal
    assert receiver._decoder.buffered <= 4
    # The body that follows is refused without being buffered.
    receiver.receive_data(b"\x00" * 100_000)
    assert receiver._decoder.buffered <= 4
    with pytest.raises(RemoteProtocolError) as again:
        receiver.next_event()
    assert again.value is exc
    assert receiver._decoder.buffered <= 4


# The largest SEND_ROOM these limits allow is exactly 4096 octets long (CP-HS-10).
EXACT_FIT = Limits(max_frame_size=4096, max_room_name_length=5, max_message_length=4074)


def test_length_equal_to_the_limit_is_accepted() -> None:
    pair = pair_in(State.READY, EXACT_FIT)
    message = send_room_of_length(4096)
    frame = pair.client.send(message)

    assert feed(pair.server, frame[:4]) == []  # not refused on the prefix
    assert feed(pair.server, frame[4:]) == [message]


@pytest.mark.parametrize("role", [CLIENT, SERVER])
@pytest.mark.parametrize("length", range(6))
def test_length_below_six_is_fatal_malformed_frame(role: Sender, length: int) -> None:
    receiver = pair_in(State.READY).side(role)

    events, exc = receive_until_error(receiver, length_prefix(length))

    assert events == []
    assert exc.code is ErrorCode.MALFORMED_FRAME
    assert exc.fatal


def test_length_of_six_is_a_frame_with_an_empty_body() -> None:
    pair = pair_in(State.READY)
    list_users = minimal(class_of("LIST_USERS"), 3)
    assert encode(list_users)[:4] == length_prefix(6)
    assert feed(pair.server, raw_frame(list_users.TYPE, 3)) == [list_users]


@pytest.mark.parametrize("role", [CLIENT, SERVER])
def test_clean_eof_between_frames_yields_connection_closed(role: Sender) -> None:
    pair = pair_in(State.READY)
    receiver = pair.side(role)
    ping = Ping(request_id=3)

    assert feed(receiver, encode(ping)) == [ping]
    assert feed(receiver, b"") == [ConnectionClosed()]
    assert receiver.state is State.CLOSED


def test_eof_before_any_byte_is_a_clean_close() -> None:
    server = Connection(SERVER)
    assert feed(server, b"") == [ConnectionClosed()]


@pytest.mark.parametrize("role", [CLIENT, SERVER])
@pytest.mark.parametrize("cut", [1, 3, 4, 9, 10, 12])
def test_eof_inside_a_frame_is_truncated_frame(role: Sender, cut: int) -> None:
    receiver = pair_in(State.READY).side(role)
    whole = Ping(request_id=1)
    partial = encode(Ping(request_id=2, token=b"abcd"))  # 15 octets
    assert cut < len(partial)

    assert feed(receiver, encode(whole) + partial[:cut]) == [whole]
    events, exc = receive_until_error(receiver, b"")

    assert events == []
    assert exc.code is ErrorCode.TRUNCATED_FRAME
    assert not ERROR_REGISTRY[exc.code].on_wire
    receiver.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as again:
        receiver.next_event()
    assert again.value is exc


def test_events_before_a_fatal_framing_error_are_yielded_first() -> None:
    pair = pair_in(State.READY)
    first, second = Ping(request_id=1), Ping(request_id=2)

    events, exc = receive_until_error(
        pair.server, encode(first) + encode(second) + length_prefix(2)
    )

    assert events == [first, second]
    assert exc.code is ErrorCode.MALFORMED_FRAME


def test_nothing_after_a_fatal_error_is_yielded_and_next_event_keeps_raising() -> None:
    pair = pair_in(State.READY)
    before, after = Ping(request_id=1), Ping(request_id=3)
    forbidden = encode(welcome(2))  # only a server sends WELCOME

    events, exc = receive_until_error(pair.server, encode(before) + forbidden + encode(after))

    assert events == [before]
    assert (exc.code, exc.request_id) == (ErrorCode.STATE_VIOLATION, 2)
    for data in (encode(after), b"", b"\x00"):
        pair.server.receive_data(data)  # dropped unread
        assert pair.server._decoder.buffered == 0
        with pytest.raises(RemoteProtocolError) as again:
            pair.server.next_event()
        assert again.value is exc


# ============================================================ bad frame bodies

# Every (sender, key) the table allows, except QUIT: CP-CLOSE-2 makes the
# server treat any QUIT as a QUIT (see the QUIT tests at the end); and except a
# client's ERROR, whose bad body ends the connection (CP-ERR-11, tested apart).
BODY_CASE_KEYS: list[Step] = [(s, k) for (s, k) in sender_keys()
                              if k != "QUIT" and not (s is CLIENT and k.startswith("ERROR"))]

STRING_MARKERS: dict[str, Any] = {
    "nick": "Qqqqqqqq",
    "nick-or-empty": "Qqqqqqqq",
    "room": "#Qqqqqqq",
    "message-text": "Qqqqqqqq",
    "notice-text": "Qqqqqqqq",
    "topic": "Qqqqqqqq",
    "short-text": "Qqqqqqqq",
    "label": "Qqqqqqqq",
    "password": "Qqqqqqqq",
    "password-or-empty": "Qqqqqqqq",
    "capabilities": ("qqqqqqqq",),
}
"""A valid value per string field type, eight octets, found once in a frame."""

INVALID_UTF8: dict[str, bytes] = {
    "lone-continuation": b"\x80",
    "ff": b"\xff",
    "overlong-slash": b"\xc0\xaf",
    "encoded-surrogate": b"\xed\xa0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "truncated-sequence": b"\xe2\x82",
}

UTF8_CASES: list[tuple[Sender, str, str]] = [
    (sender, key, field.name)
    for sender, key in BODY_CASE_KEYS
    for field in BODY_FIELDS[class_of(key).TYPE]
    if field.field_type.wire.shape in ("str", "strlist")
]


def corrupt_string(sender: Sender, key: str, field_name: str, bad: bytes) -> bytes:
    """A frame of ``key`` whose ``field_name`` holds ``bad`` (invalid UTF-8)."""
    cls = class_of(key)
    (field,) = [f for f in BODY_FIELDS[cls.TYPE] if f.name == field_name]
    marker = STRING_MARKERS[field.field_type.name]
    frame = encode(message_for_key(key, 61, **{field_name: marker}))
    marker_bytes = (marker[0] if isinstance(marker, tuple) else marker).encode()
    assert frame.count(marker_bytes) == 1
    return frame.replace(marker_bytes, marker_bytes[:1] + bad + marker_bytes[1 + len(bad) :])


def receiver_for(sender: Sender, key: str) -> Connection:
    return pair_in(state_allowing(sender, key)).side(peer(sender))


@pytest.mark.parametrize(
    ("sender", "key", "field_name"), UTF8_CASES, ids=[f"{s}:{k}:{f}" for s, k, f in UTF8_CASES]
)
def test_invalid_utf8_in_any_string_field_rejects_only_that_frame(
    sender: Sender, key: str, field_name: str
) -> None:
    receiver = receiver_for(sender, key)
    state = receiver.state
    follow = message_for_key(key, 62)

    events = feed(receiver, corrupt_string(sender, key, field_name, b"\xc0\xaf") + encode(follow))

    assert len(events) == 2
    assert rejection(events[0]) == (ErrorCode.INVALID_UTF8, 61, class_of(key).TYPE)
    assert events[1] == follow  # the next frame in the same chunk still arrives
    assert receiver.state is TRANSITIONS[(state, sender, key)]


@pytest.mark.parametrize("bad", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
def test_every_kind_of_ill_formed_utf8_is_invalid_utf8(bad: bytes) -> None:
    pair = pair_in(State.READY)
    frame = corrupt_string(CLIENT, "SEND_ROOM", "text", bad)
    ping = Ping(request_id=9)

    events = feed(pair.server, frame + encode(ping))

    assert [describe(e) for e in events] == ["rejected:INVALID_UTF8", "PING"]
    assert isinstance(events[0], FrameRejected)
    reply = events[0].error_reply()
    assert (reply.code, reply.fatal, reply.request_id) == (int(ErrorCode.INVALID_UTF8), False, 61)


CLIENT_ERROR_BODIES: dict[str, tuple[bytes, ErrorCode]] = {
    "cut-in-code": (b"\x00", ErrorCode.MALFORMED_MESSAGE),
    "cut-in-detail": (b"\x00\x69\x01\x00\x00\x00\x00\x05ab", ErrorCode.MALFORMED_MESSAGE),
    "bool-2": (b"\x00\x69\x02\x00\x00\x00\x00\x00", ErrorCode.MALFORMED_MESSAGE),
    "detail-not-utf8": (b"\x00\x69\x01\x00\x00\x00\x00\x02\xc0\xaf", ErrorCode.INVALID_UTF8),
}
"""Bodies of a client ERROR (code u16, fatal bool, retry_after_ms u32, detail str8) that fail
step 4, each with the code it gets."""


@pytest.mark.parametrize("state", [State.AWAIT_HELLO, State.READY, State.QUITTING])
@pytest.mark.parametrize("body", CLIENT_ERROR_BODIES.values(), ids=CLIENT_ERROR_BODIES.keys())
def test_client_error_with_a_bad_body_is_answered_for_its_body_and_ends_the_connection(
    state: State, body: tuple[bytes, ErrorCode]
) -> None:
    """CP-ERR-11: the header allows a client ERROR in every state that allows one, so a body
    that fails step 4 gets its step-4 code, not STATE_VIOLATION; request_id 0, not fatal
    (CP-ERR-1), and the connection ends as after any client ERROR."""
    data, code = body
    server = pair_in(state).server
    ping = Ping(request_id=9)

    events, exc = receive_until_error(server, raw_frame(Error.TYPE, 0, data) + encode(ping))

    assert events == []
    assert (exc.code, exc.request_id, exc.ends_connection) == (code, 0, True)
    reply = error_message(exc)
    assert (reply.code, reply.fatal, reply.request_id) == (int(code), False, 0)
    server.send(reply)  # the answer can still be sent: the state allows a non-fatal ERROR
    with pytest.raises(RemoteProtocolError) as again:
        server.next_event()
    assert again.value is exc


def _bool_offsets(key: str) -> dict[str, int]:
    """Offset of each bool field's octet in the frame, found by flipping it."""
    cls = class_of(key)
    offsets = {}
    for field in BODY_FIELDS[cls.TYPE]:
        if field.field_type.wire.shape == "bool":
            false = encode(minimal(cls, 61, **{field.name: False}))
            true = encode(minimal(cls, 61, **{field.name: True}))
            (offset,) = [i for i, (a, b) in enumerate(zip(false, true, strict=True)) if a != b]
            offsets[field.name] = offset
    return offsets


MALFORMED_CASES: list[tuple[Sender, str, str]] = []
for _sender, _key in BODY_CASE_KEYS:
    if BODY_FIELDS[class_of(_key).TYPE]:
        MALFORMED_CASES.append((_sender, _key, "short"))
    MALFORMED_CASES.append((_sender, _key, "trailing"))
    MALFORMED_CASES += [(_sender, _key, f"bool:{name}") for name in _bool_offsets(_key)]


def malformed(key: str, variant: str) -> bytes:
    frame = encode(message_for_key(key, 61))
    if variant == "short":
        return with_body(frame, frame[HEADER_SIZE:-1])
    if variant == "trailing":
        return with_body(frame, frame[HEADER_SIZE:] + b"\x00")
    name = variant.removeprefix("bool:")
    damaged = bytearray(frame)
    damaged[_bool_offsets(key)[name]] = 2
    return bytes(damaged)


@pytest.mark.parametrize(
    ("sender", "key", "variant"),
    MALFORMED_CASES,
    ids=[f"{s}:{k}:{v}" for s, k, v in MALFORMED_CASES],
)
def test_body_that_does_not_parse_is_malformed_message_and_skipped(
    sender: Sender, key: str, variant: str
) -> None:
    receiver = receiver_for(sender, key)
    follow = message_for_key(key, 62)

    events = feed(receiver, malformed(key, variant) + encode(follow))

    assert len(events) == 2
    assert rejection(events[0]) == (ErrorCode.MALFORMED_MESSAGE, 61, class_of(key).TYPE)
    assert events[1] == follow


CONSTRAINT_CASES: list[tuple[str, Message, ErrorCode]] = [
    ("text-with-ESC", SendRoom.model_construct(request_id=5, room="#r", text="\x1b[2J"),
     ErrorCode.INVALID_FIELD),
    ("text-with-CR", SendRoom.model_construct(request_id=5, room="#r", text="a\rb"),
     ErrorCode.INVALID_FIELD),
    ("text-with-NUL", SendRoom.model_construct(request_id=5, room="#r", text="\x00"),
     ErrorCode.INVALID_FIELD),
    ("text-with-DEL", SendRoom.model_construct(request_id=5, room="#r", text="\x7f"),
     ErrorCode.INVALID_FIELD),
    ("text-with-C1-CSI", SendRoom.model_construct(request_id=5, room="#r", text="\x9b31m"),
     ErrorCode.INVALID_FIELD),
    ("empty-text", SendRoom.model_construct(request_id=5, room="#r", text=""),
     ErrorCode.INVALID_FIELD),
    ("topic-with-OSC", SetTopic.model_construct(request_id=5, room="#r", topic="\x1b]0;x\x07"),
     ErrorCode.INVALID_FIELD),
    ("reason-with-BEL", Part.model_construct(request_id=5, room="#r", reason="\x07"),
     ErrorCode.INVALID_FIELD),
    ("nick-cyrillic-a", Nick.model_construct(request_id=5, nick="\u0430lice"),
     ErrorCode.INVALID_NICK),
    ("nick-leading-digit", Nick.model_construct(request_id=5, nick="1abc"),
     ErrorCode.INVALID_NICK),
    ("nick-empty", Nick.model_construct(request_id=5, nick=""), ErrorCode.INVALID_NICK),
    ("nick-33-bytes", Nick.model_construct(request_id=5, nick="a" * 33), ErrorCode.INVALID_NICK),
    ("private-to-bad-nick",
     SendPrivate.model_construct(request_id=5, nick="a b", text="hi"), ErrorCode.INVALID_NICK),
    ("room-without-hash", Join.model_construct(request_id=5, room="general"),
     ErrorCode.INVALID_ROOM_NAME),
    ("room-hash-only", Join.model_construct(request_id=5, room="#"), ErrorCode.INVALID_ROOM_NAME),
    ("room-with-dot", Join.model_construct(request_id=5, room="#a.b"),
     ErrorCode.INVALID_ROOM_NAME),
    ("room-65-bytes", Join.model_construct(request_id=5, room="#" + "a" * 64),
     ErrorCode.INVALID_ROOM_NAME),
    ("capability-uppercase",
     Hello.model_construct(request_id=5, min_version=1, max_version=1, nick="al",
                           client_name="c", capabilities=("Bad",)), ErrorCode.INVALID_FIELD),
    ("33-capabilities",
     Hello.model_construct(request_id=5, min_version=1, max_version=1, nick="al",
                           client_name="c", capabilities=("x",) * 33), ErrorCode.INVALID_FIELD),
    ("version-0",
     Hello.model_construct(request_id=5, min_version=0, max_version=1, nick="al",
                           client_name="c"), ErrorCode.INVALID_FIELD),
    ("empty-password", Login.model_construct(request_id=5, nick="al", password=""),
     ErrorCode.INVALID_FIELD),
    ("label-non-ascii", Oper.model_construct(request_id=5, name="\u00e9", password="p"),
     ErrorCode.INVALID_FIELD),
]  # fmt: skip


@pytest.mark.parametrize(
    ("message", "code"),
    [(m, c) for _, m, c in CONSTRAINT_CASES],
    ids=[name for name, _, _ in CONSTRAINT_CASES],
)
def test_field_breaking_its_constraint_is_rejected_with_its_code(
    message: Message, code: ErrorCode
) -> None:
    pair = pair_in(state_allowing(CLIENT, message.NAME))
    state = pair.server.state

    events = feed(pair.server, encode(message))

    assert [rejection(e) for e in events] == [(code, 5, message.TYPE)]
    assert pair.server.state is state


@pytest.mark.parametrize("text", ["tab\there", "two\nlines", "zo\u00eb", "\U0001f600", "\u00a0"])
def test_safe_text_allows_tab_lf_and_non_ascii(text: str) -> None:
    pair = pair_in(State.READY)
    message = send_room(5, text)
    assert pair.transfer(CLIENT, message) == [message]


# =============================================================== unknown types

UNKNOWN_TYPE_CODES = [0x0000, 0x000A, 0x00FF, 0x7FFF, 0x8000, 0xFFFF]


@pytest.mark.parametrize("type_code", UNKNOWN_TYPE_CODES, ids=hex)
def test_server_in_ready_rejects_unknown_type_with_its_request_id(type_code: int) -> None:
    pair = pair_in(State.READY)
    ping = Ping(request_id=78)

    events = feed(pair.server, raw_frame(type_code, 77, b"xyz") + encode(ping))

    assert len(events) == 2
    assert rejection(events[0]) == (ErrorCode.UNKNOWN_TYPE, 77, type_code)
    assert events[1] == ping
    assert pair.server.state is State.READY
    assert isinstance(events[0], FrameRejected)
    reply = events[0].error_reply()
    assert feed(pair.client, pair.server.send(reply)) == [reply]
    assert (reply.code, reply.fatal, reply.request_id) == (int(ErrorCode.UNKNOWN_TYPE), False, 77)


@pytest.mark.parametrize("state", [State.AWAIT_HELLO, State.AWAIT_WELCOME])
@pytest.mark.parametrize("type_code", UNKNOWN_TYPE_CODES, ids=hex)
def test_server_before_ready_treats_unknown_type_as_fatal_state_violation(
    state: State, type_code: int
) -> None:
    server = pair_in(state).server

    events, exc = receive_until_error(server, raw_frame(type_code, 77, b"xyz"))

    assert events == []
    assert (exc.code, exc.request_id, exc.fatal) == (ErrorCode.STATE_VIOLATION, 77, True)


@pytest.mark.parametrize("state", [State.READY, State.QUITTING])
@pytest.mark.parametrize("type_code", UNKNOWN_TYPE_CODES, ids=hex)
def test_client_silently_skips_unknown_types(state: State, type_code: int) -> None:
    pair = drive_to_quitting() if state is State.QUITTING else pair_in(State.READY)
    notice = Notice(text="after")

    events = feed(
        pair.client, (
            raw_frame(type_code, 0, b"event") + raw_frame(type_code, 4, b"") + encode(notice)
        )
    )

    assert events == [notice]
    assert pair.client.state is state


@pytest.mark.parametrize("type_code", UNKNOWN_TYPE_CODES, ids=hex)
def test_client_awaiting_welcome_treats_unknown_type_as_fatal_state_violation(
    type_code: int
) -> None:
    client = pair_in(State.AWAIT_WELCOME).client

    events, exc = receive_until_error(client, raw_frame(type_code, 0, b"event"))

    assert events == []
    assert (exc.code, exc.fatal, exc.silent) == (ErrorCode.STATE_VIOLATION, True, False)


def test_client_that_receives_an_unasked_bye_closes_without_answering() -> None:
    client = pair_in(State.READY).client

    events, exc = receive_until_error(client, raw_frame(Bye.TYPE, 0, b"\x00"))

    assert events == []
    assert exc.code is ErrorCode.STATE_VIOLATION
    assert exc.silent, "CP-CLOSE-5: nothing may be sent after a BYE, not even an ERROR"


def test_server_answers_a_bye_from_a_client() -> None:
    server = pair_in(State.READY).server

    _, exc = receive_until_error(server, raw_frame(Bye.TYPE, 5, b"\x00"))

    assert (exc.code, exc.silent) == (ErrorCode.STATE_VIOLATION, False)  # CP-STATE-2


def drive_to_quitting() -> Pair:
    pair = pair_in(State.READY)
    pair.step(CLIENT, "QUIT", request_id=9)
    return pair


# ================================================================ request ids

REQUEST_KEYS = [key for sender, key in sender_keys()
                if sender is CLIENT and class_of(key).FINAL_RESPONSE is not None]  # fmt: skip


def test_request_keys_are_every_client_request() -> None:
    assert {"HELLO", "QUIT", "PING", "JOIN", "SEND_ROOM"} <= set(REQUEST_KEYS)
    assert not {"PONG", "ERROR (fatal)"} & set(REQUEST_KEYS)


@pytest.mark.parametrize("key", [k for k in REQUEST_KEYS if k != "QUIT"])
def test_server_rejects_request_with_request_id_zero(key: str) -> None:
    server = receiver_for(CLIENT, key)
    state = server.state

    events = feed(server, encode(message_for_key(key, request_id=0)))

    assert [rejection(e) for e in events] == [
        (ErrorCode.INVALID_REQUEST_ID, 0, class_of(key).TYPE)
    ]
    assert server.state is state
    assert isinstance(events[0], FrameRejected)
    assert events[0].error_reply().request_id == 0


@pytest.mark.parametrize("key", REQUEST_KEYS)
def test_client_refuses_to_send_request_with_request_id_zero(key: str) -> None:
    client = pair_in(state_allowing(CLIENT, key)).client
    state = client.state

    with pytest.raises(LocalProtocolError) as info:
        client.send(message_for_key(key, request_id=0))

    assert info.value.code is ErrorCode.INVALID_REQUEST_ID
    assert client.state is state


@pytest.mark.parametrize("message", [Pong(request_id=0, token=b"srv"), message_for_key(
    "ERROR (fatal)", request_id=0)], ids=["PONG", "ERROR"])  # fmt: skip
def test_client_frames_that_are_not_requests_may_carry_request_id_zero(message: Message) -> None:
    pair = pair_in(State.READY)
    assert pair.transfer(CLIENT, message) == [message]


# ============================================================ advertised limits

LIMIT = 10

VALUE_OF_LENGTH: dict[str, Callable[[int], str]] = {
    "nick": lambda n: "a" * n,
    "room": lambda n: "#" + "a" * (n - 1),
    "message-text": lambda n: "a" * n,
    "topic": lambda n: "a" * n,
}

LIMIT_CASES: list[tuple[str, str, str, ErrorCode]] = [
    (key, field.name, field.field_type.name, field.field_type.limit_error)
    for sender, key in sender_keys()
    if sender is CLIENT
    for field in BODY_FIELDS[class_of(key).TYPE]
    if field.field_type.limit is not None
]


def _limit_name(key: str, field_name: str) -> str:
    (field,) = [f for f in BODY_FIELDS[class_of(key).TYPE] if f.name == field_name]
    assert field.field_type.limit is not None
    return field.field_type.limit


def test_limit_cases_cover_the_fields_named_in_the_brief() -> None:
    names = {(key, field) for key, field, _, _ in LIMIT_CASES}
    assert {("SEND_ROOM", "text"), ("SEND_PRIVATE", "text"), ("HELLO", "nick"),
            ("NICK", "nick"), ("JOIN", "room"), ("SET_TOPIC", "topic")} <= names  # fmt: skip


@pytest.mark.parametrize(
    ("key", "field_name", "field_type", "code"),
    LIMIT_CASES,
    ids=[f"{k}:{f}" for k, f, _, _ in LIMIT_CASES],
)
def test_server_rejects_field_longer_than_its_advertised_limit(
    key: str, field_name: str, field_type: str, code: ErrorCode
) -> None:
    limits = Limits(**{_limit_name(key, field_name): LIMIT})
    server = pair_in(state_allowing(CLIENT, key), limits).server
    make = VALUE_OF_LENGTH[field_type]
    over = message_for_key(key, 51, **{field_name: make(LIMIT + 1)})
    at = message_for_key(key, 52, **{field_name: make(LIMIT)})

    events = feed(server, encode(over) + encode(at))

    assert len(events) == 2
    assert rejection(events[0]) == (code, 51, class_of(key).TYPE)
    assert events[1] == at


@pytest.mark.parametrize(
    ("key", "field_name", "code"),
    [(k, f, c) for k, f, t, c in LIMIT_CASES if t in ("message-text", "topic")],
)
@pytest.mark.parametrize(
    ("value", "accepted"),
    [("\u00e9" * 5, True), ("\u00e9" * 6, False), ("\U0001f600" * 2, True),
     ("\U0001f600" * 3, False), ("a" * 8 + "\u00e9", True), ("a" * 9 + "\u00e9", False)],
)  # fmt: skip
def test_text_limits_count_utf8_octets_not_characters(
    key: str, field_name: str, code: ErrorCode, value: str, accepted: bool
) -> None:
    server = pair_in(State.READY, Limits(**{_limit_name(key, field_name): LIMIT})).server
    message = message_for_key(key, 51, **{field_name: value})

    (event,) = feed(server, encode(message))

    if accepted:
        assert event == message
    else:
        assert rejection(event) == (code, 51, class_of(key).TYPE)


@pytest.mark.parametrize(
    ("key", "field_name", "field_type", "code"),
    [case for case in LIMIT_CASES if state_allowing(CLIENT, case[0]) is State.READY],
    ids=[f"{k}:{f}" for k, f, _, _ in LIMIT_CASES if state_allowing(CLIENT, k) is State.READY],
)
def test_client_send_after_welcome_enforces_the_advertised_limit(
    key: str, field_name: str, field_type: str, code: ErrorCode
) -> None:
    pair = pair_in(State.READY, Limits(**{_limit_name(key, field_name): LIMIT}))
    make = VALUE_OF_LENGTH[field_type]
    over = message_for_key(key, 51, **{field_name: make(LIMIT + 1)})
    at = message_for_key(key, 52, **{field_name: make(LIMIT)})

    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(over)

    assert info.value.code is code
    assert pair.client.state is State.READY
    assert pair.transfer(CLIENT, at) == [at]


def test_client_before_welcome_knows_no_limit_but_the_protocol_caps() -> None:
    pair = Pair.new(Limits(max_nick_length=5))
    hello = minimal(Hello, 1, nick="abcdef")  # 6 > 5, which the client cannot know yet

    (event,) = feed(pair.server, pair.client.send(hello))

    assert rejection(event) == (ErrorCode.INVALID_NICK, 1, Hello.TYPE)


# ============================================================= frame size limits


def _oversized_hello() -> Hello:
    # No *valid* message a client may send before WELCOME reaches 4096 octets
    # (the largest HELLO is about 2.4 KB), so the field checks are bypassed.
    return Hello.model_construct(request_id=1, min_version=1, max_version=1, nick="alice",
                                 client_name="c", capabilities=("c" * 200,) * 25)


def test_client_before_welcome_cannot_send_a_frame_over_4096() -> None:
    client = Connection(CLIENT)
    hello = _oversized_hello()
    assert len(encode(hello)) - 4 > PRE_WELCOME_FRAME_LENGTH

    with pytest.raises(LocalProtocolError) as info:
        client.send(hello)

    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert client.state is State.AWAIT_HELLO


def test_client_is_held_to_4096_again_after_a_refused_hello() -> None:
    pair = pair_in(State.AWAIT_WELCOME)
    pair.step(SERVER, "ERROR (non-fatal)", request_id=1)

    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(_oversized_hello())

    assert info.value.code is ErrorCode.FRAME_TOO_LARGE


def test_client_after_welcome_may_send_up_to_the_advertised_max_frame_size() -> None:
    # CP-HS-10 makes the advertised text limit bind before the frame limit can.
    pair = pair_in(State.READY, EXACT_FIT)
    at, over = send_room_of_length(4096), send_room_of_length(4097)

    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(over)

    assert info.value.code is ErrorCode.MESSAGE_TOO_LONG
    assert pair.client.state is State.READY
    assert pair.transfer(CLIENT, at) == [at]


def test_client_after_welcome_is_no_longer_held_to_4096() -> None:
    pair = pair_in(State.READY, Limits(max_frame_size=65536, max_message_length=16384))
    big = send_room(5, "a" * 16384)
    assert len(encode(big)) - 4 > PRE_WELCOME_FRAME_LENGTH
    assert pair.transfer(CLIENT, big) == [big]


def test_server_enforces_its_advertised_max_frame_size_on_receive() -> None:
    pair = pair_in(State.READY, EXACT_FIT)
    over = encode(send_room_of_length(4097))  # bypasses the client's own check

    events, exc = receive_until_error(pair.server, over)

    assert events == []
    assert (exc.code, exc.fatal) == (ErrorCode.FRAME_TOO_LARGE, True)


def test_client_accepts_frames_up_to_65536() -> None:
    pair = pair_in(State.READY)
    largest = raw_frame(0x8001, 0, b"\x00" * (MAX_FRAME_LENGTH - 6))  # an extension event
    notice = Notice(text="after")

    assert feed(pair.client, largest + encode(notice)) == [notice]
    _, exc = receive_until_error(pair.client, length_prefix(MAX_FRAME_LENGTH + 1))
    assert exc.code is ErrorCode.FRAME_TOO_LARGE


@pytest.mark.parametrize("state", [State.AWAIT_HELLO, State.AWAIT_WELCOME])
def test_server_receive_limit_is_4096_until_it_has_sent_welcome(state: State) -> None:
    """CP-FRAME-4, whatever max_frame_size the server will advertise."""
    server = pair_in(state, Limits(max_frame_size=65536)).server

    events, exc = receive_until_error(server, length_prefix(PRE_WELCOME_FRAME_LENGTH + 1))

    assert events == []
    assert (exc.code, exc.fatal) == (ErrorCode.FRAME_TOO_LARGE, True)


def test_server_applies_its_advertised_max_frame_size_once_welcome_is_sent() -> None:
    pair = pair_in(State.READY, Limits(max_frame_size=65536, max_message_length=16384))
    message = send_room_of_length(PRE_WELCOME_FRAME_LENGTH + 1)
    assert feed(pair.server, encode(message)) == [message]


def test_server_cannot_advertise_limits_other_than_those_it_enforces() -> None:
    """CP-FRAME-4: WELCOME carries exactly the limits the server Connection applies."""
    pair = pair_in(State.AWAIT_WELCOME, Limits(max_message_length=10))

    with pytest.raises(LocalProtocolError):
        pair.server.send(welcome(1))  # advertises the default max_message_length=4096

    assert pair.server.state is State.AWAIT_WELCOME
    advertised = welcome(1, **Limits(max_message_length=10).model_dump())
    assert pair.transfer(SERVER, advertised) == [advertised]


# ========================================================== version negotiation


@pytest.mark.parametrize(("low", "high"), [(2, 3), (2, 1), (5, 255)])
def test_hello_without_a_common_version_is_fatal_unsupported_version(low: int, high: int) -> None:
    pair = Pair.new()
    hello = minimal(Hello, 1, min_version=low, max_version=high)
    data = encode(hello)  # a faulty client's HELLO: ours refuses to send min > max

    events, exc = receive_until_error(pair.server, data)

    assert events == []
    assert (exc.code, exc.fatal, exc.request_id) == (ErrorCode.UNSUPPORTED_VERSION, True, 1)
    reply = error_message(exc)
    assert (reply.code, reply.fatal, reply.request_id) == (106, True, 1)
    assert feed(pair.client, pair.server.send(reply)) == [reply]
    assert pair.states == (State.CLOSED, State.CLOSED)


@pytest.mark.parametrize(
    ("low", "high", "chosen"), [(1, 3, 2), (1, 3, 3), (1, 1, 3), (1, 1, 2)]
)
def test_server_cannot_send_welcome_with_a_version_not_in_both_ranges(
    low: int, high: int, chosen: int
) -> None:
    pair = Pair.new()
    pair.transfer(CLIENT, minimal(Hello, 1, min_version=low, max_version=high))

    with pytest.raises(LocalProtocolError) as info:
        pair.server.send(welcome(1, version=chosen))

    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert pair.server.state is State.AWAIT_WELCOME


def test_server_sends_welcome_with_the_common_version() -> None:
    pair = Pair.new()
    pair.transfer(CLIENT, minimal(Hello, 1, min_version=1, max_version=9))
    assert pair.transfer(SERVER, welcome(1, version=1)) == [welcome(1, version=1)]
    assert (pair.client.version, pair.server.version) == (1, 1)


@pytest.mark.parametrize("version", [2, 200])
def test_client_rejects_welcome_with_a_version_it_did_not_offer(version: int) -> None:
    pair = Pair.new()
    pair.transfer(CLIENT, minimal(Hello, 1, min_version=1, max_version=1))

    events, exc = receive_until_error(pair.client, encode(welcome(1, version=version)))

    assert events == []
    assert (exc.code, exc.fatal) == (ErrorCode.UNSUPPORTED_VERSION, True)
    assert pair.client.state is State.AWAIT_WELCOME
    reply = error_message(exc)
    assert feed(pair.server, pair.client.send(reply)) == [reply]
    assert pair.states == (State.CLOSED, State.CLOSED)


# ================================================================ ERROR frames


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda code: code.name)
@pytest.mark.parametrize("kind", [RemoteProtocolError, LocalProtocolError])
def test_error_message_follows_the_registry(code: ErrorCode, kind: type[ProtocolError]) -> None:
    reply = error_message(kind(code, "why", request_id=9))
    assert type(reply) is Error
    assert (reply.code, reply.fatal, reply.request_id, reply.detail) == (
        int(code), ERROR_REGISTRY[code].fatal, 9, "why")  # fmt: skip


def test_error_message_detail_defaults_to_the_registry_summary() -> None:
    reply = error_message(RemoteProtocolError(ErrorCode.MALFORMED_FRAME))
    assert reply.detail == ERROR_REGISTRY[ErrorCode.MALFORMED_FRAME].summary
    assert reply.request_id == 0


def test_error_message_cuts_a_long_detail_on_a_character_boundary() -> None:
    detail = "\u00e9" * 150  # 300 octets
    reply = error_message(RemoteProtocolError(ErrorCode.INVALID_FIELD, detail))
    assert len(reply.detail.encode()) <= 255
    assert detail.startswith(reply.detail)
    assert len(reply.detail) == 127  # 254 octets: the 128th character would not fit


def test_frame_rejected_error_reply_is_a_non_fatal_error_for_its_request() -> None:
    rejected = FrameRejected(ErrorCode.MESSAGE_TOO_LONG, 12, "too long", SendRoom.TYPE)
    reply = rejected.error_reply()
    assert (reply.code, reply.fatal, reply.request_id, reply.detail) == (
        int(ErrorCode.MESSAGE_TOO_LONG), False, 12, "too long")  # fmt: skip


@pytest.mark.parametrize("state", [State.READY, State.AWAIT_WELCOME])
def test_unknown_error_code_is_acted_on_by_its_fatal_flag(state: State) -> None:
    pair = pair_in(state)
    refusal = Error(request_id=1, code=4242, fatal=False, detail="new in v7")
    ending = Error(request_id=0, code=4243, fatal=True)

    assert pair.transfer(SERVER, refusal) == [refusal]
    assert refusal.error_code is None
    after = State.AWAIT_HELLO if state is State.AWAIT_WELCOME else state
    assert pair.states == (after, after)
    assert pair.transfer(SERVER, ending) == [ending]
    assert pair.states == (State.CLOSED, State.CLOSED)


def test_each_frame_is_checked_against_the_state_after_the_previous_was_answered() -> None:
    """CP-STATE-4: pull an event, answer it, then the next frame is checked."""
    join = Join(request_id=2, room="#room")
    accepted = Pair.new()
    stream = encode(minimal(Hello, 1)) + encode(join)
    events = []
    accepted.server.receive_data(stream)
    for event in accepted.server.events():
        events.append(event)
        if isinstance(event, Hello):
            accepted.server.send(welcome(1))
    assert events == [minimal(Hello, 1), join]

    refused = Pair.new()
    events = []
    with pytest.raises(RemoteProtocolError) as info:
        refused.server.receive_data(stream)
        for event in refused.server.events():
            events.append(event)
            refused.server.send(Error(request_id=1, code=int(ErrorCode.NICK_IN_USE), fatal=False))
    assert events == [minimal(Hello, 1)]
    assert (info.value.code, info.value.request_id) == (ErrorCode.STATE_VIOLATION, 2)


# ===================================================== every error code, once

Produce = Callable[[], ErrorCode]


def first_code(conn: Connection, *chunks: bytes) -> ErrorCode:
    """The code of the first FrameRejected or RemoteProtocolError the chunks produce."""
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            for event in conn.events():
                if isinstance(event, FrameRejected):
                    return event.code
    except RemoteProtocolError as exc:
        return exc.code
    raise AssertionError("the input produced no error")


def _ready_server(**limits: Any) -> Connection:
    return pair_in(State.READY, Limits(**limits)).server


PRODUCERS: dict[ErrorCode, tuple[str, Produce]] = {
    ErrorCode.MALFORMED_FRAME: (
        "length field 5", lambda: first_code(_ready_server(), length_prefix(5))),
    ErrorCode.FRAME_TOO_LARGE: (
        "length 4097 to a server advertising max_frame_size 4096",
        lambda: first_code(_ready_server(max_frame_size=4096, max_message_length=4000),
                          length_prefix(4097))),
    ErrorCode.MALFORMED_MESSAGE: (
        "PING with an octet after its token",
        lambda: first_code(_ready_server(), with_body(encode(Ping(request_id=1)), b"\x00\x00"))),
    ErrorCode.INVALID_UTF8: (
        "SEND_ROOM text containing 0xFF",
        lambda: first_code(_ready_server(), BAD_UTF8_SEND)),
    ErrorCode.UNKNOWN_TYPE: (
        "type 0x7FFF to a server in READY",
        lambda: first_code(_ready_server(), raw_frame(0x7FFF, 1))),
    ErrorCode.STATE_VIOLATION: (
        "JOIN before HELLO",
        lambda: first_code(Connection(SERVER), encode(Join(request_id=1, room="#r")))),
    ErrorCode.UNSUPPORTED_VERSION: (
        "HELLO offering versions 2..3",
        lambda: first_code(Connection(SERVER), encode(minimal(Hello, 1, min_version=2,
                                                              max_version=3)))),
    ErrorCode.TRUNCATED_FRAME: (
        "half a PING, then EOF",
        lambda: first_code(_ready_server(), encode(Ping(request_id=1))[:7], b"")),
    ErrorCode.INVALID_REQUEST_ID: (
        "JOIN with request_id 0",
        lambda: first_code(_ready_server(), encode(Join(request_id=0, room="#r")))),
    ErrorCode.INVALID_FIELD: (
        "SEND_ROOM text containing ESC",
        lambda: first_code(_ready_server(), encode(CONSTRAINT_CASES[0][1]))),
    ErrorCode.INVALID_NICK: (
        "NICK '1abc'",
        lambda: first_code(_ready_server(), encode(Nick.model_construct(request_id=1,
                                                                        nick="1abc")))),
    ErrorCode.INVALID_ROOM_NAME: (
        "JOIN 'general' (no '#')",
        lambda: first_code(_ready_server(), encode(Join.model_construct(request_id=1,
                                                                        room="general")))),
    ErrorCode.MESSAGE_TOO_LONG: (
        "SEND_ROOM of 11 octets to a server advertising max_message_length 10",
        lambda: first_code(_ready_server(max_message_length=10), encode(send_room(1, "a" * 11)))),
}  # fmt: skip
"""Every code the sans-IO core produces from bad input, with an input that produces it."""

APPLICATION_LEVEL: dict[ErrorCode, str] = {
    ErrorCode.IDLE_TIMEOUT: "needs a clock: the server application's timer",
    ErrorCode.NICK_IN_USE: "needs the server's nick table",
    ErrorCode.NICK_REGISTERED: "needs the server's accounts",
    ErrorCode.AUTH_FAILED: "needs the server's accounts",
    ErrorCode.ALREADY_REGISTERED: "needs the server's accounts",
    ErrorCode.NO_SUCH_ROOM: "needs the server's rooms",
    ErrorCode.NOT_IN_ROOM: "needs the server's rooms",
    ErrorCode.ALREADY_IN_ROOM: "needs the server's rooms",
    ErrorCode.TOO_MANY_ROOMS: "needs the server's rooms",
    ErrorCode.BANNED_FROM_ROOM: "needs the server's bans",
    ErrorCode.MUTED: "needs the server's mutes",
    ErrorCode.NO_SUCH_NICK: "needs the server's nick table",
    ErrorCode.NOT_OPERATOR: "needs the server's operators",
    ErrorCode.RATE_LIMITED: "needs a clock: the server's token buckets",
    ErrorCode.SLOW_CONSUMER: "needs the server's output buffers",
    ErrorCode.SERVER_SHUTDOWN: "the server application decides to stop",
    ErrorCode.INTERNAL_ERROR: "the server application fails",
    ErrorCode.TOO_MANY_CONNECTIONS: "needs the server's count of connections",
}
"""Codes no input to the sans-IO core can produce: the server application's decisions."""


@pytest.mark.parametrize(
    "code", list(PRODUCERS), ids=[f"{c.name}: {PRODUCERS[c][0]}" for c in PRODUCERS]
)
def test_input_produces_its_error_code(code: ErrorCode) -> None:
    _, produce = PRODUCERS[code]
    assert produce() is code


def _core_modules() -> set[str]:
    """chatproto modules the sans-IO Connection imports, transitively."""
    found: set[str] = set()
    todo = ["chatproto._connection"]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chatproto"):
                assert node.module is not None
                if node.module != "chatproto":
                    todo.append(node.module)
                    continue
                for alias in node.names:  # from chatproto import names
                    if importlib.util.find_spec(f"chatproto.{alias.name}") is not None:
                        todo.append(f"chatproto.{alias.name}")
    return found


def _codes_used_by_core() -> set[ErrorCode]:
    codes: set[ErrorCode] = set()
    for name in _core_modules() - {"chatproto._errors"}:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        source = Path(spec.origin).read_text(encoding="utf-8")
        codes |= {ErrorCode[m] for m in re.findall(r"\bErrorCode\.([A-Z][A-Z0-9_]*)", source)}
    return codes


def test_every_code_the_core_can_produce_has_a_producing_input() -> None:
    assert {"chatproto._framing", "chatproto._fields", "chatproto._codegen"} <= _core_modules()
    assert _codes_used_by_core() == set(PRODUCERS)


def test_every_error_code_is_either_produced_here_or_application_level() -> None:
    assert not set(PRODUCERS) & set(APPLICATION_LEVEL)
    assert set(PRODUCERS) | set(APPLICATION_LEVEL) == set(ErrorCode)


# ============================================ QUIT, details and enumerations


def test_server_can_answer_a_quit_with_request_id_zero_with_bye() -> None:
    pair = pair_in(State.READY)
    feed(pair.server, encode(Quit.model_construct(request_id=0, reason="")))
    pair.server.send(Bye(request_id=0))
    assert pair.server.state is State.CLOSED


def test_server_can_answer_an_unparseable_quit_with_bye() -> None:
    pair = pair_in(State.READY)
    quit_frame = with_body(encode(Quit(request_id=4)), b"\x00\x00")  # trailing octet
    feed(pair.server, quit_frame)
    pair.server.send(Bye(request_id=4))
    assert pair.server.state is State.CLOSED


def test_unsupported_version_detail_names_the_range_with_a_hyphen() -> None:
    server = Connection(SERVER)
    _, exc = receive_until_error(server, encode(minimal(Hello, 1, min_version=2, max_version=3)))
    assert re.search(r"\b1-1\b", error_message(exc).detail)


def test_error_reply_of_a_long_non_ascii_nick_can_be_sent() -> None:
    pair = pair_in(State.READY)
    nick = Nick.model_construct(request_id=3, nick="\u00e9" * 127)
    (rejected,) = feed(pair.server, encode(nick))
    assert rejection(rejected) == (ErrorCode.INVALID_NICK, 3, Nick.TYPE)
    assert isinstance(rejected, FrameRejected)
    reply = rejected.error_reply()
    assert feed(pair.client, pair.server.send(reply)) == [reply]


def test_undefined_enumeration_value_is_malformed_message() -> None:
    pair = pair_in(State.READY)
    left = MemberLeft.model_construct(request_id=0, room="#room", nick="bob", kind=5)
    (event,) = feed(pair.client, encode(left))
    assert rejection(event) == (ErrorCode.MALFORMED_MESSAGE, 0, MemberLeft.TYPE)


# ============================================ one encoding, many connections

SERVER_TYPES = [cls for cls in MESSAGE_TYPES.values() if cls.SENDER in (SERVER, Sender.BOTH)]


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("cls", SERVER_TYPES, ids=lambda cls: cls.NAME)
def test_may_send_allows_exactly_what_send_takes_without_a_state_change(
    state: State, cls: type[Message]
) -> None:
    """A broadcast encoded once is held to the state table as each send() would be,
    and its one encoding is the bytes send() would have produced."""
    message = minimal(cls, 0) if cls is not Error else minimal(cls, 0, fatal=False)
    by_send = pair_in(state).server
    try:
        sent = by_send.send(message)
    except LocalProtocolError:
        sent = None
    # An ERROR answers one connection's request; its fatality is in the body: send() only.
    stays = sent is not None and by_send.state is state and cls is not Error
    asked = pair_in(state).server

    assert asked.may_send(cls) is stays
    assert asked.state is state
    if stays:
        assert encode(message) == sent


def test_events_reach_a_connection_only_between_welcome_and_bye() -> None:
    """The reason the server asks may_send(): no event before WELCOME or after BYE."""
    assert [state for state in State if pair_in(state).server.may_send(Notice)] \
        == [State.READY, State.QUITTING]
