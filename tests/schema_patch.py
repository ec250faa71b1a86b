"""Helpers for test_vectors.py and test_specdoc.py (this is not a test module).

``patch_schema`` changes the wire schema of one message type for the duration of
a test, the way an edit of its declaration would: the schema's BODY_FIELDS and
construct structs, and the generated fast codec, are all rebuilt from the new
fields. ``temporary_message`` declares a whole new message type the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import construct as cs
import pytest

from chatproto import _fastcodec, _schema
from chatproto._fields import FieldType
from chatproto._schema import BodyField
from chatproto.messages import MESSAGE_TYPES, Message


def patch_schema(monkeypatch: pytest.MonkeyPatch, code: int,
                 fields: tuple[BodyField, ...]) -> None:
    """Give message type ``code`` the body ``fields``; the codecs follow."""
    struct = cs.Struct(*(field.name / field.field_type.wire.subcon for field in fields))
    monkeypatch.setitem(_schema.BODY_FIELDS, code, fields)
    monkeypatch.setitem(_schema.BODY_STRUCTS, code, struct)
    monkeypatch.setitem(_schema._STRICT_BODY_STRUCTS, code,
                        cs.FocusedSeq("body", "body" / struct, cs.Terminated))
    decoders, encoders, _ = _fastcodec._generate()
    monkeypatch.setitem(_fastcodec.DECODERS, code, decoders[code])
    monkeypatch.setitem(_fastcodec.ENCODERS, code, encoders[code])


def retype_field(monkeypatch: pytest.MonkeyPatch, code: int, name: str,
                 field_type: FieldType) -> None:
    """Change the field type of one body field of message type ``code``."""
    fields = tuple(
        BodyField(field.name, field_type, field.description) if field.name == name else field
        for field in _schema.BODY_FIELDS[code]
    )
    assert fields != _schema.BODY_FIELDS[code], f"no field {name!r}"
    patch_schema(monkeypatch, code, fields)


@contextmanager
def temporary_message(monkeypatch: pytest.MonkeyPatch, cls: type[Message]) -> Iterator[None]:
    """Make an already declared (hence registered) class part of the schema, then remove it."""
    try:
        patch_schema(monkeypatch, cls.TYPE, _schema.body_fields(cls))
        yield
    finally:
        MESSAGE_TYPES.pop(cls.TYPE, None)
