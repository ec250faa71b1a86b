"""The fuzzing properties of the sans-IO core (this is not a test module).

tests/test_fuzz_core.py checks them with hypothesis in the normal run;
bench/fuzz.py checks the very same functions for minutes, under atheris when it
is installed. Each ``check_*`` function takes one input, raises AssertionError
(or lets an unexpected exception escape) when a property breaks, and returns
what it observed so that two deliveries of one stream can be compared.

What must hold for any octets at all:

* only ``RemoteProtocolError`` escapes ``next_event``, and only for a breach
  the registry calls fatal; afterwards the connection says so
  (``their_error``), raises the same error on every later call, holds no input,
  and can still send the ERROR that answers it, which closes it;
* every call returns, having yielded at most one event per frame header;
* after each call the decoder holds less than one whole frame of the current
  limit, and nothing at all once the connection is CLOSED;
* the events and the outcome do not depend on how the stream was cut.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from hypothesis import strategies as st
from pairs import Pair, raw_frame, welcome

from chatproto import (
    ERROR_REGISTRY,
    MESSAGE_TYPES,
    Connection,
    ConnectionClosed,
    ErrorCode,
    Event,
    FrameDecoder,
    FrameRejected,
    Limits,
    Message,
    RemoteProtocolError,
    Sender,
    State,
    error_message,
)
from chatproto._schema import HEADER_SIZE, LENGTH_FIELD_SIZE
from chatproto.messages import Bye, Hello, Ping, Pong, Quit, Welcome

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "spec" / "vectors" / "messages.json"

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER
FRAMING_ERRORS = frozenset({ErrorCode.FRAME_TOO_LARGE, ErrorCode.MALFORMED_FRAME})


def _vector_frames() -> dict[Sender, tuple[bytes, ...]]:
    """Every valid frame of messages.json, by the role that sends it."""
    by_sender: dict[Sender, list[bytes]] = {CLIENT: [], SERVER: []}
    for message in json.loads(VECTORS.read_text(encoding="utf-8"))["messages"]:
        senders = (CLIENT, SERVER) if message["sender"] == "both" else (Sender(message["sender"]),)
        for case in message["cases"]:
            for sender in senders:
                by_sender[sender].append(bytes.fromhex(case["hex"]))
    return {sender: tuple(frames) for sender, frames in by_sender.items()}


VECTOR_FRAMES = _vector_frames()
"""Valid frames from the spec's vectors: the raw material mutated frames start from."""

ALL_VECTOR_FRAMES: tuple[bytes, ...] = VECTOR_FRAMES[CLIENT] + VECTOR_FRAMES[SERVER]

FRAME_LIMITS = (6, 7, 64, 4096, 65536)
"""Decoder limits worth trying: the smallest legal frame and the protocol's two caps."""

EDGE_LENGTHS = (0, 5, 6, 4095, 4096, 4097, 65535, 65536, 65537, 2**31, 2**32 - 1)
"""Length fields at and around every limit the core applies."""


# ------------------------------------------------------------------ prefixes

HELLO = Hello(request_id=1, min_version=1, max_version=1, nick="fuzz", client_name="fuzz/1")
SMALL_LIMITS = Limits(max_frame_size=4096, max_message_length=64, max_nick_length=8)


_STEPS: dict[str, tuple[Sender, Callable[[Limits], Message]]] = {
    "HELLO": (CLIENT, lambda limits: HELLO),
    "WELCOME": (SERVER, lambda limits: welcome(1, nick="fuzz", **limits.model_dump())),
    "QUIT": (CLIENT, lambda limits: Quit(request_id=9)),
    "BYE": (SERVER, lambda limits: Bye(request_id=9)),
}


def _after(role: Sender, *steps: str, limits: Limits | None = None) -> Connection:
    """The ``role`` end of a pair that exchanged ``steps``, each a valid frame."""
    pair = Pair.new(limits)
    for step in steps:
        sender, message = _STEPS[step]
        assert pair.server.limits is not None
        pair.transfer(sender, message(pair.server.limits))
    return pair.side(role)


