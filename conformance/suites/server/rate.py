"""Rate limits: the two token buckets, RATE_LIMITED and its retry_after_ms.

The cases send bursts without the kit's own pacing (``pace=False``) and judge
what came back against the limits the server advertised in WELCOME. A bucket
gains a token every ``interval``, so of requests sent at once over ``t``
milliseconds at most ``burst + t // interval + 1`` can succeed. The kit sends
``burst + overflow(burst)`` of them, enough to meet refusals even on a busy
machine; when the bucket refills so fast that none is refused, the case cannot
tell and is skipped with that reason rather than failed.

After an unpaced burst the kit's pacing no longer matches the server's bucket,
so a case sends nothing more on that connection except through these helpers.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass

from chatproto import ErrorCode, Message, fold
from chatproto.messages import (
    Away,
    Error,
    Join,
    Ping,
    Pong,
    Presence,
    PrivateMessage,
    SendPrivate,
    SendRoom,
    Welcome,
)
from conformance.outcomes import Violation
from conformance.registry import server_case, server_cases, variant
from conformance.server_side import Peer, ServerContext
from conformance.transcript import describe

MAX_BURST_TESTED = 500
"""Above this burst, exhausting a bucket takes too many requests: the case skips."""
OVERFLOW_MAX = 20
RETRY_MARGIN_S = 0.02
"""Added to retry_after_ms before retrying, for clock granularity on either side."""


def _tag() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))


def _limited(message: Message) -> bool:
    return isinstance(message, Error) and message.code == ErrorCode.RATE_LIMITED


def overflow(burst: int) -> int:
    """How many requests beyond ``burst`` a case sends to empty a bucket."""
    return max(2, min(burst, OVERFLOW_MAX))


@dataclass
class Burst:
    """Requests sent at once, their final answers in order, and how long it all took."""

    requests: list[Message]
    answers: list[Message]
    elapsed_s: float

    @property
    def refused(self) -> list[int]:
        """Indices of the requests answered RATE_LIMITED."""
        return [i for i, answer in enumerate(self.answers) if _limited(answer)]

    def last_refusal(self) -> Error:
        answer = self.answers[self.refused[-1]]
        assert isinstance(answer, Error)
        return answer


async def _burst(peer: Peer, requests: list[Message]) -> Burst:
    """Send ``requests`` back to back without pacing and collect every final answer.

    The server must keep the connection open whatever it refuses (CP-RATE-3),
    so a close while the answers are awaited breaks that rule.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = [await peer.send(request, pace=False) for request in requests]
    answers: list[Message] = []
    for request in sent:
        rule = "CP-KEEP-1" if isinstance(request, Ping) else "CP-REQ-4"
        try:
            answer = await peer.response(request.request_id, request.NAME, req=rule)
        except Violation as exc:
            if exc.kind != "closed":
                raise
            raise Violation("CP-RATE-3", exc.message, exc.kind) from exc
        answers.append(answer.final)
    return Burst(sent, answers, loop.time() - started)


async def _still_served(peer: Peer) -> None:
    """After RATE_LIMITED answers, the connection is open and answers a PING (CP-RATE-3).

    Unlike the kit's PING barrier, a PING refused with RATE_LIMITED is reported
    as such: no bucket applies to PING (CP-RATE-1).
    """
    result = await _burst(peer, [Ping(token=secrets.token_bytes(8))])
    answer = result.answers[0]
    if _limited(answer):
        raise Violation("CP-RATE-1", f"{peer.label}: PING was refused with RATE_LIMITED; no "
                        "bucket applies to PING")
    if not isinstance(answer, Pong):
        raise Violation("CP-KEEP-1", f"{peer.label}: PING was answered with {describe(answer)}")


def _bucket(welcome: Welcome, name: str) -> tuple[int, int]:
    """(burst, interval_ms) of the ``msg`` or ``cmd`` bucket."""
    if name == "msg":
        return welcome.msg_rate_burst, welcome.msg_rate_interval_ms
    return welcome.cmd_rate_burst, welcome.cmd_rate_interval_ms


def _testable(ctx: ServerContext, welcome: Welcome, name: str) -> tuple[int, int]:
    burst, interval_ms = _bucket(welcome, name)
    if burst > MAX_BURST_TESTED:
        ctx.skip(f"{name}_rate_burst is {burst}; exhausting it takes more than "
                 f"{MAX_BURST_TESTED} requests")
    return burst, interval_ms


