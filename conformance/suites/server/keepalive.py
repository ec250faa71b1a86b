"""Keepalive: the server's PING after keepalive_interval_s and its idle timeout.

These cases wait for the intervals the server advertised in WELCOME, so they
are slow; they skip when the advertised values are too long to wait for. The
kit's automatic PONG is turned off where the connection must stay silent.
"""

from __future__ import annotations

import asyncio
import itertools

from chatproto import HANDSHAKE_FLOOR_S, ErrorCode, encode
from chatproto.messages import Error, Ping, Welcome
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import Peer, ServerContext
from conformance.transcript import describe

LONGEST_WAIT_S = 120
"""Advertised intervals above this are too long for a test run: the case skips."""


def _slack(ctx: ServerContext, seconds: float) -> float:
    """How late, beyond ``seconds``, a timer-driven action may come (scaled)."""
    return (2.0 + 0.25 * seconds) * ctx.options.timeout_scale


def _intervals(ctx: ServerContext, welcome: Welcome) -> tuple[int, int]:
    keepalive, idle = welcome.keepalive_interval_s, welcome.idle_timeout_s
    if idle > LONGEST_WAIT_S:
        ctx.skip(f"the server advertises idle_timeout_s={idle} (keepalive_interval_s="
                 f"{keepalive}); the kit does not wait more than {LONGEST_WAIT_S} s")
    return keepalive, idle


async def _silent_client(ctx: ServerContext, label: str) -> tuple[Peer, int, int, float]:
    """A welcomed connection that will not answer PINGs: (peer, keepalive, idle, welcomed at)."""
    peer = await ctx.connect(label)
    peer.auto_pong = False
    welcome = await peer.hello(ctx.nick(label))
    keepalive, idle = _intervals(ctx, welcome)
    return peer, keepalive, idle, asyncio.get_running_loop().time()


async def _expect_idle_timeout(ctx: ServerContext, peer: Peer, idle: int, since: float,
                               what: str) -> None:
    """ERROR IDLE_TIMEOUT arrives and the connection closes, about ``idle`` s after ``since``."""
    loop = asyncio.get_running_loop()
    deadline = since + idle + _slack(ctx, idle)

    def is_error(message: object) -> bool:
        return isinstance(message, Error)

    try:
        found = await peer.expect(is_error, req="CP-KEEP-5", what="ERROR IDLE_TIMEOUT",
                                  timeout=max(0.1, deadline - loop.time())
                                  / ctx.options.timeout_scale)
    except Violation as exc:
        if exc.kind == "closed":
            raise Violation("CP-KEEP-5", f"{what}: the server closed the connection "
                            f"{loop.time() - since:.1f} s later without ERROR IDLE_TIMEOUT",
                            "closed") from exc
        if exc.kind == "timeout":
            raise Violation("CP-KEEP-5", f"{what}: no ERROR IDLE_TIMEOUT within "
                            f"{deadline - since:.1f} s (idle_timeout_s is {idle})",
                            "timeout") from exc
        raise
    assert isinstance(found, Error)
    ctx.check(found.code == ErrorCode.IDLE_TIMEOUT, "CP-KEEP-5",
              f"{what}: the server sent {describe(found)}, not ERROR IDLE_TIMEOUT")
    await peer.expect_closed(req="CP-KEEP-5")


@server_case("CP-KEEP-4", "CP-REQ-7", slow=True)
async def server_pings_silent_connection(ctx: ServerContext) -> None:
    """After keepalive_interval_s without a frame from the client, the server sends PING."""
    peer, keepalive, idle, since = await _silent_client(ctx, "quiet")
    loop = asyncio.get_running_loop()
    deadline = since + keepalive + _slack(ctx, keepalive)
    try:
        ping = await peer.expect_type(Ping, req="CP-KEEP-4",
                                      timeout=(deadline - loop.time())
                                      / ctx.options.timeout_scale)
    except Violation as exc:
        if exc.kind not in ("timeout", "closed"):
            raise
        ctx.fail("CP-KEEP-4", f"no PING within {deadline - since:.1f} s of silence "
                 f"(keepalive_interval_s is {keepalive}, idle_timeout_s {idle})")
        return
    ctx.check(ping.request_id == 0, "CP-REQ-7",
              f"the server's PING carried request_id {ping.request_id}; it is an event")


@server_case("CP-KEEP-5", slow=True)
async def silent_connection_closed_with_idle_timeout(ctx: ServerContext) -> None:
    """A welcomed client that sends nothing (no PONG either) gets IDLE_TIMEOUT and is closed."""
    peer, _, idle, since = await _silent_client(ctx, "silent")
    await _expect_idle_timeout(ctx, peer, idle, since,
                               "a welcomed client that sent nothing after HELLO")


@server_case("CP-KEEP-5", slow=True)
async def connection_without_hello_closed_with_idle_timeout(ctx: ServerContext) -> None:
    """A connection that never sends a frame gets IDLE_TIMEOUT and is closed (idle from accept)."""
    probe = await ctx.client("probe")  # learns the advertised idle_timeout_s
    assert probe.welcome is not None
    _, idle = _intervals(ctx, probe.welcome)
    await probe.quit()
    peer = await ctx.connect("mute")
    peer.auto_pong = False
    # Before WELCOME, not within the handshake floor (CP-HS-12) even if idle is shorter.
    await _expect_idle_timeout(ctx, peer, max(idle, HANDSHAKE_FLOOR_S),
                               asyncio.get_running_loop().time(),
                               "a connection that never sent a byte")


