"""Rooms: names, lifetime, joining and leaving, topics and listings.

Invalid room names cannot be built through the validating message classes, so
the cases build them with ``model_construct``: the same classes and encoder,
minus the schema's checks, so the kit can send what the spec forbids.
"""

from __future__ import annotations

import secrets
import string

from chatproto import ErrorCode, Message, fold
from chatproto.messages import (
    Ban,
    Error,
    HistoryGap,
    Join,
    Kick,
    ListMembers,
    ListRooms,
    MemberJoined,
    MemberLeft,
    Mute,
    Nick,
    Ok,
    Part,
    RoomInfo,
    RoomMessage,
    SendRoom,
    SetTopic,
    TopicChanged,
    Unban,
    UserInfo,
)
from chatproto.messages import History as HistoryRequest
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import Answer, Peer, ServerContext, mixed_case
from conformance.suites.server._steps import room_with
from conformance.transcript import describe, outcome

MAX_ROOMS_TESTED = 64
"""Above this max_rooms_per_user, filling every slot takes too long: the case skips."""


def _suffix(length: int = 6) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(length))


def _fit(name: str, length: int) -> str:
    while len(name) < length:
        name += _suffix(1)
    return name[:length]


def _room_info(answer: Answer, room: str) -> RoomInfo:
    """The ROOM_INFO that a JOIN's answer starts with (CP-ROOM-9)."""
    infos = answer.of_type(RoomInfo)
    if not answer.intermediate or not isinstance(answer.intermediate[0], RoomInfo):
        first = describe(answer.intermediate[0]) if answer.intermediate else "OK"
        raise Violation("CP-ROOM-9", f"the answer to JOIN {room} starts with {first}, "
                        "not ROOM_INFO")
    if len(infos) != 1:
        raise Violation("CP-ROOM-9", f"the answer to JOIN {room} holds {len(infos)} ROOM_INFO "
                        "frames; exactly one is required")
    return infos[0]


async def _limits(ctx: ServerContext) -> None:
    if ctx.limits is None:
        await ctx.client("probe")


def _topic(ctx: ServerContext, text: str) -> str:
    """``text`` cut to the target's max_topic_length (bytes, on a character boundary)."""
    assert ctx.limits is not None
    return text.encode()[:ctx.limits.max_topic_length].decode("utf-8", "ignore")


# ---------------------------------------------------------------- room names


@server_case("CP-ROOM-1")
async def valid_edge_case_room_names_accepted(ctx: ServerContext) -> None:
    """JOIN of room names at the edges of the rules (max_room_name_length bytes) succeeds."""
    await _limits(ctx)
    assert ctx.limits is not None
    length = ctx.limits.max_room_name_length
    alice = await ctx.client("alice")
    candidates = {
        f"exactly max_room_name_length ({length}) bytes": _fit("#cfmax", length),
        "digits right after '#'": _fit("#" + "".join(secrets.choice(string.digits)
                                                     for _ in range(10)), length),
        "'-' right after '#'": _fit("#-cf", length),
        "'_' right after '#'": _fit("#_cf", length),
        "capital letters": _fit("#CF" + _suffix(), length).upper(),
        "the shortest name, '#' and one character": "#" + secrets.choice(string.ascii_letters),
    }
    for why, room in candidates.items():
        answer = await alice.request(Join(room=room), req="CP-ROOM-9")
        ctx.check(isinstance(answer.final, Ok), "CP-ROOM-1",
                  f"JOIN of the valid room name {room!r} ({why}) was answered with "
                  f"{outcome(answer.final)}, not OK")
        await alice.part(room)


@server_case("CP-ROOM-1")
async def room_name_one_byte_over_limit_refused(ctx: ServerContext) -> None:
    """A room name one byte longer than max_room_name_length is refused with INVALID_ROOM_NAME."""
    await _limits(ctx)
    assert ctx.limits is not None
    length = ctx.limits.max_room_name_length
    alice = await ctx.client("alice")
    too_long = _fit("#cflong", length + 1)
    await alice.refused(Join.model_construct(room=too_long, resume=False, last_seen_seq=0),
                        ErrorCode.INVALID_ROOM_NAME, req="CP-ROOM-1")
    await alice.refused(ListMembers.model_construct(room=too_long), ErrorCode.INVALID_ROOM_NAME,
                        req="CP-ROOM-1")


