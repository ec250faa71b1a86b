"""Field types: how each field sits on the wire and which constraint it obeys.

A message declaration (``chatproto.messages``) gives every field one of the
``Annotated`` types at the bottom of this module. Each carries a ``FieldType``
that holds three things, declared once:

* the wire shape as a ``construct`` subcon (from which the construct schema and
  the fast codec are both derived);
* the spec's constraint, as a check that raises ``FieldError`` with the spec's
  error code (pydantic runs it when a model is built; the fast decoder runs the
  very same function);
* the text the spec site prints in the field table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import construct as cs
from pydantic import AfterValidator

from chatproto import names
from chatproto._errors import ErrorCode
from chatproto._header import MAX_FRAME_LENGTH, PRE_WELCOME_FRAME_LENGTH


class FieldError(ValueError):
    """A field value breaks its constraint; ``code`` is the spec's error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Wire:
    """A wire shape: one of the encodings of the spec's "Field encodings" table."""

    name: str
    """The spec's name for the encoding (``u16``, ``str8``, ...)."""
    subcon: cs.Construct
    shape: str
    """``uint``, ``enum``, ``bool``, ``str``, ``bytes`` or ``strlist``: what the codec emits."""
    meaning: str
    enum_values: frozenset[int] = frozenset()
    """For an ``enum`` shape: the values that parse (the subcon's OneOf is built from it)."""
    prefix_size: int = field(init=False)
    """Octets of the fixed part: the whole of an integer, the length prefix of the rest."""
    max_prefix_value: int = field(init=False)
    """The largest value the fixed part holds: the integer's range, or the longest length."""

    def __post_init__(self) -> None:
        # Read from the subcon once: every validated field asks for its bound, and
        # construct's sizeof() costs microseconds a call.
        size = int(_prefix_subcon(self.subcon).sizeof())
        object.__setattr__(self, "prefix_size", size)
        object.__setattr__(self, "max_prefix_value", 2 ** (8 * size) - 1)

    @property
    def prefix_format(self) -> str:
        """The ``struct`` format of the fixed part: the integer, or the length prefix."""
        return _struct_format_of(self.subcon)


def _prefix_subcon(subcon: cs.Construct) -> cs.Construct:
    """The integer subcon at the front of a wire shape (the value or the length)."""
    while not isinstance(subcon, cs.FormatField):
        if isinstance(subcon, cs.Prefixed):
            subcon = subcon.lengthfield
        elif isinstance(subcon, cs.FocusedSeq):  # PrefixedArray: the count comes first
            subcon = subcon.subcons[0].subcon
        elif isinstance(subcon, cs.Subconstruct):
            subcon = subcon.subcon
        else:
            raise TypeError(f"no integer prefix found in {subcon!r}")
    return subcon


def _struct_format_of(subcon: cs.Construct) -> str:
    fmt: str = _prefix_subcon(subcon).fmtstr
    if not fmt.startswith(">"):
        raise TypeError(f"spec v1 integers are big-endian, got format {fmt!r}")
    return fmt


# A boolean is one octet that MUST be 0 or 1: construct's Flag accepts any
# non-zero octet as true, which would make two encodings of one value.
_STRICT_FLAG = cs.ExprAdapter(
    cs.OneOf(cs.Int8ub, [0, 1]),
    decoder=lambda obj, ctx: obj == 1,
    encoder=lambda obj, ctx: int(obj),
)

U8 = Wire("u8", cs.Int8ub, "uint", "unsigned 8-bit integer")
U16 = Wire("u16", cs.Int16ub, "uint", "unsigned 16-bit integer, big-endian")
U32 = Wire("u32", cs.Int32ub, "uint", "unsigned 32-bit integer, big-endian")
U64 = Wire("u64", cs.Int64ub, "uint", "unsigned 64-bit integer, big-endian")
BOOL = Wire("bool", _STRICT_FLAG, "bool", "one octet, 0 (false) or 1 (true)")
STR8 = Wire("str8", cs.PascalString(cs.Int8ub, "utf8"), "str",
            "u8 byte length, then that many octets of UTF-8")
STR16 = Wire("str16", cs.PascalString(cs.Int16ub, "utf8"), "str",
             "u16 byte length, then that many octets of UTF-8")
