"""Ending a session: QUIT and BYE, fatal errors, and what the other members of a room see."""

from __future__ import annotations

from chatproto import ERROR_REGISTRY, ErrorCode, Message, encode
from chatproto.messages import (
    Bye,
    Error,
    Hello,
    LeaveKind,
    MemberLeft,
    Ok,
    Ping,
    Quit,
)
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import Peer, ServerContext
from conformance.suites.server._bodies import hello_body, str8
from conformance.suites.server._steps import room_with
from conformance.transcript import describe
from conformance.wire import frame_bytes, length_field


def _after(peer: Peer, cls: type[Message], request_id: int | None = None) -> list[Message]:
    """The frames ``peer`` received after the first of class ``cls`` (with ``request_id``)."""
    for index, frame in enumerate(peer.received):
        if isinstance(frame.message, cls) and request_id in (None, frame.request_id):
            return [r.message for r in peer.received[index + 1:] if r.message is not None]
    return []


async def _left(watcher: Peer, nick: str, room: str, req: str) -> MemberLeft:
    return await watcher.expect_type(MemberLeft, req=req,
                                     where=lambda m: m.nick == nick and m.room == room)


@server_case("CP-CLOSE-1")
async def quit_answered_with_bye_then_nothing_and_closed(ctx: ServerContext) -> None:
    """QUIT in a busy room gets BYE with its request_id, nothing after it, then the close."""
    room = ctx.room("quit")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    await bob.say(room, "are you leaving?")
    answer = await alice.quit("bye all")
    ctx.check(isinstance(answer.final, Bye), "CP-CLOSE-1",
              f"QUIT was answered with {describe(answer.final)}, not BYE")
    await alice.expect_closed(req="CP-CLOSE-1")
    later = _after(alice, Bye, answer.final.request_id)
    ctx.check(not later, "CP-CLOSE-1",
              f"after BYE the server sent {describe(later[0]) if later else ''}")


@server_case("CP-CLOSE-1")
async def quit_before_hello_answered_with_bye(ctx: ServerContext) -> None:
    """QUIT as the first frame of a connection gets BYE with its request_id, then the close."""
    peer = await ctx.connect("raw")
    await peer.send_raw(encode(Quit(request_id=77, reason="never mind")), note="QUIT before HELLO")
    final = (await peer.response(77, "QUIT", req="CP-CLOSE-1")).final
    ctx.check(isinstance(final, Bye), "CP-CLOSE-1",
              f"QUIT before HELLO was answered with {describe(final)}, not BYE")
    await peer.expect_closed(req="CP-CLOSE-1")
    later = _after(peer, Bye)
    ctx.check(not later, "CP-CLOSE-1",
              f"after BYE the server sent {describe(later[0]) if later else ''}")


@server_case("CP-CLOSE-2")
async def quit_with_request_id_zero_answered_with_bye(ctx: ServerContext) -> None:
    """QUIT with request_id 0, in READY and before HELLO, still gets BYE."""
    for welcomed in (True, False):
        peer = await ctx.client("alice") if welcomed else await ctx.connect("raw")
        await peer.send_raw(encode(Quit(request_id=0, reason="zero")), note="QUIT with id 0")
        final = await peer.expect(lambda m: isinstance(m, Bye | Error), req="CP-CLOSE-2",
                                  what="BYE")
        ctx.check(isinstance(final, Bye), "CP-CLOSE-2",
                  f"QUIT with request_id 0 was answered with {describe(final)}, not BYE")


QUIT_BODIES: list[tuple[bytes, str]] = [
    (b"", "an empty body"),
    (b"\x09cut", "a reason cut short"),
    (str8("see you") + b"\x00", "a byte after the reason"),
    (str8(b"\xed\xa0\x80"), "a reason that is not UTF-8"),
]


@server_case("CP-CLOSE-2", "CP-CLOSE-3")
async def unparsable_quit_answered_with_bye_and_empty_reason(ctx: ServerContext) -> None:
    """QUITs with broken bodies get BYE; the room sees MEMBER_LEFT kind QUIT, empty reason."""
    room = ctx.room("badquit")
    (watcher,) = await room_with(ctx, room, "watcher")
    for body, what in QUIT_BODIES:
        peer = await ctx.client("alice")
        await peer.join(room)
        await peer.send_raw(frame_bytes(Quit.TYPE, 5, body), note=f"QUIT with {what}")
        final = (await peer.response(5, "QUIT", req="CP-CLOSE-2")).final
        ctx.check(isinstance(final, Bye), "CP-CLOSE-2",
                  f"QUIT with {what} was answered with {describe(final)}, not BYE")
        left = await _left(watcher, peer.nick, room, "CP-CLOSE-3")
        ctx.check(left.kind == LeaveKind.QUIT, "CP-CLOSE-3",
                  f"after a QUIT with {what} the room saw {describe(left)}; kind is QUIT (1)")
        ctx.check(left.reason == "", "CP-CLOSE-2",
                  f"after a QUIT with {what} the room saw reason {left.reason!r}; a QUIT body "
                  "that cannot be parsed counts as an empty reason")


