"""A server that breaks the state table: the client closes the connection (CP-STATE-5).

Each case sends one message that the state table does not allow from a server
in the client's current state, keeps its own end open, and waits for the client
to close. Before closing, the client may send a fatal ERROR (CP-ERR-9) and
nothing else; the monitor checks that.
"""

from __future__ import annotations

import secrets
import time

from chatproto import MESSAGE_TYPES
from chatproto.messages import Error, Join, Ping, RoomMessage
from conformance.client_side import ClientContext
from conformance.registry import client_case
from conformance.wire import frame_bytes

UNDEFINED_TYPE = next(code for code in range(0x0D00, 0x7FFF) if code not in MESSAGE_TYPES)


@client_case("CP-STATE-5")
async def second_welcome_closes(ctx: ClientContext) -> None:
    """A second WELCOME in READY makes the client close the connection."""
    link = await ctx.welcomed()
    assert link.hello is not None
    await link.send(link.make_welcome(link.hello))
    await link.expect_closed(req="CP-STATE-5", after="a second WELCOME in READY")


@client_case("CP-STATE-5", "CP-ERR-6")
async def room_message_before_welcome_closes(ctx: ClientContext) -> None:
    """A ROOM_MESSAGE instead of WELCOME makes the client close, without quoting its text."""
    link = await ctx.launch()
    await link.expect_hello()
    text = f"kit message text {secrets.token_hex(6)}"
    mark = link.mark()
    await link.send(RoomMessage(room="#kitroom", seq=1, msg_id=1,
                                timestamp_ms=int(time.time() * 1000), sender="kitpeer",
                                client_msg_id=0, history=False, text=text))
    await link.expect_closed(req="CP-STATE-5", after="a ROOM_MESSAGE before WELCOME")
    for frame in link.received[mark:]:
        if isinstance(frame.message, Error):
            ctx.check(text not in frame.message.detail, "CP-ERR-6",
                      f"the client's ERROR detail {frame.message.detail!r} quotes the text of "
                      "a message")


@client_case("CP-STATE-5")
async def ping_before_welcome_closes(ctx: ClientContext) -> None:
    """A PING before WELCOME (PING belongs to READY) makes the client close, not answer."""
    link = await ctx.launch()
    await link.expect_hello()
    await link.send(Ping(token=b"too early"))
    await link.expect_closed(req="CP-STATE-5", after="a PING before WELCOME")


@client_case("CP-STATE-5")
async def unknown_type_before_welcome_closes(ctx: ClientContext) -> None:
    """A frame of a type version 1 does not define, instead of WELCOME: the client closes."""
    link = await ctx.launch()
    await link.expect_hello()
    # Ignoring unknown types (CP-EXT-3) is for a session in READY; before WELCOME the
    # client cannot know what the frame would have meant.
    await link.send_raw(frame_bytes(UNDEFINED_TYPE, 0, b"kit frame from a later version"))
    await link.expect_closed(req="CP-STATE-5",
                             after=f"a frame of undefined type {UNDEFINED_TYPE:#06x} before "
                                   "WELCOME")


@client_case("CP-STATE-5")
async def client_message_from_server_closes(ctx: ClientContext) -> None:
    """A JOIN, which only clients send, coming from the server makes the client close."""
    link = await ctx.welcomed()
    await link.send(Join(request_id=7, room="#kitroom", resume=False, last_seen_seq=0))
    await link.expect_closed(req="CP-STATE-5", after="a JOIN sent by the server")
