"""Frames on the wire: reads split anywhere, size limits, broken headers, bodies and fields.

The validating message classes cannot express most of what these cases send,
so the bodies are built byte by byte (``_bodies``), with the spec's wire kinds
(``str8``, ``str16``, ...), and framed with ``conformance.wire.frame_bytes``.
"""

from __future__ import annotations

import secrets

from chatproto import (
    HEADER_SIZE,
    LENGTH_FIELD_SIZE,
    MIN_FRAME_LENGTH,
    PRE_WELCOME_FRAME_LENGTH,
    SEND_ROOM_OVERHEAD,
    ErrorCode,
    encode,
)
from chatproto.messages import (
    Away,
    Error,
    Hello,
    Join,
    LeaveKind,
    ListRooms,
    Login,
    MemberJoined,
    MemberLeft,
    Message,
    Ok,
    Oper,
    Part,
    Ping,
    Presence,
    RoomMessage,
    SendRoom,
    SetTopic,
    TopicChanged,
    Welcome,
)
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import FINAL_TYPES, KIT_CLIENT_NAME, Peer, ServerContext
from conformance.suites.server._bodies import BAD_UTF8, hello_body, str8, str16, u8, u64, unchecked
from conformance.suites.server._steps import fit_topic, maybe, ping_works, room_with, still_served
from conformance.transcript import describe, outcome
from conformance.wire import frame_bytes, length_field


async def answer_to(peer: Peer, request_id: int, name: str, req: str) -> Message:
    answer = await peer.response(request_id, name, req=req)
    return answer.final


def expect_error_code(ctx: ServerContext, final: Message, code: ErrorCode, req: str,
                      what: str) -> Error:
    ctx.check(isinstance(final, Error) and final.code == code, req,
              f"{what} was answered with {outcome(final)}; the spec requires ERROR {code.name}")
    assert isinstance(final, Error)
    return final


# ------------------------------------------------------------------ splitting (CP-FRAME-8)


@server_case("CP-FRAME-8")
async def frames_sent_one_byte_per_write(ctx: ServerContext) -> None:
    """HELLO, JOIN and PING written one byte per write are read as whole frames."""
    await ping_works(ctx)
    peer = await ctx.connect("alice")
    nick = ctx.nick("alice")
    await peer.send_raw(encode(Hello(request_id=1, min_version=1, max_version=1, nick=nick,
                                     client_name=KIT_CLIENT_NAME)), chunk_size=1)
    welcome = await answer_to(peer, 1, "HELLO", "CP-FRAME-8")
    ctx.check(isinstance(welcome, Welcome), "CP-FRAME-8",
              f"a HELLO written one byte per write was answered with {outcome(welcome)}")
    room = ctx.room("bytes")
    stream = (encode(Join(request_id=2, room=room))
              + encode(Ping(request_id=3, token=b"\x01\x02\x03")))
    await peer.send_raw(stream, chunk_size=1, pace=Join(room=room))
    join = await answer_to(peer, 2, "JOIN", "CP-FRAME-8")
    ctx.check(isinstance(join, Ok), "CP-FRAME-8",
              f"a JOIN written one byte per write was answered with {outcome(join)}")
    pong = await answer_to(peer, 3, "PING", "CP-FRAME-8")
    ctx.check(getattr(pong, "token", None) == b"\x01\x02\x03", "CP-FRAME-8",
              f"a PING written one byte per write was answered with {describe(pong)}")


@server_case("CP-FRAME-8")
async def several_frames_and_part_of_the_next_in_one_write(ctx: ServerContext) -> None:
    """Three whole frames plus the start of a fourth in one write, then the rest, all answered."""
    alice = await ctx.client("alice")
    await alice.barrier()  # PING is answered at all (else CP-KEEP-1 fails here)
    room = ctx.room("batch")
    frames = [encode(Ping(request_id=101, token=b"a")),
              encode(Join(request_id=102, room=room)),
              encode(Ping(request_id=103, token=b"bc")),
              encode(Ping(request_id=104, token=b"def"))]
    await alice.send_raw(b"".join(frames[:3]) + frames[3][:7], pace=Join(room=room))
    for request_id in (101, 102, 103):
        await alice.response(request_id, "request", req="CP-FRAME-8")
    await alice.send_raw(frames[3][7:])
    pong = await answer_to(alice, 104, "PING", "CP-FRAME-8")
    ctx.check(getattr(pong, "token", None) == b"def", "CP-FRAME-8",
              f"the PING completed by a second write was answered with {describe(pong)}")
    # A split inside the length field itself, the next frame following the rest.
    tail = [encode(Ping(request_id=105, token=b"g")), encode(Ping(request_id=106, token=b"h"))]
    await alice.send_raw(tail[0][:2])
    await alice.send_raw(tail[0][2:] + tail[1])
    for request_id in (105, 106):
        await alice.response(request_id, "PING", req="CP-FRAME-8")


