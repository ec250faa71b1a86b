"""Requests and responses: request ids, one final response each, order, intermediates, events."""

from __future__ import annotations

from collections.abc import Callable

from chatproto import ErrorCode, Message, encode
from chatproto.messages import (
    Away,
    Error,
    Hello,
    HistoryGap,
    Join,
    ListMembers,
    Login,
    MemberJoined,
    MemberLeft,
    Nick,
    NickChanged,
    Ok,
    Part,
    Ping,
    Presence,
    RoomInfo,
    RoomMessage,
    SendRoom,
    SetTopic,
    TopicChanged,
    UserInfo,
)
from chatproto.messages import History as HistoryRequest
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import FINAL_TYPES, KIT_CLIENT_NAME, Peer, ServerContext
from conformance.suites.server._steps import (
    fit_topic,
    new_password,
    registered_account,
    room_with,
    text_is,
)
from conformance.transcript import describe, outcome


async def _invalid_request_id(ctx: ServerContext, peer: Peer, what: str) -> None:
    """The next ERROR with request_id 0 on ``peer`` is INVALID_REQUEST_ID (CP-REQ-3)."""
    error = await peer.expect_type(Error, req="CP-REQ-3", where=lambda e: e.request_id == 0)
    ctx.check(error.code == ErrorCode.INVALID_REQUEST_ID, "CP-REQ-3",
              f"{what} with request_id 0 was answered with {outcome(error)}; the spec requires "
              "ERROR INVALID_REQUEST_ID with request_id 0")


def _batch(room: str, other: str, *, pings: bool = True) -> list[Message]:
    """Requests of many kinds, successful and refused, for one connection that is in ``room``.

    Without ``pings``, for the order of final responses: a PONG that jumps the
    queue breaks CP-KEEP-2, which its own case checks.
    """
    batch: list[Message] = [
        Ping(token=b"1"),
        ListMembers(room=room),
        SendRoom(room=room, text="batched"),
        Part(room=other),
        HistoryRequest(room=room, limit=5),
        Join(room=room),
        SetTopic(room=room, topic="batch topic"),
        Join(room=other),
        Ping(token=b"2"),
        ListMembers(room=other),
        Part(room=other, reason="done"),
        Ping(token=b"3"),
    ]
    return batch if pings else [m for m in batch if not isinstance(m, Ping)]


def _finals(peer: Peer, ids: set[int]) -> list[Message]:
    return [r.message for r in peer.received if r.message is not None
            and r.request_id in ids and r.message.NAME in FINAL_TYPES]


@server_case("CP-REQ-3")
async def request_id_zero_refused_and_join_not_performed(ctx: ServerContext) -> None:
    """JOIN with request_id 0 gets INVALID_REQUEST_ID (request_id 0); nobody sees a join."""
    room = ctx.room("rid0")
    (carol,) = await room_with(ctx, room, "carol")
    alice = await ctx.client("alice")
    await alice.send_raw(encode(Join(request_id=0, room=room)), note="JOIN with request_id 0")
    await _invalid_request_id(ctx, alice, "a JOIN")
    await carol.assert_none(MemberJoined, req="CP-REQ-3",
                            why="a JOIN with request_id 0 is not performed")
    await alice.ok(Join(room=room), req="CP-REQ-3")


@server_case("CP-REQ-3")
async def request_id_zero_send_room_and_ping_not_performed(ctx: ServerContext) -> None:
    """SEND_ROOM and PING with request_id 0 get INVALID_REQUEST_ID; no message, no PONG."""
    room = ctx.room("rid0")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    await alice.send_raw(encode(SendRoom(request_id=0, room=room, text="zero")),
                         note="SEND_ROOM with request_id 0", pace=SendRoom(room=room, text="x"))
    await _invalid_request_id(ctx, alice, "a SEND_ROOM")
    await alice.send_raw(encode(Ping(request_id=0, token=b"zero")), note="PING with request_id 0")
    await _invalid_request_id(ctx, alice, "a PING")
    await bob.assert_none(RoomMessage, req="CP-REQ-3",
                          why="a SEND_ROOM with request_id 0 is not performed")
    await alice.assert_none(lambda m: m.NAME == "PONG" and m.request_id == 0, req="CP-REQ-3",
                            why="a PING with request_id 0 is not answered with PONG")


