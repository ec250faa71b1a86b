"""The state table from the server's side: what a client may send when, and unknown types."""

from __future__ import annotations

import secrets

from chatproto import ErrorCode, Message, encode
from chatproto.messages import (
    Away,
    Bye,
    Error,
    Hello,
    HistoryGap,
    Join,
    ListMembers,
    ListRooms,
    MemberJoined,
    MemberLeft,
    Nick,
    Notice,
    Ok,
    Ping,
    Pong,
    RoomMessage,
    SendPrivate,
    SendRoom,
    SetTopic,
    UserInfo,
    Welcome,
)
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import KIT_CLIENT_NAME, Peer, ServerContext
from conformance.suites.server._bodies import hello_body
from conformance.suites.server._steps import fit_topic, ping_works, room_with
from conformance.transcript import describe, outcome
from conformance.wire import frame_bytes

UNASSIGNED_TYPES = (0x000A, 0x010A, 0x020C, 0x0305, 0x0406, 0x7ABC)
"""Type codes in the assigned range that version 1 leaves undefined."""
EXTENSION_TYPES = (0x8000, 0x8001, 0xFFFF)


def _hello(request_id: int, nick: str) -> bytes:
    return encode(Hello(request_id=request_id, min_version=1, max_version=1, nick=nick,
                        client_name=KIT_CLIENT_NAME))


async def _state_violation(ctx: ServerContext, peer: Peer, what: str, req: str) -> None:
    """The next ERROR on ``peer`` is STATE_VIOLATION (whatever request_id it carries)."""
    error = await peer.expect_type(Error, req=req)
    ctx.check(error.code == ErrorCode.STATE_VIOLATION, req,
              f"{what} was answered with {outcome(error)}; the spec requires ERROR "
              "STATE_VIOLATION")


def _server_only(nick: str, room: str) -> list[Message]:
    """One valid message of each kind only servers send, with nonzero request_ids."""
    return [
        Welcome(request_id=7, version=1, server_name="kit", nick=nick, logged_in=False,
                casemapping="ascii"),
        Ok(request_id=7),
        Bye(request_id=7, reason="bye"),
        Notice(request_id=7, text="notice from a client"),
        RoomMessage(request_id=7, room=room, seq=1, msg_id=1, timestamp_ms=1, sender=nick,
                    text="forged"),
        MemberJoined(request_id=7, room=room, nick=nick),
        MemberLeft(request_id=7, room=room, nick=nick, kind=0),
        UserInfo(request_id=7, nick=nick, away=False, operator=False, registered=False),
        HistoryGap(request_id=7, room=room, first_seq=1, last_seq=2),
    ]


@server_case("CP-STATE-2")
async def server_only_messages_from_a_client_are_state_violation(ctx: ServerContext) -> None:
    """WELCOME, OK, BYE, NOTICE, ROOM_MESSAGE and other server messages from a client: violation."""
    room = ctx.room("forge")
    for message in _server_only(ctx.nick("forger"), room):
        peer = await ctx.client("alice")
        await peer.send_raw(encode(message), note=f"a client sends {describe(message)}")
        await _state_violation(ctx, peer, f"{message.NAME} from a client in READY",
                               "CP-STATE-2")


@server_case("CP-STATE-2")
async def hello_in_ready_is_state_violation(ctx: ServerContext) -> None:
    """A second HELLO after WELCOME gets STATE_VIOLATION."""
    peer = await ctx.client("alice")
    await peer.send_raw(_hello(50, ctx.nick("again")), note="HELLO in READY")
    await _state_violation(ctx, peer, "a HELLO in READY", "CP-STATE-2")


@server_case("CP-STATE-2")
async def non_fatal_error_from_a_client_is_state_violation(ctx: ServerContext) -> None:
    """A client's ERROR with fatal 0 (clients send only fatal ones) gets STATE_VIOLATION."""
    peer = await ctx.client("alice")
    await peer.send_raw(encode(Error(request_id=0, code=int(ErrorCode.INTERNAL_ERROR),
                                     fatal=False, detail="not fatal")),
                        note="a client sends a non-fatal ERROR in READY")
    await _state_violation(ctx, peer, "a non-fatal ERROR from a client in READY", "CP-STATE-2")


