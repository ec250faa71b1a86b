"""Test vectors for implementers in other languages, derived from the declarations.

Nothing here lists message types or their fields: the valid frames of
``messages.json`` come from the schema's ``messages`` and ``body_fields``,
with example values derived from each field's ``FieldType`` (``SAMPLES`` is the
one table, keyed by field type, never by message). Minimal and maximal values
are found by probing the field type's own check, so a changed constraint
changes the vectors. Every frame is built by the construct reference encoder
and must equal the fast codec's bytes, and must decode back to its fields.

The invalid frames of ``invalid.json`` are fed, one octet at a time, to a
``chatproto.Connection`` of the receiving role; the error each produces is
what the reference implementation does, and it must equal the error the case
was written for, so a schema or behaviour change fails the generator loudly.

``python -m chatproto_spec.specgen`` writes the files; tests/test_vectors.py checks
that the checked-in files equal a fresh ``build_vectors()``.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chatproto import _schema, names
from chatproto._connection import PROTOCOL_VERSION, Connection, FrameRejected
from chatproto._errors import ERROR_REGISTRY, ErrorCode, RemoteProtocolError
from chatproto._fields import (
    CAPABILITIES,
    FLAG,
    FRAME_LIMIT,
    LABEL,
    LEAVE_KIND,
    MAX_CAPABILITIES,
    MESSAGE_TEXT,
    MESSAGE_TEXT_MAX_BYTES,
    NICK,
    NOTICE_TEXT,
    OPTIONAL_NICK,
    OPTIONAL_PASSWORD,
    PAGE_SIZE,
    PASSWORD,
    ROOM,
    SHORT_TEXT,
    TOKEN,
    TOPIC,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    VERSION,
    FieldError,
    FieldType,
)
from chatproto._framing import MAX_FRAME_LENGTH, PRE_WELCOME_FRAME_LENGTH
from chatproto._schema import SCHEMA, Schema
from chatproto._state import State
from chatproto.messages import (
    Error,
    Hello,
    Limits,
    Message,
    Sender,
    Welcome,
)
from chatproto_spec.requirements import parse_requirements
from chatproto_spec.requirements import spec_dir as find_spec_dir

SPEC_VERSION = PROTOCOL_VERSION
GENERATED_BY = "python -m chatproto_spec.specgen"
VECTOR_FILES = ("messages.json", "invalid.json", "nickfold.json")

CASE_KINDS = ("typical", "minimal", "maximal", "non-ascii")
"""The cases of every message type in ``messages.json`` ("non-ascii" only where a
field accepts Unicode text)."""


class VectorError(AssertionError):
    """The reference implementation disagrees with what a vector was written for."""


# ------------------------------------------------------------------ samples


@dataclass(frozen=True, slots=True)
class Samples:
    """Example values for one field type.

    ``typical`` holds the value of the first field of this type in a message,
    then of the second, and so on (cycling). ``head`` + ``fill`` (cycled) make a
    string, bytes or list item of any requested length, for the minimal and
    maximal cases; the lengths themselves come from probing the type's check.
    """

    typical: tuple[Any, ...]
    head: str = ""
    fill: str = ""


_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_TEXT_FILL = "The quick brown fox jumps over the lazy dog. "

SAMPLES: dict[FieldType, Samples] = {
    UINT8: Samples((32,)),
    UINT16: Samples((502, 50)),
    UINT32: Samples((1000,)),
    UINT64: Samples((42, 9001)),
    FLAG: Samples((True,)),
    VERSION: Samples((1,)),
    PAGE_SIZE: Samples((50,)),
    FRAME_LIMIT: Samples((65536,)),
    LEAVE_KIND: Samples((2,)),
    NICK: Samples(("alice", "bob"), "A", _NAME_CHARS),
    OPTIONAL_NICK: Samples(("carol",), "C", _NAME_CHARS),
    ROOM: Samples(("#general",), "#", _NAME_CHARS),
    MESSAGE_TEXT: Samples(("Shall we meet at six?",), "", _TEXT_FILL),
    NOTICE_TEXT: Samples(("Welcome to the demo server.",), "", _TEXT_FILL),
    TOPIC: Samples(("Release planning, Friday 10:00",), "", _TEXT_FILL),
    SHORT_TEXT: Samples(("gone for lunch",), "", _TEXT_FILL),
    LABEL: Samples(("chatproto/0.1",), "", "chatproto-reference/1.0 "),
    PASSWORD: Samples(("correct horse battery staple",), "", "correct horse battery staple "),
    OPTIONAL_PASSWORD: Samples(("s3cret",), "", "s3cret "),
    TOKEN: Samples((b"\xbe\xef",), "", "".join(chr(i) for i in range(256))),
    CAPABILITIES: Samples((("example.org/typing", "x-batch"),), "x",
                          "abcdefghijklmnopqrstuvwxyz0123456789._/-"),
}
"""Example values per field type. A new field type needs a row here."""

FIELD_NAME_TYPICAL: dict[str, Any] = {
    "casemapping": names.CASEMAPPING,
    "timestamp_ms": 1767225600000,  # 2026-01-01T00:00:00Z in ms since the epoch
    "client_msg_id": 7,
}
"""Typical values for a field name whatever its type: fixed by the protocol
(``casemapping``), or of a meaning the type cannot carry (a u64 that counts
milliseconds since the epoch looks nothing like a u64 a client counts up from 1)."""

NON_ASCII_TEXTS = ("héllo wörld ✓ 日本語 🎉", "Grüße 👋🏽 ça va?")
"""Values of the "non-ascii" case, for every field whose type accepts them."""

TYPICAL_REQUEST_ID = 7

JSON_SAFE_INTEGER_MAX = 2**53 - 1
"""Above this, JSON numbers do not interoperate (RFC 8259 section 6): JavaScript's
``JSON.parse`` rounds them. A field whose wire can hold more is written as a string."""

INTEGER_SHAPES = frozenset({"uint", "enum"})
"""Wire shapes whose value is an integer (an enum's values are a subset of its range)."""
FIXED_SHAPES = INTEGER_SHAPES | {"bool"}
"""Wire shapes of a fixed size: no length prefix."""


def samples_for(field_type: FieldType) -> Samples:
    try:
        return SAMPLES[field_type]
    except KeyError:
        raise VectorError(
            f"no example values for field type {field_type.name!r}: "
            "add a row to chatproto_spec._vectors.SAMPLES"
        ) from None


def _make(samples: Samples, shape: str, length: int, offset: int = 0) -> Any:
    """A value of ``length`` octets (items for a list) built from head + fill."""
    if shape == "strlist":
        return tuple(_make(samples, "str", length, index) for index in range(offset))
    body_length = max(length - len(samples.head), 0)
    fill = samples.fill[offset % len(samples.fill):] + samples.fill[: offset % len(samples.fill)]
    text = (samples.head + (fill * (body_length // len(fill) + 1))[:body_length])[:length]
    if shape == "bytes":
        return text.encode("latin-1")
    assert len(text.encode("utf-8")) == length, "fill characters must be ASCII"
    return text


def _accepts(field_type: FieldType, value: Any) -> bool:
    try:
        field_type.validate(value)
    except FieldError:
        return False
    return True


def _interval(accepts: Callable[[int], bool], low: int, high: int, known: int) -> tuple[int, int]:
    """The bounds of the interval of accepted integers in ``low..high`` around ``known``."""
    if not accepts(known):
        raise VectorError(f"the example value {known} is not accepted")
    a, b = low, known
    while a < b:
        mid = (a + b) // 2
        if accepts(mid):
            b = mid
        else:
            a = mid + 1
    minimum = a
    a, b = known, high
    while a < b:
        mid = (a + b + 1) // 2
        if accepts(mid):
            a = mid
        else:
            b = mid - 1
    return minimum, a


@dataclass(frozen=True, slots=True)
class Extent:
    """What a field type accepts: an integer range, or a range of lengths."""

    minimum: int
    maximum: int
    item_minimum: int = 0
    item_maximum: int = 0
    """For a list: the range of each item's length (``minimum``/``maximum`` count items)."""


@cache
def field_extent(field_type: FieldType) -> Extent:
    """Probe the field type's check for the values it accepts (field types are frozen)."""
    samples = samples_for(field_type)
    wire = field_type.wire
    top = wire.max_prefix_value
    typical = samples.typical[0]
    if wire.shape in INTEGER_SHAPES:
        return Extent(*_interval(lambda v: _accepts(field_type, v), 0, top, typical))
    if wire.shape == "bool":
        return Extent(0, 1)
    if wire.shape in ("str", "bytes"):
        known = len(typical.encode("utf-8")) if isinstance(typical, str) else len(typical)
        return Extent(*_interval(
            lambda n: _accepts(field_type, _make(samples, wire.shape, n)), 0, top, known))
    if wire.shape == "strlist":
        item_low, item_high = _interval(
            lambda n: _accepts(field_type, (_make(samples, "str", n),)),
            0, top, len(typical[0].encode("utf-8")))
        count_low, count_high = _interval(
            lambda n: _accepts(field_type, _make(samples, "strlist", item_high, n)),
            0, top, len(typical))
        return Extent(count_low, count_high, item_low, item_high)
    raise VectorError(f"no vector values for wire shape {wire.shape!r}")


def field_value(field_type: FieldType, kind: str, occurrence: int = 0) -> Any:
    """The value of a field of this type in case ``kind`` (its ``occurrence``-th in a message)."""
    samples = samples_for(field_type)
    shape = field_type.wire.shape
    typical = samples.typical[occurrence % len(samples.typical)]
    if kind in ("typical", "non-ascii"):
        if kind == "non-ascii" and shape == "str":
            text = NON_ASCII_TEXTS[occurrence % len(NON_ASCII_TEXTS)]
            if _accepts(field_type, text):
                return text
        return typical
    extent = field_extent(field_type)
    if kind == "minimal":
        if shape in FIXED_SHAPES:
            return extent.minimum if shape in INTEGER_SHAPES else False
        if shape == "strlist":
            return _make(samples, shape, extent.item_minimum, extent.minimum)
        return _make(samples, shape, extent.minimum)
    if kind == "maximal":
        if shape in FIXED_SHAPES:
            return extent.maximum if shape in INTEGER_SHAPES else True
        if shape == "strlist":
            return _make(samples, shape, extent.item_maximum, extent.maximum)
        return _make(samples, shape, extent.maximum)
    raise ValueError(f"unknown case kind {kind!r}")


def accepts_unicode(field_type: FieldType) -> bool:
    return field_type.wire.shape == "str" and any(
        _accepts(field_type, text) for text in NON_ASCII_TEXTS
    )


# ------------------------------------------------------------ message cases


def _valid(cls: type[Message], values: Mapping[str, Any]) -> bool:
    try:
        cls.model_validate(dict(values))
    except (ValidationError, FieldError):
        return False
    return True


def _fit(cls: type[Message], wanted: dict[str, Any], kind: str) -> dict[str, Any]:
    """Values as close to ``wanted`` as whole-message rules (model validators) allow.

    Each field's value is valid on its own; a rule across fields (such as
    WELCOME's idle_timeout_s > keepalive_interval_s) may still refuse the set.
    Then the fields that declare a default take it, and, for the minimal and
    maximal cases, each of them is moved back towards its wanted extreme as far
    as the rules allow.
    """
    if _valid(cls, wanted):
        return wanted
    defaulted = [
        name for name, info in cls.model_fields.items()
        if name != "request_id" and not info.is_required()
    ]
    values = dict(wanted)
    for name in defaulted:
        values[name] = cls.model_fields[name].default
    if not _valid(cls, values):
        raise VectorError(f"{cls.NAME}: no valid {kind} values, even with the defaults")
    if kind == "typical":
        return values
    changed = True
    while changed:  # until no field can move further (each pass only moves towards wanted)
        changed = False
        for name in defaulted:
            start, target = values[name], wanted[name]
            if start == target:
                continue
            if _valid(cls, values | {name: target}):
                moved = target
            elif isinstance(target, int) and not isinstance(target, bool):
                low, high = sorted((start, target))

                def accepts(value: int, name: str = name) -> bool:
                    return _valid(cls, values | {name: value})

                found = _interval(accepts, low, high, start)
                moved = found[1] if target > start else found[0]
            else:
                continue
            if moved != start:
                values[name] = moved
                changed = True
    return values


def _request_id_type() -> FieldType:
    (field_type,) = [meta for meta in Message.model_fields["request_id"].metadata
                     if isinstance(meta, FieldType)]
    return field_type


def request_id_for(cls: type[Message], kind: str, schema: Schema = SCHEMA) -> int:
    """The header request_id of a case: nonzero for a client's request."""
    if kind == "maximal":
        return field_extent(_request_id_type()).maximum
    is_client_request = cls.SENDER is not Sender.SERVER and cls.FINAL_RESPONSE is not None
    answers = {c.FINAL_RESPONSE for c in schema.messages.values() if c.FINAL_RESPONSE}
    # WELCOME, OK, BYE only ever answer a request; PONG may echo a server PING's 0.
    is_answer_only = cls.SENDER is Sender.SERVER and cls in answers
    if kind == "minimal":
        return 1 if is_client_request or is_answer_only else 0
    if is_client_request or is_answer_only or cls.SENDER is Sender.BOTH:
        return TYPICAL_REQUEST_ID
    return 0


def case_kinds(cls: type[Message], schema: Schema = SCHEMA) -> tuple[str, ...]:
    """The cases a message type gets: non-ascii only if a field takes Unicode text."""
    fields = schema.body_fields[cls.TYPE]
    if any(accepts_unicode(f.field_type) for f in fields):
        return CASE_KINDS
    return tuple(kind for kind in CASE_KINDS if kind != "non-ascii")


@dataclass(frozen=True, slots=True)
class MessageCase:
    """One valid frame: the message, its field values and the exact bytes."""

    kind: str
    message: Message
    frame: bytes

    @property
    def values(self) -> dict[str, Any]:
        """The body field values, in wire order (every model field but the header's)."""
        return {name: getattr(self.message, name)
                for name in type(self.message).model_fields if name != "request_id"}


def message_case(cls: type[Message], kind: str, schema: Schema = SCHEMA) -> MessageCase:
    """Build, encode (construct and fast codec of ``schema``) and round-trip one case."""
    fields = schema.body_fields[cls.TYPE]
    occurrences: dict[FieldType, int] = {}
    wanted: dict[str, Any] = {"request_id": request_id_for(cls, kind, schema)}
    reference = Limits().model_dump()
    for body_field in fields:
        field_type = body_field.field_type
        index = occurrences.get(field_type, 0)
        occurrences[field_type] = index + 1
        if kind == "typical" and body_field.name in FIELD_NAME_TYPICAL:
            wanted[body_field.name] = FIELD_NAME_TYPICAL[body_field.name]
        elif kind == "typical" and issubclass(cls, Limits) and body_field.name in reference:
            # A typical WELCOME advertises the reference server's limits.
            wanted[body_field.name] = reference[body_field.name]
        else:
            wanted[body_field.name] = field_value(field_type, kind, index)
    message = cls.model_validate(_fit(cls, wanted, kind))
    frame = schema.construct_encode(message)
    fast = schema.encode(message)
    if fast != frame:
        raise VectorError(f"{cls.NAME} {kind}: fast codec {fast.hex()} != construct {frame.hex()}")
    if len(frame) - _schema.LENGTH_FIELD_SIZE > MAX_FRAME_LENGTH:
        raise VectorError(f"{cls.NAME} {kind}: frame longer than {MAX_FRAME_LENGTH}")
    for decode in (schema.construct_decode, schema.decode_frame):
        decoded = decode(frame)
        if decoded != message or type(decoded) is not cls:
            raise VectorError(f"{cls.NAME} {kind}: {decode.__name__} does not round-trip")
    return MessageCase(kind, message, frame)


def message_cases(cls: type[Message], schema: Schema = SCHEMA) -> list[MessageCase]:
    return [message_case(cls, kind, schema) for kind in case_kinds(cls, schema)]


def as_decimal_string(field_type: FieldType) -> bool:
    """Whether the vectors write this field's values as decimal strings (every u64)."""
    wire = field_type.wire
    return wire.shape in INTEGER_SHAPES and wire.max_prefix_value > JSON_SAFE_INTEGER_MAX


def to_json_value(field_type: FieldType, value: Any) -> Any:
    """JSON form of a field value: bytes as hex, tuples as lists, u64 as a decimal string."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, tuple | list):
        return list(value)
    if as_decimal_string(field_type):
        return str(value)
    return value


def messages_vectors(schema: Schema = SCHEMA) -> dict[str, Any]:
    messages = []
    for code, cls in schema.messages.items():
        fields = schema.body_fields[code]
        messages.append({
            "name": cls.NAME,
            "type": code,
            "type_hex": f"0x{code:04X}",
            "sender": cls.SENDER.value,
            "final_response": cls.FINAL_RESPONSE.NAME if cls.FINAL_RESPONSE else None,
            "fields": [
                {"name": f.name, "type": f.field_type.name, "wire": f.field_type.wire.name,
                 "constraint": f.field_type.constraint}
                for f in fields
            ],
            "cases": [
                {
                    "case": case.kind,
                    "request_id": case.message.request_id,
                    "length": len(case.frame) - _schema.LENGTH_FIELD_SIZE,
                    "fields": {f.name: to_json_value(f.field_type, case.values[f.name])
                               for f in fields},
                    "hex": case.frame.hex(),
                }
                for case in message_cases(cls, schema)
            ],
        })
    return {
        "header": _header(
            "Valid frames of every message type. Each case gives the header's request_id, "
            "the field values (bytes as hex, lists as arrays) and the whole frame in hex. "
            "The value of every u64 field (its 'wire' is 'u64') is a JSON string of decimal "
            "digits, such as \"18446744073709551615\": JSON numbers above 2^53 do not "
            "interoperate (RFC 8259 section 6; JavaScript's JSON.parse rounds them), so "
            "parse it as an unsigned 64-bit integer. Every other integer is a JSON number. "
            "Encoding the fields must give exactly these bytes, and decoding the bytes "
            "must give exactly these fields. Cases: 'typical' (ordinary values), "
            "'minimal' (the smallest values, shortest strings and fewest items each "
            "field's constraint allows), 'maximal' (the largest values and longest "
            "strings the constraint and wire allow; a server's advertised limits may "
            "be smaller, so some maximal requests are refused by a server with the "
            "reference limits), 'non-ascii' (Unicode text where a field allows it)."
        ),
        "messages": messages,
    }


def _header(description: str) -> dict[str, Any]:
    return {"spec_version": SPEC_VERSION, "generated_by": GENERATED_BY,
            "description": description}


# ------------------------------------------------------------ raw frames


def raw_frame(
    cls: type[Message],
    overrides: Mapping[str, Any] | None = None,
    *,
    raw: Mapping[str, bytes] | None = None,
    request_id: int | None = None,
    type_code: int | None = None,
    trailing: bytes = b"",
    length: int | None = None,
    schema: Schema = SCHEMA,
) -> bytes:
    """A frame built field by field from the typical case, bypassing validation.

    ``overrides`` replaces field values (construct still encodes them, so any
    string goes); ``raw`` replaces a field's encoded octets entirely.
    """
    typical = message_case(cls, "typical", schema)
    values = typical.values | dict(overrides or {})
    parts = []
    for body_field in schema.body_fields[cls.TYPE]:
        if raw and body_field.name in raw:
            parts.append(raw[body_field.name])
        else:
            parts.append(body_field.field_type.wire.subcon.build(values[body_field.name]))
    body = b"".join(parts) + trailing
    header = _schema.FRAME_HEADER.build({
        "length": _schema.MIN_FRAME_LENGTH + len(body) if length is None else length,
        "type": cls.TYPE if type_code is None else type_code,
        "request_id": typical.message.request_id if request_id is None else request_id,
    })
    return bytes(header) + body


def raw_string(field_type: FieldType, payload: bytes) -> bytes:
    """A string field's octets with arbitrary (possibly invalid UTF-8) content."""
    return struct.pack(field_type.wire.prefix_format, len(payload)) + payload


def header_only(length: int, type_code: int = 0, request_id: int = 0) -> bytes:
    return bytes(_schema.FRAME_HEADER.build(
        {"length": length, "type": type_code, "request_id": request_id}))


# ----------------------------------------------------------- invalid frames


@dataclass(frozen=True, slots=True)
class InvalidCase:
    """A frame (or octets) that a receiver in ``state`` must refuse with ``expect``."""

    id: str
    description: str
    receiver: Sender
    state: State
    data: bytes
    expect: ErrorCode | None
    """None: the receiver silently ignores the frame."""
    eof: bool = False
    """The stream ends right after ``data``."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the reference Connection did with an invalid case."""

    code: ErrorCode | None
    fatal: bool
    request_id: int
    detected_after: int | str
    """Octets fed when the error surfaced, or "eof"."""
    layer: str
    """"framing", "codec" (the body decoder alone finds it) or "connection"."""


def ready_handshake(schema: Schema = SCHEMA) -> tuple[Hello, Welcome]:
    """The HELLO and WELCOME that bring an invalid case's connection to READY.

    The typical HELLO and WELCOME of a guest: the password is empty and
    ``logged_in`` false, since a password for a nick nobody registered is
    refused (CP-ACCT-5): a real server does not reach READY on the typical HELLO.
    """
    def as_guest(case: MessageCase, **guest: Any) -> Message:
        return type(case.message).model_validate(
            case.values | guest | {"request_id": case.message.request_id})

    hello = as_guest(message_case(Hello, "typical", schema), password="")
    welcome = as_guest(message_case(Welcome, "typical", schema), logged_in=False)
    if not isinstance(hello, Hello) or not isinstance(welcome, Welcome):
        raise VectorError("the HELLO and WELCOME cases are not a Hello and a Welcome")
    return hello, welcome


def connection_in(receiver: Sender, state: State, schema: Schema = SCHEMA) -> Connection:
    """A reference Connection of role ``receiver`` on ``schema``, driven into ``state``."""
    hello, welcome = ready_handshake(schema)
    conn = Connection(receiver, welcome.limits if receiver is Sender.SERVER else None,
                      schema=schema)
    if state is State.AWAIT_HELLO:
        return conn
    if state is not State.READY:
        raise ValueError(f"no vectors start in state {state}")
    if receiver is Sender.SERVER:
        conn.receive_data(schema.encode(hello))
        events = list(conn.events())
        expected: Message = hello
        conn.send(welcome)
    else:
        conn.send(hello)
        conn.receive_data(schema.encode(welcome))
        events = list(conn.events())
        expected = welcome
    if events != [expected] or conn.state is not State.READY:
        raise VectorError(f"the typical handshake does not reach READY for a {receiver}: "
                          f"{events!r}")
    return conn


def run_invalid(case: InvalidCase, schema: Schema = SCHEMA) -> Outcome | None:
    """Feed the case octet by octet to a fresh Connection; None if nothing was reported."""
    conn = connection_in(case.receiver, case.state, schema)
    data = case.data
    for index in range(len(data)):
        try:
            conn.receive_data(data[index:index + 1])
            events = list(conn.events())
        except RemoteProtocolError as exc:
            layer = "framing" if index + 1 < len(data) or _is_header_fault(data) else \
                _layer(case, exc.code, schema)
            return Outcome(exc.code, True, exc.request_id, index + 1, layer)
        for event in events:
            if isinstance(event, FrameRejected):
                return Outcome(event.code, False, event.request_id, index + 1,
                               _layer(case, event.code, schema))
            if isinstance(event, Message):
                raise VectorError(f"{case.id}: the frame was accepted as {event!r}")
    if case.eof:
        try:
            conn.receive_data(b"")
            list(conn.events())
        except RemoteProtocolError as exc:
            return Outcome(exc.code, True, exc.request_id, "eof", "framing")
    return None


def _is_header_fault(data: bytes) -> bool:
    if len(data) < _schema.LENGTH_FIELD_SIZE:
        return True
    length = int.from_bytes(data[: _schema.LENGTH_FIELD_SIZE], "big")
    return length < _schema.MIN_FRAME_LENGTH or length != len(data) - _schema.LENGTH_FIELD_SIZE


def codec_error(frame: bytes, schema: Schema = SCHEMA) -> ErrorCode | None:
    """The error the fast codec alone reports for a whole frame, or None if it decodes."""
    try:
        schema.decode_frame(frame)
    except RemoteProtocolError as exc:
        return exc.code
    return None


def _layer(case: InvalidCase, code: ErrorCode, schema: Schema) -> str:
    if _is_header_fault(case.data):
        return "framing"
    # The connection checks the state (from the header alone) before the body.
    return "codec" if codec_error(case.data, schema) is code else "connection"


def invalid_cases(schema: Schema = SCHEMA) -> list[InvalidCase]:
    """The invalid frames, each with the error it was written to produce."""
    frame = partial(raw_frame, schema=schema)  # of this schema's fields
    send_room = schema.message_class("SEND_ROOM")
    nick = schema.message_class("NICK")
    join = schema.message_class("JOIN")
    list_rooms = schema.message_class("LIST_ROOMS")
    register = schema.message_class("REGISTER")
    set_topic = schema.message_class("SET_TOPIC")
    room_message = schema.message_class("ROOM_MESSAGE")
    member_left = schema.message_class("MEMBER_LEFT")
    ok = schema.message_class("OK")

    def text_frame(text: str) -> bytes:
        return frame(send_room, {"text": text})

    limits = Limits()
    server, client = Sender.SERVER, Sender.CLIENT
    ready, await_hello = State.READY, State.AWAIT_HELLO
    typical_send_room = message_case(send_room, "typical", schema).frame
    server_limit = limits.max_frame_size
    unknown_type = max(code for code in schema.messages if code < 0x8000) + 1
    utf8 = [
        ("overlong", "an overlong encoding of '/' (C0 AF)", b"ok \xc0\xaf"),
        ("lone-continuation", "a lone continuation octet (80)", b"ok \x80"),
        ("surrogate", "an encoded surrogate U+D800 (ED A0 80)", b"ok \xed\xa0\x80"),
        ("above-max", "a code point above U+10FFFF (F4 90 80 80)", b"ok \xf4\x90\x80\x80"),
        ("truncated-sequence", "a sequence cut short at the end (E2 9C)", b"ok \xe2\x9c"),
    ]
    cases = [
        InvalidCase("length-above-limit-server",
                    f"length 0x{server_limit + 1:08X}, one above the server's advertised "
                    f"max_frame_size ({server_limit}); refused after the 4 length octets, "
                    "before any body arrives", server, ready,
                    (server_limit + 1).to_bytes(4, "big"), ErrorCode.FRAME_TOO_LARGE),
        InvalidCase("length-above-limit-client",
                    f"length 0x{MAX_FRAME_LENGTH + 1:08X}, one above the {MAX_FRAME_LENGTH} "
                    "every client accepts; refused after the 4 length octets", client, ready,
                    (MAX_FRAME_LENGTH + 1).to_bytes(4, "big"), ErrorCode.FRAME_TOO_LARGE),
        InvalidCase("length-above-pre-welcome-limit",
                    f"length 0x{PRE_WELCOME_FRAME_LENGTH + 1:08X}, one above the "
                    f"{PRE_WELCOME_FRAME_LENGTH} a server accepts before WELCOME; refused after "
                    "the 4 length octets", server, await_hello,
                    (PRE_WELCOME_FRAME_LENGTH + 1).to_bytes(4, "big"), ErrorCode.FRAME_TOO_LARGE),
        InvalidCase("length-ffffffff",
                    "length 0xFFFFFFFF; refused after the 4 length octets, never buffered",
                    server, await_hello, b"\xff\xff\xff\xff", ErrorCode.FRAME_TOO_LARGE),
        InvalidCase("length-5", f"length 5, below the minimum of {_schema.MIN_FRAME_LENGTH}: "
                    "framing is lost", server, ready,
                    header_only(5, list_rooms.TYPE, 1)[:9], ErrorCode.MALFORMED_FRAME),
        InvalidCase("length-0", "length 0", client, ready, b"\x00\x00\x00\x00",
                    ErrorCode.MALFORMED_FRAME),
        InvalidCase("eof-mid-frame",
                    "a SEND_ROOM missing its last octet, then end of stream",
                    server, ready, typical_send_room[:-1], ErrorCode.TRUNCATED_FRAME, eof=True),
        InvalidCase("eof-mid-header", "3 octets of a length field, then end of stream",
                    server, ready, typical_send_room[:3], ErrorCode.TRUNCATED_FRAME, eof=True),
        InvalidCase("body-too-short",
                    "NICK whose str8 length says 5 octets but only 3 follow (the frame's "
                    "length is consistent: the body ends early)", server, ready,
                    frame(nick, raw={"nick": b"\x05abc"}), ErrorCode.MALFORMED_MESSAGE),
        InvalidCase("trailing-octet-empty-body",
                    "LIST_ROOMS (no fields) with one extra octet", server, ready,
                    frame(list_rooms, trailing=b"\x00"), ErrorCode.MALFORMED_MESSAGE),
        InvalidCase("trailing-octet", "SEND_ROOM with one extra octet after the text",
                    server, ready, frame(send_room, trailing=b"!"),
                    ErrorCode.MALFORMED_MESSAGE),
        InvalidCase("bool-2", "JOIN whose resume bool is the octet 2", server, ready,
                    frame(join, raw={"resume": b"\x02"}), ErrorCode.MALFORMED_MESSAGE),
        InvalidCase("bool-2-client", "ROOM_MESSAGE whose history bool is the octet 2",
                    client, ready, frame(room_message, raw={"history": b"\x02"}),
                    ErrorCode.MALFORMED_MESSAGE),
        InvalidCase("enum-undefined",
                    f"MEMBER_LEFT whose kind is {max(LEAVE_KIND.wire.enum_values) + 1}, "
                    "a value the enumeration does not define", client, ready,
                    frame(member_left, raw={"kind": struct.pack(
                        LEAVE_KIND.wire.prefix_format, max(LEAVE_KIND.wire.enum_values) + 1)}),
                    ErrorCode.MALFORMED_MESSAGE),
        InvalidCase("strlist-short",
                    "HELLO whose capability list announces 3 items but holds 1",
                    server, await_hello,
                    frame(Hello, raw={"capabilities": b"\x03\x01a"}),
                    ErrorCode.MALFORMED_MESSAGE),
        *[
            InvalidCase(f"utf8-{slug}", f"SEND_ROOM text with {what}", server, ready,
                        frame(send_room, raw={"text": raw_string(MESSAGE_TEXT, payload)}),
                        ErrorCode.INVALID_UTF8)
            for slug, what, payload in utf8
        ],
        InvalidCase("utf8-in-room", "JOIN whose room is '#' then a lone continuation octet",
                    server, ready, frame(join, raw={"room": raw_string(ROOM, b"#\x80")}),
                    ErrorCode.INVALID_UTF8),
        InvalidCase("nick-cyrillic",
                    "NICK '\u0430lice' whose first letter is CYRILLIC SMALL LETTER A (U+0430)",
                    server, ready, frame(nick, {"nick": "\u0430lice"}),
                    ErrorCode.INVALID_NICK),
        InvalidCase("hello-nick-cyrillic", "HELLO with nick '\u0430lice' (Cyrillic \u0430, U+0430)",
                    server, await_hello, frame(Hello, {"nick": "\u0430lice"}),
                    ErrorCode.INVALID_NICK),
        InvalidCase("nick-digit-first", "NICK '1alice' (starts with a digit)", server, ready,
                    frame(nick, {"nick": "1alice"}), ErrorCode.INVALID_NICK),
        InvalidCase("nick-empty", "NICK with an empty nick", server, ready,
                    frame(nick, {"nick": ""}), ErrorCode.INVALID_NICK),
        InvalidCase("nick-space", "NICK 'al ice' (contains a space)", server, ready,
                    frame(nick, {"nick": "al ice"}), ErrorCode.INVALID_NICK),
        InvalidCase("nick-too-long", f"NICK of {names.NICK_MAX_BYTES + 1} octets", server,
                    ready, frame(nick, {"nick": "a" * (names.NICK_MAX_BYTES + 1)}),
                    ErrorCode.INVALID_NICK),
        InvalidCase("room-without-hash", "JOIN 'general' (no leading '#')", server, ready,
                    frame(join, {"room": "general"}), ErrorCode.INVALID_ROOM_NAME),
        InvalidCase("room-hash-only", "JOIN '#' (no name after '#')", server, ready,
                    frame(join, {"room": "#"}), ErrorCode.INVALID_ROOM_NAME),
        InvalidCase("room-too-long", f"JOIN with a room name of {names.ROOM_NAME_MAX_BYTES + 1} "
                    "octets", server, ready,
                    frame(join, {"room": "#" + "a" * names.ROOM_NAME_MAX_BYTES}),
                    ErrorCode.INVALID_ROOM_NAME),
        InvalidCase("text-esc", "SEND_ROOM text with ESC (U+001B), an ANSI escape sequence",
                    server, ready, text_frame("\x1b[2Jhello"), ErrorCode.INVALID_FIELD),
        InvalidCase("text-cr", "SEND_ROOM text with CR (U+000D)", server, ready,
                    text_frame("hello\rbye"), ErrorCode.INVALID_FIELD),
        InvalidCase("text-del", "SEND_ROOM text with DEL (U+007F)", server, ready,
                    text_frame("hello\x7f"), ErrorCode.INVALID_FIELD),
        InvalidCase("text-c1", "SEND_ROOM text with the C1 control CSI (U+009B)", server,
                    ready, text_frame("hello\x9b2J"), ErrorCode.INVALID_FIELD),
        InvalidCase("text-nul", "SEND_ROOM text with NUL (U+0000)", server, ready,
                    text_frame("hel\x00lo"), ErrorCode.INVALID_FIELD),
        InvalidCase("text-empty", "SEND_ROOM with an empty text", server, ready,
                    text_frame(""), ErrorCode.INVALID_FIELD),
        InvalidCase("text-above-limit",
                    f"SEND_ROOM text of {limits.max_message_length + 1} octets, one above the "
                    "reference max_message_length", server, ready,
                    text_frame("a" * (limits.max_message_length + 1)),
                    ErrorCode.MESSAGE_TOO_LONG),
        InvalidCase("text-above-protocol-cap",
                    f"SEND_ROOM text of {MESSAGE_TEXT_MAX_BYTES + 1} octets, one above the "
                    "protocol's cap on any max_message_length (CP-MSG-2)", server, ready,
                    text_frame("a" * (MESSAGE_TEXT_MAX_BYTES + 1)),
                    ErrorCode.MESSAGE_TOO_LONG),
        InvalidCase("topic-esc", "SET_TOPIC topic with ESC (U+001B)", server, ready,
                    frame(set_topic, {"topic": "\x1b]0;pwned\x07"}), ErrorCode.INVALID_FIELD),
        InvalidCase("password-nul", "REGISTER password containing NUL", server, ready,
                    frame(register, {"password": "pass\x00word"}), ErrorCode.INVALID_FIELD),
        InvalidCase("capability-uppercase", "HELLO offering the capability 'Typing'",
                    server, await_hello, frame(Hello, {"capabilities": ("Typing",)}),
                    ErrorCode.INVALID_FIELD),
        InvalidCase("capabilities-too-many",
                    f"HELLO offering {MAX_CAPABILITIES + 1} capabilities", server, await_hello,
                    frame(Hello, {"capabilities": tuple(
                        f"cap{i}" for i in range(MAX_CAPABILITIES + 1))}),
                    ErrorCode.INVALID_FIELD),
        InvalidCase("version-zero", "HELLO with min_version 0", server, await_hello,
                    frame(Hello, {"min_version": 0}), ErrorCode.INVALID_FIELD),
        InvalidCase("version-unsupported",
                    f"HELLO offering versions {PROTOCOL_VERSION + 1} to {PROTOCOL_VERSION + 2} "
                    "only", server, await_hello,
                    frame(Hello, {"min_version": PROTOCOL_VERSION + 1,
                                      "max_version": PROTOCOL_VERSION + 2}),
                    ErrorCode.UNSUPPORTED_VERSION),
        InvalidCase("request-id-zero", "LIST_ROOMS with request_id 0", server, ready,
                    frame(list_rooms, request_id=0), ErrorCode.INVALID_REQUEST_ID),
        InvalidCase("unknown-type", f"a frame of the unassigned type 0x{unknown_type:04X}",
                    server, ready, header_only(6, unknown_type, 9), ErrorCode.UNKNOWN_TYPE),
        InvalidCase("reserved-type", "a frame of the reserved type 0x0000", server, ready,
                    header_only(6, 0x0000, 9), ErrorCode.UNKNOWN_TYPE),
        InvalidCase("extension-type", "a frame of the extension type 0x8000, no capability "
                    "negotiated", server, ready, header_only(6, 0x8000, 9),
                    ErrorCode.UNKNOWN_TYPE),
        InvalidCase("unknown-type-client",
                    f"a frame of the unassigned type 0x{unknown_type:04X} from the server: "
                    "the client ignores it", client, ready,
                    header_only(6, unknown_type, 0), None),
        InvalidCase("unknown-type-before-hello",
                    f"a frame of the unassigned type 0x{unknown_type:04X} before HELLO",
                    server, await_hello, header_only(6, unknown_type, 9),
                    ErrorCode.STATE_VIOLATION),
        InvalidCase("join-before-hello", "JOIN before HELLO", server, await_hello,
                    frame(join), ErrorCode.STATE_VIOLATION),
        InvalidCase("server-message-from-client", "OK sent by a client", server, ready,
                    frame(ok), ErrorCode.STATE_VIOLATION),
        InvalidCase("hello-twice", "a second HELLO after the handshake", server, ready,
                    frame(Hello), ErrorCode.STATE_VIOLATION),
        InvalidCase("welcome-twice", "a second WELCOME after the handshake", client, ready,
                    frame(Welcome), ErrorCode.STATE_VIOLATION),
    ]
    ids = [case.id for case in cases]
    if len(set(ids)) != len(ids):
        raise VectorError("invalid case ids must be unique")
    return cases


# ------------------------------------------------------ spec requirements

_SUBJECT = re.compile(r"^(?:An?|Each|Every)\s+(\w+)")


def spec_requirements(spec_dir: Path) -> dict[str, str]:
    """Every live requirement of the spec pages: ID -> its text (fresh, not cached)."""
    found: dict[str, str] = {}
    for page in sorted(spec_dir.glob("*.md")):
        for requirement in parse_requirements(page.read_text(encoding="utf-8"), page.name):
            if not requirement.retired:
                found[requirement.id] = requirement.text
    return found


def requirements_for(requirements: Mapping[str, str], code: ErrorCode, receiver: Sender,
                     message: str | None = None, state: State | None = None,
                     schema: Schema = SCHEMA) -> list[str]:
    """The requirements that assign ERROR ``code`` to what a ``receiver`` gets.

    A requirement qualifies when its paragraph names the error, its subject is
    the receiver's role, "receiver" or "endpoint", and it is not a rule about
    sending. Requirements that name only other message types than ``message``
    (the frame's type), or only other states than ``state``, are left out,
    unless that would leave none.
    """
    subjects = {receiver.value, "receiver", "endpoint"}
    mentions = re.compile(rf"\b{code.name}\b")
    found = []
    for rid, text in requirements.items():
        subject = _SUBJECT.match(text)
        if (mentions.search(text) and subject and subject.group(1).lower() in subjects
                and "MUST NOT send" not in text):
            found.append(rid)
    # Every error rule names ERROR: it says nothing about which frame is meant.
    message_names = set(schema.by_name) - {Error.NAME}
    state_names = {s.value for s in State}

    def fits(rid: str, wanted: str | None, vocabulary: set[str]) -> bool:
        named = set(re.findall(r"\b[A-Z][A-Z_]+\b", requirements[rid])) & vocabulary
        return wanted is None or not named or wanted in named

    state_name = state.value if state else None
    for by_message, by_state in ((True, True), (False, True), (True, False)):
        specific = [rid for rid in found
                    if (not by_message or fits(rid, message, message_names))
                    and (not by_state or fits(rid, state_name, state_names))]
        if specific:
            found = specific
            break
    return sorted(found, key=_requirement_sort_key)


def _requirement_sort_key(rid: str) -> tuple[str, int]:
    area, _, number = rid.rpartition("-")
    return area, int(number)


def _message_name(data: bytes, schema: Schema) -> str | None:
    if len(data) < _schema.HEADER_SIZE:
        return None
    cls = schema.messages.get(_schema.FRAME_HEADER.parse(data).type)
    return cls.NAME if cls else None


def error_request_id(receiver: Sender, outcome: Outcome) -> int:
    """The request_id of the ERROR the receiver sends for ``outcome``.

    A server's ERROR carries the offending frame's request_id (CP-ERR-2); every
    ERROR a client sends carries 0 (CP-ERR-9), whatever the frame carried.
    """
    return 0 if receiver is Sender.CLIENT else outcome.request_id


def _handshake_entry(message: Message, schema: Schema) -> dict[str, Any]:
    fields = schema.body_fields[message.TYPE]
    return {"name": message.NAME, "request_id": message.request_id,
            "fields": {f.name: to_json_value(f.field_type, getattr(message, f.name))
                       for f in fields},
            "hex": schema.encode(message).hex()}


def invalid_vectors(spec_dir: Path | None, schema: Schema = SCHEMA) -> dict[str, Any]:
    requirements = spec_requirements(spec_dir) if spec_dir and spec_dir.is_dir() else {}
    entries = []
    for case in invalid_cases(schema):
        outcome = run_invalid(case, schema)
        got = outcome.code if outcome else None
        if got is not case.expect:
            raise VectorError(
                f"invalid case {case.id!r}: written for "
                f"{case.expect.name if case.expect else 'no error'}, but the reference "
                f"implementation reports {got.name if got else 'nothing'}"
            )
        entry: dict[str, Any] = {
            "id": case.id,
            "description": case.description,
            "receiver": case.receiver.value,
            "state": case.state.value,
            "hex": case.data.hex(),
            "then_eof": case.eof,
        }
        if outcome is None or outcome.code is None:
            entry["expected"] = None
            entry["requirements"] = []
        else:
            info = ERROR_REGISTRY[outcome.code]
            if outcome.fatal is not info.fatal:
                raise VectorError(f"{case.id}: fatal={outcome.fatal}, the registry says "
                                  f"{info.fatal}")
            entry["expected"] = {
                "error": outcome.code.name,
                "code": int(outcome.code),
                "fatal": outcome.fatal,
                "sent_on_wire": info.on_wire,
                "error_request_id": error_request_id(case.receiver, outcome),
                "detected_after": outcome.detected_after,
                "layer": outcome.layer,
            }
            entry["requirements"] = requirements_for(
                requirements, outcome.code, case.receiver, _message_name(case.data, schema),
                case.state, schema)
        entries.append(entry)
    hello, welcome = ready_handshake(schema)
    return {
        "header": _header(
            "Invalid input and the error each must produce. Start a connection of role "
            "'receiver' in 'state': AWAIT_HELLO is a fresh connection before any frame; "
            "READY is after the handshake in 'ready_after', which a server receiver has "
            "received and answered and a client receiver has sent and received (its HELLO "
            "is a guest's, with an empty password, which any server accepts for a nick "
            "nobody holds; the server's limits are those that WELCOME advertises). Then "
            "feed it the octets in 'hex' (and end the stream if 'then_eof'). 'expected' "
            "gives the error: its name and code; 'fatal', whether the connection ends (true) "
            "or only the frame is refused (false); 'sent_on_wire', whether an ERROR frame "
            "with this code is sent to the peer (true: a server sends it, a client may send "
            "it before it closes, CP-ERR-9) or the error is only ever reported locally, as "
            "when the stream has already ended (false); 'error_request_id', the request_id "
            "that ERROR carries (the offending frame's from a server, always 0 from a "
            "client); 'detected_after', after how many octets of 'hex' (or \"eof\", at end "
            "of stream) the error is detected; and 'layer', what finds it: 'framing' (the "
            "length field or the stream), 'codec' (the body decoder alone) or 'connection' "
            "(state, request ids, advertised limits, versions). 'expected' is null when the "
            "receiver must silently ignore the frame. 'requirements' lists the spec "
            "requirements that assign that error to the receiver."
        ),
        "ready_after": [_handshake_entry(hello, schema), _handshake_entry(welcome, schema)],
        "invalid": entries,
    }


# ----------------------------------------------------------------- nicks

_SAME_NICK_PAIRS = [
    ("Alice", "ALICE"), ("Alice", "alice"), ("ALICE", "alice"), ("bob_42", "BOB_42"),
    ("x-Ray", "X-rAY"), ("alice", "\u0430lice"), ("alice", "alicé"), ("alice", "alice_"),
    ("Zed", "zed"), ("a", "A"), ("I", "l"), ("K", "\u212a"),
]

_NICKS = [
    ("alice", "lower-case letters"),
    ("Alice", "mixed case"),
    ("a", "one letter, the shortest nick"),
    ("A" + "b" * (names.NICK_MAX_BYTES - 1), "the longest nick"),
    ("bob_42", "digits and underscore after the first letter"),
    ("x-ray", "a hyphen after the first letter"),
    ("", "empty"),
    ("1alice", "starts with a digit"),
    ("_alice", "starts with an underscore"),
    ("-alice", "starts with a hyphen"),
    ("al ice", "contains a space"),
    ("alice!", "contains punctuation"),
    ("#alice", "starts with '#', the room prefix"),
    ("\u0430lice", "first letter is CYRILLIC SMALL LETTER A (U+0430), a look-alike of 'a'"),
    ("alicé", "contains a non-ASCII letter (U+00E9)"),
    ("\u212a", "KELVIN SIGN (U+212A), which Unicode case folding maps to 'k'"),
    ("\uff41lice", "FULLWIDTH LATIN SMALL LETTER A (U+FF41)"),
    ("a" * (names.NICK_MAX_BYTES + 1), "one octet longer than the protocol cap"),
    ("alice\n", "ends with LF"),
]

_ROOMS = [
    ("#general", "a typical room name"),
    ("#a", "the shortest room name"),
    ("#" + "R" * (names.ROOM_NAME_MAX_BYTES - 1), "the longest room name"),
    ("#Dev_Ops-2", "letters, digits, '_' and '-'"),
    ("general", "no leading '#'"),
    ("#", "nothing after '#'"),
    ("##general", "a second '#'"),
    ("#gen eral", "contains a space"),
    ("#caf\u00e9", "contains a non-ASCII letter"),
    ("#" + "r" * names.ROOM_NAME_MAX_BYTES, "one octet longer than the protocol cap"),
]

_FOLD_INPUTS = [
    "Alice", "ALICE", "alice", "bob_42", "X-Ray", "#General", "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "@[`{", "\u0130stanbul", "\u212aelvin", "Stra\u00dfe", "\u00c4BC", "\u0410LICE",
]
"""Fold inputs, valid names and not: only A-Z change (``@[`{`` are A-Z's neighbours)."""


def _code_points(text: str) -> str:
    return " ".join(f"U+{ord(char):04X}" for char in text)


def _name_entry(field_type: FieldType, value: str, note: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": value, "utf8_hex": value.encode("utf-8").hex(),
                             "code_points": _code_points(value), "note": note}
    try:
        field_type.validate(value)
    except FieldError as exc:
        entry["valid"] = False
        entry["error"] = exc.code.name
        entry["code"] = int(exc.code)
    else:
        entry["valid"] = True
        entry["fold"] = names.fold(value)
    return entry


def nickfold_vectors() -> dict[str, Any]:
    pairs = []
    for a, b in _SAME_NICK_PAIRS:
        a_valid, b_valid = _accepts(NICK, a), _accepts(NICK, b)
        pairs.append({
            "a": a, "b": b,
            "a_code_points": _code_points(a), "b_code_points": _code_points(b),
            "a_valid": a_valid, "b_valid": b_valid,
            "same_nick": a_valid and b_valid and names.fold(a) == names.fold(b),
        })
    return {
        "header": _header(
            f"Nicknames and room names under the casemapping {names.CASEMAPPING!r}. "
            "'fold' maps exactly the octets 0x41-0x5A (A-Z) to 0x61-0x7A (a-z) and keeps "
            "every other octet, Unicode included. Two valid nicks are the same nick if and "
            "only if their folds are equal; an invalid nick is refused before any "
            "comparison. Validity is checked at the protocol caps (a server may advertise "
            "shorter max_nick_length / max_room_name_length)."
        ),
        "casemapping": names.CASEMAPPING,
        "fold": [
            {"input": text, "input_utf8_hex": text.encode("utf-8").hex(),
             "folded": names.fold(text), "folded_utf8_hex": names.fold(text).encode("utf-8").hex()}
            for text in _FOLD_INPUTS
        ],
        "nick_pairs": pairs,
        "nicks": [_name_entry(NICK, value, note) for value, note in _NICKS],
        "rooms": [_name_entry(ROOM, value, note) for value, note in _ROOMS],
    }


# ----------------------------------------------------------------- output


def build_vectors(spec_dir: Path | None = None, schema: Schema = SCHEMA) -> dict[str, object]:
    """Every vector file's content, by file name (``messages.json`` ...), for ``schema``.

    ``spec_dir`` (default: the pages ``chatproto_spec.requirements`` reads) is read
    for the requirement IDs of ``invalid.json``.
    """
    spec = find_spec_dir() if spec_dir is None else spec_dir
    return {
        "messages.json": messages_vectors(schema),
        "invalid.json": invalid_vectors(spec, schema),
        "nickfold.json": nickfold_vectors(),
    }


def dumps(content: object) -> str:
    """The exact text of a vector file: two-space indent, UTF-8, a final newline."""
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def render_vectors(spec_dir: Path | None = None, schema: Schema = SCHEMA) -> dict[str, str]:
    """File name -> exact file text."""
    return {name: dumps(content) for name, content in build_vectors(spec_dir, schema).items()}


def iter_frames(content: Mapping[str, Any]) -> Iterator[tuple[str, str, bytes]]:
    """(message name, case, frame) of a loaded ``messages.json``."""
    for message in content["messages"]:
        for case in message["cases"]:
            yield message["name"], case["case"], bytes.fromhex(case["hex"])


def from_json_value(field_type: FieldType, value: Any) -> Any:
    """Inverse of ``to_json_value`` for a field of ``field_type``."""
    shape = field_type.wire.shape
    if shape == "bytes":
        return bytes.fromhex(value)
    if shape == "strlist":
        return tuple(value)
    if as_decimal_string(field_type):
        if not (isinstance(value, str) and value.isdecimal() and value.isascii()):
            raise ValueError(f"a {field_type.wire.name} value is a string of decimal digits, "
                             f"not {value!r}")
        return int(value)
    return value

