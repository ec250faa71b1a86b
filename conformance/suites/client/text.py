"""Text from a faulty or hostile server: control characters never reach a terminal raw.

Only a server that breaks CP-FIELD-4 can send these strings, which is exactly
the server CP-FIELD-6 protects clients from. A client may refuse such frames
outright; what it must not do is write the characters unescaped. The kit checks
everything the client wrote to stdout and stderr, up to its exit.
"""

from __future__ import annotations

import secrets
import time

from chatproto import ErrorCode
from chatproto.messages import (
    Error,
    MemberLeft,
    Notice,
    Presence,
    PrivateMessage,
    RoomMessage,
    TopicChanged,
)
from conformance.client_side import ClientContext, unchecked
from conformance.outcomes import Violation
from conformance.registry import client_case

CONTROLS = {
    "ESC (a CSI sequence)": "\x1b[31m",
    "ESC (an OSC sequence setting the window title)": "\x1b]0;",
    "ESC": "\x1b",
    "CR": "\r",
    "BEL": "\x07",
    "BS": "\x08",
    "NUL": "\x00",
    "DEL": "\x7f",
    "the C1 control CSI (U+009B)": "\x9b",
    "the C1 control NEL (U+0085)": "\x85",
}
"""Control sequences the kit plants, each followed by its own marker."""


@client_case("CP-FIELD-6")
async def control_characters_not_written_raw(ctx: ClientContext) -> None:
    """Control characters in server text fields never appear unescaped in the client's output."""
    link = await ctx.welcomed()
    marker = f"kit{secrets.token_hex(3)}"
    probes = {name: f"{chars}{marker}{n}" for n, (name, chars) in enumerate(CONTROLS.items())}
    text = "kit " + " ".join(probes.values())
    assert len(text.encode()) <= 255
    now = int(time.time() * 1000)
    room, peer = "#kitroom", "kitpeer"
    frames = [
        unchecked(Notice, request_id=0, text=text),
        unchecked(PrivateMessage, request_id=0, msg_id=1, timestamp_ms=now, sender=peer,
                  client_msg_id=0, text=text),
        unchecked(RoomMessage, request_id=0, room=room, seq=1, msg_id=2, timestamp_ms=now,
                  sender=peer, client_msg_id=0, history=False, text=text),
        unchecked(TopicChanged, request_id=0, room=room, topic=text, by=peer),
        unchecked(Presence, request_id=0, nick=peer, away=True, away_message=text),
        unchecked(MemberLeft, request_id=0, room=room, nick=peer, kind=0, reason=text, by=""),
        unchecked(Error, request_id=0, code=ErrorCode.INTERNAL_ERROR, fatal=False,
                  retry_after_ms=0, detail=text),
    ]
    await link.send_raw(b"".join(frames),
                        note=f"NOTICE, PRIVATE_MESSAGE, ROOM_MESSAGE, TOPIC_CHANGED, PRESENCE, "
                             f"MEMBER_LEFT and ERROR, each with the text {text!r}")
    try:
        await link.barrier()
    except Violation as exc:  # refusing such frames, even closing, is the client's choice
        if exc.kind == "mismatch":
            raise
    ctx.finish_client()
    status = await ctx.wait_exit()
    output = await ctx.output()
    link.raise_fault()
    for name, probe in probes.items():
        ctx.check(probe.encode() not in output, "CP-FIELD-6",
                  f"the client wrote {name} from a server text field unescaped "
                  f"({probe!r} appears in its output"
                  + (")" if status is not None else ", read while it was still running)"))
