"""PendingRequests: request ids, and sorting received frames into answers and events.

The rule under test is spec v1's (Intermediate frames and events): request_id 0
is an event; anything else belongs to the oldest request still waiting for that
request_id, up to its final response (CP-REQ-4, CP-REQ-5, CP-REQ-6, CP-REQ-7).
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as hst

from chatproto import (
    FINAL_RESPONSE_TYPES,
    FinalResponse,
    IntermediateFrame,
    Message,
    PendingRequests,
    is_final_response,
)
from chatproto._requests import MAX_REQUEST_ID
from chatproto.messages import (
    Bye,
    Error,
    History,
    HistoryGap,
    Join,
    ListUsers,
    Ok,
    Ping,
    Pong,
    Quit,
    RoomInfo,
    RoomMessage,
    UserInfo,
)


def room_message(request_id: int, seq: int = 1) -> RoomMessage:
    return RoomMessage(request_id=request_id, room="#a", sender="ann", text="hi", msg_id=seq,
                       seq=seq, timestamp_ms=0)


def user(request_id: int) -> UserInfo:
    return UserInfo(request_id=request_id, nick="bo", away=False, operator=False, registered=False)


def test_final_response_types_are_each_requests_answer_and_error() -> None:
    assert {cls.NAME for cls in FINAL_RESPONSE_TYPES} == {"OK", "WELCOME", "PONG", "BYE",
                                                          "ERROR"}
    assert is_final_response(Ok(request_id=1))
    assert not is_final_response(RoomInfo(room="#a", topic="", member_count=1, last_seq=0))


def test_ids_count_up_from_one_and_skip_outstanding_ones() -> None:
    pending: PendingRequests[str] = PendingRequests()
    assert [pending.next_id() for _ in range(3)] == [1, 2, 3]
    pending.track(Ping(request_id=5), "ping")
    assert [pending.next_id() for _ in range(2)] == [4, 6]


def test_ids_wrap_past_the_largest_u32_and_skip_zero() -> None:
    pending: PendingRequests[None] = PendingRequests(first_id=MAX_REQUEST_ID - 1)
    pending.track(Ping(request_id=1), None)
    assert [pending.next_id() for _ in range(3)] == [MAX_REQUEST_ID - 1, MAX_REQUEST_ID, 2]


@pytest.mark.parametrize("first_id", [0, MAX_REQUEST_ID + 1])
def test_first_id_must_be_a_nonzero_u32(first_id: int) -> None:
    with pytest.raises(ValueError):
        PendingRequests(first_id=first_id)


def test_request_id_zero_and_non_requests_are_not_tracked() -> None:
    pending: PendingRequests[None] = PendingRequests()
    with pytest.raises(ValueError, match="request_id 0"):
        pending.track(Quit(), None)  # a QUIT may carry 0, but then nothing can be paired
    with pytest.raises(ValueError, match="not a request"):
        pending.track(Ok(request_id=3), None)
    with pytest.raises(ValueError):
        pending.track_raw(0, None)
    assert len(pending) == 0


def test_intermediate_frames_then_the_final_response() -> None:
    """CP-REQ-6: HISTORY's gap and replay come before its OK, with its request_id."""
    pending: PendingRequests[str] = PendingRequests()
    request = History(request_id=pending.next_id(), room="#a", before_seq=0, limit=50)
    pending.track(request, "history")
    gap = HistoryGap(request_id=1, room="#a", first_seq=1, last_seq=2)
    replay = room_message(1, seq=3)
    first = pending.receive(gap)
    second = pending.receive(replay)
    assert isinstance(first, IntermediateFrame) and first.frame is gap
    assert isinstance(second, IntermediateFrame) and second.outstanding.payload == "history"
    final = pending.receive(Ok(request_id=1))
    assert isinstance(final, FinalResponse)
    assert final.payload == "history" and final.expected
    assert final.outstanding.request is request
    assert final.frames == [gap, replay, Ok(request_id=1)]
    assert 1 not in pending and len(pending) == 0
    assert pending.receive(room_message(1)) is None  # nothing carries the id after its end


def test_events_answer_nothing() -> None:
    """CP-REQ-7: request_id 0 is an event, a fatal ERROR among them; so is a PING."""
    pending: PendingRequests[None] = PendingRequests()
    pending.track(ListUsers(request_id=1), None)
    assert pending.receive(room_message(0)) is None
    assert pending.receive(Error(request_id=0, code=502, fatal=True)) is None
    assert pending.receive(Ping(request_id=1)) is None  # the peer's own request
    assert pending.receive(user(9)) is None  # nothing waits for 9
    assert 1 in pending