@server_case("CP-REQ-3")
async def hello_with_request_id_zero_refused_and_nick_stays_free(ctx: ServerContext) -> None:
    """HELLO with request_id 0 gets INVALID_REQUEST_ID; its nick stays free for others."""
    peer = await ctx.connect("raw")
    nick = ctx.nick("alice")
    await peer.send_raw(encode(Hello(request_id=0, min_version=1, max_version=1, nick=nick,
                                     client_name=KIT_CLIENT_NAME)),
                        note="HELLO with request_id 0")
    await _invalid_request_id(ctx, peer, "a HELLO")
    other = await ctx.connect("other")
    await other.hello(nick, req="CP-REQ-3")


@server_case("CP-REQ-4")
async def every_request_gets_exactly_one_final_response(ctx: ServerContext) -> None:
    """A pipelined batch of successful and refused requests: one final each, of the right kind."""
    room, other = ctx.room("one"), ctx.room("other")
    (alice,) = await room_with(ctx, room, "alice")
    await alice.barrier()  # the batch's PINGs are answered at all (else CP-KEEP-1 fails here)
    sent = await alice.send_together(_batch(room, other))
    await alice.response(sent[-1].request_id, "PING", req="CP-REQ-4")
    await alice.barrier()
    ids = {m.request_id for m in sent}
    finals = _finals(alice, ids)
    for message in sent:
        mine = [f for f in finals if f.request_id == message.request_id]
        ctx.check(len(mine) == 1, "CP-REQ-4",
                  f"{message.NAME} (request {message.request_id}) got {len(mine)} final "
                  f"responses: {[describe(f) for f in mine]}")
        final = mine[0]
        assert message.FINAL_RESPONSE is not None
        allowed = {message.FINAL_RESPONSE.NAME, "ERROR"}
        ctx.check(final.NAME in allowed, "CP-REQ-4",
                  f"{message.NAME} was answered with {describe(final)}; the spec allows only "
                  f"{' or '.join(sorted(str(a) for a in allowed))}")


def _check_finals_in_order(ctx: ServerContext, peer: Peer, sent: list[Message],
                           why: str = "") -> None:
    """CP-REQ-5: ``peer`` got the final responses of ``sent`` in the order it sent them."""
    order = [f.request_id for f in _finals(peer, {m.request_id for m in sent})]
    expected = [m.request_id for m in sent]
    names = {m.request_id: m.NAME for m in sent}
    ctx.check(order == expected, "CP-REQ-5",
              "the final responses arrived for requests "
              f"{[f'{names[i]}#{i}' for i in order]}; they were sent as "
              f"{[f'{names[i]}#{i}' for i in expected]}{why}")


@server_case("CP-REQ-5")
async def final_responses_come_in_request_order(ctx: ServerContext) -> None:
    """The finals of a pipelined batch of mixed requests arrive in the order of the requests."""
    room, other = ctx.room("order"), ctx.room("other")
    (alice,) = await room_with(ctx, room, "alice")
    sent = await alice.send_together(_batch(room, other, pings=False))
    for message in sent:
        await alice.response(message.request_id, message.NAME, req="CP-REQ-4")
    _check_finals_in_order(ctx, alice, sent)