@server_case("CP-CLOSE-3")
async def quit_reason_reaches_every_room_with_kind_quit(ctx: ServerContext) -> None:
    """After QUIT with a reason, members of each of the client's rooms get MEMBER_LEFT kind QUIT."""
    first, second = ctx.room("q1"), ctx.room("q2")
    alice, bob = await room_with(ctx, first, "alice", "bob")
    (carol,) = await room_with(ctx, second, "carol")
    await alice.join(second)
    await bob.join(second)
    reason = "time for lunch \u2014 back at 2"
    await alice.quit(reason)
    for watcher, room in ((bob, first), (bob, second), (carol, second)):
        left = await _left(watcher, alice.nick, room, "CP-CLOSE-3")
        ctx.check(left.kind == LeaveKind.QUIT and left.reason == reason, "CP-CLOSE-3",
                  f"{watcher.label} saw {describe(left)}; expected kind QUIT (1) and reason "
                  f"{reason!r}")


async def _fatal_then_closed(ctx: ServerContext, peer: Peer, what: str, rule: str) -> None:
    error = await peer.expect_type(Error, req=rule)
    code = error.error_code
    if not error.fatal:
        if code is not None and ERROR_REGISTRY[code].fatal:
            return  # a wrong flag is CP-ERR-1's business; nothing here to judge
        raise Violation(rule, f"{what} was answered with {describe(error)}, not a fatal ERROR")
    await peer.expect_closed(req="CP-CLOSE-4")
    later = _after(peer, Error)
    ctx.check(not later, "CP-CLOSE-4", f"after the fatal {describe(error)} the server sent "
              f"{describe(later[0]) if later else ''}")


@server_case("CP-CLOSE-4")
async def fatal_error_followed_by_the_close(ctx: ServerContext) -> None:
    """After a fatal ERROR (too large, malformed frame, state, version) the server closes."""
    peer = await ctx.client("alice")
    await peer.send_raw(length_field(0x00FFFFFF), note="length field 2^24-1")
    await _fatal_then_closed(ctx, peer, "a length field of 2^24-1", "CP-FRAME-3")
    peer = await ctx.client("alice")
    await peer.send_raw(length_field(4) + b"\x00" * 4, note="length field 4")
    await _fatal_then_closed(ctx, peer, "a length field of 4", "CP-FRAME-7")
    peer = await ctx.client("alice")
    await peer.send_raw(encode(Ok(request_id=3)), note="OK from a client")
    await _fatal_then_closed(ctx, peer, "an OK from a client", "CP-STATE-2")
    peer = await ctx.connect("raw")
    await peer.send_raw(encode(Ping(request_id=3, token=b"")), note="PING before HELLO")
    await _fatal_then_closed(ctx, peer, "a PING before HELLO", "CP-STATE-3")
    peer = await ctx.connect("raw")
    await peer.send_raw(frame_bytes(Hello.TYPE, 1, hello_body(ctx.nick("v"), versions=(2, 1))),
                        note="HELLO offering versions 2..1")
    await _fatal_then_closed(ctx, peer, "a HELLO offering versions 2..1", "CP-HS-5")


async def _disconnect_seen(ctx: ServerContext, how: str, end: str) -> None:
    """Bob, in two rooms, ends his connection ``how``; the others see DISCONNECT in both."""
    first, second = ctx.room("d1"), ctx.room("d2")
    alice, bob = await room_with(ctx, first, "alice", "bob")
    (carol,) = await room_with(ctx, second, "carol")
    await bob.join(second)
    if end == "abort":
        bob.abort()
    elif end == "close":
        await bob.close()
    elif end == "violation":
        await bob.send_raw(encode(Ok(request_id=9)), note="OK from a client")
    elif end == "client-error":
        await bob.send_raw(encode(Error(code=int(ErrorCode.STATE_VIOLATION), fatal=True,
                                        detail="kit ends the session")),
                           note="a fatal ERROR from the client")
    for watcher, room in ((alice, first), (carol, second)):
        left = await _left(watcher, bob.nick, room, "CP-CLOSE-9")
        ctx.check(left.kind == LeaveKind.DISCONNECT, "CP-CLOSE-9",
                  f"after bob {how}, {watcher.label} saw {describe(left)}; a connection that "
                  "ends without QUIT is reported with kind DISCONNECT (4)")


@server_case("CP-CLOSE-9")
async def reset_connection_reported_as_disconnect(ctx: ServerContext) -> None:
    """A member whose connection is reset (RST) leaves every room with kind DISCONNECT."""
    await _disconnect_seen(ctx, "reset his connection", "abort")


@server_case("CP-CLOSE-9")
async def closed_connection_without_quit_reported_as_disconnect(ctx: ServerContext) -> None:
    """A member who closes the socket without QUIT leaves every room with kind DISCONNECT."""
    await _disconnect_seen(ctx, "closed the socket without QUIT", "close")


@server_case("CP-CLOSE-9")
async def fatal_error_ending_reported_as_disconnect(ctx: ServerContext) -> None:
    """A member cut off by a fatal STATE_VIOLATION leaves every room with kind DISCONNECT."""
    await _disconnect_seen(ctx, "was cut off by a fatal ERROR", "violation")


@server_case("CP-CLOSE-9")
async def client_fatal_error_reported_as_disconnect(ctx: ServerContext) -> None:
    """A member who sends a fatal ERROR and goes leaves every room with kind DISCONNECT."""
    await _disconnect_seen(ctx, "sent a fatal ERROR", "client-error")

