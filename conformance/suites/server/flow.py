"""Flow control: a client that stops reading is dropped, and nobody else waits for it.

A connection with a small receive buffer joins a room filled with messages of
the longest allowed text and stops reading. It then asks for large answers
(HISTORY pages of that room) while two other members keep talking. The server
must keep serving the others promptly (CP-FLOW-4) and, before the kit has
directed ``--flood-budget`` bytes at the slow connection, drop it: tell the room
(MEMBER_LEFT, kind DISCONNECT) and close it (CP-FLOW-1, CP-FLOW-2). When the
kit then reads what the server did write, it must be whole frames (CP-FLOW-3).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import string
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from chatproto import ErrorCode, Message, encode, fold
from chatproto.messages import (
    Error,
    History,
    LeaveKind,
    MemberLeft,
    Ok,
    Ping,
    Pong,
    RoomMessage,
)
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import Peer, ServerContext
from conformance.transcript import describe

RECEIVE_BUFFER = 4096
"""SO_RCVBUF of the slow connection, so that little of the flood hides in the kernel."""
FILL_CAP = 240
"""Most messages the case posts to fill the room's history."""
MAX_FILLERS = 12
FLOOD_TIME_S = 30.0
"""How long the case may spend flooding before it gives up (scaled)."""
DRAIN_TIMEOUT_S = 30.0
"""How long reading everything the server wrote to the slow connection may take."""
SLOW_CONSUMER_MARK = struct.pack(">HIHB", Error.TYPE, 0, int(ErrorCode.SLOW_CONSUMER), 1)
"""An ERROR SLOW_CONSUMER frame after its length field: type, request_id 0, code, fatal."""


def _left(nick: str) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, MemberLeft) and fold(m.nick) == fold(nick)


def _misplaced_slow_consumer(peer: Peer) -> int | None:
    """Offset in the stream of a SLOW_CONSUMER ERROR that does not start at a frame boundary."""
    starts = set()
    offset = 0
    for frame in peer.received:
        starts.add(offset)
        offset += len(frame.raw)
    starts.add(offset)  # where the broken tail, if any, begins
    stream = b"".join(frame.raw for frame in peer.received) + peer.stream_tail
    index = stream.find(SLOW_CONSUMER_MARK)
    while index != -1:
        if index - 4 not in starts:
            return index - 4
        index = stream.find(SLOW_CONSUMER_MARK, index + 1)
    return None


async def _fill(ctx: ServerContext, room: str, count: int, text: str) -> list[Peer]:
    """Members that posted ``count`` messages of ``text`` to ``room`` between them."""
    assert ctx.limits is not None
    fillers = []
    for _ in range(min(MAX_FILLERS, math.ceil(count / ctx.limits.msg_rate_burst))):
        filler = await ctx.client("filler")
        await filler.join(room)
        fillers.append(filler)

    async def post(filler: Peer, share: int) -> None:
        for _ in range(share):
            await filler.say(room, text)

    shares = [count // len(fillers) + (1 if i < count % len(fillers) else 0)
              for i in range(len(fillers))]
    await asyncio.gather(*(post(f, share) for f, share in zip(fillers, shares, strict=True)))
    return fillers


async def _probe(ctx: ServerContext, flood: Flood, number: int) -> int:
    """talker says something and observer hears it, promptly (CP-FLOW-4); returns its size."""
    text = f"probe {number} {secrets.token_hex(4)}"
    with ctx.attribute("CP-FLOW-4"):
        await flood.talker.say(flood.room, text)
        message = await flood.observer.expect_type(RoomMessage, req="CP-FLOW-4",
                                                   where=lambda m: m.text == text)
    return len(encode(message))


@dataclass
class Flood:
    """The room, its members, and the slow connection that stopped reading."""

    room: str
    page: int
    text: str
    observer: Peer
    talker: Peer
    fillers: list[Peer]
    slow: Peer
    answer_bytes: int
    """Bytes of one answer to HISTORY with limit ``page``, measured while still reading."""
    message_bytes: int
    """Bytes of one ROOM_MESSAGE with ``text``."""
    histories: list[int] = field(default_factory=list)
    """request_ids of the HISTORY requests sent while not reading."""
    directed: int = 0
    """Bytes the kit has caused the server to send to the slow connection."""


