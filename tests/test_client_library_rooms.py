"""Reference client library: rooms, topics, history and moderation (real sockets).

``reference_client.ChatClient`` against the in-process reference server.

Spec pages: nicknames-and-rooms (joining, leaving, topics, listing), messaging
(History: replay on join, resume, paging), users (operators: OPER, KICK, BAN,
UNBAN, MUTE).
"""

from __future__ import annotations

import pytest
from client_tools import RELAXED, ClientMaker, Watched, refused, room_messages
from conftest import RunningServer

from chatproto import ErrorCode
from chatproto.messages import (
    MemberJoined,
    MemberLeft,
    MuteChanged,
    Ok,
    RoomInfo,
    RoomMessage,
    TopicChanged,
    UserInfo,
)
from reference_client import HistoryGapDetected, HistoryPage, JoinResult

pytestmark = pytest.mark.server_config(limits=RELAXED)
OPERATORS = {"root": "rootpw"}


async def post(client: Watched, room: str, count: int, prefix: str = "m") -> list[Ok]:
    return [await client.client.send_room(room, f"{prefix}{n}") for n in range(count)]


def seqs(messages: list[RoomMessage]) -> list[int]:
    return [m.seq for m in messages]


# ---------------------------------------------------------------------- join


async def test_join_returns_room_info_history_and_members(server: RunningServer,
                                                         clients: ClientMaker) -> None:
    """CP-ROOM-3, CP-ROOM-9, CP-ROOM-10, CP-HIST-3, CP-HIST-4, CP-HIST-5: join() returns
    the ROOM_INFO (creator's spelling, the joiner counted, last_seq), the replayed
    messages (history 1, in seq order), no gap and the members; client.rooms has the
    room (keyed by its fold); bob gets MEMBER_JOINED; alice gets no event about it."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await bob.client.join("#Room")
    oks = await post(bob, "#Room", 3)
    result = await alice.client.join("#room")
    assert isinstance(result, JoinResult)
    assert isinstance(result.info, RoomInfo)
    assert (result.info.room, result.info.member_count, result.info.last_seq,
            result.info.topic) == ("#Room", 2, 3, "")
    assert seqs(result.history) == [1, 2, 3]
    for message, ok in zip(result.history, oks, strict=True):
        assert (message.history, message.sender, message.msg_id, message.timestamp_ms) == (
            True, "bob", ok.msg_id, ok.timestamp_ms)
    assert [m.text for m in result.history] == ["m0", "m1", "m2"]
    assert result.gap is None
    assert {m.nick for m in result.members} == {"alice", "bob"}
    state = alice.client.rooms["#room"]
    assert (state.name, state.last_seq, state.members) == ("#Room", 3, {"alice", "bob"})
    joined = await bob.expect_type(MemberJoined)
    assert (joined.room, joined.nick) == ("#Room", "alice")
    events = await alice.barrier()
    assert [e for e in events if isinstance(e, MemberJoined | RoomMessage)] == []
    assert bob.client.rooms["#room"].members == {"alice", "bob"}


@pytest.mark.server_config(limits={**RELAXED, "history_on_join": 2})
async def test_plain_join_replays_the_most_recent_history_on_join(
        server: RunningServer, clients: ClientMaker) -> None:
    """CP-HIST-4, CP-HIST-6: a plain JOIN replays the history_on_join newest messages; the
    first live message is last_seq + 1, with no HistoryGapDetected."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await bob.client.join("#room")
    await post(bob, "#room", 5)
    result = await alice.client.join("#room")
    assert seqs(result.history) == [4, 5] and result.info.last_seq == 5
    ok = await bob.client.send_room("#room", "live")
    live = await alice.expect_type(RoomMessage)
    assert (live.seq, live.history, live.text) == (ok.seq, False, "live") and ok.seq == 6
    assert alice.client.rooms["#room"].last_seq == 6
    await alice.barrier()
    assert alice.of_type(RoomMessage) == [live]
    assert alice.of_type(HistoryGapDetected) == []


