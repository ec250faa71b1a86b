"""Field types: each constraint accepts what the spec allows and rejects the rest with its code.

Every case is checked two ways: ``FieldType.validate`` (which the fast decoder's
checks share) must raise ``FieldError`` carrying the expected ``ErrorCode``, and
pydantic validation of the field's ``Annotated`` type must fail with a
``ValidationError`` that ``chatproto._schema.error_code_of`` maps to the same code.
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import ConfigDict, TypeAdapter, ValidationError

from chatproto import _fields
from chatproto._errors import ErrorCode
from chatproto._fields import FieldError, FieldType
from chatproto._schema import error_code_of
from chatproto.messages import (
    SEND_ROOM_OVERHEAD,
    Hello,
    Join,
    Limits,
    Notice,
    SendRoom,
    Welcome,
)

OK = None
"""Expected outcome of a value the constraint accepts."""

INVALID_FIELD = ErrorCode.INVALID_FIELD
INVALID_NICK = ErrorCode.INVALID_NICK
INVALID_ROOM = ErrorCode.INVALID_ROOM_NAME
INVALID_UTF8 = ErrorCode.INVALID_UTF8
MESSAGE_TOO_LONG = ErrorCode.MESSAGE_TOO_LONG

CYRILLIC_A = "\u0430"  # looks like Latin "a"
LONE_SURROGATE = "\ud800"


def _annotated_types() -> dict[FieldType, Any]:
    """Each FieldType's ``Annotated`` alias in ``chatproto._fields``, found by its metadata."""
    out: dict[FieldType, Any] = {}
    for value in vars(_fields).values():
        if typing.get_origin(value) is typing.Annotated:
            for meta in typing.get_args(value)[1:]:
                if isinstance(meta, FieldType):
                    out[meta] = value
    return out


ANNOTATED = _annotated_types()
ADAPTERS = {
    field_type: TypeAdapter(alias, config=ConfigDict(strict=True))
    for field_type, alias in ANNOTATED.items()
}


def field_error_code(field_type: FieldType, value: Any) -> ErrorCode | None:
    """The code ``FieldType.validate`` raises for ``value``, or None if it accepts it."""
    try:
        field_type.validate(value)
    except FieldError as exc:
        return exc.code
    return None


def pydantic_error_code(field_type: FieldType, value: Any) -> ErrorCode | None:
    """The code pydantic validation of the field's Annotated type fails with, or None."""
    try:
        ADAPTERS[field_type].validate_python(value)
    except ValidationError as exc:
        return error_code_of(exc)
    return None


def _cases(field_type: FieldType, *cases: tuple[Any, ErrorCode | None]) -> list[Any]:
    return [
        pytest.param(field_type, value, expected, id=f"{field_type.name}-{value!r:.40}")
        for value, expected in cases
    ]


NICK_CASES = _cases(
    _fields.NICK,
    ("a", OK),
    ("Z", OK),
    ("alice", OK),
    ("Alice_Bob-2", OK),
    ("x-", OK),
    ("a_", OK),
    ("a" * 32, OK),
    ("A" + "0" * 31, OK),
    ("a" * 33, INVALID_NICK),
    ("", INVALID_NICK),
    ("1abc", INVALID_NICK),
    ("_abc", INVALID_NICK),
    ("-abc", INVALID_NICK),
    ("al ice", INVALID_NICK),
    ("alice!", INVALID_NICK),
    ("a.b", INVALID_NICK),
    ("alice\n", INVALID_NICK),
    ("a\x00", INVALID_NICK),
    (CYRILLIC_A, INVALID_NICK),
    (CYRILLIC_A + "lice", INVALID_NICK),
    ("alic\u0435", INVALID_NICK),  # CYRILLIC SMALL LETTER IE at the end
    ("\u00e9mile", INVALID_NICK),
    ("\uff41", INVALID_NICK),  # FULLWIDTH LATIN SMALL LETTER A
    ("a" + LONE_SURROGATE, INVALID_UTF8),
)

OPTIONAL_NICK_CASES = _cases(
    _fields.OPTIONAL_NICK,
    ("", OK),
    ("alice", OK),
    ("a" * 32, OK),
    ("a" * 33, INVALID_NICK),
    ("1abc", INVALID_NICK),
    (CYRILLIC_A, INVALID_NICK),
)

