"""The handshake: WELCOME's contents, versions, capabilities, and HELLO again after a refusal."""

from __future__ import annotations

import re
import secrets

from chatproto import MAX_FRAME_LENGTH, PRE_WELCOME_FRAME_LENGTH, ErrorCode
from chatproto.messages import SEND_ROOM_OVERHEAD, Error, Hello, Welcome
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import Peer, ServerContext
from conformance.suites.server._bodies import hello_body
from conformance.transcript import describe, outcome
from conformance.wire import frame_bytes

RANGE = re.compile(r"(?<![\d-])(\d+)-(\d+)(?![\d-])")
"""Two decimal numbers joined by a hyphen (CP-HS-6: the whole detail, nothing else)."""
FAR_VERSIONS = (200, 255)
"""A version range no server of this era supports (version is a u8, 1..255)."""

PROTOCOL_RANGES: dict[str, tuple[int, int]] = {
    "max_frame_size": (PRE_WELCOME_FRAME_LENGTH, MAX_FRAME_LENGTH),
    "max_nick_length": (1, 32),
    "max_room_name_length": (2, 64),
    "max_message_length": (1, 16384),
    "max_topic_length": (0, 1024),
    "max_rooms_per_user": (1, 65535),
    "msg_rate_burst": (1, 65535),
    "msg_rate_interval_ms": (1, 4294967295),
    "cmd_rate_burst": (1, 65535),
    "cmd_rate_interval_ms": (1, 4294967295),
    "keepalive_interval_s": (1, 65534),
    "idle_timeout_s": (2, 65535),
    "history_on_join": (0, 65535),
    "history_page_max": (1, 65535),
}
"""The protocol range of every limit, from the table on the Limits page."""


async def _hello(peer: Peer, request_id: int, nick: str, *, versions: tuple[int, int] = (1, 1),
                 capabilities: tuple[str, ...] = (), req: str) -> Welcome | Error:
    """Send a HELLO (raw, so any version range goes) and return its final response."""
    body = hello_body(nick, versions=versions, capabilities=capabilities)
    await peer.send_raw(frame_bytes(Hello.TYPE, request_id, body),
                        note=f"HELLO versions {versions[0]}..{versions[1]} {nick!r} "
                             f"capabilities={list(capabilities)} (request {request_id})")
    answer = await peer.response(request_id, "HELLO", req=req)
    final = answer.final
    if not isinstance(final, Welcome | Error):
        raise Violation("CP-REQ-4", f"{peer.label}: HELLO was answered with {describe(final)}; "
                        "the spec requires WELCOME or ERROR")
    return final


async def _refused_range(ctx: ServerContext, versions: tuple[int, int]) -> Error | None:
    """The ERROR a HELLO offering ``versions`` gets, or None if it was welcomed."""
    peer = await ctx.connect("versions")
    final = await _hello(peer, 1, ctx.nick("ver"), versions=versions, req="CP-HS-5")
    return final if isinstance(final, Error) else None


async def _server_range(ctx: ServerContext) -> tuple[int, int] | None:
    """The server's version range as UNSUPPORTED_VERSION's detail gives it, if it does."""
    error = await _refused_range(ctx, FAR_VERSIONS)
    if error is None or error.code != ErrorCode.UNSUPPORTED_VERSION:
        return None
    found = RANGE.search(error.detail)
    if found is None:
        return None
    low, high = int(found.group(1)), int(found.group(2))
    return (low, high) if low <= high else None


@server_case("CP-HS-1")
async def welcome_nick_spelled_as_sent_and_casemapping_ascii(ctx: ServerContext) -> None:
    """A guest's WELCOME carries its nick exactly as the HELLO spelled it and casemapping ascii."""
    nick = "".join(c.upper() if i % 2 else c for i, c in enumerate(ctx.nick("mixedcase")))
    peer = await ctx.connect("alice")
    welcome = await peer.hello(nick)
    ctx.check(welcome.nick == nick, "CP-HS-1",
              f"WELCOME carried nick {welcome.nick!r}; the HELLO asked for {nick!r}")
    ctx.check(welcome.casemapping == "ascii", "CP-HS-1",
              f"WELCOME carried casemapping {welcome.casemapping!r}, not 'ascii'")


