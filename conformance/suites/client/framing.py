"""Frames from the server however the stream is cut, at the size limits, and damaged."""

from __future__ import annotations

import secrets
import time

from chatproto import (
    HEADER_SIZE,
    MAX_FRAME_LENGTH,
    MESSAGE_TYPES,
    MIN_FRAME_LENGTH,
    ErrorCode,
    encode,
)
from chatproto.messages import Error, MemberLeft, Notice, Ping, PrivateMessage, RoomMessage
from conformance.client_side import ClientContext, unchecked
from conformance.outcomes import Violation
from conformance.registry import client_case
from conformance.wire import frame_bytes, length_at, length_field

UNDEFINED_TYPE = next(code for code in range(0x0C00, 0x7FFF) if code not in MESSAGE_TYPES)


def _events(count: int) -> bytes:
    """``count`` valid events of varied sizes, as one byte string."""
    now = int(time.time() * 1000)
    out = b""
    for n in range(count):
        if n % 3 == 0:
            out += encode(Notice(text="kit notice " + "x" * (n * 7 % 50)))
        elif n % 3 == 1:
            out += encode(RoomMessage(room="#kitroom", seq=n, msg_id=n, timestamp_ms=now,
                                      sender="kitpeer", client_msg_id=n, history=False,
                                      text="kit message " + "y" * (n * 11 % 90)))
        else:
            out += encode(PrivateMessage(msg_id=n, timestamp_ms=now, sender="kitpeer",
                                         client_msg_id=0, text=f"kit private {n}"))
    return out


@client_case("CP-FRAME-8")
async def events_one_byte_per_write(ctx: ClientContext) -> None:
    """Events and a PING written one byte per write are all decoded."""
    link = await ctx.welcomed()
    token = secrets.token_bytes(8)
    await link.send_raw(_events(3) + encode(Ping(token=token)), chunk_size=1)
    with ctx.attribute("CP-FRAME-8"):
        await link.expect_pong(token)


@client_case("CP-FRAME-8")
async def frames_cut_at_every_kind_of_boundary(ctx: ClientContext) -> None:
    """Writes holding whole frames and part of the next (3, 17, 64, 5, 129 bytes) are decoded."""
    link = await ctx.welcomed()
    tokens = [secrets.token_bytes(6) for _ in range(3)]
    data = b"".join(_events(7) + encode(Ping(token=t)) for t in tokens)
    await link.send_raw(data, chunk_size=(3, 17, 64, 5, 129))
    with ctx.attribute("CP-FRAME-8"):
        for token in tokens:
            await link.expect_pong(token)


@client_case("CP-FRAME-8")
async def many_frames_in_one_write(ctx: ClientContext) -> None:
    """Two hundred events and three PINGs in a single write are all decoded."""
    link = await ctx.welcomed()
    tokens = [secrets.token_bytes(6) for _ in range(3)]
    data = b"".join(_events(66) + encode(Ping(token=t)) for t in tokens)
    await link.send_raw(data)
    with ctx.attribute("CP-FRAME-8"):
        for token in tokens:
            await link.expect_pong(token)


@client_case("CP-FRAME-6", "CP-EXT-3")
async def frame_of_length_65536_accepted(ctx: ClientContext) -> None:
    """A frame whose length field is exactly 65536 (a type unknown to v1) is read and ignored."""
    link = await ctx.welcomed()
    small = secrets.token_bytes(8)
    # Ignoring an unknown type is CP-EXT-3's part; the size alone is CP-FRAME-6's.
    mark = link.mark()
    await link.send_raw(frame_bytes(UNDEFINED_TYPE, 0, b"kit") + encode(Ping(token=small)))
    await link.expect_ignored(mark, small, req="CP-EXT-3",
                              what=f"a small frame of unknown type {UNDEFINED_TYPE:#06x}")
    token = secrets.token_bytes(8)
    body = bytes(range(256)) * 256
    big = frame_bytes(UNDEFINED_TYPE, 0, body[:MAX_FRAME_LENGTH - MIN_FRAME_LENGTH])
    assert length_at(big) == MAX_FRAME_LENGTH
    await link.send_raw(big + encode(Ping(token=token)),
                        note=f"type {UNDEFINED_TYPE:#06x}, length {MAX_FRAME_LENGTH}; then a PING")
    with ctx.attribute("CP-FRAME-6"):
        await link.expect_pong(token)


@client_case("CP-FRAME-6")
async def largest_notice_accepted(ctx: ClientContext) -> None:
    """A NOTICE with the longest text the protocol allows (16384 bytes of UTF-8) is accepted."""
    link = await ctx.welcomed()
    await link.send(Notice(text="é" * 8192))
    with ctx.attribute("CP-FRAME-6"):
        await link.barrier()


