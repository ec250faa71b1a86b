"""Reference client library: reconnection, resume and gap detection.

The centrepiece runs the reference server as a real process
(``python -m reference_server``) on a fixed port: the server is stopped with
SIGTERM (or killed) and started again on the SAME port and data directory while
another client keeps posting; the client with ``reconnect=True`` must come back
by itself (Reconnecting, then Reconnected), log in again and resume its rooms
so that it sees every message exactly once, in seq order, or is told
(HistoryGapDetected) what it cannot get any more.

A scripted fake server (client_tools.FakeServer) covers what a correct server
never produces on demand: a seq that skips, frames that share one TCP read,
a drop in the middle of the rejoin, handshake refusals on reconnection.

Spec pages: lifecycle (Server shutdown, CP-CLOSE-8), messaging (Ordering,
Resuming after a reconnect: CP-HIST-15/8/9, message identity); the library's
contract: the client design brief (Reconnect).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from client_tools import (
    RELAXED,
    ClientMaker,
    FakePeer,
    FakeServer,
    Watched,
    free_port,
    one_line,
    show_all,
    welcome_and_serve,
)
from conftest import AsyncResources, MakeServer, MakeServerProcess
from server_harness import ServerProcess

from chatproto import ErrorCode, Limits, Message
from chatproto.messages import (
    Error,
    Hello,
    History,
    Join,
    Ok,
    RoomInfo,
    RoomMessage,
    SendRoom,
)
from reference_client import (
    ConnectionLost,
    Disconnected,
    HistoryGapDetected,
    Reconnected,
    Reconnecting,
)

GRACE_S = 4.0
"""The servers' shutdown_grace_s, so SERVER_SHUTDOWN says retry_after_ms=4000. The
reconnecting client waits (at least half of) that before its first attempt: time
enough to restart the server and post the messages it is to miss."""

RECONNECT = {"reconnect": True, "reconnect_max_delay": 1.0}


async def start_process(make_server_process: MakeServerProcess, tmp_path: Path,
                        *args: str) -> ServerProcess:
    """A server process on a port picked now (so a restart can reuse it), relaxed rates."""
    config = tmp_path / "server.toml"
    config.write_text(f"shutdown_grace_s = {GRACE_S}\n", encoding="utf-8")
    port = free_port()
    limits = [f"--{name.replace('_', '-')}={value}" for name, value in RELAXED.items()]
    process = make_server_process("--port", str(port), "--config", str(config), *limits, *args)
    await process.start()
    assert process.port == port, process.stderr_text()
    return process


async def restart(make_server_process: MakeServerProcess,
                  process: ServerProcess) -> ServerProcess:
    """The stopped server again: same command line, so the same port and data dir.

    A new ServerProcess object: restarting the same object right after ``stop`` can
    fail at once, because the watcher thread of its previous ``start`` may still set
    its "listening" event late (a race in server_harness.ServerProcess).
    """
    again = make_server_process(*process.args, data_dir=process.data_dir)
    await again.start()
    assert again.port == process.port, again.stderr_text()
    return again


def index_of(watched: Watched, event: object) -> int:
    return next(i for i, e in enumerate(watched.log) if e is event)


def messages_of(watched: Watched, room: str) -> list[RoomMessage]:
    return [e for e in watched.log if isinstance(e, RoomMessage) and e.room == room]


def seq_is(seq: int) -> Any:
    return lambda e: isinstance(e, RoomMessage) and e.seq == seq


# ------------------------------------------------------- real server process


@pytest.mark.slow
async def test_reconnect_after_a_restart_resumes_exactly_the_missed_messages(
        make_server_process: MakeServerProcess, tmp_path: Path, clients: ClientMaker) -> None:
    """CP-CLOSE-7, CP-CLOSE-8, CP-HIST-15, CP-HIST-9, CP-MSG-10, brief (Reconnect): alice
    (an account, reconnect=True) is in #room and #other and has seen seq 1-3. The server
    is stopped (SIGTERM) and restarted on the same port and data dir; bob posts seq 4-7
    before alice is back. alice emits Reconnecting then Reconnected (same nick, both
    rooms), is logged in again, and receives 4-7 replayed (history 1) and then 8-9 live:
    every seq exactly once, in order, no HistoryGapDetected, no Disconnected."""
    process = await start_process(make_server_process, tmp_path)
    port = process.port
    setup = await clients("alice", port)
    await setup.client.register("alice's password")
    await setup.client.quit()

    alice = await clients("alice", port, password="alice's password", **RECONNECT)
    assert alice.client.welcome is not None and alice.client.welcome.logged_in
    await alice.client.join("#room")
    await alice.client.join("#other")
    bob = await clients("bob", port)
    await bob.client.join("#room")
    for n in range(1, 4):
        await bob.client.send_room("#room", f"before {n}")
    for seq in (1, 2, 3):
        await alice.expect(seq_is(seq))
    assert alice.client.rooms["#room"].last_seq == 3

    assert await process.stop() == 0, process.stderr_text()
    reconnecting = await alice.expect_type(Reconnecting, timeout=10)
    assert reconnecting.attempt == 1 and reconnecting.delay_s > 0
    assert one_line(reconnecting.reason), reconnecting.reason
    await bob.wait_ended(timeout=10)  # reconnect off: bob is done
    assert [d.code for d in bob.disconnected] == [ErrorCode.SERVER_SHUTDOWN]

    await restart(make_server_process, process)
    bob = await clients("bob", port)
    assert (await bob.client.join("#room")).info.last_seq == 3  # the history survived
    missed = [await bob.client.send_room("#room", f"missed {n}") for n in range(4, 8)]
    assert [ok.seq for ok in missed] == [4, 5, 6, 7]

    reconnected = await alice.expect_type(Reconnected, timeout=20)
    assert reconnected.nick == "alice"
    assert sorted(reconnected.rooms) == ["#other", "#room"]
    assert alice.client.nick == "alice" and alice.client.connected
    assert index_of(alice, reconnecting) < index_of(alice, reconnected)
    live = [await bob.client.send_room("#room", f"live {n}") for n in range(8, 10)]
    await alice.expect(seq_is(9))
    await alice.barrier()

    got = messages_of(alice, "#room")
    assert [m.seq for m in got] == list(range(1, 10)), show_all(got)
    assert [m.text for m in got[3:]] == [f"missed {n}" for n in range(4, 8)] + [
        f"live {n}" for n in range(8, 10)]
    assert [m.msg_id for m in got[3:]] == [ok.msg_id for ok in missed + live]
    assert [m.history for m in got[3:7]] == [True] * 4, (
        "seq 4-7 were posted before alice came back: they must come from the resume")
    assert [m.history for m in got[7:]] == [False, False]
    assert all(index_of(alice, reconnecting) < index_of(alice, m) for m in got[3:])
    assert alice.of_type(HistoryGapDetected) == [], show_all(alice.log)
    assert alice.disconnected == []
    assert alice.client.rooms["#room"].last_seq == 9

    users = {u.nick: u for u in await bob.client.list_users()}
    assert users["alice"].registered, "alice must log in again with her password"
    assert "alice" in {u.nick for u in await bob.client.list_members("#other")}
    ok = await alice.client.send_room("#room", "I am back")
    back = await bob.expect(seq_is(10))
    assert (back.sender, back.text, ok.seq) == ("alice", "I am back", 10)


@pytest.mark.slow
async def test_reconnect_reports_the_gap_when_the_server_no_longer_has_the_range(
        make_server_process: MakeServerProcess, tmp_path: Path, clients: ClientMaker) -> None:
    """CP-HIST-1, CP-HIST-8, brief: with --history-depth 3, bob posts seq 3-12 while alice
    is away; her resume after seq 2 gets HISTORY_GAP 3-9, which she reports as
    HistoryGapDetected(#room, 3, 9) before the replayed 10-12; live 13 follows."""
    process = await start_process(make_server_process, tmp_path,
                                  "--history-depth", "3", "--history-on-join", "3")
    port = process.port
    alice = await clients("alice", port, **RECONNECT)
    await alice.client.join("#room")
    bob = await clients("bob", port)
    await bob.client.join("#room")
    for n in (1, 2):
        await bob.client.send_room("#room", f"seen {n}")
    await alice.expect(seq_is(2))

    assert await process.stop() == 0, process.stderr_text()
    reconnecting = await alice.expect_type(Reconnecting, timeout=10)
    await restart(make_server_process, process)
    bob = await clients("bob", port)
    await bob.client.join("#room")
    for n in range(3, 13):
        await bob.client.send_room("#room", f"while away {n}")

    await alice.expect_type(Reconnected, timeout=20)
    await bob.client.send_room("#room", "live 13")
    await alice.expect(seq_is(13))
    await alice.barrier()

    gaps = alice.of_type(HistoryGapDetected)
    assert [(g.room, g.first_seq, g.last_seq) for g in gaps] == [("#room", 3, 9)], \
        show_all(alice.log)
    after = [m for m in messages_of(alice, "#room")
             if index_of(alice, m) > index_of(alice, reconnecting)]
    assert [m.seq for m in after] == [10, 11, 12, 13], show_all(after)
    assert [m.history for m in after] == [True, True, True, False]
    assert index_of(alice, gaps[0]) < index_of(alice, after[0])
    assert alice.client.rooms["#room"].last_seq == 13


@pytest.mark.slow
async def test_reconnect_after_the_server_vanishes_backs_off_and_comes_back(
        make_server_process: MakeServerProcess, tmp_path: Path, clients: ClientMaker) -> None:
    """CP-CLOSE-8, CP-CLOSE-9, brief: the server is killed (no SERVER_SHUTDOWN, the
    connection just ends): the first attempt comes after 0.5 to 0.75 s (base delay plus
    jitter above it), refused attempts
    go on with delays up to reconnect_max_delay, each announced by Reconnecting with a
    one-line reason; once the server is back, Reconnected, the room is rejoined and
    messages flow both ways."""
    process = await start_process(make_server_process, tmp_path)
    port = process.port
    alice = await clients("alice", port, **RECONNECT)
    await alice.client.join("#room")
    assert (await alice.client.ping()).token == b""

    process.kill()
    first = await alice.expect_type(Reconnecting, timeout=10)
    assert first.attempt == 1 and 0.5 <= first.delay_s <= 0.75, first
    assert one_line(first.reason)
    second = await alice.expect_type(Reconnecting, timeout=10)
    assert second.attempt == 2 and 1.0 <= second.delay_s <= 1.5, second
    assert one_line(second.reason) and "refused" in second.reason, second.reason
    with pytest.raises(ConnectionLost):
        await alice.client.ping()

    await restart(make_server_process, process)
    reconnected = await alice.expect_type(Reconnected, timeout=20)
    assert reconnected.rooms == ("#room",)
    bob = await clients("bob", port)
    await bob.client.join("#room")
    ok = await bob.client.send_room("#room", "welcome back")
    message = await alice.expect(seq_is(ok.seq))
    assert message.text == "welcome back"
    await alice.client.send_room("#room", "thanks")
    assert (await bob.expect_type(RoomMessage)).text == "thanks"
    assert alice.disconnected == [] and alice.of_type(HistoryGapDetected) == []


# ------------------------------------------------------- in-process servers


async def test_the_first_attempt_waits_at_least_retry_after_ms(
        make_server: MakeServer, clients: ClientMaker) -> None:
    """CP-CLOSE-8: after SERVER_SHUTDOWN with retry_after_ms=2000, the first Reconnecting
    announces a delay of at least 2 s."""
    chat = await make_server(shutdown_grace_s=2.0)
    alice = await clients("alice", chat.port, **RECONNECT)
    await chat.shutdown()
    reconnecting = await alice.expect_type(Reconnecting, timeout=10)
    assert reconnecting.attempt == 1
    assert reconnecting.delay_s >= 2.0, reconnecting


@pytest.mark.parametrize("ending", ["quit", "close"])
async def test_no_reconnect_after_quit_or_close(make_server: MakeServer,
                                               clients: ClientMaker, ending: str) -> None:
    """Brief: quit() and close() end the client for good even with reconnect=True:
    events() ends with Disconnected and no Reconnecting."""
    chat = await make_server()
    alice = await clients("alice", chat.port, **RECONNECT)
    await alice.client.join("#room")
    await (alice.client.quit("bye") if ending == "quit" else alice.client.close())
    await alice.wait_ended()
    assert alice.of_type(Reconnecting) == []
    assert isinstance(alice.log[-1], Disconnected)
    bob = await clients("bob", chat.port)
    assert [u.nick for u in await bob.client.list_users()] == ["bob"]


async def test_close_while_waiting_to_reconnect_stops_for_good(
        make_server: MakeServer, clients: ClientMaker) -> None:
    """Brief: close() during the backoff cancels the reconnection; events() ends."""
    chat = await make_server(shutdown_grace_s=1.0)
    alice = await clients("alice", chat.port, **RECONNECT)
    await chat.shutdown()
    await alice.expect_type(Reconnecting, timeout=10)
    await alice.client.close()
    await alice.wait_ended()
    assert alice.of_type(Reconnected) == []
    assert isinstance(alice.log[-1], Disconnected)


# ---------------------------------------------------------------- fake server


def room_message(seq: int, *, request_id: int = 0, history: bool = False,
                 room: str = "#room", sender: str = "bob") -> RoomMessage:
    return RoomMessage(request_id=request_id, room=room, seq=seq, msg_id=1000 + seq,
                       timestamp_ms=1_767_225_600_000 + seq, sender=sender,
                       history=history, text=f"m{seq}")


def join_answer(request: Join, last_seq: int, *, replay: range = range(0),
                after_ok: tuple[Message, ...] = ()) -> list[Message]:
    """ROOM_INFO, the replayed messages, OK, then whatever comes right behind the OK."""
    rid = request.request_id
    return [RoomInfo(request_id=rid, room=request.room, member_count=2, last_seq=last_seq),
            *(room_message(seq, request_id=rid, history=True, room=request.room)
              for seq in replay),
            Ok(request_id=rid), *after_ok]


async def fake_server(async_resources: AsyncResources, *scripts: Any,
                      limits: Limits | None = None) -> FakeServer:
    fake = await FakeServer(*scripts, limits=limits).start()
    async_resources.on_teardown(fake.close, order=5)
    return fake


async def test_a_live_seq_that_skips_is_reported_by_arithmetic(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """CP-MSG-8, CP-MSG-10, brief: after seq 1, a live ROOM_MESSAGE seq 4 means 2-3 were
    missed: HistoryGapDetected(#room, 2, 3) comes out of events() before it; 5 follows
    without another one."""
    fake = await fake_server(async_resources, welcome_and_serve)
    alice = await clients("alice", fake.port)
    await alice.client.join("#room")
    peer = fake.peers[0]
    peer.send(room_message(1))
    peer.send(room_message(4))
    peer.send(room_message(5))
    await alice.expect(seq_is(5))
    gaps = alice.of_type(HistoryGapDetected)
    assert [(g.room, g.first_seq, g.last_seq) for g in gaps] == [("#room", 2, 3)]
    assert index_of(alice, gaps[0]) < index_of(alice, alice.of_type(RoomMessage)[1])
    assert alice.client.rooms["#room"].last_seq == 5


async def test_no_false_gap_for_a_live_message_right_behind_the_join_ok(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """CP-HIST-6, brief: JOIN answered with last_seq 5 and, in the same TCP segment, the
    live seq 6; then seq 7: no HistoryGapDetected, last_seq 7."""

    async def script(peer: FakePeer) -> None:
        await peer.welcome()
        await peer.serve({Join: lambda r: join_answer(r, 5, after_ok=(room_message(6),))})

    fake = await fake_server(async_resources, script)
    alice = await clients("alice", fake.port)
    await alice.client.join("#room")
    fake.peers[0].send(room_message(7))
    await alice.expect(seq_is(7))
    await alice.barrier()
    assert [m.seq for m in alice.of_type(RoomMessage)] == [6, 7]
    assert alice.of_type(HistoryGapDetected) == [], show_all(alice.log)
    assert alice.client.rooms["#room"].last_seq == 7


async def test_no_false_gap_for_a_live_message_right_behind_our_own_ok(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """CP-MSG-1, CP-MSG-10: in #room at seq 5, alice's message gets OK seq 6 and bob's
    seq 7 arrives in the same TCP segment right behind it: no HistoryGapDetected."""

    def send_room(request: SendRoom) -> list[Message]:
        return [Ok(request_id=request.request_id, msg_id=999, seq=6, timestamp_ms=1),
                room_message(7)]

    async def script(peer: FakePeer) -> None:
        await peer.welcome()
        await peer.serve({Join: lambda r: join_answer(r, 5), SendRoom: send_room})

    fake = await fake_server(async_resources, script)
    alice = await clients("alice", fake.port)
    await alice.client.join("#room")
    assert (await alice.client.send_room("#room", "mine")).seq == 6
    await alice.expect(seq_is(7))
    await alice.barrier()
    assert alice.of_type(HistoryGapDetected) == [], show_all(alice.log)
    assert alice.client.rooms["#room"].last_seq == 7


async def test_rejoin_delivers_replay_and_live_messages_in_seq_order(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """CP-HIST-15, CP-HIST-9, CP-MSG-10, brief: after a drop, alice (seen up to seq 3)
    rejoins with resume=1 last_seen_seq=3; the answer replays 4-6 and the live 7 follows
    the OK in the same segment; then live 8. events() gives 4, 5, 6, 7, 8 in that order,
    with no HistoryGapDetected."""
    joins: list[Join] = []

    def first_join(request: Join) -> list[Message]:
        joins.append(request)
        return join_answer(request, 3, replay=range(1, 4))

    def resumed_join(request: Join) -> list[Message]:
        joins.append(request)
        return join_answer(request, 6, replay=range(4, 7), after_ok=(room_message(7),))

    async def first(peer: FakePeer) -> None:
        await peer.welcome()
        await peer.serve({Join: first_join})

    async def second(peer: FakePeer) -> None:
        await peer.welcome()
        await peer.serve({Join: resumed_join})

    fake = await fake_server(async_resources, first, second)
    alice = await clients("alice", fake.port, **RECONNECT)
    assert [m.seq for m in (await alice.client.join("#room")).history] == [1, 2, 3]
    fake.peers[0].abort()
    reconnecting = await alice.expect_type(Reconnecting)
    await alice.expect_type(Reconnected, timeout=10)
    assert [(j.resume, j.last_seen_seq) for j in joins] == [(False, 0), (True, 3)]
    fake.peers[1].send(room_message(8))
    await alice.expect(seq_is(8))
    await alice.barrier()
    after = [m.seq for m in alice.of_type(RoomMessage)
             if index_of(alice, m) > index_of(alice, reconnecting)]
    assert after == [4, 5, 6, 7, 8], show_all(alice.log)
    assert alice.of_type(HistoryGapDetected) == [], show_all(alice.log)
    assert alice.client.rooms["#room"].last_seq == 8


@pytest.mark.slow
async def test_a_bounded_resume_replay_is_completed_with_history(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """CP-HIST-15, CP-HIST-14 (issue 14 A6): the server replays at most history_page_max (4)
    missed messages, the oldest; alice (seen up to 3) rejoins, gets 4-7, sees ROOM_INFO's
    last_seq 13 and asks for 8-11 then 12-13 with HISTORY; the live 14 that came right
    behind the OK waits for them. events() gives 4..14 once each, in order, no gap."""
    histories: list[tuple[int, int]] = []

    def first_join(request: Join) -> list[Message]:
        return join_answer(request, 3, replay=range(1, 4))

    def resumed_join(request: Join) -> list[Message]:
        return join_answer(request, 13, replay=range(4, 8), after_ok=(room_message(14),))

    def history(request: History) -> list[Message]:
        histories.append((request.before_seq, request.limit))
        rid = request.request_id
        window = range(request.before_seq - request.limit, request.before_seq)
        return [*(room_message(seq, request_id=rid, history=True) for seq in window),
                Ok(request_id=rid)]

    async def first(peer: FakePeer) -> None:
        await peer.welcome()
        await peer.serve({Join: first_join})

    async def second(peer: FakePeer) -> None:
        await peer.welcome()
        await peer.serve({Join: resumed_join, History: history})

    fake = await fake_server(async_resources, first, second,
                             limits=Limits(history_page_max=4))
    alice = await clients("alice", fake.port, **RECONNECT)
    await alice.client.join("#room")
    fake.peers[0].abort()
    reconnecting = await alice.expect_type(Reconnecting)
    await alice.expect(seq_is(14), timeout=10)
    await alice.barrier()
    after = [m.seq for m in alice.of_type(RoomMessage)
             if index_of(alice, m) > index_of(alice, reconnecting)]
    assert after == list(range(4, 15)), show_all(alice.log)
    assert histories == [(12, 4), (14, 2)]
    assert alice.of_type(HistoryGapDetected) == [], show_all(alice.log)
    assert alice.client.rooms["#room"].last_seq == 14


async def test_a_drop_during_the_rejoin_forgets_no_room(async_resources: AsyncResources,
                                                        clients: ClientMaker) -> None:
    """CP-HIST-9, brief: in #a and #b; the first reconnection drops during the JOIN of #b;
    the next one rejoins both (Reconnected lists both, client.rooms has both)."""

    def drop_at_b(request: Join) -> list[Message] | None:
        return None if request.room == "#b" else join_answer(request, 0)

    async def flaky(peer: FakePeer) -> None:
        await peer.welcome()
        await peer.serve({Join: drop_at_b})

    fake = await fake_server(async_resources, welcome_and_serve, flaky, welcome_and_serve)
    alice = await clients("alice", fake.port, **RECONNECT)
    await alice.client.join("#a")
    await alice.client.join("#b")
    fake.peers[0].abort()
    reconnected = await alice.expect_type(Reconnected, timeout=15)
    assert len(fake.peers) == 3
    assert sorted(reconnected.rooms) == ["#a", "#b"]
    assert sorted(alice.client.rooms) == ["#a", "#b"]


async def test_a_request_in_flight_fails_and_the_client_comes_back(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """Brief: the connection drops during a JOIN: join() raises ConnectionLost (one line);
    requests while reconnecting raise ConnectionLost at once; then Reconnecting,
    Reconnected, and requests work again."""

    async def drop_on_join(peer: FakePeer) -> None:
        await peer.welcome()
        await peer.serve({Join: lambda request: None})

    fake = await fake_server(async_resources, drop_on_join, welcome_and_serve)
    alice = await clients("alice", fake.port, **RECONNECT)
    with pytest.raises(ConnectionLost) as info:
        async with asyncio.timeout(5):
            await alice.client.join("#room")
    assert one_line(str(info.value))
    started = time.monotonic()
    with pytest.raises(ConnectionLost):
        await alice.client.ping()
    assert time.monotonic() - started < 1
    await alice.expect_type(Reconnecting)
    reconnected = await alice.expect_type(Reconnected, timeout=10)
    assert reconnected.rooms == ()
    assert (await alice.client.join("#room")).info.room == "#room"
    assert alice.disconnected == []


async def test_reconnect_uses_the_current_nick_and_password(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """Brief, CP-ACCT-5: after login(), a reconnection says HELLO with the account's nick
    and password; after register(), with the new password."""
    hellos: list[Hello] = []

    async def script(peer: FakePeer) -> None:
        hellos.append(await peer.welcome())
        await peer.serve()

    fake = await fake_server(async_resources, script)
    guest = await clients("guest1", fake.port, **RECONNECT)
    await guest.client.login("carol", "carol pw")
    fake.peers[0].abort()
    await guest.expect_type(Reconnected, timeout=10)
    bob = await clients("bob", fake.port, **RECONNECT)
    await bob.client.register("bob pw")
    fake.peers[2].abort()
    await bob.expect_type(Reconnected, timeout=10)
    assert [(h.nick, h.password) for h in hellos] == [
        ("guest1", ""), ("carol", "carol pw"), ("bob", ""), ("bob", "bob pw")]


async def test_reconnect_keeps_trying_while_the_nick_is_still_in_use(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """CP-NICK-10, brief: NICK_IN_USE (retriable: the server has not noticed the old
    connection's end yet) does not stop the reconnection; the next attempt succeeds."""

    async def nick_in_use(peer: FakePeer) -> None:
        hello = await peer.receive_type(Hello)
        peer.send(Error(request_id=hello.request_id, code=ErrorCode.NICK_IN_USE, fatal=False,
                        detail="alice is in use"))
        await peer.wait_eof()

    fake = await fake_server(async_resources, welcome_and_serve, nick_in_use,
                             welcome_and_serve)
    alice = await clients("alice", fake.port, **RECONNECT)
    fake.peers[0].abort()
    await alice.expect_type(Reconnected, timeout=15)
    attempts = alice.of_type(Reconnecting)
    assert [r.attempt for r in attempts] == [1, 2], show_all(alice.log)
    assert "NICK_IN_USE" in attempts[1].reason, attempts[1].reason
    assert alice.disconnected == []


async def test_reconnect_gives_up_when_the_password_is_refused(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """Brief: AUTH_FAILED on reconnection (not retriable) ends the client: Disconnected
    with the code, events() ends, no further attempt."""

    async def auth_failed(peer: FakePeer) -> None:
        hello = await peer.receive_type(Hello)
        peer.send(Error(request_id=hello.request_id, code=ErrorCode.AUTH_FAILED, fatal=False,
                        detail="authentication failed"))
        await peer.wait_eof()

    fake = await fake_server(async_resources, welcome_and_serve, auth_failed)
    alice = await clients("alice", fake.port, password="old", **RECONNECT)
    fake.peers[0].abort()
    await alice.wait_ended(timeout=10)
    (disconnected,) = alice.disconnected
    assert disconnected.code == ErrorCode.AUTH_FAILED and one_line(disconnected.reason)
    assert len(alice.of_type(Reconnecting)) == 1 and alice.of_type(Reconnected) == []
    assert len(fake.peers) == 2


async def test_a_fatal_retriable_error_leads_to_a_reconnect(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """Registry, brief: IDLE_TIMEOUT (fatal, retriable) is followed by a reconnection whose
    Reconnecting names it; the ERROR event, if events() shows it, comes before."""

    async def idle(peer: FakePeer) -> None:
        await peer.welcome()
        peer.send(Error(code=ErrorCode.IDLE_TIMEOUT, fatal=True, detail="no data for 90 s"))
        await peer.close()

    fake = await fake_server(async_resources, idle, welcome_and_serve)
    alice = await clients("alice", fake.port, **RECONNECT)
    reconnecting = await alice.expect_type(Reconnecting)
    assert "IDLE_TIMEOUT" in reconnecting.reason, reconnecting.reason
    await alice.expect_type(Reconnected, timeout=10)
    errors = [e for e in alice.log if isinstance(e, Error)]  # the event itself, if shown
    assert all(e.code == ErrorCode.IDLE_TIMEOUT and e.request_id == 0 for e in errors)
    assert all(index_of(alice, e) < index_of(alice, reconnecting) for e in errors)


async def test_a_fatal_non_retriable_error_ends_the_client(
        async_resources: AsyncResources, clients: ClientMaker) -> None:
    """Registry ('Retriable errors'), brief: after a fatal ERROR whose code is not
    retriable (STATE_VIOLATION), sending the same again cannot succeed: no reconnection,
    Disconnected with the code."""

    async def violation(peer: FakePeer) -> None:
        await peer.welcome()
        peer.send(Error(code=ErrorCode.STATE_VIOLATION, fatal=True, detail="nope"))
        await peer.close()

    fake = await fake_server(async_resources, violation, welcome_and_serve)
    alice = await clients("alice", fake.port, **RECONNECT)
    await alice.wait_ended(timeout=5)
    assert [d.code for d in alice.disconnected] == [ErrorCode.STATE_VIOLATION]
    assert alice.of_type(Reconnecting) == []


async def test_reconnect_is_off_by_default(async_resources: AsyncResources,
                                          clients: ClientMaker) -> None:
    """Brief: without reconnect=True a drop ends the client with Disconnected."""
    fake = await fake_server(async_resources, welcome_and_serve)
    alice = await clients("alice", fake.port)
    fake.peers[0].abort()
    await alice.wait_ended()
    assert alice.of_type(Reconnecting) == []
    (disconnected,) = alice.disconnected
    assert one_line(disconnected.reason) and disconnected.code is None
    assert len(fake.peers) == 1
