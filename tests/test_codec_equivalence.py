"""The generated fast codec is byte-identical to the construct reference codec.

``chatproto._fastcodec`` is Python source generated from the construct schema
(``chatproto._codegen``, once per Schema); ``chatproto._schema.construct_encode``
/ ``construct_decode`` run the same schema through construct's interpreter and
pydantic. These properties hold for every message type in ``MESSAGE_TYPES``:

* every valid model encodes to the same bytes with both, and both decode those
  bytes back to the model;
* on any frame at all (random bodies, fields that break their constraints,
  truncated, extended and bit-flipped frames) the two decoders agree: both
  accept with equal models, or both raise ``RemoteProtocolError`` with the same
  error code, and neither raises anything else.

The value strategies are derived from the declarations: ``BODY_FIELDS`` gives
every field's ``FieldType``, which names its wire shape and its constraint, and
``VALUE_STRATEGIES`` below holds one strategy per field type. A new message type
built from existing field types is covered with no change here; a new field
type makes ``test_every_declared_field_type_has_a_value_strategy`` fail until it
gets a strategy. Whole-model rules are the exception: ``Limits`` (inherited by
WELCOME) has its own strategy below; a new model validator elsewhere makes
``models`` fail loudly (pydantic rejects the drawn values) rather than pass quietly.
"""

from __future__ import annotations

import functools
import string
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pairs import raw_frame
from pydantic import ValidationError

from chatproto import HEADER_SIZE, HEADER_STRUCT, _fastcodec, _fields, _schema
from chatproto._errors import ErrorCode, RemoteProtocolError
from chatproto._fields import FieldType, Wire
from chatproto.messages import (
    MESSAGE_TYPES,
    SEND_ROOM_OVERHEAD,
    LeaveKind,
    Limits,
    Message,
)
from chatproto.names import NICK_MAX_BYTES, ROOM_NAME_MAX_BYTES

CODES = sorted(MESSAGE_TYPES)
CODE_IDS = [MESSAGE_TYPES[code].NAME for code in CODES]
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
VALID_PER_TYPE = settings(max_examples=200, deadline=None, suppress_health_check=_QUIET)
"""Valid models: 200 per message type."""
DAMAGED_PER_TYPE = settings(max_examples=100, deadline=None, suppress_health_check=_QUIET)
"""Each of the two damaged-frame properties: 100 per type, 200 damaged frames per type in all."""

_U32_MAX = 2**32 - 1

# ------------------------------------------------------------ value strategies

_NICK_FIRST = string.ascii_letters
_NAME_REST = string.ascii_letters + string.digits + "_-"
_CAPABILITY_FIRST = string.ascii_lowercase + string.digits
_CAPABILITY_REST = _CAPABILITY_FIRST + "._/-"
_NOTABLE_CHARS = (
    "\t\n \u00e9\u017e\u0436\u00df\u017f\u212a\ufb00\u4e2d\u6587"  # é ž ж ß, long s, Kelvin...
    "\u00a0\u200b\u202e\u2028\u2029\ufeff\U0001f600\U0010fffd"  # spaces, bidi, BOM, emoji
)
"""Non-ASCII characters worth meeting often: multi-byte, look-alike, invisible, astral."""

