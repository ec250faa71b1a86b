"""Reference server: rooms, membership, topics, listings, leaving (over real sockets).

Spec pages: nicknames-and-rooms (Room names, lifetime, joining, leaving, topics,
listings), lifecycle (QUIT and BYE, other endings), users (presence, listing).
"""

from __future__ import annotations

import pytest
from conftest import ClientFactory, RunningServer
from server_harness import join_all, of_type, refused

from chatproto import ErrorCode, Limits
from chatproto.messages import (
    Away,
    Bye,
    History,
    Join,
    LeaveKind,
    ListMembers,
    ListRooms,
    ListUsers,
    MemberJoined,
    MemberLeft,
    Ok,
    Part,
    Presence,
    Quit,
    RoomInfo,
    SendRoom,
    SetTopic,
    TopicChanged,
    UserInfo,
)


async def test_three_clients_join_a_room(server: RunningServer,
                                         client_factory: ClientFactory) -> None:
    """CP-ROOM-4, CP-ROOM-9, CP-ROOM-10, CP-REQ-6: the first JOIN creates the room (empty
    topic, last_seq 0); each JOIN is answered ROOM_INFO (joiner counted) then OK, with
    the JOIN's request_id; every earlier member gets MEMBER_JOINED, the joiner none."""
    alice, bob, carol = [await client_factory(n) for n in ("alice", "bob", "carol")]
    members = [alice, bob, carol]
    for count, joiner in enumerate(members, start=1):
        request_id = await joiner.send(Join(room="#lobby"))
        frames = await joiner.response(request_id)
        assert [type(f) for f in frames] == [RoomInfo, Ok], frames
        info = frames[0]
        assert isinstance(info, RoomInfo)
        assert (info.room, info.topic, info.member_count, info.last_seq) == (
            "#lobby", "", count, 0)
        assert all(frame.request_id == request_id for frame in frames)
        final = frames[-1]
        assert isinstance(final, Ok)
        assert (final.msg_id, final.seq, final.timestamp_ms) == (0, 0, 0)  # CP-MSG-6
        for earlier in members[:count - 1]:
            joined = of_type(await earlier.barrier(), MemberJoined)
            assert [(j.room, j.nick, j.request_id) for j in joined] == [
                ("#lobby", joiner.nick, 0)]
        assert await joiner.barrier() == []


async def test_room_names_fold_and_keep_the_creating_spelling(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ROOM-2, CP-ROOM-3: "#mixedCASE" is the room created as "#MixedCase", and every
    frame names it "#MixedCase"."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await alice.ok(Join(room="#MixedCase"))
    frames = await bob.ok(Join(room="#mixedCASE"))
    info = frames[0]
    assert isinstance(info, RoomInfo)
    assert (info.room, info.member_count) == ("#MixedCase", 2)
    joined = await alice.expect(MemberJoined)
    assert joined.room == "#MixedCase"
    refused(await bob.request(Join(room="#MIXEDCASE")), ErrorCode.ALREADY_IN_ROOM)
    rooms = of_type(await alice.ok(ListRooms()), RoomInfo)
    assert [room.room for room in rooms] == ["#MixedCase"]


async def test_join_twice_is_already_in_room(server: RunningServer,
                                             client_factory: ClientFactory) -> None:
    """CP-ROOM-11, CP-ERR-5: a second JOIN is ALREADY_IN_ROOM and tells nobody."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    refused(await bob.request(Join(room="#room")), ErrorCode.ALREADY_IN_ROOM)
    assert await alice.barrier() == []


@pytest.mark.server_config(limits=Limits(max_rooms_per_user=2))
async def test_too_many_rooms(server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ROOM-12: a JOIN beyond max_rooms_per_user is TOO_MANY_ROOMS; after a PART
    the client can join again."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#a"))
    await alice.ok(Join(room="#b"))
    refused(await alice.request(Join(room="#c")), ErrorCode.TOO_MANY_ROOMS)
    await alice.ok(Part(room="#a"))
    await alice.ok(Join(room="#c"))


@pytest.mark.parametrize("room", ["general", "#", "#with space", "#caf\u00e9", "##",
                                  "#dot.ted", "#" + "x" * 64, "\u0430#x"])
async def test_invalid_room_names(server: RunningServer, client_factory: ClientFactory,
                                  room: str) -> None:
    """CP-ROOM-1: a room name that is not '#' + 1..63 of [A-Za-z0-9_-] is INVALID_ROOM_NAME."""
    alice = await client_factory("alice")
    refused(await alice.request_unchecked(Join, room=room, resume=False, last_seen_seq=0),
            ErrorCode.INVALID_ROOM_NAME)
    refused(await alice.request_unchecked(ListMembers, room=room), ErrorCode.INVALID_ROOM_NAME)
    assert of_type(await alice.ok(ListRooms()), RoomInfo) == []


@pytest.mark.server_config(limits=Limits(max_room_name_length=10))
async def test_room_name_longer_than_advertised(server: RunningServer,
                                                client_factory: ClientFactory) -> None:
    """CP-ROOM-1: the advertised max_room_name_length counts the '#'."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#123456789"))
    refused(await alice.request_unchecked(Join, room="#1234567890", resume=False,
                                          last_seen_seq=0), ErrorCode.INVALID_ROOM_NAME)