def _judge_exhaustion(ctx: ServerContext, result: Burst, *, burst: int, interval_ms: int,
                      bucket: str) -> None:
    """Requests sent at once on one bucket, more than ``burst``, met RATE_LIMITED as they must."""
    counted = len(result.requests)
    succeeded = sum(1 for answer in result.answers if not _limited(answer))
    gained = int(result.elapsed_s * 1000 // interval_ms) + 1
    if succeeded > burst + gained:
        ctx.fail("CP-RATE-1", f"{succeeded} of {counted} requests sent at once on the "
                 f"{bucket} bucket (burst {burst}, a token every {interval_ms} ms) "
                 f"succeeded within {result.elapsed_s * 1000:.0f} ms; at most "
                 f"{burst + gained} may")
    if not result.refused:
        ctx.skip(f"the {bucket} bucket gains a token every {interval_ms} ms and the kit "
                 f"took {result.elapsed_s * 1000:.0f} ms for {counted} requests, so it "
                 "cannot exhaust the bucket to test it")
    for index in result.refused:
        error = result.answers[index]
        assert isinstance(error, Error)
        ctx.check(1 <= error.retry_after_ms <= interval_ms + 1, "CP-RATE-2",
                  f"RATE_LIMITED carried retry_after_ms={error.retry_after_ms}; the next "
                  f"token comes within the interval of {interval_ms} ms, and at least 1")


async def _retry(ctx: ServerContext, peer: Peer, request: Message, after: Error,
                 what: str) -> Message:
    """Wait the advertised retry_after_ms, send ``request`` again, and require success."""
    await asyncio.sleep(after.retry_after_ms / 1000 + RETRY_MARGIN_S)
    again = await _burst(peer, [request.model_copy(update={"request_id": 0})])
    answer = again.answers[0]
    if _limited(answer):
        raise Violation("CP-RATE-2", f"{what} was refused again with RATE_LIMITED "
                        f"{after.retry_after_ms} ms after a RATE_LIMITED whose retry_after_ms "
                        "said a token would be there by then")
    return answer


# ------------------------------------------------------------------ the buckets


@dataclass(frozen=True)
class Filling:
    """How a case fills one bucket from alice and sees, at bob, which requests were performed."""

    bucket: str
    """``message`` or ``command``, as findings name the bucket."""
    limits: str
    """``msg`` or ``cmd``: the prefix of the bucket's fields in WELCOME."""
    request: str
    """The request sent, as findings name it."""
    seen_as: str
    """How bob learns that one was performed."""
    requests: Callable[[str, str, str, int], list[Message]]
    """(bob's nick, the room, a tag, how many) -> the requests, in order."""
    text: Callable[[Message], str | None]
    """The text a request carries that shows up at bob when it is performed."""
    performed: Callable[[list[Message], str], set[str]]
    """(the frames bob got, alice's nick) -> the texts of the requests performed."""


MESSAGES = Filling(
    "message", "msg", "SEND_PRIVATE", "received it",
    lambda bob, room, tag, count: [SendPrivate(nick=bob, text=f"{tag} {i}")
                                   for i in range(count)],
    lambda request: request.text if isinstance(request, SendPrivate) else None,
    lambda frames, alice: {m.text for m in frames if isinstance(m, PrivateMessage)})
COMMANDS = Filling(
    "command", "cmd", "AWAY", "received its PRESENCE",
    # JOIN first, so that bob sees each AWAY that was performed as a PRESENCE.
    lambda bob, room, tag, count: [Join(room=room), *(Away(message=f"{tag} {i}")
                                                      for i in range(count - 1))],
    lambda request: request.message if isinstance(request, Away) else None,
    lambda frames, alice: {m.away_message for m in frames
                           if isinstance(m, Presence) and fold(m.nick) == fold(alice)})


@server_cases(
    variant("message_bucket_full_at_welcome_then_limited",
            "msg_rate_burst messages right after WELCOME succeed; more get RATE_LIMITED, not "
            "performed.", "CP-RATE-4", "CP-RATE-2", "CP-RATE-3", "CP-RATE-1", filling=MESSAGES),
    variant("command_bucket_full_at_welcome_then_limited",
            "cmd_rate_burst commands right after WELCOME succeed; more get RATE_LIMITED, not "
            "performed.", "CP-RATE-4", "CP-RATE-2", "CP-RATE-3", "CP-RATE-1", filling=COMMANDS),
)
async def bucket_full_at_welcome_then_limited(ctx: ServerContext, *, filling: Filling) -> None:
    """A bucket's burst right after WELCOME succeeds; more get RATE_LIMITED, not performed."""
    room = ctx.room("rate")
    bob = await ctx.client("bob")
    await bob.join(room)
    alice = await ctx.client("alice")
    assert alice.welcome is not None
    burst, interval_ms = _testable(ctx, alice.welcome, filling.limits)
    requests = filling.requests(bob.nick, room, _tag(), burst + overflow(burst))
    result = await _burst(alice, requests)
    early = [i for i in result.refused if i < burst]
    if early:
        raise Violation("CP-RATE-4", f"{filling.bucket} {early[0] + 1} of the first {burst} "
                        f"({filling.limits}_rate_burst) sent right after WELCOME was refused "
                        "with RATE_LIMITED; the bucket must be full when WELCOME is sent")
    _judge_exhaustion(ctx, result, burst=burst, interval_ms=interval_ms, bucket=filling.bucket)
    await _still_served(alice)
    await bob.barrier()
    performed = filling.performed(bob.take(Message), alice.nick)
    for index in result.refused:
        text = filling.text(result.requests[index])
        ctx.check(text not in performed, "CP-RATE-2",
                  f"{filling.request} {text!r} was refused with RATE_LIMITED, yet bob "
                  f"{filling.seen_as}: a refused request must not be performed")
    refused = result.requests[result.refused[0]]
    await _retry(ctx, alice, refused, result.last_refusal(), filling.request)


@server_case("CP-RATE-2", "CP-RATE-3")
async def refused_requests_take_no_token(ctx: ServerContext) -> None:
    """Many RATE_LIMITED requests in a row take no token: after retry_after_ms one succeeds."""
    bob = await ctx.client("bob")
    alice = await ctx.client("alice")
    assert alice.welcome is not None
    burst, interval_ms = _testable(ctx, alice.welcome, "msg")
    tag = _tag()
    first = await _burst(alice, [SendPrivate(nick=bob.nick, text=f"{tag} {i}")
                                      for i in range(burst + overflow(burst))])
    _judge_exhaustion(ctx, first, burst=burst, interval_ms=interval_ms, bucket="message")
    # Hammer the empty bucket: if refusals took tokens, it would go deeply negative.
    extra = max(10, burst)
    more = await _burst(alice, [SendPrivate(nick=bob.nick, text=f"{tag} x{i}")
                                     for i in range(extra)])
    if not more.refused:
        ctx.skip(f"none of {extra} further messages was refused within "
                 f"{more.elapsed_s * 1000:.0f} ms: the bucket refills faster than the kit "
                 "can empty it")
    for index in more.refused:
        error = more.answers[index]
        assert isinstance(error, Error)
        ctx.check(error.retry_after_ms >= 1, "CP-RATE-2",
                  f"RATE_LIMITED carried retry_after_ms={error.retry_after_ms}; at least 1")
    await _still_served(alice)
    await _retry(ctx, alice, SendPrivate(nick=bob.nick, text=f"{tag} retry"),
                 more.last_refusal(), f"after {len(more.refused)} refused messages, a message")


@server_case("CP-RATE-1")
async def buckets_are_independent(ctx: ServerContext) -> None:
    """An empty command bucket leaves messages free, and an empty message bucket commands."""
    room = ctx.room("twob")
    bob = await ctx.client("bob")
    await bob.join(room)
    alice = await ctx.client("alice")
    assert alice.welcome is not None
    cmd_burst, cmd_interval = _testable(ctx, alice.welcome, "cmd")
    msg_burst, msg_interval = _testable(ctx, alice.welcome, "msg")
    requests: list[Message] = [Join(room=room)]
    requests += [Away(message=f"a{i}") for i in range(cmd_burst + overflow(cmd_burst) - 1)]
    emptied = await _burst(alice, requests)
    _judge_exhaustion(ctx, emptied, burst=cmd_burst, interval_ms=cmd_interval,
                      bucket="command")
    after = await _burst(alice, [SendRoom(room=room, text="messages are free")])
    ctx.check(not _limited(after.answers[0]), "CP-RATE-1",
              "with the command bucket empty and the message bucket full, SEND_ROOM was "
              "refused with RATE_LIMITED: SEND_ROOM takes from the message bucket only")
    carol = await ctx.client("carol")
    emptied = await _burst(carol, [SendPrivate(nick=bob.nick, text=f"m{i}")
                                        for i in range(msg_burst + overflow(msg_burst))])
    _judge_exhaustion(ctx, emptied, burst=msg_burst, interval_ms=msg_interval,
                      bucket="message")
    after = await _burst(carol, [Away(message="commands are free")])
    ctx.check(not _limited(after.answers[0]), "CP-RATE-1",
              "with the message bucket empty and the command bucket full, AWAY was refused "
              "with RATE_LIMITED: AWAY takes from the command bucket only")


@server_case("CP-RATE-1")
async def ping_and_pong_take_no_token(ctx: ServerContext) -> None:
    """cmd_rate_burst PINGs and stray PONGs, then cmd_rate_burst commands: all commands succeed."""
    alice = await ctx.client("alice")
    assert alice.welcome is not None
    burst, _ = _testable(ctx, alice.welcome, "cmd")
    for index in range(burst):
        await alice.send(Pong(token=index.to_bytes(4, "big")), pace=False)
    requests: list[Message] = [Ping(token=secrets.token_bytes(4)) for _ in range(burst)]
    requests += [Away(message=f"a{i}") for i in range(burst)]
    result = await _burst(alice, requests)
    pings = [i for i in result.refused if i < burst]
    if pings:
        ctx.fail("CP-RATE-1", f"PING {pings[0] + 1} was refused with RATE_LIMITED; no bucket "
                 "applies to PING")
    commands = [i - burst for i in result.refused if i >= burst]
    if commands:
        ctx.fail("CP-RATE-1", f"after {burst} PINGs and {burst} stray PONGs, AWAY "
                 f"{commands[0] + 1} of {burst} (cmd_rate_burst) was refused with "
                 "RATE_LIMITED: PING and PONG take no token")


@server_case("CP-RATE-1")
async def refused_requests_still_take_tokens(ctx: ServerContext) -> None:
    """Messages refused for another reason (NO_SUCH_NICK) still take tokens from the bucket."""
    alice = await ctx.client("alice")
    assert alice.welcome is not None
    burst, interval_ms = _testable(ctx, alice.welcome, "msg")
    nobody = ctx.nick("nobody")
    result = await _burst(alice, [SendPrivate(nick=nobody, text=f"m{i}")
                                       for i in range(burst + overflow(burst))])
    others = [a for a in result.answers
              if not _limited(a) and not (isinstance(a, Error)
                                          and a.code == ErrorCode.NO_SUCH_NICK)]
    if others:
        raise Violation("CP-MSG-5", f"SEND_PRIVATE to {nobody!r}, whom nobody holds, was "
                        f"answered with {describe(others[0])}, not NO_SUCH_NICK")
    _judge_exhaustion(ctx, result, burst=burst, interval_ms=interval_ms, bucket="message")


@server_case("CP-RATE-7", "CP-FIELD-5")
async def requests_refused_for_their_fields_take_no_token(ctx: ServerContext) -> None:
    """Messages refused INVALID_FIELD, more than msg_rate_burst, take no token: a burst follows."""
    bob = await ctx.client("bob")
    alice = await ctx.client("alice")
    assert alice.welcome is not None
    burst, _ = _testable(ctx, alice.welcome, "msg")
    tag = _tag()
    invalid = burst + overflow(burst)
    # A BEL makes the text unsafe (step 5 of the order of checks, before the buckets).
    requests: list[Message] = [SendPrivate.model_construct(nick=bob.nick, text=f"{tag} \a{i}",
                                                           client_msg_id=0)
                               for i in range(invalid)]
    requests += [SendPrivate(nick=bob.nick, text=f"{tag} {i}") for i in range(burst)]
    result = await _burst(alice, requests)
    for index, answer in enumerate(result.answers[:invalid]):
        if _limited(answer):
            raise Violation("CP-RATE-7", f"SEND_PRIVATE {index + 1} of {invalid} with a BEL in "
                            "its text, sent right after WELCOME, was refused with RATE_LIMITED: "
                            "the requests before it, refused for their text, took tokens")
        if not isinstance(answer, Error) or answer.code != ErrorCode.INVALID_FIELD:
            raise Violation("CP-FIELD-5", f"SEND_PRIVATE with a BEL in its text was answered "
                            f"with {describe(answer)}, not INVALID_FIELD")
    limited = [i for i, answer in enumerate(result.answers[invalid:]) if _limited(answer)]
    if limited:
        raise Violation("CP-RATE-7", f"after {invalid} SEND_PRIVATEs refused with "
                        f"INVALID_FIELD, valid message {limited[0] + 1} of {burst} "
                        f"(msg_rate_burst) was refused with RATE_LIMITED: requests refused for "
                        "a field must take no token")