@server_case("CP-FRAME-8")
async def two_frames_split_at_every_offset(ctx: ServerContext) -> None:
    """Two frames written as two pieces, cut at every possible offset, are both answered."""
    alice = await ctx.client("alice")
    await alice.barrier()  # PING is answered at all (else CP-KEEP-1 fails here)
    request_id = 1000
    length = len(encode(Ping(request_id=1, token=b"xyz")) + encode(Ping(request_id=2)))
    for cut in range(1, length):
        first, second = request_id + 1, request_id + 2
        request_id += 2
        stream = (encode(Ping(request_id=first, token=b"xyz"))
                  + encode(Ping(request_id=second, token=b"")))
        await alice.send_raw(stream[:cut], note=f"bytes 0..{cut} of two PINGs")
        await alice.send_raw(stream[cut:], note=f"bytes {cut}..{length} of two PINGs")
        for wanted in (first, second):
            pong = await answer_to(alice, wanted, f"PING cut at byte {cut}", "CP-FRAME-8")
            ctx.check(pong.NAME == "PONG", "CP-FRAME-8",
                      f"a PING cut at byte {cut} was answered with {describe(pong)}")


@server_case("CP-FRAME-1", "CP-FRAME-2", "CP-FIELD-1", "CP-FIELD-4")
async def server_frames_decode_exactly_and_carry_safe_text(ctx: ServerContext) -> None:
    """In a varied session every server frame decodes exactly; texts and details are safe text."""
    room = ctx.room("wire")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    await alice.say(room, "caf\u00e9 \u65e5\u672c \U0001f600 tab\tand\nline")
    await alice.ok(SetTopic(room=room, topic=fit_topic(alice, "t\u00f6pic \u2014 ok")),
                   req="CP-ROOM-15")
    await alice.ok(Away(message="away \u00e0 midi"), req="CP-USER-3")
    await bob.tell(alice.nick, "private \u00fc")
    # Refusals whose detail a careless server would fill with the offending bytes.
    for message in (unchecked(Join, 0, room="#bad\x1b[2Jroom"),
                    unchecked(Part, 0, room="#x\u009b31m"),
                    unchecked(SendRoom, 0, room=room, text="esc \x1b]0;title\x07"),
                    unchecked(Oper, 0, name="op\x1b[31m", password="x")):
        await alice.request(message)
    raw = await ctx.connect("raw")
    await raw.send_raw(frame_bytes(Hello.TYPE, 1, hello_body("\x1b[31mred")),
                       note="HELLO whose nick holds ESC")
    await raw.response(1, "HELLO")
    await alice.part(room, "leaving \u263a")
    for peer in (alice, bob, raw):
        # Not the barrier: a bad frame must not mark PING as broken for later cases.
        if peer is not raw:
            await still_served(peer, "CP-KEEP-1")
        peer.pending()  # raises the first frame that broke the wire format or safe text


# ------------------------------------------------------------------ size limits


async def _header_error(peer: Peer, req: str) -> Error:
    """The ERROR that answers a bad frame header (any request_id)."""
    return await peer.expect_type(Error, req=req)


@server_case("CP-FRAME-3")
async def length_over_max_frame_size_rejected_without_the_body(ctx: ServerContext) -> None:
    """A length field one over max_frame_size, with no body sent, gets FRAME_TOO_LARGE."""
    alice = await ctx.client("alice")
    assert alice.welcome is not None
    length = alice.welcome.max_frame_size + 1
    await alice.send_raw(length_field(length), note=f"length field {length}, nothing more")
    error = await _header_error(alice, "CP-FRAME-3")
    expect_error_code(ctx, error, ErrorCode.FRAME_TOO_LARGE, "CP-FRAME-3",
                      f"a length field of {length} (max_frame_size + 1)")


