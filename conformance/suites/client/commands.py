"""The client acting when asked: the kit types the contract's lines on the client's stdin.

``/join ROOM``, ``/msg ROOM TEXT`` and ``/quit`` (``client_side.CONTRACT_LINES``,
stated for implementers in the test guide) let the kit check what a client does
on its own initiative: the ids it picks, text typed while a JOIN is unanswered,
waiting out RATE_LIMITED, leaving before WELCOME, and rejoining after a
reconnect. A client that does not act on the lines (it sends no JOIN after
``/join``) cannot show any of it: these cases are SKIP for it.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from chatproto import ErrorCode, Message, fold
from chatproto.messages import Error, Join, Quit, RoomMessage, SendRoom
from conformance.client_monitor import QUIT_BEFORE_WELCOME
from conformance.client_side import ClientContext, ClientLink
from conformance.outcomes import Violation
from conformance.registry import client_case

TYPED_TEXT_SENT = "CP-REQ-11"
"""The rule text typed right after ``/join`` breaks when it is dropped: a client sends
every request its user asks for, in order, whatever is still unanswered."""
HOLD_S = 0.4
"""How long the kit keeps a request unanswered, so that lines typed behind it arrive
while it waits (pacing the exchange, not waiting for the client)."""
RETRY_AFTER_MS = 800
STDIN_LINES = "stdin lines"
"""The fundamental these cases share: the client acts on the lines typed on its stdin."""


async def _asked_to_join(ctx: ClientContext, link: ClientLink, room: str) -> Join:
    """Type ``/join room`` and return the client's JOIN; SKIP when none comes (and the
    later cases at once: the client does not act on the contract's lines)."""
    await ctx.type_line(f"/join {room}")
    try:
        return await link.expect_type(Join, req="CP-STATE-1",
                                      where=lambda j: fold(j.room) == fold(room))
    except Violation as exc:
        if exc.kind == "mismatch":
            raise
        link.raise_fault()
        ctx.block(STDIN_LINES, f"the client sent no JOIN after the kit typed '/join {room}' "
                  "on its stdin: it does not act on the contract's lines")
        ctx.skip(f"the client sent no JOIN after the kit typed '/join {room}' on its stdin "
                 f"({exc.message}): it does not act on the contract's lines")


async def _welcomed(ctx: ClientContext) -> ClientLink:
    ctx.require_working(STDIN_LINES)
    return await ctx.welcomed()


def _text(label: str) -> str:
    return f"kit {label} {secrets.token_hex(4)}"


@client_case(TYPED_TEXT_SENT)
async def text_typed_after_join_is_sent(ctx: ClientContext) -> None:
    """Text typed right after /join, while the JOIN is unanswered, is sent, not dropped."""
    link = await _welcomed(ctx)
    room, text = "#kitjoin", _text("first words")
    link.case_answers = lambda message: isinstance(message, Join)
    join = await _asked_to_join(ctx, link, room)
    await ctx.type_line(f"/msg {room} {text}")
    # The JOIN waits for its answer while the text is typed behind it.
    await asyncio.sleep(HOLD_S)
    link.case_answers = lambda message: False
    await link.respond(join)
    try:
        sent = await link.expect_type(SendRoom, req=TYPED_TEXT_SENT,
                                      where=lambda m: m.text == text)
    except Violation as exc:
        if exc.kind == "mismatch":
            raise
        link.raise_fault()
        ctx.fail(TYPED_TEXT_SENT, f"the client did not send the text typed right after "
                 f"'/join {room}' ({exc.message})")
        return
    ctx.check(fold(sent.room) == fold(room), TYPED_TEXT_SENT,
              f"the client sent the text typed for {room} to {sent.room}")


@client_case("CP-MSG-12")
async def client_msg_id_new_for_each_message(ctx: ClientContext) -> None:
    """Each message typed gets a nonzero client_msg_id of its own, the same text typed twice too."""
    link = await _welcomed(ctx)
    room = "#kitids"
    await _asked_to_join(ctx, link, room)
    repeated, other = _text("said twice"), _text("said once")
    texts = [repeated, other, repeated]
    for text in texts:
        await ctx.type_line(f"/msg {room} {text}")
    with ctx.attribute(TYPED_TEXT_SENT):  # a text not sent at all is no id chosen badly
        sends = [await link.expect_type(SendRoom, req=TYPED_TEXT_SENT) for _ in texts]
    ids = [send.client_msg_id for send in sends]
    ctx.check(0 not in ids, "CP-MSG-12",
              f"the client sent messages with client_msg_id 0 (ids {ids})")
    ctx.check(len(set(ids)) == len(ids), "CP-MSG-12",
              f"the client gave {len(ids)} messages typed one after the other only "
              f"{len(set(ids))} client_msg_id(s) ({ids}); a text typed again is a new "
              "message, not a resend")