@pytest.mark.server_config(limits={**RELAXED, "history_on_join": 2})
async def test_join_with_resume_from_replays_everything_after_it(
        server: RunningServer, clients: ClientMaker) -> None:
    """CP-HIST-15: join(resume_from=n) replays every retained message after seq n (more
    than history_on_join); resume_from=last_seq replays nothing."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await bob.client.join("#room")
    await post(bob, "#room", 5)
    for resume_from, expected in ((2, [3, 4, 5]), (0, [1, 2, 3, 4, 5]), (5, []), (9, [])):
        result = await alice.client.join("#room", resume_from=resume_from)
        assert seqs(result.history) == expected, resume_from
        assert all(m.history for m in result.history)
        assert result.gap is None and result.info.last_seq == 5
        await alice.client.part("#room")


@pytest.mark.server_config(history_depth=3, limits={**RELAXED, "history_on_join": 3})
async def test_join_with_resume_reports_the_gap(server: RunningServer,
                                               clients: ClientMaker) -> None:
    """CP-HIST-1, CP-HIST-8: resuming after a seq the server no longer retains gives the
    HISTORY_GAP (first_seq = resume_from + 1, last_seq = the newest discarded) in
    JoinResult.gap, then the retained messages."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await bob.client.join("#room")
    await post(bob, "#room", 8)
    result = await alice.client.join("#room", resume_from=1)
    assert result.gap is not None
    assert (result.gap.room, result.gap.first_seq, result.gap.last_seq) == ("#room", 2, 5)
    assert seqs(result.history) == [6, 7, 8]
    assert alice.client.rooms["#room"].last_seq == 8


@pytest.mark.server_config(limits={**RELAXED, "max_rooms_per_user": 2})
async def test_join_refusals(server: RunningServer, clients: ClientMaker) -> None:
    """CP-ROOM-1, CP-ROOM-11, CP-ROOM-12: INVALID_ROOM_NAME (a ChatError, whether the
    library or the server finds it), ALREADY_IN_ROOM (any letter case), TOO_MANY_ROOMS;
    client.rooms is unchanged by a refused join."""
    alice = await clients("alice", server.port)
    for name in ("room", "#", "#bad name", "#" + "x" * 64, "#caf\u00e9"):
        await refused(alice.client.join(name), ErrorCode.INVALID_ROOM_NAME, "JOIN")
    assert alice.client.rooms == {}
    await alice.client.join("#one")
    await refused(alice.client.join("#ONE"), ErrorCode.ALREADY_IN_ROOM, "JOIN")
    await alice.client.join("#two")
    await refused(alice.client.join("#three"), ErrorCode.TOO_MANY_ROOMS, "JOIN")
    assert set(alice.client.rooms) == {"#one", "#two"}
    assert (await alice.client.ping(b"x")).token == b"x"


# ---------------------------------------------------------------------- part


async def test_part(server: RunningServer, clients: ClientMaker) -> None:
    """CP-ROOM-14, CP-ROOM-7, CP-ROOM-8: part(room, reason) -> OK; the others get
    MEMBER_LEFT PART with the reason; client.rooms forgets the room; parting again is
    NOT_IN_ROOM, an unknown room NO_SUCH_ROOM."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await alice.client.join("#room")
    await bob.client.join("#room")
    assert isinstance(await alice.client.part("#ROOM", "later"), Ok)
    assert "#room" not in alice.client.rooms
    left = await bob.expect_type(MemberLeft)
    assert (left.room, left.nick, left.kind, left.reason, left.by) == (
        "#room", "alice", 0, "later", "")
    assert bob.client.rooms["#room"].members == {"bob"}
    assert [e for e in await alice.barrier() if isinstance(e, MemberLeft)] == []
    await refused(alice.client.part("#room"), ErrorCode.NOT_IN_ROOM, "PART")
    await refused(alice.client.part("#nowhere"), ErrorCode.NO_SUCH_ROOM, "PART")


async def test_room_state_follows_members_and_topic(server: RunningServer,
                                                    clients: ClientMaker) -> None:
    """CP-ROOM-10, CP-CLOSE-3, CP-CLOSE-9, CP-ROOM-15: client.rooms[...] tracks members
    joining and leaving (PART, QUIT, disconnect) and topic changes from events."""
    alice, bob, carol, dave = [await clients(n, server.port)
                               for n in ("alice", "bob", "carol", "dave")]
    for client in (alice, bob, carol, dave):
        await client.client.join("#room")
    await alice.barrier()
    assert alice.client.rooms["#room"].members == {"alice", "bob", "carol", "dave"}
    await bob.client.part("#room")
    await carol.client.quit()
    await dave.client.close()
    await dave.wait_ended()
    for _ in range(3):
        await alice.expect_type(MemberLeft)
    assert alice.client.rooms["#room"].members == {"alice"}
    newcomer = await clients("erin", server.port)
    await newcomer.client.join("#room")
    await newcomer.client.set_topic("#room", "fresh")
    await alice.expect_type(TopicChanged)
    assert alice.client.rooms["#room"].members == {"alice", "erin"}
    assert alice.client.rooms["#room"].topic == "fresh"


# ------------------------------------------------------------- lists, topics


async def test_list_rooms(server: RunningServer, clients: ClientMaker) -> None:
    """CP-ROOM-17, CP-ROOM-5: one RoomInfo per existing room (topic, member_count,
    last_seq), including a room everyone left."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await alice.client.join("#a")
    await bob.client.join("#a")
    await alice.client.set_topic("#a", "topic a")
    await bob.client.join("#b")
    await post(bob, "#b", 2)
    await bob.client.part("#b")
    rooms = {r.room: r for r in await alice.client.list_rooms()}
    assert set(rooms) == {"#a", "#b"}
    assert all(isinstance(r, RoomInfo) for r in rooms.values())
    assert (rooms["#a"].topic, rooms["#a"].member_count, rooms["#a"].last_seq) == (
        "topic a", 2, 0)
    assert (rooms["#b"].topic, rooms["#b"].member_count, rooms["#b"].last_seq) == ("", 0, 2)


