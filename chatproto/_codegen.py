"""The fast codec: Python source generated from a schema's body fields.

construct's interpreter costs about 25 times a hand-written ``struct`` codec,
and the server decodes every frame it receives. So for every message type this
module writes the straight-line code a person would write by hand (runs of fixed
fields merged into one ``struct`` call, strings sliced and decoded in place),
compiles it, and keeps nothing else: the formats come from the construct
subcons of the declaration, so the schema stays the single source of truth.
``FastCodec.generate`` runs once per ``chatproto._schema.Schema``; the default
schema's codec is what ``chatproto._fastcodec`` exports.
tests/test_codec_equivalence.py proves it byte-identical to construct with
hypothesis over every message type, valid and invalid frames alike.

Decoding checks the body in two passes, as the spec orders it (CP-FRAME-6):
first every field is parsed (MALFORMED_MESSAGE, INVALID_UTF8), then each
field's constraint is checked in declaration order. The decoded model is built
without running pydantic again: the same check functions pydantic would call
have already run, and re-validating would cost more than all of the decode.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from chatproto._errors import ErrorCode, LocalProtocolError, RemoteProtocolError, utf8_fault
from chatproto._fields import FieldError
from chatproto._header import HEADER_FORMAT, HEADER_SIZE, HEADER_STRUCT, MIN_FRAME_LENGTH
from chatproto.messages import Message

if TYPE_CHECKING:  # _schema builds its codec with this module
    from chatproto._schema import BodyField

Decoder = Callable[[bytes | bytearray, int, int, int], Message]
Encoder = Callable[[Message], bytes]

_new_object = object.__new__
_set_attribute = object.__setattr__


class _Malformed(Exception):
    """Raised inside generated decoders for a body that does not parse."""


def _decode_strlist(
    body: bytes | bytearray, pos: int, size: int, prefix: struct.Struct
) -> tuple[tuple[str, ...], int]:
    if pos + prefix.size > size:
        raise _Malformed("count runs past the end of the body")
    (count,) = prefix.unpack_from(body, pos)
    pos += prefix.size
    items = []
    for _ in range(count):
        if pos + prefix.size > size:
            raise _Malformed("length runs past the end of the body")
        (length,) = prefix.unpack_from(body, pos)
        pos += prefix.size
        end = pos + length
        if end > size:
            raise _Malformed("string runs past the end of the body")
        items.append(str(body[pos:end], "utf-8"))
        pos = end
    return tuple(items), pos


def _encode_strlist(items: tuple[str, ...], prefix: struct.Struct) -> bytes:
    parts = [prefix.pack(len(items))]
    for item in items:
        encoded = item.encode("utf-8")
        parts.append(prefix.pack(len(encoded)))
        parts.append(encoded)
    return b"".join(parts)


class _SourceWriter:
    """Accumulates generated source lines and the constants they refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "_Malformed": _Malformed,
            "_new_object": _new_object,
            "_set_attribute": _set_attribute,
            "_decode_strlist": _decode_strlist,
            "_encode_strlist": _encode_strlist,
        }

    def constant(self, name: str, value: Any) -> str:
        self.namespace[name] = value
        return name

    def struct_for(self, fmt: str) -> str:
        name = "_S_" + fmt.replace(">", "")
        self.namespace.setdefault(name, struct.Struct(fmt))
        return name

    def emit(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)


