"""The construct schema, derived from the message declarations, and its codec.

``FRAME_HEADER`` and ``BODY_STRUCTS`` are the wire format of spec v1 written in
construct. ``construct_encode`` / ``construct_decode`` run them through
construct's interpreter and pydantic's validation: slow, but the reference
against which the generated fast codec is proven byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import construct as cs
from pydantic import ValidationError

from chatproto._errors import ErrorCode, LocalProtocolError, RemoteProtocolError, utf8_fault
from chatproto._fields import FieldError, FieldType

# The header half of the schema lives in _header; these names stay importable here.
from chatproto._header import FRAME_HEADER as FRAME_HEADER
from chatproto._header import HEADER_FORMAT as HEADER_FORMAT
from chatproto._header import HEADER_SIZE as HEADER_SIZE
from chatproto._header import HEADER_STRUCT as HEADER_STRUCT
from chatproto._header import LENGTH_FIELD_SIZE as LENGTH_FIELD_SIZE
from chatproto._header import MIN_FRAME_LENGTH as MIN_FRAME_LENGTH
from chatproto.messages import MESSAGE_TYPES, Message


@dataclass(frozen=True, slots=True)
class BodyField:
    """One body field of a message type, in wire order."""

    name: str
    field_type: FieldType
    description: str


def body_fields(cls: type[Message]) -> tuple[BodyField, ...]:
    """The body fields of a message type, in wire order (``request_id`` is the header's)."""
    out = []
    for name, info in cls.model_fields.items():
        if name == "request_id":
            continue
        field_types = [meta for meta in info.metadata if isinstance(meta, FieldType)]
        if len(field_types) != 1:
            raise TypeError(f"{cls.__name__}.{name} needs exactly one chatproto field type")
        out.append(BodyField(name, field_types[0], info.description or ""))
    return tuple(out)


BODY_FIELDS: dict[int, tuple[BodyField, ...]] = {
    code: body_fields(cls) for code, cls in MESSAGE_TYPES.items()
}

BODY_STRUCTS: dict[int, cs.Struct] = {
    code: cs.Struct(*(field.name / field.field_type.wire.subcon for field in fields))
    for code, fields in BODY_FIELDS.items()
}
"""The construct body schema of every message type, by type code."""

_STRICT_BODY_STRUCTS: dict[int, cs.Construct] = {
    code: cs.FocusedSeq("body", "body" / struct, cs.Terminated)
    for code, struct in BODY_STRUCTS.items()
}
"""The same, refusing trailing octets after the last field."""


def error_code_of(exc: ValidationError) -> ErrorCode:
    """The spec's error code for a failed model validation (first error wins)."""
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            return cause.code
    return ErrorCode.INVALID_FIELD


def construct_encode(message: Message) -> bytes:
    """Encode one frame through construct's interpreter."""
    code = type(message).TYPE
    values = {field.name: getattr(message, field.name) for field in BODY_FIELDS[code]}
    try:
        body = BODY_STRUCTS[code].build(values)
    except (cs.ConstructError, UnicodeError) as exc:
        raise LocalProtocolError(ErrorCode.INVALID_FIELD, str(exc)) from exc
    header = FRAME_HEADER.build(
        {"length": MIN_FRAME_LENGTH + len(body), "type": code, "request_id": message.request_id}
    )
    return bytes(header + body)


def construct_decode(frame: bytes) -> Message:
    """Decode one whole frame through construct's interpreter and pydantic.

    Raises RemoteProtocolError with the code the spec assigns to the breach.
    """
    if len(frame) < HEADER_SIZE:
        raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, "shorter than a frame header")
    header = FRAME_HEADER.parse(frame)
    request_id: int = header.request_id
    if header.length != len(frame) - LENGTH_FIELD_SIZE:
        raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, "length field does not match")
    cls = MESSAGE_TYPES.get(header.type)
    if cls is None:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"type {header.type:#06x}",
                                  request_id=request_id)
    body = frame[HEADER_SIZE:]
    try:
        parsed = _STRICT_BODY_STRUCTS[cls.TYPE].parse(body)
    except cs.StringError as exc:  # construct's wrapper around UnicodeDecodeError
        raise RemoteProtocolError(ErrorCode.INVALID_UTF8, utf8_fault(exc),
                                  request_id=request_id) from exc
    except cs.ConstructError as exc:
        raise RemoteProtocolError(ErrorCode.MALFORMED_MESSAGE, str(exc).splitlines()[0],
                                  request_id=request_id) from exc
    values: dict[str, Any] = {"request_id": request_id}
    for field in BODY_FIELDS[cls.TYPE]:
        value = parsed[field.name]
        values[field.name] = tuple(value) if isinstance(value, list) else value
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        raise RemoteProtocolError(error_code_of(exc), _first_message(exc),
                                  request_id=request_id) from exc


def _first_message(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', '')}"
