"""Message bodies built byte by byte, with the spec's wire kinds (``str8``, ``str16``, ...).

The validating message classes cannot express most of what the framing and
error cases send; these encodings can, and ``conformance.wire.frame_bytes``
frames them.
"""

from __future__ import annotations

from chatproto import Message
from conformance.server_side import KIT_CLIENT_NAME

BAD_UTF8 = {
    "overlong '/' (C0 AF)": b"ab\xc0\xafcd",
    "overlong 3-byte NUL (E0 80 80)": b"x\xe0\x80\x80y",
    "encoded high surrogate U+D800 (ED A0 80)": b"x\xed\xa0\x80y",
    "encoded low surrogate U+DFFF (ED BF BF)": b"x\xed\xbf\xbfy",
    "code point above U+10FFFF (F4 90 80 80)": b"x\xf4\x90\x80\x80y",
    "5-byte form (F8 88 80 80 80)": b"x\xf8\x88\x80\x80\x80y",
    "lone continuation byte (80)": b"x\x80y",
    "sequence cut short (E2 82)": b"x\xe2\x82",
    "byte FF": b"x\xffy",
}
"""Byte strings that are not well-formed UTF-8 (RFC 3629), each with what is wrong."""


def u8(value: int) -> bytes:
    return value.to_bytes(1, "big")


def u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def str8(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return u8(len(raw)) + raw


def str16(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return len(raw).to_bytes(2, "big") + raw


def hello_body(nick: bytes | str, *, password: bytes | str = b"",
               versions: tuple[int, int] = (1, 1), client_name: bytes | str = KIT_CLIENT_NAME,
               capabilities: tuple[str, ...] = ()) -> bytes:
    caps = u8(len(capabilities)) + b"".join(str8(c) for c in capabilities)
    return (u8(versions[0]) + u8(versions[1]) + str8(nick) + str8(password) + str8(client_name)
            + caps)


def unchecked(cls: type[Message], request_id: int, **fields: object) -> Message:
    """A message of ``cls`` built without the schema's checks: the kit may break them."""
    defaults = {name: info.default for name, info in cls.model_fields.items()
                if not info.is_required()}
    return cls.model_construct(**{**defaults, **fields, "request_id": request_id})