def test_an_error_ends_any_request() -> None:
    pending: PendingRequests[None] = PendingRequests()
    pending.track(Join(request_id=7, room="#a"), None)
    final = pending.receive(Error(request_id=7, code=403, fatal=False))
    assert isinstance(final, FinalResponse) and final.expected and final.frames[-1].NAME == "ERROR"


def test_a_final_response_of_the_wrong_type_ends_the_request_unexpected() -> None:
    """A PONG to a JOIN breaks CP-REQ-4: the answer ends (a final type is never an
    intermediate frame), and the caller learns it was not the one due."""
    pending: PendingRequests[None] = PendingRequests()
    pending.track(Join(request_id=7, room="#a"), None)
    final = pending.receive(Pong(request_id=7))
    assert isinstance(final, FinalResponse) and not final.expected
    pending.track_raw(8, None)  # a frame written as bytes: any final type is due
    raw = pending.receive(Pong(request_id=8))
    assert isinstance(raw, FinalResponse) and raw.expected and raw.outstanding.request is None


def test_a_reused_id_is_answered_oldest_first() -> None:
    """CP-REQ-2 is a SHOULD: with one id twice, the first final answers the first request."""
    pending: PendingRequests[str] = PendingRequests()
    pending.track(Ping(request_id=4), "first")
    pending.track(Quit(request_id=4), "second")
    assert len(pending) == 2
    first, second = pending.receive(Pong(request_id=4)), pending.receive(Bye(request_id=4))
    assert isinstance(first, FinalResponse) and first.payload == "first"
    assert isinstance(second, FinalResponse) and second.payload == "second" and second.expected
    assert len(pending) == 0


def test_clear_hands_back_what_will_never_be_answered() -> None:
    pending: PendingRequests[str] = PendingRequests()
    pending.track(Ping(request_id=1), "a")
    pending.track(ListUsers(request_id=2), "b")
    pending.receive(user(2))
    left = pending.clear()
    assert [(o.payload, len(o.frames)) for o in left] == [("a", 0), ("b", 1)]
    assert len(pending) == 0 and pending.get(1) is None


# ------------------------------------------------------------------ properties

# A script: send a request (with a fresh id, or reusing an outstanding one), or
# receive a frame naming some id in a small range.
_step = hst.one_of(
    hst.tuples(hst.just("send"), hst.booleans()),
    hst.tuples(hst.just("part"), hst.integers(0, 6)),
    hst.tuples(hst.just("final"), hst.integers(0, 6)),
    hst.tuples(hst.just("error"), hst.integers(0, 6)),
)


@given(hst.lists(_step, max_size=60), hst.integers(1, MAX_REQUEST_ID))
def test_matches_a_model_of_the_spec_rule(steps: list[tuple[str, object]],
                                          first_id: int) -> None:
    """Against a plain model: each id's requests in sending order; a final response
    ends the oldest; other frames join its answer; id 0 and unknown ids are events."""
    pending: PendingRequests[int] = PendingRequests(first_id=first_id)
    model: dict[int, deque[tuple[int, list[Message]]]] = {}
    ids: list[int] = []
    for serial, (kind, arg) in enumerate(steps):
        if kind == "send":
            if arg and model:
                request_id = next(iter(model))  # reuse an outstanding id
            else:
                request_id = pending.next_id()
                assert 0 < request_id <= MAX_REQUEST_ID and request_id not in model
            ids.append(request_id)
            pending.track(ListUsers(request_id=request_id), serial)
            model.setdefault(request_id, deque()).append((serial, []))
            continue
        assert isinstance(arg, int)
        request_id = ids[arg] if arg < len(ids) else 0
        message: Message = {
            "part": user(request_id),
            "final": Ok(request_id=request_id),
            "error": Error(request_id=request_id, code=403, fatal=False),
        }[kind]
        got = pending.receive(message)
        waiting = model.get(request_id) if request_id else None
        if not waiting:
            assert got is None
        elif kind == "part":
            assert isinstance(got, IntermediateFrame) and got.outstanding.payload == waiting[0][0]
            waiting[0][1].append(message)
        else:
            payload, frames = waiting.popleft()
            if not waiting:
                del model[request_id]
            assert isinstance(got, FinalResponse) and got.expected
            assert got.payload == payload and got.frames == [*frames, message]
        assert len(pending) == sum(len(w) for w in model.values())
        assert all((i in pending) == (i in model) for i in ids)
