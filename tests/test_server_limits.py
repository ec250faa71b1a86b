"""Reference server: keepalive, idle timeout, rate limits, slow readers (real sockets).

Spec page: keepalive-and-flow. The keepalive tests wait for real timers (with
keepalive_interval_s=1 and idle_timeout_s=2 they take a few seconds each); every
wait is a bounded asyncio wait for a frame or for the close, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from conftest import ClientFactory, RunningServer
from server_harness import ChatTestClient, describe_all, join_all, of_type, refused

from chatproto import ErrorCode, Limits, encode
from chatproto.messages import (
    Error,
    History,
    Join,
    LeaveKind,
    ListRooms,
    MemberLeft,
    Ok,
    Ping,
    PrivateMessage,
    RoomMessage,
    SendPrivate,
    SendRoom,
)

FAST_KEEPALIVE = Limits(keepalive_interval_s=1, idle_timeout_s=2)


@pytest.mark.slow
@pytest.mark.server_config(limits=FAST_KEEPALIVE)
async def test_server_pings_an_idle_client_that_answers_and_stays(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-KEEP-4, CP-KEEP-1, CP-REQ-7: a client silent for keepalive_interval_s gets a
    PING with request_id 0; answering it (PONG with the token and request_id 0) keeps the
    connection open well past idle_timeout_s."""
    client = await client_factory("idler")
    started = time.monotonic()
    first = await client.expect(Ping, timeout=4)
    assert first.request_id == 0
    assert time.monotonic() - started >= 0.9
    await client.expect(Ping, timeout=4)
    await client.expect(Ping, timeout=4)
    assert time.monotonic() - started > FAST_KEEPALIVE.idle_timeout_s
    assert not client.closed
    await client.barrier()
    await client.ok(Join(room="#still-here"))