INVALID_ROOMS = {
    "an empty name": "",
    "'#' alone": "#",
    "no '#'": "cf{r}",
    "'&' instead of '#'": "&cf{r}",
    "two '#'": "##cf{r}",
    "a space": "#cf {r}",
    "a leading space": " #cf{r}",
    "a dot": "#cf.{r}",
    "a comma": "#cf,{r}",
    "a colon": "#cf:{r}",
    "a NUL byte": "#cf{r}\x00",
    "a Latin letter with an accent": "#caf\u00e9{r}",
    "a Cyrillic look-alike letter": "#\u0430cf{r}",
    "fullwidth letters": "#\uff43\uff46{r}",
}


@server_case("CP-ROOM-1")
async def invalid_room_names_refused_in_join(ctx: ServerContext) -> None:
    """JOIN of a name without '#', with spaces, punctuation or non-ASCII: INVALID_ROOM_NAME."""
    alice = await ctx.client("alice")
    for why, pattern in INVALID_ROOMS.items():
        room = pattern.format(r=_suffix())
        answer = await alice.request(Join.model_construct(room=room, resume=False,
                                                          last_seen_seq=0), req="CP-ROOM-1")
        final = answer.final
        ctx.check(isinstance(final, Error) and final.code == ErrorCode.INVALID_ROOM_NAME,
                  "CP-ROOM-1", f"JOIN {room!r} ({why}) was answered with {outcome(final)}; "
                  "the spec requires ERROR INVALID_ROOM_NAME")


@server_case("CP-ROOM-1")
async def invalid_room_names_refused_in_other_requests(ctx: ServerContext) -> None:
    """PART, SET_TOPIC, LIST_MEMBERS, HISTORY, SEND_ROOM with a bad room: INVALID_ROOM_NAME."""
    alice = await ctx.client("alice")
    for room in (f"cf{_suffix()}", f"#cf {_suffix()}", f"#caf\u00e9{_suffix()}"):
        for request in (Part.model_construct(room=room, reason=""),
                        SetTopic.model_construct(room=room, topic=""),
                        ListMembers.model_construct(room=room),
                        HistoryRequest.model_construct(room=room, before_seq=0, limit=5),
                        SendRoom.model_construct(room=room, client_msg_id=0, text="hi")):
            await alice.refused(request, ErrorCode.INVALID_ROOM_NAME, req="CP-ROOM-1")


# ------------------------------------------------------------ same and shown


@server_case("CP-ROOM-2")
async def room_names_equal_under_fold_are_one_room(ctx: ServerContext) -> None:
    """JOIN of a case variant enters the same room; another variant then is ALREADY_IN_ROOM."""
    room = mixed_case(ctx.room("fold"))
    (alice,) = await room_with(ctx, room, "alice")
    ok = await alice.say(room, "one room, three spellings")
    bob = await ctx.client("bob")
    info = _room_info(await bob.join(room.upper()), room.upper())
    # The seq alice's OK carried, not 1: which seqs a room gives out is CP-MSG-8's business.
    ctx.check(info.last_seq == ok.seq, "CP-ROOM-2",
              f"JOIN {room.upper()!r} after alice's message in {room!r} gave {describe(info)}; "
              f"the names fold alike, so it is the same room, with last_seq {ok.seq} (the seq "
              "of alice's message)")
    await alice.refused(Join(room=room.lower()), ErrorCode.ALREADY_IN_ROOM, req="CP-ROOM-2")


