"""Reference server as a process: command line, signals, restart, crash (real sockets).

``python -m reference_server`` runs as a child process (``ServerProcess``); the
fixtures stop every process at teardown, with SIGKILL as a last resort.

Spec pages: lifecycle (Server shutdown), messaging (History, message identity),
users (CP-ACCT-4); the server's own contract: SERVER_API.md (exit status 0 on
SIGTERM/SIGINT, "listening on HOST:PORT" on stderr, data kept in --data-dir).
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from conftest import ClientFactory, MakeServerProcess
from server_harness import (
    ChatTestClient,
    ConnectionLost,
    HarnessError,
    describe_all,
    join_all,
    of_type,
)

from chatproto import ErrorCode, LocalProtocolError
from chatproto.messages import (
    Error,
    History,
    Join,
    ListRooms,
    Notice,
    Ok,
    Oper,
    Register,
    RoomInfo,
    RoomMessage,
    SendRoom,
    SetTopic,
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_sends_server_shutdown_to_everyone_and_exits_0(
        make_server_process: MakeServerProcess, client_factory: ClientFactory,
        signum: int) -> None:
    """CP-CLOSE-7, CP-ERR-1, CP-ERR-3: on SIGTERM (or SIGINT) every open connection —
    in a room, idle, or still before HELLO — gets ERROR SERVER_SHUTDOWN, fatal, request_id
    0, as its last frame, then the close; the process exits with status 0."""
    process = await make_server_process().start()
    alice = await client_factory("alice", server=process)
    bob = await client_factory("bob", server=process)
    loner = await client_factory("loner", server=process)
    early = await client_factory(None, server=process)
    await join_all("#room", alice, bob)
    await loner.barrier()

    returncode = await process.stop(signum=signum)
    for client in (alice, bob, loner, early):
        events = await client.read_until_closed(timeout=10)
        assert events, f"{client!r} got nothing before the close"
        last = events[-1]
        assert isinstance(last, Error), describe_all(events)
        assert (last.code, last.fatal, last.request_id) == (ErrorCode.SERVER_SHUTDOWN, True, 0)
        assert not client.truncated
    assert returncode == 0, process.stderr_text()


async def test_restart_keeps_history_topics_accounts_and_counters(
        make_server_process: MakeServerProcess, client_factory: ClientFactory) -> None:
    """CP-ROOM-5, CP-ACCT-4, CP-HIST-3, CP-MSG-7, CP-MSG-8 across a restart on the same
    --data-dir: the room, its topic and history come back (JOIN replays the messages
    with their original identity), the account still logs in, seq continues where it
    stopped, and msg_ids are never reused."""
    first = make_server_process()
    await first.start()
    alice = await client_factory("alice", server=first)
    await alice.ok(Register(password="pw"))
    await alice.ok(Join(room="#Persist"))
    await alice.ok(SetTopic(room="#Persist", topic="kept"))
    oks = []
    for number in range(1, 6):
        final = (await alice.ok(SendRoom(room="#Persist", client_msg_id=number,
                                         text=f"before restart {number}")))[-1]
        assert isinstance(final, Ok)
        oks.append(final)
    assert await first.stop() == 0
    await alice.wait_closed()

    second = make_server_process(data_dir=first.data_dir)
    await second.start()
    bob = await client_factory("bob", server=second)
    frames = await bob.ok(Join(room="#persist"))
    info = frames[0]
    assert isinstance(info, RoomInfo)
    assert (info.room, info.topic, info.last_seq) == ("#Persist", "kept", 5)
    history = of_type(frames, RoomMessage)
    assert [(m.seq, m.msg_id, m.timestamp_ms, m.sender, m.client_msg_id, m.text, m.history)
            for m in history] == [
        (ok.seq, ok.msg_id, ok.timestamp_ms, "alice", ok.seq, f"before restart {ok.seq}", True)
        for ok in oks]

    alice2 = ChatTestClient(second.port)
    await alice2.connect()
    try:
        welcome = await alice2.hello("ALICE", "pw")
        assert (welcome.nick, welcome.logged_in) == ("alice", True)
        await alice2.ok(Join(room="#persist"))
        resent = (await alice2.ok(SendRoom(room="#persist", client_msg_id=3,
                                           text="before restart 3")))[-1]
        assert isinstance(resent, Ok) and resent.msg_id == oks[2].msg_id  # CP-MSG-11
        new = (await alice2.ok(SendRoom(room="#persist", text="after restart")))[-1]
        assert isinstance(new, Ok)
        assert new.seq == 6
        assert new.msg_id not in {ok.msg_id for ok in oks}
    finally:
        await alice2.close()


KILL_ROUNDS = 3
"""Times the server is killed and restarted on the same --data-dir."""
KILL_SENDERS = 4
"""Clients pipelining SEND_ROOM into one room while the server is killed."""
KILL_AFTER_ACKS = 150
"""Each round, the kill comes once a sender has had this many OKs (all of them go on)."""
KILL_BATCH = 10
KILL_ROOM = "#crash"


async def send_until_killed(client: ChatTestClient, label: str,
                            acked: list[tuple[Ok, str]], enough: asyncio.Event) -> bool:
    """Pipeline batches of SEND_ROOM until the connection dies; keep every OK that came.

    True if requests were still unanswered when it died."""
    batch = 0
    while True:
        texts = [f"{label} {batch}.{n}" for n in range(KILL_BATCH)]
        try:
            ids = await client.send_many([SendRoom(room=KILL_ROOM, text=t) for t in texts])
        except (HarnessError, OSError, LocalProtocolError):  # its Connection saw the end
            return False
        for request_id, text in zip(ids, texts, strict=True):
            try:
                final = (await client.response(request_id, timeout=10))[-1]
            except ConnectionLost:  # killed: this one and the rest are unanswered
                return True
            assert isinstance(final, Ok), final
            acked.append((final, text))
        if len(acked) >= KILL_AFTER_ACKS:
            enough.set()
        batch += 1


async def test_kill_9_loses_no_acknowledged_message(make_server_process: MakeServerProcess,
                                                    client_factory: ClientFactory) -> None:
    """Every message acknowledged with OK survives SIGKILL (the server commits before it
    answers), under load: KILL_SENDERS clients pipeline SEND_ROOM into one room, the server
    is killed while they are at it and restarted on the same --data-dir, KILL_ROUNDS
    times. Afterwards HISTORY pages return every acknowledged message with its identity
    (seq, msg_id, text); seqs are dense from 1 (CP-MSG-7, across restarts) and msg_ids
    never reused (CP-MSG-8). Messages whose OK never came may or may not be there."""
    args = ("--msg-rate-burst", "60000", "--msg-rate-interval-ms", "1",
            "--history-depth", "100000", "--history-page-max", "1000")
    data_dir = None
    acked: list[tuple[Ok, str]] = []
    for round_number in range(KILL_ROUNDS):
        process = make_server_process(*args, data_dir=data_dir)
        await process.start()
        data_dir = process.data_dir
        senders = [await client_factory(f"r{round_number}s{n}", server=process)
                   for n in range(KILL_SENDERS)]
        for sender in senders:
            await sender.ok(Join(room=KILL_ROOM))
        round_acked: list[list[tuple[Ok, str]]] = [[] for _ in senders]
        enough = asyncio.Event()
        sending = [asyncio.create_task(send_until_killed(sender, sender.name, mine, enough))
                   for sender, mine in zip(senders, round_acked, strict=True)]
        await asyncio.wait_for(enough.wait(), timeout=30)
        process.kill()  # SIGKILL, with SEND_ROOMs of every sender in flight
        assert process.returncode == -signal.SIGKILL
        cut = await asyncio.wait_for(asyncio.gather(*sending), timeout=15)
        assert any(cut), "the kill came when no SEND_ROOM was in flight"
        acked += [ack for mine in round_acked for ack in mine]
        for sender in senders:
            await sender.close()

    final = make_server_process(*args, data_dir=data_dir)
    await final.start()
    reader = await client_factory("reader", server=final)
    info = (await reader.ok(Join(room=KILL_ROOM)))[0]
    assert isinstance(info, RoomInfo)
    history: list[RoomMessage] = []
    before = info.last_seq + 1
    while before > 1:
        page = of_type(await reader.ok(History(room=KILL_ROOM, before_seq=before, limit=1000)),
                       RoomMessage)
        assert page, f"no messages before seq {before}"
        history = page + history
        before = page[0].seq
    assert [m.seq for m in history] == list(range(1, info.last_seq + 1))
    assert len({m.msg_id for m in history}) == len(history), "a msg_id was used twice"
    by_seq = {m.seq: (m.msg_id, m.text) for m in history}
    lost = [(ok.seq, text) for ok, text in acked if by_seq.get(ok.seq) != (ok.msg_id, text)]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged messages lost: {lost[:5]}"
    print(f"\nkill -9: {KILL_ROUNDS} rounds, {len(acked)} acknowledged messages, "
          f"{len(history)} in history, 0 lost")


async def test_command_line_flags_reach_the_protocol(make_server_process: MakeServerProcess,
                                                     client_factory: ClientFactory) -> None:
    """The limit flags, --motd and --oper of the command line (SERVER_API.md) show up in
    WELCOME (CP-HS-2), as NOTICE, and in OPER (CP-OPER-1)."""
    process = await make_server_process(
        "--max-message-length", "1000", "--history-on-join", "7", "--keepalive-interval-s",
        "40", "--idle-timeout-s", "100", "--max-rooms-per-user", "3", "--motd",
        "hello from the command line", "--oper", "root:op-pw").start()
    client = await client_factory("alice", server=process)
    assert client.welcome is not None
    limits = client.welcome.limits
    assert (limits.max_message_length, limits.history_on_join, limits.keepalive_interval_s,
            limits.idle_timeout_s, limits.max_rooms_per_user) == (1000, 7, 40, 100, 3)
    notices = of_type(await client.barrier(), Notice)
    assert [n.text for n in notices] == ["hello from the command line"]
    await client.ok(Oper(name="root", password="op-pw"))
    await client.ok(ListRooms())

