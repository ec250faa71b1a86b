"""How the session ends: QUIT and BYE, a refused handshake, reconnecting after a shutdown."""

from __future__ import annotations

import asyncio

from chatproto import MESSAGE_TYPES, ErrorCode
from chatproto.messages import Bye, Error, Notice, Quit
from conformance.client_side import ClientContext, ClientLink
from conformance.outcomes import Violation
from conformance.registry import client_case
from conformance.wire import frame_bytes

UNDEFINED_TYPE = next(code for code in range(0x0B00, 0x7FFF) if code not in MESSAGE_TYPES)
UNKNOWN_FATAL_CODE = 4321
"""An error code in the range this specification assigns, which version 1 does not define."""


async def _quit_when_asked(ctx: ClientContext, link: ClientLink) -> Quit:
    """Close the client's stdin and return its QUIT (SKIP when it finishes without one)."""
    link.answer_quit = False
    ctx.finish_client()
    try:
        return await link.expect_type(Quit, req="CP-CLOSE-5")
    except Violation as exc:
        if exc.kind == "mismatch":
            raise
        ctx.skip(f"the client sent no QUIT after its stdin was closed ({exc.message}); the "
                 "kit has no other way to ask a client to finish")


@client_case("CP-CLOSE-5", "CP-REQ-1")
async def quit_then_nothing_after_bye(ctx: ClientContext) -> None:
    """Asked to finish, the client sends QUIT (request_id not 0) and nothing after the BYE."""
    link = await ctx.welcomed()
    quit_ = await _quit_when_asked(ctx, link)
    ctx.check(quit_.request_id != 0, "CP-REQ-1", "the client's QUIT carries request_id 0")
    mark = link.mark()
    await link.send(Bye(request_id=quit_.request_id, reason="goodbye"))
    link.half_close()
    await link.silent_since(mark, req="CP-CLOSE-5", after="the BYE answering its QUIT")


@client_case("CP-CLOSE-5", "CP-STATE-5")
async def unsolicited_bye_ends_session(ctx: ClientContext) -> None:
    """A BYE in READY that answers no QUIT: the client sends nothing more and closes."""
    link = await ctx.welcomed()
    mark = link.mark()
    # The kit keeps its end open: closing is the client's own doing.
    await link.send(Bye(request_id=0, reason="kit: goodbye, unasked"))
    closed = await link.silent_since(mark, req="CP-CLOSE-5", after="a BYE it did not ask for")
    ctx.check(closed, "CP-STATE-5", f"the client did not close the connection within "
              f"{ctx.timeout:.1f} s after a BYE in READY, which the state table does not allow")


@client_case("CP-EXT-3")
async def unknown_type_while_quitting_ignored(ctx: ClientContext) -> None:
    """A frame of an unknown type between QUIT and BYE is ignored: no answer, no close."""
    link = await ctx.welcomed()
    quit_ = await _quit_when_asked(ctx, link)
    # A client may stop waiting for BYE at once; only one that waits can show the rule.
    await link.send(Notice(text="kit: a last notice before BYE"))
    if await link.silent_since(link.mark(), req="CP-STATE-1", timeout=0.3,
                               after="a NOTICE while quitting",
                               ignore=lambda f: f.type_code == Error.TYPE):
        ctx.skip("the client closed right after QUIT without waiting for BYE")
    mark = link.mark()
    await link.send_raw(frame_bytes(UNDEFINED_TYPE, 0, b"kit event from a later version"))
    closed = await link.silent_since(mark, req="CP-EXT-3", timeout=0.5,
                                     after=f"a frame of unknown type {UNDEFINED_TYPE:#06x}")
    ctx.check(not closed, "CP-EXT-3", f"the client closed the connection on a frame of unknown "
              f"type {UNDEFINED_TYPE:#06x} while waiting for BYE")
    await link.send(Bye(request_id=quit_.request_id, reason="goodbye"))
    link.half_close()


@client_case("CP-CLOSE-5")
async def fatal_error_answering_hello_ends_session(ctx: ClientContext) -> None:
    """After a fatal ERROR answering its HELLO, the client sends nothing more."""
    link = await ctx.launch()
    hello = await link.expect_hello()
    mark = link.mark()
    await link.send(Error(request_id=hello.request_id, code=ErrorCode.SERVER_SHUTDOWN,
                          fatal=True, detail="kit: shutting down"))
    link.half_close()
    await link.silent_since(mark, req="CP-CLOSE-5", after="a fatal ERROR answering its HELLO")


@client_case("CP-EXT-4")
async def unknown_fatal_code_answering_hello_ends_session(ctx: ClientContext) -> None:
    """A fatal ERROR of unknown code answering HELLO: the client sends nothing more and closes."""
    link = await ctx.launch()
    hello = await link.expect_hello()
    mark = link.mark()
    await link.send(Error(request_id=hello.request_id, code=UNKNOWN_FATAL_CODE, fatal=True,
                          detail=f"kit: code {UNKNOWN_FATAL_CODE} from a later version"))
    link.half_close()
    closed = await link.silent_since(mark, req="CP-EXT-4", after=f"a fatal ERROR of unknown "
                                     f"code {UNKNOWN_FATAL_CODE} answering its HELLO")
    ctx.check(closed, "CP-EXT-4", f"the client did not end the connection within "
              f"{ctx.timeout:.1f} s after a fatal ERROR of unknown code {UNKNOWN_FATAL_CODE}")


@client_case("CP-CLOSE-8")
async def reconnect_waits_for_retry_after(ctx: ClientContext) -> None:
    """A client that reconnects after SERVER_SHUTDOWN waits at least its retry_after_ms."""
    link = await ctx.welcomed()
    retry_after_ms = 1000
    await link.send(Error(code=ErrorCode.SERVER_SHUTDOWN, fatal=True,
                          retry_after_ms=retry_after_ms, detail="kit: restarting"))
    sent_at = asyncio.get_running_loop().time()
    link.half_close()
    again = await ctx.next_connection(retry_after_ms / 1000 + ctx.timeout)
    if again is None:
        ctx.skip("the client did not reconnect after SERVER_SHUTDOWN (reconnecting is optional)")
    waited = again.connected_at - sent_at
    ctx.check(waited * 1000 >= retry_after_ms, "CP-CLOSE-8",
              f"the client reconnected {waited * 1000:.0f} ms after SERVER_SHUTDOWN with "
              f"retry_after_ms {retry_after_ms}")
