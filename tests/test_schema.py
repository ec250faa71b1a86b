"""The Schema value: built from message classes, read by every part, changed by none.

A test that needs another protocol builds another ``Schema`` (one more message
type, a field of another type) and drives Connections on it; spec v1's
``SCHEMA`` and the module-level views of it stay as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from pairs import feed, pair_in, raw_frame
from pydantic import Field
from schema_patch import retyped, with_message

from chatproto import (
    MESSAGE_TYPES,
    Connection,
    ErrorCode,
    FrameRejected,
    Limits,
    LocalProtocolError,
    Sender,
    State,
    _fastcodec,
    _schema,
    encode,
)
from chatproto._fields import UINT32, MessageText, ShortText
from chatproto._schema import SCHEMA, Schema
from chatproto.messages import (
    MESSAGE_CLASSES,
    Ok,
    SendRoom,
    _ClientRequest,
    _ServerMessage,
)


class Shout(_ClientRequest):
    """Shout at everyone (a test-only request, answered with OK)."""

    TYPE: ClassVar[int] = 0x7F01
    words: ShortText = Field(description="What to shout.")


class Shouted(_ServerMessage):
    """Someone shouted (a test-only event)."""

    TYPE: ClassVar[int] = 0x7F02
    nick: ShortText = Field(description="Who shouted.")
    words: ShortText = Field(description="What they shouted.")


EXTENDED = Schema.build([*SCHEMA.messages.values(), Shout, Shouted])


def test_spec_v1_schema_holds_every_declared_message_type() -> None:
    assert list(SCHEMA.messages) == sorted(cls.TYPE for cls in MESSAGE_CLASSES)
    assert SCHEMA.messages == MESSAGE_TYPES
    assert set(SCHEMA.by_name) == {cls.NAME for cls in MESSAGE_CLASSES}
    for table in (SCHEMA.body_fields, SCHEMA.body_structs, SCHEMA.strict_body_structs,
                  SCHEMA.codec.decoders, SCHEMA.codec.encoders, SCHEMA.limited_fields):
        assert set(table) == set(SCHEMA.messages)


def test_the_module_level_tables_are_views_of_the_schema() -> None:
    assert _schema.BODY_FIELDS is SCHEMA.body_fields
    assert _schema.TRANSITIONS is SCHEMA.transitions
    assert _fastcodec.DECODERS is SCHEMA.codec.decoders
    assert _fastcodec.ENCODERS is SCHEMA.codec.encoders


@pytest.mark.parametrize("table", [
    MESSAGE_TYPES, SCHEMA.messages, SCHEMA.body_fields, SCHEMA.transitions, SCHEMA.allowed,
    SCHEMA.codec.decoders, SCHEMA.limited_fields,
], ids=["MESSAGE_TYPES", "messages", "body_fields", "transitions", "allowed", "decoders",
        "limited_fields"])
def test_the_tables_are_read_only(table: Mapping[Any, Any]) -> None:
    with pytest.raises(TypeError):
        table[0] = None  # type: ignore[index]


def test_declaring_a_message_class_registers_nothing() -> None:
    # Shout and Shouted were declared above: only a schema built with them knows them.
    assert Shout.NAME == "SHOUT"
    assert Shout.TYPE not in MESSAGE_TYPES and Shout.TYPE not in SCHEMA.messages
    assert EXTENDED.messages[Shout.TYPE] is Shout


def test_a_type_code_declared_twice_fails_loudly() -> None:
    class Twin(_ServerMessage):
        TYPE: ClassVar[int] = Ok.TYPE

    with pytest.raises(TypeError, match="declared twice"):
        Schema.build([*SCHEMA.messages.values(), Twin])


def test_a_pair_on_a_schema_with_two_more_types_exchanges_them() -> None:
    pair = pair_in(State.READY, schema=EXTENDED)
    shout = Shout(request_id=9, words="hello")
    assert pair.transfer(Sender.CLIENT, shout) == [shout]
    assert pair.transfer(Sender.SERVER, Ok(request_id=9)) == [Ok(request_id=9)]
    shouted = Shouted(nick="alice", words="hello")
    assert pair.transfer(Sender.SERVER, shouted) == [shouted]
    assert pair.states == (State.READY, State.READY)
    # The state table has rows for them, from their SENDER alone.
    assert EXTENDED.transitions[(State.READY, Sender.CLIENT, "SHOUT")] is State.READY
    assert EXTENDED.transitions[(State.QUITTING, Sender.SERVER, "SHOUTED")] is State.QUITTING
    assert (State.READY, Sender.CLIENT, "SHOUT") not in SCHEMA.transitions
    # And the state table still refuses it where the spec does.
    fresh = Connection(Sender.CLIENT, schema=EXTENDED)
    with pytest.raises(LocalProtocolError) as info:
        fresh.send(shout)
    assert info.value.code is ErrorCode.STATE_VIOLATION


def test_spec_v1_connections_do_not_know_the_extra_types() -> None:
    shout_frame = EXTENDED.encode(Shout(request_id=9, words="hello"))
    with pytest.raises(LocalProtocolError):
        encode(Shout(request_id=9, words="hello"))
    server = pair_in(State.READY).server
    (rejected,) = feed(server, shout_frame)
    assert isinstance(rejected, FrameRejected)
    assert (rejected.code, rejected.type_code) == (ErrorCode.UNKNOWN_TYPE, Shout.TYPE)
    with pytest.raises(LocalProtocolError):  # nor may a spec v1 connection send one
        pair_in(State.READY).client.send(Shout(request_id=9, words="hello"))


def test_an_extra_types_limited_field_is_held_to_the_advertised_limit() -> None:
    class Announce(_ClientRequest):
        """Announce to every room (a test-only request)."""

        TYPE: ClassVar[int] = 0x7F03
        text: MessageText = Field(description="The announcement.")

    schema = with_message(Announce)
    assert [f.limit_name for f in schema.limited_fields[Announce.TYPE]] == ["max_message_length"]
    pair = pair_in(State.READY, Limits(max_message_length=10), schema=schema)
    long = Announce(request_id=4, text="x" * 11)
    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(long)
    assert info.value.code is ErrorCode.MESSAGE_TOO_LONG
    (rejected,) = feed(pair.server, schema.encode(long))
    assert isinstance(rejected, FrameRejected)
    assert (rejected.code, rejected.type_code) == (ErrorCode.MESSAGE_TOO_LONG, Announce.TYPE)


def test_a_pair_on_a_schema_with_a_retyped_field_uses_the_new_width() -> None:
    narrow = retyped(SendRoom, "client_msg_id", UINT32)
    message = SendRoom(request_id=5, room="#room", client_msg_id=42, text="hi")
    pair = pair_in(State.READY, schema=narrow)
    frame = pair.client.send(message)
    assert len(frame) == len(encode(message)) - 4
    assert feed(pair.server, frame) == [message]
    # Spec v1's server reads the same octets as a SEND_ROOM cut short.
    (rejected,) = feed(pair_in(State.READY).server, frame)
    assert isinstance(rejected, FrameRejected)
    assert rejected.code is ErrorCode.MALFORMED_MESSAGE
    assert SCHEMA.body_fields[SendRoom.TYPE] != narrow.body_fields[SendRoom.TYPE]


def test_construct_and_the_fast_codec_agree_on_a_built_schema() -> None:
    for message in (Shout(request_id=3, words="héllo"), Shouted(nick="bob", words="")):
        frame = EXTENDED.encode(message)
        assert EXTENDED.construct_encode(message) == frame
        assert EXTENDED.decode_frame(frame) == message == EXTENDED.construct_decode(frame)


def test_a_schema_without_a_type_answers_unknown_type() -> None:
    smaller = Schema.build(cls for cls in SCHEMA.messages.values() if cls is not SendRoom)
    frame = raw_frame(SendRoom.TYPE, 5, b"")
    pair = pair_in(State.READY, schema=smaller)
    (rejected,) = feed(pair.server, frame)
    assert isinstance(rejected, FrameRejected) and rejected.code is ErrorCode.UNKNOWN_TYPE


def test_a_message_type_can_be_added_to_any_schema() -> None:
    assert with_message(Shouted, with_message(Shout)).messages.keys() == EXTENDED.messages.keys()