@server_case("CP-ROOM-2")
async def room_names_with_different_folds_are_different(ctx: ServerContext) -> None:
    """Room names whose folds differ (#a_b and #a-b) are different rooms."""
    base = ctx.room("diff")
    (alice,) = await room_with(ctx, base + "_x", "alice")
    await alice.say(base + "_x", "in the underscore room")
    bob = await ctx.client("bob")
    info = _room_info(await bob.join(base + "-x"), base + "-x")
    ctx.check(info.last_seq == 0, "CP-ROOM-2",
              f"JOIN {base + '-x'!r} while alice is in {base + '_x'!r} gave {describe(info)}; "
              "the folds differ, so it is a new room without messages")
    await bob.say(base + "-x", "in the hyphen room")

    def from_bob(message: Message) -> bool:
        return (isinstance(message, MemberJoined) and message.nick == bob.nick) or (
            isinstance(message, RoomMessage) and message.text == "in the hyphen room")

    await alice.assert_none(from_bob, req="CP-ROOM-2",
                            why=f"bob is in {base + '-x'!r}, a different room from alice's")


@server_case("CP-ROOM-3")
async def room_shown_with_creators_spelling(ctx: ServerContext) -> None:
    """Every frame names a room as its creating JOIN spelled it, whatever spelling requests use."""
    room = mixed_case(ctx.room("spell"))
    alice = await ctx.client("alice")
    await alice.join(room)
    bob = await ctx.client("bob")
    other = room.lower()

    def shown(where: str, name: str) -> None:
        ctx.check(name == room, "CP-ROOM-3",
                  f"{where} names the room {name!r}; the creating JOIN spelled it {room!r}")

    shown("ROOM_INFO answering a JOIN", _room_info(await bob.join(other), other).room)
    shown("MEMBER_JOINED", (await alice.expect_type(MemberJoined, req="CP-ROOM-10")).room)
    await bob.say(other, "spelling")
    shown("ROOM_MESSAGE", (await alice.expect_type(RoomMessage, req="CP-MSG-1")).room)
    await bob.ok(SetTopic(room=room.upper(), topic=_topic(ctx, "spelling")), req="CP-ROOM-15")
    shown("TOPIC_CHANGED", (await alice.expect_type(TopicChanged, req="CP-ROOM-15")).room)
    history = await bob.ok(HistoryRequest(room=other, limit=1), req="CP-HIST-10")
    for message in history.of_type(RoomMessage):
        shown("ROOM_MESSAGE replayed by HISTORY", message.room)
    listed = await bob.ok(ListRooms(), req="CP-ROOM-17")
    infos = [i for i in listed.of_type(RoomInfo) if fold(i.room) == fold(room)]
    ctx.check(bool(infos), "CP-ROOM-17", f"LIST_ROOMS does not list {room!r}")
    shown("ROOM_INFO of LIST_ROOMS", infos[0].room)
    await bob.part(room.upper())
    shown("MEMBER_LEFT", (await alice.expect_type(MemberLeft, req="CP-ROOM-14")).room)


# ------------------------------------------------------------------ lifetime


@server_case("CP-ROOM-4")
async def join_creates_room_with_empty_topic_and_no_messages(ctx: ServerContext) -> None:
    """The first JOIN of a name creates the room: empty topic, last_seq 0, no history replayed."""
    room = ctx.room("new")
    alice = await ctx.client("alice")
    answer = await alice.join(room)
    info = _room_info(answer, room)
    ctx.check(info.topic == "" and info.last_seq == 0, "CP-ROOM-4",
              f"JOIN of the new room {room} was answered with {describe(info)}; a new room has "
              "an empty topic and last_seq 0")
    replayed = [m for m in answer.intermediate if isinstance(m, RoomMessage | HistoryGap)]
    ctx.check(not replayed, "CP-ROOM-4",
              f"JOIN of the new room {room} replayed {describe(replayed[0]) if replayed else ''}"
              "; a new room has no messages")