@server_case("CP-KEEP-5", slow=True)
async def trickled_bytes_do_not_count(ctx: ServerContext) -> None:
    """Bytes of a frame trickled one at a time, never completed, do not keep a connection alive."""
    peer, _, idle, since = await _silent_client(ctx, "trickle")
    frame = encode(Ping(request_id=1, token=bytes(255)))
    loop = asyncio.get_running_loop()
    deadline = since + idle + _slack(ctx, idle)
    # Spread all but the last byte over the whole wait: the frame never completes.
    step = (deadline - loop.time()) / (len(frame) - 1)
    for index in range(len(frame) - 1):
        if peer.closed or any(isinstance(m, Error) for m in peer.pending()):
            break
        await peer.send_raw(frame[index:index + 1], note=f"byte {index + 1} of a PING frame")
        await asyncio.sleep(step)
    await _expect_idle_timeout(ctx, peer, idle, since,
                               "a client that trickled an unfinished frame, one byte at a time")


@server_case("CP-KEEP-5", slow=True)
async def answered_pings_keep_connection_open(ctx: ServerContext) -> None:
    """A client whose only frames are PONGs to the server's PINGs is not timed out as idle."""
    peer = await ctx.client("pong")  # answers every PING
    assert peer.welcome is not None
    keepalive, idle = _intervals(ctx, peer.welcome)
    loop = asyncio.get_running_loop()
    until = loop.time() + idle * 1.5 + _slack(ctx, idle)
    pings: list[float] = []
    while loop.time() < until and not peer.closed:
        try:
            await peer.expect_type(Ping, req="CP-KEEP-4",
                                   timeout=(until - loop.time()) / ctx.options.timeout_scale)
        except Violation as exc:
            if exc.kind in ("timeout", "closed"):
                break
            raise
        pings.append(loop.time())  # the kit's PONG went out as the PING was read
    errors = [m for m in peer.pending() if isinstance(m, Error)]
    if not errors and not peer.closed:
        return
    ended = loop.time()
    if not pings:
        ctx.skip("the server sent no PING to answer (CP-KEEP-4), so the client was silent "
                 "and its idle timeout was due")
    since_pong = ended - pings[-1]
    # The server ended the connection less than idle_timeout_s after a PONG reached it.
    if since_pong < idle - 0.2:
        what = describe(errors[0]) if errors else peer.close_note
        raise Violation("CP-KEEP-5", f"the client answered each of the server's {len(pings)} "
                        f"PING(s) with PONG, yet was ended ({what}) {since_pong:.1f} s after "
                        f"its last PONG; idle_timeout_s is {idle} (keepalive_interval_s "
                        f"{keepalive}) and a PONG is a complete frame")


@server_case("CP-KEEP-6", "CP-KEEP-4", slow=True)
async def one_ping_per_interval_of_silence(ctx: ServerContext) -> None:
    """A client that answers nothing gets no two PINGs within keepalive_interval_s, and,
    when its idle timeout leaves room for it, more than one PING before it is timed out."""
    peer, keepalive, idle, since = await _silent_client(ctx, "unanswering")
    loop = asyncio.get_running_loop()
    deadline = since + idle + _slack(ctx, idle)
    pings: list[float] = []
    while loop.time() < deadline and not peer.closed:
        try:
            await peer.expect_type(Ping, req="CP-KEEP-4",
                                   timeout=max(0.1, deadline - loop.time())
                                   / ctx.options.timeout_scale)
        except Violation as exc:
            if exc.kind in ("timeout", "closed"):
                break
            raise
        pings.append(loop.time() - since)
    # Reading late can bring two PINGs closer together than they were sent: some slack.
    early = max(0.25, 0.1 * keepalive) * ctx.options.timeout_scale
    for earlier, later in itertools.pairwise(pings):
        ctx.check(later - earlier >= keepalive - early, "CP-KEEP-6",
                  f"the server sent PINGs {later - earlier:.2f} s apart ({earlier:.2f} s and "
                  f"{later:.2f} s into the client's silence) and heard nothing between them; "
                  f"keepalive_interval_s is {keepalive}: at most one PING per interval")
    if idle >= 2 * keepalive + 1:
        ctx.check(len(pings) >= 2, "CP-KEEP-4",
                  f"the server sent {len(pings)} PING(s) in {idle} s of the client's "
                  f"silence; keepalive_interval_s is {keepalive}, so one per interval: a PING "
                  "after the first interval and another after the second")


@server_case("CP-HS-12", slow=True)
async def silent_connection_kept_open_for_the_handshake_floor(ctx: ServerContext) -> None:
    """A connection that sends nothing is neither sent an ERROR nor closed in the first
    HANDSHAKE_FLOOR_S - 1 seconds (whatever the idle timeout), and a HELLO sent then
    is welcomed."""
    peer = await ctx.connect("slowstart")
    peer.auto_pong = False
    since = asyncio.get_running_loop().time()
    wait = HANDSHAKE_FLOOR_S - 1  # a second for the HELLO to get there: not scaled
    try:
        found = await peer.expect_type(Error, req="CP-HS-12", timeout=wait
                                       / ctx.options.timeout_scale)
    except Violation as exc:
        if exc.kind == "closed":
            raise Violation("CP-HS-12", f"the server closed a connection that had sent "
                            f"nothing {asyncio.get_running_loop().time() - since:.1f} s after "
                            f"accepting it; before WELCOME it waits at least "
                            f"{HANDSHAKE_FLOOR_S} s", "closed") from exc
        if exc.kind != "timeout":
            raise
    else:
        raise Violation("CP-HS-12", f"the server sent {describe(found)} "
                        f"{asyncio.get_running_loop().time() - since:.1f} s after accepting a "
                        f"connection that had sent nothing; before WELCOME it waits at least "
                        f"{HANDSHAKE_FLOOR_S} s")
    await peer.hello(ctx.nick("slowstart"), req="CP-HS-12")