@server_case("CP-STATE-3")
async def frames_other_than_hello_or_quit_before_hello_are_state_violation(
        ctx: ServerContext) -> None:
    """Before HELLO, JOIN, PING, PONG, OK, undefined types and others get STATE_VIOLATION."""
    room = ctx.room("early")
    nick = ctx.nick("early")
    frames: list[tuple[bytes, str]] = [
        (encode(Join(request_id=3, room=room)), "JOIN"),
        (encode(Ping(request_id=3, token=b"early")), "PING"),
        (encode(Pong(request_id=0, token=b"early")), "PONG"),
        (encode(ListRooms(request_id=3)), "LIST_ROOMS"),
        (encode(SendPrivate(request_id=3, nick=nick, text="hi")), "SEND_PRIVATE"),
        (encode(Ok(request_id=3)), "OK"),
        (encode(Error(request_id=0, code=int(ErrorCode.INTERNAL_ERROR), fatal=False)),
         "a non-fatal ERROR"),
        (frame_bytes(0x0000, 3), "type 0x0000"),
        (frame_bytes(0x000A, 3, b"\x01"), "undefined type 0x000A"),
        (frame_bytes(0x8001, 3, b"ext"), "extension type 0x8001"),
    ]
    for data, what in frames:
        peer = await ctx.connect("raw")
        await peer.send_raw(data, note=f"{what} before HELLO")
        await _state_violation(ctx, peer, f"{what} before HELLO", "CP-STATE-3")


@server_case("CP-STATE-3")
async def after_a_refused_hello_only_hello_is_allowed(ctx: ServerContext) -> None:
    """After a non-fatal ERROR to HELLO the state is AWAIT_HELLO again: JOIN is a violation."""
    peer = await ctx.connect("alice")
    await peer.send_raw(frame_bytes(Hello.TYPE, 1, hello_body("9" + ctx.nick("bad"))),
                        note="HELLO with an invalid nick")
    final = (await peer.response(1, "HELLO", req="CP-NICK-1")).final
    if not isinstance(final, Error) or final.fatal:
        ctx.skip(f"the HELLO with an invalid nick was answered with {outcome(final)}, not a "
                 "non-fatal ERROR")
    await peer.send_raw(encode(Join(request_id=2, room=ctx.room("early"))),
                        note="JOIN in AWAIT_HELLO")
    try:
        await _state_violation(ctx, peer, "a JOIN after a refused HELLO", "CP-STATE-3")
    except Violation as exc:
        if exc.kind != "closed":
            raise
        # Closing after a non-fatal refusal breaks CP-HS-3, which its own case judges.
        ctx.skip("the server closed the connection after the refused HELLO")


@server_case("CP-STATE-4")
async def hello_and_requests_in_one_write_all_served(ctx: ServerContext) -> None:
    """HELLO, JOIN and PING written together: WELCOME, then the JOIN and PING served in READY."""
    await ping_works(ctx)
    peer = await ctx.connect("alice")
    room = ctx.room("pipe")
    await peer.send_raw(_hello(1, ctx.nick("alice")) + encode(Join(request_id=2, room=room))
                        + encode(Ping(request_id=3, token=b"p")),
                        note="HELLO, JOIN and PING in one write")
    welcome = (await peer.response(1, "HELLO", req="CP-ACCT-5")).final
    if not isinstance(welcome, Welcome):
        ctx.skip(f"the HELLO was answered with {outcome(welcome)}, not WELCOME")
    for request_id, name in ((2, "JOIN"), (3, "PING")):
        final = (await peer.response(request_id, name, req="CP-STATE-4")).final
        ctx.check(not isinstance(final, Error), "CP-STATE-4",
                  f"the {name} written right behind a successful HELLO was answered with "
                  f"{outcome(final)}; it arrived in READY and is served")


