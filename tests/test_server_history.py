"""Reference server: history replay on JOIN, resume, HISTORY paging, gaps (real sockets).

Spec page: messaging (History: replay on join, resuming after a reconnect, paging).
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import ClientFactory, RunningServer
from server_harness import ChatTestClient, join_all, of_type, refused

from chatproto import ErrorCode, Limits
from chatproto.messages import (
    History,
    HistoryGap,
    Join,
    Message,
    Ok,
    RoomInfo,
    RoomMessage,
    SendRoom,
)


async def post(client: ChatTestClient, room: str, count: int, start: int = 1) -> list[Ok]:
    """``count`` messages "m<start>", "m<start+1>"...; their OKs."""
    oks = []
    for number in range(start, start + count):
        final = (await client.ok(SendRoom(room=room, client_msg_id=number,
                                          text=f"m{number}")))[-1]
        assert isinstance(final, Ok)
        oks.append(final)
    return oks


def replayed(frames: list[Message]) -> list[RoomMessage]:
    messages = of_type(frames, RoomMessage)
    assert all(m.history for m in messages), "a replayed message without history=1"
    return messages


@pytest.mark.server_config(limits=Limits(history_on_join=5))
async def test_join_replays_recent_history(server: RunningServer,
                                           client_factory: ClientFactory) -> None:
    """CP-HIST-3, CP-HIST-4, CP-ROOM-9, CP-REQ-6: a JOIN (resume 0, whatever
    last_seen_seq) is answered ROOM_INFO, then the history_on_join latest messages in
    seq order with history=1 and the JOIN's request_id, each with its original
    identity, sender, client_msg_id and text, then OK."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#room"))
    oks = await post(alice, "#room", 8)
    bob = await client_factory("bob")
    request_id = await bob.send(Join(room="#room", resume=False, last_seen_seq=2))
    frames = await bob.response(request_id)
    assert [f.NAME for f in frames] == ["ROOM_INFO"] + ["ROOM_MESSAGE"] * 5 + ["OK"]
    assert all(f.request_id == request_id for f in frames)
    info = frames[0]
    assert isinstance(info, RoomInfo) and info.last_seq == 8
    history = replayed(frames)
    assert [(m.seq, m.msg_id, m.timestamp_ms, m.sender, m.client_msg_id, m.text)
            for m in history] == [
        (ok.seq, ok.msg_id, ok.timestamp_ms, "alice", ok.seq, f"m{ok.seq}") for ok in oks[3:]]


@pytest.mark.server_config(limits=Limits(history_on_join=0))
async def test_join_without_replay(server: RunningServer,
                                   client_factory: ClientFactory) -> None:
    """CP-HIST-4: history_on_join 0 turns the replay off: ROOM_INFO then OK."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#room"))
    await post(alice, "#room", 3)
    bob = await client_factory("bob")
    frames = await bob.ok(Join(room="#room"))
    assert [f.NAME for f in frames] == ["ROOM_INFO", "OK"]


async def test_live_messages_continue_after_the_replay(server: RunningServer,
                                                       client_factory: ClientFactory) -> None:
    """CP-HIST-6: the first live ROOM_MESSAGE after the JOIN's OK has ROOM_INFO.last_seq + 1."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await alice.ok(Join(room="#room"))
    await post(alice, "#room", 3)
    info = (await bob.ok(Join(room="#room")))[0]
    assert isinstance(info, RoomInfo)
    await post(alice, "#room", 1, start=4)
    live = await bob.expect(RoomMessage)
    assert (live.seq, live.history, live.request_id) == (info.last_seq + 1, False, 0)


@pytest.mark.server_config(limits=Limits(msg_rate_burst=500, msg_rate_interval_ms=1,
                                         history_on_join=500), history_depth=1000)