BYTES8 = Wire("bytes8", cs.Prefixed(cs.Int8ub, cs.GreedyBytes), "bytes",
              "u8 byte length, then that many opaque octets")
STRLIST8 = Wire("strlist8", cs.PrefixedArray(cs.Int8ub, cs.PascalString(cs.Int8ub, "utf8")),
                "strlist", "u8 count, then that many str8")

def _enum8(values: frozenset[int]) -> Wire:
    return Wire("u8 enum", cs.OneOf(cs.Int8ub, values), "enum",
                "one octet holding one of the listed values; any other does not parse",
                values)


LEAVE_KIND_WIRE = _enum8(frozenset(range(5)))

WIRES: tuple[Wire, ...] = (U8, U16, U32, U64, BOOL, LEAVE_KIND_WIRE, STR8, STR16, BYTES8,
                           STRLIST8)


StrCheck = Callable[[str, int], None]
"""A string check gets the value and its UTF-8 length in bytes."""


@dataclass(frozen=True, slots=True)
class FieldType:
    """A semantic field type: a wire shape plus the spec's constraint on it."""

    name: str
    wire: Wire
    constraint: str
    """The constraint in words, for the spec's field tables."""
    check: Callable[..., None] | None = None
    """Raises FieldError. For ``str`` shapes it is a ``StrCheck``; else it gets the value."""
    limit: str | None = None
    """The advertised limit (a ``Limits`` attribute) that bounds the UTF-8 length further."""
    limit_error: ErrorCode = ErrorCode.INVALID_FIELD
    """The error code for breaking ``limit``."""

    def validate(self, value: Any) -> Any:
        """Apply the wire-level bound and the constraint (pydantic's after-validator)."""
        shape = self.wire.shape
        if shape == "str":
            try:
                encoded_length = len(value.encode("utf-8"))
            except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form
                raise FieldError(ErrorCode.INVALID_UTF8, "not encodable as UTF-8") from None
            if encoded_length > self.wire.max_prefix_value:
                raise FieldError(ErrorCode.INVALID_FIELD, f"longer than {self.wire.name} allows")
            if self.check is not None:
                self.check(value, encoded_length)
        else:
            if shape == "uint" and not 0 <= value <= self.wire.max_prefix_value:
                raise FieldError(ErrorCode.INVALID_FIELD, f"out of range for {self.wire.name}")
            if shape == "enum" and value not in self.wire.enum_values:
                raise FieldError(ErrorCode.INVALID_FIELD, f"{value} is not a defined value")
            if shape == "bytes" and len(value) > self.wire.max_prefix_value:
                raise FieldError(ErrorCode.INVALID_FIELD, f"longer than {self.wire.name} allows")
            if shape == "strlist" and len(value) > self.wire.max_prefix_value:
                raise FieldError(ErrorCode.INVALID_FIELD, "too many items")
            if self.check is not None:
                self.check(value)
        return value


# ----------------------------------------------------------------- constraints

# Safe text (spec: CP-FIELD-5): no C0 control except TAB and LF, no DEL, no C1.
# Terminal clients print these strings; an ESC from a peer could rewrite a screen.
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LABEL = re.compile(r"[\x20-\x7e]+")
_CAPABILITY = re.compile(r"[a-z0-9][a-z0-9._/-]{0,63}")
MAX_CAPABILITIES = 32
MESSAGE_TEXT_MAX_BYTES = 16384
TOPIC_MAX_BYTES = 1024


def _text_check(min_bytes: int, max_bytes: int) -> StrCheck:
    def check(value: str, nbytes: int) -> None:
        if not min_bytes <= nbytes <= max_bytes:
            raise FieldError(ErrorCode.INVALID_FIELD,
                             f"text must be {min_bytes}..{max_bytes} bytes, got {nbytes}")
        # isprintable() is a quick pass for ordinary text; it is also False for
        # TAB, LF and harmless non-ASCII spaces, which the regex then allows.
        if not value.isprintable() and _UNSAFE_TEXT.search(value) is not None:
            raise FieldError(ErrorCode.INVALID_FIELD, "text contains a control character")

    return check


_NONEMPTY_SAFE_TEXT = _text_check(1, 65535)  # str16's own bound: the length is checked below