async def _prepare(ctx: ServerContext) -> Flood:
    observer = await ctx.client("observer")
    limits = observer.welcome
    assert limits is not None
    room = ctx.room("flood")
    text = "".join(secrets.choice(string.ascii_lowercase) for _ in range(16))
    text = (text * (limits.max_message_length // len(text) + 1))[:limits.max_message_length]
    page = limits.history_page_max
    fillers = await _fill(ctx, room, min(FILL_CAP, max(page, limits.history_on_join, 1)), text)
    talker = await ctx.client("talker")
    await observer.join(room)
    await talker.join(room)
    slow = await ctx.client("slow", receive_buffer=RECEIVE_BUFFER)
    await slow.join(room)
    sample = await slow.ok(History(room=room, limit=page), req="CP-HIST-10")
    message = RoomMessage(room=room, seq=1, msg_id=1, timestamp_ms=1, sender=fillers[0].nick,
                          text=text)
    return Flood(room, page, text, observer, talker, fillers, slow,
                 sum(len(encode(frame)) for frame in sample.frames), len(encode(message)))


async def _flood(ctx: ServerContext, flood: Flood) -> MemberLeft | None:
    """Ask for large answers on the slow connection, probing the others, until it is dropped.

    Returns the MEMBER_LEFT the observer received for it, or None when the
    budget is spent (or the slow connection was closed) without one.
    """
    budget = ctx.options.flood_budget
    # Small history pages cannot carry the flood alone: the fillers talk as well.
    live = flood.answer_bytes < 64 * 1024
    step = flood.answer_bytes + (flood.message_bytes * len(flood.fillers) if live else 0)
    if step > budget:
        ctx.skip(f"--flood-budget ({budget} bytes) is smaller than one round of the flood "
                 f"({step} bytes)")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FLOOD_TIME_S * ctx.options.timeout_scale
    slow = flood.slow
    slow.stop_reading()
    ctx.transcript.note(slow.label, "the kit stops reading this connection")
    while flood.directed + step <= budget and not slow.closed:
        if loop.time() > deadline:
            ctx.skip(f"in {FLOOD_TIME_S * ctx.options.timeout_scale:.0f} s the kit directed "
                     f"only {flood.directed} of the {budget} bytes of --flood-budget at the "
                     "client that does not read, and the server has not dropped it yet")
        sent = await slow.send(History(room=flood.room, limit=flood.page))
        flood.histories.append(sent.request_id)
        flood.directed += flood.answer_bytes
        if live:
            await asyncio.gather(*(f.say(flood.room, flood.text) for f in flood.fillers))
            flood.directed += flood.message_bytes * len(flood.fillers)
        flood.directed += await _probe(ctx, flood, len(flood.histories))
        found = flood.observer.take(_left(slow.nick))
        if found:
            assert isinstance(found[0], MemberLeft)
            return found[0]
    # The budget is spent (or our writes met a closed connection): a last chance.
    try:
        late = await flood.observer.expect(_left(slow.nick), req="CP-FLOW-1",
                                           what=f"MEMBER_LEFT for {slow.nick!r}")
    except Violation as exc:
        if exc.kind != "timeout":
            raise
        return None
    assert isinstance(late, MemberLeft)
    return late


@server_case("CP-FLOW-1", "CP-FLOW-2", "CP-FLOW-3", "CP-FLOW-4", "CP-CLOSE-9")
async def slow_reader_dropped_without_stalling_others(ctx: ServerContext) -> None:
    """A client that stops reading is dropped before the flood budget; others are not delayed."""
    flood = await _prepare(ctx)
    left = await _flood(ctx, flood)
    if left is None:
        await _judge_undropped(ctx, flood)
        return
    ctx.check(left.kind == LeaveKind.DISCONNECT, "CP-CLOSE-9",
              f"the slow client's removal reached the room as {describe(left)}; a connection "
              "that ends without QUIT leaves with kind DISCONNECT")
    await _probe(ctx, flood, len(flood.histories) + 1)
    await _judge_dropped(ctx, flood.slow)


async def _judge_dropped(ctx: ServerContext, slow: Peer) -> None:
    """The dropped slow client: its connection closes, and what the server wrote is whole frames."""
    slow.resume_reading()
    ctx.transcript.note(slow.label, "the kit reads this connection again")
    fault: Violation | None = None
    try:
        await slow.expect_closed(req="CP-FLOW-2",
                                 timeout=DRAIN_TIMEOUT_S)
    except Violation as exc:
        if exc.kind == "timeout":
            raise Violation("CP-FLOW-2", "the server removed the slow client from its room but "
                            f"did not close its connection within {DRAIN_TIMEOUT_S:.0f} s of the "
                            "kit reading it again", "timeout") from exc
        fault = exc
    misplaced = _misplaced_slow_consumer(slow)
    if misplaced is not None:
        raise Violation("CP-FLOW-3", f"the ERROR SLOW_CONSUMER begins at byte {misplaced} of "
                        "the stream, inside another frame: it was written into the middle of "
                        "a frame already partly sent")
    if fault is not None and not (slow.stream_tail and "EOF after" in fault.message):
        raise fault  # a broken stream other than a frame cut short by the close
    messages = [frame.message for frame in slow.received if frame.message is not None]
    notices = [i for i, m in enumerate(messages)
               if isinstance(m, Error) and m.code == ErrorCode.SLOW_CONSUMER]
    if notices and notices[0] != len(messages) - 1:
        after = messages[notices[0] + 1]
        raise Violation("CP-FLOW-2", f"after ERROR SLOW_CONSUMER the server still sent "
                        f"{describe(after)}; it must close the connection")


async def _judge_undropped(ctx: ServerContext, flood: Flood) -> None:
    """The budget is spent and the room heard nothing: bounded or not, closed or not?"""
    slow, histories, directed = flood.slow, flood.histories, flood.directed
    slow.resume_reading()
    ctx.transcript.note(slow.label, "the kit reads this connection again")
    token = secrets.token_bytes(8)
    try:
        answer = await slow.request(Ping(token=token), req="CP-FLOW-1",
                                    timeout=DRAIN_TIMEOUT_S)
    except Violation as exc:
        if exc.kind != "closed":
            raise
        raise Violation("CP-CLOSE-9", "the server closed the slow client's connection "
                        "without sending MEMBER_LEFT (kind DISCONNECT) to the other members "
                        "of its room", "closed") from exc
    if not isinstance(answer.final, Pong):
        raise Violation("CP-FLOW-1", f"the slow client's PING was answered "
                        f"{describe(answer.final)}")
    answered = 0
    for request_id in histories:
        try:
            result = await slow.response(request_id, "HISTORY", timeout=0.1)
        except Violation:
            continue
        answered += isinstance(result.final, Ok)
    if answered == len(histories):
        raise Violation("CP-FLOW-1", f"the kit directed {directed} bytes (--flood-budget) at a "
                        f"client that did not read, and the server queued all of them: all "
                        f"{len(histories)} HISTORY answers arrived once the kit read again")
    raise Violation("CP-FLOW-2", f"the server discarded output queued for a client that did not "
                    f"read ({len(histories) - answered} of {len(histories)} HISTORY requests "
                    "were never answered) but kept the connection open")