_SAFE_CHARS = st.characters(exclude_categories=("Cs", "Cc"), include_characters="\t\n")
"""Safe text: Cc is exactly C0, DEL and C1; TAB and LF are let back in; Cs can't be UTF-8."""
_PASSWORD_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _fit(text: str, max_bytes: int) -> str:
    """Cut ``text`` to at most ``max_bytes`` of UTF-8, on a character boundary."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def _fill(chunk: str, max_bytes: int) -> str:
    """Repeat ``chunk`` to exactly ``max_bytes`` of UTF-8 (padded with ASCII 'x')."""
    repeated = _fit(chunk * (max_bytes // max(1, _utf8_len(chunk)) + 1), max_bytes)
    return repeated + "x" * (max_bytes - _utf8_len(repeated))


def _utf8_text(
    chars: st.SearchStrategy[str], min_bytes: int, max_bytes: int
) -> st.SearchStrategy[str]:
    """Text of ``min_bytes``..``max_bytes`` of UTF-8, with both ends drawn on purpose."""
    typical = (
        st.text(chars, min_size=min_bytes, max_size=min(max_bytes, 24))
        .map(lambda text: _fit(text, max_bytes))
        .filter(lambda text: _utf8_len(text) >= min_bytes)
    )
    notable = (
        st.text(st.sampled_from(_NOTABLE_CHARS), min_size=min_bytes, max_size=12)
        .map(lambda text: _fit(text, max_bytes))
        .filter(lambda text: _utf8_len(text) >= min_bytes)
    )
    longest = st.text(chars, min_size=1, max_size=6).map(lambda chunk: _fill(chunk, max_bytes))
    shortest = st.just("x" * min_bytes)
    return st.one_of(typical, notable, longest, shortest)


def _ascii_name(first: str, rest: str, max_rest: int) -> st.SearchStrategy[str]:
    """One char of ``first``, then up to ``max_rest`` of ``rest`` (the max drawn on purpose)."""
    return st.builds(
        str.__add__,
        st.sampled_from(first),
        st.one_of(
            st.text(rest, max_size=max_rest),
            st.text(rest, min_size=max_rest, max_size=max_rest),
        ),
    )


def _bounded(low: int, high: int) -> st.SearchStrategy[int]:
    """Integers in ``low``..``high``, with both ends drawn on purpose."""
    return st.one_of(st.sampled_from([low, high]), st.integers(low, high))


def _uints(field_type: FieldType, low: int = 0, high: int | None = None) -> st.SearchStrategy[int]:
    """Integers of the field's wire width (or ``low``..``high``), ends included on purpose."""
    return _bounded(low, field_type.wire.max_prefix_value if high is None else high)


_NICKS = _ascii_name(_NICK_FIRST, _NAME_REST, NICK_MAX_BYTES - 1)
_PASSWORDS = _utf8_text(_PASSWORD_CHARS, 1, 255)
_CAPABILITY = _ascii_name(_CAPABILITY_FIRST, _CAPABILITY_REST, 63)

VALUE_STRATEGIES: dict[FieldType, st.SearchStrategy[Any]] = {
    _fields.UINT8: _uints(_fields.UINT8),
    _fields.UINT16: _uints(_fields.UINT16),
    _fields.UINT32: _uints(_fields.UINT32),
    _fields.UINT64: _uints(_fields.UINT64),
    _fields.FLAG: st.booleans(),
    _fields.VERSION: _uints(_fields.VERSION, 1),
    _fields.PAGE_SIZE: _uints(_fields.PAGE_SIZE, 1),
    _fields.FRAME_LIMIT: _uints(_fields.FRAME_LIMIT, 4096, 65536),
    _fields.LEAVE_KIND: st.sampled_from([int(kind) for kind in LeaveKind]),
    _fields.NICK: _NICKS,
    _fields.OPTIONAL_NICK: st.one_of(st.just(""), _NICKS),
    _fields.ROOM: st.builds(
        str.__add__, st.just("#"), _ascii_name(_NAME_REST, _NAME_REST, ROOM_NAME_MAX_BYTES - 2)
    ),
    _fields.MESSAGE_TEXT: _utf8_text(_SAFE_CHARS, 1, _fields.MESSAGE_TEXT_MAX_BYTES),
    _fields.NOTICE_TEXT: _utf8_text(_SAFE_CHARS, 0, _fields.MESSAGE_TEXT_MAX_BYTES),
    _fields.TOPIC: _utf8_text(_SAFE_CHARS, 0, _fields.TOPIC_MAX_BYTES),
    _fields.SHORT_TEXT: _utf8_text(_SAFE_CHARS, 0, 255),
    _fields.LABEL: st.one_of(
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=64, max_size=64),
    ),
    _fields.PASSWORD: _PASSWORDS,
    _fields.OPTIONAL_PASSWORD: st.one_of(st.just(""), _PASSWORDS),
    _fields.TOKEN: st.one_of(st.binary(max_size=255), st.binary(min_size=255, max_size=255)),
    _fields.CAPABILITIES: st.one_of(
        st.lists(_CAPABILITY, max_size=_fields.MAX_CAPABILITIES),
        st.lists(
            _CAPABILITY, min_size=_fields.MAX_CAPABILITIES, max_size=_fields.MAX_CAPABILITIES
        ),
    ).map(tuple),
}
"""A strategy of valid values for every field type (every value passes its check)."""

