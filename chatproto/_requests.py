"""The requests a peer still waits to see answered, and what each received frame is to them.

Spec v1 pairs answers by header alone (spec: Intermediate frames and events):
``request_id`` 0 is an event; anything else belongs to the oldest request still
waiting for that ``request_id``, up to its final response. ``PendingRequests``
is that rule, written once for every client of the protocol (the client library,
the test harness, the bench, the conformance kit). It does no I/O and knows no
futures: each caller attaches its own payload to a request and gets it back
with the frames that answer it.

It reads only the message declarations (``FINAL_RESPONSE``), never the state
machine, so the conformance kit may use it to pair what another implementation
sends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from chatproto.messages import MESSAGE_TYPES, Error, Message

P = TypeVar("P")

MAX_REQUEST_ID = 0xFFFF_FFFF
"""``request_id`` is a u32; 0 is reserved for events (CP-REQ-1)."""

FINAL_RESPONSE_TYPES: frozenset[type[Message]] = frozenset(
    {cls.FINAL_RESPONSE for cls in MESSAGE_TYPES.values() if cls.FINAL_RESPONSE is not None}
    | {Error}
)
"""Every type that ends an answer: each request's FINAL_RESPONSE (OK, WELCOME, PONG,
BYE), and ERROR, which may end any request (CP-REQ-4)."""


def is_final_response(message: Message) -> bool:
    """``message`` is of a type that ends an answer, whichever request it answers."""
    return type(message) in FINAL_RESPONSE_TYPES


@dataclass(slots=True)
class Outstanding(Generic[P]):
    """One request still waiting for its final response."""

    request_id: int
    request: Message | None
    """The request sent; None when the caller wrote it as raw bytes (``track_raw``)."""
    payload: P
    frames: list[Message] = field(default_factory=list)
    """The intermediate frames that arrived so far, in order."""


@dataclass(frozen=True, slots=True)
class IntermediateFrame(Generic[P]):
    """A received frame that is part of an outstanding request's answer, not its end."""

    outstanding: Outstanding[P]
    frame: Message


@dataclass(frozen=True, slots=True)
class FinalResponse(Generic[P]):
    """The frame that ended an outstanding request's answer; the request is no longer pending."""

    outstanding: Outstanding[P]
    response: Message

    @property
    def payload(self) -> P:
        return self.outstanding.payload

    @property
    def frames(self) -> list[Message]:
        """The whole answer: the intermediate frames, then the final response."""
        return [*self.outstanding.frames, self.response]

    @property
    def expected(self) -> bool:
        """The response is ERROR or the request's own FINAL_RESPONSE (a raw request: any).

        False is a peer that broke CP-REQ-4, e.g. a PONG answering a JOIN: the
        request still ends, since a final type is never an intermediate frame.
        """
        request = self.outstanding.request
        return (request is None or isinstance(self.response, Error)
                or type(self.response) is request.FINAL_RESPONSE)


class PendingRequests(Generic[P]):
    """Requests sent and not yet answered, by ``request_id``, each with a caller's payload.

    ``next_id`` hands out request ids; ``track`` records a request as sent;
    ``receive`` sorts each received message into a part of an answer, the end
    of one, or neither (an event, or a frame naming no outstanding request).
    When the connection ends, ``clear`` hands back what will never be answered.
    """

    def __init__(self, first_id: int = 1) -> None:
        if not 0 < first_id <= MAX_REQUEST_ID:
            raise ValueError(f"request ids run from 1 to {MAX_REQUEST_ID}, not {first_id}")
        self._next_id = first_id
        # Oldest first: a peer that reuses an id (CP-REQ-2 is only a SHOULD) still
        # gets its answers in the order the requests were sent (CP-REQ-5).
        self._by_id: dict[int, deque[Outstanding[P]]] = {}

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._by_id.values())

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._by_id

    def next_id(self) -> int:
        """A nonzero u32 that no outstanding request uses; counts up and wraps past 2^32 - 1."""
        if len(self._by_id) >= MAX_REQUEST_ID:
            raise RuntimeError("every request id is in use")
        while True:
            request_id = self._next_id
            self._next_id = request_id % MAX_REQUEST_ID + 1
            if request_id not in self._by_id:
                return request_id

    def track(self, request: Message, payload: P) -> Outstanding[P]:
        """Record ``request`` as sent; its final response is ERROR or its FINAL_RESPONSE."""
        if not request.is_request:
            raise ValueError(f"{request.NAME} is not a request: nothing answers it")
        return self._add(Outstanding(request.request_id, request, payload))

    def track_raw(self, request_id: int, payload: P) -> Outstanding[P]:
        """Record a request written as raw bytes; any final response type ends it."""
        return self._add(Outstanding(request_id, None, payload))

    def _add(self, outstanding: Outstanding[P]) -> Outstanding[P]:
        if not 0 < outstanding.request_id <= MAX_REQUEST_ID:
            # request_id 0 marks events: an answer to it could not be told apart (CP-REQ-7).
            raise ValueError(f"cannot wait for an answer to request_id {outstanding.request_id}")
        self._by_id.setdefault(outstanding.request_id, deque()).append(outstanding)
        return outstanding

    def get(self, request_id: int) -> Outstanding[P] | None:
        """The oldest outstanding request with ``request_id``, if any."""
        waiting = self._by_id.get(request_id)
        return waiting[0] if waiting else None

    def receive(self, message: Message) -> IntermediateFrame[P] | FinalResponse[P] | None:
        """What ``message`` is to the outstanding requests.

        ``FinalResponse``: it ends the oldest request with its ``request_id``,
        which stops being outstanding. ``IntermediateFrame``: it is part of that
        request's answer (kept in ``frames``). None: it answers no outstanding
        request: an event (request_id 0, a fatal ERROR among them), a request of
        the peer's own (a PING), or an id nothing waits for.
        """
        if message.request_id == 0 or message.is_request:
            return None
        waiting = self._by_id.get(message.request_id)
        if not waiting:
            return None
        if not is_final_response(message):
            waiting[0].frames.append(message)
            return IntermediateFrame(waiting[0], message)
        outstanding = waiting.popleft()
        if not waiting:
            del self._by_id[message.request_id]
        return FinalResponse(outstanding, message)

    def clear(self) -> list[Outstanding[P]]:
        """Forget every outstanding request (the connection ended); they are returned."""
        everything = [outstanding for waiting in self._by_id.values() for outstanding in waiting]
        self._by_id.clear()
        return everything