@server_case("CP-HS-2")
async def welcome_limits_lie_within_the_protocol_ranges(ctx: ServerContext) -> None:
    """Every limit in WELCOME lies in its protocol range; idle_timeout_s exceeds the keepalive."""
    peer = await ctx.client("alice")
    welcome = peer.welcome
    assert welcome is not None
    for name, (low, high) in PROTOCOL_RANGES.items():
        value = getattr(welcome, name)
        ctx.check(low <= value <= high, "CP-HS-2",
                  f"WELCOME advertised {name} = {value}, outside the protocol range {low}..{high}")
    ctx.check(welcome.idle_timeout_s > welcome.keepalive_interval_s, "CP-HS-2",
              f"WELCOME advertised idle_timeout_s = {welcome.idle_timeout_s}, not greater than "
              f"keepalive_interval_s = {welcome.keepalive_interval_s}")


@server_case("CP-HS-10")
async def welcome_limits_fit_the_largest_send_room(ctx: ServerContext) -> None:
    """WELCOME limits let the largest SEND_ROOM (17 + room name + text) fit max_frame_size."""
    peer = await ctx.client("alice")
    welcome = peer.welcome
    assert welcome is not None
    largest = SEND_ROOM_OVERHEAD + welcome.max_room_name_length + welcome.max_message_length
    ctx.check(largest <= welcome.max_frame_size, "CP-HS-10",
              f"the largest SEND_ROOM these limits allow has length {largest}, over the "
              f"advertised max_frame_size {welcome.max_frame_size}")


@server_case("CP-HS-3")
async def new_hello_accepted_after_non_fatal_refusals(ctx: ServerContext) -> None:
    """After HELLOs refused with non-fatal ERRORs (bad nick, nick in use, ...) HELLO works."""
    holder = await ctx.client("holder")
    peer = await ctx.connect("alice")
    attempts: list[tuple[str, bytes]] = [
        ("an invalid nick", hello_body("1" + ctx.nick("bad"))),
        ("a nick in use", hello_body(holder.nick)),
        ("a malformed capability", hello_body(ctx.nick("alice"), capabilities=("Bad Cap",))),
        ("a password for a nick without an account", hello_body(ctx.nick("alice"),
                                                                 password="no-account")),
    ]
    request_id = 0
    for what, body in attempts:
        request_id += 1
        await peer.send_raw(frame_bytes(Hello.TYPE, request_id, body), note=f"HELLO with {what}")
        final = (await peer.response(request_id, "HELLO", req="CP-HS-3")).final
        if not isinstance(final, Error) or final.fatal:
            ctx.skip(f"the HELLO with {what} was answered with {outcome(final)} "
                     f"(fatal={getattr(final, 'fatal', None)}), not a non-fatal ERROR")
    nick = ctx.nick("alice")
    request_id += 1
    final = await _hello(peer, request_id, nick, req="CP-HS-3")
    ctx.check(isinstance(final, Welcome), "CP-HS-3",
              f"after {len(attempts)} non-fatal refusals a valid HELLO was answered with "
              f"{outcome(final)}, not WELCOME")


