"""The handshake from the client's side: WELCOME however it arrives, and refused HELLOs."""

from __future__ import annotations

import secrets

from chatproto import ErrorCode, encode
from chatproto.messages import Error, Hello, Notice, Ping
from conformance.client_monitor import QUIT_BEFORE_WELCOME
from conformance.client_side import ClientContext
from conformance.outcomes import Violation
from conformance.registry import client_case


@client_case("CP-FRAME-8")
async def welcome_one_byte_per_write(ctx: ClientContext) -> None:
    """A WELCOME and a PING written one byte per write are decoded as two frames."""
    ctx.require_working("ping")
    link = await ctx.launch()
    hello = await link.expect_hello()
    token = secrets.token_bytes(8)
    await link.send_raw(encode(link.make_welcome(hello)) + encode(Ping(token=token)),
                        chunk_size=1)
    with ctx.attribute("CP-FRAME-8"):
        await link.expect_pong(token)


@client_case("CP-FRAME-8")
async def welcome_motd_and_ping_in_one_write(ctx: ClientContext) -> None:
    """WELCOME, the message of the day and a PING arriving in a single write are all decoded."""
    ctx.require_working("ping")
    link = await ctx.launch()
    hello = await link.expect_hello()
    token = secrets.token_bytes(8)
    motd = [Notice(text=f"kit message of the day, line {n}") for n in range(1, 6)]
    await link.send_raw(encode(link.make_welcome(hello)) + b"".join(encode(m) for m in motd)
                        + encode(Ping(token=token)))
    with ctx.attribute("CP-FRAME-8"):
        await link.expect_pong(token)


@client_case("CP-HS-7", "CP-ERR-1", "CP-ERR-3", "CP-ERR-4", "CP-CLOSE-4")
async def welcome_with_version_not_offered_refused(ctx: ClientContext) -> None:
    """A WELCOME with a version the client did not offer gets ERROR UNSUPPORTED_VERSION, a close."""
    link = await ctx.launch()
    hello = await link.expect_hello()
    if hello.max_version < 255:
        version = hello.max_version + 1
    elif hello.min_version > 1:
        version = hello.min_version - 1
    else:
        ctx.skip("the client offers every version (1-255): no version lies outside its range")
    await link.welcome(hello, version=version)
    with ctx.attribute("CP-HS-7"):
        error = await link.expect_type(Error, req="CP-HS-7")
    ctx.check(error.code == ErrorCode.UNSUPPORTED_VERSION, "CP-HS-7",
              f"the client answered WELCOME version {version} (it offered "
              f"{hello.min_version}-{hello.max_version}) with ERROR code {error.code}, "
              "not UNSUPPORTED_VERSION")
    ctx.check(error.fatal, "CP-ERR-1", "the client's UNSUPPORTED_VERSION has fatal=0")
    ctx.check(error.request_id == 0, "CP-ERR-3",
              f"the client's ERROR carries request_id {error.request_id}, not 0")
    ctx.check(error.retry_after_ms == 0, "CP-ERR-4",
              f"the client's ERROR has retry_after_ms {error.retry_after_ms}, not 0")
    await link.expect_closed(req="CP-CLOSE-4", after="its fatal ERROR UNSUPPORTED_VERSION")


@client_case(QUIT_BEFORE_WELCOME)
async def hello_refused_then_only_hello_or_close(ctx: ClientContext) -> None:
    """After a HELLO refused non-fatally, the client sends only a new HELLO, or closes (no QUIT)."""
    link = await ctx.launch()
    hello = await link.expect_hello()
    await link.send(Error(request_id=hello.request_id, code=ErrorCode.NICK_IN_USE, fatal=False,
                          detail=f"nick in use: {hello.nick}"))
    # Back in AWAIT_HELLO: the monitor judges whatever comes; a new HELLO is welcomed.
    try:
        again = await link.expect_type(Hello, req="CP-STATE-1")
    except Violation as exc:
        if exc.kind == "mismatch":
            raise
        link.raise_fault()
        return  # it gave up, or asks its user: both allowed
    await link.welcome(again)
    await link.barrier()