async def test_list_members(server: RunningServer, clients: ClientMaker) -> None:
    """CP-ROOM-18, CP-ROOM-7: list_members works for a non-member too; an unknown room is
    NO_SUCH_ROOM."""
    alice, bob, carol = [await clients(n, server.port) for n in ("alice", "bob", "carol")]
    await alice.client.join("#room")
    await bob.client.join("#room")
    await bob.client.away("brb")
    members = {u.nick: u for u in await carol.client.list_members("#ROOM")}
    assert set(members) == {"alice", "bob"}
    assert all(isinstance(u, UserInfo) for u in members.values())
    assert members["bob"].away and members["bob"].away_message == "brb"
    await refused(carol.client.list_members("#nowhere"), ErrorCode.NO_SUCH_ROOM,
                  "LIST_MEMBERS")


@pytest.mark.server_config(limits={**RELAXED, "max_topic_length": 10})
async def test_set_topic(server: RunningServer, clients: ClientMaker) -> None:
    """CP-ROOM-15, CP-ROOM-16, CP-ROOM-8: set_topic -> OK, the other members get
    TOPIC_CHANGED by the setter, both clients' room state has the topic; too long is
    INVALID_FIELD; a non-member gets NOT_IN_ROOM; an empty topic clears it."""
    alice, bob, carol = [await clients(n, server.port) for n in ("alice", "bob", "carol")]
    await alice.client.join("#room")
    await bob.client.join("#room")
    assert isinstance(await alice.client.set_topic("#room", "release"), Ok)
    changed = await bob.expect_type(TopicChanged)
    assert (changed.room, changed.topic, changed.by) == ("#room", "release", "alice")
    assert alice.client.rooms["#room"].topic == "release"
    assert bob.client.rooms["#room"].topic == "release"
    assert [e for e in await alice.barrier() if isinstance(e, TopicChanged)] == []
    await refused(alice.client.set_topic("#room", "x" * 11), ErrorCode.INVALID_FIELD,
                  "SET_TOPIC")
    await refused(carol.client.set_topic("#room", "mine"), ErrorCode.NOT_IN_ROOM,
                  "SET_TOPIC")
    await refused(carol.client.set_topic("#nowhere", "mine"), ErrorCode.NO_SUCH_ROOM,
                  "SET_TOPIC")
    (info,) = await carol.client.list_rooms()
    assert info.topic == "release"
    await bob.client.set_topic("#room", "")
    assert (await alice.expect_type(TopicChanged)).topic == ""
    assert alice.client.rooms["#room"].topic == ""


# -------------------------------------------------------------------- history