ROOM_CASES = _cases(
    _fields.ROOM,
    ("#a", OK),
    ("#A", OK),
    ("#1", OK),
    ("#_", OK),
    ("#-", OK),
    ("#general", OK),
    ("#Room_1-x", OK),
    ("#" + "a" * 63, OK),
    ("#" + "a" * 64, INVALID_ROOM),
    ("", INVALID_ROOM),
    ("#", INVALID_ROOM),
    ("general", INVALID_ROOM),
    ("##a", INVALID_ROOM),
    ("#a#", INVALID_ROOM),
    ("&a", INVALID_ROOM),
    ("#a b", INVALID_ROOM),
    ("#a.b", INVALID_ROOM),
    ("#a\n", INVALID_ROOM),
    ("#" + CYRILLIC_A, INVALID_ROOM),
    ("#caf\u00e9", INVALID_ROOM),
    ("#" + LONE_SURROGATE, INVALID_UTF8),
)

SAFE_TEXT_TYPES = [_fields.MESSAGE_TEXT, _fields.NOTICE_TEXT, _fields.TOPIC, _fields.SHORT_TEXT]

SAFE_TEXT_CASES = [
    case
    for field_type in SAFE_TEXT_TYPES
    for case in _cases(
        field_type,
        ("hello", OK),
        (" ", OK),
        ("a\tb", OK),
        ("line one\nline two", OK),
        ("\t\n", OK),
        ("zo\u00eb", OK),
        ("\u65e5\u672c\u8a9e", OK),
        ("\U0001f600", OK),
        ("\u00a0", OK),  # no-break space: not a control
        ("\u2028", OK),  # line separator: not a control
        ("\u202e", OK),  # bidi override: the safe-text rule does not cover it
        ("\u00bf", OK),  # first code point after C1
        ("\x1b[31mred", INVALID_FIELD),
        ("\x1b", INVALID_FIELD),
        ("a\x00b", INVALID_FIELD),
        ("\x01", INVALID_FIELD),
        ("\x08", INVALID_FIELD),
        ("\x0b", INVALID_FIELD),
        ("\x0c", INVALID_FIELD),
        ("over\rwrite", INVALID_FIELD),
        ("\x1f", INVALID_FIELD),
        ("\x7f", INVALID_FIELD),
        ("\x80", INVALID_FIELD),
        ("\x85", INVALID_FIELD),
        ("\x9b", INVALID_FIELD),
        ("\x9f", INVALID_FIELD),
        ("fine until \x85", INVALID_FIELD),
        (LONE_SURROGATE, INVALID_UTF8),
        ("a\udfffb", INVALID_UTF8),
    )
]

TEXT_LENGTH_CASES = [
    *_cases(
        _fields.MESSAGE_TEXT,
        ("", INVALID_FIELD),
        ("a", OK),
        ("a" * 16384, OK),
        # Past the protocol cap a text is longer than any max_message_length (CP-MSG-2).
        ("a" * 16385, MESSAGE_TOO_LONG),
        ("\u00e9" * 8192, OK),  # 16384 bytes of UTF-8
        ("\u00e9" * 8192 + "a", MESSAGE_TOO_LONG),  # 8193 characters, 16385 bytes
        ("\U0001f600" * 4096, OK),
        ("\U0001f600" * 4096 + "a", MESSAGE_TOO_LONG),
        ("\x1b" + "a" * 16385, INVALID_FIELD),  # unsafe first: constraints before limits
    ),
    *_cases(
        _fields.NOTICE_TEXT,
        ("", OK),
        ("a" * 16384, OK),
        ("a" * 16385, INVALID_FIELD),
    ),
    *_cases(
        _fields.TOPIC,
        ("", OK),
        ("a" * 1024, OK),
        ("a" * 1025, INVALID_FIELD),
        ("\u20ac" * 341 + "a", OK),  # 1024 bytes
        ("\u20ac" * 342, INVALID_FIELD),  # 342 characters, 1026 bytes
    ),
    *_cases(
        _fields.SHORT_TEXT,
        ("", OK),
        ("a" * 255, OK),
        ("a" * 256, INVALID_FIELD),
        ("\u00e9" * 127 + "a", OK),  # 255 bytes
        ("\u00e9" * 128, INVALID_FIELD),  # 128 characters, 256 bytes
    ),
]

