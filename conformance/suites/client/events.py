"""What a server may send in READY: every kind of event, types unknown to version 1, and
capabilities that were not negotiated."""

from __future__ import annotations

import secrets
import time

from chatproto import MESSAGE_TYPES, encode
from chatproto.messages import (
    LeaveKind,
    MemberJoined,
    MemberLeft,
    Message,
    MuteChanged,
    NickChanged,
    Notice,
    Ping,
    Presence,
    PrivateMessage,
    RoomMessage,
    TopicChanged,
)
from conformance.client_side import ClientContext, describe_raw
from conformance.outcomes import Violation
from conformance.registry import client_case
from conformance.wire import frame_bytes

ROOM = "#kitroom"
UNKNOWN_TYPES = tuple(code for code in (0x0000, 0x000F, 0x01F0, 0x0306, 0x7FFF, 0x8000, 0xFFFF)
                      if code not in MESSAGE_TYPES)
"""Type codes a version 1 client does not know: reserved, unassigned, extension."""


@client_case("CP-KEEP-1")
async def every_event_kind_accepted(ctx: ClientContext) -> None:
    """One event of every kind a server sends in READY, in one write, leaves the client working."""
    # No rule says in so many words that a client carries on after a frame the state
    # table allows; what is checked is that it still answers PING (CP-KEEP-1).
    link = await ctx.welcomed()
    now = int(time.time() * 1000)
    events: list[Message] = [
        Notice(text="kit notice\nwith a second line\tand a tab"),
        MemberJoined(room=ROOM, nick="kitpeer"),
        NickChanged(old_nick="kitpeer", new_nick="kitpeer2"),
        Presence(nick="kitpeer2", away=True, away_message="kit: away"),
        TopicChanged(room=ROOM, topic="kit topic", by="kitpeer2"),
        RoomMessage(room=ROOM, seq=1, msg_id=1, timestamp_ms=now, sender="kitpeer2",
                    client_msg_id=5, history=False, text="kit room message"),
        PrivateMessage(msg_id=2, timestamp_ms=now, sender="kitpeer2", client_msg_id=0,
                       text="kit private message"),
        MuteChanged(room=ROOM, nick="kitpeer2", muted=True, by="kitop"),
        *(MemberLeft(room=ROOM, nick="kitpeer2", kind=kind, reason=f"kit: {kind.name}",
                     by="kitop" if kind in (LeaveKind.KICK, LeaveKind.BAN) else "")
          for kind in LeaveKind),
    ]
    await link.send(*events)
    await link.barrier()


@client_case("CP-EXT-3")
async def unknown_types_ignored_in_ready(ctx: ClientContext) -> None:
    """Frames of types version 1 does not define are ignored in READY: no answer, no close."""
    link = await ctx.welcomed()
    ids = {code: (0 if n % 2 == 0 else 0x7E570000 + n) for n, code in enumerate(UNKNOWN_TYPES)}
    frames = b"".join(frame_bytes(code, ids[code], bytes(range(n * 3)))
                      for n, code in enumerate(UNKNOWN_TYPES))
    mark = link.mark()
    token = secrets.token_bytes(8)
    await link.send_raw(frames + encode(Ping(token=token)))
    await link.expect_ignored(mark, token, req="CP-EXT-3", request_ids=set(ids.values()),
                              what="frames of types version 1 does not define ("
                                   + ", ".join(f"{code:#06x}" for code in UNKNOWN_TYPES) + ")")


@client_case("CP-HS-9", "CP-EXT-3")
async def capabilities_not_negotiated_not_used(ctx: ClientContext) -> None:
    """Capabilities WELCOME did not confirm are not used; extension-type frames are ignored."""
    ctx.require_working("ping")
    link = await ctx.launch()
    hello = await link.expect_hello()
    unoffered = f"kit.example/unoffered-{secrets.token_hex(3)}"
    await link.welcome(hello, capabilities=(unoffered,))
    mark = link.mark()
    token = secrets.token_bytes(8)
    extension = frame_bytes(0x8A5A, 0, b"kit extension event") + frame_bytes(0xC001, 77, b"")
    await link.send_raw(extension + encode(Ping(token=token)),
                        note=f"two extension-type frames, then a PING: {describe_raw(extension)}")

    def no_extension_used() -> None:
        used = [f for f in link.received if f.type_code >= 0x8000]
        if used:
            raise Violation("CP-HS-9", f"the client sent a frame of extension type "
                            f"{used[0].type_code:#06x}, though WELCOME confirmed none of the "
                            "capabilities it offered")
    try:
        await link.expect_ignored(mark, token, req="CP-EXT-3", request_ids={77},
                                  what="frames of extension types 0x8a5a and 0xc001, which no "
                                       "negotiated capability defines")
    except Violation:
        no_extension_used()
        raise
    no_extension_used()