# Limits' whole-model rules (WELCOME inherits them): a protocol cap per field,
# idle_timeout_s > keepalive_interval_s, and a SEND_ROOM at the advertised room
# name and message lengths fits in max_frame_size. Values are drawn to satisfy
# them; the final filter only guards against a rule added later (it would show
# up as a filter health check failure, not as silently weaker coverage).
LIMIT_CAPS: dict[str, tuple[int, int]] = {
    "max_nick_length": (1, NICK_MAX_BYTES),
    "max_topic_length": (0, _fields.TOPIC_MAX_BYTES),
    "max_rooms_per_user": (1, 65535),
    "msg_rate_burst": (1, 65535),
    "cmd_rate_burst": (1, 65535),
    "history_page_max": (1, 65535),
    "msg_rate_interval_ms": (1, _U32_MAX),
    "cmd_rate_interval_ms": (1, _U32_MAX),
}


def _limits_ok(values: dict[str, int]) -> bool:
    try:
        Limits.model_validate(values)
    except ValueError:
        return False
    return True


@st.composite
def _limit_values_unchecked(draw: st.DrawFn) -> dict[str, int]:
    values = {name: draw(_bounded(low, high)) for name, (low, high) in LIMIT_CAPS.items()}
    keepalive = draw(_bounded(1, 65534))
    values["keepalive_interval_s"] = keepalive
    values["idle_timeout_s"] = draw(_bounded(keepalive + 1, 65535))
    frame = draw(_bounded(4096, 65536))
    room = draw(_bounded(2, ROOM_NAME_MAX_BYTES))
    top = min(_fields.MESSAGE_TEXT_MAX_BYTES, frame - SEND_ROOM_OVERHEAD - room)
    values["max_frame_size"] = frame
    values["max_room_name_length"] = room
    values["max_message_length"] = draw(_bounded(1, top))
    return values


_LIMIT_VALUES = _limit_values_unchecked().filter(_limits_ok)


_Parts = tuple[dict[str, Any], dict[str, int]]


def _merge_and_build(cls: type[Message]) -> Callable[[_Parts], Message]:
    def build(parts: _Parts) -> Message:
        return cls.model_validate({**parts[0], **parts[1]})

    return build


@functools.cache  # one strategy object per type: hypothesis caches its analysis on it
def models(cls: type[Message]) -> st.SearchStrategy[Message]:
    """Valid instances of ``cls``, built from its declared field types."""
    per_field: dict[str, st.SearchStrategy[Any]] = {
        "request_id": _uints(_fields.UINT32),
    }
    for field in _schema.BODY_FIELDS[cls.TYPE]:
        per_field[field.name] = VALUE_STRATEGIES[field.field_type]
    no_rules: dict[str, int] = {}
    whole_model = _LIMIT_VALUES if issubclass(cls, Limits) else st.just(no_rules)
    return st.tuples(st.fixed_dictionaries(per_field), whole_model).map(_merge_and_build(cls))


# --------------------------------------------------------- arbitrary frames


def _prefixed(wire: Wire, content: bytes) -> bytes:
    return struct.pack(wire.prefix_format, len(content)) + content


_ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
_UNSAFE_CHAR = st.sampled_from("\x00\x01\x08\x0b\x0d\x1b\x1f\x7f\x80\x85\x9b\x9f")
_BAD_UTF8 = st.sampled_from(
    [b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xff", b"\xfe"]
)


@functools.cache
@st.composite
def _string_content(draw: st.DrawFn, valid: st.SearchStrategy[Any], max_bytes: int) -> bytes:
    """The octets of one string field: often valid, often breaking the constraint."""
    kind = draw(st.sampled_from(["valid", "any-text", "unsafe", "bad-utf8", "raw"]))
    if kind == "valid":
        return str(draw(valid)).encode("utf-8")
    if kind == "any-text":
        return _fit(draw(_ANY_TEXT), max_bytes).encode("utf-8")
    if kind == "raw":
        return draw(st.binary(max_size=min(max_bytes, 40)))
    base = str(draw(valid)).encode("utf-8")
    insert: bytes = draw(_BAD_UTF8) if kind == "bad-utf8" else draw(_UNSAFE_CHAR).encode("utf-8")
    at = draw(st.integers(0, len(base)))
    return (base[:at] + insert + base[at:])[:max_bytes]


def _pack(wire: Wire) -> Callable[[int], bytes]:
    return lambda value: struct.pack(wire.prefix_format, value)


def _with_prefix(wire: Wire) -> Callable[[bytes], bytes]:
    return lambda content: _prefixed(wire, content)


def _strlist_octets(wire: Wire) -> Callable[[list[bytes]], bytes]:
    """strlist8 is a count, then that many str8 items."""
    return lambda items: struct.pack(wire.prefix_format, len(items)) + b"".join(
        _prefixed(_fields.STR8, item) for item in items
    )


def _first_item(items: tuple[str, ...]) -> str:
    return items[0] if items else "a"


@functools.cache
def _field_octets(field_type: FieldType) -> st.SearchStrategy[bytes]:
    """One field on the wire: well-shaped, but its value may break the constraint."""
    wire = field_type.wire
    valid = VALUE_STRATEGIES[field_type]
    if wire.shape in ("uint", "enum"):  # any value of the width: enums include undefined ones
        return st.one_of(valid, _uints(field_type)).map(_pack(wire))
    if wire.shape == "bool":
        return st.one_of(st.sampled_from([0, 1]), st.integers(0, 255)).map(_pack(wire))
    if wire.shape == "str":
        return _string_content(valid, wire.max_prefix_value).map(_with_prefix(wire))
    if wire.shape == "bytes":
        return st.binary(max_size=wire.max_prefix_value).map(_with_prefix(wire))
    if wire.shape == "strlist":
        item = _string_content(valid.map(_first_item), _fields.STR8.max_prefix_value)
        too_many = st.lists(st.just(b"a"), min_size=30, max_size=40)
        return st.one_of(st.lists(item, max_size=4), too_many).map(_strlist_octets(wire))
    raise AssertionError(f"no octet strategy for wire shape {wire.shape}")


@functools.cache
@st.composite
def wire_shaped_frames(draw: st.DrawFn, code: int) -> bytes:
    """A frame whose body has the right field layout, each value possibly invalid."""
    body = b"".join(
        draw(_field_octets(field.field_type)) for field in _schema.BODY_FIELDS[code]
    )
    return raw_frame(code, draw(_uints(_fields.UINT32)), body)


def _value_octets(field_type: FieldType, value: Any) -> bytes:
    """A valid value on the wire, written from its wire shape alone."""
    wire = field_type.wire
    if wire.shape in ("uint", "enum", "bool"):
        return struct.pack(wire.prefix_format, int(value))
    if wire.shape == "str":
        return _prefixed(wire, value.encode("utf-8"))
    if wire.shape == "bytes":
        return _prefixed(wire, value)
    if wire.shape == "strlist":
        count = struct.pack(wire.prefix_format, len(value))
        return count + b"".join(_prefixed(_fields.STR8, item.encode("utf-8")) for item in value)
    raise AssertionError(f"no encoding for wire shape {wire.shape}")


STRING_CODES = [
    code for code in CODES
    if any(f.field_type.wire.shape in ("str", "strlist") for f in _schema.BODY_FIELDS[code])
]
STRING_IDS = [MESSAGE_TYPES[code].NAME for code in STRING_CODES]


@functools.cache
@st.composite
def bad_utf8_frames(draw: st.DrawFn, code: int) -> bytes:
    """A valid frame of type ``code`` with ill-formed UTF-8 put into one string field."""
    message = draw(models(MESSAGE_TYPES[code]))
    fields = _schema.BODY_FIELDS[code]
    strings = [i for i, f in enumerate(fields) if f.field_type.wire.shape in ("str", "strlist")]
    target = draw(st.sampled_from(strings))
    bad = draw(_BAD_UTF8)
    parts = []
    for index, field in enumerate(fields):
        value = getattr(message, field.name)
        if index != target:
            parts.append(_value_octets(field.field_type, value))
        elif field.field_type.wire.shape == "str":
            cap = field.field_type.wire.max_prefix_value
            parts.append(_prefixed(field.field_type.wire, (bad + value.encode("utf-8"))[:cap]))
        else:  # one ill-formed item among the (valid) others
            items = [item.encode("utf-8") for item in value][:254]
            items.insert(draw(st.integers(0, len(items))), bad)
            count = struct.pack(field.field_type.wire.prefix_format, len(items))
            parts.append(count + b"".join(_prefixed(_fields.STR8, item) for item in items))
    return raw_frame(code, message.request_id, b"".join(parts))


_OFFSET = st.integers(0, 2**16)
"""Positions are drawn from one fixed strategy and reduced modulo the frame size."""
_MUTATION = st.sampled_from(["truncate", "append", "flip", "insert", "delete"])
_MOSTLY = st.integers(0, 3).map(bool)
"""True three times in four."""


@functools.cache
@st.composite
def mutated_frames(draw: st.DrawFn, code: int) -> bytes:
    """A valid frame of type ``code`` or a random body under its header, then damaged."""
    if draw(st.booleans()):
        frame = _fastcodec.encode(draw(models(MESSAGE_TYPES[code])))
    else:
        frame = raw_frame(code, draw(_uints(_fields.UINT32)), draw(st.binary(max_size=120)))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(_MUTATION)
        # Three times in four the damage lands in the body, where the parsers are.
        first = HEADER_SIZE if len(frame) > HEADER_SIZE and draw(_MOSTLY) else 0
        at = first + draw(_OFFSET) % (len(frame) - first + 1)
        if op == "truncate":
            frame = frame[:at]
        elif op == "append":
            frame += draw(st.binary(min_size=1, max_size=8))
        elif op == "flip" and at < len(frame):
            flipped = frame[at] ^ (1 << draw(st.integers(0, 7)))
            frame = frame[:at] + bytes([flipped]) + frame[at + 1 :]
        elif op == "insert":
            frame = frame[:at] + draw(st.binary(min_size=1, max_size=4)) + frame[at:]
        elif op == "delete":
            frame = frame[:at] + frame[at + draw(st.integers(1, 4)) :]
    # Mostly make the header's length match, so the damage reaches the body parsers.
    if len(frame) >= HEADER_SIZE and draw(_MOSTLY):
        frame = struct.pack(">I", len(frame) - 4) + frame[4:]
    return frame


Outcome = tuple[str, Any]


def _outcome(decode: Callable[[], Message]) -> Outcome:
    """What a decoder did. Any exception but RemoteProtocolError escapes and fails the test."""
    try:
        message = decode()
    except RemoteProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)
        return ("error", (exc.code, exc.request_id))
    return ("ok", message)