PREFIXES: dict[Sender, dict[str, Callable[[], Connection]]] = {
    SERVER: {
        "fresh": lambda: Connection(SERVER),
        "hello-received": lambda: _after(SERVER, "HELLO"),
        "ready": lambda: _after(SERVER, "HELLO", "WELCOME"),
        "ready-small-limits": lambda: _after(SERVER, "HELLO", "WELCOME", limits=SMALL_LIMITS),
        "quitting": lambda: _after(SERVER, "HELLO", "WELCOME", "QUIT"),
        "closed": lambda: _after(SERVER, "HELLO", "WELCOME", "QUIT", "BYE"),
    },
    CLIENT: {
        "fresh": lambda: Connection(CLIENT),
        "hello-sent": lambda: _after(CLIENT, "HELLO"),
        "ready": lambda: _after(CLIENT, "HELLO", "WELCOME"),
        "ready-small-limits": lambda: _after(CLIENT, "HELLO", "WELCOME", limits=SMALL_LIMITS),
        "quitting": lambda: _after(CLIENT, "HELLO", "WELCOME", "QUIT"),
        "closed": lambda: _after(CLIENT, "HELLO", "WELCOME", "QUIT", "BYE"),
    },
}
"""Connections brought, by valid frames through a real peer, to each state they can be in."""

PREFIX_NAMES: dict[Sender, tuple[str, ...]] = {
    role: tuple(names) for role, names in PREFIXES.items()
}


@functools.cache
def _template(role: Sender, prefix: str) -> Connection:
    return PREFIXES[role][prefix]()


def connection_after(role: Sender, prefix: str) -> Connection:
    """A fresh ``role`` end after ``prefix``: a copy, 30 times cheaper than replaying it."""
    return copy.deepcopy(_template(role, prefix))


# ------------------------------------------------------------------ the apps


def _answer(conn: Connection, event: Event) -> bytes:
    """What a minimal application answers, so fuzzed input reaches later states too.

    A server welcomes a HELLO, answers a rejected frame with its ERROR and a
    QUIT with BYE; a client answers PING. These answers are documented as
    always possible, so a LocalProtocolError here is a defect of the core.
    """
    if conn.role is SERVER:
        if isinstance(event, Hello) and conn.common_versions:
            assert conn.limits is not None
            return conn.send(Welcome(request_id=event.request_id, version=conn.common_versions[-1],
                                     server_name="fuzz/1", nick=event.nick, logged_in=False,
                                     casemapping="ascii", **conn.limits.model_dump()))
        if isinstance(event, FrameRejected):
            return conn.send(event.error_reply())
        if isinstance(event, Quit):
            return conn.send(Bye(request_id=event.request_id))
        return b""
    if isinstance(event, Ping) and conn.state is State.READY:
        return conn.send(Pong(request_id=event.request_id, token=event.token))
    return b""


# --------------------------------------------------------------- the decoder


@dataclass(frozen=True)
class DecoderOutcome:
    frames: tuple[bytes, ...]
    """Each whole frame handed out, header included."""
    error: ErrorCode | None


def check_decoder(max_length: int, chunks: Sequence[bytes]) -> DecoderOutcome:
    """Feed ``chunks`` to a FrameDecoder, taking every frame out after each one."""
    decoder = FrameDecoder(max_length)
    frames: list[bytes] = []
    for chunk in chunks:
        tail = decoder.buffered
        decoder.feed(chunk)
        # What was handed out is gone: the buffer is the unread tail and the chunk.
        assert len(decoder.buffer) == tail + len(chunk)
        try:
            while (raw := decoder.next_frame()) is not None:
                frame = bytes(decoder.buffer[raw.start - HEADER_SIZE : raw.end])
                length = int.from_bytes(frame[:LENGTH_FIELD_SIZE], "big")
                assert 6 <= length <= max_length
                assert len(frame) == LENGTH_FIELD_SIZE + length
                assert frame[4:6] == raw.type_code.to_bytes(2, "big")
                assert frame[6:10] == raw.request_id.to_bytes(4, "big")
                frames.append(frame)
        except RemoteProtocolError as exc:
            assert exc.code in FRAMING_ERRORS and exc.fatal, exc
            return DecoderOutcome(tuple(frames), exc.code)
        # Less than one whole frame of the limit waits for more data.
        assert decoder.buffered < LENGTH_FIELD_SIZE + max_length
    assert b"".join(frames) + bytes(decoder.buffer[len(decoder.buffer) - decoder.buffered :]) \
        == b"".join(chunks)
    return DecoderOutcome(tuple(frames), None)