async def test_join_while_the_room_is_busy(server: RunningServer,
                                           client_factory: ClientFactory) -> None:
    """CP-HIST-5, CP-HIST-6, CP-MSG-10, CP-REQ-10 (JOIN is atomic): while alice pipelines
    messages, bob joins: between ROOM_INFO and OK he gets no live message of the room; his
    replay ends at last_seq and the live messages start at last_seq + 1 — every message
    exactly once, in order."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await alice.ok(Join(room="#busy"))
    total = 300
    under_way = asyncio.Event()

    async def flood() -> None:
        for batch in range(0, total, 10):  # pipelined batches of 10
            ids = [await alice.send(SendRoom(room="#busy", text=f"n{i}"))
                   for i in range(batch, batch + 10)]
            for request_id in ids:
                assert isinstance((await alice.response(request_id))[-1], Ok)
            if batch >= 50:
                under_way.set()

    sender = asyncio.create_task(flood())
    await under_way.wait()
    request_id = await bob.send(Join(room="#busy"))
    frames = await bob.response(request_id)
    during_join = bob.events_in_window(bob.last_answer_window)
    await sender
    info = frames[0]
    assert isinstance(info, RoomInfo)
    assert 0 < info.last_seq < total, "the JOIN did not land in the middle of the flood"
    assert of_type(during_join, RoomMessage) == []
    history = replayed(frames)
    assert [m.seq for m in history] == list(range(1, info.last_seq + 1))
    live = of_type(await bob.barrier(), RoomMessage)
    assert all(not m.history for m in live)
    assert [m.seq for m in live] == list(range(info.last_seq + 1, total + 1))


@pytest.mark.server_config(history_depth=50)
async def test_resume_after_reconnect_returns_exactly_the_missed_range(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-HIST-15, CP-HIST-9: bob saw up to seq 5 and lost his connection; alice posted
    6..12; bob rejoins with resume=1 last_seen_seq=5 and gets exactly 6..12 (history=1),
    no HISTORY_GAP; resuming at or past last_seq replays nothing."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    await post(alice, "#room", 5)
    seen = of_type(await bob.barrier(), RoomMessage)
    assert [m.seq for m in seen] == [1, 2, 3, 4, 5]
    bob.abort()
    await alice.expect(lambda e: e.NAME == "MEMBER_LEFT")
    oks = await post(alice, "#room", 7, start=6)

    bob2 = await client_factory("bob")
    frames = await bob2.ok(Join(room="#room", resume=True, last_seen_seq=5))
    assert of_type(frames, HistoryGap) == []
    history = replayed(frames)
    assert [(m.seq, m.msg_id, m.text) for m in history] == [
        (ok.seq, ok.msg_id, f"m{ok.seq}") for ok in oks]

    carol = await client_factory("carol")
    frames = await carol.ok(Join(room="#room", resume=True, last_seen_seq=12))
    assert [f.NAME for f in frames] == ["ROOM_INFO", "OK"]
    dave = await client_factory("dave")
    frames = await dave.ok(Join(room="#room", resume=True, last_seen_seq=999))
    assert [f.NAME for f in frames] == ["ROOM_INFO", "OK"]
    info = frames[0]
    assert isinstance(info, RoomInfo) and info.last_seq == 12


@pytest.mark.server_config(history_depth=5, limits=Limits(history_on_join=3))
async def test_resume_past_the_retained_history_gets_a_gap(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-HIST-1, CP-HIST-8: with 5 messages retained out of 12 (8..12), resume from 2
    gets ROOM_INFO, one HISTORY_GAP 3..7, then 8..12, then OK."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#room"))
    await post(alice, "#room", 12)
    bob = await client_factory("bob")
    request_id = await bob.send(Join(room="#room", resume=True, last_seen_seq=2))
    frames = await bob.response(request_id)
    assert [f.NAME for f in frames] == (["ROOM_INFO", "HISTORY_GAP"] + ["ROOM_MESSAGE"] * 5
                                        + ["OK"])
    gap = frames[1]
    assert isinstance(gap, HistoryGap)
    assert (gap.room, gap.first_seq, gap.last_seq, gap.request_id) == ("#room", 3, 7,
                                                                        request_id)
    assert [m.seq for m in replayed(frames)] == [8, 9, 10, 11, 12]
    carol = await client_factory("carol")
    frames = await carol.ok(Join(room="#room", resume=True, last_seen_seq=0))
    gaps = of_type(frames, HistoryGap)
    assert [(g.first_seq, g.last_seq) for g in gaps] == [(1, 7)]
    assert [m.seq for m in replayed(frames)] == [8, 9, 10, 11, 12]


@pytest.mark.server_config(history_depth=100, limits=Limits(history_page_max=8))
async def test_history_pages_backwards(server: RunningServer,
                                       client_factory: ClientFactory) -> None:
    """CP-HIST-10: HISTORY gives the window B-n..B-1 ascending (n = min(limit,
    history_page_max), B = before_seq, or last_seq+1 for 0 or beyond), history=1 and the
    request's id, then OK; paging with before_seq = lowest seq received walks back to 1."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#room"))
    oks = await post(alice, "#room", 20)
    by_seq = {ok.seq: ok for ok in oks}

    async def page(before: int, limit: int) -> list[int]:
        request_id = await alice.send(History(room="#room", before_seq=before, limit=limit))
        frames = await alice.response(request_id)
        assert isinstance(frames[-1], Ok)
        assert all(f.request_id == request_id for f in frames)
        messages = replayed(frames)
        assert all((m.msg_id, m.timestamp_ms, m.text) == (
            by_seq[m.seq].msg_id, by_seq[m.seq].timestamp_ms, f"m{m.seq}") for m in messages)
        return [m.seq for m in messages]

    assert await page(0, 5) == [16, 17, 18, 19, 20]
    assert await page(16, 5) == [11, 12, 13, 14, 15]
    assert await page(0, 100) == list(range(13, 21))      # capped at history_page_max
    assert await page(999, 3) == [18, 19, 20]             # beyond last_seq: from the end
    assert await page(3, 5) == [1, 2]                      # not below 1
    assert await page(1, 5) == []
    walked: list[int] = []
    before = 0
    while True:
        seqs = await page(before, 6)
        if not seqs:
            break
        walked = seqs + walked
        before = seqs[0]
    assert walked == list(range(1, 21))


