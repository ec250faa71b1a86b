"""The schema: one frozen value derived from the message classes, read by every part.

``Schema.build(classes)`` derives, once, everything the core reads from the
declarations: the message types by code and by name, their body fields, the
construct structs (the wire format written in construct), the generated fast
codec, the state table and the fields held to advertised limits. ``SCHEMA`` is
spec v1's, built from ``chatproto.messages``; ``Connection`` takes another one,
so a test can add a message type or retype a field without patching anything.

The module-level names below ``SCHEMA`` (``BODY_FIELDS``, ``TRANSITIONS``,
``construct_encode``...) are read-only views of it, for existing callers.
``construct_encode`` / ``construct_decode`` run the construct structs through
construct's interpreter and pydantic's validation: slow, but the reference
against which the generated fast codec is proven byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import construct as cs
from pydantic import ValidationError

from chatproto._codegen import FastCodec
from chatproto._errors import ErrorCode, LocalProtocolError, RemoteProtocolError, utf8_fault
from chatproto._fields import FieldError, FieldType

# The header half of the schema lives in _header; these names stay importable here.
from chatproto._header import FRAME_HEADER as FRAME_HEADER
from chatproto._header import HEADER_FORMAT as HEADER_FORMAT
from chatproto._header import HEADER_SIZE as HEADER_SIZE
from chatproto._header import HEADER_STRUCT as HEADER_STRUCT
from chatproto._header import LENGTH_FIELD_SIZE as LENGTH_FIELD_SIZE
from chatproto._header import MIN_FRAME_LENGTH as MIN_FRAME_LENGTH
from chatproto._state import ERROR_FATAL, ERROR_NONFATAL, State, build_transitions, event_key
from chatproto.messages import MESSAGE_CLASSES, Error, Message, Sender, messages_by_code


@dataclass(frozen=True, slots=True)
class BodyField:
    """One body field of a message type, in wire order."""

    name: str
    field_type: FieldType
    description: str


def body_fields_of(cls: type[Message]) -> tuple[BodyField, ...]:
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


@dataclass(frozen=True, slots=True)
class LimitedField:
    """A body field held to one of the limits a server advertises in WELCOME."""

    name: str
    limit_name: str
    """The ``Limits`` field that caps its length in bytes."""
    code: ErrorCode
    """What a frame over the limit is refused with."""


def _read_only(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Schema:
    """Every table the codec, the state machine and the docs read, from one set of classes.

    Build it with ``Schema.build``; every mapping is read-only.
    """

    messages: Mapping[int, type[Message]]
    """The message types by type code, in the order of the codes."""
    by_name: Mapping[str, type[Message]]
    body_fields: Mapping[int, tuple[BodyField, ...]]
    """The body fields of each type, in wire order (``request_id`` is the header's)."""
    body_structs: Mapping[int, cs.Struct]
    """The construct body of each type."""
    strict_body_structs: Mapping[int, cs.Construct]
    """The same, refusing trailing octets after the last field."""
    codec: FastCodec
    transitions: Mapping[tuple[State, Sender, str], State]
    """(state, sender, message key) -> next state. Absent = STATE_VIOLATION."""
    allowed: Mapping[tuple[State, Sender], frozenset[str]]
    """The message keys each sender may send in each state."""
    limited_fields: Mapping[int, tuple[LimitedField, ...]]
    state_keeping: Mapping[tuple[Sender, State], frozenset[type[Message]]]
    """The types each sender may send in each state without changing it: what an event
    encoded once for many connections may be (``Connection.may_send``)."""

    @classmethod
    def build(cls, messages: Iterable[type[Message]],
              body_fields: Mapping[int, tuple[BodyField, ...]] | None = None) -> Schema:
        """The schema of ``messages``; a type code or name declared twice raises TypeError.

        ``body_fields`` replaces the fields derived from the classes for the
        type codes it names (a test's retyped field; see ``with_fields``).
        """
        by_code = messages_by_code(messages)
        fields = {code: body_fields_of(message_cls) for code, message_cls in by_code.items()}
        fields.update(body_fields or {})
        structs = {code: cs.Struct(*(f.name / f.field_type.wire.subcon for f in body))
                   for code, body in fields.items()}
        transitions = build_transitions(by_code.values())
        allowed = {
            (state, sender): frozenset(key for (s, who, key) in transitions
                                       if s is state and who is sender)
            for state in State for sender in (Sender.CLIENT, Sender.SERVER)
        }
        limited = {
            code: tuple(LimitedField(f.name, f.field_type.limit, f.field_type.limit_error)
                        for f in body if f.field_type.limit is not None)
            for code, body in fields.items()
        }
        state_keeping = {
            (sender, state): frozenset(
                message_cls for message_cls in by_code.values()
                if message_cls.SENDER in (sender, Sender.BOTH)
                and transitions.get((state, sender, message_cls.NAME)) is state)
            for state in State for sender in (Sender.CLIENT, Sender.SERVER)
        }
        return cls(
            messages=by_code,
            by_name=_read_only({message_cls.NAME: message_cls for message_cls in by_code.values()}),
            body_fields=_read_only(fields),
            body_structs=_read_only(structs),
            strict_body_structs=_read_only(
                {code: cs.FocusedSeq("body", "body" / struct, cs.Terminated)
                 for code, struct in structs.items()}),
            codec=FastCodec.generate(by_code, fields),
            transitions=_read_only(transitions),
            allowed=_read_only(allowed),
            limited_fields=_read_only(limited),
            state_keeping=_read_only(state_keeping),
        )

    def __repr__(self) -> str:  # the tables themselves run to hundreds of kilobytes
        names = ", ".join(cls.NAME for cls in self.messages.values())
        return f"<Schema of {len(self.messages)} message types: {names}>"

    # A schema is immutable: copies of what holds one (a Connection) share it.
    def __copy__(self) -> Schema:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Schema:
        return self

    def with_fields(self, cls: type[Message], fields: tuple[BodyField, ...]) -> Schema:
        """This schema with message type ``cls`` carrying the body ``fields``."""
        return Schema.build(self.messages.values(), {**self.body_fields, cls.TYPE: fields})

    def with_field_type(self, cls: type[Message], name: str, field_type: FieldType) -> Schema:
        """This schema with the body field ``name`` of ``cls`` of type ``field_type``."""
        old = self.body_fields[cls.TYPE]
        if name not in {field.name for field in old}:
            raise KeyError(f"{cls.NAME} has no body field {name!r}")
        return self.with_fields(cls, tuple(
            replace(field, field_type=field_type) if field.name == name else field
            for field in old))

    def message_class(self, name: str) -> type[Message]:
        """The message class with wire name ``name`` (``"SEND_ROOM"``)."""
        return self.by_name[name]

    def next_state(self, state: State, sender: Sender, message: Message) -> State | None:
        """The state after ``sender`` sends ``message`` in ``state``, or None if forbidden."""
        return self.transitions.get((state, sender, event_key(message)))

    def may_send_type(self, state: State, sender: Sender, cls: type[Message]) -> bool:
        """Whether ``sender`` may send some ``cls`` message in ``state``."""
        allowed = self.allowed[(state, sender)]
        if cls is Error:
            return ERROR_FATAL in allowed or ERROR_NONFATAL in allowed
        return cls.NAME in allowed and cls.SENDER in (sender, Sender.BOTH)

    def encode(self, message: Message) -> bytes:
        """Encode one message as a whole frame with the fast codec."""
        return self.codec.encode(message)

    def decode_frame(self, frame: bytes) -> Message:
        """Decode one whole frame (header included) with the fast codec."""
        return self.codec.decode_frame(frame)

    def construct_encode(self, message: Message) -> bytes:
        """Encode one frame through construct's interpreter."""
        code = type(message).TYPE
        values = {field.name: getattr(message, field.name) for field in self.body_fields[code]}
        try:
            body = self.body_structs[code].build(values)
        except (cs.ConstructError, UnicodeError) as exc:
            raise LocalProtocolError(ErrorCode.INVALID_FIELD, str(exc)) from exc
        header = FRAME_HEADER.build(
            {"length": MIN_FRAME_LENGTH + len(body), "type": code,
             "request_id": message.request_id}
        )
        return bytes(header + body)

    def construct_decode(self, frame: bytes) -> Message:
        """Decode one whole frame through construct's interpreter and pydantic.

        Raises RemoteProtocolError with the code the spec assigns to the breach.
        """
        if len(frame) < HEADER_SIZE:
            raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, "shorter than a frame header")
        header = FRAME_HEADER.parse(frame)
        request_id: int = header.request_id
        if header.length != len(frame) - LENGTH_FIELD_SIZE:
            raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, "length field does not match")
        cls = self.messages.get(header.type)
        if cls is None:
            raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"type {header.type:#06x}",
                                      request_id=request_id)
        body = frame[HEADER_SIZE:]
        try:
            parsed = self.strict_body_structs[cls.TYPE].parse(body)
        except cs.StringError as exc:  # construct's wrapper around UnicodeDecodeError
            raise RemoteProtocolError(ErrorCode.INVALID_UTF8, utf8_fault(exc),
                                      request_id=request_id) from exc
        except cs.ConstructError as exc:
            raise RemoteProtocolError(ErrorCode.MALFORMED_MESSAGE, str(exc).splitlines()[0],
                                      request_id=request_id) from exc
        values: dict[str, Any] = {"request_id": request_id}
        for field in self.body_fields[cls.TYPE]:
            value = parsed[field.name]
            values[field.name] = tuple(value) if isinstance(value, list) else value
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise RemoteProtocolError(error_code_of(exc), _first_message(exc),
                                      request_id=request_id) from exc


SCHEMA = Schema.build(MESSAGE_CLASSES)
"""The schema of spec v1: every message type declared in ``chatproto.messages``."""

# Views of SCHEMA for the callers that read one table.
BODY_FIELDS: Mapping[int, tuple[BodyField, ...]] = SCHEMA.body_fields
BODY_STRUCTS: Mapping[int, cs.Struct] = SCHEMA.body_structs
TRANSITIONS: Mapping[tuple[State, Sender, str], State] = SCHEMA.transitions
next_state = SCHEMA.next_state
construct_encode = SCHEMA.construct_encode
construct_decode = SCHEMA.construct_decode


def error_code_of(exc: ValidationError) -> ErrorCode:
    """The spec's error code for a failed model validation (first error wins)."""
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            return cause.code
    return ErrorCode.INVALID_FIELD


def _first_message(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', '')}"
