"""One client's bad input leaves the others unaffected.

While some connections send garbage, oversized or malformed frames, cut frames
short or stall halfway through one, other clients keep chatting: their messages
arrive, in order, and the server keeps welcoming new connections.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from chatproto import encode
from chatproto.messages import Hello, Join, Ping, RoomMessage, SendRoom
from conformance.registry import server_case
from conformance.server_side import KIT_CLIENT_NAME, Peer, ServerContext
from conformance.suites.server._bodies import BAD_UTF8, str8, str16, u64, unchecked
from conformance.suites.server._steps import maybe, room_with
from conformance.transcript import describe
from conformance.wire import frame_bytes, length_field

STALLED_CONNECTIONS = 8


def _garbage(room: str) -> list[tuple[bool, bytes, str]]:
    """Attacks: (welcome first?, bytes, what)."""
    half = encode(SendRoom(request_id=3, room=room, text="half a frame"))
    broken = b"".join([
        frame_bytes(SendRoom.TYPE, 10, str8(room) + u64(0) + str16(BAD_UTF8["byte FF"])),
        frame_bytes(SendRoom.TYPE, 11, str8(room)),
        frame_bytes(0x7ABC, 12, secrets.token_bytes(40)),
        frame_bytes(Join.TYPE, 13, str8(room) + b"\x07" + u64(0)),
        encode(SendRoom(request_id=0, room=room, text="id zero")),
    ])
    return [
        (False, b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n", "an HTTP request"),
        (False, secrets.token_bytes(512), "512 random bytes before HELLO"),
        (True, secrets.token_bytes(512), "512 random bytes after WELCOME"),
        (True, length_field(0xFFFFFFFF) + secrets.token_bytes(64), "a 4 GiB length"),
        (True, length_field(2) + b"\x00\x00", "a length of 2"),
        (True, broken * 4, "twenty malformed frames"),
        (True, half[: len(half) - 3], "a frame cut short, then a reset"),
    ]


async def _attack(ctx: ServerContext, room: str) -> None:
    """Send every kind of garbage, each from a connection of its own, and end them all."""
    for welcomed, data, what in _garbage(room):
        peer = await ctx.client("mallory") if welcomed else await ctx.connect("mallory")
        await peer.send_raw(data, note=what)
        await maybe(peer.expect_closed(req="CP-FRAME-3", timeout=0.3))
        peer.abort()


async def _chat(speaker: Peer, room: str, texts: list[str]) -> None:
    for text in texts:
        await speaker.say(room, text)


def _posted(room: str, text: str) -> Callable[[RoomMessage], bool]:
    return lambda m: m.room == room and m.text == text


async def _in_order(ctx: ServerContext, listener: Peer, room: str, texts: list[str]) -> None:
    """``listener`` gets every one of ``texts`` in ``room``, in the order they were sent."""
    for text in texts:
        await listener.expect_type(RoomMessage, req="CP-MSG-1", where=_posted(room, text))
    got = [r.message.text for r in listener.received
           if isinstance(r.message, RoomMessage) and r.message.text in texts]
    ctx.check(got == texts, "CP-MSG-10",
              f"{listener.label} received the messages in the order {got}, not {texts}")


@server_case("CP-MSG-1", "CP-MSG-10", "CP-ACCT-5")
async def garbage_on_other_connections_leaves_a_chat_flowing(ctx: ServerContext) -> None:
    """Garbage, huge lengths and cut frames on other connections: alice and bob chat on."""
    room = ctx.room("calm")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    assert alice.welcome is not None
    count = max(2, min(8, alice.welcome.msg_rate_burst // 2))
    from_alice = [f"alice {i} {secrets.token_hex(3)}" for i in range(count)]
    from_bob = [f"bob {i} {secrets.token_hex(3)}" for i in range(count)]
    await asyncio.gather(_attack(ctx, room), _chat(alice, room, from_alice),
                         _chat(bob, room, from_bob))
    await _in_order(ctx, bob, room, from_alice)
    await _in_order(ctx, alice, room, from_bob)
    newcomer = await ctx.client("newcomer")
    await newcomer.join(room)
    await newcomer.say(room, "hello after the storm")
    await alice.expect_type(RoomMessage, req="CP-MSG-1",
                            where=lambda m: m.text == "hello after the storm")


@server_case("CP-MSG-1", "CP-MSG-10")
async def broken_frames_from_a_member_leave_the_room_working(ctx: ServerContext) -> None:
    """A member sending malformed frames between alice's messages: bob gets hers, all, in order."""
    room = ctx.room("member")
    alice, bob, mallory = await room_with(ctx, room, "alice", "bob", "mallory")
    texts = [f"steady {i}" for i in range(4)]
    for index, text in enumerate(texts):
        await alice.say(room, text)
        base = 1000 + 10 * index
        await mallory.send_raw(b"".join([
            frame_bytes(SendRoom.TYPE, base, str8(room) + u64(0)
                        + str16(BAD_UTF8["encoded high surrogate U+D800 (ED A0 80)"])),
            frame_bytes(SendRoom.TYPE, base + 1, str8(room) + u64(0) + b"\x00"),
            encode(unchecked(SendRoom, base + 2, room=room, text="\x1b[2Jwiped")),
            frame_bytes(0x0305, base + 3, b"??"),
            frame_bytes(SendRoom.TYPE, base + 4, b""),
        ]), note="five broken SEND_ROOM-like frames")
        # Whatever mallory gets (or if it is cut off) is judged by other cases.
        await maybe(mallory.response(base + 4, "SEND_ROOM"))
    await _in_order(ctx, bob, room, texts)
    await bob.assert_none(lambda m: isinstance(m, RoomMessage) and m.sender == mallory.nick,
                          req="CP-MSG-1", why="none of mallory's frames was a valid message")


@server_case("CP-ACCT-5", "CP-MSG-1")
async def stalled_half_frames_do_not_block_new_sessions(ctx: ServerContext) -> None:
    """Connections stalled halfway through a frame keep no newcomer from WELCOME and chat."""
    hello = encode(Hello(request_id=1, min_version=1, max_version=1, nick=ctx.nick("stall"),
                         client_name=KIT_CLIENT_NAME))
    for index in range(STALLED_CONNECTIONS):
        stalled = await ctx.connect("stalled")
        await stalled.send_raw(hello[: 3 + index], note=f"the first {3 + index} bytes of a HELLO")
    half = await ctx.client("half")
    await half.send_raw(encode(Ping(request_id=50, token=b"stalled"))[:8],
                        note="the first 8 bytes of a PING")
    room = ctx.room("newcomers")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    await alice.say(room, "still open for business")
    message = await bob.expect_type(RoomMessage, req="CP-MSG-1")
    ctx.check(message.text == "still open for business", "CP-MSG-1",
              f"bob received {describe(message)}")
