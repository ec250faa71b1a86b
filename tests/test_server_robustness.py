"""Reference server: bad input is the offender's problem only (real sockets).

Each case sends one kind of damage on one connection (garbage bytes, a length out
of range, a message the state does not allow, a body that does not parse, invalid
UTF-8, a zero request id, half a frame and EOF...) and checks the answer the spec
gives for it, and whether the connection is closed (fatal) or goes on. Meanwhile
two other clients, in a room of their own, notice nothing at all (their PING
barrier shows no event) and can still chat.

Spec pages: framing, lifecycle (State rules, Requests and responses), errors,
extensibility (unknown types).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from dataclasses import dataclass

import pytest
from conftest import ClientFactory, RunningServer
from server_harness import (
    ChatTestClient,
    describe_all,
    join_all,
    of_type,
    raw_frame,
    refused,
    str8,
    str16,
    unchecked,
)

from chatproto import (
    MAX_FRAME_LENGTH,
    ErrorCode,
    FrameDecoder,
    Limits,
    RemoteProtocolError,
    State,
    encode,
)
from chatproto._fastcodec import decode_body
from chatproto.messages import (
    Away,
    Bye,
    Error,
    Hello,
    History,
    Join,
    Kick,
    LeaveKind,
    ListMembers,
    ListRooms,
    Login,
    MemberLeft,
    Mute,
    Nick,
    Ok,
    Oper,
    Part,
    Ping,
    Pong,
    Quit,
    Register,
    RoomInfo,
    RoomMessage,
    SendPrivate,
    SendRoom,
    SetTopic,
)

HELLO_BODY = bytes([1, 1]) + str8("offender") + str8("") + str8("tests") + b"\x00"


async def bystanders(client_factory: ClientFactory) -> tuple[ChatTestClient, ChatTestClient]:
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#bystanders", alice, bob)
    return alice, bob


async def bystanders_unaffected(alice: ChatTestClient, bob: ChatTestClient) -> None:
    """Nothing reached the bystanders, and they can still talk to each other."""
    for client in (alice, bob):
        events = await client.barrier()
        assert events == [], f"{client!r} noticed:{describe_all(events)}"
    ok = (await alice.ok(SendRoom(room="#bystanders", text="all good?")))[-1]
    assert isinstance(ok, Ok)
    received = await bob.barrier()
    assert [(m.seq, m.text) for m in of_type(received, RoomMessage)] == [(ok.seq, "all good?")]


@dataclass(frozen=True)
class Damage:
    id: str
    handshake: bool
    """Send HELLO first (the damage arrives in READY), or not (AWAIT_HELLO)."""
    data: bytes
    code: ErrorCode
    fatal: bool
    request_id: int
    """The request_id the ERROR must carry."""


DAMAGE = [
    # CP-FRAME-7: length below 6 -> MALFORMED_FRAME, fatal, request_id 0 (CP-ERR-3).
    Damage("length-5", True, b"\x00\x00\x00\x05\x00\x05\x00\x00\x00", ErrorCode.MALFORMED_FRAME,
           True, 0),
    Damage("length-0", False, b"\x00\x00\x00\x00", ErrorCode.MALFORMED_FRAME, True, 0),
    # CP-FRAME-3, CP-FRAME-4: a length above the limit is refused from its 4 bytes alone.
    Damage("text-protocol", True, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
           ErrorCode.FRAME_TOO_LARGE, True, 0),
    Damage("length-max-u32", True, b"\xff\xff\xff\xff", ErrorCode.FRAME_TOO_LARGE, True, 0),
    Damage("over-advertised", True, struct.pack(">I", 8193), ErrorCode.FRAME_TOO_LARGE, True, 0),
    Damage("over-4096-before-welcome", False, struct.pack(">I", 4097),
           ErrorCode.FRAME_TOO_LARGE, True, 0),
    # CP-STATE-3: anything but HELLO/QUIT before the handshake, unknown types included.
    Damage("join-before-hello", False, unchecked(Join, 5, room="#x"),
           ErrorCode.STATE_VIOLATION, True, 5),
    Damage("unknown-type-before-hello", False, raw_frame(0x7ABC, 6),
           ErrorCode.STATE_VIOLATION, True, 6),
    Damage("ping-before-hello", False, encode(Ping(request_id=7, token=b"x")),
           ErrorCode.STATE_VIOLATION, True, 7),
    # CP-STATE-2: a second HELLO, or a message only servers send.
    Damage("hello-in-ready", True, raw_frame(0x0001, 8, HELLO_BODY), ErrorCode.STATE_VIOLATION,
           True, 8),
    Damage("ok-from-client", True, encode(Ok(request_id=9)), ErrorCode.STATE_VIOLATION, True, 9),
    Damage("room-message-from-client", True,
           encode(RoomMessage(request_id=10, room="#bystanders", seq=1, msg_id=1,
                              timestamp_ms=1, sender="alice", text="forged")),
           ErrorCode.STATE_VIOLATION, True, 10),
    # CP-EXT-2: unknown type in READY -> UNKNOWN_TYPE with its request_id, non-fatal.
    Damage("unknown-type", True, raw_frame(0x7ABC, 11, b"whatever"), ErrorCode.UNKNOWN_TYPE,
           False, 11),
    Damage("type-zero", True, raw_frame(0x0000, 12), ErrorCode.UNKNOWN_TYPE, False, 12),
    Damage("extension-type", True, raw_frame(0x8001, 13), ErrorCode.UNKNOWN_TYPE, False, 13),
    # CP-FRAME-9: the body does not parse -> MALFORMED_MESSAGE, non-fatal.
    Damage("body-too-short", True, raw_frame(0x0201, 14, b"\x05#ro"),
           ErrorCode.MALFORMED_MESSAGE, False, 14),
    Damage("trailing-bytes", True, raw_frame(0x0203, 15, b"\x00"),
           ErrorCode.MALFORMED_MESSAGE, False, 15),
    Damage("bool-is-2", True, raw_frame(0x0201, 16, str8("#room") + b"\x02" + bytes(8)),
           ErrorCode.MALFORMED_MESSAGE, False, 16),
    Damage("empty-body", True, raw_frame(0x0301, 17), ErrorCode.MALFORMED_MESSAGE, False, 17),
    # CP-FIELD-2: invalid UTF-8 -> INVALID_UTF8, non-fatal.
    Damage("utf8-in-room", True, raw_frame(0x0201, 18, str8(b"#\xffroom") + b"\x00" + bytes(8)),
           ErrorCode.INVALID_UTF8, False, 18),
    Damage("utf8-in-text", True,
           raw_frame(0x0301, 19, str8("#bystanders") + bytes(8) + str16(b"hi \xc3\x28")),
           ErrorCode.INVALID_UTF8, False, 19),
    Damage("utf8-in-hello", False,
           raw_frame(0x0001, 20, bytes([1, 1]) + str8(b"n\xe9ck") + str8("") + str8("t")
                     + b"\x00"), ErrorCode.INVALID_UTF8, False, 20),
    # CP-REQ-3: request_id 0 -> INVALID_REQUEST_ID with request_id 0, not performed.
    Damage("request-id-zero", True, encode(ListRooms(request_id=0)),
           ErrorCode.INVALID_REQUEST_ID, False, 0),
    Damage("send-with-request-id-zero", True,
           encode(SendRoom(request_id=0, room="#bystanders", text="sneaky")),
           ErrorCode.INVALID_REQUEST_ID, False, 0),
]


@pytest.mark.server_config(limits=Limits(max_frame_size=8192))
@pytest.mark.parametrize("damage", DAMAGE, ids=[d.id for d in DAMAGE])
async def test_damage_is_answered_and_isolated(server: RunningServer,
                                               client_factory: ClientFactory,
                                               damage: Damage) -> None:
    """CP-ERR-1, CP-ERR-2, CP-ERR-3, CP-CLOSE-4, CP-FLOW-4 and the requirement named per
    case: the offender gets exactly the ERROR the spec gives (code, fatal flag,
    request_id); after a fatal one the server closes, after a non-fatal one the
    connection still works; the bystanders notice nothing and keep chatting."""
    alice, bob = await bystanders(client_factory)
    offender = await client_factory("offender" if damage.handshake else None)
    await offender.send_raw(damage.data)
    error = await offender.expect(Error)
    assert (error.code, error.fatal, error.request_id) == (
        damage.code, damage.fatal, damage.request_id), error
    assert error.retry_after_ms == 0
    if damage.fatal:
        rest = await offender.read_until_closed()
        assert rest == [], f"frames after a fatal ERROR:{describe_all(rest)}"
    elif damage.handshake:
        assert await offender.barrier() == []
        await offender.ok(Join(room="#offender"))
    else:
        await offender.hello("offender")
        assert await offender.barrier() == []
    await bystanders_unaffected(alice, bob)


async def test_frame_too_large_is_refused_before_the_body(server: RunningServer,
                                                          client_factory: ClientFactory) -> None:
    """CP-FRAME-3: the server refuses an oversized frame as soon as the 4 length bytes
    are in — without waiting for (or buffering) a body that never comes."""
    client = await client_factory("alice")
    await client.send_raw(struct.pack(">I", 65537))
    error = await client.expect(Error, timeout=3)
    assert (error.code, error.fatal) == (ErrorCode.FRAME_TOO_LARGE, True)
    await client.wait_closed()


async def test_fatal_damage_by_a_room_member_is_a_disconnect(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-CLOSE-9: when the offender shared a room, its room mates see it leave with
    MEMBER_LEFT kind DISCONNECT (and nothing else)."""
    offender, alice = await client_factory("offender"), await client_factory("alice")
    await join_all("#room", offender, alice)
    await offender.send_raw(b"\x00\x00\x00\x01")
    error = await offender.expect(Error)
    assert error.code == ErrorCode.MALFORMED_FRAME
    await offender.wait_closed()
    events = await alice.barrier()
    assert [(m.nick, m.kind) for m in of_type(events, MemberLeft)] == [
        ("offender", LeaveKind.DISCONNECT)]
    assert len(events) == 1