def _message_text_check(value: str, nbytes: int) -> None:
    """Safe text of 1 byte or more; past the protocol's cap, MESSAGE_TOO_LONG.

    A text longer than 16384 bytes is longer than any ``max_message_length``, so
    it gets the code CP-MSG-2 gives every text over that limit, not INVALID_FIELD;
    the text's other constraints are checked first, as the order of checks puts
    the limits after the constraints.
    """
    _NONEMPTY_SAFE_TEXT(value, nbytes)
    if nbytes > MESSAGE_TEXT_MAX_BYTES:
        raise FieldError(ErrorCode.MESSAGE_TOO_LONG,
                         f"text is {nbytes} bytes, more than any max_message_length allows "
                         f"({MESSAGE_TEXT_MAX_BYTES})")


class _KnownGood:
    """A bounded set of names already checked: nicks and rooms repeat in every frame."""

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self.names: set[str] = set()

    def add(self, name: str) -> None:
        if len(self.names) >= self.capacity:
            self.names.clear()
        self.names.add(name)


_GOOD_NICKS = _KnownGood()
_GOOD_ROOMS = _KnownGood()


def _check_nick(value: str, nbytes: int) -> None:
    if value in _GOOD_NICKS.names:
        return
    if nbytes > names.NICK_MAX_BYTES or names.NICK_PATTERN.fullmatch(value) is None:
        raise FieldError(ErrorCode.INVALID_NICK, f"invalid nickname {value!r}")
    _GOOD_NICKS.add(value)


def _check_optional_nick(value: str, nbytes: int) -> None:
    if value:
        _check_nick(value, nbytes)


def _check_room(value: str, nbytes: int) -> None:
    if value in _GOOD_ROOMS.names:
        return
    if nbytes > names.ROOM_NAME_MAX_BYTES or names.ROOM_NAME_PATTERN.fullmatch(value) is None:
        raise FieldError(ErrorCode.INVALID_ROOM_NAME, f"invalid room name {value!r}")
    _GOOD_ROOMS.add(value)


def _check_label(value: str, nbytes: int) -> None:
    if nbytes > 64 or _LABEL.fullmatch(value) is None:
        raise FieldError(ErrorCode.INVALID_FIELD, "a label is 1..64 printable ASCII characters")


def _check_password(value: str, nbytes: int) -> None:
    if nbytes == 0 or "\x00" in value:
        raise FieldError(ErrorCode.INVALID_FIELD, "a password is 1..255 bytes without NUL")


def _check_optional_password(value: str, nbytes: int) -> None:
    if value:
        _check_password(value, nbytes)


def _check_capabilities(value: tuple[str, ...]) -> None:
    if len(value) > MAX_CAPABILITIES:
        raise FieldError(ErrorCode.INVALID_FIELD, f"at most {MAX_CAPABILITIES} capabilities")
    for capability in value:
        if _CAPABILITY.fullmatch(capability) is None:
            raise FieldError(ErrorCode.INVALID_FIELD, f"invalid capability {capability!r}")


def _check_page_size(value: int) -> None:
    if value == 0:
        raise FieldError(ErrorCode.INVALID_FIELD, "a page holds at least 1 message")


def _check_version(value: int) -> None:
    if value == 0:
        raise FieldError(ErrorCode.INVALID_FIELD, "protocol versions start at 1")


_FRAME_LIMIT_RANGE = f"{PRE_WELCOME_FRAME_LENGTH}..{MAX_FRAME_LENGTH}"


def _check_frame_limit(value: int) -> None:
    if not PRE_WELCOME_FRAME_LENGTH <= value <= MAX_FRAME_LENGTH:
        raise FieldError(ErrorCode.INVALID_FIELD, f"max_frame_size must be {_FRAME_LIMIT_RANGE}")


# ----------------------------------------------------------------- field types

UINT8 = FieldType("u8", U8, "0..255")
UINT16 = FieldType("u16", U16, "0..65535")
UINT32 = FieldType("u32", U32, "0..2^32-1")
UINT64 = FieldType("u64", U64, "0..2^64-1")
FLAG = FieldType("bool", BOOL, "0 or 1")
VERSION = FieldType("version", U8, "1..255", _check_version)
PAGE_SIZE = FieldType("page-size", U16, "1..65535", _check_page_size)
FRAME_LIMIT = FieldType("frame-limit", U32, _FRAME_LIMIT_RANGE, _check_frame_limit)
LEAVE_KIND = FieldType("leave-kind", LEAVE_KIND_WIRE, "0 PART, 1 QUIT, 2 KICK, 3 BAN, 4 DISCONNECT")
NICK = FieldType("nick", STR8, "nickname profile: [A-Za-z][A-Za-z0-9_-]*, 1..32 bytes",
                 _check_nick, "max_nick_length", ErrorCode.INVALID_NICK)