async def test_requests_naming_a_missing_room(server: RunningServer,
                                              client_factory: ClientFactory) -> None:
    """CP-ROOM-7: every request but JOIN that names a room that does not exist is
    NO_SUCH_ROOM."""
    alice = await client_factory("alice")
    for request in (Part(room="#nowhere"), SetTopic(room="#nowhere", topic="x"),
                    SendRoom(room="#nowhere", text="hello?"), ListMembers(room="#nowhere"),
                    History(room="#nowhere", limit=5)):
        refused(await alice.request(request), ErrorCode.NO_SUCH_ROOM)


async def test_requests_from_a_non_member(server: RunningServer,
                                          client_factory: ClientFactory) -> None:
    """CP-ROOM-8: PART, SET_TOPIC, SEND_ROOM and HISTORY need membership: NOT_IN_ROOM;
    the members see nothing."""
    alice, outsider = await client_factory("alice"), await client_factory("outsider")
    await alice.ok(Join(room="#room"))
    for request in (Part(room="#room"), SetTopic(room="#room", topic="x"),
                    SendRoom(room="#room", text="let me in"), History(room="#room", limit=5)):
        refused(await outsider.request(request), ErrorCode.NOT_IN_ROOM)
    assert await alice.barrier() == []


async def test_part_tells_the_remaining_members(server: RunningServer,
                                                client_factory: ClientFactory) -> None:
    """CP-ROOM-14: PART is OK; the remaining members get MEMBER_LEFT kind PART with the
    reason and an empty `by`; the leaver gets none and is no longer a member."""
    alice, bob, carol = [await client_factory(n) for n in ("alice", "bob", "carol")]
    await join_all("#room", alice, bob, carol)
    frames = await carol.ok(Part(room="#room", reason="see you"))
    assert [type(f) for f in frames] == [Ok]
    for member in (alice, bob):
        left = of_type(await member.barrier(), MemberLeft)
        assert [(m.room, m.nick, m.kind, m.reason, m.by) for m in left] == [
            ("#room", "carol", LeaveKind.PART, "see you", "")]
    assert await carol.barrier() == []
    refused(await carol.request(SendRoom(room="#room", text="still here?")),
            ErrorCode.NOT_IN_ROOM)
    refused(await carol.request(Part(room="#room")), ErrorCode.NOT_IN_ROOM)
    members = of_type(await alice.ok(ListMembers(room="#room")), UserInfo)
    assert sorted(m.nick for m in members) == ["alice", "bob"]


