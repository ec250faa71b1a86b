"""A welcomed client can talk to the server at all: PING and PONG."""

from __future__ import annotations

import secrets

from chatproto.messages import Error, ListMembers, Ping, Pong, RoomMessage, UserInfo
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import ServerContext
from conformance.suites.server._steps import room_with, still_served, text_is
from conformance.transcript import describe
from conformance.wire import frame_bytes

# ------------------------------------------------------------------ PING and PONG


@server_case("CP-KEEP-1")
async def ping_answered_with_same_token_and_request_id(ctx: ServerContext) -> None:
    """A PING is answered with a PONG carrying its token and request_id."""
    alice = await ctx.client("alice")
    token = secrets.token_bytes(12)
    ping = await alice.send(Ping(request_id=4242, token=token))
    try:
        answer = await alice.response(ping.request_id, "PING", req="CP-KEEP-1")
        ctx.check(isinstance(answer.final, Pong), "CP-KEEP-1",
                  f"PING was answered with {answer.final.NAME}")
        assert isinstance(answer.final, Pong)
        ctx.check(answer.final.token == token, "CP-KEEP-1",
                  f"PONG carried token {answer.final.token.hex()}, not {token.hex()}")
    except Violation as exc:
        # As the barrier does: every case that relies on PING is skipped from now on.
        if exc.requirement == "CP-KEEP-1" and exc.kind != "closed":
            ctx.mark_broken("ping", exc)
        raise


@server_case("CP-KEEP-1")
async def ping_tokens_of_every_size_and_extreme_request_ids_echoed(ctx: ServerContext) -> None:
    """PINGs with empty, one-byte and 255-byte tokens and request_ids 1 and 2^32-1 are echoed."""
    alice = await ctx.connect("alice")
    await alice.hello(ctx.nick("alice"))
    pings = [Ping(request_id=0xFFFFFFFF, token=b""),
             Ping(request_id=1, token=b"\x00"),
             Ping(request_id=0x80000000, token=secrets.token_bytes(255)),
             Ping(request_id=0x00010000, token=bytes(range(256))[1:])]
    for ping in pings:
        await alice.send(ping, pace=False)
    for ping in pings:
        answer = await alice.response(ping.request_id, "PING", req="CP-KEEP-1")
        pong = answer.final
        ctx.check(isinstance(pong, Pong) and pong.token == ping.token, "CP-KEEP-1",
                  f"PING (request {ping.request_id}) with a {len(ping.token)}-byte token was "
                  f"answered with {describe(pong)}; a PONG with the same token is required")


@server_case("CP-KEEP-2")
async def pong_comes_after_frames_queued_before_the_ping(ctx: ServerContext) -> None:
    """A PING's PONG arrives after the room messages queued to that connection before it."""
    room = ctx.room("keep2")
    alice, carol = await room_with(ctx, room, "alice", "carol")
    bob = await ctx.client("bob", receive_buffer=4096)
    await bob.join(room)
    assert alice.welcome is not None
    size = min(alice.welcome.max_message_length, 1000)
    count = max(1, min(6, alice.welcome.msg_rate_burst // 2))
    texts = [f"{i:03d}-" + secrets.token_hex(size)[: size - 4] for i in range(count)]
    # Bob stops reading, so what the server sends him piles up in front of his PING.
    bob.stop_reading()
    for text in texts:
        await alice.say(room, text)
    # Carol got every message: the server has queued them to the room's members.
    for text in texts:
        await carol.expect_type(RoomMessage, req="CP-MSG-1", where=text_is(text))
    ping = await bob.send(Ping(token=secrets.token_bytes(8)), pace=False)
    bob.resume_reading()
    await bob.response(ping.request_id, "PING", req="CP-KEEP-1")
    pong_at = next(i for i, r in enumerate(bob.received)
                   if isinstance(r.message, Pong) and r.request_id == ping.request_id)
    before = {r.message.text for r in bob.received[:pong_at] if isinstance(r.message, RoomMessage)}
    missing = [t[:3] for t in texts if t not in before]
    ctx.check(not missing, "CP-KEEP-2",
              f"bob's PONG arrived before the room messages {missing} (of {count}) that were "
              "queued to him before he sent the PING")
    # A PING right behind a request with intermediate frames, in the same write.
    listing, behind = await bob.send_together([ListMembers(room=room),
                                               Ping(token=secrets.token_bytes(8))])
    await bob.response(behind.request_id, "PING", req="CP-KEEP-1")
    await bob.response(listing.request_id, "LIST_MEMBERS", req="CP-ROOM-18")
    pong_at = next(i for i, r in enumerate(bob.received)
                   if isinstance(r.message, Pong) and r.request_id == behind.request_id)
    late = [r.message for r in bob.received[pong_at:]
            if isinstance(r.message, UserInfo) and r.request_id == listing.request_id]
    ctx.check(not late, "CP-KEEP-2",
              f"bob's PONG arrived before {len(late)} USER_INFO frame(s) of the LIST_MEMBERS "
              "he had sent just before the PING")


@server_case("CP-KEEP-3")
async def unsolicited_pong_is_ignored(ctx: ServerContext) -> None:
    """PONGs that answer no server PING get no answer, no ERROR, and the connection goes on."""
    alice = await ctx.client("alice")
    await alice.barrier()  # the PING probe below works at all (else CP-KEEP-1 fails here)
    await alice.send(Pong(request_id=0, token=b"kit-unsolicited"), pace=False)
    await alice.send(Pong(request_id=777777, token=secrets.token_bytes(255)), pace=False)
    await alice.send_raw(frame_bytes(Pong.TYPE, 777778, b"\x00"), note="raw PONG (empty token)")
    await still_served(alice, "CP-KEEP-3")
    await alice.assert_none(lambda m: isinstance(m, Error) or m.request_id in (777777, 777778),
                            req="CP-KEEP-3", why="a PONG that answers nothing is ignored")

