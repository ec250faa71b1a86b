"""Schemas that differ from spec v1's, for test_vectors, test_specdoc and test_site
(this is not a test module).

A test that changes a declaration builds a new ``Schema`` and hands it to what
it checks (a ``Connection``, the spec tooling); nothing global changes, so
there is nothing to undo. ``retyped`` is the schema after an edit of one
field's type; ``with_message`` the schema after a message type is declared.
"""

from __future__ import annotations

from chatproto._fields import FieldType
from chatproto._schema import SCHEMA, Schema
from chatproto.messages import Message


def retyped(cls: type[Message], name: str, field_type: FieldType,
            schema: Schema = SCHEMA) -> Schema:
    """``schema`` with the body field ``name`` of ``cls`` of type ``field_type``."""
    changed = schema.with_field_type(cls, name, field_type)
    assert changed.body_fields[cls.TYPE] != schema.body_fields[cls.TYPE], f"{name} is already so"
    return changed


def with_message(cls: type[Message], schema: Schema = SCHEMA) -> Schema:
    """``schema`` with one more message type, ``cls``."""
    return Schema.build([*schema.messages.values(), cls])