@server_case("CP-ROOM-5", "CP-ROOM-17", "CP-MSG-8")
async def room_kept_after_last_member_leaves(ctx: ServerContext) -> None:
    """A room whose last member left keeps topic, history and seq counter, and is listed."""
    room = ctx.room("kept")
    (alice,) = await room_with(ctx, room, "alice")
    topic = _topic(ctx, "kept topic \u2713")
    await alice.ok(SetTopic(room=room, topic=topic), req="CP-ROOM-15")
    last = 0
    for n in range(3):
        last = (await alice.say(room, f"kept {n}")).seq
    before = await alice.ok(HistoryRequest(room=room, limit=3), req="CP-HIST-10")
    retained = [(m.seq, m.msg_id, m.text) for m in before.of_type(RoomMessage)]
    await alice.part(room)

    bob = await ctx.client("bob")
    listed = await bob.ok(ListRooms(), req="CP-ROOM-17")
    infos = [i for i in listed.of_type(RoomInfo) if fold(i.room) == fold(room)]
    info = _room_info(await bob.join(room), room)
    ctx.check(info.topic == topic and info.last_seq == last, "CP-ROOM-5",
              f"rejoining {room} after it emptied gave {describe(info)}; expected its topic "
              f"{topic!r} and last_seq {last} (the seq of its latest message) to be kept")
    # The room evidently existed while empty, so LIST_ROOMS had to list it.
    ctx.check(bool(infos), "CP-ROOM-17",
              f"LIST_ROOMS did not list {room} while it had no members")
    ctx.check(infos[0].member_count == 0, "CP-ROOM-17",
              f"LIST_ROOMS described the empty room {room} as {describe(infos[0])}; "
              "member_count must be 0")
    after = await bob.ok(HistoryRequest(room=room, limit=3), req="CP-HIST-10")
    still = [(m.seq, m.msg_id, m.text) for m in after.of_type(RoomMessage)]
    ctx.check(still == retained, "CP-ROOM-5",
              f"the room's retained history was {retained} before it emptied and {still} after")
    ok = await bob.say(room, "after the break")
    # A counter that starts over breaks this rule; any other wrong seq breaks CP-MSG-8.
    ctx.check(ok.seq > last, "CP-ROOM-5",
              f"the first message after the room emptied got seq {ok.seq}; the room's counter "
              f"was at {last} and must be kept")
    ctx.check(ok.seq == last + 1, "CP-MSG-8",
              f"the first message after the room emptied got seq {ok.seq}; the counter was at "
              f"{last}, so it must be {last + 1}")


@server_case("CP-ROOM-7")
async def requests_for_unknown_room_refused(ctx: ServerContext) -> None:
    """PART, SET_TOPIC, SEND_ROOM, HISTORY, LIST_MEMBERS for a missing room: NO_SUCH_ROOM."""
    alice = await ctx.client("alice")
    room = ctx.room("nowhere")
    for request in (Part(room=room), SetTopic(room=room, topic=""),
                    SendRoom(room=room, text="hello?"), HistoryRequest(room=room, limit=5),
                    ListMembers(room=room)):
        await alice.refused(request, ErrorCode.NO_SUCH_ROOM, req="CP-ROOM-7")


@server_case("CP-ROOM-7", needs=("oper",))
async def moderation_of_unknown_room_refused(ctx: ServerContext) -> None:
    """An operator's KICK, BAN, UNBAN and MUTE for a room that does not exist: NO_SUCH_ROOM."""
    op = await ctx.client("op")
    await op.oper()
    bob = await ctx.client("bob")
    room = ctx.room("nowhere")
    for request in (Kick(room=room, nick=bob.nick), Ban(room=room, nick=bob.nick),
                    Unban(room=room, nick=bob.nick), Mute(room=room, nick=bob.nick, muted=True)):
        await op.refused(request, ErrorCode.NO_SUCH_ROOM, req="CP-ROOM-7")