@server_case("CP-HS-4")
async def highest_common_version_is_chosen(ctx: ServerContext) -> None:
    """WELCOME's version is the highest in both ranges: 1 for 1..1, the server's top for 1..255."""
    server = await _server_range(ctx)
    for versions in ((1, 1), (1, 2), (1, 255)):
        peer = await ctx.connect("alice")
        final = await _hello(peer, 1, ctx.nick("alice"), versions=versions, req="CP-ACCT-5")
        if isinstance(final, Error):
            raise Violation("CP-HS-4", f"HELLO offering versions {versions[0]}..{versions[1]} "
                            f"was refused with {outcome(final)}; version 1 is common to both")
        low, high = versions
        ctx.check(low <= final.version <= high, "CP-HS-4",
                  f"HELLO offered versions {low}..{high}; WELCOME chose {final.version}")
        if server is not None:
            expected = min(high, server[1])
            ctx.check(final.version == expected, "CP-HS-4",
                      f"HELLO offered {low}..{high} and the server supports "
                      f"{server[0]}..{server[1]}; WELCOME chose {final.version}, not {expected}")
        await peer.close()


@server_case("CP-HS-5")
async def version_ranges_without_a_common_version_refused(ctx: ServerContext) -> None:
    """HELLOs offering 200..255, 2..1 and 255..1 (min above max) get UNSUPPORTED_VERSION."""
    for versions in (FAR_VERSIONS, (2, 1), (255, 1)):
        error = await _refused_range(ctx, versions)
        if error is None and versions == FAR_VERSIONS:
            ctx.skip("the server supports a version from 200 to 255")
        what = f"HELLO offering versions {versions[0]}..{versions[1]}"
        ctx.check(error is not None and error.code == ErrorCode.UNSUPPORTED_VERSION, "CP-HS-5",
                  f"{what} was answered with {outcome(error) if error else 'WELCOME'}; the spec "
                  "requires ERROR UNSUPPORTED_VERSION")


@server_case("CP-HS-6")
async def unsupported_version_detail_gives_the_server_range(ctx: ServerContext) -> None:
    """UNSUPPORTED_VERSION's detail is exactly the server's range 'low-high', which includes 1.

    Exactly: a program reads this detail, so a sentence around the range (such as
    "server supports versions 1-1") breaks the rule as much as a missing range.
    """
    error = await _refused_range(ctx, FAR_VERSIONS)
    if error is None or error.code != ErrorCode.UNSUPPORTED_VERSION:
        ctx.skip("HELLO offering 200..255 was not refused with UNSUPPORTED_VERSION")
    assert error is not None
    match = RANGE.fullmatch(error.detail)
    ctx.check(match is not None and int(match[1]) <= 1 <= int(match[2]), "CP-HS-6",
              f"UNSUPPORTED_VERSION's detail is {error.detail!r}; it must be the server's "
              "version range and nothing else: two decimal numbers joined by a hyphen, such "
              "as '1-1' (the server speaks version 1, so its range includes 1)")


@server_case("CP-HS-8")
async def unknown_capabilities_ignored_and_not_echoed(ctx: ServerContext) -> None:
    """Offered capabilities the server cannot know are ignored without error and not echoed."""
    tag = secrets.token_hex(4)
    offered = (f"kit-{tag}.invalid/unknown", f"x-kit-{tag}", f"{tag}.example/typing")
    peer = await ctx.connect("alice")
    final = await _hello(peer, 1, ctx.nick("alice"), capabilities=offered, req="CP-HS-8")
    if isinstance(final, Error):
        raise Violation("CP-HS-8", f"HELLO offering unknown well-formed capabilities was refused "
                        f"with {outcome(final)}; they are to be ignored without an error")
    ctx.check(set(final.capabilities) <= set(offered), "CP-HS-8",
              f"WELCOME listed {list(final.capabilities)}, not all of them offered in HELLO")
    echoed = [c for c in final.capabilities if c in offered]
    ctx.check(not echoed, "CP-HS-8",
              f"WELCOME listed {echoed}, capabilities with names made up by the kit that no "
              "server supports")
    plain = await ctx.connect("bob")
    welcome = await plain.hello(ctx.nick("bob"))
    ctx.check(not welcome.capabilities, "CP-HS-8",
              f"WELCOME listed {list(welcome.capabilities)} to a HELLO that offered none")

