"""The facts every frame obeys, exported once by chatproto (issue 12, point 9)."""

from __future__ import annotations

import struct

import pytest

from chatproto import (
    HEADER_FORMAT,
    HEADER_SIZE,
    HEADER_STRUCT,
    LENGTH_FIELD_SIZE,
    MIN_FRAME_LENGTH,
    SEND_ROOM_OVERHEAD,
    ErrorCode,
    Limits,
    encode,
    error_name,
    known_error_code,
)
from chatproto.messages import Ping, SendRoom


def test_header_is_the_specs_ten_octets() -> None:
    assert HEADER_FORMAT == ">LHL"
    assert struct.calcsize(HEADER_FORMAT) == HEADER_SIZE == 10
    assert LENGTH_FIELD_SIZE == 4
    assert MIN_FRAME_LENGTH == 6
    frame = encode(Ping(request_id=7))
    assert HEADER_STRUCT.pack(len(frame) - LENGTH_FIELD_SIZE, Ping.TYPE, 7) == frame[:HEADER_SIZE]


@pytest.mark.parametrize(("room", "text"), [("#a", "x"), ("#" + "r" * 63, "é" * 100)])
def test_send_room_overhead_is_what_encode_adds(room: str, text: str) -> None:
    frame = encode(SendRoom(request_id=1, room=room, client_msg_id=9, text=text))
    payload = len(room.encode()) + len(text.encode())
    assert len(frame) - LENGTH_FIELD_SIZE == SEND_ROOM_OVERHEAD + payload


def test_limits_accept_a_send_room_that_exactly_fits() -> None:
    fits = Limits(max_frame_size=4096, max_room_name_length=5,
                  max_message_length=4096 - SEND_ROOM_OVERHEAD - 5)
    assert fits.max_message_length == 4074
    with pytest.raises(ValueError, match="max_frame_size must be at least 4097"):
        Limits(max_frame_size=4096, max_room_name_length=5, max_message_length=4075)


def test_error_name_falls_back_for_codes_the_spec_does_not_define() -> None:
    assert error_name(int(ErrorCode.INTERNAL_ERROR)) == "INTERNAL_ERROR"
    assert known_error_code(int(ErrorCode.NICK_IN_USE)) is ErrorCode.NICK_IN_USE
    unknown = max(ErrorCode) + 1
    assert known_error_code(unknown) is None
    assert error_name(unknown) == f"ERROR_{unknown}"