def _decoder_source(
    writer: _SourceWriter, cls: type[Message], fields: tuple[BodyField, ...]
) -> str:
    fn = f"_decode_{cls.NAME}"
    writer.emit(f"def {fn}(body, pos, size, request_id):", 0)
    pending: list[tuple[str, str]] = []  # (struct char, target variable) of a fixed run
    bools: dict[str, str] = {}  # target variable -> field name, for the bool octets
    enums: dict[str, tuple[str, str]] = {}  # target variable -> (field name, valid set)

    def flush() -> None:
        if not pending:
            return
        fmt = ">" + "".join(char for char, _ in pending)
        targets = ", ".join(target for _, target in pending)
        # The buffer may hold the next frame too: bound every read by ``size``.
        writer.emit(f"if pos + {struct.calcsize(fmt)} > size:")
        writer.emit("raise _Malformed('field runs past the end of the body')", 2)
        writer.emit(f"({targets},) = {writer.struct_for(fmt)}.unpack_from(body, pos)")
        writer.emit(f"pos += {struct.calcsize(fmt)}")
        # A bool octet other than 0 or 1 does not parse: it belongs to the first pass.
        for _, target in pending:
            if target in bools:
                writer.emit(f"if {target} > 1:")
                writer.emit(f"raise _Malformed('{bools[target]}: a bool octet must be 0 or 1')", 2)
                writer.emit(f"{target} = {target} == 1")
            if target in enums:
                name, valids = enums[target]
                writer.emit(f"if {target} not in {valids}:")
                writer.emit(f"raise _Malformed('{name}: not a defined value')", 2)
        pending.clear()

    for index, field in enumerate(fields):
        wire = field.field_type.wire
        char = wire.prefix_format.lstrip(">")
        var = f"v{index}"
        if wire.shape in ("uint", "bool", "enum"):
            pending.append((char, var))
            if wire.shape == "bool":
                bools[var] = field.name
            if wire.shape == "enum":
                valids = writer.constant(f"_valid{index}_{cls.NAME}", wire.enum_values)
                enums[var] = (field.name, valids)
        elif wire.shape in ("str", "bytes"):
            pending.append((char, f"n{index}"))
            flush()
            writer.emit(f"end = pos + n{index}")
            writer.emit("if end > size:")
            writer.emit("raise _Malformed('field runs past the end of the body')", 2)
            if wire.shape == "str":
                writer.emit(f"{var} = str(body[pos:end], 'utf-8')")
            else:
                writer.emit(f"{var} = bytes(body[pos:end])")
            writer.emit("pos = end")
        elif wire.shape == "strlist":
            flush()
            prefix = writer.constant(f"_P{index}_{cls.NAME}", struct.Struct(wire.prefix_format))
            writer.emit(f"{var}, pos = _decode_strlist(body, pos, size, {prefix})")
        else:
            raise TypeError(f"no fast decoder for wire shape {wire.shape}")
    flush()
    writer.emit("if pos != size:")
    writer.emit("raise _Malformed('trailing octets after the last field')", 2)

    # Second pass: constraints, in declaration order.
    for index, field in enumerate(fields):
        field_type = field.field_type
        var = f"v{index}"
        if field_type.check is not None:
            check = writer.constant(f"_check{index}_{cls.NAME}", field_type.check)
            if field_type.wire.shape == "str":
                writer.emit(f"{check}({var}, n{index})")
            else:
                writer.emit(f"{check}({var})")

    items = ", ".join(["'request_id': request_id"] +
                      [f"'{field.name}': v{index}" for index, field in enumerate(fields)])
    model_cls = writer.constant(f"_cls_{cls.NAME}", cls)
    fields_set = writer.constant(f"_fields_{cls.NAME}", frozenset(cls.model_fields))
    # What BaseModel.model_construct does, minus per-field default handling
    # (every field has a value here): about a fifth of its cost.
    writer.emit(f"model = _new_object({model_cls})")
    writer.emit(f"_set_attribute(model, '__dict__', {{{items}}})")
    writer.emit(f"_set_attribute(model, '__pydantic_fields_set__', set({fields_set}))")
    writer.emit("_set_attribute(model, '__pydantic_extra__', None)")
    writer.emit("_set_attribute(model, '__pydantic_private__', None)")
    # Whole-model rules (such as WELCOME's protocol caps) run as pydantic runs them.
    for name, decorator in cls.__pydantic_decorators__.model_validators.items():
        if decorator.info.mode != "after":
            raise TypeError(f"{cls.__name__}.{name}: only mode='after' validators are generated")
        writer.emit(f"model.{name}()")
    writer.emit("return model")
    return fn


