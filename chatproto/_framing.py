"""Incremental frame splitting: TCP delivers a byte stream, not messages.

One ``recv`` may hold half a frame, or three frames and a bit; the decoder
keeps what it was given and hands out whole frames as they complete. It reads a
frame's length before anything else and refuses one above its limit at once,
so a peer cannot make it buffer more than one frame (spec: CP-FRAME-3).
"""

from __future__ import annotations

from dataclasses import dataclass

from chatproto._errors import ErrorCode, RemoteProtocolError
from chatproto._header import (
    HEADER_SIZE,
    HEADER_STRUCT,
    LENGTH_FIELD_SIZE,
    LENGTH_STRUCT,
    MIN_FRAME_LENGTH,
)
from chatproto._header import MAX_FRAME_LENGTH as MAX_FRAME_LENGTH
from chatproto._header import PRE_WELCOME_FRAME_LENGTH as PRE_WELCOME_FRAME_LENGTH


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One whole frame inside the decoder's buffer: header fields and body bounds."""

    type_code: int
    request_id: int
    start: int
    end: int


class FrameDecoder:
    """Splits a byte stream into frames, at most ``max_length`` long each."""

    def __init__(self, max_length: int = MAX_FRAME_LENGTH) -> None:
        self.max_length = max_length
        self.buffer = bytearray()
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Octets received but not yet handed out as frames."""
        return len(self.buffer) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        # Drop the frames already handed out before growing the buffer, so it
        # never holds more than the unread tail plus the new data.
        if self._pos:
            del self.buffer[: self._pos]
            self._pos = 0
        self.buffer += data

    def next_frame(self) -> RawFrame | None:
        """The next whole frame, or None until more data arrives.

        The frame's body is ``buffer[start:end]``, valid until the next ``feed``.
        Raises RemoteProtocolError (fatal) for a length that breaks framing.
        """
        pos = self._pos
        available = len(self.buffer) - pos
        if available < LENGTH_FIELD_SIZE:
            return None
        (length,) = LENGTH_STRUCT.unpack_from(self.buffer, pos)
        if length > self.max_length:
            raise RemoteProtocolError(
                ErrorCode.FRAME_TOO_LARGE,
                f"length {length} exceeds the limit of {self.max_length}",
            )
        if length < MIN_FRAME_LENGTH:
            raise RemoteProtocolError(
                ErrorCode.MALFORMED_FRAME,
                f"length {length} is below the minimum of {MIN_FRAME_LENGTH}",
            )
        if available < LENGTH_FIELD_SIZE + length:
            return None
        _, type_code, request_id = HEADER_STRUCT.unpack_from(self.buffer, pos)
        end = pos + LENGTH_FIELD_SIZE + length
        self._pos = end
        return RawFrame(type_code, request_id, pos + HEADER_SIZE, end)

    def check_eof(self) -> None:
        """Call at end of stream: raises TRUNCATED_FRAME if a frame was cut short."""
        if self.buffered:
            raise RemoteProtocolError(
                ErrorCode.TRUNCATED_FRAME,
                f"stream ended with {self.buffered} octets of an incomplete frame",
            )
