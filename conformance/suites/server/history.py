"""History: replay on JOIN, resume after a reconnect, paging, and HISTORY_GAP.

A server's retention is not advertised, so a case cannot assume which old
messages are still there. The checks therefore use what retention must look
like (consecutive seqs ending at the latest, CP-HIST-1): every answer must be
a well-formed window of it, and a message missing from an answer is judged by
asking, with a one-message HISTORY, whether the server still retains it. Only
the slow case floods a room until its first message is discarded, to see a
HISTORY_GAP for certain.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from chatproto import ErrorCode, fold
from chatproto.messages import (
    Error,
    HistoryGap,
    Join,
    MemberJoined,
    Nick,
    Ok,
    RoomInfo,
    RoomMessage,
    SendRoom,
    SetTopic,
)
from chatproto.messages import History as HistoryRequest
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import Answer, Peer, ServerContext, fresh_client_msg_id
from conformance.suites.server._bodies import unchecked
from conformance.suites.server._steps import room_with, text_is
from conformance.transcript import describe

MAX_FILL = 250
"""Most messages a non-slow case sends to one room."""
GAP_BUDGET = 2000
"""Most messages the slow case sends while trying to make the server discard seq 1."""
GAP_SENDERS = 20
FILL_SECONDS = 30
"""Longest a non-slow case may spend sending messages to fill a room."""
GAP_FILL_SECONDS = 180
GAP_BATCH = 200
JOIN_RACE_ROUNDS = 3
RACE_MESSAGES = 40
"""Most messages sent while waiting for one JOIN's answer."""


@dataclass(frozen=True)
class Sent:
    """A message as the server accepted it: what every replay of it must carry."""

    seq: int
    msg_id: int
    timestamp_ms: int
    sender: str
    client_msg_id: int
    text: str


async def _send_from(peer: Peer, room: str, count: int, tag: str) -> list[Sent]:
    """``count`` messages from ``peer``, sent without waiting in between (paced), then their OKs."""
    assert peer.welcome is not None
    requests = []
    for n in range(count):
        text = f"{tag} {peer.label} #{n} \u2713".encode()[:peer.welcome.max_message_length]
        request = SendRoom(room=room, text=text.decode("utf-8", "ignore") or "m",
                           client_msg_id=fresh_client_msg_id() if n % 3 else 0)
        requests.append(await peer.send(request))
    sent = []
    for request in requests:
        answer = await peer.response(request.request_id, "SEND_ROOM", req="CP-MSG-1")
        if not isinstance(answer.final, Ok):
            raise Violation("CP-MSG-1", f"{peer.label}: SEND_ROOM {request.text!r} was answered "
                            f"with {describe(answer.final)}")
        sent.append(Sent(answer.final.seq, answer.final.msg_id, answer.final.timestamp_ms,
                         peer.nick, request.client_msg_id, request.text))
    return sent


async def _fill(ctx: ServerContext, room: str, count: int, senders: list[Peer],
                tag: str = "msg") -> dict[int, Sent]:
    """Send ``count`` messages to ``room`` spread over ``senders``; the accepted ones by seq."""
    shares = [count // len(senders) + (1 if i < count % len(senders) else 0)
              for i in range(len(senders))]
    results = await asyncio.gather(*(_send_from(peer, room, share, tag)
                                     for peer, share in zip(senders, shares, strict=True)
                                     if share))
    for peer in senders:
        peer.take(RoomMessage)  # the live copies are not what these cases look at
    sent = {s.seq: s for batch in results for s in batch}
    seqs = sorted(sent)
    # History checks reason about seqs; seqs never given out are CP-MSG-8's fault.
    if len(seqs) != count or (seqs and seqs != list(range(seqs[0], seqs[0] + count))):
        raise Violation("CP-MSG-8", f"{count} messages sent to {room} got seqs "
                        f"{seqs[:8]}...{seqs[-8:]}; a room's seqs grow by 1 per message")
    return sent


def _senders_for(ctx: ServerContext, count: int) -> int:
    """How many connections send ``count`` messages without waiting for refills."""
    assert ctx.limits is not None
    per_sender = max(1, ctx.limits.msg_rate_burst - 2)
    return max(1, min(12, math.ceil(count / per_sender)))


def _fill_seconds(ctx: ServerContext, count: int, senders: int) -> float:
    """How long ``senders`` connections take to send ``count`` messages at the advertised rate."""
    assert ctx.limits is not None
    beyond_burst = max(0, count - senders * ctx.limits.msg_rate_burst)
    return beyond_burst / senders * ctx.limits.msg_rate_interval_ms / 1000


