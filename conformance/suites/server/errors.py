"""The ERROR frame: fatal flag, request_id, retry_after_ms, what detail may hold, order of checks.

The sweep cases provoke every error code a client can cause on purpose, then
check every ERROR the kit received on any connection, so that a flag set wrong
for one code shows up whichever request produced it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from chatproto import ERROR_REGISTRY, HEADER_STRUCT, ErrorCode, Message, encode
from chatproto.messages import (
    Away,
    Error,
    Hello,
    Join,
    Kick,
    ListMembers,
    ListRooms,
    MemberJoined,
    MemberLeft,
    MuteChanged,
    Nick,
    NickChanged,
    Oper,
    Part,
    Ping,
    Presence,
    RoomInfo,
    RoomMessage,
    SendPrivate,
    SendRoom,
    SetTopic,
    TopicChanged,
    UserInfo,
)
from conformance.registry import server_case
from conformance.server_side import FINAL_TYPES, Peer, ServerContext
from conformance.suites.server._bodies import BAD_UTF8, hello_body, str8, str16, u8, u64, unchecked
from conformance.suites.server._steps import fit_topic, maybe, room_with
from conformance.transcript import describe, outcome
from conformance.wire import frame_bytes, length_field

RETRY_CODES = {info.code for info in ERROR_REGISTRY.values() if info.retry_after}
"""The only codes whose ERROR may carry a nonzero retry_after_ms (CP-ERR-4)."""
EVENTS = (MemberJoined, MemberLeft, RoomMessage, TopicChanged, NickChanged, Presence,
          MuteChanged)


def errors_received(ctx: ServerContext) -> list[tuple[Peer, Error]]:
    """Every ERROR any connection of this case received, with the connection."""
    return [(peer, frame.message) for peer in ctx.peers for frame in peer.received
            if isinstance(frame.message, Error)]


async def _answer(peer: Peer, data: bytes, request_id: int, note: str,
                  pace: Message | None = None) -> Message | None:
    """Send raw bytes and wait for the final response to ``request_id``, if one comes."""
    if peer.closed:
        return None
    await peer.send_raw(data, note=note, pace=pace)
    answer = await maybe(peer.response(request_id, note))
    return answer.final if answer else None


async def _header_error(ctx: ServerContext, data: bytes, note: str, *,
                        welcomed: bool = True) -> None:
    peer = await ctx.client("hdr") if welcomed else await ctx.connect("hdr")
    await peer.send_raw(data, note=note)
    await maybe(peer.expect_type(Error, req="CP-ERR-1"))


async def provoke_errors(ctx: ServerContext) -> None:
    """Make the server send ERRORs of every code a client can provoke, fatal and not.

    Each wait may come to nothing (a target that answers otherwise is judged by
    the cases of the rule it breaks); the caller inspects what did arrive.
    """
    room = ctx.room("errs")
    (owner,) = await room_with(ctx, room, "owner")
    # Before WELCOME: non-fatal refusals of HELLO, then a fatal one.
    early = await ctx.connect("early")
    hellos = [("HELLO with an invalid nick", hello_body("1nvalid")),
              ("HELLO with a nick in use", hello_body(owner.nick)),
              ("HELLO with a bad capability", hello_body(ctx.nick("e"), capabilities=("A",))),
              ("HELLO with a password that is not UTF-8",
               hello_body(ctx.nick("e"), password=b"\xc0\xaf")),
              ("HELLO with a trailing byte", hello_body(ctx.nick("e")) + b"\x00"),
              ("HELLO with a password for a guest nick", hello_body(ctx.nick("e"), password="pw")),
              ("HELLO offering versions 2..1", hello_body(ctx.nick("e"), versions=(2, 1)))]
    for index, (note, body) in enumerate(hellos, start=1):
        await _answer(early, frame_bytes(Hello.TYPE, index, body), index, note)
    await _answer(await ctx.connect("early"), encode(Hello(
        request_id=0, min_version=1, max_version=1, nick=ctx.nick("e"),
        client_name="kit")), 0, "HELLO with request_id 0")
    # In READY: non-fatal refusals of many kinds.
    alice = await ctx.client("alice")
    assert alice.welcome is not None
    requests: list[Message] = [
        Part(room=ctx.room("nowhere")),
        Part(room=room),
        unchecked(Join, 0, room="no-hash"),
        SendPrivate(nick=ctx.nick("ghost"), text="hello?"),
        unchecked(SendRoom, 0, room=room, text="x" * (alice.welcome.max_message_length + 1)),
        unchecked(SendRoom, 0, room=room, text=""),
        Kick(room=room, nick=owner.nick),
        Oper(name="kit-not-an-operator", password=secrets.token_hex(8)),
        Nick(nick=owner.nick),
    ]
    for message in requests:
        await maybe(alice.request(message))
    await alice.join(room)
    await maybe(alice.request(Join(room=room)))
    await _answer(alice, frame_bytes(SendRoom.TYPE, 901, str8(room) + u64(0)
                                     + str16(BAD_UTF8["byte FF"])), 901,
                  "SEND_ROOM whose text is not UTF-8", pace=SendRoom(room=room, text="x"))
    await _answer(alice, frame_bytes(Join.TYPE, 902, str8(room) + b"\x02" + u64(0)), 902,
                  "JOIN with resume = 2")
    await _answer(alice, frame_bytes(0x7ABC, 903, b"?"), 903, "a frame of undefined type")
    if not alice.closed:
        await alice.send_raw(encode(Ping(request_id=0, token=b"0")), note="PING with request_id 0")
        await maybe(alice.expect_type(Error, req="CP-ERR-1", where=lambda e: e.request_id == 0))
    # Fatal errors, each on a connection of its own.
    await _answer(alice, encode(Hello(request_id=904, min_version=1, max_version=1,
                                      nick=ctx.nick("again"), client_name="kit")), 904,
                  "HELLO in READY")
    await _header_error(ctx, length_field(0xFFFFFF), "length field 2^24-1")
    await _header_error(ctx, length_field(3) + b"abc", "length field 3")
    await _header_error(ctx, encode(ListRooms(request_id=5)), "LIST_ROOMS before HELLO",
                        welcomed=False)


def _final_to(request_id: int) -> Callable[[Message], bool]:
    return lambda m: m.request_id == request_id and m.NAME in FINAL_TYPES


@server_case("CP-ERR-1")
async def fatal_flag_follows_the_registry(ctx: ServerContext) -> None:
    """Over some twenty provoked error codes, every ERROR's fatal flag is the registry's."""
    await provoke_errors(ctx)
    seen = errors_received(ctx)
    if not seen:
        ctx.skip("the server sent no ERROR at all")
    for peer, error in seen:
        code = error.error_code
        if code is None:
            continue
        expected = ERROR_REGISTRY[code].fatal
        ctx.check(error.fatal == expected, "CP-ERR-1",
                  f"{peer.label} received {describe(error)}; the registry gives {code.name} "
                  f"fatal = {int(expected)}")


@server_case("CP-ERR-4")
async def retry_after_ms_is_zero_except_rate_limited_and_shutdown(ctx: ServerContext) -> None:
    """Over some twenty provoked error codes, retry_after_ms is 0 in every ERROR."""
    await provoke_errors(ctx)
    seen = errors_received(ctx)
    if not seen:
        ctx.skip("the server sent no ERROR at all")
    for peer, error in seen:
        if error.code in RETRY_CODES:
            continue
        ctx.check(error.retry_after_ms == 0, "CP-ERR-4",
                  f"{peer.label} received {describe(error)}; retry_after_ms is 0 in every "
                  "ERROR but RATE_LIMITED and SERVER_SHUTDOWN")


@server_case("CP-ERR-7")
async def truncated_frame_code_never_on_the_wire(ctx: ServerContext) -> None:
    """Over some twenty provoked errors and a frame cut by EOF, no ERROR carries code 107."""
    await provoke_errors(ctx)
    cut = await ctx.client("cut")
    frame = encode(SendRoom(request_id=cut.next_id(), room=ctx.room("cut"), text="cut short"))
    await cut.send_raw(frame[:9], note="the first 9 bytes of a SEND_ROOM")
    cut.shutdown_write()
    await maybe(cut.expect_closed(req="CP-FRAME-11"))
    for peer, error in errors_received(ctx):
        ctx.check(error.code != ErrorCode.TRUNCATED_FRAME, "CP-ERR-7",
                  f"{peer.label} received {describe(error)}; code 107 is local only")


@server_case("CP-ERR-2")
async def refusal_carries_the_request_id(ctx: ServerContext) -> None:
    """ERRORs refusing requests carry their request_ids, including 1, 2^31 and 2^32-1."""
    refused: list[tuple[int, bytes, str, Message | None, str]] = [
        (0xFFFFFFFF, encode(Part(request_id=0xFFFFFFFF, room=ctx.room("nowhere"))),
         "PART of a room that does not exist", Part(room="#x"), "CP-ROOM-7"),
        (0x80000000, encode(unchecked(Join, 0x80000000, room="bad room")),
         "JOIN of an invalid room name", Join(room="#x"), "CP-ROOM-1"),
        (0x00010001, frame_bytes(Join.TYPE, 0x00010001, b"\x05#ab"),
         "JOIN with a body cut short", None, "CP-FRAME-9"),
        (0x7FFFFFFF, frame_bytes(0x0406, 0x7FFFFFFF, b""), "a frame of undefined type", None,
         "CP-EXT-2"),
        (1, encode(SendPrivate(request_id=1, nick=ctx.nick("ghost"), text="hi")),
         "SEND_PRIVATE to nobody", SendPrivate(nick="x", text="x"), "CP-MSG-5"),
    ]
    for request_id, data, what, pace, rule in refused:
        # A connection each, so that how one refusal ends cannot touch the next.
        alice = await ctx.client("alice")
        await alice.send_raw(data, note=f"{what} (request {request_id})", pace=pace)

        def answers(m: Message, rid: int = request_id) -> bool:
            return isinstance(m, Error) or (m.request_id == rid and m.NAME in FINAL_TYPES)
        final = await alice.expect(answers, req=rule, what=f"the answer to {what}")
        if not isinstance(final, Error):
            continue  # not refused: other cases judge that
        ctx.check(final.request_id == request_id, "CP-ERR-2",
                  f"{what} (request {request_id}) was refused with {describe(final)}, which "
                  f"carries request_id {final.request_id}")


@server_case("CP-ERR-3")
async def header_errors_carry_request_id_zero(ctx: ServerContext) -> None:
    """FRAME_TOO_LARGE and MALFORMED_FRAME, after requests with other ids, carry request_id 0."""
    for data, what, rule in ((length_field((0x7FFFFFFF)), "a length field of 2^31-1",
                              "CP-FRAME-3"),
                             (length_field(1) + b"\x00", "a length field of 1",
                              "CP-FRAME-7")):
        peer = await ctx.client("alice")
        await peer.send(Ping(request_id=4444, token=b"before"), pace=False)
        await peer.response(4444, "PING", req="CP-KEEP-1")
        await peer.send_raw(data, note=what)
        error = await peer.expect_type(Error, req=rule)
        ctx.check(error.request_id == 0, "CP-ERR-3",
                  f"the ERROR answering {what} was {describe(error)}; an ERROR about a frame "
                  "header carries request_id 0")


@server_case("CP-ERR-5")
async def refused_requests_change_nothing_and_cause_no_event(ctx: ServerContext) -> None:
    """Nine refused requests in a room: no event reaches others; nick, away and topic stay."""
    room = ctx.room("nochange")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    original = fit_topic(alice, "original")
    await alice.ok(SetTopic(room=room, topic=original), req="CP-ROOM-15")
    await bob.expect_type(TopicChanged, req="CP-ROOM-15")
    assert alice.welcome is not None
    limits = alice.welcome
    attempts: list[Message] = [
        unchecked(SetTopic, 0, room=room, topic="t" * (limits.max_topic_length + 1)),
        unchecked(SetTopic, 0, room=room, topic="unsafe\x1b[2J"),
        Nick(nick=bob.nick),
        Join(room=room),
        Part(room=ctx.room("notmine")),
        unchecked(SendRoom, 0, room=room, text="m" * (limits.max_message_length + 1)),
        unchecked(SendRoom, 0, room=room, text="bell\x07"),
        unchecked(Away, 0, message="away\x1b"),
        Kick(room=room, nick=bob.nick, reason="no rights"),
    ]
    accepted = []
    for message in attempts:
        answer = await alice.request(message)
        if not isinstance(answer.final, Error):
            accepted.append(describe(message))
    if accepted:
        ctx.skip(f"the server accepted requests the spec refuses: {accepted}")
    await bob.assert_none(EVENTS, req="CP-ERR-5",
                          why="a refused request sends no event")
    members = (await bob.ok(ListMembers(room=room), req="CP-ROOM-18")).of_type(UserInfo)
    mine = [m for m in members if m.nick == alice.nick]
    ctx.check(len(mine) == 1 and not mine[0].away, "CP-ERR-5",
              f"after refused NICK and AWAY requests LIST_MEMBERS shows "
              f"{[describe(m) for m in members]}; alice keeps her nick and is not away")
    carol = await ctx.client("carol")
    infos = (await carol.join(room)).of_type(RoomInfo)
    topic = [i.topic for i in infos]
    ctx.check(topic == [original], "CP-ERR-5",
              f"after refused SET_TOPICs the room's topic is {topic}, not {[original]}")


@server_case("CP-ERR-6")
async def error_detail_holds_no_password_or_message_text(ctx: ServerContext) -> None:
    """Refused logins, OPERs and messages: no ERROR detail quotes the password or the text."""
    password = "pw-" + secrets.token_hex(10)
    text = "txt-" + secrets.token_hex(10)
    secrets_sent = (password, text)
    guest = await ctx.connect("guest")
    await _answer(guest, frame_bytes(Hello.TYPE, 1, hello_body(ctx.nick("g"), password=password)),
                  1, "HELLO with a password for a nick without an account")
    room = ctx.room("secret")
    alice, _ = await room_with(ctx, room, "alice", "bob")
    assert alice.welcome is not None
    attempts: list[Message] = [
        Oper(name="kit-nobody", password=password),
        unchecked(Oper, 0, name="kit-nobody", password=password + "\x00"),
        SendPrivate(nick=ctx.nick("ghost"), text=text),
        SendRoom(room=ctx.room("notjoined"), text=text),
        unchecked(SendRoom, 0, room=room, text=text + "x" * alice.welcome.max_message_length),
        unchecked(SendRoom, 0, room=room, text=text + "\x1b[0m"),
        unchecked(SendRoom, 0, room="no-hash", text=text),
    ]
    for message in attempts:
        await maybe(alice.request(message))
    for peer, error in errors_received(ctx):
        leaked = [s for s in secrets_sent if s[-12:] in error.detail]
        ctx.check(not leaked, "CP-ERR-6",
                  f"{peer.label} received {describe(error)}, whose detail quotes a password or "
                  "message text the kit sent")


@server_case("CP-ERR-10")
async def frame_with_several_faults_reports_the_first_in_order(ctx: ServerContext) -> None:
    """Frames with two faults each get the error of the earlier check in the spec's order."""
    probe = await ctx.client("probe")
    assert probe.welcome is not None
    too_long = "x" * (probe.welcome.max_message_length + 1)
    # (welcomed first?, frame, the error of the earlier check, what the two faults are)
    frames: list[tuple[bool, bytes, ErrorCode, str, Message | None]] = [
        (True, frame_bytes(0x7ABC, 0, b""), ErrorCode.UNKNOWN_TYPE,
         "undefined type with request_id 0 (type before request id)", None),
        (True, encode(unchecked(Join, 0, room="bad room")), ErrorCode.INVALID_REQUEST_ID,
         "JOIN of an invalid room name with request_id 0 (request id before fields)", None),
        (True, frame_bytes(SendRoom.TYPE, 71, str8(b"#\xff") + u64(0)), ErrorCode.INVALID_UTF8,
         "SEND_ROOM whose room is not UTF-8 and whose body is cut short (fields in order)", None),
        (True, encode(unchecked(SendRoom, 72, room="no-hash", text=too_long)),
         ErrorCode.INVALID_ROOM_NAME, "SEND_ROOM to an invalid room name with a text over "
         "max_message_length (constraints before limits)", SendRoom(room="#x", text="x")),
        (True, encode(unchecked(SendRoom, 73, room=ctx.room("notin"), text="esc\x1b")),
         ErrorCode.INVALID_FIELD, "SEND_ROOM of unsafe text to a room that does not exist "
         "(constraints before conditions)", SendRoom(room="#x", text="x")),
        (True, encode(unchecked(SetTopic, 74, room=ctx.room("none"),
                                topic="t" * (probe.welcome.max_topic_length + 1))),
         ErrorCode.INVALID_FIELD, "SET_TOPIC over max_topic_length for a room that does not "
         "exist (limits before conditions)", SetTopic(room="#x", topic="")),
        (True, encode(Kick(request_id=75, room=ctx.room("none"), nick=probe.nick)),
         ErrorCode.NOT_OPERATOR, "KICK by a non-operator in a room that does not exist "
         "(operator status before conditions)", Kick(room="#x", nick="x")),
        (False, frame_bytes(Hello.TYPE, 76, hello_body("9bad", versions=(200, 255))),
         ErrorCode.INVALID_NICK, "HELLO with an invalid nick and no common version (fields "
         "before version)", None),
        (False, frame_bytes(Join.TYPE, 77, b"\x09#ab"), ErrorCode.STATE_VIOLATION,
         "JOIN before HELLO with a body cut short (state before body)", None),
    ]
    for welcomed, data, expected, what, pace in frames:
        # A connection each: a fatal answer or a close ends only that one.
        peer = await ctx.client("alice") if welcomed else await ctx.connect("early")
        _, _, request_id = HEADER_STRUCT.unpack_from(data)
        await peer.send_raw(data, note=what, pace=pace)
        answer = await maybe(peer.expect(_final_to(request_id), req="CP-REQ-4",
                                         what=f"the answer to {what}"))
        if answer is None:
            continue  # no answer at all is judged by the rules that require one
        ctx.check(isinstance(answer, Error) and answer.code == expected, "CP-ERR-10",
                  f"{what}: answered {outcome(answer)}, expected {expected.name}")