OPTIONAL_NICK = FieldType("nick-or-empty", STR8, "empty, or a nickname", _check_optional_nick)
ROOM = FieldType("room", STR8, "'#' then [A-Za-z0-9_-], 2..64 bytes", _check_room,
                 "max_room_name_length", ErrorCode.INVALID_ROOM_NAME)
MESSAGE_TEXT = FieldType("message-text", STR16, "safe text, 1..16384 bytes",
                         _message_text_check, "max_message_length", ErrorCode.MESSAGE_TOO_LONG)
NOTICE_TEXT = FieldType("notice-text", STR16, "safe text, 0..16384 bytes",
                        _text_check(0, MESSAGE_TEXT_MAX_BYTES))
TOPIC = FieldType("topic", STR16, "safe text, 0..1024 bytes", _text_check(0, TOPIC_MAX_BYTES),
                  "max_topic_length", ErrorCode.INVALID_FIELD)
SHORT_TEXT = FieldType("short-text", STR8, "safe text, 0..255 bytes", _text_check(0, 255))
LABEL = FieldType("label", STR8, "printable ASCII, 1..64 bytes", _check_label)
PASSWORD = FieldType("password", STR8, "1..255 bytes of UTF-8, no NUL", _check_password)
OPTIONAL_PASSWORD = FieldType("password-or-empty", STR8, "empty, or a password",
                              _check_optional_password)
TOKEN = FieldType("token", BYTES8, "0..255 opaque octets")
CAPABILITIES = FieldType("capabilities", STRLIST8,
                         "0..32 names, each [a-z0-9][a-z0-9._/-]*, 1..64 bytes",
                         _check_capabilities)


Uint8 = Annotated[int, UINT8, AfterValidator(UINT8.validate)]
Uint16 = Annotated[int, UINT16, AfterValidator(UINT16.validate)]
Uint32 = Annotated[int, UINT32, AfterValidator(UINT32.validate)]
Uint64 = Annotated[int, UINT64, AfterValidator(UINT64.validate)]
Flag = Annotated[bool, FLAG, AfterValidator(FLAG.validate)]
Version = Annotated[int, VERSION, AfterValidator(VERSION.validate)]
PageSize = Annotated[int, PAGE_SIZE, AfterValidator(PAGE_SIZE.validate)]
FrameLimit = Annotated[int, FRAME_LIMIT, AfterValidator(FRAME_LIMIT.validate)]
LeaveKindCode = Annotated[int, LEAVE_KIND, AfterValidator(LEAVE_KIND.validate)]
Nickname = Annotated[str, NICK, AfterValidator(NICK.validate)]
OptionalNickname = Annotated[str, OPTIONAL_NICK, AfterValidator(OPTIONAL_NICK.validate)]
RoomName = Annotated[str, ROOM, AfterValidator(ROOM.validate)]
MessageText = Annotated[str, MESSAGE_TEXT, AfterValidator(MESSAGE_TEXT.validate)]
NoticeText = Annotated[str, NOTICE_TEXT, AfterValidator(NOTICE_TEXT.validate)]
Topic = Annotated[str, TOPIC, AfterValidator(TOPIC.validate)]
ShortText = Annotated[str, SHORT_TEXT, AfterValidator(SHORT_TEXT.validate)]
Label = Annotated[str, LABEL, AfterValidator(LABEL.validate)]
Password = Annotated[str, PASSWORD, AfterValidator(PASSWORD.validate)]
OptionalPassword = Annotated[str, OPTIONAL_PASSWORD, AfterValidator(OPTIONAL_PASSWORD.validate)]
Token = Annotated[bytes, TOKEN, AfterValidator(TOKEN.validate)]
Capabilities = Annotated[tuple[str, ...], CAPABILITIES, AfterValidator(CAPABILITIES.validate)]
