"""The connection state machine of spec v1, as one table.

Two rules, after h11's ``_state.py``:

* Everything that decides whether a message may be sent or received in a state,
  and what state follows, is written in ``build_transitions`` in this file. It
  names the few messages that move the state; every other request and event
  takes its place from its SENDER, so a schema with one more message type
  (``chatproto._schema.Schema``) gets its rows without an edit here. The spec
  page "Connection lifecycle" prints the table; it is not written anywhere else.
* The table does not know which role we play: it is keyed by the *sender* of a
  message, so the client and the server run the very same data and cannot
  disagree. A key missing from the table is a STATE_VIOLATION.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from chatproto.messages import Error, Message, Sender


class State(StrEnum):
    """Where a connection is in its life."""

    AWAIT_HELLO = "AWAIT_HELLO"
    AWAIT_WELCOME = "AWAIT_WELCOME"
    READY = "READY"
    QUITTING = "QUITTING"
    CLOSED = "CLOSED"


STATE_DESCRIPTIONS: dict[State, str] = {
    State.AWAIT_HELLO: "Initial: the client has not sent an accepted HELLO yet.",
    State.AWAIT_WELCOME: "HELLO sent; the server answers WELCOME or ERROR.",
    State.READY: "Handshake done: requests, responses and events flow.",
    State.QUITTING: "The client sent QUIT; the server finishes and answers BYE.",
    State.CLOSED: "No more frames in either direction.",
}

ERROR_FATAL = "ERROR (fatal)"
ERROR_NONFATAL = "ERROR (non-fatal)"


def event_key(message: Message) -> str:
    """The table key of a message: its wire name, with ERROR split by fatality."""
    if isinstance(message, Error):
        return ERROR_FATAL if message.fatal else ERROR_NONFATAL
    return message.NAME


Transitions = dict[tuple[State, Sender, str], State]
"""(state, sender, message key) -> next state. Absent = STATE_VIOLATION."""

_CLIENT = Sender.CLIENT
_SERVER = Sender.SERVER


def build_transitions(messages: Iterable[type[Message]]) -> Transitions:
    """The state table of a schema whose message types are ``messages``."""
    messages = tuple(messages)

    def names(sender: Sender) -> set[str]:
        return {cls.NAME for cls in messages if cls.SENDER in (sender, Sender.BOTH)}

    client_requests = names(Sender.CLIENT) - {"ERROR", "PONG", "HELLO", "QUIT"}
    server_in_session = names(Sender.SERVER) - {"ERROR", "WELCOME", "BYE"}
    table: Transitions = {}

    def allow(state: State, sender: Sender, keys: set[str] | list[str], after: State) -> None:
        for key in sorted(keys):
            table[(state, sender, key)] = after

    # Either side may end the connection with a fatal ERROR in any live state.
    for state in (State.AWAIT_HELLO, State.AWAIT_WELCOME, State.READY, State.QUITTING):
        allow(state, _CLIENT, [ERROR_FATAL], State.CLOSED)
        allow(state, _SERVER, [ERROR_FATAL], State.CLOSED)

    allow(State.AWAIT_HELLO, _CLIENT, ["HELLO"], State.AWAIT_WELCOME)
    allow(State.AWAIT_HELLO, _CLIENT, ["QUIT"], State.QUITTING)
    # A HELLO that could not be decoded is answered while still AWAIT_HELLO.
    allow(State.AWAIT_HELLO, _SERVER, [ERROR_NONFATAL], State.AWAIT_HELLO)

    allow(State.AWAIT_WELCOME, _SERVER, ["WELCOME"], State.READY)
    # A refused HELLO (nick in use, wrong password...): the client may try again.
    allow(State.AWAIT_WELCOME, _SERVER, [ERROR_NONFATAL], State.AWAIT_HELLO)

    allow(State.READY, _CLIENT, client_requests | {"PONG"}, State.READY)
    allow(State.READY, _CLIENT, ["QUIT"], State.QUITTING)
    allow(State.READY, _SERVER, server_in_session | {ERROR_NONFATAL}, State.READY)

    # After QUIT the server may still deliver what was already on its way.
    allow(State.QUITTING, _SERVER, server_in_session | {ERROR_NONFATAL}, State.QUITTING)
    allow(State.QUITTING, _SERVER, ["BYE"], State.CLOSED)
    return table