@pytest.mark.slow
@pytest.mark.server_config(limits=Limits(keepalive_interval_s=1, idle_timeout_s=4))
async def test_a_silent_client_gets_one_ping_per_interval(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-KEEP-4, CP-KEEP-6 (issue 14 A8): a client that answers nothing gets a PING after
    each keepalive_interval_s of its silence, never two within one interval: about three
    (at 1, 2 and 3 s) before the IDLE_TIMEOUT at 4 s."""
    silent = await client_factory("silent", auto_pong=False)
    loop = asyncio.get_running_loop()
    started, pings = loop.time(), []
    while True:
        frame = await silent.expect((Ping, Error), timeout=7)
        if isinstance(frame, Error):
            break
        pings.append(loop.time() - started)
    assert frame.code == ErrorCode.IDLE_TIMEOUT
    assert 2 <= len(pings) <= 4, pings
    assert pings[0] >= 0.9, pings
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(pings)), pings


@pytest.mark.slow
@pytest.mark.server_config(limits=FAST_KEEPALIVE)
async def test_idle_timeout_closes_a_silent_client(server: RunningServer,
                                                   client_factory: ClientFactory) -> None:
    """CP-KEEP-5, CP-ERR-1, CP-ERR-3, CP-CLOSE-9: a client that never answers is sent ERROR
    IDLE_TIMEOUT (fatal, request_id 0) and closed after about idle_timeout_s; its room
    mates get MEMBER_LEFT kind DISCONNECT; they themselves (answering PINGs) stay."""
    silent = await client_factory("silent", auto_pong=False)
    mate = await client_factory("mate")
    await join_all("#room", silent, mate)
    started = time.monotonic()
    events = await silent.read_until_closed(timeout=6)
    elapsed = time.monotonic() - started
    errors = of_type(events, Error)
    assert [(e.code, e.fatal, e.request_id) for e in errors] == [
        (ErrorCode.IDLE_TIMEOUT, True, 0)], describe_all(events)
    assert errors[0].retry_after_ms == 0  # CP-ERR-4
    assert of_type(events, Ping), "no PING before the timeout"
    assert 1.5 <= elapsed <= 5
    left = await mate.expect(MemberLeft)
    assert (left.nick, left.kind) == ("silent", LeaveKind.DISCONNECT)
    assert not mate.closed
    await mate.ok(SendRoom(room="#room", text="I answered my pings"))


@pytest.mark.slow
@pytest.mark.server_config(limits=FAST_KEEPALIVE)
async def test_idle_timeout_before_the_handshake(server: RunningServer,
                                                 client_factory: ClientFactory) -> None:
    """CP-KEEP-5 (from the moment the connection is accepted): a connection that never
    sends HELLO is closed by the server within about idle_timeout_s."""
    lurker = await client_factory(None)
    events = await lurker.read_until_closed(timeout=6)
    errors = of_type(events, Error)
    assert all(e.code == ErrorCode.IDLE_TIMEOUT and e.fatal for e in errors), events


@pytest.mark.slow
@pytest.mark.server_config(limits=FAST_KEEPALIVE)
async def test_half_a_frame_then_silence_is_idle(server: RunningServer,
                                                 client_factory: ClientFactory) -> None:
    """CP-KEEP-5 (only complete frames count), CP-FLOW-4: a client that sends half a frame
    and stops is timed out with IDLE_TIMEOUT; meanwhile two other clients chat normally."""
    stuck, alice, bob = [await client_factory(n) for n in ("stuck", "alice", "bob")]
    stuck.auto_pong = False
    await join_all("#room", alice, bob)
    frame = SendRoom(room="#room", text="never finished", request_id=77)
    await stuck.send_raw(encode(frame)[:9])
    for number in range(5):
        await alice.ok(SendRoom(room="#room", text=f"chat {number}"))
        assert len(of_type(await bob.barrier(), RoomMessage)) == 1
    events = await stuck.read_until_closed(timeout=6)
    assert [(e.code, e.fatal) for e in of_type(events, Error)] == [
        (ErrorCode.IDLE_TIMEOUT, True)], describe_all(events)
    assert of_type(events, RoomMessage) == []
    await alice.ok(SendRoom(room="#room", text="after the timeout"))
    assert len(of_type(await bob.barrier(), RoomMessage)) == 1


# ----------------------------------------------------------------- rate limits


@pytest.mark.server_config(limits=Limits(msg_rate_burst=5, msg_rate_interval_ms=400))
async def test_message_flood_is_rate_limited_not_disconnected(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-RATE-1, CP-RATE-2, CP-RATE-3, CP-RATE-4, CP-ERR-5: the advertised burst of
    messages (SEND_ROOM and SEND_PRIVATE share the bucket) goes through at once; the next
    is RATE_LIMITED (non-fatal, 0 < retry_after_ms <= interval), not performed and not
    delivered; the connection stays open; after retry_after_ms the message goes through."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    assert alice.welcome is not None
    burst = alice.welcome.msg_rate_burst
    interval = alice.welcome.msg_rate_interval_ms
    assert (burst, interval) == (5, 400)
    ids = [await alice.send(SendRoom(room="#room", text=f"burst {i}")) for i in range(burst - 1)]
    ids.append(await alice.send(SendPrivate(nick="bob", text="private one")))
    over = await alice.send(SendRoom(room="#room", text="one too many"))
    for request_id in ids:
        assert isinstance((await alice.response(request_id))[-1], Ok)
    error = refused(await alice.response(over), ErrorCode.RATE_LIMITED)
    assert 0 < error.retry_after_ms <= interval
    received = await bob.barrier()
    assert [m.NAME for m in received] == ["ROOM_MESSAGE"] * (burst - 1) + ["PRIVATE_MESSAGE"]
    assert not alice.closed
    # Commands have their own bucket: still available.
    await alice.ok(ListRooms())
    await alice.barrier()
    # CP-RATE-5: wait as told, then the message is accepted.
    await asyncio.sleep(error.retry_after_ms / 1000)
    ok = (await alice.ok(SendRoom(room="#room", text="one too many")))[-1]
    assert isinstance(ok, Ok) and ok.seq == burst


@pytest.mark.server_config(limits=Limits(cmd_rate_burst=6, cmd_rate_interval_ms=1000))
async def test_command_flood_is_rate_limited(server: RunningServer,
                                             client_factory: ClientFactory) -> None:
    """CP-RATE-1, CP-RATE-2, CP-RATE-3: the command bucket covers every request but
    HELLO, PING and QUIT — failing requests count too; PING is never limited."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#room"))                                  # 1
    refused(await alice.request(Join(room="#room")), ErrorCode.ALREADY_IN_ROOM)   # 2
    for _ in range(4):                                                    # 3..6
        await alice.ok(ListRooms())
    error = refused(await alice.request(ListRooms()), ErrorCode.RATE_LIMITED)
    assert 0 < error.retry_after_ms <= 1000
    for _ in range(30):
        await alice.barrier()
    # Messages have their own bucket.
    await alice.ok(SendRoom(room="#room", text="messages are another bucket"))
    assert not alice.closed