async def _filled_room(ctx: ServerContext, tag: str, count: int) -> tuple[str, dict[int, Sent]]:
    """A fresh room holding ``count`` messages from several senders."""
    room = ctx.room(tag)
    first = await ctx.client("s")
    await first.join(room)
    senders = _senders_for(ctx, count)
    if _fill_seconds(ctx, count, senders) > FILL_SECONDS:
        ctx.skip(f"sending {count} messages at the advertised message rate would take more "
                 f"than {FILL_SECONDS} s")
    peers = [first] + await room_with(ctx, room, *["s"] * (senders - 1))
    return room, await _fill(ctx, room, count, peers, tag)


async def _limits(ctx: ServerContext) -> None:
    if ctx.limits is None:
        await ctx.client("probe")


def _room_info(answer: Answer, room: str) -> RoomInfo:
    if not answer.intermediate or not isinstance(answer.intermediate[0], RoomInfo):
        first = describe(answer.intermediate[0]) if answer.intermediate else "OK"
        raise Violation("CP-ROOM-9", f"the answer to JOIN {room} starts with {first}, "
                        "not ROOM_INFO")
    return answer.intermediate[0]


def _check_replayed(ctx: ServerContext, where: str, message: RoomMessage,
                    sent: dict[int, Sent]) -> None:
    """CP-HIST-3: a replayed message carries history 1 and what it had when accepted."""
    ctx.check(message.history, "CP-HIST-3",
              f"{where} replayed {describe(message)} with history 0; replays carry history 1")
    original = sent.get(message.seq)
    if original is None:
        return
    got = Sent(message.seq, message.msg_id, message.timestamp_ms, message.sender,
               message.client_msg_id, message.text)
    ctx.check(got == original, "CP-HIST-3",
              f"{where} replayed seq {message.seq} as {got}; the server accepted it as "
              f"{original}")


async def _retained(peer: Peer, room: str, seq: int) -> bool:
    """Whether the server still retains message ``seq`` of ``room`` (a one-message HISTORY)."""
    answer = await peer.ok(HistoryRequest(room=room, before_seq=seq + 1, limit=1),
                           req="CP-HIST-10")
    return any(m.seq == seq for m in answer.of_type(RoomMessage))


