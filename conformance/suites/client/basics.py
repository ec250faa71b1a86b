"""The client can talk at all: its HELLO, and its answers to the kit's PINGs.

These cases come first: the others rely on the handshake and on the PING
barrier, and are skipped (blocked) when one of these is found broken.
"""

from __future__ import annotations

import secrets

from chatproto import LENGTH_FIELD_SIZE, PRE_WELCOME_FRAME_LENGTH, encode
from chatproto.messages import Ping
from conformance.client_side import ClientContext
from conformance.outcomes import Violation
from conformance.registry import client_case


@client_case("CP-STATE-1", "CP-REQ-1", "CP-FRAME-1", "CP-FRAME-5")
async def hello_first_and_well_formed(ctx: ClientContext) -> None:
    """The first frame is a well-formed HELLO of at most 4096 bytes, alone until it is answered."""
    link = await ctx.launch()
    hello = await link.expect_hello()
    first = link.received[0]
    try:
        ctx.check(first.message is hello, "CP-STATE-1",
                  f"the client's first frame was {first.name}, not HELLO")
        ctx.check(hello.request_id != 0, "CP-REQ-1", "the client's HELLO carries request_id 0")
        length = len(first.raw) - LENGTH_FIELD_SIZE
        ctx.check(length <= PRE_WELCOME_FRAME_LENGTH, "CP-FRAME-5",
                  f"the client's HELLO has length {length}, above {PRE_WELCOME_FRAME_LENGTH}")
        # In AWAIT_WELCOME a client sends nothing but a fatal ERROR until HELLO is answered.
        await link.silent_since(link.mark(), req="CP-STATE-1", timeout=0.5,
                                after="its HELLO, before the server answered it")
    except Violation as exc:
        ctx.mark_broken("handshake", exc)
        raise
    await link.welcome(hello)
    try:
        await link.first_barrier()
    except Violation as exc:
        ctx.mark_broken("ping" if exc.requirement == "CP-KEEP-1" else "handshake", exc)
        raise


@client_case("CP-KEEP-1")
async def ping_answered_with_same_token_and_request_id(ctx: ClientContext) -> None:
    """Every PING from the server is answered with a PONG carrying its token and request_id 0."""
    link = await ctx.welcomed()
    for token in (b"", b"\x00", secrets.token_bytes(255)):
        await link.send(Ping(token=token))
        await link.expect_pong(token)
    # Several PINGs in one write: each one gets its own PONG.
    tokens = [secrets.token_bytes(4) for _ in range(4)]
    await link.send_raw(b"".join(encode(Ping(token=t)) for t in tokens))
    for token in tokens:
        await link.expect_pong(token)