@pytest.mark.server_config(limits=Limits(msg_rate_burst=3, msg_rate_interval_ms=60000,
                                         max_message_length=100))
async def test_requests_refused_for_their_fields_take_no_token(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-RATE-7, CP-ERR-10: messages refused for a field (a control character,
    INVALID_FIELD) or an advertised limit (MESSAGE_TOO_LONG), many more than the burst,
    are answered with that error, never RATE_LIMITED, and leave the whole burst."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    for _ in range(4):
        refused(await alice.request_unchecked(SendPrivate, nick="bob", text="bell\a"),
                ErrorCode.INVALID_FIELD)
        refused(await alice.request_unchecked(SendPrivate, nick="bob", text="x" * 101),
                ErrorCode.MESSAGE_TOO_LONG)
    for i in range(3):
        await alice.ok(SendPrivate(nick="bob", text=f"counted {i}"))
    refused(await alice.request(SendPrivate(nick="bob", text="one too many")),
            ErrorCode.RATE_LIMITED)
    assert len(of_type(await bob.barrier(), PrivateMessage)) == 3


async def test_buckets_are_full_at_welcome(server: RunningServer,
                                           client_factory: ClientFactory) -> None:
    """CP-RATE-4: right after WELCOME, the advertised burst of messages goes through, all
    pipelined in one go, and the next one does not."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    assert alice.welcome is not None
    burst = alice.welcome.msg_rate_burst
    ids = [await alice.send(SendRoom(room="#room", text=f"{i}")) for i in range(burst + 1)]
    finals = [(await alice.response(request_id))[-1] for request_id in ids]
    assert all(isinstance(f, Ok) for f in finals[:burst]), finals
    assert isinstance(finals[-1], Error) and finals[-1].code == ErrorCode.RATE_LIMITED
    assert len(of_type(await bob.barrier(), RoomMessage)) == burst


# ---------------------------------------------------------------- slow readers

SLOW_LIMITS = Limits(msg_rate_burst=60000, msg_rate_interval_ms=1, max_message_length=8000)
MAX_FLOOD = 40_000_000
"""Bytes the senders push through the room at most, waiting for the slow reader's drop."""
AFTER_DROP = 25
"""Batches each sender sends after the drop: the others must get those too."""


@pytest.mark.server_config(limits=SLOW_LIMITS, max_output_buffer=65536)
async def test_slow_reader_is_dropped_and_the_others_get_everything(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-FLOW-1, CP-FLOW-2, CP-FLOW-3, CP-FLOW-4, CP-CLOSE-9: a member that stops reading
    while two others keep sending is disconnected once its queue passes
    max_output_buffer: the others see MEMBER_LEFT kind DISCONNECT, and the reader, when it
    reads again, finds whole frames and then ERROR SLOW_CONSUMER (fatal) before the
    close. Meanwhile every other member receives every message, in seq order."""
    slow = await client_factory("slow", rcvbuf=4096)
    senders = [await client_factory(n) for n in ("alice", "bob")]
    readers = [await client_factory(n) for n in ("carol", "dave")]
    await join_all("#room", slow, *senders, *readers)
    slow.pause_reading()

    # Each sender pipelines 2 messages of 8 KB at a time: what can pile up for an
    # attentive reader within one turn of the server stays well below the bound. The
    # kernel's socket buffers on loopback take about 3 MB for a reader that does not
    # read (the server's send buffer grows to 4 MB whatever the receiver's window), so
    # the senders go on until the slow reader is dropped (at most MAX_FLOOD bytes),
    # then send AFTER_DROP more batches.
    text = "x" * 8000
    batch_size = 2
    dropped = asyncio.Event()

    async def watch() -> None:
        left = await readers[0].expect(MemberLeft, timeout=60)
        assert (left.nick, left.kind) == ("slow", LeaveKind.DISCONNECT)
        slow.resume_reading()  # read again at once, before the server gives up the socket
        dropped.set()

    async def send_all(client: ChatTestClient) -> list[Ok]:
        oks: list[Ok] = []
        after_drop = 0
        while after_drop < AFTER_DROP and len(oks) * len(text) * len(senders) < MAX_FLOOD:
            ids = [await client.send(SendRoom(room="#room", text=text))
                   for _ in range(batch_size)]
            for request_id in ids:
                final = (await client.response(request_id, timeout=10))[-1]
                assert isinstance(final, Ok), final
                oks.append(final)
            if dropped.is_set():
                after_drop += 1
        return oks

    watcher = asyncio.create_task(watch())
    sending = [asyncio.create_task(send_all(c)) for c in senders]
    await asyncio.gather(*sending)
    assert dropped.is_set(), f"the slow reader was not dropped after {MAX_FLOOD} bytes"
    await watcher
    total = sum(len(task.result()) for task in sending)
    assert sorted(ok.seq for task in sending for ok in task.result()) == list(
        range(1, total + 1))
    for reader in readers:
        received = await reader.barrier(timeout=20)
        seqs = [m.seq for m in of_type(received, RoomMessage)]
        assert seqs == list(range(1, total + 1)), "a reader missed messages or saw disorder"
        gone = [(m.nick, m.kind) for m in of_type(received, MemberLeft)]
        # (the watcher already took readers[0]'s MEMBER_LEFT)
        assert gone == ([] if reader is readers[0] else [("slow", LeaveKind.DISCONNECT)])
    for sender in senders:
        left = of_type(await sender.barrier(), MemberLeft)
        assert [(m.nick, m.kind) for m in left] == [("slow", LeaveKind.DISCONNECT)]

    slow.resume_reading()
    events = await slow.read_until_closed(timeout=10)
    assert not slow.truncated, "the server cut a frame in half (CP-FLOW-3)"
    assert slow.protocol_faults == []
    errors = of_type(events, Error)
    assert [(e.code, e.fatal, e.request_id) for e in errors] == [
        (ErrorCode.SLOW_CONSUMER, True, 0)]
    assert events[-1] is errors[0], "SLOW_CONSUMER must be the last frame"
    delivered = [m.seq for m in of_type(events, RoomMessage)]
    assert delivered == list(range(1, len(delivered) + 1)), "whole frames, in order, no gaps"
    assert len(delivered) < total
    print(f"\nslow reader: dropped after {len(delivered)} of {total} messages "
          f"({len(delivered) * len(text) // 1024} KiB) reached it")


@pytest.mark.server_config(limits=Limits(cmd_rate_burst=200, msg_rate_burst=200,
                                         msg_rate_interval_ms=1, max_message_length=4000,
                                         history_page_max=50),
                           max_output_buffer=65536)
async def test_answers_count_against_the_output_bound_too(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-FLOW-1, CP-FLOW-2: the bound holds for a client's own answers as well: one that
    pipelines HISTORY requests (about 200 KB each) without reading is dropped with
    SLOW_CONSUMER instead of having megabytes queued for it."""
    alice = await client_factory("alice")
    await alice.ok(Join(room="#big"))
    ids = await alice.send_many([SendRoom(room="#big", text="y" * 4000) for _ in range(50)])
    for request_id in ids:
        assert isinstance((await alice.response(request_id))[-1], Ok)
    hoarder = await client_factory("hoarder", rcvbuf=4096)
    await hoarder.ok(Join(room="#big"))
    hoarder.pause_reading()
    await hoarder.send_many([History(room="#big", limit=50) for _ in range(80)])
    left = await alice.expect(MemberLeft, timeout=10)
    assert (left.nick, left.kind) == ("hoarder", LeaveKind.DISCONNECT)
    hoarder.resume_reading()
    events = await hoarder.read_until_closed(timeout=10)
    assert not hoarder.truncated
    assert [(e.code, e.fatal) for e in of_type(events, Error)] == [
        (ErrorCode.SLOW_CONSUMER, True)]
