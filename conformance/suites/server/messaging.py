"""Room and private messages: delivery, identity, ordering and idempotent resend.

Texts longer than the advertised limit cannot be built through the validating
message classes, so those cases build them with ``model_construct``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from chatproto import ErrorCode, Message, fold
from chatproto.messages import (
    SEND_ROOM_OVERHEAD,
    Away,
    Error,
    Hello,
    Join,
    ListMembers,
    ListRooms,
    ListUsers,
    MemberLeft,
    Mute,
    Nick,
    Ok,
    Part,
    PrivateMessage,
    Register,
    RoomMessage,
    SendPrivate,
    SendRoom,
    SetTopic,
)
from chatproto.messages import History as HistoryRequest
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import Peer, ServerContext, fresh_client_msg_id
from conformance.suites.server._steps import operator_client, room_with, text_is
from conformance.transcript import describe, outcome

CLOCK_SKEW_MS = 5 * 60 * 1000
"""How far a server's clock may be from the kit's before CP-MSG-9 counts as broken."""
CONCURRENT_SENDERS = 4
MESSAGES_PER_SENDER = 5

TEXTS = (
    "plain ASCII",
    "caf\u00e9 \u2014 \u65e5\u672c\u8a9e \u05e9\u05dc\u05d5\u05dd \U0001f600",
    "e\u0301 (decomposed) and \u00e9 (composed) stay as sent",
    "  leading and trailing spaces  ",
    "tab\tand\nnew line",
    "\ufeffbyte order mark and zero\u200bwidth space",
    "K (Kelvin sign \u212a) and \u00c5 / A\u030a",
    "x",
)
"""Texts that a server must pass on byte for byte: no trimming, no normalisation."""


def _in(room: str) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, RoomMessage) and fold(m.room) == fold(room)


def _same_identity(message: RoomMessage | PrivateMessage, ok: Ok) -> bool:
    seq = message.seq if isinstance(message, RoomMessage) else 0
    return (message.msg_id, seq, message.timestamp_ms) == (ok.msg_id, ok.seq, ok.timestamp_ms)


def _identity(ok: Ok) -> str:
    return f"msg_id={ok.msg_id} seq={ok.seq} timestamp_ms={ok.timestamp_ms}"


async def _limits(ctx: ServerContext) -> None:
    if ctx.limits is None:
        await ctx.client("probe")


# ------------------------------------------------------------ room messages


@server_case("CP-MSG-1")
async def send_room_answered_with_identity_and_delivered(ctx: ServerContext) -> None:
    """SEND_ROOM gets OK with the identity; every other member gets ROOM_MESSAGE with history 0."""
    room = ctx.room("msg")
    alice, bob, carol = await room_with(ctx, room, "alice", "bob", "carol")
    ok = await alice.say(room, "hello room")
    ctx.check(ok.msg_id != 0 and ok.seq != 0 and ok.timestamp_ms != 0, "CP-MSG-1",
              f"SEND_ROOM was answered with OK {_identity(ok)}; the OK carries the new "
              "message's identity, none of which is 0")
    with ctx.attribute("CP-MSG-1"):
        for peer in (bob, carol):
            message = await peer.expect_type(RoomMessage, req="CP-MSG-1",
                                             where=lambda m: m.text == "hello room")
            ctx.check(not message.history and message.request_id == 0, "CP-MSG-1",
                      f"{peer.label} received {describe(message)}; a live ROOM_MESSAGE has "
                      "history 0 and request_id 0")


@server_case("CP-MSG-1")
async def sender_does_not_receive_its_own_message(ctx: ServerContext) -> None:
    """The sender's connection never gets its own ROOM_MESSAGE, alone in the room or not."""
    lonely = ctx.room("alone")
    (alice,) = await room_with(ctx, lonely, "alice")
    await alice.say(lonely, "anyone here?")
    await alice.assert_none(RoomMessage, req="CP-MSG-1",
                            why="the sender learns of its message from OK, not an echo")
    room = ctx.room("echo")
    bob = await ctx.client("bob")
    await bob.join(room)
    await alice.join(room)
    await alice.say(room, "no echo please")
    await bob.expect_type(RoomMessage, req="CP-MSG-1")
    await alice.assert_none(RoomMessage, req="CP-MSG-1",
                            why="the sender learns of its message from OK, not an echo")