@server_case("CP-ERR-11")
async def client_error_cut_short_is_malformed_then_the_connection_closes(
        ctx: ServerContext) -> None:
    """A client ERROR whose body ends after its fatal octet, before HELLO and in READY:
    MALFORMED_MESSAGE with fatal 0 and request_id 0 (the header allowed it: not a
    STATE_VIOLATION), then the server closes the connection."""
    cut_short = frame_bytes(Error.TYPE, 0, int(ErrorCode.STATE_VIOLATION).to_bytes(2, "big")
                            + u8(1))
    for where in ("before HELLO", "in READY"):
        peer = await ctx.connect("leaver") if where == "before HELLO" else \
            await ctx.client("leaver")
        what = f"a client ERROR cut short after its fatal octet, {where}"
        await peer.send_raw(cut_short, note=what)
        error = await peer.expect_type(Error, req="CP-ERR-11")
        ctx.check(error.code == ErrorCode.MALFORMED_MESSAGE, "CP-ERR-11",
                  f"{what} was answered with {outcome(error)}; whether a frame is allowed is "
                  "decided from the header, which allows a client ERROR, so the body that does "
                  "not parse is MALFORMED_MESSAGE")
        ctx.check(not error.fatal and error.request_id == 0, "CP-ERR-11",
                  f"{what} was answered with {describe(error)}; the answer has fatal 0 (as the "
                  "registry gives MALFORMED_MESSAGE) and request_id 0")
        await peer.expect_closed(req="CP-ERR-11")