@server_case("CP-ROOM-8")
async def requests_from_non_member_refused(ctx: ServerContext) -> None:
    """PART, SET_TOPIC, SEND_ROOM and HISTORY from a non-member (or former member): NOT_IN_ROOM."""
    room = ctx.room("members")
    await room_with(ctx, room, "owner")
    alice = await ctx.client("alice")
    requests: list[Message] = [Part(room=room), SetTopic(room=room, topic=""),
                               SendRoom(room=room, text="hello"),
                               HistoryRequest(room=room, limit=5)]
    for request in requests:
        await alice.refused(request, ErrorCode.NOT_IN_ROOM, req="CP-ROOM-8")
    await alice.join(room)
    await alice.part(room)
    for request in requests:
        await alice.refused(request, ErrorCode.NOT_IN_ROOM, req="CP-ROOM-8")


# ------------------------------------------------------------------- joining


@server_case("CP-ROOM-9")
async def join_answered_with_room_info_then_history_then_ok(ctx: ServerContext) -> None:
    """JOIN is answered ROOM_INFO (member_count counting the joiner), history, then OK."""
    room = ctx.room("join")
    alice = await ctx.client("alice")
    first = _room_info(await alice.join(room), room)
    ctx.check(first.member_count == 1, "CP-ROOM-9",
              f"the creator's ROOM_INFO says member_count {first.member_count}; the joiner "
              "counts, so 1")
    last = 0
    for n in range(2):
        last = (await alice.say(room, f"before bob {n}")).seq
    bob = await ctx.client("bob")
    answer = await bob.join(room)
    info = _room_info(answer, room)
    ctx.check(info.member_count == 2 and info.last_seq == last, "CP-ROOM-9",
              f"bob's JOIN was answered with {describe(info)}; expected member_count 2 (alice "
              f"and bob) and last_seq {last} (the seq of alice's latest message)")
    for frame in answer.intermediate[1:]:
        ctx.check(isinstance(frame, RoomMessage | HistoryGap), "CP-ROOM-9",
                  f"the answer to JOIN holds {describe(frame)} after ROOM_INFO; only the "
                  "history replay may come between ROOM_INFO and OK")
    ctx.check(isinstance(answer.final, Ok), "CP-ROOM-9",
              f"JOIN was answered with {outcome(answer.final)} at the end, not OK")


@server_case("CP-ROOM-10")
async def member_joined_sent_to_others_not_to_joiner(ctx: ServerContext) -> None:
    """A JOIN sends MEMBER_JOINED (room, nick) to every other member, none to the joiner."""
    room = ctx.room("mj")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    carol = await ctx.client("carol")
    await carol.join(room)
    with ctx.attribute("CP-ROOM-10"):
        for peer in (alice, bob):
            joined = await peer.expect_type(MemberJoined, req="CP-ROOM-10",
                                            where=lambda m: m.nick == carol.nick)
            ctx.check(fold(joined.room) == fold(room), "CP-ROOM-10",
                      f"{peer.label} received {describe(joined)} for carol's JOIN of {room}")
    await carol.assert_none(MemberJoined, req="CP-ROOM-10",
                            why="the joining client gets ROOM_INFO, not MEMBER_JOINED")


@server_case("CP-ROOM-11")
async def join_of_room_already_in_refused(ctx: ServerContext) -> None:
    """JOIN of a room the client is already in is refused with ALREADY_IN_ROOM."""
    room = ctx.room("twice")
    (alice,) = await room_with(ctx, room, "alice")
    await alice.refused(Join(room=room), ErrorCode.ALREADY_IN_ROOM, req="CP-ROOM-11")
    await alice.refused(Join(room=room, resume=True, last_seen_seq=0),
                        ErrorCode.ALREADY_IN_ROOM, req="CP-ROOM-11")


async def _join_up_to_the_cap(ctx: ServerContext, client: Peer, prefix: str) -> list[str]:
    """Join ``client`` to ``max_rooms_per_user`` new rooms, which it returns; the case is
    skipped where the kit cannot fill them (a large cap, or a server-wide room cap)."""
    await _limits(ctx)
    assert ctx.limits is not None
    limit = ctx.limits.max_rooms_per_user
    if limit > MAX_ROOMS_TESTED:
        ctx.skip(f"max_rooms_per_user is {limit}; the kit fills at most {MAX_ROOMS_TESTED}")
    rooms = [ctx.room(f"{prefix}{n}") for n in range(limit)]
    for number, room in enumerate(rooms, 1):
        answer = await client.request(Join(room=room), req="CP-ROOM-9")
        final = answer.final
        if isinstance(final, Error) and final.code == ErrorCode.TOO_MANY_ROOMS:
            ctx.skip("the server refused to create a new room (CP-ROOM-6 allows a server-wide "
                     f"room cap) before {client.nick} reached max_rooms_per_user")
        ctx.check(isinstance(final, Ok), "CP-ROOM-9",
                  f"JOIN {room} ({client.nick}'s room {number} of {limit}) was answered with "
                  f"{outcome(final)}")
    return rooms