# ------------------------------------------------------------ the connection


@dataclass(frozen=True)
class ConnectionOutcome:
    events: tuple[Event, ...]
    sent: bytes
    error: tuple[ErrorCode, int, str, bool] | None
    """(code, request_id, detail, silent) of the fatal error, if one was raised."""
    state: State


def _check_event(conn: Connection, event: Event, eof: bool) -> None:
    if isinstance(event, ConnectionClosed):
        assert eof, "ConnectionClosed before the end of the stream"
        return
    if isinstance(event, FrameRejected):
        assert not ERROR_REGISTRY[event.code].fatal, event
        return
    assert isinstance(event, Message), event
    assert MESSAGE_TYPES[event.TYPE] is type(event)
    assert event.SENDER in (conn.peer_role, Sender.BOTH), event


def _check_after_fatal(conn: Connection, exc: RemoteProtocolError) -> None:
    assert exc.ends_connection, exc  # fatal, or a client ERROR's broken body (CP-ERR-11)
    assert conn.their_error is exc
    assert conn._decoder.buffered == 0, "input kept after a fatal error"
    for data in (b"\x00" * 64, b""):
        conn.receive_data(data)  # dropped unread, never raises
        try:
            conn.next_event()
        except RemoteProtocolError as again:
            assert again is exc
        else:
            raise AssertionError("next_event produced an event after a fatal error")
    assert conn._decoder.buffered == 0
    if ERROR_REGISTRY[exc.code].on_wire and not exc.silent:
        conn.send(error_message(exc))  # the answer the docs prescribe is always allowed
        # A fatal answer closes the Connection; the answer to a client ERROR's broken body
        # is not fatal, and the server closes the socket after it (CP-ERR-11).
        assert conn.state is State.CLOSED or not exc.fatal


def check_connection(
    role: Sender, prefix: str, chunks: Sequence[bytes], eof: bool = True
) -> ConnectionOutcome:
    """Feed ``chunks`` (then end of stream if ``eof``) to a ``role`` end after ``prefix``."""
    conn = connection_after(role, prefix)
    events: list[Event] = []
    sent = bytearray()
    fed = 0
    deliveries = [chunk for chunk in chunks if chunk]  # b"" means end of stream
    if eof:
        deliveries.append(b"")
    for chunk in deliveries:
        fed += len(chunk)
        try:
            conn.receive_data(chunk)
            for event in conn.events():
                _check_event(conn, event, eof=not chunk)
                events.append(event)
                sent += _answer(conn, event)
        except RemoteProtocolError as exc:
            _check_after_fatal(conn, exc)
            error = (exc.code, exc.request_id, exc.detail, exc.silent)
            return ConnectionOutcome(tuple(events), bytes(sent), error, conn.state)
        # Every event but the last ConnectionClosed took at least one frame header.
        assert len(events) <= fed // HEADER_SIZE + 1
        decoder = conn._decoder
        assert decoder.buffered < LENGTH_FIELD_SIZE + decoder.max_length
        if conn.state is State.CLOSED:
            assert decoder.buffered == 0, "input kept after CLOSED"
    if eof:
        assert isinstance(events[-1], ConnectionClosed)
        assert conn.state in (State.CLOSED, State.QUITTING)
    return ConnectionOutcome(tuple(events), bytes(sent), None, conn.state)


def check_split_invariance(
    role: Sender, prefix: str, stream: bytes, cuts: Sequence[int], eof: bool = True
) -> None:
    """The stream cut at ``cuts`` gives what it gives whole."""
    whole = check_connection(role, prefix, [stream], eof)
    assert check_connection(role, prefix, split(stream, cuts), eof) == whole


def check_decoder_split_invariance(max_length: int, stream: bytes, cuts: Sequence[int]) -> None:
    whole = check_decoder(max_length, [stream])
    assert check_decoder(max_length, split(stream, cuts)) == whole