PASSWORD_CASES = [
    *_cases(
        _fields.PASSWORD,
        ("x", OK),
        ("hunter2", OK),
        ("correct horse battery staple", OK),
        ("p\u00e4ssw\u00f6rd", OK),
        ("\x1b\x7f\x85\t", OK),  # compared byte for byte: only NUL is excluded
        ("a" * 255, OK),
        ("\u00e9" * 127 + "a", OK),  # 255 bytes
        ("", INVALID_FIELD),
        ("a\x00b", INVALID_FIELD),
        ("\x00", INVALID_FIELD),
        ("a" * 256, INVALID_FIELD),
        ("\u00e9" * 128, INVALID_FIELD),
        (LONE_SURROGATE, INVALID_UTF8),
    ),
    *_cases(
        _fields.OPTIONAL_PASSWORD,
        ("", OK),
        ("hunter2", OK),
        ("a" * 255, OK),
        ("a\x00", INVALID_FIELD),
        ("a" * 256, INVALID_FIELD),
    ),
]

LABEL_CASES = _cases(
    _fields.LABEL,
    ("cpcli/0.1", OK),
    ("ascii", OK),
    (" ", OK),
    ("~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", OK),
    ("a" * 64, OK),
    ("a" * 65, INVALID_FIELD),
    ("", INVALID_FIELD),
    ("caf\u00e9", INVALID_FIELD),
    ("a\tb", INVALID_FIELD),
    ("a\x7f", INVALID_FIELD),
    ("a\x1b", INVALID_FIELD),
    ("a\n", INVALID_FIELD),
)

CAPABILITY_CASES = _cases(
    _fields.CAPABILITIES,
    ((), OK),
    (("a",), OK),
    (("0",), OK),
    (("example.org/typing-notifications",), OK),
    (("a.b_c/d-e",), OK),
    (("_a",), INVALID_FIELD),  # "_" may follow, not start
    (("a" * 64,), OK),
    (("a" * 65,), INVALID_FIELD),
    (("",), INVALID_FIELD),
    (("A",), INVALID_FIELD),
    (("abC",), INVALID_FIELD),
    (("-a",), INVALID_FIELD),
    ((".a",), INVALID_FIELD),
    (("/a",), INVALID_FIELD),
    (("a b",), INVALID_FIELD),
    (("caf\u00e9",), INVALID_FIELD),
    (("a\n",), INVALID_FIELD),
    (("ok", "Not-ok"), INVALID_FIELD),
    (tuple(f"cap{i}" for i in range(32)), OK),
    (tuple(f"cap{i}" for i in range(33)), INVALID_FIELD),
    (tuple(f"cap{i}" for i in range(256)), INVALID_FIELD),  # more than strlist8 can count
)

INTEGER_CASES = [
    *_cases(_fields.UINT8, (0, OK), (255, OK), (256, INVALID_FIELD), (-1, INVALID_FIELD)),
    *_cases(_fields.UINT16, (0, OK), (65535, OK), (65536, INVALID_FIELD), (-1, INVALID_FIELD)),
    *_cases(_fields.UINT32, (0, OK), (2**32 - 1, OK), (2**32, INVALID_FIELD)),
    *_cases(_fields.UINT64, (0, OK), (2**64 - 1, OK), (2**64, INVALID_FIELD), (-1, INVALID_FIELD)),
    *_cases(
        _fields.VERSION,
        (0, INVALID_FIELD),
        (1, OK),
        (2, OK),
        (255, OK),
        (256, INVALID_FIELD),
        (-1, INVALID_FIELD),
    ),
    *_cases(
        _fields.PAGE_SIZE,
        (0, INVALID_FIELD),
        (1, OK),
        (65535, OK),
        (65536, INVALID_FIELD),
        (-1, INVALID_FIELD),
    ),
    *_cases(
        _fields.FRAME_LIMIT,
        (0, INVALID_FIELD),
        (4095, INVALID_FIELD),
        (4096, OK),
        (16384, OK),
        (65536, OK),
        (65537, INVALID_FIELD),
        (2**32 - 1, INVALID_FIELD),
    ),
    *_cases(
        _fields.LEAVE_KIND,
        (0, OK),
        (1, OK),
        (2, OK),
        (3, OK),
        (4, OK),
        (5, INVALID_FIELD),
        (255, INVALID_FIELD),
    ),
]