@server_case("CP-FRAME-3")
async def huge_length_fields_rejected_without_the_body(ctx: ServerContext) -> None:
    """Length fields 2^32-1 and 2^31 get FRAME_TOO_LARGE at once, after WELCOME and before it."""
    for length, welcomed in ((0xFFFFFFFF, True), (0x80000000, True), (0xFFFFFFFF, False)):
        peer = await ctx.client("alice") if welcomed else await ctx.connect("raw")
        await peer.send_raw(length_field(length), note=f"length field {length}")
        error = await _header_error(peer, "CP-FRAME-3")
        state = "after WELCOME" if welcomed else "before HELLO"
        expect_error_code(ctx, error, ErrorCode.FRAME_TOO_LARGE, "CP-FRAME-3",
                          f"a length field of {length:#x} {state}")


@server_case("CP-FRAME-4", "CP-FRAME-3")
async def limit_before_welcome_is_4096(ctx: ServerContext) -> None:
    """Before WELCOME a length field of 4097 gets FRAME_TOO_LARGE, whatever max_frame_size is."""
    over = PRE_WELCOME_FRAME_LENGTH + 1
    peer = await ctx.connect("raw")
    await peer.send_raw(length_field(over), note=f"length field {over} before HELLO, nothing more")
    error = await maybe(peer.expect_type(Error, req="CP-FRAME-4"))
    if error is None and not peer.closed:
        # Nothing yet: does the server reject it once the body is there?
        frame = frame_bytes(Hello.TYPE, 1, bytes(over - MIN_FRAME_LENGTH))
        await peer.send_raw(frame[LENGTH_FIELD_SIZE:],
                            note=f"the {over} bytes the length field announced")
        late = await maybe(peer.expect_type(Error, req="CP-FRAME-4"))
        if isinstance(late, Error) and late.code == ErrorCode.FRAME_TOO_LARGE:
            raise Violation("CP-FRAME-3", f"a length field of {over} before WELCOME was "
                            "rejected only after its body arrived, not as soon as the length "
                            "was read")
        raise Violation("CP-FRAME-4", f"a length field of {over} before WELCOME was not "
                        f"rejected with FRAME_TOO_LARGE (answer: "
                        f"{outcome(late) if late else 'none'}); the limit is "
                        f"{PRE_WELCOME_FRAME_LENGTH} until WELCOME")
    if error is None:
        raise Violation("CP-FRAME-3", "the server closed the connection after a length field "
                        f"of {over} before WELCOME without ERROR FRAME_TOO_LARGE", "closed")
    expect_error_code(ctx, error, ErrorCode.FRAME_TOO_LARGE, "CP-FRAME-3",
                      f"a length field of {over} before WELCOME")


@server_case("CP-FRAME-4")
async def frame_of_exactly_4096_read_before_welcome(ctx: ServerContext) -> None:
    """Before WELCOME a HELLO of length 4096 (padded) is read, not refused as too large."""
    limit = PRE_WELCOME_FRAME_LENGTH
    peer = await ctx.connect("raw")
    body = hello_body(ctx.nick("alice"))
    padded = body + bytes(limit - MIN_FRAME_LENGTH - len(body))
    await peer.send_raw(frame_bytes(Hello.TYPE, 9, padded),
                        note=f"HELLO with trailing zero bytes, length field {limit}")

    def answered(m: Message) -> bool:
        too_large = isinstance(m, Error) and m.code == ErrorCode.FRAME_TOO_LARGE
        return too_large or (m.request_id == 9 and m.NAME in FINAL_TYPES)
    final = await peer.expect(answered, req="CP-REQ-4",
                              what=f"the answer to the {limit}-byte HELLO")
    ctx.check(not (isinstance(final, Error) and final.code == ErrorCode.FRAME_TOO_LARGE),
              "CP-FRAME-4", f"a frame of length {limit} before WELCOME was refused with "
              f"FRAME_TOO_LARGE; the limit before WELCOME is {limit}, inclusive")