def _value_types(message: Message) -> dict[str, type]:
    return {name: type(value) for name, value in message.__dict__.items()}


def _assert_decoders_agree(frame: bytes) -> Outcome:
    """Both decoders accept with equal models, or both reject with the same code."""
    fast = _outcome(lambda: _fastcodec.decode_frame(frame))
    reference = _outcome(lambda: _schema.construct_decode(frame))
    assert fast == reference, f"frame {frame.hex()}: fast {fast!r} != construct {reference!r}"
    if fast[0] == "ok":  # equal values of equal types (True == 1, but bool is not int)
        assert type(fast[1]) is type(reference[1])
        assert _value_types(fast[1]) == _value_types(reference[1])
    return fast


# ------------------------------------------------------------------- tests


def test_every_declared_field_type_has_a_value_strategy() -> None:
    used = {field.field_type for fields in _schema.BODY_FIELDS.values() for field in fields}
    declared = {value for value in vars(_fields).values() if isinstance(value, FieldType)}
    missing = sorted(ft.name for ft in (used | declared) - VALUE_STRATEGIES.keys())
    assert not missing, f"write a value strategy for field types {missing}"


def test_every_message_type_is_generated_from_its_declaration() -> None:
    assert set(CODES) == set(_schema.BODY_FIELDS) == set(_fastcodec.DECODERS)
    assert set(CODES) == set(_fastcodec.ENCODERS)