OPAQUE_CASES = [
    *_cases(_fields.FLAG, (True, OK), (False, OK)),
    *_cases(
        _fields.TOKEN,
        (b"", OK),
        (b"\x00\xff", OK),
        (bytes(255), OK),
        (bytes(256), INVALID_FIELD),
    ),
]

ALL_CASES = [
    *NICK_CASES,
    *OPTIONAL_NICK_CASES,
    *ROOM_CASES,
    *SAFE_TEXT_CASES,
    *TEXT_LENGTH_CASES,
    *PASSWORD_CASES,
    *LABEL_CASES,
    *CAPABILITY_CASES,
    *INTEGER_CASES,
    *OPAQUE_CASES,
]


def test_every_field_type_has_an_annotated_alias_and_cases() -> None:
    declared = {value for value in vars(_fields).values() if isinstance(value, FieldType)}
    assert set(ANNOTATED) == declared
    covered = {case.values[0] for case in ALL_CASES}
    missing = sorted(field_type.name for field_type in declared - covered)
    assert not missing, f"no constraint cases for field types {missing}"


@pytest.mark.parametrize(("field_type", "value", "expected"), ALL_CASES)
def test_field_type_validate_raises_the_spec_code(
    field_type: FieldType, value: Any, expected: ErrorCode | None
) -> None:
    assert field_error_code(field_type, value) == expected


@pytest.mark.parametrize(("field_type", "value", "expected"), ALL_CASES)
def test_pydantic_validation_fails_with_the_same_code(
    field_type: FieldType, value: Any, expected: ErrorCode | None
) -> None:
    assert pydantic_error_code(field_type, value) == expected


@pytest.mark.parametrize("field_type", SAFE_TEXT_TYPES, ids=lambda ft: ft.name)
def test_safe_text_rejects_every_c0_c1_and_del_except_tab_and_lf(field_type: FieldType) -> None:
    for code_point in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]:
        char = chr(code_point)
        expected = None if char in "\t\n" else INVALID_FIELD
        assert field_error_code(field_type, f"a{char}b") == expected, hex(code_point)


@pytest.mark.parametrize("field_type", SAFE_TEXT_TYPES, ids=lambda ft: ft.name)
def test_safe_text_accepts_everything_else_in_the_bmp(field_type: FieldType) -> None:
    unsafe = {*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)} - {0x09, 0x0A}
    surrogates = range(0xD800, 0xE000)
    for start in range(0, 0x10000, 64):  # in chunks that fit every type's byte limit
        chunk = "x" + "".join(
            chr(cp) for cp in range(start, start + 64) if cp not in unsafe and cp not in surrogates
        )
        assert field_error_code(field_type, chunk) is None, hex(start)


def test_str_fields_reject_values_longer_than_their_length_prefix() -> None:
    # The wire bound comes before the constraint: 256 bytes cannot be a str8 at all.
    assert field_error_code(_fields.NICK, "a" * 256) == INVALID_FIELD
    assert field_error_code(_fields.ROOM, "#" + "a" * 255) == INVALID_FIELD
    assert field_error_code(_fields.NOTICE_TEXT, "a" * 65536) == INVALID_FIELD


# --------------------------------------------------------- through the messages


def _message_error_code(cls: type[Any], **values: Any) -> ErrorCode:
    with pytest.raises(ValidationError) as caught:
        cls(**values)
    return error_code_of(caught.value)


def test_messages_report_the_field_codes() -> None:
    hello = {"min_version": 1, "max_version": 1, "client_name": "cpcli/0.1"}
    assert _message_error_code(Hello, nick=CYRILLIC_A + "lice", **hello) == INVALID_NICK
    assert _message_error_code(Hello, nick="alice", password="a\x00", **hello) == INVALID_FIELD
    assert _message_error_code(Join, room="general") == INVALID_ROOM
    assert _message_error_code(SendRoom, room="#a", text="\x1b[2J") == INVALID_FIELD
    assert _message_error_code(Notice, text="a" + LONE_SURROGATE) == INVALID_UTF8


def test_error_code_of_reports_the_first_field_in_declaration_order() -> None:
    # HELLO declares nick before client_name; both are broken here.
    code = _message_error_code(
        Hello, min_version=1, max_version=1, nick="1abc", client_name="caf\u00e9"
    )
    assert code == INVALID_NICK