def _encoder_source(
    writer: _SourceWriter, cls: type[Message], fields: tuple[BodyField, ...]
) -> str:
    fn = f"_encode_{cls.NAME}"
    writer.emit(f"def {fn}(message):", 0)
    writer.emit("d = message.__dict__")
    # Variable parts first, so the header can carry the total length.
    fixed_size = MIN_FRAME_LENGTH
    lengths = []
    for index, field in enumerate(fields):
        shape = field.field_type.wire.shape
        if shape == "str":
            writer.emit(f"b{index} = d['{field.name}'].encode('utf-8')")
            lengths.append(f"len(b{index})")
        elif shape == "bytes":
            writer.emit(f"b{index} = d['{field.name}']")
            lengths.append(f"len(b{index})")
        elif shape == "strlist":
            prefix = writer.constant(
                f"_P{index}_{cls.NAME}", struct.Struct(field.field_type.wire.prefix_format)
            )
            writer.emit(f"b{index} = _encode_strlist(d['{field.name}'], {prefix})")
            lengths.append(f"len(b{index})")
        if shape != "strlist":
            fixed_size += struct.calcsize(field.field_type.wire.prefix_format)
    total = " + ".join([str(fixed_size), *lengths])

    parts: list[str] = []
    run_format = HEADER_FORMAT
    run_values = [f"{total}", str(cls.TYPE), "d['request_id']"]

    def flush() -> None:
        nonlocal run_format
        if run_values:
            parts.append(f"{writer.struct_for(run_format)}.pack({', '.join(run_values)})")
        run_format = ">"
        run_values.clear()

    for index, field in enumerate(fields):
        wire = field.field_type.wire
        char = wire.prefix_format.lstrip(">")
        if wire.shape in ("uint", "bool", "enum"):
            run_format += char
            run_values.append(f"d['{field.name}']")
        elif wire.shape in ("str", "bytes"):
            run_format += char
            run_values.append(f"len(b{index})")
            flush()
            parts.append(f"b{index}")
        else:  # strlist carries its own count
            flush()
            parts.append(f"b{index}")
    flush()
    writer.emit(f"return b''.join(({', '.join(parts)},))")
    return fn


@dataclass(frozen=True, slots=True)
class FastCodec:
    """The generated per-type body decoders and whole-frame encoders of one schema."""

    decoders: Mapping[int, Decoder]
    encoders: Mapping[int, Encoder]
    source: str
    """The generated Python source, for reading and debugging."""

    @classmethod
    def generate(cls, messages: Mapping[int, type[Message]],
                 body_fields: Mapping[int, tuple[BodyField, ...]]) -> FastCodec:
        """Write, compile and keep the codec of ``messages`` (by type code)."""
        writer = _SourceWriter()
        names: list[tuple[int, str, str]] = []
        for code, message_cls in messages.items():
            fields = body_fields[code]
            decode_name = _decoder_source(writer, message_cls, fields)
            writer.emit("", 0)
            encode_name = _encoder_source(writer, message_cls, fields)
            writer.emit("", 0)
            names.append((code, decode_name, encode_name))
        source = "\n".join(writer.lines) + "\n"
        namespace = writer.namespace
        exec(compile(source, "<chatproto generated codec>", "exec"), namespace)
        return cls(
            decoders=MappingProxyType({code: namespace[decode] for code, decode, _ in names}),
            encoders=MappingProxyType({code: namespace[encode] for code, _, encode in names}),
            source=source,
        )

    def decode_body(self, type_code: int, request_id: int, buffer: bytes | bytearray,
                    start: int, end: int) -> Message:
        """Decode the body at ``buffer[start:end]`` into a validated message.

        Raises RemoteProtocolError carrying the spec's code (UNKNOWN_TYPE,
        MALFORMED_MESSAGE, INVALID_UTF8 or the field's own code).
        """
        decoder = self.decoders.get(type_code)
        if decoder is None:
            raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"type {type_code:#06x}",
                                      request_id=request_id)
        try:
            return decoder(buffer, start, end, request_id)
        except FieldError as exc:
            raise RemoteProtocolError(exc.code, str(exc), request_id=request_id) from None
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(ErrorCode.INVALID_UTF8, utf8_fault(exc),
                                      request_id=request_id) from None
        except (_Malformed, struct.error, IndexError) as exc:
            raise RemoteProtocolError(ErrorCode.MALFORMED_MESSAGE, str(exc),
                                      request_id=request_id) from None

    def decode_frame(self, frame: bytes) -> Message:
        """Decode one whole frame (header included)."""
        if len(frame) < HEADER_SIZE:
            raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, "shorter than a frame header")
        length, type_code, request_id = HEADER_STRUCT.unpack_from(frame)
        if length != len(frame) - 4:
            raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, "length field does not match")
        return self.decode_body(type_code, request_id, frame, HEADER_SIZE, len(frame))

    def encode(self, message: Message) -> bytes:
        """Encode one message as a whole frame."""
        encoder = self.encoders.get(message.TYPE)
        if encoder is None:
            raise LocalProtocolError(ErrorCode.UNKNOWN_TYPE,
                                     f"{message.NAME} is not a message type of this schema")
        try:
            return encoder(message)
        except (struct.error, UnicodeEncodeError) as exc:
            raise LocalProtocolError(ErrorCode.INVALID_FIELD, f"cannot encode: {exc}") from None