@pytest.mark.server_config(limits={**RELAXED, "history_page_max": 4})
async def test_history_pages_backwards(server: RunningServer, clients: ClientMaker) -> None:
    """CP-HIST-10: history() returns a HistoryPage of the messages before before_seq (the
    newest when 0), in seq order, at most min(limit, history_page_max), history 1."""
    alice = await clients("alice", server.port)
    await alice.client.join("#room")
    oks = await post(alice, "#room", 10)
    page = await alice.client.history("#room", limit=3)
    assert isinstance(page, HistoryPage) and page.gap is None
    assert seqs(page.messages) == [8, 9, 10]
    assert all(m.history and m.sender == "alice" for m in page.messages)
    assert [m.msg_id for m in page.messages] == [ok.msg_id for ok in oks[7:]]
    assert seqs((await alice.client.history("#room", before_seq=8, limit=3)).messages) == [
        5, 6, 7]
    assert seqs((await alice.client.history("#room", before_seq=2)).messages) == [1]
    assert seqs((await alice.client.history("#room")).messages) == [7, 8, 9, 10]
    assert seqs((await alice.client.history("#room", before_seq=99)).messages) == [
        7, 8, 9, 10]
    assert room_messages(await alice.barrier()) == []


@pytest.mark.server_config(history_depth=5, limits={**RELAXED, "history_on_join": 5})
async def test_history_reports_the_part_no_longer_retained(server: RunningServer,
                                                           clients: ClientMaker) -> None:
    """CP-HIST-11: a window reaching below the retained history gives HistoryPage.gap
    with the lowest and highest missing seq, then what is retained."""
    alice = await clients("alice", server.port)
    await alice.client.join("#room")
    await post(alice, "#room", 10)
    page = await alice.client.history("#room", before_seq=4, limit=3)
    assert page.gap is not None and (page.gap.first_seq, page.gap.last_seq) == (1, 3)
    assert page.messages == []
    page = await alice.client.history("#room", before_seq=8, limit=5)
    assert page.gap is not None and (page.gap.first_seq, page.gap.last_seq) == (3, 5)
    assert seqs(page.messages) == [6, 7]