@pytest.mark.parametrize("code", CODES, ids=CODE_IDS)
@VALID_PER_TYPE
@given(data=st.data())
def test_valid_models_encode_identically_and_decode_back(code: int, data: st.DataObject) -> None:
    message = data.draw(models(MESSAGE_TYPES[code]))
    frame = _fastcodec.encode(message)
    assert frame == _schema.construct_encode(message)
    fast = _fastcodec.decode_frame(frame)
    reference = _schema.construct_decode(frame)
    assert fast == message == reference
    assert type(fast) is type(message) is type(reference)
    assert _value_types(fast) == _value_types(message) == _value_types(reference)


@pytest.mark.parametrize("code", CODES, ids=CODE_IDS)
@settings(max_examples=25, deadline=None, suppress_health_check=_QUIET)
@given(data=st.data())
def test_an_unvalidated_build_equals_the_validated_model(code: int, data: st.DataObject) -> None:
    # Message.unvalidated is the server's hot-path constructor: it must give the
    # very model validation gives (same value, same encoding), defaults included.
    message = data.draw(models(MESSAGE_TYPES[code]))
    cls = type(message)
    values = dict(message)
    assert cls.unvalidated(**values) == message
    assert _fastcodec.encode(cls.unvalidated(**values)) == _fastcodec.encode(message)
    optional = sorted(name for name, field in cls.model_fields.items() if not field.is_required())
    left_out = data.draw(st.sets(st.sampled_from(optional))) if optional else set()
    partial = {name: value for name, value in values.items() if name not in left_out}
    try:
        expected = cls.model_validate(partial)
    except ValidationError:  # a default beside drawn values can break a whole-model rule
        reject()
    assert cls.unvalidated(**partial) == expected


@pytest.mark.parametrize("code", CODES, ids=CODE_IDS)
@DAMAGED_PER_TYPE
@given(data=st.data())
def test_decoders_agree_on_wire_shaped_frames_and_accepted_ones_reencode_exactly(
    code: int, data: st.DataObject
) -> None:
    frame = data.draw(wire_shaped_frames(code))
    kind, result = _assert_decoders_agree(frame)
    if kind == "ok":  # one encoding per value: what decodes re-encodes to the same octets
        assert _fastcodec.encode(result) == frame


@pytest.mark.parametrize("code", CODES, ids=CODE_IDS)
@DAMAGED_PER_TYPE
@given(data=st.data())
def test_decoders_agree_on_mutated_frames(code: int, data: st.DataObject) -> None:
    _assert_decoders_agree(data.draw(mutated_frames(code)))


@settings(max_examples=1000, deadline=None)
@given(frame=st.one_of(
    st.binary(max_size=64),
    st.builds(raw_frame, st.integers(0, 0xFFFF), st.integers(0, _U32_MAX), st.binary(max_size=64)),
))
def test_decoders_agree_on_arbitrary_octets(frame: bytes) -> None:
    _assert_decoders_agree(frame)


@pytest.mark.parametrize("code", CODES, ids=CODE_IDS)
@settings(max_examples=20, deadline=None, suppress_health_check=_QUIET)
@given(data=st.data())
def test_fast_decoder_reads_only_its_frame_from_a_shared_buffer(
    code: int, data: st.DataObject
) -> None:
    frame = data.draw(wire_shaped_frames(code))
    _, type_code, request_id = HEADER_STRUCT.unpack_from(frame)
    before = data.draw(st.binary(max_size=16))
    after = data.draw(st.binary(min_size=1, max_size=300))
    buffer = bytearray(before + frame + after)
    start, end = len(before) + HEADER_SIZE, len(before) + len(frame)
    alone = _outcome(lambda: _fastcodec.decode_frame(frame))
    shared = _outcome(lambda: _fastcodec.decode_body(type_code, request_id, buffer, start, end))
    assert shared == alone


@pytest.mark.parametrize("code", STRING_CODES, ids=STRING_IDS)
@settings(max_examples=20, deadline=None, suppress_health_check=_QUIET)
@given(data=st.data())
def test_both_decoders_report_invalid_utf8(code: int, data: st.DataObject) -> None:
    frame = data.draw(bad_utf8_frames(code))
    for decode in (_fastcodec.decode_frame, _schema.construct_decode):
        with pytest.raises(RemoteProtocolError) as caught:
            decode(frame)
        assert caught.value.code is ErrorCode.INVALID_UTF8, decode.__qualname__
