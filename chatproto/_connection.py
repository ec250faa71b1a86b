"""The sans-IO connection: bytes in, events out; messages in, bytes out.

``Connection`` holds no socket and starts no task. The reference server, the
reference client and the tests all drive this same object, so the rules of the
spec are written once: framing, field validation, the state table, request ids,
advertised limits and version negotiation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from chatproto._errors import (
    ERROR_REGISTRY,
    ErrorCode,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    clip_detail,
)
from chatproto._framing import MAX_FRAME_LENGTH, PRE_WELCOME_FRAME_LENGTH, FrameDecoder
from chatproto._schema import LENGTH_FIELD_SIZE, SCHEMA, Schema
from chatproto._state import State
from chatproto.messages import (
    Bye,
    Error,
    Hello,
    Limits,
    Message,
    Quit,
    Sender,
    Welcome,
)

PROTOCOL_VERSION = 1
"""The protocol version this library speaks."""

SPEC_REVISION = "1.1"
"""The revision of the specification this library follows. A revision such as 1.1
settles what version 1 left open or said twice; it is still negotiated as
``PROTOCOL_VERSION``, and its frames are version 1's."""

SUPPORTED_VERSIONS = range(1, 2)


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the stream cleanly, between two frames."""


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame broke a rule that does not end the connection; it was discarded.

    A server answers it with ``error_reply()``; a client may log it.
    """

    code: ErrorCode
    request_id: int
    detail: str
    type_code: int

    def error_reply(self) -> Error:
        return Error(request_id=self.request_id, code=int(self.code), fatal=False,
                     detail=clip_detail(self.detail))


Event = Message | FrameRejected | ConnectionClosed


class NeedData(Enum):
    """The type of ``NEED_DATA``."""

    NEED_DATA = "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA
"""What ``Connection.next_event()`` returns when the bytes received so far hold no
further event: feed more with ``receive_data()`` (h11's sentinel of the same name)."""


def error_message(exc: ProtocolError) -> Error:
    """The ERROR frame that tells the peer about ``exc``."""
    info = ERROR_REGISTRY[exc.code]
    return Error(request_id=exc.request_id, code=int(exc.code), fatal=info.fatal,
                 detail=clip_detail(exc.detail))


def _utf8_longer_than(value: str, limit: int) -> bool:
    if len(value) > limit:  # every character is at least one byte
        return True
    if len(value) * 4 <= limit:  # and at most four
        return False
    return len(value.encode("utf-8")) > limit


def limit_breach(message: Message, limits: Limits,
                 schema: Schema = SCHEMA) -> tuple[ErrorCode, str] | None:
    """The first advertised limit ``message`` exceeds, as (code, detail), or None."""
    for field in schema.limited_fields[message.TYPE]:
        limit: int = getattr(limits, field.limit_name)
        if _utf8_longer_than(getattr(message, field.name), limit):
            return field.code, f"{field.name} is longer than {field.limit_name} = {limit}"
    return None