async def test_history_refusals(server: RunningServer, clients: ClientMaker) -> None:
    """CP-HIST-12, CP-ROOM-8, CP-ROOM-7: limit 0 is INVALID_FIELD, a non-member gets
    NOT_IN_ROOM, an unknown room NO_SUCH_ROOM."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await alice.client.join("#room")
    await refused(alice.client.history("#room", limit=0), ErrorCode.INVALID_FIELD, "HISTORY")
    await refused(bob.client.history("#room"), ErrorCode.NOT_IN_ROOM, "HISTORY")
    await refused(bob.client.history("#nowhere"), ErrorCode.NO_SUCH_ROOM, "HISTORY")


# ------------------------------------------------------------------ operators


@pytest.mark.server_config(operators=OPERATORS, limits=RELAXED)
async def test_oper_and_not_operator(server: RunningServer, clients: ClientMaker) -> None:
    """CP-OPER-1, CP-OPER-2, CP-OPER-3: a wrong credential is AUTH_FAILED; before OPER,
    kick/ban/unban/mute are NOT_OPERATOR whatever they name; after it, the user shows as
    an operator."""
    root, bob = await clients("root", server.port), await clients("bob", server.port)
    await bob.client.join("#room")
    await refused(root.client.oper("root", "wrong"), ErrorCode.AUTH_FAILED, "OPER")
    await refused(root.client.oper("nobody", "rootpw"), ErrorCode.AUTH_FAILED, "OPER")
    for room in ("#room", "#nowhere"):
        await refused(root.client.kick(room, "bob"), ErrorCode.NOT_OPERATOR, "KICK")
        await refused(root.client.ban(room, "bob"), ErrorCode.NOT_OPERATOR, "BAN")
        await refused(root.client.unban(room, "bob"), ErrorCode.NOT_OPERATOR, "UNBAN")
        await refused(root.client.mute(room, "bob"), ErrorCode.NOT_OPERATOR, "MUTE")
    assert isinstance(await root.client.oper("root", "rootpw"), Ok)
    users = {u.nick: u for u in await bob.client.list_users()}
    assert users["root"].operator and not users["bob"].operator
    assert "#room" in bob.client.rooms


@pytest.mark.server_config(operators=OPERATORS, limits=RELAXED)
async def test_kick(server: RunningServer, clients: ClientMaker) -> None:
    """CP-OPER-4, CP-OPER-5: an operator (not a member) kicks mallory: mallory and bob get
    MEMBER_LEFT KICK with the reason and by=root, the operator gets nothing; mallory's
    client.rooms forgets the room and she can join again. NO_SUCH_NICK for an absent
    nick, NOT_IN_ROOM for a user who is not a member."""
    root, bob, mallory = [await clients(n, server.port) for n in ("root", "bob", "mallory")]
    await root.client.oper("root", "rootpw")
    await bob.client.join("#room")
    await mallory.client.join("#room")
    assert isinstance(await root.client.kick("#room", "MALLORY", "flooding"), Ok)
    for client in (mallory, bob):
        left = await client.expect_type(MemberLeft)
        assert (left.room, left.nick, left.kind, left.reason, left.by) == (
            "#room", "mallory", 2, "flooding", "root")
    assert "#room" not in mallory.client.rooms
    assert bob.client.rooms["#room"].members == {"bob"}
    assert [e for e in await root.barrier() if isinstance(e, MemberLeft)] == []
    await refused(mallory.client.send_room("#room", "still here?"), ErrorCode.NOT_IN_ROOM,
                  "SEND_ROOM")
    await mallory.client.join("#room")
    await refused(root.client.kick("#room", "ghost"), ErrorCode.NO_SUCH_NICK, "KICK")
    await bob.client.join("#other")
    await refused(root.client.kick("#other", "mallory"), ErrorCode.NOT_IN_ROOM, "KICK")
    await refused(root.client.kick("#nowhere", "mallory"), ErrorCode.NO_SUCH_ROOM, "KICK")


@pytest.mark.server_config(operators=OPERATORS, limits=RELAXED)
async def test_ban_and_unban(server: RunningServer, clients: ClientMaker) -> None:
    """CP-OPER-6, CP-OPER-7, CP-ROOM-13: ban removes mallory (MEMBER_LEFT BAN, by=root, to
    her and bob) and keeps her out (BANNED_FROM_ROOM, any letter case); unban lets her in
    again, and unban without a ban is OK."""
    root, bob, mallory = [await clients(n, server.port) for n in ("root", "bob", "mallory")]
    await root.client.oper("root", "rootpw")
    await bob.client.join("#room")
    await mallory.client.join("#room")
    assert isinstance(await root.client.ban("#room", "mallory", "spam"), Ok)
    for client in (mallory, bob):
        left = await client.expect_type(MemberLeft)
        assert (left.nick, left.kind, left.reason, left.by) == ("mallory", 3, "spam", "root")
    assert "#room" not in mallory.client.rooms
    await refused(mallory.client.join("#room"), ErrorCode.BANNED_FROM_ROOM, "JOIN")
    await mallory.client.change_nick("MALLORY")
    await refused(mallory.client.join("#room"), ErrorCode.BANNED_FROM_ROOM, "JOIN")
    assert mallory.client.rooms == {}
    assert isinstance(await root.client.unban("#room", "mallory"), Ok)
    await mallory.client.join("#room")
    assert isinstance(await root.client.unban("#room", "nobody"), Ok)


@pytest.mark.server_config(operators=OPERATORS, limits=RELAXED)
async def test_mute(server: RunningServer, clients: ClientMaker) -> None:
    """CP-OPER-8, CP-OPER-9: mute -> MUTE_CHANGED (by=root) to every member; the muted
    nick's send_room and set_topic raise MUTED; unmute (muted=False) lets her speak."""
    root, bob, mallory = [await clients(n, server.port) for n in ("root", "bob", "mallory")]
    await root.client.oper("root", "rootpw")
    await bob.client.join("#room")
    await mallory.client.join("#room")
    assert isinstance(await root.client.mute("#room", "mallory"), Ok)
    for client in (mallory, bob):
        changed = await client.expect_type(MuteChanged)
        assert (changed.room, changed.nick, changed.muted, changed.by) == (
            "#room", "mallory", True, "root")
    await refused(mallory.client.send_room("#room", "let me talk"), ErrorCode.MUTED,
                  "SEND_ROOM")
    await refused(mallory.client.set_topic("#room", "muted?"), ErrorCode.MUTED, "SET_TOPIC")
    assert room_messages(await bob.barrier()) == []
    await root.client.mute("#room", "mallory", muted=False)
    assert (await mallory.expect_type(MuteChanged)).muted is False
    ok = await mallory.client.send_room("#room", "thanks")
    message = await bob.expect(lambda e: isinstance(e, RoomMessage))
    assert (message.seq, message.text) == (ok.seq, "thanks")