@server_case("CP-REQ-6")
async def intermediate_frames_come_before_the_final_with_the_request_id(ctx: ServerContext) -> None:
    """ROOM_INFO, USER_INFO and history frames carry their request's id and precede its OK."""
    room = ctx.room("inter")
    alice, bob, carol = await room_with(ctx, room, "alice", "bob", "carol")
    await alice.say(room, "one")
    await alice.say(room, "two")
    dave = await ctx.client("dave")
    requests: list[Message] = [Join(room=room), ListMembers(room=room),
                               HistoryRequest(room=room, limit=10)]
    sent = await dave.send_together(requests)
    for message in sent:
        await dave.response(message.request_id, message.NAME, req="CP-REQ-4")
    await dave.barrier()
    received = [r.message for r in dave.received if r.message is not None]
    for message in sent:
        final_at = next(i for i, m in enumerate(received)
                        if m.request_id == message.request_id and m.NAME in FINAL_TYPES)
        late = [m for m in received[final_at + 1:] if m.request_id == message.request_id]
        ctx.check(not late, "CP-REQ-6",
                  f"{describe(late[0]) if late else ''} arrived after the final response to "
                  f"{message.NAME} (request {message.request_id})")
    # These kinds are only ever intermediate frames, never events.
    stray = [m for m in received if m.request_id == 0 and isinstance(m, RoomInfo | UserInfo
                                                                        | HistoryGap)]
    ctx.check(not stray, "CP-REQ-6",
              f"dave received {describe(stray[0]) if stray else ''} with request_id 0; an "
              "intermediate frame carries its request's id")
    members = [m for m in received
               if isinstance(m, UserInfo) and m.request_id == sent[1].request_id]
    nicks = {m.nick for m in members}
    wanted = {alice.nick, bob.nick, carol.nick, dave.nick}
    ctx.check(wanted <= nicks, "CP-REQ-6",
              f"the USER_INFO frames carrying LIST_MEMBERS' request_id name {sorted(nicks)}; "
              f"the room's members are {sorted(wanted)}")
    history = [m for m in received if isinstance(m, RoomMessage | HistoryGap)
               and m.request_id == sent[2].request_id]
    texts = {m.text for m in history if isinstance(m, RoomMessage)}
    ctx.check("two" in texts, "CP-REQ-6",
              f"the ROOM_MESSAGE frames carrying HISTORY's request_id hold {sorted(texts)}, "
              "not the room's newest message 'two'")
    infos = [m for m in received if isinstance(m, RoomInfo)]
    ctx.check(all(m.request_id == sent[0].request_id for m in infos), "CP-REQ-6",
              "the ROOM_INFO answering JOIN did not carry the JOIN's request_id")


EVENT_RULES: list[tuple[type[Message], str]] = [
    (MemberJoined, "CP-ROOM-10"),
    (RoomMessage, "CP-MSG-1"),
    (TopicChanged, "CP-ROOM-15"),
    (Presence, "CP-USER-3"),
    (NickChanged, "CP-NICK-9"),
    (MemberLeft, "CP-ROOM-14"),
]
"""Events another member's requests cause, with the rule that requires each."""


@server_case("CP-REQ-7")
async def events_carry_request_id_zero(ctx: ServerContext) -> None:
    """MEMBER_JOINED, ROOM_MESSAGE, TOPIC_CHANGED, PRESENCE, NICK_CHANGED, MEMBER_LEFT: id 0."""
    room = ctx.room("events")
    (bob,) = await room_with(ctx, room, "bob")
    alice = await ctx.client("alice")
    # Alice's request ids are ones bob is not using, so a copied id would stand out.
    requests: list[Message] = [Join(request_id=90001, room=room),
                               SendRoom(request_id=90002, room=room, text="event"),
                               SetTopic(request_id=90003, room=room,
                                        topic=fit_topic(alice, "events")),
                               Away(request_id=90004, message="brb"),
                               Nick(request_id=90005, nick=ctx.nick("alice2")),
                               Part(request_id=90006, room=room)]
    for message in requests:
        await alice.ok(message, req="CP-REQ-4")
    for cls, rule in EVENT_RULES:
        event = await bob.expect_type(cls, req=rule)
        ctx.check(event.request_id == 0, "CP-REQ-7",
                  f"bob received {describe(event)} with request_id {event.request_id}; an event "
                  "carries request_id 0")


