"""Reading frames off a socket the way the spec defines them, tolerating faults.

The kit must see what a broken implementation sends rather than stop at the
first fault, so ``read_frame`` never raises on bad content: it returns the raw
frame with the decoding problem attached, and the case decides which
requirement that breaks. Decoding uses ``chatproto``'s schema (the message
declarations), never its state machine.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from chatproto import (
    HEADER_STRUCT,
    LENGTH_FIELD_SIZE,
    MESSAGE_TYPES,
    MIN_FRAME_LENGTH,
    ErrorCode,
    Message,
    RemoteProtocolError,
    decode_frame,
)


def length_at(data: bytes | bytearray, offset: int = 0) -> int:
    """The length field that starts at ``offset`` of ``data``."""
    return int.from_bytes(data[offset:offset + LENGTH_FIELD_SIZE], "big")


def length_field(length: int) -> bytes:
    """A length field alone, any value the field holds (valid or not)."""
    return length.to_bytes(LENGTH_FIELD_SIZE, "big")


@dataclass(frozen=True, slots=True)
class Received:
    """One frame as it arrived: raw bytes, header fields, and the message or the fault."""

    raw: bytes
    type_code: int
    request_id: int
    message: Message | None
    fault: str | None
    """Why the body could not be decoded (None when ``message`` is set)."""
    fault_code: ErrorCode | None = None
    """The spec's error code for the fault, when the decoder named one."""

    @property
    def name(self) -> str:
        cls = MESSAGE_TYPES.get(self.type_code)
        return cls.NAME if cls is not None else f"type {self.type_code:#06x}"


class FrameStreamError(Exception):
    """The byte stream cannot be split into frames any more (bad length, truncation)."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message)
        self.data = data


def frame_bytes(type_code: int, request_id: int, body: bytes = b"") -> bytes:
    """A frame with any header and body, valid or not: the kit's raw-bytes path."""
    return HEADER_STRUCT.pack(MIN_FRAME_LENGTH + len(body), type_code, request_id) + body


def decode(raw: bytes) -> Received:
    """Decode one whole frame (header included) without raising on bad content."""
    _, type_code, request_id = HEADER_STRUCT.unpack_from(raw)
    try:
        message = decode_frame(raw)
    except RemoteProtocolError as exc:
        return Received(raw, type_code, request_id, None, str(exc), exc.code)
    return Received(raw, type_code, request_id, message, None)


async def read_frame(reader: asyncio.StreamReader, max_length: int) -> Received | None:
    """The next frame, or None at a clean EOF between frames.

    Raises FrameStreamError when the length field is out of range (the stream
    cannot be resynchronised after that) or EOF cuts a frame short.
    """
    try:
        head = await reader.readexactly(LENGTH_FIELD_SIZE)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameStreamError(f"EOF after {len(exc.partial)} byte(s) of a length field",
                                   exc.partial) from None
        return None
    length = length_at(head)
    if length < MIN_FRAME_LENGTH:
        raise FrameStreamError(f"length field {length} is smaller than {MIN_FRAME_LENGTH}",
                               head)
    if length > max_length:
        raise FrameStreamError(f"length field {length} exceeds {max_length}", head)
    try:
        rest = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FrameStreamError(
            f"EOF after {len(exc.partial)} of the {length} bytes the length field announced",
            head + exc.partial) from None
    return decode(head + rest)
