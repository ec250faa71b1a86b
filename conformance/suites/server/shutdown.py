"""An orderly shutdown of the server: every connection is told before it is closed.

The kit cannot shut a server down by itself; the user gives it a command that
does (``--shutdown-command``). The case runs after every other case, since the
server is gone afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib

from chatproto import ErrorCode
from chatproto.messages import Error
from conformance.outcomes import KitError
from conformance.registry import server_case
from conformance.server_side import Peer, ServerContext


@server_case("CP-CLOSE-7", needs=("shutdown",))
async def orderly_shutdown_tells_every_connection(ctx: ServerContext) -> None:
    """On an orderly shutdown every open connection gets ERROR SERVER_SHUTDOWN (request_id 0)."""
    command = ctx.need_shutdown()
    unwelcomed = await ctx.connect("early")
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    room = ctx.room("bye")
    await alice.join(room)
    await bob.join(room)
    for peer in (alice, bob):
        await peer.barrier()
    try:
        process = await asyncio.create_subprocess_exec(*command)
    except OSError as exc:
        raise KitError(f"cannot run the shutdown command {command}: {exc}") from None
    try:
        await asyncio.wait_for(process.wait(), ctx.timeout * 5)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise KitError(f"the shutdown command {command} did not finish") from None
    peers: list[Peer] = [unwelcomed, alice, bob]
    for peer in peers:
        # Shutting down may take the server a while: it finishes its turn first.
        frames = await peer.expect_closed(req="CP-CLOSE-7", timeout=15.0)
        notices = [m for m in frames if isinstance(m, Error)
                   and m.code == ErrorCode.SERVER_SHUTDOWN]
        ctx.check(bool(notices), "CP-CLOSE-7",
                  f"{peer.label} was closed without ERROR SERVER_SHUTDOWN; it last received "
                  f"{[m.NAME for m in frames[-3:]]}")
        ctx.check(notices[-1].request_id == 0, "CP-CLOSE-7",
                  f"{peer.label}'s SERVER_SHUTDOWN carried request_id "
                  f"{notices[-1].request_id}, not 0")