@server_case("CP-STATE-4")
async def join_behind_a_refused_hello_is_state_violation(ctx: ServerContext) -> None:
    """HELLO with an invalid nick and JOIN in one write: the JOIN gets STATE_VIOLATION."""
    peer = await ctx.connect("alice")
    await peer.send_raw(frame_bytes(Hello.TYPE, 1, hello_body("-" + ctx.nick("bad")))
                        + encode(Join(request_id=2, room=ctx.room("pipe"))),
                        note="HELLO with an invalid nick and JOIN in one write")
    final = (await peer.response(1, "HELLO", req="CP-NICK-1")).final
    if not isinstance(final, Error) or final.fatal:
        ctx.skip(f"the HELLO with an invalid nick was answered with {outcome(final)}, not a "
                 "non-fatal ERROR")
    await _state_violation(ctx, peer, "a JOIN written behind a refused HELLO", "CP-STATE-4")


@server_case("CP-STATE-4")
async def second_hello_in_the_same_write_is_state_violation(ctx: ServerContext) -> None:
    """Two HELLOs in one write: the first is welcomed, the second meets READY: STATE_VIOLATION."""
    peer = await ctx.connect("alice")
    await peer.send_raw(_hello(1, ctx.nick("alice")) + _hello(2, ctx.nick("alice")),
                        note="two HELLOs in one write")
    welcome = (await peer.response(1, "HELLO", req="CP-ACCT-5")).final
    if not isinstance(welcome, Welcome):
        ctx.skip(f"the first HELLO was answered with {outcome(welcome)}, not WELCOME")
    await _state_violation(ctx, peer, "a HELLO written behind a successful HELLO", "CP-STATE-4")


# ------------------------------------------------------------------ unknown types (CP-EXT-2)


@server_case("CP-EXT-2")
async def unknown_types_in_ready_answered_and_skipped(ctx: ServerContext) -> None:
    """Undefined, 0x0000 and extension types get UNKNOWN_TYPE with their request_id; then PONG."""
    alice = await ctx.client("alice")
    await alice.barrier()  # PING is answered at all (else CP-KEEP-1 fails here)
    codes = (*UNASSIGNED_TYPES, 0x0000, *EXTENSION_TYPES)
    stream = b"".join(frame_bytes(code, 500 + i, secrets.token_bytes(i))
                      for i, code in enumerate(codes))
    await alice.send_raw(stream + encode(Ping(request_id=600, token=b"next")),
                         note=f"{len(codes)} frames of unknown types, then PING, in one write")
    for i, code in enumerate(codes):
        final = (await alice.response(500 + i, f"type {code:#06x}", req="CP-EXT-2")).final
        ctx.check(isinstance(final, Error) and final.code == ErrorCode.UNKNOWN_TYPE,
                  "CP-EXT-2", f"a frame of unknown type {code:#06x} was answered with "
                  f"{outcome(final)}; the spec requires ERROR UNKNOWN_TYPE")
    pong = (await alice.response(600, "PING", req="CP-EXT-2")).final
    ctx.check(pong.NAME == "PONG", "CP-EXT-2",
              f"the PING after the unknown types was answered with {describe(pong)}")


@server_case("CP-EXT-1", "CP-HS-9")
async def server_sends_no_reserved_or_extension_types_or_codes(ctx: ServerContext) -> None:
    """A busy session without capabilities: no type 0 or 0x8000+, no ERROR code 32768+."""
    room = ctx.room("ext")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    await alice.say(room, "hello")
    await alice.ok(SetTopic(room=room, topic=fit_topic(alice, "extensions")), req="CP-ROOM-15")
    await alice.ok(Away(message="out"), req="CP-USER-3")
    new_nick = ctx.nick("alice2")
    await alice.ok(Nick(nick=new_nick), req="CP-NICK-7")
    await bob.tell(new_nick, "psst")
    await bob.ok(ListMembers(room=room), req="CP-ROOM-18")
    await bob.request(SendRoom(room=ctx.room("nowhere"), text="refused"))
    await alice.part(room, "done")
    for peer in (alice, bob):
        await peer.barrier()
        for frame in peer.received:
            ctx.check(frame.type_code != 0 and frame.type_code < 0x8000, "CP-EXT-1",
                      f"{peer.label} received a frame of type {frame.type_code:#06x}")
            message = frame.message
            if isinstance(message, Error):
                ctx.check(message.code < 0x8000, "CP-HS-9",
                          f"{peer.label} received ERROR code {message.code}, an extension code, "
                          "although WELCOME listed no capability")