@client_case("CP-REQ-2")
async def request_ids_differ_while_waiting(ctx: ClientContext) -> None:
    """While a request waits for its answer, the client's later requests use other ids."""
    link = await _welcomed(ctx)
    held: list[Message] = []

    def hold(message: Message) -> bool:
        if message.is_request and not isinstance(message, Quit):
            held.append(message)
            return True
        return False
    link.case_answers = hold
    await _asked_to_join(ctx, link, "#kitreq1")
    for line in ("/join #kitreq2", f"/msg #kitreq1 {_text('queued')}", "/join #kitreq3"):
        await ctx.type_line(line)
    await asyncio.sleep(HOLD_S)  # what the client sends meanwhile waits with the JOIN
    link.case_answers = lambda message: False
    waiting = list(held)
    for request in waiting:
        await link.respond(request)
    await link.barrier()
    ids = [request.request_id for request in waiting]
    reused = sorted({rid for rid in ids if ids.count(rid) > 1})
    ctx.check(not reused, "CP-REQ-2",
              f"the client sent {len(ids)} requests while none was answered, reusing "
              f"request_id {', '.join(map(str, reused))}")


@client_case("CP-RATE-5")
async def rate_limited_message_waits_retry_after(ctx: ClientContext) -> None:
    """A message refused with RATE_LIMITED is not sent again before its retry_after_ms."""
    link = await _welcomed(ctx)
    room, text = "#kitrate", _text("slow down")
    await _asked_to_join(ctx, link, room)
    link.case_answers = lambda message: isinstance(message, SendRoom)
    await ctx.type_line(f"/msg {room} {text}")
    with ctx.attribute(TYPED_TEXT_SENT):
        first = await link.expect_type(SendRoom, req=TYPED_TEXT_SENT)
    link.case_answers = lambda message: False
    await link.send(Error(request_id=first.request_id, code=ErrorCode.RATE_LIMITED,
                          fatal=False, retry_after_ms=RETRY_AFTER_MS,
                          detail="kit: too many messages"))
    refused_at = time.monotonic()
    # The user asks again at once: the client may send it, but not before the wait ends.
    await ctx.type_line(f"/msg {room} {text}")
    try:
        again = await link.expect_type(SendRoom, req="CP-RATE-5",
                                       timeout=RETRY_AFTER_MS / 1000 + ctx.timeout)
    except Violation as exc:
        if exc.kind == "mismatch":
            raise
        link.raise_fault()
        ctx.skip(f"the client did not send the refused message again ({exc.message})")
    waited_ms = (time.monotonic() - refused_at) * 1000
    ctx.check(waited_ms >= RETRY_AFTER_MS, "CP-RATE-5",
              f"the client sent {again.NAME} again {waited_ms:.0f} ms after RATE_LIMITED "
              f"with retry_after_ms {RETRY_AFTER_MS}")


@client_case(QUIT_BEFORE_WELCOME)
async def quit_before_welcome_closes_without_quit(ctx: ClientContext) -> None:
    """Asked to quit while its HELLO is unanswered, the client closes without sending QUIT."""
    ctx.require_working(STDIN_LINES)
    link = await ctx.launch()
    await link.expect_hello()
    mark = link.mark()
    await ctx.type_line("/quit")
    if not await link.silent_since(mark, req=QUIT_BEFORE_WELCOME, after="'/quit' before "
                                   "WELCOME", ignore=lambda f: f.type_code == Error.TYPE):
        ctx.finish_client()
        if not await link.silent_since(mark, req=QUIT_BEFORE_WELCOME,
                                       after="its stdin was closed before WELCOME",
                                       ignore=lambda f: f.type_code == Error.TYPE):
            ctx.skip("the client neither closed the connection nor sent anything after "
                     "'/quit' and the close of its stdin before WELCOME")
    link.raise_fault()  # a fatal ERROR before closing is allowed; the monitor judged it


@client_case("CP-HIST-9")
async def rejoin_after_reconnect_resumes(ctx: ClientContext) -> None:
    """After a lost connection, the client rejoins its room with resume 1 and the last seq seen."""
    link = await _welcomed(ctx)
    room = "#kitresume"
    await _asked_to_join(ctx, link, room)
    await link.barrier()
    now = int(time.time() * 1000)
    seen = 3
    await link.send(*(RoomMessage(room=room, seq=seq, msg_id=100 + seq, timestamp_ms=now,
                                  sender="kitpeer", client_msg_id=0, history=False,
                                  text=f"kit message {seq}") for seq in range(1, seen + 1)))
    await link.barrier()
    ctx.transcript.note(link.label, "kit drops the connection (a lost connection)")
    await link.close()
    again = await ctx.next_connection(ctx.timeout + 2.0)
    if again is None:
        ctx.skip("the client did not reconnect after losing its connection "
                 "(reconnecting is optional)")
    hello = await again.expect_hello()
    await again.welcome(hello)
    try:
        rejoin = await again.expect_type(Join, req="CP-HIST-9",
                                         where=lambda j: fold(j.room) == fold(room))
    except Violation as exc:
        if exc.kind == "mismatch":
            raise
        again.raise_fault()
        ctx.fail("CP-HIST-9", f"after reconnecting, the client did not rejoin {room} "
                 f"({exc.message})")
        return
    ctx.check(bool(rejoin.resume) and rejoin.last_seen_seq == seen, "CP-HIST-9",
              f"the client rejoined {room} with resume {int(rejoin.resume)} and "
              f"last_seen_seq {rejoin.last_seen_seq}; it had seen up to seq {seen}")
    await again.barrier(req="CP-KEEP-1")

