"""Codec benchmark: frames per second for a typical room message, against raw struct.

Run: ``python bench/codec.py`` (add ``--quick`` for a short run). Both the fast
codec and the raw ``struct`` baseline are measured in the same run and reported
as a ratio, since this machine is shared and absolute figures drift.

The raw baseline packs and unpacks the same fields by hand into a tuple with no
validation at all: the floor any Python codec of this wire format stands on.
"""

from __future__ import annotations

import argparse
import struct
import sys
import timeit
from collections.abc import Callable

from chatproto import HEADER_STRUCT, _fastcodec, _schema
from chatproto.messages import Message, RoomMessage, SendRoom

TEXT = "Shall we meet at the usual place at six? I'll bring the slides."

SAMPLES: dict[str, Message] = {
    "SEND_ROOM (client -> server)": SendRoom(
        request_id=42, room="#general", client_msg_id=7, text=TEXT
    ),
    "ROOM_MESSAGE (server -> client)": RoomMessage(
        room="#general", seq=1234, msg_id=987654321, timestamp_ms=1_764_000_000_000,
        sender="alice", client_msg_id=7, history=False, text=TEXT,
    ),
}

_HDR = HEADER_STRUCT
_U8 = struct.Struct(">B")
_QB = struct.Struct(">QB")
_QH = struct.Struct(">QH")
_QQQB = struct.Struct(">QQQB")
_QBH = struct.Struct(">QBH")


def _str(buf: bytes, pos: int, size: int) -> tuple[str, int]:
    end = pos + size
    return str(buf[pos:end], "utf-8"), end


def raw_decode_send_room(frame: bytes) -> tuple[object, ...]:
    _, type_code, request_id = _HDR.unpack_from(frame, 0)
    room, pos = _str(frame, 11, frame[10])
    client_msg_id, size = _QH.unpack_from(frame, pos)
    text, pos = _str(frame, pos + 10, size)
    return (type_code, request_id, room, client_msg_id, text)


def raw_encode_send_room(values: tuple[object, ...]) -> bytes:
    _, request_id, room, client_msg_id, text = values
    room_b = room.encode()  # type: ignore[attr-defined]
    text_b = text.encode()  # type: ignore[attr-defined]
    return b"".join((
        _HDR.pack(6 + 1 + len(room_b) + 10 + len(text_b), 0x0301, request_id),
        _U8.pack(len(room_b)), room_b, _QH.pack(client_msg_id, len(text_b)), text_b,
    ))


def raw_decode_room_message(frame: bytes) -> tuple[object, ...]:
    _, type_code, request_id = _HDR.unpack_from(frame, 0)
    room, pos = _str(frame, 11, frame[10])
    seq, msg_id, timestamp_ms, size = _QQQB.unpack_from(frame, pos)
    sender, pos = _str(frame, pos + 25, size)
    client_msg_id, history, size = _QBH.unpack_from(frame, pos)
    text, pos = _str(frame, pos + 11, size)
    return (type_code, request_id, room, seq, msg_id, timestamp_ms, sender, client_msg_id,
            history, text)


def raw_encode_room_message(values: tuple[object, ...]) -> bytes:
    (_, request_id, room, seq, msg_id, timestamp_ms, sender, client_msg_id, history,
     text) = values
    room_b = room.encode()  # type: ignore[attr-defined]
    sender_b = sender.encode()  # type: ignore[attr-defined]
    text_b = text.encode()  # type: ignore[attr-defined]
    return b"".join((
        _HDR.pack(6 + 1 + len(room_b) + 25 + len(sender_b) + 11 + len(text_b), 0x0303,
                  request_id),
        _U8.pack(len(room_b)), room_b, _QQQB.pack(seq, msg_id, timestamp_ms, len(sender_b)),
        sender_b, _QBH.pack(client_msg_id, history, len(text_b)), text_b,
    ))


RawDecoder = Callable[[bytes], tuple[object, ...]]
RawEncoder = Callable[[tuple[object, ...]], bytes]
RAW: dict[str, tuple[RawDecoder, RawEncoder]] = {
    "SEND_ROOM (client -> server)": (raw_decode_send_room, raw_encode_send_room),
    "ROOM_MESSAGE (server -> client)": (raw_decode_room_message, raw_encode_room_message),
}


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Frames per second: the best of five timed runs (the least disturbed by noise)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * seconds / 0.2 / 5))
    best = min(timer.repeat(repeat=5, number=number))
    return number / best


def measure(label: str, message: Message, seconds: float, with_construct: bool) -> dict[str, float]:
    """Print the rows of one sample message; return its ratios (ours / raw)."""
    frame = _fastcodec.encode(message)
    raw_decode, raw_encode = RAW[label]
    as_tuple = raw_decode(frame)
    assert raw_encode(as_tuple) == frame, "raw baseline must produce the same bytes"
    assert _fastcodec.decode_frame(frame) == message
    rows = {
        "decode": (rate(lambda: _fastcodec.decode_frame(frame), seconds),
                   rate(lambda: raw_decode(frame), seconds)),
        "encode": (rate(lambda: _fastcodec.encode(message), seconds),
                   rate(lambda: raw_encode(as_tuple), seconds)),
    }
    ratios = {}
    for operation, (ours, raw) in rows.items():
        ratios[operation] = raw / ours
        print(f"{label:34} {operation:8} {ours:12,.0f} {raw:12,.0f} {raw / ours:6.2f}x")
    if with_construct:
        slow = {
            "decode": rate(lambda: _schema.construct_decode(frame), seconds / 3),
            "encode": rate(lambda: _schema.construct_encode(message), seconds / 3),
        }
        for operation, fps in slow.items():
            raw = rows[operation][1]
            print(f"{'  construct interpreter':34} {operation:8} {fps:12,.0f} {raw:12,.0f} "
                  f"{raw / fps:6.2f}x")
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 10 s in all)")
    parser.add_argument("--construct", action="store_true",
                        help="also time construct's interpreter (the slow reference codec)")
    args = parser.parse_args(argv)
    seconds = 0.3 if args.quick else 1.5
    print(f"{'message':34} {'operation':8} {'ours fps':>12} {'raw fps':>12} {'ratio':>7}")
    worst = {"decode": 0.0, "encode": 0.0}
    for label, message in SAMPLES.items():
        for operation, ratio in measure(label, message, seconds, args.construct).items():
            worst[operation] = max(worst[operation], ratio)
    print(f"worst ratio (ours / raw, lower is better): decode {worst['decode']:.2f}x "
          f"(target 4x), encode {worst['encode']:.2f}x (target 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
