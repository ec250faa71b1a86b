"""Reference server as a process: command line, signals, restart, crash (real sockets).

``python -m reference_server`` runs as a child process (``ServerProcess``); the
fixtures stop every process at teardown, with SIGKILL as a last resort.

Spec pages: lifecycle (Server shutdown), messaging (History, message identity),
users (CP-ACCT-4); the server's own contract: SERVER_API.md (exit status 0 on
SIGTERM/SIGINT, "listening on HOST:PORT" on stderr, data kept in --data-dir).
"""

from __future__ import annotations

import signal

import pytest
from conftest import ClientFactory, MakeServerProcess
from server_harness import ChatTestClient, describe_all, join_all, of_type

from chatproto import ErrorCode
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


async def test_kill_9_loses_no_acknowledged_message(make_server_process: MakeServerProcess,
                                                    client_factory: ClientFactory) -> None:
    """Every message acknowledged with OK survives SIGKILL right after that OK (the server
    commits before it answers): after a restart on the same --data-dir, HISTORY returns
    all of them with their identity."""
    first = make_server_process("--msg-rate-burst", "1000", "--msg-rate-interval-ms", "1")
    await first.start()
    alice = await client_factory("alice", server=first)
    await alice.ok(Join(room="#crash"))
    ids = await alice.send_many([SendRoom(room="#crash", client_msg_id=n + 1, text=f"n{n}")
                                 for n in range(200)])
    oks = []
    for request_id in ids:
        final = (await alice.response(request_id))[-1]
        assert isinstance(final, Ok)
        oks.append(final)
    first.kill()  # SIGKILL, right after the last OK arrived
    assert first.returncode == -signal.SIGKILL

    second = make_server_process("--history-page-max", "1000", data_dir=first.data_dir)
    await second.start()
    bob = await client_factory("bob", server=second)
    await bob.ok(Join(room="#crash"))
    frames = await bob.ok(History(room="#crash", limit=1000))
    history = of_type(frames, RoomMessage)
    assert [(m.seq, m.msg_id, m.text) for m in history] == [
        (ok.seq, ok.msg_id, f"n{ok.seq - 1}") for ok in oks]


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

