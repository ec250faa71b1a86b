"""Fuzzing the sans-IO core: FrameDecoder and Connection in both roles.

The properties are in tests/fuzz_properties.py (bench/fuzz.py runs the same for
minutes); here hypothesis feeds them streams of valid, damaged and shapeless
frames, cut at arbitrary points, after every prefix of valid frames that brings
a connection to a state it can be in. The default profile keeps the normal run
to a few seconds; ``CHATPROTO_FUZZ_PROFILE=long`` runs each property a hundred
times longer.

tests/test_connection.py replays one scripted session cut at every offset;
the split properties here do the same for any stream, valid or not.
"""

from __future__ import annotations

import os

import pytest
from fuzz_properties import (
    CLIENT,
    PREFIXES,
    SERVER,
    SMALL_LIMITS,
    VECTOR_FRAMES,
    check_connection,
    check_split_invariance,
    cuts_of,
    draw_connection_case,
    draw_decoder_case,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pairs import feed, pair_in, peer

from chatproto import (
    Connection,
    ConnectionClosed,
    ErrorCode,
    LocalProtocolError,
    Message,
    RemoteProtocolError,
    Sender,
    State,
    decode_frame,
    encode,
)
from chatproto._schema import TRANSITIONS
from chatproto._state import event_key
from chatproto.messages import Bye, Error, Hello, Ping, Welcome

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
PROFILES = {
    "default": settings(max_examples=100, deadline=None, suppress_health_check=_QUIET),
    "long": settings(max_examples=10_000, deadline=None, suppress_health_check=_QUIET),
}
PROFILE = os.environ.get("CHATPROTO_FUZZ_PROFILE", "default")
FUZZ = PROFILES[PROFILE]
"""The profile of every property here: ``CHATPROTO_FUZZ_PROFILE=long`` for the long run."""
if PROFILE == "long":
    pytestmark = pytest.mark.timeout(0)  # minutes per test, by design


@FUZZ
@given(data=st.data())
def test_decoder_takes_any_stream_cut_anywhere(data: st.DataObject) -> None:
    draw_decoder_case(data)


@pytest.mark.parametrize("role", [CLIENT, SERVER])
@FUZZ
@given(data=st.data())
def test_connection_takes_any_stream_after_any_prefix(role: Sender, data: st.DataObject) -> None:
    draw_connection_case(role, data)


def _frames_allowed_in_ready(sender: Sender) -> list[bytes]:
    """Vector frames ``sender`` may send in READY without leaving it."""
    return [frame for frame in VECTOR_FRAMES[sender]
            if TRANSITIONS.get((State.READY, sender, event_key(decode_frame(frame))))
            is State.READY]


@pytest.mark.parametrize("role", [CLIENT, SERVER])
@FUZZ
@given(data=st.data())
def test_valid_stream_cut_anywhere_gives_every_frame_and_no_error(
    role: Sender, data: st.DataObject
) -> None:
    frames = data.draw(st.lists(st.sampled_from(_frames_allowed_in_ready(peer(role))),
                                max_size=12), label="frames")
    stream = b"".join(frames)
    check_split_invariance(role, "ready", stream, data.draw(cuts_of(stream), label="cuts"))
    outcome = check_connection(role, "ready", [stream])
    assert outcome.error is None
    assert len(outcome.events) == len(frames) + 1  # one event per frame, then ConnectionClosed


_VECTOR_MESSAGES = [decode_frame(frame) for frame in VECTOR_FRAMES[CLIENT] + VECTOR_FRAMES[SERVER]]


@FUZZ
@given(messages=st.lists(st.tuples(st.sampled_from(_VECTOR_MESSAGES), st.booleans()), max_size=16),
       start=st.sampled_from([State.AWAIT_HELLO, State.READY]), small=st.booleans())
def test_what_one_end_may_send_the_other_receives_unchanged(
    messages: list[tuple[Message, bool]], start: State, small: bool
) -> None:
    pair = pair_in(start, SMALL_LIMITS if small else None)
    for message, by_client in messages:
        sender = message.SENDER if message.SENDER is not Sender.BOTH \
            else CLIENT if by_client else SERVER
        if isinstance(message, Welcome):  # a server advertises what it enforces
            assert pair.server.limits is not None
            message = message.model_copy(update=pair.server.limits.model_dump())
        try:
            data = pair.side(sender).send(message)
        except LocalProtocolError:
            continue
        if isinstance(message, Hello) and message.min_version > 1:
            # A client cannot know what the server speaks before WELCOME (CP-HS-6).
            with pytest.raises(RemoteProtocolError, match="UNSUPPORTED_VERSION"):
                feed(pair.side(peer(sender)), data)
            return
        assert feed(pair.side(peer(sender)), data) == [message]
        assert pair.client.state is pair.server.state


# ------------------------------------------- defect 6: no input kept when CLOSED

CHUNK = encode(Ping(request_id=1)) * 6553 + b"\0" * 6  # 64 KiB of valid frames
CHUNKS_AFTER_CLOSE = 1024  # 64 MiB in all: what the attack run fed


def _closed_by(role: Sender, how: str) -> Connection:
    if how == "bye":
        conn = PREFIXES[role]["closed"]()
    elif how == "fatal-error-received":
        pair = pair_in(State.READY)
        conn = pair.side(role)
        fatal = Error(code=int(ErrorCode.STATE_VIOLATION), fatal=True)
        assert pair.transfer(peer(role), fatal) == [fatal]
    else:  # fatal-error-sent
        conn = PREFIXES[role]["ready"]()
        conn.send(Error(code=int(ErrorCode.STATE_VIOLATION), fatal=True))
    assert conn.state is State.CLOSED
    return conn


@pytest.mark.parametrize("how", ["bye", "fatal-error-received", "fatal-error-sent"])
@pytest.mark.parametrize("role", [CLIENT, SERVER])
def test_closed_connection_drops_what_it_is_fed(role: Sender, how: str) -> None:
    conn = _closed_by(role, how)
    for _ in range(CHUNKS_AFTER_CLOSE):
        assert feed(conn, CHUNK) == []
        assert len(conn._decoder.buffer) == 0
    assert feed(conn, b"") == [ConnectionClosed()]
    assert conn.state is State.CLOSED


def test_frames_after_bye_in_the_same_chunk_are_dropped() -> None:
    conn = PREFIXES[CLIENT]["quitting"]()
    after = encode(Ping(request_id=2)) * 100

    assert feed(conn, encode(Bye(request_id=9)) + after) == [Bye(request_id=9)]
    assert conn.state is State.CLOSED
    assert len(conn._decoder.buffer) == 0


@pytest.mark.parametrize("role", [CLIENT, SERVER])
def test_connection_keeps_no_input_after_a_fatal_remote_error(role: Sender) -> None:
    conn = PREFIXES[role]["ready"]()
    oversized = (2**31).to_bytes(4, "big") + b"\0" * (1 << 20)

    with pytest.raises(RemoteProtocolError) as caught:
        feed(conn, oversized)

    assert caught.value.code is ErrorCode.FRAME_TOO_LARGE
    assert conn.their_error is caught.value
    assert len(conn._decoder.buffer) == 0
    for _ in range(16):
        conn.receive_data(CHUNK)
        assert len(conn._decoder.buffer) == 0
        with pytest.raises(RemoteProtocolError):
            conn.next_event()