@server_case("CP-ROOM-12")
async def join_beyond_max_rooms_per_user_refused(ctx: ServerContext) -> None:
    """A JOIN by a member of max_rooms_per_user rooms is refused with TOO_MANY_ROOMS."""
    # The extra room exists already, so a refusal cannot be a server-wide room cap.
    extra = ctx.room("extra")
    await room_with(ctx, extra, "owner")
    alice = await ctx.client("alice")
    rooms = await _join_up_to_the_cap(ctx, alice, "m")
    limit = len(rooms)
    await alice.refused(Join(room=extra), ErrorCode.TOO_MANY_ROOMS, req="CP-ROOM-12")
    await alice.part(rooms[0])
    answer = await alice.request(Join(room=extra), req="CP-ROOM-12")
    ctx.check(isinstance(answer.final, Ok), "CP-ROOM-12",
              f"after leaving one of {limit} rooms, JOIN was answered with "
              f"{outcome(answer.final)}; alice is a member of fewer than max_rooms_per_user")


@server_case("CP-ROOM-13", needs=("oper",))
async def join_of_room_where_nick_is_banned_refused(ctx: ServerContext) -> None:
    """JOIN of a room in which the client's nick is banned is refused with BANNED_FROM_ROOM."""
    room = ctx.room("ban")
    await room_with(ctx, room, "owner")
    op = await ctx.client("op")
    await op.oper()
    mallory = await ctx.client("mallory")
    await op.ok(Ban(room=room, nick=mallory.nick, reason="kit"), req="CP-OPER-6")
    await mallory.refused(Join(room=room), ErrorCode.BANNED_FROM_ROOM, req="CP-ROOM-13")


@server_case("CP-ROOM-22", needs=("oper",))
async def join_refusals_come_in_order(ctx: ServerContext) -> None:
    """A banned client at max_rooms_per_user gets BANNED_FROM_ROOM, a member ALREADY_IN_ROOM."""
    banned = ctx.room("bord")
    await room_with(ctx, banned, "owner")
    op = await ctx.client("op")
    await op.oper()
    mallory = await ctx.client("mallory")
    await op.ok(Ban(room=banned, nick=mallory.nick, reason="kit"), req="CP-OPER-6")
    rooms = await _join_up_to_the_cap(ctx, mallory, "o")
    limit = len(rooms)
    answer = await mallory.request(Join(room=banned), req="CP-ROOM-22")
    if not isinstance(answer.final, Error) or answer.final.code != ErrorCode.BANNED_FROM_ROOM:
        raise Violation("CP-ROOM-22", f"JOIN of a room mallory is banned from, while she is in "
                        f"max_rooms_per_user ({limit}) rooms, was answered with "
                        f"{outcome(answer.final)}; BANNED_FROM_ROOM comes before TOO_MANY_ROOMS")
    # She takes a nick banned in a room she is in: a member, banned and at the cap.
    later = ctx.nick("later")
    await op.ok(Ban(room=rooms[0], nick=later, reason="kit"), req="CP-OPER-6")
    await mallory.ok(Nick(nick=later), req="CP-NICK-7")
    answer = await mallory.request(Join(room=rooms[0]), req="CP-ROOM-22")
    if not isinstance(answer.final, Error) or answer.final.code != ErrorCode.ALREADY_IN_ROOM:
        raise Violation("CP-ROOM-22", f"JOIN of {rooms[0]}, of which mallory is a member, was "
                        f"answered with {outcome(answer.final)}; ALREADY_IN_ROOM comes first")