@client_case("CP-ERR-12", "CP-FRAME-3", "CP-ERR-1", "CP-ERR-3", "CP-ERR-4")
async def length_above_65536_refused(ctx: ClientContext) -> None:
    """A length of 65537 ends the connection at once; an ERROR before it is FRAME_TOO_LARGE."""
    link = await ctx.welcomed()
    mark = link.mark()
    await link.send_raw(length_field(MAX_FRAME_LENGTH + 1),
                        note="a length field of 65537, and nothing after it")
    # Nothing follows the length field: a client that waits for the body never closes.
    await link.expect_closed(req="CP-ERR-12", after="a length field of 65537")
    for frame in link.received[mark:]:
        if isinstance(error := frame.message, Error):  # optional (CP-ERR-12), then exact
            ctx.check(error.code == ErrorCode.FRAME_TOO_LARGE, "CP-FRAME-3",
                      f"the client refused a length of 65537 with ERROR code {error.code}, "
                      "not FRAME_TOO_LARGE")
            ctx.check(error.fatal, "CP-ERR-1", "the client's FRAME_TOO_LARGE has fatal=0")
            ctx.check(error.request_id == 0, "CP-ERR-3", f"the client's FRAME_TOO_LARGE "
                      f"carries request_id {error.request_id}, not 0")
            ctx.check(error.retry_after_ms == 0, "CP-ERR-4",
                      f"the client's ERROR has retry_after_ms {error.retry_after_ms}, not 0")


@client_case("CP-ERR-12", "CP-FRAME-7")
async def length_below_6_ends_connection(ctx: ClientContext) -> None:
    """A length field of 5 ends the connection; an ERROR the client sends says MALFORMED_FRAME."""
    link = await ctx.welcomed()
    mark = link.mark()
    await link.send_raw(length_field(5) + bytes.fromhex("0009 00000000 00"),
                        note="a frame with length field 5")
    await link.expect_closed(req="CP-ERR-12", after="a frame with length field 5")
    for frame in link.received[mark:]:
        if isinstance(frame.message, Error):
            ctx.check(frame.message.code == ErrorCode.MALFORMED_FRAME, "CP-FRAME-7",
                      f"the client reported a length field of 5 as ERROR code "
                      f"{frame.message.code}, not MALFORMED_FRAME")


@client_case("CP-FRAME-10")
async def malformed_bodies_skipped(ctx: ClientContext) -> None:
    """Frames of known types with bodies that do not match their fields are skipped."""
    link = await ctx.welcomed()
    notice = encode(Notice(text="kit notice with a byte too many"))[HEADER_SIZE:]
    private = encode(PrivateMessage(msg_id=1, timestamp_ms=1, sender="kitpeer",
                                    client_msg_id=0, text="kit cut short"))[HEADER_SIZE:]
    damaged = [
        frame_bytes(Notice.TYPE, 0, notice + b"\x00"),
        frame_bytes(PrivateMessage.TYPE, 0, private[:-4]),
        unchecked(RoomMessage, request_id=0, room="#kitroom", seq=1, msg_id=1, timestamp_ms=1,
                  sender="kitpeer", client_msg_id=0, history=2, text="kit bool of 2"),
        unchecked(MemberLeft, request_id=0, room="#kitroom", nick="kitpeer", kind=9,
                  reason="kit kind 9", by=""),
    ]
    token = secrets.token_bytes(8)
    await link.send_raw(b"".join(damaged) + encode(Ping(token=token)))
    try:
        await link.expect_pong(token)
    except Violation as exc:
        if exc.kind == "mismatch":
            raise
        ctx.fail("CP-FRAME-10", f"after four frames with malformed bodies, {exc.message}")


@client_case("CP-ERR-7")
async def truncated_frame_never_sent_as_error(ctx: ClientContext) -> None:
    """A stream that ends in the middle of a frame is never answered with ERROR TRUNCATED_FRAME."""
    link = await ctx.welcomed()
    mark = link.mark()
    whole = encode(Notice(text="kit: this frame is cut short by the end of the stream"))
    await link.send_raw(whole[:len(whole) // 2], note="the first half of a NOTICE")
    link.half_close()
    await link.silent_since(
        mark, req="CP-ERR-7", after="a stream that ended in the middle of a frame",
        ignore=lambda f: not (isinstance(f.message, Error)
                              and f.message.code == ErrorCode.TRUNCATED_FRAME))