@server_case("CP-MSG-2")
async def message_longer_than_limit_refused(ctx: ServerContext) -> None:
    """A text of max_message_length bytes is accepted; one byte more is MESSAGE_TOO_LONG."""
    await _limits(ctx)
    assert ctx.limits is not None
    limit = ctx.limits.max_message_length
    room = ctx.room("long")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    # Two-byte characters: a server counting characters would take the long one.
    exact = "\u00e9" * (limit // 2) + "a" * (limit % 2)
    wide = "\u00e9" * (limit // 2 + 1)
    too_long: list[Message] = [
        SendRoom.model_construct(room=room, client_msg_id=0, text="a" * (limit + 1)),
        SendRoom.model_construct(room=room, client_msg_id=0, text=wide),
        SendPrivate.model_construct(nick=bob.nick, client_msg_id=0, text="a" * (limit + 1)),
    ]
    for refused in too_long:
        await alice.refused(refused, ErrorCode.MESSAGE_TOO_LONG, req="CP-MSG-2")
    for request in (SendRoom(room=room, text=exact), SendPrivate(nick=bob.nick, text=exact)):
        answer = await alice.request(request, req="CP-MSG-1")
        ctx.check(isinstance(answer.final, Ok), "CP-MSG-2",
                  f"{request.NAME} with a text of exactly max_message_length ({limit}) bytes "
                  f"was answered with {outcome(answer.final)}, not OK")


PROTOCOL_TEXT_CAP = 16384
"""The protocol's cap on max_message_length and on the message-text field (bytes)."""


@server_case("CP-MSG-2")
async def message_past_the_protocol_cap_refused_as_too_long(ctx: ServerContext) -> None:
    """A text longer than 16384 bytes, the cap on any max_message_length, in a frame within
    max_frame_size, is MESSAGE_TOO_LONG like any text over the limit, not INVALID_FIELD."""
    await _limits(ctx)
    assert ctx.limits is not None
    room = ctx.room("cap")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    text = "a" * (PROTOCOL_TEXT_CAP + 1)
    requests: list[Message] = [
        SendRoom.model_construct(room=room, client_msg_id=0, text=text),
        SendPrivate.model_construct(nick=bob.nick, client_msg_id=0, text=text),
    ]
    if SEND_ROOM_OVERHEAD + len(room) + len(text) > ctx.limits.max_frame_size:
        ctx.skip(f"max_frame_size {ctx.limits.max_frame_size} cannot carry a text of "
                 f"{len(text)} bytes")
    for request in requests:
        await alice.refused(request, ErrorCode.MESSAGE_TOO_LONG, req="CP-MSG-2")


@server_case("CP-MSG-3")
async def room_message_carries_request_and_ok_fields(ctx: ServerContext) -> None:
    """ROOM_MESSAGE carries sender, client_msg_id, the text byte for byte and the OK's identity."""
    room = ctx.room("fields")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    assert alice.welcome is not None
    for index, text in enumerate(TEXTS):
        if len(text.encode()) > alice.welcome.max_message_length:
            continue
        client_msg_id = 0 if index == 0 else fresh_client_msg_id()
        ok = await alice.say(room, text, client_msg_id=client_msg_id)
        message = await bob.expect_type(RoomMessage, req="CP-MSG-1")
        ctx.check(message.text.encode() == text.encode(), "CP-MSG-3",
                  f"SEND_ROOM text {text.encode()!r} arrived as {message.text.encode()!r}")
        ctx.check(message.sender == alice.nick and message.client_msg_id == client_msg_id,
                  "CP-MSG-3", f"bob received {describe(message)}; expected sender "
                  f"{alice.nick!r} and client_msg_id {client_msg_id}")
        ctx.check(_same_identity(message, ok), "CP-MSG-3",
                  f"bob received {describe(message)}; the sender's OK said {_identity(ok)}")


@server_case("CP-MSG-3")
async def room_message_names_sender_at_time_of_sending(ctx: ServerContext) -> None:
    """After the sender changes nick, its next ROOM_MESSAGE names the new nick."""
    room = ctx.room("sender")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    old = alice.nick
    await alice.say(room, "before")
    before = await bob.expect_type(RoomMessage, req="CP-MSG-1")
    new = ctx.nick("renamed")
    await alice.ok(Nick(nick=new), req="CP-NICK-7")
    await alice.say(room, "after")
    after = await bob.expect_type(RoomMessage, req="CP-MSG-1", where=lambda m: m.text == "after")
    ctx.check(before.sender == old and after.sender == new, "CP-MSG-3",
              f"messages sent as {old!r} then as {new!r} arrived with senders "
              f"{before.sender!r} and {after.sender!r}")


# --------------------------------------------------------- private messages


@server_case("CP-MSG-4")
async def private_message_reaches_the_addressee_only(ctx: ServerContext) -> None:
    """SEND_PRIVATE gets OK with seq 0; the addressee, and nobody else, gets PRIVATE_MESSAGE."""
    room = ctx.room("priv")
    alice, bob, carol = await room_with(ctx, room, "alice", "bob", "carol")
    dave = await ctx.client("dave")
    client_msg_id = fresh_client_msg_id()
    text = "just between us \u2014 \U0001f92b"
    ok = await alice.tell(bob.nick, text, client_msg_id=client_msg_id)
    ctx.check(ok.msg_id != 0 and ok.seq == 0 and ok.timestamp_ms != 0, "CP-MSG-4",
              f"SEND_PRIVATE was answered with OK {_identity(ok)}; expected a nonzero msg_id "
              "and timestamp_ms and seq 0")
    with ctx.attribute("CP-MSG-4"):
        message = await bob.expect_type(PrivateMessage, req="CP-MSG-4")
    ctx.check(_same_identity(message, ok) and message.sender == alice.nick
              and message.client_msg_id == client_msg_id and message.text == text, "CP-MSG-4",
              f"bob received {describe(message)}; expected sender {alice.nick!r}, "
              f"client_msg_id {client_msg_id}, text {text!r} and the OK's {_identity(ok)}")
    for peer in (carol, dave, alice):
        await peer.assert_none(PrivateMessage, req="CP-MSG-4",
                               why="a private message goes to the addressee's connection only")


@server_case("CP-MSG-4")
async def private_message_to_oneself_delivered(ctx: ServerContext) -> None:
    """A private message to one's own nick arrives on the sender's connection, OK's identity."""
    alice = await ctx.client("alice")
    ok = await alice.tell(alice.nick, "note to self", client_msg_id=7)
    with ctx.attribute("CP-MSG-4"):
        message = await alice.expect_type(PrivateMessage, req="CP-MSG-4")
    ctx.check(_same_identity(message, ok) and message.sender == alice.nick
              and message.text == "note to self" and message.client_msg_id == 7, "CP-MSG-4",
              f"alice received {describe(message)}; the OK said {_identity(ok)}")


@server_case("CP-MSG-4", "CP-NICK-2")
async def private_message_to_case_variant_of_nick_delivered(ctx: ServerContext) -> None:
    """SEND_PRIVATE to a case variant of a held nick reaches that nick's connection."""
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    answer = await alice.request(SendPrivate(nick=bob.nick.upper(), text="hi BOB"),
                                 req="CP-MSG-4")
    ctx.check(isinstance(answer.final, Ok), "CP-NICK-2",
              f"SEND_PRIVATE to {bob.nick.upper()!r} while {bob.nick!r} is connected was "
              f"answered with {outcome(answer.final)}; the nicks fold alike, so it is bob")
    with ctx.attribute("CP-MSG-4"):
        await bob.expect_type(PrivateMessage, req="CP-MSG-4")


@server_case("CP-MSG-5")
async def private_message_to_absent_nick_refused(ctx: ServerContext) -> None:
    """SEND_PRIVATE to a nick nobody holds (even one a held nick starts with) is NO_SUCH_NICK."""
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    for nick in (ctx.nick("nobody"), bob.nick[:-1], bob.nick + "x"):
        await alice.refused(SendPrivate(nick=nick, text="hello?"), ErrorCode.NO_SUCH_NICK,
                            req="CP-MSG-5")


# ---------------------------------------------------------------- identity


@server_case("CP-MSG-6")
async def ok_of_other_requests_carries_zero_identity(ctx: ServerContext) -> None:
    """The OK of any request but SEND_ROOM and SEND_PRIVATE has msg_id, seq, timestamp_ms 0."""
    room = ctx.room("zero")
    alice = await ctx.client("alice")
    requests: list[Message] = [
        Join(room=room), SetTopic(room=room, topic=""), ListRooms(), ListMembers(room=room),
        ListUsers(), HistoryRequest(room=room, limit=5), Away(message="out"), Away(message=""),
        Nick(nick=ctx.nick("alice2")), Register(password="kit-zero-pw"), Part(room=room),
    ]
    for request in requests:
        if isinstance(request, HistoryRequest):
            await alice.say(room, "so that HISTORY has something to page")
        answer = await alice.ok(request, req="CP-REQ-4")
        final = answer.final
        assert isinstance(final, Ok)
        ctx.check(final.msg_id == 0 and final.seq == 0 and final.timestamp_ms == 0, "CP-MSG-6",
                  f"{request.NAME} was answered with OK {_identity(final)}; all three must be 0")


@server_case("CP-MSG-7")
async def msg_ids_nonzero_and_unique(ctx: ServerContext) -> None:
    """Every message, in any room or private, gets a nonzero msg_id that no other one has."""
    first, second = ctx.room("id1"), ctx.room("id2")
    alice, bob = await room_with(ctx, first, "alice", "bob")
    carol = await ctx.client("carol")
    await alice.join(second)
    await carol.join(second)
    oks: list[tuple[str, Ok]] = []
    for round_ in range(3):
        oks.append((f"alice in {first}", await alice.say(first, f"a{round_}")))
        oks.append((f"bob in {first}", await bob.say(first, f"b{round_}")))
        oks.append((f"carol in {second}", await carol.say(second, f"c{round_}")))
        oks.append(("alice to bob", await alice.tell(bob.nick, f"p{round_}")))
        oks.append(("carol to alice", await carol.tell(alice.nick, f"q{round_}")))
    seen: dict[int, str] = {}
    for what, ok in oks:
        ctx.check(ok.msg_id != 0, "CP-MSG-7", f"the message {what} got msg_id 0")
        ctx.check(ok.msg_id not in seen, "CP-MSG-7",
                  f"the message {what} got msg_id {ok.msg_id}, already given to the message "
                  f"{seen.get(ok.msg_id)}")
        seen[ok.msg_id] = what


@server_case("CP-MSG-8")
async def seq_starts_at_one_and_grows_by_one(ctx: ServerContext) -> None:
    """A room's first message gets seq 1 and each next one the previous seq plus 1, per room."""
    first, second = ctx.room("seq1"), ctx.room("seq2")
    alice, bob = await room_with(ctx, first, "alice", "bob")
    await alice.join(second)
    expected = 1
    for sender in (alice, alice, bob, alice, bob, bob):
        ok = await sender.say(first, "counting")
        ctx.check(ok.seq == expected, "CP-MSG-8",
                  f"message {expected} of the new room {first} got seq {ok.seq}; expected "
                  f"{expected}")
        if expected == 3:
            await alice.tell(bob.nick, "a private message takes no seq")
            other = await alice.say(second, "another room")
            ctx.check(other.seq == 1, "CP-MSG-8",
                      f"the first message of {second} got seq {other.seq}; each room counts "
                      "from 1")
        expected += 1


@server_case("CP-MSG-9")
async def timestamp_is_the_servers_clock(ctx: ServerContext) -> None:
    """timestamp_ms is Unix time in ms, within 5 minutes of the kit's clock (room and private)."""
    room = ctx.room("clock")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    before = int(time.time() * 1000)
    stamps = [("SEND_ROOM", (await alice.say(room, "tick")).timestamp_ms),
              ("SEND_PRIVATE", (await alice.tell(bob.nick, "tock")).timestamp_ms)]
    after = int(time.time() * 1000)
    for what, stamp in stamps:
        ctx.check(before - CLOCK_SKEW_MS <= stamp <= after + CLOCK_SKEW_MS, "CP-MSG-9",
                  f"the OK of {what} carries timestamp_ms {stamp}, {(stamp - before) / 1000:+.1f}"
                  f" s from the kit's clock ({before}); the kit allows clocks "
                  f"{CLOCK_SKEW_MS // 60000} minutes apart")


# ---------------------------------------------------------------- ordering


async def _send_pipelined(peer: Peer, room: str, count: int) -> list[Ok]:
    """Send ``count`` messages without waiting in between, then collect their OKs."""
    sent = [await peer.send(SendRoom(room=room, text=f"{peer.label} #{n}")) for n in range(count)]
    oks = []
    for request in sent:
        answer = await peer.response(request.request_id, "SEND_ROOM", req="CP-MSG-1")
        if not isinstance(answer.final, Ok):
            peer.ctx.fail("CP-MSG-1", f"{peer.label}: SEND_ROOM was answered with "
                          f"{outcome(answer.final)}")
        assert isinstance(answer.final, Ok)
        oks.append(answer.final)
    return oks


@server_case("CP-MSG-10", "CP-MSG-8", "CP-MSG-1")
async def concurrent_senders_seen_in_seq_order(ctx: ServerContext) -> None:
    """Several members sending at once: every member gets all messages in increasing seq."""
    room = ctx.room("order")
    labels = [f"s{n}" for n in range(CONCURRENT_SENDERS)]
    senders = await room_with(ctx, room, *labels)
    (listener,) = await room_with(ctx, room, "listener")
    for _ in range(2):
        results = await asyncio.gather(*(_send_pipelined(peer, room, MESSAGES_PER_SENDER)
                                         for peer in senders))
        own = {peer.label: {ok.seq for ok in oks} for peer, oks in zip(senders, results,
                                                                        strict=True)}
        everything = sorted(seq for seqs in own.values() for seq in seqs)
        low = everything[0]
        ctx.check(everything == list(range(low, low + len(everything))), "CP-MSG-8",
                  f"{len(everything)} messages sent at once got seqs {everything}; seqs of one "
                  "room are consecutive, each used once")
        for peer in (*senders, listener):
            await peer.barrier()
            frames = [m for m in peer.take(_in(room)) if isinstance(m, RoomMessage)]
            seqs = [m.seq for m in frames]
            ctx.check(seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "CP-MSG-10",
                      f"{peer.label} received the room's messages in the order {seqs}; "
                      "they must arrive in increasing seq")
            expected = sorted(set(everything) - own.get(peer.label, set()))
            ctx.check(sorted(seqs) == expected, "CP-MSG-1",
                      f"{peer.label} received seqs {sorted(seqs)}; the other members sent "
                      f"{expected}")


# -------------------------------------------------------------- idempotence


@server_case("CP-MSG-11")
async def resend_with_same_client_msg_id_not_delivered_twice(ctx: ServerContext) -> None:
    """A resend with the same client_msg_id gets the original identity and is not delivered."""
    room = ctx.room("resend")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    client_msg_id = fresh_client_msg_id()
    first = await alice.say(room, "deploying now", client_msg_id=client_msg_id)
    await bob.expect_type(RoomMessage, req="CP-MSG-1")
    await alice.say(room, "something in between")
    await bob.expect_type(RoomMessage, req="CP-MSG-1")
    for text in ("deploying now", "a different text, same client_msg_id"):
        again = await alice.say(room, text, client_msg_id=client_msg_id)
        ctx.check((again.msg_id, again.seq, again.timestamp_ms)
                  == (first.msg_id, first.seq, first.timestamp_ms), "CP-MSG-11",
                  f"a resend with client_msg_id {client_msg_id} was answered with OK "
                  f"{_identity(again)}; the original got {_identity(first)}")
        await bob.assert_none(RoomMessage, req="CP-MSG-11",
                              why="a resend of a retained message is not delivered again")


async def _reconnect(ctx: ServerContext, gone: Peer, witness: Peer, room: str,
                     nick: str) -> Peer:
    """Drop ``gone``; once ``witness`` sees it leave, a new connection as ``nick`` rejoins."""
    await gone.close()
    await witness.expect_type(MemberLeft, req="CP-CLOSE-9", where=lambda m: m.nick == gone.nick)
    again = await ctx.connect("again")
    await again.hello(nick, req="CP-NICK-6")
    await again.join(room)
    return again


@server_case("CP-MSG-11")
async def resend_after_reconnect_recognised(ctx: ServerContext) -> None:
    """A resend after a reconnect, under the same nick or a case variant, is the same message."""
    room = ctx.room("reconn")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    client_msg_id = fresh_client_msg_id()
    first = await alice.say(room, "lost my connection", client_msg_id=client_msg_id)
    await bob.expect_type(RoomMessage, req="CP-MSG-1")

    async def resend(peer: Peer) -> None:
        ok = await peer.say(room, "lost my connection", client_msg_id=client_msg_id)
        ctx.check((ok.msg_id, ok.seq, ok.timestamp_ms) == (first.msg_id, first.seq,
                                                           first.timestamp_ms), "CP-MSG-11",
                  f"the resend under {peer.nick!r} was answered with OK {_identity(ok)}; the "
                  f"original from {alice.nick!r} got {_identity(first)} (same nick fold, room "
                  "and client_msg_id)")
        await bob.assert_none(RoomMessage, req="CP-MSG-11",
                              why="a resend of a retained message is not delivered again")

    again = await _reconnect(ctx, alice, bob, room, alice.nick)
    await resend(again)
    # The case variant counts only on a server that folds nicks (CP-NICK-2's business).
    probe = await ctx.connect("probe")
    sent = await probe.send(Hello.model_construct(
        min_version=1, max_version=1, nick=alice.nick.swapcase(), password="",
        client_name="chatproto-conformance", capabilities=()))
    answer = await probe.response(sent.request_id, "HELLO", req="CP-NICK-2")
    if isinstance(answer.final, Error) and answer.final.code == ErrorCode.NICK_IN_USE:
        await resend(await _reconnect(ctx, again, bob, room, alice.nick.upper()))


@server_case("CP-MSG-1")
async def only_the_full_resend_key_deduplicates(ctx: ServerContext) -> None:
    """client_msg_id 0, or the same id from another sender or room, makes a new message."""
    room, other_room = ctx.room("key"), ctx.room("key2")
    alice, bob, carol = await room_with(ctx, room, "alice", "bob", "carol")
    await alice.join(other_room)
    await bob.join(other_room)
    client_msg_id = fresh_client_msg_id()
    sends = [(alice, room, 0, "zero one"), (alice, room, 0, "zero two"),
             (alice, room, client_msg_id, "alice's"), (carol, room, client_msg_id, "carol's"),
             (alice, other_room, client_msg_id, "alice's in another room")]
    identities = set()
    for sender, where, cmid, text in sends:
        ok = await sender.say(where, text, client_msg_id=cmid)
        identities.add(ok.msg_id)
        message = await bob.expect_type(RoomMessage, req="CP-MSG-1",
                                        where=text_is(text))
        ctx.check(_same_identity(message, ok), "CP-MSG-1",
                  f"{text!r} arrived as {describe(message)}; its OK said {_identity(ok)}")
    ctx.check(len(identities) == len(sends), "CP-MSG-1",
              f"{len(sends)} distinct messages got only {len(identities)} distinct msg_ids")


@server_case("CP-MSG-13", needs=("oper",))
async def muted_senders_resend_gets_the_original_ok(ctx: ServerContext) -> None:
    """After a mute, resending a message accepted before it gets its OK; a new one gets MUTED."""
    room = ctx.room("mres")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    op = await operator_client(ctx)
    client_msg_id = fresh_client_msg_id()
    first = await alice.say(room, "said before the mute", client_msg_id)
    await bob.expect_type(RoomMessage, req="CP-MSG-1")
    await op.ok(Mute(room=room, nick=alice.nick, muted=True), req="CP-OPER-8")
    answer = await alice.request(SendRoom(room=room, text="said before the mute",
                                          client_msg_id=client_msg_id), req="CP-MSG-13")
    again = answer.final
    if not isinstance(again, Ok):
        raise Violation("CP-MSG-13", f"a muted sender's resend of a message accepted before "
                        f"the mute was answered with {outcome(again)}; the spec requires the "
                        f"original OK ({_identity(first)}), since the resend comes before MUTED")
    ctx.check(_identity(again) == _identity(first), "CP-MSG-11",
              f"the resend was answered with {_identity(again)}; the original OK said "
              f"{_identity(first)}")
    await alice.refused(SendRoom(room=room, text="said after the mute",
                                 client_msg_id=fresh_client_msg_id()),
                        ErrorCode.MUTED, req="CP-OPER-9")
    await bob.assert_none(RoomMessage, req="CP-MSG-11",
                          why="a resend is delivered to nobody, and a muted message neither")