async def test_quit_is_answered_bye_and_told_to_room_mates(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-CLOSE-1, CP-CLOSE-3: QUIT gets BYE with its request_id, then the server closes;
    the other members of every room of the quitter get MEMBER_LEFT kind QUIT with the
    QUIT's reason."""
    alice, bob, carol = [await client_factory(n) for n in ("alice", "bob", "carol")]
    await join_all("#one", alice, bob, carol)
    await join_all("#two", alice, bob)
    request_id = await alice.send(Quit(reason="time for lunch"))
    frames = await alice.response(request_id)
    assert [type(f) for f in frames] == [Bye]
    assert frames[0].request_id == request_id
    assert await alice.read_until_closed() == []
    bob_left = of_type(await bob.barrier(), MemberLeft)
    assert sorted((m.room, m.nick, m.kind, m.reason, m.by) for m in bob_left) == [
        ("#one", "alice", LeaveKind.QUIT, "time for lunch", ""),
        ("#two", "alice", LeaveKind.QUIT, "time for lunch", "")]
    carol_left = of_type(await carol.barrier(), MemberLeft)
    assert [(m.room, m.kind) for m in carol_left] == [("#one", LeaveKind.QUIT)]


async def test_dropped_connection_is_member_left_disconnect(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-CLOSE-9: a connection that ends without QUIT (closed, or reset) is MEMBER_LEFT
    kind DISCONNECT with an empty `by` for the others."""
    alice, bob, carol = [await client_factory(n) for n in ("alice", "bob", "carol")]
    await join_all("#room", alice, bob, carol)
    await alice.close()
    carol.abort()
    left = [await bob.expect(MemberLeft), await bob.expect(MemberLeft)]
    assert sorted((m.nick, m.kind, m.by) for m in left) == [
        ("alice", LeaveKind.DISCONNECT, ""), ("carol", LeaveKind.DISCONNECT, "")]
    members = of_type(await bob.ok(ListMembers(room="#room")), UserInfo)
    assert [m.nick for m in members] == ["bob"]


async def test_topic_changes(server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ROOM-15, CP-ROOM-9: SET_TOPIC is OK, the other members get TOPIC_CHANGED with
    the setter as `by`, the setter gets none; ROOM_INFO of a later JOIN and LIST_ROOMS
    carry the topic; an empty topic clears it."""
    alice, bob, carol = [await client_factory(n) for n in ("alice", "bob", "carol")]
    await join_all("#room", alice, bob, carol)
    await alice.ok(SetTopic(room="#room", topic="release on Friday \u2014 \U0001f680"))
    for member in (bob, carol):
        changes = of_type(await member.barrier(), TopicChanged)
        assert [(c.room, c.topic, c.by) for c in changes] == [
            ("#room", "release on Friday \u2014 \U0001f680", "alice")]
    assert await alice.barrier() == []
    dave = await client_factory("dave")
    info = (await dave.ok(Join(room="#room")))[0]
    assert isinstance(info, RoomInfo) and info.topic == "release on Friday \u2014 \U0001f680"
    await bob.ok(SetTopic(room="#room", topic=""))
    changes = of_type(await alice.barrier(), TopicChanged)
    assert [(c.topic, c.by) for c in changes] == [("", "bob")]
    rooms = of_type(await dave.ok(ListRooms()), RoomInfo)
    assert [(r.room, r.topic) for r in rooms] == [("#room", "")]


@pytest.mark.server_config(limits=Limits(max_topic_length=20))
async def test_topic_longer_than_advertised(server: RunningServer,
                                            client_factory: ClientFactory) -> None:
    """CP-ROOM-16, CP-ERR-5: a topic over max_topic_length bytes is INVALID_FIELD and
    changes nothing. The limit counts bytes: 10 two-byte characters fit, 11 do not."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    await alice.ok(SetTopic(room="#room", topic="\u00e9" * 10))
    await bob.barrier()
    refused(await alice.request_unchecked(SetTopic, room="#room", topic="\u00e9" * 11),
            ErrorCode.INVALID_FIELD)
    refused(await alice.request_unchecked(SetTopic, room="#room", topic="x" * 21),
            ErrorCode.INVALID_FIELD)
    assert await bob.barrier() == []
    rooms = of_type(await bob.ok(ListRooms()), RoomInfo)
    assert rooms[0].topic == "\u00e9" * 10


@pytest.mark.parametrize("topic", ["bell\x07", "esc\x1b[31m", "cr\rline", "del\x7f",
                                   "c1\u009bx", "nul\x00"])
async def test_topic_must_be_safe_text(server: RunningServer, client_factory: ClientFactory,
                                       topic: str) -> None:
    """CP-FIELD-5: a topic with control characters (other than TAB and LF) is INVALID_FIELD."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    refused(await alice.request_unchecked(SetTopic, room="#room", topic=topic),
            ErrorCode.INVALID_FIELD)
    assert await bob.barrier() == []
    await alice.ok(SetTopic(room="#room", topic="tab\tand\nnewline are fine"))


async def test_list_rooms_and_rooms_outlive_their_members(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ROOM-17, CP-ROOM-5: LIST_ROOMS gives one ROOM_INFO per room (topic, members,
    last_seq) then OK; a room whose last member left stays, with its topic and sequence
    counter, and the next message continues the count."""
    alice, bob, carol = [await client_factory(n) for n in ("alice", "bob", "carol")]
    await join_all("#busy", alice, bob, carol)
    await join_all("#quiet", carol)
    await alice.ok(SendRoom(room="#busy", text="one"))
    await alice.ok(SendRoom(room="#busy", text="two"))
    await carol.ok(SetTopic(room="#quiet", topic="shh"))
    await carol.ok(SendRoom(room="#quiet", text="anyone?"))

    request_id = await bob.send(ListRooms())
    frames = await bob.response(request_id)
    assert isinstance(frames[-1], Ok)
    rooms = {r.room: (r.topic, r.member_count, r.last_seq) for r in of_type(frames, RoomInfo)}
    assert rooms == {"#busy": ("", 3, 2), "#quiet": ("shh", 1, 1)}
    assert all(frame.request_id == request_id for frame in frames)

    await carol.ok(Part(room="#quiet"))
    rooms = {r.room: (r.topic, r.member_count, r.last_seq)
             for r in of_type(await bob.ok(ListRooms()), RoomInfo)}
    assert rooms["#quiet"] == ("shh", 0, 1)
    info = (await bob.ok(Join(room="#QUIET")))[0]
    assert isinstance(info, RoomInfo)
    assert (info.room, info.topic, info.member_count, info.last_seq) == ("#quiet", "shh", 1, 1)
    ok = (await bob.ok(SendRoom(room="#quiet", text="me")))[-1]
    assert isinstance(ok, Ok) and ok.seq == 2


async def test_list_members_for_members_and_outsiders(server: RunningServer,
                                                      client_factory: ClientFactory) -> None:
    """CP-ROOM-18, CP-USER-2: LIST_MEMBERS answers one USER_INFO per member, member or
    not, with away, operator and registered flags, then OK."""
    alice, bob, outsider = [await client_factory(n) for n in ("alice", "bob", "outsider")]
    await join_all("#room", alice, bob)
    await bob.ok(Away(message="lunch"))
    await alice.barrier()
    for asker in (alice, outsider):
        request_id = await asker.send(ListMembers(room="#room"))
        frames = await asker.response(request_id)
        assert isinstance(frames[-1], Ok)
        assert all(frame.request_id == request_id for frame in frames)
        infos = sorted((u.nick, u.away, u.away_message, u.operator, u.registered)
                       for u in of_type(frames, UserInfo))
        assert infos == [("alice", False, "", False, False), ("bob", True, "lunch", False, False)]


async def test_list_users_and_presence(server: RunningServer,
                                       client_factory: ClientFactory) -> None:
    """CP-USER-1, CP-USER-2, CP-USER-3: LIST_USERS lists every READY connection (not one
    still in AWAIT_HELLO), the requester included; AWAY marks away and tells each
    connection sharing a room ONE PRESENCE (two shared rooms: still one); others nothing;
    AWAY with an empty message marks present again."""
    alice, bob, carol, dave = [await client_factory(n) for n in ("alice", "bob", "carol", "dave")]
    await client_factory()  # connected, no HELLO: not a user yet
    await join_all("#one", alice, bob, carol)
    await join_all("#two", alice, bob)

    users = of_type(await dave.ok(ListUsers()), UserInfo)
    assert sorted(u.nick for u in users) == ["alice", "bob", "carol", "dave"]

    await alice.ok(Away(message="gone fishing"))
    for mate in (bob, carol):
        presence = of_type(await mate.barrier(), Presence)
        assert [(p.nick, p.away, p.away_message, p.request_id) for p in presence] == [
            ("alice", True, "gone fishing", 0)]
    assert await dave.barrier() == []
    assert await alice.barrier() == []
    status = {u.nick: (u.away, u.away_message) for u in of_type(await dave.ok(ListUsers()),
                                                                  UserInfo)}
    assert status["alice"] == (True, "gone fishing")
    assert status["bob"] == (False, "")

    await alice.ok(Away(message=""))
    presence = of_type(await bob.barrier(), Presence)
    assert [(p.nick, p.away, p.away_message) for p in presence] == [("alice", False, "")]
    status = {u.nick: (u.away, u.away_message) for u in of_type(await dave.ok(ListUsers()),
                                                                  UserInfo)}
    assert status["alice"] == (False, "")


async def test_away_users_still_receive_messages(server: RunningServer,
                                                 client_factory: ClientFactory) -> None:
    """CP-USER-3 (being away changes nothing else)."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    await bob.ok(Away(message="afk"))
    await alice.barrier()
    await alice.ok(SendRoom(room="#room", text="you there?"))
    events = await bob.barrier()
    assert [e.NAME for e in events] == ["ROOM_MESSAGE"]


@pytest.mark.parametrize("reason", ["esc\x1b[2J", "cr\rforged line", "c1\u009b", "nul\x00"])
async def test_reasons_and_away_messages_must_be_safe_text(
        server: RunningServer, client_factory: ClientFactory, reason: str) -> None:
    """CP-FIELD-5 (Reason fields): AWAY and PART with control characters in the text are
    INVALID_FIELD, change nothing and tell nobody."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    refused(await alice.request_unchecked(Away, message=reason), ErrorCode.INVALID_FIELD)
    refused(await alice.request_unchecked(Part, room="#room", reason=reason),
            ErrorCode.INVALID_FIELD)
    assert await bob.barrier() == []
    members = of_type(await bob.ok(ListMembers(room="#room")), UserInfo)
    assert sorted((m.nick, m.away) for m in members) == [("alice", False), ("bob", False)]


async def test_concurrent_joins_of_a_new_room(server: RunningServer,
                                              client_factory: ClientFactory) -> None:
    """CP-ROOM-4, CP-ROOM-9, CP-ROOM-10 under concurrency: ten clients JOIN the same new
    room at once; their ROOM_INFO member_counts are 1..10 (each JOIN a single step), and
    each client gets MEMBER_JOINED for exactly the clients that joined after it."""
    clients = [await client_factory(f"c{i}") for i in range(10)]
    ids = [await client.send(Join(room="#stampede")) for client in clients]
    answers = [await client.response(request_id)
               for client, request_id in zip(clients, ids, strict=True)]
    counts = {}
    for client, frames in zip(clients, answers, strict=True):
        info = frames[0]
        assert isinstance(info, RoomInfo) and isinstance(frames[-1], Ok)
        counts[client.nick] = info.member_count
    assert sorted(counts.values()) == list(range(1, 11))
    for client in clients:
        joined = {j.nick for j in of_type(await client.barrier(), MemberJoined)}
        later = {nick for nick, count in counts.items() if count > counts[client.nick]}
        assert joined == later, client


async def test_mass_disconnect(server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-CLOSE-9, CP-NICK-6: twenty members drop at once; the remaining member gets one
    MEMBER_LEFT kind DISCONNECT for each, and the room and the user list are right."""
    stayer = await client_factory("stayer")
    leavers = [await client_factory(f"leaver{i}") for i in range(20)]
    await join_all("#room", stayer, *leavers)
    for index, client in enumerate(leavers):
        if index % 2:
            client.abort()
        else:
            await client.close()
    left = [await stayer.expect(MemberLeft) for _ in leavers]
    assert sorted(m.nick for m in left) == sorted(c.nick or "" for c in leavers)
    assert all(m.kind == LeaveKind.DISCONNECT for m in left)
    members = of_type(await stayer.ok(ListMembers(room="#room")), UserInfo)
    assert [m.nick for m in members] == ["stayer"]
    users = of_type(await stayer.ok(ListUsers()), UserInfo)
    assert [u.nick for u in users] == ["stayer"]