# ------------------------------------------------------------------- leaving


@server_case("CP-ROOM-14")
async def part_removes_member_and_tells_the_others(ctx: ServerContext) -> None:
    """PART is answered OK, removes the member, and the others get MEMBER_LEFT kind PART."""
    room = ctx.room("part")
    alice, bob, carol = await room_with(ctx, room, "alice", "bob", "carol")
    await alice.part(room, "see you \u263a")
    with ctx.attribute("CP-ROOM-14"):
        for peer in (bob, carol):
            left = await peer.expect_type(MemberLeft, req="CP-ROOM-14",
                                          where=lambda m: m.nick == alice.nick)
            ctx.check(fold(left.room) == fold(room) and left.kind == 0
                      and left.reason == "see you \u263a" and left.by == "", "CP-ROOM-14",
                      f"{peer.label} received {describe(left)}; expected room {room}, kind "
                      "PART (0), reason 'see you \u263a' and an empty by")
    members = await bob.ok(ListMembers(room=room), req="CP-ROOM-18")
    nicks = sorted(u.nick for u in members.of_type(UserInfo))
    ctx.check(nicks == sorted([bob.nick, carol.nick]), "CP-ROOM-14",
              f"after alice's PART, LIST_MEMBERS {room} gives {nicks}")
    await bob.say(room, "alice is gone")
    await alice.assert_none(RoomMessage, req="CP-ROOM-14",
                            why="alice left the room, so its messages no longer reach her")


# -------------------------------------------------------------------- topics


@server_case("CP-ROOM-15")
async def set_topic_stored_and_announced(ctx: ServerContext) -> None:
    """SET_TOPIC is answered OK, stored, and every other member gets TOPIC_CHANGED with by."""
    room = ctx.room("topic")
    alice, bob, carol = await room_with(ctx, room, "alice", "bob", "carol")
    topic = _topic(ctx, "release on Friday \u2014 caf\u00e9 \U0001f680")
    await alice.ok(SetTopic(room=room, topic=topic), req="CP-ROOM-15")
    with ctx.attribute("CP-ROOM-15"):
        for peer in (bob, carol):
            changed = await peer.expect_type(TopicChanged, req="CP-ROOM-15")
            ctx.check(fold(changed.room) == fold(room) and changed.topic == topic
                      and changed.by == alice.nick, "CP-ROOM-15",
                      f"{peer.label} received {describe(changed)}; expected room {room}, topic "
                      f"{topic!r} and by {alice.nick!r}")
    dave = await ctx.client("dave")
    info = _room_info(await dave.join(room), room)
    ctx.check(info.topic == topic, "CP-ROOM-15",
              f"after SET_TOPIC {topic!r}, a JOIN's ROOM_INFO shows topic {info.topic!r}")
    await bob.ok(SetTopic(room=room, topic=""), req="CP-ROOM-15")
    cleared = await alice.expect_type(TopicChanged, req="CP-ROOM-15")
    ctx.check(cleared.topic == "" and cleared.by == bob.nick, "CP-ROOM-15",
              f"alice received {describe(cleared)} after bob cleared the topic")
    erin = await ctx.client("erin")
    info = _room_info(await erin.join(room), room)
    ctx.check(info.topic == "", "CP-ROOM-15",
              f"after SET_TOPIC with an empty topic, ROOM_INFO shows topic {info.topic!r}")


