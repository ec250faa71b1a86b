"""The state table TRANSITIONS, exercised through real client/server pairs.

Every case below is generated from the table and the message declarations, so
an entry added to (or removed from) TRANSITIONS is covered without editing
this file:

* every (state, sender, key) entry: a pair is walked into ``state`` along every
  simple path of the table, ``sender`` sends a minimal ``key`` message, the
  peer decodes exactly that message, and both ends land in the entry's state;
* every (state, sender, key) *absent* from the table: ``send()`` refuses it with
  LocalProtocolError(STATE_VIOLATION), and a peer that receives it anyway
  raises a fatal RemoteProtocolError(STATE_VIOLATION).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from pairs import (
    ALL_KEYS,
    ROLES,
    SAMPLES,
    Pair,
    Step,
    class_of,
    drive,
    feed,
    message_for_key,
    minimal,
    pair_in,
    path_id,
    peer,
    receive_until_error,
    shortest_path,
    simple_paths,
)

from chatproto import (
    ConnectionClosed,
    ErrorCode,
    LocalProtocolError,
    Sender,
    State,
    decode_frame,
    encode,
    error_message,
)
from chatproto._fields import FieldType
from chatproto._schema import BODY_FIELDS, TRANSITIONS
from chatproto._state import ERROR_FATAL, ERROR_NONFATAL, event_key
from chatproto.messages import MESSAGE_TYPES, Message, Quit

Entry = tuple[State, Sender, str]

LIVE_STATES = tuple(state for state in State if state is not State.CLOSED)

POSITIVE_CASES: list[tuple[Entry, tuple[Step, ...]]] = [
    (entry, path) for entry in sorted(TRANSITIONS) for path in simple_paths(entry[0])
]

NEGATIVE_CASES: list[Entry] = [
    (state, sender, key)
    for state in State
    for sender in ROLES
    for key in ALL_KEYS
    if (state, sender, key) not in TRANSITIONS
]


def _entry_id(entry: Entry) -> str:
    state, sender, key = entry
    return f"{state}:{sender}:{key}"


# ------------------------------------------------------- the generators work


@pytest.mark.parametrize("cls", list(MESSAGE_TYPES.values()), ids=lambda cls: cls.NAME)
def test_minimal_instance_of_every_message_type_round_trips(cls: type[Message]) -> None:
    message = minimal(cls, request_id=3)
    assert type(message) is cls
    assert message.request_id == 3
    assert decode_frame(encode(message)) == message


def test_every_field_type_in_use_has_a_sample() -> None:
    in_use = {field.field_type.name for fields in BODY_FIELDS.values() for field in fields}
    assert in_use <= set(SAMPLES)


def test_samples_satisfy_their_field_types() -> None:
    field_types: dict[str, FieldType] = {
        field.field_type.name: field.field_type
        for fields in BODY_FIELDS.values()
        for field in fields
    }
    for name, field_type in field_types.items():
        field_type.validate(SAMPLES[name])


def test_every_table_entry_is_exercised_by_a_positive_case() -> None:
    assert {entry for entry, _ in POSITIVE_CASES} == set(TRANSITIONS)


def test_every_state_is_reachable_from_the_initial_state() -> None:
    for state in State:
        assert simple_paths(state), f"{state} is unreachable"


# ------------------------------------------------------------ the table's shape


@pytest.mark.parametrize("entry", sorted(TRANSITIONS), ids=_entry_id)
def test_each_entry_names_a_message_its_sender_may_send(entry: Entry) -> None:
    _, sender, key = entry
    assert sender in ROLES
    assert key in ALL_KEYS
    assert class_of(key).SENDER in (sender, Sender.BOTH)


def test_closed_is_terminal() -> None:
    assert not [entry for entry in TRANSITIONS if entry[0] is State.CLOSED]


@pytest.mark.parametrize("state", LIVE_STATES)
@pytest.mark.parametrize("sender", ROLES)
def test_fatal_error_from_either_side_closes_every_live_state(
    state: State, sender: Sender
) -> None:
    assert TRANSITIONS[(state, sender, ERROR_FATAL)] is State.CLOSED


def test_event_key_splits_error_by_fatality() -> None:
    assert event_key(message_for_key(ERROR_FATAL)) == ERROR_FATAL
    assert event_key(message_for_key(ERROR_NONFATAL)) == ERROR_NONFATAL
    assert event_key(minimal(Quit)) == "QUIT"


# ------------------------------------------------------------ allowed moves


@pytest.mark.parametrize(
    ("entry", "path"),
    POSITIVE_CASES,
    ids=[f"{_entry_id(entry)}<-{path_id(path)}" for entry, path in POSITIVE_CASES],
)
def test_allowed_message_moves_both_ends_to_the_next_state(
    entry: Entry, path: tuple[Step, ...]
) -> None:
    state, sender, key = entry
    pair = drive(path)
    assert pair.states == (state, state)
    message = message_for_key(key, request_id=41)

    events = pair.transfer(sender, message)

    assert events == [message]
    expected = TRANSITIONS[entry]
    assert pair.states == (expected, expected)


@settings(max_examples=150, deadline=None)
@given(hst.data())
def test_random_walks_through_the_table_keep_both_ends_in_step(data: hst.DataObject) -> None:
    pair = Pair.new()
    for request_id in range(1, 40):
        state = pair.client.state
        moves = sorted((sender, key) for (at, sender, key) in TRANSITIONS if at is state)
        if not moves:
            break
        sender, key = data.draw(hst.sampled_from(moves))
        pair.step(sender, key, request_id)  # asserts both ends land on the table's state


# ---------------------------------------------------------- forbidden moves


@pytest.mark.parametrize("entry", NEGATIVE_CASES, ids=_entry_id)
def test_send_refuses_a_message_the_table_does_not_allow(entry: Entry) -> None:
    state, sender, key = entry
    pair = pair_in(state)
    message = message_for_key(key)

    with pytest.raises(LocalProtocolError) as info:
        pair.side(sender).send(message)

    assert info.value.code is ErrorCode.STATE_VIOLATION
    assert pair.states == (state, state)


@pytest.mark.parametrize(
    "entry", [entry for entry in NEGATIVE_CASES if entry[0] is not State.CLOSED], ids=_entry_id
)
def test_receiving_a_message_the_table_does_not_allow_is_fatal(entry: Entry) -> None:
    state, sender, key = entry
    pair = pair_in(state)
    message = message_for_key(key, request_id=29)
    receiver = pair.side(peer(sender))

    events, exc = receive_until_error(receiver, encode(message))

    assert events == []
    assert exc.code is ErrorCode.STATE_VIOLATION
    assert exc.fatal
    assert exc.request_id == 29
    assert receiver.state is state
    # The receiver reports it with a fatal ERROR, which closes both ends.
    reply = error_message(exc)
    assert (reply.code, reply.fatal, reply.request_id) == (int(ErrorCode.STATE_VIOLATION), True, 29)
    assert feed(pair.side(sender), receiver.send(reply)) == [reply]
    assert pair.states == (State.CLOSED, State.CLOSED)


@pytest.mark.parametrize(
    "entry", [entry for entry in NEGATIVE_CASES if entry[0] is State.CLOSED], ids=_entry_id
)
def test_a_closed_end_discards_whatever_still_arrives(entry: Entry) -> None:
    """CP-CLOSE-6: after BYE or a fatal ERROR, input is read and discarded."""
    _, sender, key = entry
    pair = pair_in(State.CLOSED)
    receiver = pair.side(peer(sender))

    assert feed(receiver, encode(message_for_key(key))) == []
    assert receiver.state is State.CLOSED
    assert feed(receiver, b"") == [ConnectionClosed()]  # still ends cleanly


def test_negative_cases_cover_every_state_sender_and_key() -> None:
    covered = set(NEGATIVE_CASES) | set(TRANSITIONS)
    assert covered == {(s, who, k) for s in State for who in ROLES for k in ALL_KEYS}


# ------------------------------------------------- no QUIT before WELCOME


def test_client_may_not_quit_before_its_hello_is_answered() -> None:
    """CP-STATE-1: after HELLO, the client waits for its answer (the table has no QUIT)."""
    pair = pair_in(State.AWAIT_WELCOME)
    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(Quit(request_id=2))
    assert info.value.code is ErrorCode.STATE_VIOLATION


def test_paths_used_for_negative_cases_are_the_shortest() -> None:
    assert shortest_path(State.AWAIT_HELLO) == ()
    assert [key for _, key in shortest_path(State.READY)] == ["HELLO", "WELCOME"]