async def test_history_limit_zero_and_non_members(server: RunningServer,
                                                  client_factory: ClientFactory) -> None:
    """CP-HIST-12, CP-ROOM-8: HISTORY with limit 0 is INVALID_FIELD, from anyone and for any
    room; with another limit, from a non-member, NOT_IN_ROOM."""
    alice, outsider = await client_factory("alice"), await client_factory("outsider")
    await alice.ok(Join(room="#room"))
    await post(alice, "#room", 2)
    refused(await alice.request_unchecked(History, room="#room", limit=0), ErrorCode.INVALID_FIELD)
    refused(await outsider.request(History(room="#room", limit=5)), ErrorCode.NOT_IN_ROOM)
    # limit 0 is a field check, made before the room is looked at (CP-HIST-12, issue 14 A3)
    refused(await outsider.request_unchecked(History, room="#room", limit=0),
            ErrorCode.INVALID_FIELD)
    refused(await outsider.request_unchecked(History, room="#nowhere", limit=0),
            ErrorCode.INVALID_FIELD)


@pytest.mark.server_config(history_depth=5, limits=Limits(history_on_join=3))
async def test_history_page_reaching_below_the_retained_part(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-HIST-11, CP-HIST-1: retained 8..12; HISTORY before 10 limit 5 (window 5..9) gets
    HISTORY_GAP 5..7 first, then 8 and 9; a window entirely gone gets only the gap."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#room"))
    await post(alice, "#room", 12)
    frames = await alice.ok(History(room="#room", before_seq=10, limit=5))
    assert [f.NAME for f in frames] == ["HISTORY_GAP", "ROOM_MESSAGE", "ROOM_MESSAGE", "OK"]
    gap = frames[0]
    assert isinstance(gap, HistoryGap) and (gap.first_seq, gap.last_seq) == (5, 7)
    assert [m.seq for m in replayed(frames)] == [8, 9]
    frames = await alice.ok(History(room="#room", before_seq=5, limit=3))
    assert [f.NAME for f in frames] == ["HISTORY_GAP", "OK"]
    gap = frames[0]
    assert isinstance(gap, HistoryGap) and (gap.first_seq, gap.last_seq) == (2, 4)


@pytest.mark.server_config(history_depth=4, limits=Limits(history_on_join=2))
async def test_retention_drops_the_oldest_first(server: RunningServer,
                                                client_factory: ClientFactory) -> None:
    """CP-HIST-1, CP-HIST-2: what is retained is always the latest history_depth messages,
    consecutive and ending at last_seq."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#room"))
    for count in range(1, 10):
        await post(alice, "#room", 1, start=count)
        frames = await alice.ok(History(room="#room", limit=100))
        seqs = [m.seq for m in replayed(frames)]
        assert seqs == list(range(max(1, count - 3), count + 1))


@pytest.mark.server_config(history_depth=50, limits=Limits(history_on_join=3))
async def test_resume_is_not_capped_by_history_on_join(server: RunningServer,
                                                       client_factory: ClientFactory) -> None:
    """CP-HIST-15 vs CP-HIST-4: a plain JOIN replays history_on_join messages, but a resume
    replays every retained message after last_seen_seq, up to history_page_max (200 here:
    all 18, with history_on_join 3); resume from 0 replays the whole retained history."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#room"))
    await post(alice, "#room", 20)
    bob = await client_factory("bob")
    assert [m.seq for m in replayed(await bob.ok(Join(room="#room")))] == [18, 19, 20]
    carol = await client_factory("carol")
    frames = await carol.ok(Join(room="#room", resume=True, last_seen_seq=2))
    assert [m.seq for m in replayed(frames)] == list(range(3, 21))
    dave = await client_factory("dave")
    frames = await dave.ok(Join(room="#room", resume=True, last_seen_seq=0))
    assert of_type(frames, HistoryGap) == []
    assert [m.seq for m in replayed(frames)] == list(range(1, 21))


@pytest.mark.server_config(history_depth=50, limits=Limits(history_on_join=3, history_page_max=8))
async def test_resume_replays_at_most_history_page_max_of_the_oldest_missed(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-HIST-15 (issue 14 A6): a resume replays the OLDEST missed messages, at most
    history_page_max (8) of them; the client pages on with HISTORY up to ROOM_INFO's
    last_seq and so gets every message once. A gap comes first, as before (CP-HIST-8)."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#room"))
    await post(alice, "#room", 20)
    bob = await client_factory("bob")
    frames = await bob.ok(Join(room="#room", resume=True, last_seen_seq=2))
    info = of_type(frames, RoomInfo)[0]
    assert info.last_seq == 20 and of_type(frames, HistoryGap) == []
    assert [m.seq for m in replayed(frames)] == list(range(3, 11))
    rest = await bob.ok(History(room="#room", before_seq=19, limit=8))
    assert [m.seq for m in replayed(rest)] == list(range(11, 19))
    rest = await bob.ok(History(room="#room", before_seq=21, limit=2))
    assert [m.seq for m in replayed(rest)] == [19, 20]
    carol = await client_factory("carol")  # a short absence is replayed whole
    assert [m.seq for m in replayed(await carol.ok(Join(room="#room", resume=True,
                                                        last_seen_seq=15)))] == [16, 17, 18,
                                                                                  19, 20]