def test_error_code_of_defaults_to_invalid_field_for_non_field_errors() -> None:
    # Strict mode refuses "1" for an integer before any FieldType check runs.
    assert _message_error_code(Join, room="#a", last_seen_seq="1") == INVALID_FIELD


# ------------------------------------------------------------------------ Limits

LIMIT_CAPS: list[tuple[str, int, int]] = [
    ("max_nick_length", 1, 32),
    ("max_room_name_length", 2, 64),
    ("max_message_length", 1, 16384),
    ("max_topic_length", 0, 1024),
    ("max_rooms_per_user", 1, 65535),
    ("msg_rate_burst", 1, 65535),
    ("cmd_rate_burst", 1, 65535),
    ("history_page_max", 1, 65535),
    ("msg_rate_interval_ms", 1, 2**32 - 1),
    ("cmd_rate_interval_ms", 1, 2**32 - 1),
    ("history_on_join", 0, 65535),
]
"""(field, lowest accepted, highest accepted); the highest is also the wire type's maximum
where the protocol sets no lower cap."""


def _limits_error_code(**values: int) -> ErrorCode | None:
    try:
        Limits(**values)
    except ValidationError as exc:
        return error_code_of(exc)
    return None


def test_limits_defaults_are_valid() -> None:
    limits = Limits()
    assert Limits.model_validate(limits.model_dump()) == limits
    assert limits.idle_timeout_s > limits.keepalive_interval_s
    assert 4096 <= limits.max_frame_size <= 65536


def test_welcome_with_default_limits_carries_them() -> None:
    welcome = Welcome(
        version=1, server_name="cpserve/0.1", nick="alice", logged_in=False, casemapping="ascii"
    )
    assert welcome.limits == Limits()


@pytest.mark.parametrize(("name", "low", "high"), LIMIT_CAPS, ids=[c[0] for c in LIMIT_CAPS])
def test_limits_caps_are_enforced(name: str, low: int, high: int) -> None:
    assert _limits_error_code(**{name: low}) is None
    assert _limits_error_code(**{name: high}) is None
    assert _limits_error_code(**{name: high + 1}) == INVALID_FIELD
    if low > 0:
        assert _limits_error_code(**{name: low - 1}) == INVALID_FIELD
    else:
        assert _limits_error_code(**{name: -1}) == INVALID_FIELD


def test_limits_max_frame_size_range() -> None:
    small_send_room = 4096 - SEND_ROOM_OVERHEAD - 64  # so that a SEND_ROOM fits 4096
    assert _limits_error_code(max_frame_size=4096, max_message_length=small_send_room) is None
    assert _limits_error_code(max_frame_size=65536) is None
    assert _limits_error_code(max_frame_size=4095, max_message_length=1) == INVALID_FIELD
    assert _limits_error_code(max_frame_size=65537) == INVALID_FIELD


def test_limits_largest_send_room_must_fit_max_frame_size() -> None:
    fits = 4096 - SEND_ROOM_OVERHEAD - 64
    assert _limits_error_code(max_frame_size=4096, max_message_length=fits) is None
    assert _limits_error_code(max_frame_size=4096, max_message_length=fits + 1) == INVALID_FIELD


def test_limits_idle_timeout_must_exceed_keepalive_interval() -> None:
    assert _limits_error_code(keepalive_interval_s=1, idle_timeout_s=2) is None
    assert _limits_error_code(keepalive_interval_s=65534, idle_timeout_s=65535) is None
    assert _limits_error_code(keepalive_interval_s=30, idle_timeout_s=30) == INVALID_FIELD
    assert _limits_error_code(keepalive_interval_s=31, idle_timeout_s=30) == INVALID_FIELD
    assert _limits_error_code(keepalive_interval_s=0, idle_timeout_s=30) == INVALID_FIELD
    assert _limits_error_code(keepalive_interval_s=1, idle_timeout_s=0) == INVALID_FIELD


def test_welcome_enforces_the_limits_caps() -> None:
    head = {
        "version": 1, "server_name": "s", "nick": "alice", "logged_in": True,
        "casemapping": "ascii",
    }
    assert _message_error_code(Welcome, max_nick_length=33, **head) == INVALID_FIELD
    assert _message_error_code(Welcome, idle_timeout_s=1, **head) == INVALID_FIELD
