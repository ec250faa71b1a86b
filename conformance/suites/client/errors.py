"""ERRORs from the server: non-fatal ones leave the session usable, fatal ones end it.

Unknown codes are acted on by their ``fatal`` flag alone (CP-EXT-4). After a
fatal ERROR the kit also sends a PING, on purpose: a client that still reads
and answers after a fatal ERROR is seen sending a PONG (CP-CLOSE-5).
"""

from __future__ import annotations

import secrets

from chatproto import ERROR_REGISTRY, ErrorCode, error_name
from chatproto.messages import Error, Ping
from conformance.client_side import ClientContext
from conformance.registry import client_case

UNKNOWN_CODES = (999, 0x8123)
"""Codes spec v1 does not define: one in the assigned range, one in the extension range."""


@client_case("CP-KEEP-1")
async def nonfatal_errors_keep_the_session(ctx: ClientContext) -> None:
    """ERROR events of every registered non-fatal code leave the client answering PINGs."""
    # No rule says in so many words that a client carries on after a frame the state
    # table allows; what is checked is that it still answers PING (CP-KEEP-1).
    link = await ctx.welcomed()
    errors = [Error(code=info.code, fatal=False,
                    retry_after_ms=500 if info.code == ErrorCode.RATE_LIMITED else 0,
                    detail=f"kit: {info.name}")
              for info in ERROR_REGISTRY.values() if info.on_wire and not info.fatal]
    await link.send(*errors)
    await link.barrier()


@client_case("CP-EXT-4")
async def unknown_nonfatal_code_continues(ctx: ClientContext) -> None:
    """ERRORs of unknown codes with fatal 0 do not end the session."""
    link = await ctx.welcomed()
    token = secrets.token_bytes(8)
    await link.send(*(Error(code=code, fatal=False, detail=f"kit: code {code} from a later "
                            "version") for code in UNKNOWN_CODES), Ping(token=token))
    with ctx.attribute("CP-EXT-4"):
        await link.expect_pong(token)


async def _fatal_error_ends_session(ctx: ClientContext, code: int, req: str,
                                    retry_after_ms: int = 0) -> bool:
    """Send a fatal ERROR (and a PING probe), shut down sending; nothing may follow from the
    client. Returns True when the client closed the connection."""
    link = await ctx.welcomed()
    mark = link.mark()
    name = error_name(code)
    await link.send(Error(code=code, fatal=True, retry_after_ms=retry_after_ms,
                          detail=f"kit: {name}"), Ping(token=b"after the fatal error"))
    link.half_close()
    return await link.silent_since(mark, req=req, after=f"a fatal ERROR {name}")


@client_case("CP-CLOSE-5")
async def server_shutdown_ends_session(ctx: ClientContext) -> None:
    """After ERROR SERVER_SHUTDOWN the client sends nothing more."""
    await _fatal_error_ends_session(ctx, ErrorCode.SERVER_SHUTDOWN, "CP-CLOSE-5", 5000)


@client_case("CP-CLOSE-5")
async def idle_timeout_ends_session(ctx: ClientContext) -> None:
    """After ERROR IDLE_TIMEOUT the client sends nothing more."""
    await _fatal_error_ends_session(ctx, ErrorCode.IDLE_TIMEOUT, "CP-CLOSE-5")


@client_case("CP-CLOSE-5")
async def slow_consumer_ends_session(ctx: ClientContext) -> None:
    """After ERROR SLOW_CONSUMER the client sends nothing more."""
    await _fatal_error_ends_session(ctx, ErrorCode.SLOW_CONSUMER, "CP-CLOSE-5")


@client_case("CP-EXT-4")
async def unknown_fatal_code_ends_session(ctx: ClientContext) -> None:
    """An ERROR of an unknown code with fatal 1 ends the connection: nothing more is sent."""
    closed = await _fatal_error_ends_session(ctx, UNKNOWN_CODES[1], "CP-EXT-4")
    ctx.check(closed, "CP-EXT-4", f"the client did not end the connection within "
              f"{ctx.timeout:.1f} s after a fatal ERROR of unknown code {UNKNOWN_CODES[1]}")