async def test_half_a_frame_then_eof(server: RunningServer,
                                     client_factory: ClientFactory) -> None:
    """CP-FRAME-11, CP-CLOSE-9: a connection that ends in the middle of a frame ended
    abnormally: the half frame is not acted on, its room mates get MEMBER_LEFT kind
    DISCONNECT, and the nick is free again (CP-NICK-6)."""
    offender, alice = await client_factory("offender"), await client_factory("alice")
    await join_all("#room", offender, alice)
    frame = encode(SendRoom(request_id=5, room="#room", text="this never completes"))
    await offender.send_raw(frame[: len(frame) // 2])
    await offender.close()
    left = await alice.expect(MemberLeft)
    assert (left.nick, left.kind) == ("offender", LeaveKind.DISCONNECT)
    assert of_type(await alice.barrier(), RoomMessage) == []
    assert (await client_factory("offender")).nick == "offender"


async def test_any_split_and_coalescing_of_frames(server: RunningServer,
                                                  client_factory: ClientFactory) -> None:
    """CP-FRAME-8, CP-REQ-5, CP-REQ-8, CP-REQ-9: a HELLO and eight pipelined requests sent
    one byte per write are served like any others; then eight requests coalesced into
    one write are answered in order, each with its own request_id."""
    alice = await client_factory("alice")
    await join_all("#room", alice)
    client = await client_factory()
    (hello_id,) = await client.send_many(
        [Hello(min_version=1, max_version=1, nick="bytewise", client_name="tests")],
        chunk_size=1)
    welcome = (await client.response(hello_id))[-1]
    assert welcome.NAME == "WELCOME" and welcome.request_id == hello_id
    requests = ([Join(room=f"#r{i}") for i in range(4)]
                + [SendRoom(room="#r0", text=f"{i}") for i in range(4)])
    ids = await client.send_many(requests, chunk_size=1)
    answers = [(await client.response(request_id))[-1] for request_id in ids]
    assert all(isinstance(a, Ok) for a in answers), answers
    assert [a.seq for a in answers if isinstance(a, Ok)] == [0, 0, 0, 0, 1, 2, 3, 4]

    ids = await client.send_many([Ping(token=bytes([i])) for i in range(8)]
                                 + [ListRooms()] + [Ping(token=b"last")])
    replies = [await client.response(request_id) for request_id in ids]
    assert [r[-1].NAME for r in replies] == ["PONG"] * 8 + ["OK", "PONG"]
    pongs = [r[-1] for r in replies if isinstance(r[-1], Pong)]
    assert [p.token for p in pongs] == [bytes([i]) for i in range(8)] + [b"last"]
    assert len(of_type(replies[8], RoomInfo)) == 5  # #room and #r0..#r3
    assert await alice.barrier() == []


async def test_quit_is_always_answered_with_bye(server: RunningServer,
                                                client_factory: ClientFactory) -> None:
    """CP-CLOSE-2: QUIT with request_id 0, or with a body that does not parse, is still
    answered BYE (reason taken as empty), and the others get MEMBER_LEFT kind QUIT."""
    alice = await client_factory("alice")
    zero, garbled = await client_factory("zero"), await client_factory("garbled")
    await join_all("#room", alice, zero, garbled)
    # Raw frames bypass the clients' sans-IO state: tell them they sent a QUIT.
    await zero.send_raw(encode(Quit(request_id=0, reason="zero id")))
    zero.conn.state = State.QUITTING
    bye = await zero.expect(Bye)
    assert bye.request_id == 0
    await zero.wait_closed()
    await garbled.send_raw(raw_frame(0x0007, 31, b"\x09short"))
    garbled.conn.state = State.QUITTING
    bye = await garbled.expect(Bye)
    assert bye.request_id == 31
    await garbled.wait_closed()
    left = [await alice.expect(MemberLeft), await alice.expect(MemberLeft)]
    assert sorted((m.nick, m.kind, m.reason) for m in left) == [
        ("garbled", LeaveKind.QUIT, ""), ("zero", LeaveKind.QUIT, "zero id")]


async def test_quit_before_hello(server: RunningServer, client_factory: ClientFactory) -> None:
    """State table: QUIT is allowed in AWAIT_HELLO and answered BYE (CP-CLOSE-1)."""
    client = await client_factory()
    frames = await client.request(Quit(reason="changed my mind"))
    assert [f.NAME for f in frames] == ["BYE"]
    await client.wait_closed()


async def test_fatal_error_from_the_client(server: RunningServer,
                                           client_factory: ClientFactory) -> None:
    """CP-CLOSE-5, CP-ERR-9, CP-CLOSE-9: a client's fatal ERROR ends the connection: the
    server sends nothing more and closes; room mates get MEMBER_LEFT kind DISCONNECT."""
    quitter, alice = await client_factory("quitter"), await client_factory("alice")
    await join_all("#room", quitter, alice)
    await quitter.send(Error(code=int(ErrorCode.STATE_VIOLATION), fatal=True,
                             detail="you broke it"))
    assert await quitter.read_until_closed() == []
    left = await alice.expect(MemberLeft)
    assert (left.nick, left.kind) == ("quitter", LeaveKind.DISCONNECT)


async def test_client_error_with_a_truncated_body(server: RunningServer,
                                                 client_factory: ClientFactory) -> None:
    """CP-ERR-11: a client ERROR cut short in its body is allowed by the header (not a
    STATE_VIOLATION): the server answers MALFORMED_MESSAGE, not fatal, request_id 0, and
    closes the connection as after any client ERROR; room mates see DISCONNECT."""
    quitter, alice = await client_factory("quitter"), await client_factory("alice")
    await join_all("#room", quitter, alice)
    await quitter.send_raw(raw_frame(Error.TYPE, 0, b"\x00\x69\x01"))  # code, fatal, no more
    answer = await quitter.read_until_closed()
    assert [(e.code, e.fatal, e.request_id) for e in of_type(answer, Error)] == \
        [(int(ErrorCode.MALFORMED_MESSAGE), False, 0)]
    assert len(answer) == 1
    left = await alice.expect(MemberLeft)
    assert (left.nick, left.kind) == ("quitter", LeaveKind.DISCONNECT)


async def test_stray_pong_is_ignored(server: RunningServer,
                                     client_factory: ClientFactory) -> None:
    """CP-KEEP-3: a PONG that answers no PING of the server is ignored, without answer."""
    client = await client_factory("alice")
    await client.send(Pong(request_id=0, token=b"unsolicited"))
    await client.send(Pong(request_id=42, token=b""))
    assert await client.barrier() == []
    await client.ok(Join(room="#fine"))


async def test_many_bad_frames_in_a_row_do_not_end_the_connection(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-FRAME-9, CP-EXT-2: non-fatal damage is per frame: 50 bad frames get 50 ERRORs
    in order, and the connection then works as before."""
    client = await client_factory("alice")
    bad = b"".join(raw_frame(0x0201 if i % 2 else 0x7777, 1000 + i, b"\x01") for i in range(50))
    await client.send_raw(bad)
    errors = [await client.expect(Error) for _ in range(50)]
    assert [e.request_id for e in errors] == list(range(1000, 1050))
    assert {e.code for e in errors} == {ErrorCode.MALFORMED_MESSAGE, ErrorCode.UNKNOWN_TYPE}
    assert not any(e.fatal for e in errors)
    await client.ok(Join(room="#fine"))
    refused(await client.request(Join(room="#fine")), ErrorCode.ALREADY_IN_ROOM)


@pytest.mark.server_config(limits=Limits(max_message_length=50, cmd_rate_burst=3,
                                         cmd_rate_interval_ms=60000))
async def test_order_of_checks(server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ERR-10 (order of checks): field syntax (INVALID_ROOM_NAME) before the advertised
    limits (MESSAGE_TOO_LONG) before the rate limit (RATE_LIMITED) before operator status
    (NOT_OPERATOR) before the request's own conditions (NOT_IN_ROOM, NO_SUCH_ROOM)."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await alice.ok(Join(room="#room"))
    # Bob is not in #room: the too-long text is reported, not the membership.
    refused(await bob.request_unchecked(SendRoom, room="#room", client_msg_id=0,
                                        text="x" * 51), ErrorCode.MESSAGE_TOO_LONG)
    refused(await bob.request_unchecked(SendRoom, room="bad name", client_msg_id=0,
                                        text="x" * 51), ErrorCode.INVALID_ROOM_NAME)
    # Not an operator, room does not exist: NOT_OPERATOR, not NO_SUCH_ROOM.
    refused(await bob.request(Kick(room="#nowhere", nick="alice")), ErrorCode.NOT_OPERATOR)
    refused(await bob.request_unchecked(Kick, room="no-hash", nick="alice", reason=""),
            ErrorCode.INVALID_ROOM_NAME)
    # The refused KICK took a token (failing requests count), the INVALID_ROOM_NAME one
    # did not (refused before the rate check); two more empty the bucket of 3.
    await bob.ok(ListRooms())
    await bob.ok(ListRooms())
    # Now RATE_LIMITED comes before NOT_OPERATOR.
    refused(await bob.request(Kick(room="#room", nick="alice")), ErrorCode.RATE_LIMITED)


# ------------------------------------------------------------------------ fuzz

FUZZ_CASES = 200
"""Damaged byte strings, each on a connection of its own."""

FUZZ_SEED = 20240601


def _fuzz_material() -> list[bytes]:
    return [encode(message) for message in (
        Join(request_id=3, room="#fuzz", resume=True, last_seen_seq=1),
        SendRoom(request_id=4, room="#fuzz", client_msg_id=7, text="hello \u00e9"),
        ListRooms(request_id=5), Ping(request_id=6, token=b"ab"),
        Nick(request_id=7, nick="renamed"), History(request_id=8, room="#fuzz", limit=3),
        Kick(request_id=9, room="#fuzz", nick="alice", reason="r"),
        SetTopic(request_id=10, room="#fuzz", topic="t"), Away(request_id=11, message="a"),
        Login(request_id=12, nick="alice", password="p"), Register(request_id=13, password="p"),
        Part(request_id=14, room="#fuzz", reason="bye"), ListMembers(request_id=15, room="#fuzz"),
        Mute(request_id=16, room="#fuzz", nick="bob", muted=True),
        SendPrivate(request_id=17, nick="bob", text="psst"), Oper(request_id=18, name="x",
                                                                    password="y"),
        Quit(request_id=19, reason="q"), Pong(request_id=0, token=b"z"),
        Hello(request_id=20, min_version=1, max_version=1, nick="again", client_name="c"),
    )]


def fuzz_cases(seed: int, count: int) -> list[tuple[bool, bytes]]:
    """(send HELLO first?, damaged bytes): random bytes, bit flips, cut or extended frames,
    wrong length fields, several frames glued together."""
    rng = random.Random(seed)
    material = _fuzz_material()
    cases = []
    for _ in range(count):
        frame = bytearray(rng.choice(material))
        how = rng.randrange(6)
        if how == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        elif how == 1:
            for _ in range(rng.randrange(1, 4)):
                frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
            data = bytes(frame)
        elif how == 2:
            data = bytes(frame[: rng.randrange(1, len(frame))])
        elif how == 3:
            extra = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
            data = struct.pack(">I", len(frame) - 4 + len(extra)) + bytes(frame[4:]) + extra
        elif how == 4:
            data = struct.pack(">I", rng.choice([0, 5, 6, 7, 4096, 4097, 65536, 65537,
                                                 len(frame) - 5, len(frame) + 3,
                                                 2**31])) + bytes(frame[4:])
        else:
            data = b"".join(rng.choice(material) for _ in range(rng.randrange(2, 5)))
            cut = rng.randrange(len(data))
            data = data[:cut] + bytes([rng.randrange(256)]) + data[cut + 1:]
        cases.append((rng.random() < 0.75, data))
    return cases


class _LogErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _fuzz_one(port: int, index: int, handshake: bool, data: bytes) -> list[str]:
    """Send one damaged input; return what was wrong with the server's behaviour."""
    problems: list[str] = []
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    decoder = FrameDecoder(MAX_FRAME_LENGTH)
    try:
        if handshake:
            writer.write(encode(Hello(request_id=1, min_version=1, max_version=1,
                                      nick=f"fz{index}", client_name="fuzz")))
        writer.write(data)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(5):
            while chunk := await reader.read(65536):
                decoder.feed(chunk)
                while (raw := decoder.next_frame()) is not None:
                    try:
                        message = decode_body(raw.type_code, raw.request_id, decoder.buffer,
                                              raw.start, raw.end)
                    except RemoteProtocolError as exc:
                        problems.append(f"malformed frame from the server: {exc}")
                        continue
                    if isinstance(message, Error) and message.code == ErrorCode.INTERNAL_ERROR:
                        problems.append(f"INTERNAL_ERROR: {message.detail}")
        if decoder.buffered:
            problems.append("the server's last frame was cut short")
    except TimeoutError:
        problems.append("the server did not close after EOF within 5 s")
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server may close first; a reset is fine for damaged input
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return [f"case {index} ({'after HELLO' if handshake else 'first'}: {data.hex()}): {p}"
            for p in problems]


@pytest.mark.server_config(limits=Limits(msg_rate_burst=1000, msg_rate_interval_ms=1))
async def test_fuzzed_input_never_hurts_the_server(server: RunningServer,
                                                   client_factory: ClientFactory) -> None:
    """CP-FRAME-8, CP-FRAME-9, CP-ERR-8, CP-FLOW-4 (seeded fuzz, FUZZ_CASES connections):
    random bytes, bit-flipped, cut, extended and mis-sized frames, each sent on its own
    connection (after a HELLO or instead of one), then EOF. Every frame the server sends
    back is well formed, it never answers INTERNAL_ERROR, it closes every connection
    after EOF, nothing is logged at ERROR level (no handler crashed), and meanwhile two
    bystanders in another room keep chatting."""
    alice, bob = await bystanders(client_factory)
    handler = _LogErrors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        cases = fuzz_cases(FUZZ_SEED, FUZZ_CASES)
        problems: list[str] = []
        for start in range(0, len(cases), 20):
            batch = cases[start:start + 20]
            results = await asyncio.gather(*(
                _fuzz_one(server.port, start + i, handshake, data)
                for i, (handshake, data) in enumerate(batch)))
            problems += [problem for result in results for problem in result]
            await alice.ok(SendRoom(room="#bystanders", text=f"batch {start}"))
            assert len(of_type(await bob.barrier(), RoomMessage)) == 1
    finally:
        root.removeHandler(handler)
    assert problems == [], "\n".join(problems[:20])
    logged = [f"{r.name}: {r.getMessage()}" for r in handler.records]
    assert logged == [], "\n".join(logged[:20])
    await bystanders_unaffected(alice, bob)


@pytest.mark.server_config(operators={"root": "op-pw"})
async def test_requests_pipelined_behind_a_password_check(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-REQ-5, CP-REQ-8: requests written right behind a LOGIN or OPER (whose password
    checks take time) are answered after it, in order, and see its effects: the message
    is sent under the account's nick, the KICK is done as an operator."""
    owner = await client_factory("Owner")
    await owner.ok(Register(password="owner-pw"))
    await owner.quit()
    watcher, guest = await client_factory("watcher"), await client_factory("guest")
    await join_all("#room", watcher, guest)
    victim = await client_factory("victim")
    await join_all("#room", victim)
    await watcher.barrier()
    ids = await guest.send_many([
        Login(nick="owner", password="owner-pw"),
        SendRoom(room="#room", text="who am I?"),
        Oper(name="root", password="op-pw"),
        Kick(room="#room", nick="victim", reason="pipelined"),
        Ping(token=b"end"),
    ])
    finals = [(await guest.response(request_id, timeout=20))[-1] for request_id in ids]
    assert [f.NAME for f in finals] == ["OK", "OK", "OK", "OK", "PONG"], finals
    events = await watcher.barrier()
    messages = of_type(events, RoomMessage)
    assert [(m.sender, m.text) for m in messages] == [("Owner", "who am I?")]
    kicks = of_type(events, MemberLeft)
    assert [(m.nick, m.kind, m.by) for m in kicks] == [("victim", LeaveKind.KICK, "Owner")]


@pytest.mark.server_config(limits=Limits(msg_rate_burst=200, msg_rate_interval_ms=1,
                                         max_message_length=4000, history_page_max=200),
                           max_output_buffer=64 * 1024 * 1024, shutdown_grace_s=0.3)
async def test_a_connection_closed_with_output_pending_leaves_the_loop_clean(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """A connection closed while its output is still buffered (QUIT behind megabytes of
    HISTORY) drains, and then nothing fails in the event loop: the grace-period abort of
    a socket that already closed must not run (it raised AttributeError in asyncio)."""
    loop = asyncio.get_running_loop()
    loop_errors: list[str] = []
    loop_failed = asyncio.Event()

    def record(_: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        loop_errors.append(str(context.get("message")) + ": " + repr(context.get("exception")))
        loop_failed.set()

    loop.set_exception_handler(record)
    alice = await client_factory("alice")
    await alice.ok(Join(room="#big"))
    ids = await alice.send_many([SendRoom(room="#big", text="y" * 4000) for _ in range(200)])
    for request_id in ids:
        assert isinstance((await alice.response(request_id))[-1], Ok)
    reader = await client_factory("reader")
    await reader.ok(Join(room="#big"))
    # About 16 MB of answers, then BYE: the server closes with most of it still queued.
    *pages, quit_id = await reader.send_many(
        [*(History(room="#big", limit=200) for _ in range(20)), Quit()])
    for request_id in pages:
        page = await reader.response(request_id, timeout=30)
        assert len(of_type(page, RoomMessage)) == 200
    assert isinstance((await reader.response(quit_id))[-1], Bye)
    await reader.wait_closed()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(loop_failed.wait(), timeout=0.3 + 1.0)
    assert loop_errors == []
