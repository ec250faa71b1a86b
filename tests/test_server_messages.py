"""Reference server: room and private messages, identity, ordering, resend (real sockets).

Spec page: messaging (Room messages, Private messages, Message identity,
Ordering, Idempotent resend, The PING barrier).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import ClientFactory, RunningServer
from server_harness import ChatTestClient, join_all, of_type, raw_frame, refused, str8, str16

from chatproto import ErrorCode, Limits
from chatproto.messages import (
    Join,
    Message,
    Nick,
    Ok,
    PrivateMessage,
    RoomMessage,
    SendPrivate,
    SendRoom,
)


def ok_of(frames: list[Message]) -> Ok:
    assert len(frames) == 1 and isinstance(frames[0], Ok), frames
    return frames[0]


async def test_room_message_reaches_every_other_member_and_is_not_echoed(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-MSG-1, CP-MSG-3, CP-MSG-7, CP-MSG-9, CP-REQ-10: the sender gets OK with a
    nonzero msg_id, seq 1 and a current timestamp, and no ROOM_MESSAGE; each other member
    gets one ROOM_MESSAGE (request_id 0, history 0) with the same identity, the sender's
    nick, its client_msg_id and text; a non-member gets nothing."""
    alice, bob, carol, dave, eve = [await client_factory(n)
                                    for n in ("alice", "bob", "carol", "dave", "eve")]
    await join_all("#room", alice, bob, carol, dave)
    await join_all("#elsewhere", eve)
    before = int(time.time() * 1000)
    ok = ok_of(await alice.request(SendRoom(room="#room", client_msg_id=42, text="hello all")))
    after = int(time.time() * 1000)
    assert ok.msg_id != 0 and ok.seq == 1
    assert before - 1000 <= ok.timestamp_ms <= after + 1000
    for member in (bob, carol, dave):
        events = await member.barrier()
        assert len(events) == 1, events
        message = events[0]
        assert isinstance(message, RoomMessage)
        assert (message.request_id, message.room, message.seq, message.msg_id,
                message.timestamp_ms, message.sender, message.client_msg_id, message.history,
                message.text) == (0, "#room", 1, ok.msg_id, ok.timestamp_ms, "alice", 42,
                                  False, "hello all")
    assert await alice.barrier() == []
    assert await eve.barrier() == []


@pytest.mark.parametrize("text", [
    "tab\there and\nnew lines\n",
    "\U0001f600 \u05e9\u05dc\u05d5\u05dd \u202eevil\u202c \u4e2d\u6587 \u00e9\u0301",
    " leading and trailing spaces ",
    "x",
])
async def test_text_is_delivered_byte_for_byte(server: RunningServer,
                                               client_factory: ClientFactory,
                                               text: str) -> None:
    """CP-MSG-3: the text reaches the others unchanged (Unicode, TAB, LF, spaces)."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    await alice.ok(SendRoom(room="#room", text=text))
    message = await bob.expect(RoomMessage)
    assert message.text.encode() == text.encode()


async def test_sequence_numbers_are_dense_per_room(server: RunningServer,
                                                   client_factory: ClientFactory) -> None:
    """CP-MSG-7, CP-MSG-8: seq runs 1, 2, 3... without holes in each room on its own;
    msg_id is unique across rooms."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#a", alice, bob)
    await join_all("#b", alice, bob)
    oks: dict[str, list[Ok]] = {"#a": [], "#b": []}
    for index in range(12):
        room = "#a" if index % 3 else "#b"
        sender = alice if index % 2 else bob
        oks[room].append(ok_of(await sender.request(SendRoom(room=room, text=f"m{index}"))))
    assert [ok.seq for ok in oks["#a"]] == list(range(1, 9))
    assert [ok.seq for ok in oks["#b"]] == list(range(1, 5))
    ids = [ok.msg_id for room_oks in oks.values() for ok in room_oks]
    assert len(set(ids)) == len(ids) and 0 not in ids