def split(stream: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``stream`` cut at each offset in ``cuts`` (clamped to the stream)."""
    bounds = [0, *sorted({min(max(cut, 0), len(stream)) for cut in cuts}), len(stream)]
    return [stream[a:b] for a, b in pairwise(bounds)]


# ---------------------------------------------------------------- strategies
#
# Streams are built of pieces: valid frames of the spec's vectors, the same
# frames damaged, frames of any type code with any body, bare headers with a
# length at an edge of a limit, and octets of no shape at all.

_MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**16), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 2**16), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 2**16), st.just(0)),
    st.tuples(st.just("length"), st.sampled_from(EDGE_LENGTHS) | st.integers(0, 2**32 - 1),
              st.just(0)),
    st.tuples(st.just("type"), st.sampled_from(sorted(MESSAGE_TYPES)) | st.integers(0, 0xFFFF),
              st.just(0)),
    st.tuples(st.just("grow"), st.integers(0, 2**16), st.integers(1, 64)),
)


def mutate(frame: bytes, mutations: Sequence[tuple[str, int, int]]) -> bytes:
    """``frame`` with each mutation applied in turn; "grow" keeps the length field right."""
    data = bytearray(frame)
    for kind, a, b in mutations:
        if kind == "flip" and data:
            data[a % len(data)] ^= 1 << b
        elif kind == "set" and data:
            data[a % len(data)] = b
        elif kind == "truncate":
            del data[a % (len(data) + 1) :]
        elif kind == "length" and len(data) >= 4:
            data[0:4] = a.to_bytes(4, "big")
        elif kind == "type" and len(data) >= 6:
            data[4:6] = a.to_bytes(2, "big")
        elif kind == "grow":
            at = a % (len(data) + 1)
            data[at:at] = bytes([0xA5]) * b
            if len(data) >= 4:
                data[0:4] = (len(data) - 4).to_bytes(4, "big")
    return bytes(data)


def _edge_header(length: int, type_code: int, body: int) -> bytes:
    """A header with ``length``, followed by ``body`` octets of it (at most 70000)."""
    return length.to_bytes(4, "big") + type_code.to_bytes(2, "big") + b"\0\0\0\1" \
        + b"\x41" * min(body, max(length - 6, 0), 70_000)


def pieces(frames: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    valid = st.sampled_from(frames)
    return st.one_of(
        valid,
        st.builds(mutate, valid, st.lists(_MUTATIONS, min_size=1, max_size=3)),
        st.builds(raw_frame, st.sampled_from(sorted(MESSAGE_TYPES)) | st.integers(0, 0xFFFF),
                  st.integers(0, 2**32 - 1), st.binary(max_size=48)),
        st.builds(_edge_header, st.sampled_from(EDGE_LENGTHS),
                  st.sampled_from(sorted(MESSAGE_TYPES)), st.sampled_from([0, 1, 70_000])),
        st.binary(max_size=24),
    )


def streams(
    frames: Sequence[bytes] = ALL_VECTOR_FRAMES, max_pieces: int = 6
) -> st.SearchStrategy[bytes]:
    return st.lists(pieces(frames), max_size=max_pieces).map(b"".join)


def cuts_of(stream: bytes) -> st.SearchStrategy[list[int]]:
    """Offsets to cut ``stream`` at: anywhere, often one octet apart."""
    return st.lists(st.integers(0, len(stream)), max_size=12)


def draw_decoder_case(data: st.DataObject) -> None:
    """Draw a decoder limit, a stream and its cuts, and check the decoder on them."""
    max_length = data.draw(st.sampled_from(FRAME_LIMITS) | st.integers(6, 70_000), label="limit")
    stream = data.draw(streams(), label="stream")
    check_decoder_split_invariance(max_length, stream, data.draw(cuts_of(stream), label="cuts"))


def draw_connection_case(role: Sender, data: st.DataObject) -> None:
    """Draw a prefix, a stream mostly of the peer's frames and its cuts; check ``role``."""
    prefix = data.draw(st.sampled_from(PREFIX_NAMES[role]), label="prefix")
    peer = SERVER if role is CLIENT else CLIENT
    frames = VECTOR_FRAMES[peer] * 3 + VECTOR_FRAMES[role]
    stream = data.draw(streams(frames), label="stream")
    cuts = data.draw(cuts_of(stream), label="cuts")
    check_split_invariance(role, prefix, stream, cuts, eof=data.draw(st.booleans(), label="eof"))