@server_case("CP-FRAME-4")
async def frames_up_to_max_frame_size_read_after_welcome(ctx: ServerContext) -> None:
    """After WELCOME the largest legal SEND_ROOM and a frame of exactly max_frame_size are read."""
    alice = await ctx.client("alice")
    await alice.barrier()  # the PING probe below works at all (else CP-KEEP-1 fails here)
    welcome = alice.welcome
    assert welcome is not None
    room = ctx.room("big")
    room = (room + secrets.token_hex(32))[:welcome.max_room_name_length]
    await alice.join(room)
    largest = unchecked(SendRoom, alice.next_id(), room=room,
                        text="L" * welcome.max_message_length)
    exact_text = welcome.max_frame_size - SEND_ROOM_OVERHEAD - len(room)
    exact = unchecked(SendRoom, alice.next_id(), room=room, text="x" * exact_text)
    for message, what in ((largest, "the largest legal SEND_ROOM"),
                          (exact, f"a SEND_ROOM of length {welcome.max_frame_size}")):
        await alice.send(message)
        final = await answer_to(alice, message.request_id, "SEND_ROOM", "CP-REQ-4")
        # Any answer but these shows the frame was read whole, as the SEND_ROOM it is.
        misread = (ErrorCode.FRAME_TOO_LARGE, ErrorCode.MALFORMED_FRAME,
                   ErrorCode.MALFORMED_MESSAGE)
        ctx.check(not (isinstance(final, Error) and final.code in misread), "CP-FRAME-4",
                  f"{what} (length {len(encode(message)) - 4}) was answered with "
                  f"{outcome(final)} although max_frame_size is {welcome.max_frame_size}")
        await still_served(alice, "CP-FRAME-4")


@server_case("CP-FRAME-7")
async def length_below_six_is_malformed_frame(ctx: ServerContext) -> None:
    """Length fields 0 and 5 after WELCOME, and 2 before HELLO, get MALFORMED_FRAME."""
    for length, welcomed in ((0, True), (5, True), (2, False)):
        peer = await ctx.client("alice") if welcomed else await ctx.connect("raw")
        await peer.send_raw(length_field(length) + secrets.token_bytes(length),
                            note=f"length field {length} and the {length} bytes it announces")
        error = await _header_error(peer, "CP-FRAME-7")
        state = "after WELCOME" if welcomed else "before HELLO"
        expect_error_code(ctx, error, ErrorCode.MALFORMED_FRAME, "CP-FRAME-7",
                          f"a length field of {length} {state}")


# ------------------------------------------------------------------ end of stream