def _consecutive(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True


async def _check_catch_up(ctx: ServerContext, peer: Peer, room: str, answer: Answer,
                          last_seen: int, sent: dict[int, Sent]) -> list[int]:
    """Check a JOIN with resume 1 against CP-HIST-15 and CP-HIST-8; the replayed seqs."""
    info = _room_info(answer, room)
    last_seq = info.last_seq
    rest = answer.intermediate[1:]
    gaps = [f for f in rest if isinstance(f, HistoryGap)]
    messages = [f for f in rest if isinstance(f, RoomMessage)]
    seqs = [m.seq for m in messages]
    where = f"JOIN {room} resume=1 last_seen_seq={last_seen}"
    ctx.check(all(s > last_seen for s in seqs), "CP-HIST-15",
              f"{where} replayed seqs {seqs}; only those above last_seen_seq belong")
    ctx.check(seqs == sorted(set(seqs)), "CP-HIST-15",
              f"{where} replayed seqs {seqs}, not in increasing order")
    if last_seen >= last_seq:
        ctx.check(not messages, "CP-HIST-15",
                  f"{where} replayed {seqs} although last_seq is {last_seq}")
        ctx.check(not gaps, "CP-HIST-8", f"{where} sent {describe(gaps[0]) if gaps else ''} "
                  f"although last_seq is {last_seq}: nothing is missing")
        return seqs
    for index in range(1, len(seqs)):
        if seqs[index] != seqs[index - 1] + 1:
            hole = seqs[index - 1] + 1
            kept = await _retained(peer, room, hole)
            ctx.fail("CP-HIST-15" if kept else "CP-HIST-1",
                     f"{where} replayed {seqs[index - 1]} then {seqs[index]}; seq {hole} is "
                     + ("retained but was not replayed" if kept else
                        "not retained while later and earlier ones are (retention must be "
                        "consecutive)"))
    # A replay of history_page_max messages may stop short of last_seq (the client pages on).
    full_page = ctx.limits is not None and len(seqs) == ctx.limits.history_page_max
    if seqs and seqs[-1] != last_seq and not full_page:
        kept = await _retained(peer, room, last_seq)
        ctx.fail("CP-HIST-15" if kept else "CP-HIST-1",
                 f"{where} replayed up to seq {seqs[-1]}, but ROOM_INFO says last_seq "
                 f"{last_seq}" + ("" if kept else " and the latest message is not retained"))
    ctx.check(len(gaps) <= 1, "CP-HIST-8", f"{where} sent {len(gaps)} HISTORY_GAP frames")
    if gaps:
        gap = gaps[0]
        end = seqs[0] - 1 if seqs else last_seq
        ctx.check(rest[0] is gap, "CP-HIST-8",
                  f"{where} sent HISTORY_GAP after {describe(rest[0])}; it comes right after "
                  "ROOM_INFO, before the replayed messages")
        ctx.check((gap.first_seq, gap.last_seq) == (last_seen + 1, end), "CP-HIST-8",
                  f"{where} sent {describe(gap)}; expected first_seq {last_seen + 1} and "
                  f"last_seq {end} (the replay starts at {seqs[0] if seqs else 'nothing'})")
    elif not seqs or seqs[0] != last_seen + 1:
        kept = await _retained(peer, room, last_seen + 1)
        start = f"starts at seq {seqs[0]}" if seqs else "is empty"
        ctx.fail("CP-HIST-15" if kept else "CP-HIST-8",
                 f"{where}: the replay {start}; seq {last_seen + 1} is "
                 + ("retained, so it must be replayed" if kept else
                    "no longer retained, so a HISTORY_GAP must say so"))
    for message in messages:
        _check_replayed(ctx, where, message, sent)
    return seqs


@dataclass
class Retention:
    """What a case has seen the server retain: the lowest seq any answer carried."""

    floor: int | None = None

    def saw(self, seqs: list[int]) -> None:
        if seqs:
            self.floor = min(seqs) if self.floor is None else min(self.floor, *seqs)

    def known(self, seq: int) -> bool:
        """The message was seen retained (and no message was sent since)."""
        return self.floor is not None and seq >= self.floor


async def _check_page(ctx: ServerContext, peer: Peer, room: str, before: int, limit: int,
                      last_seq: int, sent: dict[int, Sent], seen: Retention,
                      first: int = 1) -> list[int]:
    """Send one HISTORY and check its answer against CP-HIST-10 and CP-HIST-11.

    ``first`` is the seq of the room's first message: 1, unless the server breaks
    CP-MSG-8 (judged by its own cases). Seqs below it were never given out in
    the room, so only the part of the window from ``first`` up is judged.
    """
    assert ctx.limits is not None
    answer = await peer.ok(HistoryRequest(room=room, before_seq=before, limit=limit),
                           req="CP-HIST-10")
    bound = last_seq + 1 if before == 0 or before > last_seq + 1 else before
    window_low = max(1, bound - min(limit, ctx.limits.history_page_max))
    low, high = max(first, window_low), bound - 1
    where = f"HISTORY {room} before_seq={before} limit={limit} (window {low}..{high})"
    frames = answer.intermediate
    for frame in frames:
        ctx.check(isinstance(frame, RoomMessage | HistoryGap), "CP-HIST-10",
                  f"{where} was answered with {describe(frame)}")
    gaps = [f for f in frames if isinstance(f, HistoryGap)]
    messages = [f for f in frames if isinstance(f, RoomMessage)]
    seqs = [m.seq for m in messages]
    ctx.check(all(low <= s <= high for s in seqs), "CP-HIST-10",
              f"{where} returned seqs {seqs}, outside the window")
    ctx.check(seqs == sorted(set(seqs)) and _consecutive(seqs), "CP-HIST-10",
              f"{where} returned seqs {seqs}; the retained part of the window comes "
              "complete, in increasing order")
    if seqs:
        ctx.check(seqs[-1] == high or not seen.known(high), "CP-HIST-10",
                  f"{where} returned seqs {seqs}, leaving out retained seq {high}")
    ctx.check(len(gaps) <= 1, "CP-HIST-11", f"{where} sent {len(gaps)} HISTORY_GAP frames")
    if gaps:
        gap = gaps[0]
        end = seqs[0] - 1 if seqs else high
        ctx.check(frames[0] is gap, "CP-HIST-11",
                  f"{where} sent HISTORY_GAP after {describe(frames[0])}; it comes first")
        ctx.check(gap.last_seq == end and gap.first_seq in (window_low, low), "CP-HIST-11",
                  f"{where} sent {describe(gap)}; the part not retained is "
                  f"{window_low}..{end}")
        ctx.check(not seen.known(gap.last_seq), "CP-HIST-10",
                  f"{where} sent {describe(gap)}, but seq {gap.last_seq} was retained "
                  "moments ago")
    elif low <= high and (not seqs or seqs[0] != low):
        missing = low
        kept = seen.known(missing) or await _retained(peer, room, missing)
        start = f"starts at seq {seqs[0]}" if seqs else "is empty"
        ctx.fail("CP-HIST-10" if kept else "CP-HIST-11",
                 f"{where}: the page {start}; seq {missing} is "
                 + ("retained, so it belongs to the page" if kept else
                    "no longer retained, so a HISTORY_GAP must say so"))
    for message in messages:
        _check_replayed(ctx, where, message, sent)
    seen.saw(seqs)
    return seqs


# ------------------------------------------------------------ replay on join


@server_case("CP-HIST-4", "CP-HIST-3", "CP-HIST-13")
async def join_replays_most_recent_history(ctx: ServerContext) -> None:
    """A plain JOIN replays the history_on_join latest messages, in seq order, and no gap."""
    await _limits(ctx)
    assert ctx.limits is not None
    on_join = ctx.limits.history_on_join
    count = min(on_join + 3, MAX_FILL)
    room, sent = await _filled_room(ctx, "replay", count)
    expected = min(on_join, count)
    replays: list[list[int]] = []
    for last_seen in (0, count - 1):
        bob = await ctx.client("bob")
        answer = await bob.join(room)
        info = _room_info(answer, room)
        where = f"JOIN {room} resume=0 last_seen_seq={last_seen}"
        gaps = answer.of_type(HistoryGap)
        ctx.check(not gaps, "CP-HIST-13", f"{where} was answered with "
                  f"{describe(gaps[0]) if gaps else ''}; a plain JOIN gets no HISTORY_GAP")
        messages = answer.of_type(RoomMessage)
        seqs = [m.seq for m in messages]
        ctx.check(seqs == sorted(set(seqs)) and _consecutive(seqs), "CP-HIST-4",
                  f"{where} replayed seqs {seqs}; the most recent messages, in increasing seq")
        ctx.check(not seqs or seqs[-1] == info.last_seq, "CP-HIST-4",
                  f"{where} replayed seqs {seqs}, but the latest is {info.last_seq}")
        ctx.check(len(seqs) <= expected, "CP-HIST-4",
                  f"{where} replayed {len(seqs)} messages; history_on_join is {on_join}")
        if len(seqs) < expected:
            oldest_left_out = info.last_seq - len(seqs)
            ctx.check(not await _retained(bob, room, oldest_left_out), "CP-HIST-4",
                      f"{where} replayed {len(seqs)} messages, fewer than history_on_join "
                      f"({on_join}), yet seq {oldest_left_out} is still retained")
        for message in messages:
            _check_replayed(ctx, where, message, sent)
        replays.append(seqs)
    ctx.check(replays[0] == replays[1], "CP-HIST-4",
              f"JOIN resume=0 replayed {replays[0]} with last_seen_seq 0 but {replays[1]} with "
              f"last_seen_seq {count - 1}; without resume last_seen_seq changes nothing")


@server_case("CP-HIST-3")
async def replay_names_sender_as_it_was(ctx: ServerContext) -> None:
    """A replayed message keeps the sender nick it was sent under, after the sender renamed."""
    room = ctx.room("oldnick")
    (alice,) = await room_with(ctx, room, "alice")
    old = alice.nick
    ok = await alice.say(room, "sent under my old nick", client_msg_id=99)
    await alice.ok(Nick(nick=ctx.nick("renamed")), req="CP-NICK-7")
    sent = {ok.seq: Sent(ok.seq, ok.msg_id, ok.timestamp_ms, old, 99, "sent under my old nick")}
    bob = await ctx.client("bob")
    answer = await bob.join(room, resume=True, last_seen_seq=0)
    for message in answer.of_type(RoomMessage):
        _check_replayed(ctx, f"JOIN {room} resume=1", message, sent)
    page = await bob.ok(HistoryRequest(room=room, limit=5), req="CP-HIST-10")
    for message in page.of_type(RoomMessage):
        _check_replayed(ctx, f"HISTORY {room}", message, sent)


def _answered(peer: Peer, request_id: int) -> bool:
    """Whether the final response to ``request_id`` has arrived (without consuming it)."""
    return any(m.request_id == request_id and m.NAME in ("OK", "ERROR") for m in peer.pending())


async def _talk_until_answered(ctx: ServerContext, room: str, talkers: list[Peer],
                               owner: Peer, joiner: Peer, request_id: int,
                               tag: str) -> list[Ok]:
    """Room traffic, one message at a time, until the joiner's JOIN is answered (bounded)."""
    assert ctx.limits is not None
    budget = max(1, min(RACE_MESSAGES, len(talkers) * (ctx.limits.msg_rate_burst - 4)))
    oks = []
    for n in range(budget):
        if _answered(joiner, request_id):
            break
        oks.append(await talkers[n % len(talkers)].say(room, f"{tag} {n}"))
        if n % 8 == 7:
            topic = str(n)[:ctx.limits.max_topic_length]
            await owner.ok(SetTopic(room=room, topic=topic), req="CP-ROOM-15")
    return oks


@server_case("CP-HIST-5", "CP-HIST-6", "CP-HIST-4", "CP-MSG-8", "CP-MSG-10")
async def join_amid_traffic_is_seamless(ctx: ServerContext) -> None:
    """JOIN during traffic: no room event between ROOM_INFO and OK; live resumes at last_seq + 1."""
    room = ctx.room("race")
    (owner,) = await room_with(ctx, room, "owner")
    issued = [(await owner.say(room, f"warm-up {n}")).seq for n in range(3)]
    for round_ in range(JOIN_RACE_ROUNDS):
        talkers = await room_with(ctx, room, "bob", "carol", "dave")
        alice = await ctx.client("alice")
        erin = await ctx.client("erin")
        issued.append((await talkers[0].say(room, f"round {round_} opening")).seq)
        join = await alice.send(Join(room=room))
        other_join = await erin.send(Join(room=room))
        oks = await _talk_until_answered(ctx, room, talkers, owner, alice, join.request_id,
                                         f"round {round_}")
        await erin.response(other_join.request_id, "JOIN", req="CP-ROOM-9")
        answer = await alice.response(join.request_id, "JOIN", req="CP-ROOM-9")
        if not isinstance(answer.final, Ok):
            raise Violation("CP-ROOM-9", f"alice's JOIN was answered with {describe(answer.final)}")
        oks.append(await talkers[0].say(room, f"round {round_} final"))
        issued += [ok.seq for ok in oks]
        # Seqs that were never given out would make any seamlessness check fail.
        ctx.check(issued == list(range(1, len(issued) + 1)), "CP-MSG-8",
                  f"the room's messages got seqs {issued}; expected 1..{len(issued)}")
        await alice.expect_type(RoomMessage, req="CP-MSG-1",
                                where=text_is(f"round {round_} final"))

        frames = [r.message for r in alice.received if r.message is not None]
        info_at = next(i for i, f in enumerate(frames)
                       if isinstance(f, RoomInfo) and f.request_id == join.request_id)
        ok_at = next(i for i, f in enumerate(frames) if f is answer.final)
        info = frames[info_at]
        assert isinstance(info, RoomInfo)
        between = frames[info_at + 1:ok_at]
        # Alice's own MEMBER_JOINED is CP-ROOM-10's business, not this rule's.
        events = [f for f in between if f.request_id == 0
                  and fold(str(getattr(f, "room", ""))) == fold(room)
                  and not (isinstance(f, MemberJoined) and f.nick == alice.nick)]
        ctx.check(not events, "CP-HIST-5",
                  f"between ROOM_INFO and OK of its JOIN, alice received "
                  f"{describe(events[0]) if events else ''}, an event about {room}")
        replay = [f.seq for f in between
                  if isinstance(f, RoomMessage) and f.request_id == join.request_id]
        ctx.check(not replay or replay[-1] == info.last_seq, "CP-HIST-4",
                  f"alice's JOIN replayed up to seq {replay[-1] if replay else 0}, but its "
                  f"ROOM_INFO says last_seq {info.last_seq}")
        live = [f.seq for f in frames[ok_at + 1:] if isinstance(f, RoomMessage)
                and f.request_id == 0 and fold(f.room) == fold(room)]
        ctx.check(live == sorted(live), "CP-MSG-10",
                  f"alice received the room's live messages in the order {live}")
        ctx.check(bool(live) and live[0] == info.last_seq + 1, "CP-HIST-6",
                  f"after ROOM_INFO with last_seq {info.last_seq}, alice's live messages "
                  f"have seqs {live[:5]}...; the first must be {info.last_seq + 1}")
        for peer in (*talkers, alice, erin):
            await peer.part(room)


@server_case("CP-HIST-6", "CP-MSG-8")
async def first_live_message_follows_room_info(ctx: ServerContext) -> None:
    """The first live ROOM_MESSAGE after a JOIN's OK has seq last_seq + 1 of its ROOM_INFO."""
    room = ctx.room("live")
    (alice,) = await room_with(ctx, room, "alice")
    for n in range(3):
        await alice.say(room, f"old {n}")
    bob = await ctx.client("bob")
    info = _room_info(await bob.join(room), room)
    ok = await alice.say(room, "new")
    ctx.check(ok.seq == 4, "CP-MSG-8", f"the room's fourth message got seq {ok.seq}")
    message = await bob.expect_type(RoomMessage, req="CP-MSG-1",
                                    where=lambda m: m.request_id == 0)
    ctx.check(message.seq == info.last_seq + 1, "CP-HIST-6",
              f"ROOM_INFO said last_seq {info.last_seq}; the first live message has seq "
              f"{message.seq}, not {info.last_seq + 1}")


# ---------------------------------------------------------------- resuming


@server_case("CP-HIST-15", "CP-HIST-8")
async def resume_replays_what_was_missed(ctx: ServerContext) -> None:
    """JOIN resume=1 replays every retained message after last_seen_seq; none when up to date."""
    room, sent = await _filled_room(ctx, "resume", 10)
    bob = await ctx.client("bob")
    for last_seen, expected in ((6, [7, 8, 9, 10]), (9, [10]), (10, []), (25, [])):
        answer = await bob.join(room, resume=True, last_seen_seq=last_seen)
        seqs = await _check_catch_up(ctx, bob, room, answer, last_seen, sent)
        if not answer.of_type(HistoryGap):
            ctx.check(seqs == expected, "CP-HIST-15",
                      f"JOIN resume=1 last_seen_seq={last_seen} replayed {seqs}; "
                      f"expected {expected}")
        await bob.part(room)


@server_case("CP-HIST-15", "CP-HIST-8", "CP-HIST-1")
async def resume_from_zero_replays_all_retained(ctx: ServerContext) -> None:
    """Resume from 0: consecutive seqs to the latest; a HISTORY_GAP exactly when seq 1 is gone."""
    await _limits(ctx)
    assert ctx.limits is not None
    count = max(8, min(ctx.limits.history_on_join + 5, MAX_FILL))
    room, sent = await _filled_room(ctx, "resume0", count)
    bob = await ctx.client("bob")
    answer = await bob.join(room, resume=True, last_seen_seq=0)
    seqs = await _check_catch_up(ctx, bob, room, answer, 0, sent)
    gapped = bool(answer.of_type(HistoryGap))
    replayed = min(count, ctx.limits.history_page_max)
    ctx.check(gapped or seqs == list(range(1, replayed + 1)), "CP-HIST-15",
              f"resume from 0 without a HISTORY_GAP replayed {len(seqs)} messages; all "
              f"{count} are retained, so {replayed} are replayed (more than history_on_join, "
              f"{ctx.limits.history_on_join}, up to history_page_max, "
              f"{ctx.limits.history_page_max})")


@server_case("CP-HIST-15")
async def resume_replays_at_most_history_page_max_the_oldest_first(
        ctx: ServerContext) -> None:
    """A resume that missed more than history_page_max messages replays exactly the
    history_page_max oldest of them; HISTORY then gives the rest up to ROOM_INFO's last_seq."""
    await _limits(ctx)
    assert ctx.limits is not None
    page_max = ctx.limits.history_page_max
    count = page_max + 3
    if count > MAX_FILL:
        ctx.skip(f"history_page_max is {page_max}; the kit sends at most {MAX_FILL} messages "
                 "to one room outside slow cases")
    room, sent = await _filled_room(ctx, "resumecap", count)
    first = min(sent)
    bob = await ctx.client("bob")
    answer = await bob.join(room, resume=True, last_seen_seq=first - 1)
    if answer.of_type(HistoryGap):
        ctx.skip(f"the server no longer retains all {count} messages of the room")
    seqs = await _check_catch_up(ctx, bob, room, answer, first - 1, sent)
    expected = list(range(first, first + page_max))
    ctx.check(seqs == expected, "CP-HIST-15",
              f"JOIN resume=1 after {count} missed messages replayed {len(seqs)} "
              f"(seqs {seqs[:2]}..{seqs[-2:]}); history_page_max is {page_max}, so exactly "
              f"the {page_max} oldest missed ones, seq {expected[0]} to {expected[-1]}")
    last_seq = _room_info(answer, room).last_seq
    rest = await bob.ok(HistoryRequest(room=room, before_seq=last_seq + 1,
                                       limit=last_seq - first - page_max + 1), req="CP-HIST-10")
    ctx.check([m.seq for m in rest.of_type(RoomMessage)]
              == list(range(first + page_max, last_seq + 1)), "CP-HIST-10",
              f"HISTORY for the {last_seq - first - page_max + 1} messages the replay left out "
              f"returned seqs {[m.seq for m in rest.of_type(RoomMessage)]}")


# ------------------------------------------------------------------ paging


@server_case("CP-HIST-10", "CP-HIST-11", "CP-HIST-3")
async def history_pages_backwards(ctx: ServerContext) -> None:
    """HISTORY returns the window below before_seq (0 or past the end: the latest), in seq order."""
    count = 12
    room, sent = await _filled_room(ctx, "pages", count)
    # The seqs the OKs carried (1..12 unless CP-MSG-8 is broken, which its own case judges).
    first, last = min(sent), max(sent)
    bob = await ctx.client("bob")
    await bob.join(room)
    seen = Retention()
    for before, limit in ((0, 5), (8, 5), (3, 5), (1, 5), (count + 1, 3), (10 ** 9, 3),
                          (0, 1), (0, 65535), (5, 1)):
        if 0 < before <= count + 1:
            before += first - 1
        await _check_page(ctx, bob, room, before, limit, last, sent, seen, first)


@server_case("CP-HIST-10", "CP-HIST-11")
async def history_page_capped_at_history_page_max(ctx: ServerContext) -> None:
    """A HISTORY limit above history_page_max returns at most history_page_max messages."""
    await _limits(ctx)
    assert ctx.limits is not None
    page_max = ctx.limits.history_page_max
    if page_max + 2 > MAX_FILL:
        ctx.skip(f"history_page_max is {page_max}; the kit sends at most {MAX_FILL} messages "
                 "to one room outside slow cases")
    count = page_max + 2
    room, sent = await _filled_room(ctx, "cap", count)
    bob = await ctx.client("bob")
    await bob.join(room)
    seen = Retention()
    # The seqs the OKs carried (1..count unless CP-MSG-8 is broken, which its own case judges).
    first, last = min(sent), max(sent)
    seqs = await _check_page(ctx, bob, room, 0, page_max + 1, last, sent, seen, first)
    ctx.check(len(seqs) <= page_max, "CP-HIST-10",
              f"HISTORY limit={page_max + 1} returned {len(seqs)} messages; "
              f"history_page_max is {page_max}")
    await _check_page(ctx, bob, room, 0, 65535, last, sent, seen, first)


@server_case("CP-HIST-12")
async def history_limit_zero_refused(ctx: ServerContext) -> None:
    """HISTORY with limit 0 is refused with INVALID_FIELD."""
    room = ctx.room("zero")
    (alice,) = await room_with(ctx, room, "alice")
    await alice.say(room, "something to page")
    await alice.refused(unchecked(HistoryRequest, 0, room=room, limit=0), ErrorCode.INVALID_FIELD,
                        req="CP-HIST-12")
    await alice.refused(unchecked(HistoryRequest, 0, room=room, before_seq=2, limit=0),
                        ErrorCode.INVALID_FIELD, req="CP-HIST-12")


@server_case("CP-HIST-12")
async def history_limit_zero_refused_before_the_room_is_looked_at(ctx: ServerContext) -> None:
    """HISTORY limit 0 for a room that does not exist, and for one the client is not in:
    INVALID_FIELD, not NO_SUCH_ROOM or NOT_IN_ROOM (limit is a field check)."""
    room = ctx.room("zero-out")
    await room_with(ctx, room, "owner")
    bob = await ctx.client("bob")
    for name, where in ((ctx.room("zero-none"), "a room that does not exist"),
                        (room, "a room bob is not in")):
        answer = await bob.request(unchecked(HistoryRequest, 0, room=name, limit=0),
                                   req="CP-HIST-12")
        ctx.check(isinstance(answer.final, Error) and answer.final.code == ErrorCode.INVALID_FIELD,
                  "CP-HIST-12", f"HISTORY limit=0 for {where} was answered with "
                  f"{describe(answer.final)}; limit 0 breaks the field's range, which is "
                  "checked before the room (INVALID_FIELD)")


# --------------------------------------------------------------- retention


@server_case("CP-HIST-2")
async def retains_at_least_history_on_join(ctx: ServerContext) -> None:
    """The server retains at least the history_on_join most recent messages of a room."""
    await _limits(ctx)
    assert ctx.limits is not None
    on_join = ctx.limits.history_on_join
    if on_join == 0:
        ctx.skip("history_on_join is 0")
    if on_join > MAX_FILL:
        ctx.skip(f"history_on_join is {on_join}; the kit sends at most {MAX_FILL} messages "
                 "to one room outside slow cases")
    room, sent = await _filled_room(ctx, "keep", on_join)
    bob = await ctx.client("bob")
    await bob.join(room)
    # The room's first message by the seq its OK carried (1 unless CP-MSG-8 is broken).
    ctx.check(await _retained(bob, room, min(sent)), "CP-HIST-2",
              f"after {on_join} messages (history_on_join) the first is no longer retained")


@server_case("CP-HIST-1", "CP-HIST-8", "CP-HIST-11", "CP-HIST-10", slow=True)
async def history_gap_after_retention_overflows(ctx: ServerContext) -> None:
    """Past its retention a room drops the oldest messages; resume and HISTORY then report a gap."""
    await _limits(ctx)
    room = ctx.room("gap")
    senders = await room_with(ctx, room, *["s"] * GAP_SENDERS)
    prober = senders[0]
    budget = GAP_BUDGET
    while budget > GAP_BATCH and _fill_seconds(ctx, budget, GAP_SENDERS) > GAP_FILL_SECONDS:
        budget -= GAP_BATCH
    sent: dict[int, Sent] = {}
    while len(sent) < budget:
        sent.update(await _fill(ctx, room, GAP_BATCH, senders, f"gap{len(sent)}"))
        probe = await prober.ok(HistoryRequest(room=room, before_seq=2, limit=1),
                                req="CP-HIST-10")
        if not probe.of_type(RoomMessage):
            break
    else:
        ctx.skip(f"the server still retains seq 1 after {len(sent)} messages; the kit could "
                 "not make it discard any")
    last = max(sent)
    # CP-HIST-1: what is retained runs without holes from some seq up to the latest.
    seen = Retention()
    latest = await _check_page(ctx, prober, room, 0, 1, last, sent, seen)
    ctx.check(latest == [last], "CP-HIST-1",
              f"HISTORY for the latest message returned {latest}; the latest, {last}, is "
              "always retained")
    assert ctx.limits is not None
    size = min(GAP_BATCH, ctx.limits.history_page_max)
    retained: list[int] = []
    before = 0
    for _ in range(last // size + 2):
        page = await _check_page(ctx, prober, room, before, size, last, sent, seen)
        retained = page + retained
        window_low = max(1, (before or last + 1) - size)
        if not page or page[0] == 1 or page[0] > window_low:
            break  # the page reached the part that is no longer retained
        before = page[0]
    ctx.check(bool(retained) and retained == list(range(retained[0], last + 1)), "CP-HIST-1",
              f"paging back from the latest gave seqs {retained[:3]}...{retained[-3:]}; "
              f"retention must be consecutive up to {last}")
    floor = retained[0]
    ctx.check(floor > 1, "CP-HIST-10",
              "paging returned seq 1 although a probe just found it no longer retained")
    newcomer = await ctx.client("newcomer")
    for last_seen in sorted({0, max(0, floor - 3)}):
        answer = await newcomer.join(room, resume=True, last_seen_seq=last_seen)
        await _check_catch_up(ctx, newcomer, room, answer, last_seen, sent)
        ctx.check(bool(answer.of_type(HistoryGap)), "CP-HIST-8",
                  f"JOIN resume=1 last_seen_seq={last_seen} sent no HISTORY_GAP though seqs "
                  f"{last_seen + 1}..{floor - 1} are gone")
        await newcomer.part(room)
        newcomer.take(MemberJoined)
    for before, limit in ((floor + 2, 5), (min(floor, 4), 2), (floor, 3)):
        await _check_page(ctx, prober, room, before, limit, last, sent, seen)