@server_case("CP-ROOM-16", "CP-ROOM-15")
async def topic_length_limit_in_bytes(ctx: ServerContext) -> None:
    """A topic of max_topic_length bytes is accepted; one more byte is INVALID_FIELD (in bytes)."""
    await _limits(ctx)
    assert ctx.limits is not None
    limit = ctx.limits.max_topic_length
    room = ctx.room("tlen")
    (alice,) = await room_with(ctx, room, "alice")
    exact = "t" * limit
    answer = await alice.request(SetTopic.model_construct(room=room, topic=exact),
                                 req="CP-ROOM-15")
    ctx.check(isinstance(answer.final, Ok), "CP-ROOM-15",
              f"SET_TOPIC with a topic of exactly max_topic_length ({limit}) bytes was "
              f"answered with {outcome(answer.final)}, not OK")
    await alice.refused(SetTopic.model_construct(room=room, topic="t" * (limit + 1)),
                        ErrorCode.INVALID_FIELD, req="CP-ROOM-16")
    # Two-byte characters: a server counting characters would take this one.
    wide = "\u00e9" * (limit // 2 + 1)
    await alice.refused(SetTopic.model_construct(room=room, topic=wide),
                        ErrorCode.INVALID_FIELD, req="CP-ROOM-16")


# ------------------------------------------------------------------ listings


@server_case("CP-ROOM-17")
async def list_rooms_describes_each_room(ctx: ServerContext) -> None:
    """LIST_ROOMS answers ROOM_INFO frames (topic, member count, last_seq), then OK."""
    room = ctx.room("list")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    topic = _topic(ctx, "listed")
    await alice.ok(SetTopic(room=room, topic=topic), req="CP-ROOM-15")
    last = (await bob.say(room, "one")).seq
    carol = await ctx.client("carol")
    answer = await carol.ok(ListRooms(), req="CP-ROOM-17")
    for frame in answer.intermediate:
        ctx.check(isinstance(frame, RoomInfo), "CP-ROOM-17",
                  f"LIST_ROOMS was answered with {describe(frame)} among its ROOM_INFO frames")
    infos = [i for i in answer.of_type(RoomInfo) if fold(i.room) == fold(room)]
    ctx.check(len(infos) == 1, "CP-ROOM-17",
              f"LIST_ROOMS holds {len(infos)} ROOM_INFO frames for {room}; exactly one")
    info = infos[0]
    ctx.check(info.topic == topic and info.member_count == 2 and info.last_seq == last,
              "CP-ROOM-17", f"LIST_ROOMS describes {room} as {describe(info)}; expected topic "
              f"{topic!r}, member_count 2, last_seq {last} (the seq of bob's message)")


@server_case("CP-ROOM-18")
async def list_members_for_member_and_non_member(ctx: ServerContext) -> None:
    """LIST_MEMBERS answers one USER_INFO per member, then OK, to members and non-members alike."""
    room = ctx.room("lm")
    alice, bob = await room_with(ctx, room, "alice", "bob")
    carol = await ctx.client("carol")
    expected = sorted([alice.nick, bob.nick])
    for peer in (alice, carol):
        answer = await peer.ok(ListMembers(room=room), req="CP-ROOM-18")
        for frame in answer.intermediate:
            ctx.check(isinstance(frame, UserInfo), "CP-ROOM-18",
                      f"LIST_MEMBERS was answered with {describe(frame)} among its USER_INFO")
        nicks = sorted(u.nick for u in answer.of_type(UserInfo))
        ctx.check(nicks == expected, "CP-ROOM-18",
                  f"LIST_MEMBERS {room} from {peer.label} (member: {peer is alice}) gives "
                  f"{nicks}; the members are {expected}")
    await alice.part(room)
    await bob.part(room)
    # Empty, with no topic, message or ban, the room may be gone (CP-ROOM-19).
    answer = await carol.request(ListMembers(room=room), req="CP-ROOM-18")
    if isinstance(answer.final, Error) and answer.final.code == ErrorCode.NO_SUCH_ROOM:
        return
    ctx.check(isinstance(answer.final, Ok), "CP-ROOM-18",
              f"LIST_MEMBERS of the empty room {room} was answered with "
              f"{describe(answer.final)}; OK, or NO_SUCH_ROOM once the room was deleted "
              "(CP-ROOM-19)")
    ctx.check(not answer.of_type(UserInfo), "CP-ROOM-18",
              f"LIST_MEMBERS of the empty room {room} lists "
              f"{[u.nick for u in answer.of_type(UserInfo)]}")
