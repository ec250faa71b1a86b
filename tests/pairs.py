"""Helpers for test_state.py and test_connection.py (this is not a test module).

Everything here is derived from the declarations, never retyped: a minimal
valid instance of any message class (each required body field filled by its
FieldType), the table's paths from the initial state to any state, raw frames,
and a client/server pair of sans-IO Connections that pass bytes to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from chatproto import (
    HEADER_STRUCT,
    MIN_FRAME_LENGTH,
    Connection,
    ErrorCode,
    Event,
    Limits,
    Message,
    RemoteProtocolError,
    Sender,
    State,
)
from chatproto._fields import FieldType
from chatproto._schema import BODY_FIELDS, HEADER_SIZE, SCHEMA, TRANSITIONS, Schema
from chatproto._state import ERROR_FATAL, ERROR_NONFATAL, event_key
from chatproto.messages import MESSAGE_TYPES, Error, Welcome, message_class

M = TypeVar("M", bound=Message)

ROLES = (Sender.CLIENT, Sender.SERVER)

# One valid value per semantic field type, keyed by FieldType.name. A field
# type added to _fields.py without a sample here makes sample() fail loudly.
SAMPLES: dict[str, Any] = {
    "u8": 0,
    "u16": 0,
    "u32": 0,
    "u64": 0,
    "bool": False,
    "version": 1,
    "page-size": 1,
    "frame-limit": 65536,
    "leave-kind": 0,
    "nick": "alice",
    "nick-or-empty": "",
    "room": "#room",
    "message-text": "hi",
    "notice-text": "",
    "topic": "",
    "short-text": "",
    "label": "x",
    "password": "pw",
    "password-or-empty": "",
    "token": b"",
    "capabilities": (),
}


def sample(field_type: FieldType) -> Any:
    try:
        return SAMPLES[field_type.name]
    except KeyError:
        raise AssertionError(
            f"no sample value for field type {field_type.name!r}: add one to SAMPLES"
        ) from None


def minimal(cls: type[M], request_id: int = 7, **overrides: Any) -> M:
    """A valid ``cls``: required body fields from SAMPLES, the others at their defaults."""
    values: dict[str, Any] = {"request_id": request_id}
    for body_field in BODY_FIELDS[cls.TYPE]:
        if cls.model_fields[body_field.name].is_required():
            values[body_field.name] = sample(body_field.field_type)
    values.update(overrides)
    return cls(**values)


ALL_KEYS: tuple[str, ...] = tuple(
    sorted({cls.NAME for cls in MESSAGE_TYPES.values()} - {"ERROR"} | {ERROR_FATAL, ERROR_NONFATAL})
)
"""Every key the state table can be asked about: each wire name, ERROR split by fatality."""


def class_of(key: str) -> type[Message]:
    return Error if key in (ERROR_FATAL, ERROR_NONFATAL) else message_class(key)


def message_for_key(key: str, request_id: int = 7, **overrides: Any) -> Message:
    """A minimal valid message whose state-table key is ``key``."""
    if key == ERROR_FATAL:
        overrides = {"code": int(ErrorCode.STATE_VIOLATION), "fatal": True, **overrides}
    elif key == ERROR_NONFATAL:
        overrides = {"code": int(ErrorCode.INTERNAL_ERROR), "fatal": False, **overrides}
    message = minimal(class_of(key), request_id, **overrides)
    assert event_key(message) == key
    return message


def peer(role: Sender) -> Sender:
    return Sender.SERVER if role is Sender.CLIENT else Sender.CLIENT


# ------------------------------------------------------------------- the table

Step = tuple[Sender, str]
"""One move along the table: who sends, and the key of what they send."""


def _edges() -> dict[State, list[tuple[Step, State]]]:
    """For each state, one representative step to each *other* state it leads to.

    Ordinary messages are preferred to ERROR, and the client to the server, so
    the paths read like real sessions (HELLO, WELCOME, QUIT, BYE).
    """
    edges: dict[State, list[tuple[Step, State]]] = {state: [] for state in State}
    ranked = sorted(
        TRANSITIONS.items(),
        key=lambda item: (item[0][2].startswith("ERROR"), item[0][1] != Sender.CLIENT, item[0]),
    )
    for (state, sender, key), after in ranked:
        if after is not state and all(target is not after for _, target in edges[state]):
            edges[state].append(((sender, key), after))
    return edges


_EDGES = _edges()


def simple_paths(target: State) -> list[tuple[Step, ...]]:
    """Every path from AWAIT_HELLO to ``target`` that visits no state twice."""
    found: list[tuple[Step, ...]] = []

    def walk(state: State, path: tuple[Step, ...], seen: frozenset[State]) -> None:
        if state is target:
            found.append(path)
            return
        for step, after in _EDGES[state]:
            if after not in seen:
                walk(after, (*path, step), seen | {after})

    walk(State.AWAIT_HELLO, (), frozenset({State.AWAIT_HELLO}))
    return found


def shortest_path(target: State) -> tuple[Step, ...]:
    paths = simple_paths(target)
    assert paths, f"{target} cannot be reached from AWAIT_HELLO through the table"
    return min(paths, key=len)


def path_id(path: tuple[Step, ...]) -> str:
    return "/".join(key for _, key in path) or "start"


def state_allowing(sender: Sender, key: str) -> State:
    """A state in which ``sender`` may send ``key``: READY when possible."""
    states = [state for (state, who, name) in TRANSITIONS if who is sender and name == key]
    assert states, f"{sender} never sends {key}"
    return State.READY if State.READY in states else min(states, key=list(State).index)


def sender_keys() -> list[Step]:
    """Every (sender, key) the table allows somewhere, in a stable order."""
    return sorted({(sender, key) for (_, sender, key) in TRANSITIONS})


# -------------------------------------------------------------------- the pair


@dataclass
class Pair:
    """A client and a server Connection; bytes from one are fed to the other."""

    client: Connection
    server: Connection

    @classmethod
    def new(cls, server_limits: Limits | None = None, schema: Schema = SCHEMA) -> Pair:
        return cls(Connection(Sender.CLIENT, schema=schema),
                   Connection(Sender.SERVER, server_limits, schema=schema))

    def side(self, role: Sender) -> Connection:
        return self.client if role is Sender.CLIENT else self.server

    @property
    def states(self) -> tuple[State, State]:
        return self.client.state, self.server.state

    def transfer(self, sender: Sender, message: Message) -> list[Event]:
        """``sender`` sends ``message``; the peer receives the bytes; its events."""
        data = self.side(sender).send(message)
        return feed(self.side(peer(sender)), data)

    def step(self, sender: Sender, key: str, request_id: int = 7) -> Message:
        """Send a minimal ``key`` message and check both ends follow the table."""
        before = self.client.state
        assert self.server.state is before
        overrides: dict[str, Any] = {}
        if key == "WELCOME":  # advertise what the server Connection enforces
            assert self.server.limits is not None
            overrides = self.server.limits.model_dump()
        message = message_for_key(key, request_id, **overrides)
        assert self.transfer(sender, message) == [message]
        expected = self.server.schema.transitions[(before, sender, key)]
        assert self.states == (expected, expected)
        return message


def drive(path: tuple[Step, ...], server_limits: Limits | None = None,
          schema: Schema = SCHEMA) -> Pair:
    """A fresh pair on ``schema`` walked along ``path`` (both ends checked at every step)."""
    pair = Pair.new(server_limits, schema)
    for sender, key in path:
        pair.step(sender, key)
    return pair


def pair_in(state: State, server_limits: Limits | None = None,
            schema: Schema = SCHEMA) -> Pair:
    return drive(shortest_path(state), server_limits, schema)


def welcome(request_id: int = 1, **overrides: Any) -> Welcome:
    return minimal(Welcome, request_id, **{"casemapping": "ascii", **overrides})


# ---------------------------------------------------------------- raw frames



def raw_frame(type_code: int, request_id: int, body: bytes = b"") -> bytes:
    """A frame built by hand: the header fields given, ``length`` computed."""
    return HEADER_STRUCT.pack(MIN_FRAME_LENGTH + len(body), type_code, request_id) + body


def body_of(frame: bytes) -> bytes:
    return frame[HEADER_SIZE:]


def with_body(frame: bytes, body: bytes) -> bytes:
    """``frame`` with its body replaced and its length field fixed up."""
    _, type_code, request_id = HEADER_STRUCT.unpack_from(frame)
    return raw_frame(type_code, request_id, body)


def feed(conn: Connection, data: bytes) -> list[Event]:
    """Give ``conn`` the bytes ``data``; every event they hold, pulled one by one."""
    conn.receive_data(data)
    return list(conn.events())


def receive_until_error(conn: Connection, data: bytes) -> tuple[list[Event], RemoteProtocolError]:
    """Pull events from ``data`` until the Connection raises; the events before, and the error."""
    events: list[Event] = []
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        for event in conn.events():
            events.append(event)
    return events, info.value