@pytest.mark.server_config(limits=Limits(msg_rate_burst=100, msg_rate_interval_ms=10))
async def test_concurrent_senders_every_member_sees_one_order(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-MSG-8, CP-MSG-10, CP-REQ-5, CP-REQ-9: three members pipeline 25 messages each at
    the same time; the server numbers them 1..75 without holes; every member receives
    the others' messages in increasing seq order, and all agree on what each seq is."""
    names = ("alice", "bob", "carol", "dave")
    clients = [await client_factory(n) for n in names]
    await join_all("#race", *clients)
    senders = clients[:3]
    per_sender = 25

    async def pipeline(client: ChatTestClient) -> list[Ok]:
        ids = [await client.send(SendRoom(room="#race", client_msg_id=i + 1,
                                          text=f"{client.nick} {i}"))
               for i in range(per_sender)]
        return [ok_of(await client.response(request_id)) for request_id in ids]

    results = await asyncio.gather(*(pipeline(c) for c in senders))
    total = per_sender * len(senders)
    by_seq: dict[int, tuple[str, str]] = {}
    for client, oks in zip(senders, results, strict=True):
        seqs = [ok.seq for ok in oks]
        assert seqs == sorted(seqs), f"{client.nick}'s OKs are out of order (CP-REQ-5)"
        for i, ok in enumerate(oks):
            by_seq[ok.seq] = (client.nick or "", f"{client.nick} {i}")
    assert sorted(by_seq) == list(range(1, total + 1))

    for client in clients:
        received = of_type(await client.barrier(), RoomMessage)
        seqs = [m.seq for m in received]
        assert seqs == sorted(seqs), f"{client.nick} saw seqs out of order"
        assert all((m.sender, m.text) == by_seq[m.seq] for m in received)
        expected = {seq for seq, (sender, _) in by_seq.items() if sender != client.nick}
        assert set(seqs) == expected and len(seqs) == len(expected)


async def test_private_message_reaches_only_the_addressee(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-MSG-4, CP-MSG-7, CP-NICK-2: the addressee (named in any letter case) gets one
    PRIVATE_MESSAGE with the OK's identity (seq 0); a third client in the same room as
    both sees nothing, proven by its PING barrier; the sender gets no copy."""
    alice, bob, carol = [await client_factory(n) for n in ("alice", "bob", "carol")]
    await join_all("#room", alice, bob, carol)
    ok = ok_of(await alice.request(SendPrivate(nick="BOB", client_msg_id=9, text="psst, bob")))
    assert ok.msg_id != 0 and ok.seq == 0 and ok.timestamp_ms > 0
    events = await bob.barrier()
    assert len(events) == 1
    message = events[0]
    assert isinstance(message, PrivateMessage)
    assert (message.request_id, message.msg_id, message.timestamp_ms, message.sender,
            message.client_msg_id, message.text) == (0, ok.msg_id, ok.timestamp_ms, "alice",
                                                     9, "psst, bob")
    assert await carol.barrier() == []
    assert await alice.barrier() == []


async def test_private_message_to_oneself(server: RunningServer,
                                          client_factory: ClientFactory) -> None:
    """CP-MSG-4 (to oneself): the PRIVATE_MESSAGE arrives before the OK."""
    alice = await client_factory("alice")
    request_id = await alice.send(SendPrivate(nick="alice", text="note to self"))
    ok = ok_of(await alice.response(request_id))
    events = await alice.barrier()
    messages = of_type(events, PrivateMessage)
    assert [(m.sender, m.text, m.msg_id) for m in messages] == [
        ("alice", "note to self", ok.msg_id)]


async def test_private_message_to_nobody(server: RunningServer,
                                         client_factory: ClientFactory) -> None:
    """CP-MSG-5: SEND_PRIVATE to a nick no connection holds is NO_SUCH_NICK (also after
    its holder left)."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    refused(await alice.request(SendPrivate(nick="nobody", text="hi")), ErrorCode.NO_SUCH_NICK)
    await bob.quit()
    refused(await alice.request(SendPrivate(nick="bob", text="hi")), ErrorCode.NO_SUCH_NICK)


@pytest.mark.server_config(limits=Limits(max_message_length=100))
async def test_message_longer_than_advertised(server: RunningServer,
                                              client_factory: ClientFactory) -> None:
    """CP-MSG-2: a text over max_message_length BYTES is MESSAGE_TOO_LONG for SEND_ROOM
    and SEND_PRIVATE, and nothing is delivered; exactly the limit is fine."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    await alice.ok(SendRoom(room="#room", text="x" * 100))
    await alice.ok(SendRoom(room="#room", text="\u00e9" * 50))
    assert len(of_type(await bob.barrier(), RoomMessage)) == 2
    for text in ("x" * 101, "\u00e9" * 51, "\U0001f600" * 26):
        refused(await alice.request_unchecked(SendRoom, room="#room", client_msg_id=0,
                                              text=text), ErrorCode.MESSAGE_TOO_LONG)
        refused(await alice.request_unchecked(SendPrivate, nick="bob", client_msg_id=0,
                                              text=text), ErrorCode.MESSAGE_TOO_LONG)
    assert await bob.barrier() == []


@pytest.mark.parametrize("text", ["", "esc \x1b]0;pwned\x07", "carriage\rreturn", "del\x7f",
                                  "c1 \u0085 next line", "nul\x00", "bs\x08"])
async def test_message_text_must_be_safe_and_non_empty(server: RunningServer,
                                                       client_factory: ClientFactory,
                                                       text: str) -> None:
    """CP-FIELD-3, CP-FIELD-5: an empty text, or one with C0 controls (but TAB/LF), DEL or
    C1 controls, is INVALID_FIELD for SEND_ROOM and SEND_PRIVATE; nothing is delivered."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    refused(await alice.request_unchecked(SendRoom, room="#room", client_msg_id=0, text=text),
            ErrorCode.INVALID_FIELD)
    refused(await alice.request_unchecked(SendPrivate, nick="bob", client_msg_id=0, text=text),
            ErrorCode.INVALID_FIELD)
    assert await bob.barrier() == []


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                 b"abc\xe2\x82"])
async def test_message_text_must_be_utf8(server: RunningServer, client_factory: ClientFactory,
                                         bad: bytes) -> None:
    """CP-FIELD-2: invalid UTF-8 (stray byte, overlong form, encoded surrogate, above
    U+10FFFF, cut sequence) is INVALID_UTF8, non-fatal, with the request's id; nothing is
    delivered and the connection goes on."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    request_id = alice.next_request_id()
    body = str8("#room") + (0).to_bytes(8, "big") + str16(bad)

    error = refused(await alice.request_raw(raw_frame(0x0301, request_id, body), request_id),
                    ErrorCode.INVALID_UTF8)
    assert error.request_id == request_id
    assert await bob.barrier() == []
    await alice.ok(SendRoom(room="#room", text="still connected"))
    assert len(of_type(await bob.barrier(), RoomMessage)) == 1


async def test_idempotent_resend(server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-MSG-11: a SEND_ROOM repeating (sender nick fold, room, nonzero client_msg_id)
    of a retained message is answered OK with the ORIGINAL identity and delivered to
    nobody, even with another text, even after a reconnect as "ALICE"; the same id in
    another room, or client_msg_id 0, is a new message."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    await join_all("#other", alice, bob)
    first = ok_of(await alice.request(SendRoom(room="#room", client_msg_id=77,
                                               text="deploying now")))
    assert len(of_type(await bob.barrier(), RoomMessage)) == 1
    again = ok_of(await alice.request(SendRoom(room="#room", client_msg_id=77,
                                               text="deploying now (resent)")))
    assert (again.msg_id, again.seq, again.timestamp_ms) == (
        first.msg_id, first.seq, first.timestamp_ms)
    assert await bob.barrier() == []

    other_room = ok_of(await alice.request(SendRoom(room="#other", client_msg_id=77,
                                                    text="deploying now")))
    assert other_room.msg_id != first.msg_id
    zero_a = ok_of(await alice.request(SendRoom(room="#room", text="no id")))
    zero_b = ok_of(await alice.request(SendRoom(room="#room", text="no id")))
    assert zero_a.msg_id != zero_b.msg_id and zero_b.seq == zero_a.seq + 1
    assert len(of_type(await bob.barrier(), RoomMessage)) == 3

    # Another sender with the same client_msg_id is another message.
    bobs = ok_of(await bob.request(SendRoom(room="#room", client_msg_id=77, text="mine")))
    assert bobs.msg_id != first.msg_id
    await alice.barrier()

    # The connection is lost; the client comes back (other spelling) and resends.
    await alice.close()
    await bob.expect(lambda e: e.NAME == "MEMBER_LEFT")
    alice2 = await client_factory("ALICE")
    await alice2.ok(Join(room="#room", resume=True, last_seen_seq=first.seq))
    resent = ok_of(await alice2.request(SendRoom(room="#room", client_msg_id=77,
                                                 text="deploying now")))
    assert (resent.msg_id, resent.seq) == (first.msg_id, first.seq)
    assert of_type(await bob.barrier(), RoomMessage) == []


async def test_sender_is_the_nick_at_the_time_of_sending(server: RunningServer,
                                                         client_factory: ClientFactory) -> None:
    """CP-MSG-3, CP-HIST-3: ROOM_MESSAGE names the sender's nick at the time of sending,
    live and in a later replay, also after the sender changed nick."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    await alice.ok(SendRoom(room="#room", text="as alice"))
    await alice.ok(Nick(nick="Alicia"))
    await alice.ok(SendRoom(room="#room", text="as alicia"))
    live = of_type(await bob.barrier(), RoomMessage)
    assert [(m.sender, m.text) for m in live] == [("alice", "as alice"), ("Alicia", "as alicia")]
    carol = await client_factory("carol")
    replay = of_type(await carol.ok(Join(room="#room")), RoomMessage)
    assert [(m.sender, m.text) for m in replay] == [("alice", "as alice"),
                                                    ("Alicia", "as alicia")]