@server_case("CP-FRAME-11", "CP-CLOSE-9", "CP-ERR-7")
async def eof_inside_a_frame_ends_the_connection_abnormally(ctx: ServerContext) -> None:
    """EOF after half a frame ends the session: others see DISCONNECT; no TRUNCATED_FRAME sent."""
    room = ctx.room("cut")
    alice, bob, carol = await room_with(ctx, room, "alice", "bob", "carol")
    frame = encode(SendRoom(request_id=bob.next_id(), room=room, text="never finished"))
    await bob.send_raw(frame[:len(frame) // 2], note="the first half of a SEND_ROOM")
    bob.shutdown_write()
    left = await maybe(alice.expect_type(MemberLeft, req="CP-CLOSE-9",
                                         where=lambda m: m.nick == bob.nick))
    if left is None:
        # Nothing for bob: is that the cut frame (CP-FRAME-11), or does no connection that
        # ends without QUIT get its MEMBER_LEFT (CP-CLOSE-9)? A plain close tells them apart.
        await carol.close()
        plain = await maybe(alice.expect_type(MemberLeft, req="CP-CLOSE-9",
                                              where=lambda m: m.nick == carol.nick))
        if plain is None:
            raise Violation("CP-CLOSE-9", "alice received no MEMBER_LEFT for bob, whose "
                            "connection ended with EOF inside a frame, nor for carol, who closed "
                            "hers between frames; both ended without QUIT", "timeout")
        raise Violation("CP-FRAME-11", "alice received MEMBER_LEFT for carol, who closed her "
                        "connection between frames, but none for bob, whose connection ended "
                        "with EOF inside a frame: that EOF must end the connection too")
    ctx.check(left.kind != LeaveKind.QUIT, "CP-FRAME-11",
              f"alice received {describe(left)}: bob's connection ended with EOF inside a "
              "frame, which ends it abnormally, not as a QUIT")
    ctx.check(left.kind == LeaveKind.DISCONNECT, "CP-CLOSE-9",
              f"alice received {describe(left)}; a connection that ended without QUIT is "
              "reported with kind DISCONNECT (4)")
    with ctx.attribute("CP-FRAME-11"):
        await bob.expect_closed(req="CP-FRAME-11")
    truncated = [r.message for r in bob.received if isinstance(r.message, Error)
                 and r.message.code == ErrorCode.TRUNCATED_FRAME]
    ctx.check(not truncated, "CP-ERR-7",
              "the server sent ERROR TRUNCATED_FRAME (107), a code that never goes on the wire")


# ------------------------------------------------------------------ malformed bodies


async def _malformed(ctx: ServerContext, what: str, build: str) -> None:
    """Send a broken JOIN (``build`` names how) then a PING in one write; check CP-FRAME-9."""
    room = ctx.room("body")
    (carol,) = await room_with(ctx, room, "carol")
    alice = await ctx.client("alice")
    await alice.barrier()  # PING is answered at all (else CP-KEEP-1 fails here)
    good = Join(request_id=alice.next_id(), room=room)
    body = encode(good)[HEADER_SIZE:]
    if build == "short":
        body = body[:-4]
    elif build == "trailing":
        body = body + b"\x00"
    elif build == "bool":
        body = str8(room) + u8(2) + u64(0)
    elif build == "empty":
        body = b""
    bad = frame_bytes(Join.TYPE, good.request_id, body)
    ping = Ping(request_id=alice.next_id(), token=b"after")
    await alice.send_raw(bad + encode(ping), note=f"JOIN with {what}, then PING, in one write")
    final = await answer_to(alice, good.request_id, "JOIN", "CP-FRAME-9")
    expect_error_code(ctx, final, ErrorCode.MALFORMED_MESSAGE, "CP-FRAME-9", f"a JOIN with {what}")
    pong = await answer_to(alice, ping.request_id, "PING", "CP-FRAME-9")
    ctx.check(pong.NAME == "PONG", "CP-FRAME-9",
              f"the PING after the malformed JOIN was answered with {describe(pong)}")
    await carol.assert_none(MemberJoined, req="CP-FRAME-9",
                            why="the malformed JOIN must be discarded, not performed")
    await alice.ok(Join(room=room), req="CP-FRAME-9")


@server_case("CP-FRAME-9")
async def body_too_short_is_malformed_message(ctx: ServerContext) -> None:
    """A JOIN whose body stops inside its last field gets MALFORMED_MESSAGE; the next is served."""
    await _malformed(ctx, "a body 4 bytes too short", "short")


@server_case("CP-FRAME-9")
async def trailing_bytes_are_malformed_message(ctx: ServerContext) -> None:
    """A JOIN with a byte after its last field gets MALFORMED_MESSAGE and is not performed."""
    await _malformed(ctx, "one byte after the last field", "trailing")


@server_case("CP-FRAME-9")
async def bool_other_than_0_or_1_is_malformed_message(ctx: ServerContext) -> None:
    """A JOIN whose bool resume is 2 gets MALFORMED_MESSAGE and is not performed."""
    await _malformed(ctx, "resume = 2", "bool")


@server_case("CP-FRAME-9")
async def empty_body_is_malformed_message(ctx: ServerContext) -> None:
    """A JOIN with no body at all gets MALFORMED_MESSAGE; the next frame is served."""
    await _malformed(ctx, "an empty body", "empty")


@server_case("CP-FRAME-9")
async def string_length_past_the_frame_is_malformed_message(ctx: ServerContext) -> None:
    """A PING whose token length runs past the frame's end gets MALFORMED_MESSAGE, not a PONG."""
    alice = await ctx.client("alice")
    await alice.barrier()  # PING is answered at all (else CP-KEEP-1 fails here)
    await alice.send_raw(frame_bytes(Ping.TYPE, 31, u8(9) + b"abc")
                         + frame_bytes(ListRooms.TYPE, 32, b"\x00")
                         + encode(Ping(request_id=33, token=b"ok")),
                         note="PING with token length 9 but 3 bytes; LIST_ROOMS with a stray "
                              "byte; PING")
    for request_id, what in ((31, "a PING whose token is cut short"),
                             (32, "a LIST_ROOMS with a body byte it does not have")):
        final = await answer_to(alice, request_id, "request", "CP-FRAME-9")
        expect_error_code(ctx, final, ErrorCode.MALFORMED_MESSAGE, "CP-FRAME-9", what)
    pong = await answer_to(alice, 33, "PING", "CP-FRAME-9")
    ctx.check(pong.NAME == "PONG", "CP-FRAME-9",
              f"the PING after two malformed frames was answered with {describe(pong)}")


# ------------------------------------------------------------------ fields


@server_case("CP-FIELD-2")
async def invalid_utf8_in_message_text_is_refused(ctx: ServerContext) -> None:
    """SEND_ROOM texts: overlong forms, surrogates, code points over U+10FFFF: INVALID_UTF8."""
    room = ctx.room("utf8")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    for what, text in BAD_UTF8.items():
        request_id = alice.next_id()
        await alice.send_raw(frame_bytes(SendRoom.TYPE, request_id,
                                         str8(room) + u64(0) + str16(text)),
                             note=f"SEND_ROOM whose text has {what}", pace=SendRoom(
                                 room=room, text="x"))
        final = await answer_to(alice, request_id, "SEND_ROOM", "CP-FIELD-2")
        expect_error_code(ctx, final, ErrorCode.INVALID_UTF8, "CP-FIELD-2",
                          f"a SEND_ROOM whose text has {what}")
    await bob.assert_none(RoomMessage, req="CP-FIELD-2",
                          why="a SEND_ROOM refused for bad UTF-8 is not performed")


@server_case("CP-FIELD-2")
async def invalid_utf8_in_other_text_fields_is_refused(ctx: ServerContext) -> None:
    """Bad UTF-8 in a PART reason, an AWAY message and a SET_TOPIC topic gets INVALID_UTF8."""
    room = ctx.room("utf8s")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    bad = BAD_UTF8["encoded high surrogate U+D800 (ED A0 80)"]
    cases: list[tuple[Message, bytes, str]] = [
        (Part(room=room), str8(room) + str8(bad), "a PART whose reason"),
        (Away(message="x"), str8(bad), "an AWAY whose message"),
        (SetTopic(room=room, topic="x"), str8(room) + str16(bad), "a SET_TOPIC whose topic"),
    ]
    for template, body, what in cases:
        request_id = alice.next_id()
        await alice.send_raw(frame_bytes(template.TYPE, request_id, body),
                             note=f"{what} is not UTF-8", pace=template)
        final = await answer_to(alice, request_id, template.NAME, "CP-FIELD-2")
        expect_error_code(ctx, final, ErrorCode.INVALID_UTF8, "CP-FIELD-2",
                          f"{what} is not UTF-8")
    await bob.assert_none((MemberLeft, Presence, TopicChanged), req="CP-FIELD-2",
                          why="requests refused for bad UTF-8 are not performed")
    await alice.say(room, "still a member")


@server_case("CP-FIELD-2")
async def invalid_utf8_password_in_hello_is_refused(ctx: ServerContext) -> None:
    """A HELLO whose password is not UTF-8 gets INVALID_UTF8 and the nick stays free."""
    peer = await ctx.connect("raw")
    nick = ctx.nick("alice")
    await peer.send_raw(frame_bytes(Hello.TYPE, 1, hello_body(
                            nick, password=BAD_UTF8["overlong '/' (C0 AF)"])),
                        note="HELLO whose password is not UTF-8")
    final = await answer_to(peer, 1, "HELLO", "CP-FIELD-2")
    expect_error_code(ctx, final, ErrorCode.INVALID_UTF8, "CP-FIELD-2",
                      "a HELLO whose password is not UTF-8")
    other = await ctx.connect("other")
    await other.hello(nick, req="CP-FIELD-2")


@server_case("CP-FIELD-3")
async def hello_fields_breaking_their_constraints_are_invalid_field(ctx: ServerContext) -> None:
    """HELLOs with version 0, a bad client_name, bad capabilities, NUL password: INVALID_FIELD."""
    nick = ctx.nick("alice")
    variants: list[tuple[str, bytes]] = [
        ("min_version 0", hello_body(nick, versions=(0, 1))),
        ("an empty client_name", hello_body(nick, client_name=b"")),
        ("a client_name with a non-ASCII character", hello_body(nick, client_name="kit\u00e9")),
        ("a client_name with a control character", hello_body(nick, client_name="kit\x07")),
        ("a capability with an upper-case letter",
         hello_body(nick, capabilities=("Example.org/x",))),
        ("a capability of 65 bytes", hello_body(nick, capabilities=("c" * 65,))),
        ("an empty capability", hello_body(nick, capabilities=("",))),
        ("33 capabilities",
         hello_body(nick, capabilities=tuple(f"kit-cap-{i}" for i in range(33)))),
        ("a password with NUL", hello_body(nick, password="pass\x00word")),
    ]
    for what, body in variants:
        peer = await ctx.connect("raw")
        await peer.send_raw(frame_bytes(Hello.TYPE, 1, body), note=f"HELLO with {what}")
        final = await answer_to(peer, 1, "HELLO", "CP-FIELD-3")
        expect_error_code(ctx, final, ErrorCode.INVALID_FIELD, "CP-FIELD-3",
                          f"a HELLO with {what}")
    # None of them was performed: the nick is still free.
    other = await ctx.connect("other")
    await other.hello(nick, req="CP-FIELD-3")


@server_case("CP-FIELD-3")
async def request_fields_breaking_their_constraints_are_invalid_field(ctx: ServerContext) -> None:
    """An empty message text, an empty operator name, a LOGIN password with NUL: INVALID_FIELD."""
    room = ctx.room("field")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    variants: list[tuple[Message, str]] = [
        (unchecked(SendRoom, alice.next_id(), room=room, text=""), "a SEND_ROOM with empty text"),
        (unchecked(Oper, alice.next_id(), name="", password="x"), "an OPER with an empty name"),
        (unchecked(Login, alice.next_id(), nick=alice.nick, password="a\x00b"),
         "a LOGIN whose password holds NUL"),
    ]
    for message, what in variants:
        await alice.send(message)
        final = await answer_to(alice, message.request_id, message.NAME, "CP-FIELD-3")
        expect_error_code(ctx, final, ErrorCode.INVALID_FIELD, "CP-FIELD-3", what)
    await bob.assert_none(RoomMessage, req="CP-FIELD-3",
                          why="a SEND_ROOM refused with INVALID_FIELD is not performed")


UNSAFE = {
    "ESC": "red \x1b[31m alert",
    "CR": "over\rwrite",
    "NUL": "nul\x00byte",
    "BEL": "ding\x07",
    "DEL": "del\x7f",
    "C1 NEL (U+0085)": "next\u0085line",
    "C1 CSI (U+009B)": "csi\u009b2J",
}
"""Texts that are well-formed UTF-8 but not safe text."""


@server_case("CP-FIELD-5")
async def unsafe_message_text_is_invalid_field(ctx: ServerContext) -> None:
    """SEND_ROOM texts with ESC, CR, NUL, BEL, DEL or C1 controls get INVALID_FIELD, unsent."""
    room = ctx.room("safe")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    for what, text in UNSAFE.items():
        message = unchecked(SendRoom, alice.next_id(), room=room, text=text)
        await alice.send(message)
        final = await answer_to(alice, message.request_id, "SEND_ROOM", "CP-FIELD-5")
        expect_error_code(ctx, final, ErrorCode.INVALID_FIELD, "CP-FIELD-5",
                          f"a SEND_ROOM whose text holds {what}")
    await bob.assert_none(RoomMessage, req="CP-FIELD-5",
                          why="a message that is not safe text is refused, not delivered")


@server_case("CP-FIELD-5")
async def unsafe_topic_and_reasons_are_invalid_field(ctx: ServerContext) -> None:
    """A topic, a PART reason and an AWAY message with control characters get INVALID_FIELD."""
    room = ctx.room("safe2")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    variants: list[tuple[Message, str]] = [
        (unchecked(SetTopic, alice.next_id(), room=room, topic="topic \x1b]0;owned\x07"),
         "a SET_TOPIC whose topic holds ESC and BEL"),
        (unchecked(Part, alice.next_id(), room=room, reason="bye\rforged line"),
         "a PART whose reason holds CR"),
        (unchecked(Away, alice.next_id(), message="away \u009b31m"),
         "an AWAY whose message holds C1 U+009B"),
    ]
    for message, what in variants:
        await alice.send(message)
        final = await answer_to(alice, message.request_id, message.NAME, "CP-FIELD-5")
        expect_error_code(ctx, final, ErrorCode.INVALID_FIELD, "CP-FIELD-5", what)
    await bob.assert_none((TopicChanged, MemberLeft, Presence), req="CP-FIELD-5",
                          why="requests refused for unsafe text are not performed")
    await alice.say(room, "still here")