@server_case("CP-REQ-8")
async def pipelined_requests_each_see_the_earlier_ones(ctx: ServerContext) -> None:
    """JOIN, SET_TOPIC, SEND_ROOM, LIST_MEMBERS, HISTORY, PART, SEND_ROOM pipelined: in order."""
    room = ctx.room("seq")
    (bob,) = await room_with(ctx, room, "bob")
    alice = await ctx.client("alice")
    sent = await alice.send_together([
        Join(room=room), SetTopic(room=room, topic=fit_topic(alice, "pipelined")),
        SendRoom(room=room, text="pipelined text"), ListMembers(room=room),
        HistoryRequest(room=room, limit=5), Part(room=room),
        SendRoom(room=room, text="after part")])
    answers = [await alice.response(m.request_id, m.NAME, req="CP-REQ-4") for m in sent]
    for message, answer in zip(sent[:-1], answers[:-1], strict=True):
        ctx.check(isinstance(answer.final, Ok), "CP-REQ-8",
                  f"{message.NAME}, pipelined behind the JOIN, was answered with "
                  f"{outcome(answer.final)}; it must see the effects of the requests before it")
    members = {m.nick for m in answers[3].of_type(UserInfo)}
    ctx.check(alice.nick in members, "CP-REQ-8",
              f"LIST_MEMBERS right after the JOIN listed {sorted(members)}, without alice")
    history = [m.text for m in answers[4].of_type(RoomMessage)]
    ctx.check("pipelined text" in history, "CP-REQ-8",
              f"HISTORY right after the SEND_ROOM returned {history}, without that message")
    last = answers[-1].final
    # That the PART was seen is all that matters here; which code refuses a non-member's
    # SEND_ROOM is CP-ROOM-8's business, judged by its own case.
    ctx.check(isinstance(last, Error), "CP-REQ-8",
              f"a SEND_ROOM pipelined after PART was answered with {outcome(last)}; the PART "
              "came first, so alice is no longer a member and it is refused")
    await bob.expect_type(RoomMessage, req="CP-MSG-1", where=text_is("pipelined text"))


def _about(event: Message) -> str:
    """The nick an event is about: who joined, sent, set the topic, went away or left."""
    if isinstance(event, RoomMessage):
        return event.sender
    if isinstance(event, TopicChanged):
        return event.by
    return str(getattr(event, "nick", ""))


async def _queued_before_final(ctx: ServerContext, peers: list[Peer], cls: type[Message],
                               match: Callable[[Message], bool], rule: str, what: str) -> None:
    """After the final of the causing request, a barrier shows the event already there."""
    for peer in peers:
        await peer.barrier()
        found = peer.take(lambda m: isinstance(m, cls) and match(m))
        if found:
            continue
        await peer.expect(lambda m: isinstance(m, cls) and match(m), req=rule, what=cls.NAME)
        raise Violation("CP-REQ-10", f"{peer.label} received the {cls.NAME} caused by {what} "
                        "only after a PING sent once the request's final response had arrived; "
                        "events are queued before the final response")


@server_case("CP-REQ-10")
async def events_are_queued_before_the_final_response(ctx: ServerContext) -> None:
    """Once JOIN, SEND_ROOM, SET_TOPIC, AWAY, PART have their OK, a barrier finds their events."""
    room = ctx.room("queued")
    bob, carol = await room_with(ctx, room, "bob", "carol")
    alice = await ctx.client("alice")
    steps: list[tuple[Message, type[Message], str, str]] = [
        (Join(room=room), MemberJoined, "CP-ROOM-10", "alice's JOIN"),
        (SendRoom(room=room, text="queued?"), RoomMessage, "CP-MSG-1", "alice's SEND_ROOM"),
        (SetTopic(room=room, topic=fit_topic(alice, "queued")), TopicChanged, "CP-ROOM-15",
         "alice's SET_TOPIC"),
        (Away(message="gone"), Presence, "CP-USER-3", "alice's AWAY"),
        (Part(room=room), MemberLeft, "CP-ROOM-14", "alice's PART"),
    ]
    for request, cls, rule, what in steps:
        await alice.ok(request, req="CP-REQ-4")
        await _queued_before_final(ctx, [bob, carol], cls,
                                   lambda m: _about(m) == alice.nick, rule, what)


@server_case("CP-REQ-5")
async def failed_logins_answered_before_the_requests_behind_them(ctx: ServerContext) -> None:
    """Wrong LOGINs pipelined with PINGs: each AUTH_FAILED (however long a server delays it,
    CP-SEC-7) comes before the PONG of the PING sent right behind it."""
    nick, _ = await registered_account(ctx, "delayed")
    peer = await ctx.client("impatient")
    batch: list[Message] = []
    for n in range(2):
        batch += [Login(nick=nick, password=new_password()), Ping(token=f"behind {n}".encode())]
    sent = await peer.send_together(batch)
    for message in sent:  # a PING left unanswered breaks the PING rule, not this one
        await peer.response(message.request_id, message.NAME,
                            req="CP-KEEP-1" if isinstance(message, Ping) else "CP-REQ-4")
    _check_finals_in_order(ctx, peer, sent, why=": a delayed AUTH_FAILED holds the answers "
                           "of the requests behind it")