class Connection:
    """One end of a chatproto connection, for ``role`` CLIENT or SERVER.

    ``limits`` is what a server advertises; a client learns it from WELCOME.
    ``schema`` gives the message types, their codec and the state table: spec
    v1's unless a test builds another (``Schema.build``).
    """

    def __init__(self, role: Sender, limits: Limits | None = None, *,
                 schema: Schema = SCHEMA) -> None:
        if role is Sender.BOTH:
            raise ValueError("a connection's role is CLIENT or SERVER")
        self.role = role
        self.schema = schema
        self.peer_role = Sender.SERVER if role is Sender.CLIENT else Sender.CLIENT
        self.sendable: frozenset[type[Message]] = frozenset()
        """The message types that may be sent now without changing the state: what
        ``may_send`` asks, kept as the state changes so that a broadcast's loop over
        its recipients can read it without a call."""
        self.state = State.AWAIT_HELLO
        self.version: int | None = None
        if role is Sender.SERVER:
            self.limits: Limits | None = limits or Limits()
            # Until WELCOME the client knows no limit but the protocol's floor,
            # and nobody is authenticated yet: hold it to that floor.
            receive_limit = PRE_WELCOME_FRAME_LENGTH
        else:
            self.limits = None
            receive_limit = MAX_FRAME_LENGTH
        self._decoder = FrameDecoder(receive_limit)
        self._offered_versions: range | None = None
        self.their_error: RemoteProtocolError | None = None
        """Set when the peer broke a fatal rule; no more events are produced."""
        self._eof_seen = False
        self._eof_reported = False

    # ----------------------------------------------------------------- input

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes from the peer; ``b""`` means the end of the stream.

        Nothing is decoded here: ``next_event()`` reads the events out, one at
        a time. Bytes that arrive after end of stream, once the connection is
        CLOSED or after a fatal breach are dropped unread.
        """
        if not data:
            self._eof_seen = True
        elif not self._eof_seen and self.state is not State.CLOSED \
                and self.their_error is None:
            # Buffering what arrives after CLOSED or EOF would let a peer that keeps
            # sending fill our memory with frames no one will decode.
            self._decoder.feed(data)

    def next_event(self) -> Event | NeedData:
        """The next event in the received bytes, or ``NEED_DATA`` if there is none yet.

        Each event is decoded and checked against the state table when it is
        pulled, so the answer to one request must be sent before the next event
        is pulled: a server that pulls JOIN before it has sent WELCOME finds it a
        STATE_VIOLATION, as the spec says. After end of stream (and the events
        before it) comes one ``ConnectionClosed``, then ``NEED_DATA``.

        A breach that ends the connection (a fatal one, or a client's ERROR whose
        body does not parse) raises RemoteProtocolError: answer it with
        ``error_message(exc)`` and close. Every later call raises it again.
        """
        if self.their_error is not None:
            raise self.their_error
        if self.state is not State.CLOSED:
            try:
                event = self._next_event()
            except RemoteProtocolError as exc:
                if exc.ends_connection:
                    self._fail(exc)
                    raise
                event = FrameRejected(exc.code, exc.request_id, exc.detail, 0)
            if event is not None:
                return event
        if not self._eof_seen or self._eof_reported:
            return NEED_DATA
        self._eof_reported = True
        was_closed = self.state is State.CLOSED
        # A client may half-close after QUIT and still read the BYE.
        if not (self.role is Sender.SERVER and self.state is State.QUITTING):
            self.state = State.CLOSED
        if not was_closed:
            try:
                self._decoder.check_eof()
            except RemoteProtocolError as exc:
                self._fail(exc)
                raise
        return ConnectionClosed()

    def events(self) -> Iterator[Event]:
        """``next_event()`` in a loop, until ``NEED_DATA``.

        Lazy on purpose: each event is pulled (and state-checked) when the loop
        asks for it, so a loop that answers each event before taking the next
        sees what ``next_event()`` would. ``list(conn.events())`` pulls them all
        before anything is answered.
        """
        while (event := self.next_event()) is not NEED_DATA:
            yield event

    def _next_event(self) -> Event | None:
        sender = self.peer_role
        while True:
            raw = self._decoder.next_frame()
            if raw is None:
                return None
            cls = self.schema.messages.get(raw.type_code)
            # A client skips unknown types once welcomed: servers may add events
            # (CP-EXT-3). Before WELCOME an unknown type ends the connection (CP-STATE-5).
            if cls is not None or self.role is Sender.SERVER \
                    or self.state not in (State.READY, State.QUITTING):
                break
        if cls is None:
            if self.state is not State.READY:
                raise RemoteProtocolError(ErrorCode.STATE_VIOLATION,
                                          f"unknown type {raw.type_code:#06x} before READY",
                                          request_id=raw.request_id)
            return FrameRejected(ErrorCode.UNKNOWN_TYPE, raw.request_id,
                                 f"unknown message type {raw.type_code:#06x}", raw.type_code)
        if not self.schema.may_send_type(self.state, sender, cls):
            # After a BYE a client sends nothing, not even this ERROR (CP-CLOSE-5).
            raise RemoteProtocolError(ErrorCode.STATE_VIOLATION,
                                      f"{cls.NAME} from the {sender} is not allowed in "
                                      f"state {self.state}", request_id=raw.request_id,
                                      silent=cls is Bye and self.role is Sender.CLIENT)
        client_request = sender is Sender.CLIENT and cls.FINAL_RESPONSE is not None
        if client_request and raw.request_id == 0 and cls is not Quit:
            return FrameRejected(ErrorCode.INVALID_REQUEST_ID, 0,
                                 f"{cls.NAME} needs a nonzero request_id", raw.type_code)
        try:
            message = self.schema.codec.decode_body(raw.type_code, raw.request_id,
                                                    self._decoder.buffer, raw.start, raw.end)
        except RemoteProtocolError as exc:
            if sender is Sender.CLIENT and cls is Error:
                # The header allowed it, and every ERROR a client sends is fatal, so the
                # client is leaving whatever its body says: answer what is wrong with
                # the body (request_id 0: it answers no request) and close (CP-ERR-11).
                raise RemoteProtocolError(exc.code, f"ERROR from the client: {exc.detail}",
                                          closing=True) from None
            if cls is not Quit or sender is not Sender.CLIENT:
                return FrameRejected(exc.code, exc.request_id, exc.detail, raw.type_code)
            # Every QUIT is answered with BYE, even one that does not parse (CP-CLOSE-2).
            message = Quit(request_id=raw.request_id)
        if sender is Sender.CLIENT:
            rejection = self._check_client_message(message)
            if rejection is not None:
                return rejection
        after = self.schema.next_state(self.state, sender, message)
        if after is None:  # only an ERROR of the wrong fatality can get here
            raise RemoteProtocolError(ErrorCode.STATE_VIOLATION,
                                      f"{message.NAME} is not allowed in state {self.state}",
                                      request_id=raw.request_id)
        self._on_transition(message, sender)
        self._enter(after)
        return message

    @property
    def state(self) -> State:
        """Where this end is in the connection's lifecycle (the spec's state table)."""
        return self._state

    @state.setter
    def state(self, state: State) -> None:
        self._state = state
        self.sendable = self.schema.state_keeping[(self.role, state)]

    def _enter(self, state: State) -> None:
        self.state = state
        if state is State.CLOSED:
            self._drop_input()

    def _fail(self, exc: RemoteProtocolError) -> None:
        self.their_error = exc
        self._drop_input()

    def _drop_input(self) -> None:
        # Once framing is lost or the connection is CLOSED no frame is read
        # again, so the unread tail (up to a whole chunk) is only memory held.
        self._decoder = FrameDecoder(self._decoder.max_length)

    def _check_client_message(self, message: Message) -> FrameRejected | None:
        assert self.limits is not None
        if isinstance(message, Hello):
            common = range(max(message.min_version, SUPPORTED_VERSIONS.start),
                           min(message.max_version, SUPPORTED_VERSIONS.stop - 1) + 1)
            if not common:
                # CP-HS-6: the detail names the server's range as "min-max".
                raise RemoteProtocolError(
                    ErrorCode.UNSUPPORTED_VERSION,
                    f"{SUPPORTED_VERSIONS.start}-{SUPPORTED_VERSIONS.stop - 1}",
                    request_id=message.request_id)
            self._offered_versions = common
        breach = limit_breach(message, self.limits, self.schema)
        if breach is not None:
            return FrameRejected(breach[0], message.request_id, breach[1], message.TYPE)
        return None

    # ---------------------------------------------------------------- output

    def send(self, message: Message) -> bytes:
        """The bytes that send ``message``; raises LocalProtocolError if the spec forbids it."""
        if message.SENDER not in (self.role, Sender.BOTH):
            raise LocalProtocolError(ErrorCode.STATE_VIOLATION,
                                     f"a {self.role} does not send {message.NAME}")
        after = self.schema.next_state(self.state, self.role, message)
        if after is None:
            raise LocalProtocolError(ErrorCode.STATE_VIOLATION,
                                     f"{message.NAME} is not allowed in state {self.state}")
        if self.role is Sender.CLIENT:
            if isinstance(message, Hello) and message.min_version > message.max_version:
                raise LocalProtocolError(ErrorCode.UNSUPPORTED_VERSION,
                                         "min_version is above max_version")
            if message.is_request and message.request_id == 0:
                raise LocalProtocolError(ErrorCode.INVALID_REQUEST_ID,
                                         f"{message.NAME} needs a nonzero request_id")
            if self.limits is not None:
                breach = limit_breach(message, self.limits, self.schema)
                if breach is not None:
                    raise LocalProtocolError(*breach)
        elif isinstance(message, Welcome):
            if not (self._offered_versions and message.version in self._offered_versions):
                raise LocalProtocolError(ErrorCode.UNSUPPORTED_VERSION,
                                         f"version {message.version} was not offered")
            if message.limits != self.limits:
                raise LocalProtocolError(ErrorCode.INVALID_FIELD,
                                         "WELCOME must advertise this connection's limits")
        frame = self.schema.encode(message)
        limit = self._send_limit()
        if len(frame) - LENGTH_FIELD_SIZE > limit:
            raise LocalProtocolError(ErrorCode.FRAME_TOO_LARGE,
                                     f"{message.NAME} needs {len(frame) - 4} > {limit} octets")
        self._on_transition(message, self.role)
        self._enter(after)
        return frame

    def may_send(self, cls: type[Message]) -> bool:
        """Whether a ``cls`` message may be sent now, leaving the state as it is.

        For an event encoded once and queued on many connections (a room message
        to every member): each recipient asks this instead of encoding it again
        through ``send()``. It is False for what changes the state or needs its
        body checked (HELLO, WELCOME, QUIT, BYE, ERROR): those go through ``send()``.
        """
        return cls in self.sendable

    @property
    def common_versions(self) -> range | None:
        """Server: the versions both peers speak, once HELLO arrived (WELCOME picks one)."""
        return self._offered_versions if self.role is Sender.SERVER else None

    def _send_limit(self) -> int:
        if self.role is Sender.SERVER:
            return MAX_FRAME_LENGTH
        if self.limits is None:
            return PRE_WELCOME_FRAME_LENGTH
        return self.limits.max_frame_size

    def _on_transition(self, message: Message, sender: Sender) -> None:
        if isinstance(message, Hello):
            if sender is Sender.CLIENT and self.role is Sender.CLIENT:
                self._offered_versions = range(message.min_version, message.max_version + 1)
        elif isinstance(message, Welcome):
            if self.role is Sender.CLIENT and (
                self._offered_versions is None or message.version not in self._offered_versions
            ):
                raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION,
                                          f"WELCOME chose version {message.version}, "
                                          "which was not offered")
            self.version = message.version
            if self.role is Sender.CLIENT:
                self.limits = message.limits
            else:
                assert self.limits is not None
                self._decoder.max_length = self.limits.max_frame_size

