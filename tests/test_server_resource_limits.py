"""What one client can make the server hold (issue 11, found defects 1, 2 and 3).

Rooms are capped and empty ones reclaimed (CP-ROOM-6, CP-ROOM-19); list answers
are cut at ``max_list_entries`` (CP-ROOM-20, -21); the buckets of one address
are shared by all its connections (CP-RATE-6); answers count against the output
bound (CP-FLOW-1, -2) and memory returns once the hoarders are gone; u64 fields
reach SQLite and come back whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import ClientFactory, MakeServer, MakeServerProcess, RunningServer
from server_harness import HOST, ChatTestClient, of_type, refused

from chatproto import MESSAGE_TYPES, ErrorCode, Limits, Sender, encode
from chatproto.messages import (
    Ban,
    Error,
    Hello,
    History,
    Join,
    Kick,
    LeaveKind,
    ListMembers,
    ListRooms,
    ListUsers,
    Login,
    MemberLeft,
    Notice,
    Ok,
    Oper,
    Part,
    Ping,
    Pong,
    RoomInfo,
    RoomMessage,
    SendRoom,
    SetTopic,
    UserInfo,
)
from reference_server.session import TokenBucket
from reference_server.store import Store

U64_MAX = 2**64 - 1
MANY = {"cmd_rate_burst": 2000, "msg_rate_burst": 2000, "msg_rate_interval_ms": 1}
"""Limits that let one test client make hundreds of requests at once."""


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until ``check()`` holds; each try is a round trip, never a bare sleep."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def _room_names(client: ChatTestClient) -> set[str]:
    return {info.room for info in of_type(await client.ok(ListRooms()), RoomInfo)}


# --------------------------------------------------------------------- rooms


async def test_max_rooms_refuses_a_new_room_with_too_many_rooms(
        make_server: MakeServer, client_factory: ClientFactory) -> None:
    """CP-ROOM-6: past max_rooms a JOIN that would create a room is TOO_MANY_ROOMS (not
    fatal); joining a room that exists still works."""
    server = await make_server(max_rooms=2)
    alice = await client_factory("alice", server=server)
    bob = await client_factory("bob", server=server)
    await alice.ok(Join(room="#one"))
    await alice.ok(Join(room="#two"))
    error = refused(await alice.request(Join(room="#three")), ErrorCode.TOO_MANY_ROOMS)
    assert not error.fatal
    await bob.ok(Join(room="#ONE"))
    assert await _room_names(bob) == {"#one", "#two"}


async def test_empty_rooms_are_reclaimed_and_others_kept(
        make_server: MakeServer, client_factory: ClientFactory, tmp_path: Path) -> None:
    """CP-ROOM-19, CP-ROOM-5: a room left with no member, no topic, no message and no
    ban is deleted (from memory and the store), by PART or by disconnecting, so the
    cap counts only rooms that hold something; rooms with any of those are kept."""
    data_dir = tmp_path / "reclaim"
    server = await make_server(data_dir=data_dir, max_rooms=4, operators={"root": "pw"},
                               limits=MANY)
    alice = await client_factory("alice", server=server)
    bob = await client_factory("bob", server=server)
    for n in range(20):  # one at a time, far past the cap: each is reclaimed on PART
        await alice.ok(Join(room=f"#tmp{n}"))
        await alice.ok(Part(room=f"#tmp{n}"))
    refused(await bob.request(ListMembers(room="#tmp0")), ErrorCode.NO_SUCH_ROOM)

    await alice.ok(Join(room="#topic"))
    await alice.ok(SetTopic(room="#topic", topic="kept"))
    await alice.ok(Join(room="#talk"))
    await alice.ok(SendRoom(room="#talk", text="kept"))
    await alice.ok(Join(room="#banned"))
    await bob.ok(Oper(name="root", password="pw"))
    await bob.ok(Ban(room="#banned", nick="mallory"))
    await alice.ok(Join(room="#gone"))
    for room in ("#topic", "#talk", "#banned"):
        await alice.ok(Part(room=room))
    await alice.close()  # #gone empties by disconnection
    await _eventually(lambda: _has_not(bob, "#gone"))
    assert await _room_names(bob) == {"#topic", "#talk", "#banned"}

    await server.shutdown()
    store = Store(data_dir / "chatproto.sqlite3")
    try:
        assert {record.name for record in store.rooms()} == {"#topic", "#talk", "#banned"}
    finally:
        store.close()


async def test_a_room_emptied_by_kick_is_reclaimed(
        make_server: MakeServer, client_factory: ClientFactory) -> None:
    """CP-ROOM-19: KICK of the last member empties the room like PART does."""
    server = await make_server(operators={"root": "pw"})
    alice = await client_factory("alice", server=server)
    root = await client_factory("root", server=server)
    await root.ok(Oper(name="root", password="pw"))
    await alice.ok(Join(room="#kicked"))
    await root.ok(Kick(room="#kicked", nick="alice"))
    refused(await root.request(ListMembers(room="#kicked")), ErrorCode.NO_SUCH_ROOM)


async def _has_not(client: ChatTestClient, room: str) -> bool:
    return room not in await _room_names(client)


async def test_restart_reclaims_empty_rooms_an_older_server_left(
        make_server: MakeServer, tmp_path: Path) -> None:
    """CP-ROOM-19: rooms stored empty by a server without reclamation go at start-up."""
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    store = Store(data_dir / "chatproto.sqlite3")
    from reference_server.store import RoomRecord
    store.save_room(RoomRecord("#empty", "#empty", "", 0))
    store.save_room(RoomRecord("#kept", "#kept", "a topic", 0))
    store.close()
    server = await make_server(data_dir=data_dir)
    assert set(server.server.service.rooms) == {"#kept"}


# --------------------------------------------------------------------- lists


@pytest.mark.server_config(max_list_entries=100, limits=MANY)
async def test_list_rooms_is_cut_at_max_list_entries_with_a_notice(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ROOM-20, CP-ROOM-21: 103 rooms, a bound of 100: 100 ROOM_INFO then OK, and one
    NOTICE event saying so; the busiest rooms are among those listed."""
    alice = await client_factory("alice")
    bob = await client_factory("bob")
    requests: list[Join | SetTopic | Part] = []
    for n in range(103):
        room = f"#r{n}"
        requests += [Join(room=room), SetTopic(room=room, topic="t"), Part(room=room)]
    for request_id in await alice.send_many(requests):
        assert isinstance((await alice.response(request_id))[-1], Ok)
    await alice.ok(Join(room="#r102"))
    await bob.ok(Join(room="#r102"))
    answer = await bob.ok(ListRooms())
    infos = of_type(answer, RoomInfo)
    assert len(infos) == 100 and isinstance(answer[-1], Ok)
    assert "#r102" in {info.room for info in infos}
    notice = await bob.expect(Notice)
    assert "100 of 103" in notice.text


@pytest.mark.server_config(max_list_entries=100, max_connections_per_address=200)
async def test_list_users_and_members_are_cut_at_max_list_entries(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ROOM-20, CP-ROOM-21 for LIST_USERS and LIST_MEMBERS."""
    clients = await asyncio.gather(*(client_factory(f"u{n}") for n in range(102)))
    await asyncio.gather(*(client.ok(Join(room="#crowd")) for client in clients))
    asker = clients[0]
    for request in (ListUsers(), ListMembers(room="#crowd")):
        answer = await asker.ok(request)
        assert len(of_type(answer, UserInfo)) == 100 and isinstance(answer[-1], Ok)
        notice = await asker.expect(Notice)
        assert "100 of 102" in notice.text


def test_max_list_entries_is_at_least_100() -> None:
    """The spec promises a list bound of at least 100 (CP-ROOM-20)."""
    from pydantic import ValidationError

    from reference_server.config import ServerConfig
    with pytest.raises(ValidationError):
        ServerConfig(max_list_entries=99)


# ----------------------------------------------------------- address buckets


def test_a_request_the_address_refuses_takes_no_token_of_the_connection(
        tmp_path: Path) -> None:
    """CP-RATE-2 with CP-RATE-6: a request refused by the address's bucket takes no token
    from the connection's, and retry_after_ms is the longer wait."""
    from types import SimpleNamespace

    from reference_server.backplane import LocalBackplane
    from reference_server.config import ServerConfig
    from reference_server.service import ChatService

    config = ServerConfig(limits=Limits(cmd_rate_burst=2, cmd_rate_interval_ms=60_000),
                          address_rate_factor=1, data_dir=tmp_path)
    store = Store(config.database_path)
    try:
        service = ChatService(config, store, LocalBackplane())
        first = SimpleNamespace(cmd_bucket=TokenBucket(2, 60_000), address="192.0.2.1")
        second = SimpleNamespace(cmd_bucket=TokenBucket(2, 60_000), address="192.0.2.1")
        assert [service.take_token(first, False) for _ in range(2)] == [0, 0]  # type: ignore[arg-type]
        wait = service.take_token(second, False)  # type: ignore[arg-type]
        assert 59_000 < wait <= 60_000
        assert second.cmd_bucket.tokens == pytest.approx(2, abs=0.01)
    finally:
        store.close()


@pytest.mark.server_config(limits={"cmd_rate_burst": 3, "cmd_rate_interval_ms": 60_000},
                           address_rate_factor=2)
async def test_reconnecting_does_not_refill_the_address_buckets(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-RATE-6: two connections' worth of commands per address (factor 2, burst 3):
    new connections from 127.0.0.1 find the address's bucket empty."""
    outcomes = []
    for nick in ("c1", "c2", "c3"):
        client = await client_factory(nick)
        for _ in range(3):
            final = (await client.request(ListUsers()))[-1]
            outcomes.append(isinstance(final, Ok))
            if isinstance(final, Error):
                assert final.code == ErrorCode.RATE_LIMITED and final.retry_after_ms > 1000
        await client.close()
    assert outcomes == [True] * 6 + [False] * 3


# ------------------------------------------------------------- output bound


async def test_answers_count_against_the_bound_and_memory_comes_back(
        make_server_process: MakeServerProcess, client_factory: ClientFactory,
        tmp_path: Path) -> None:
    """Defect 2, CP-FLOW-1, CP-FLOW-2: ten connections each pipeline 40 HISTORY requests
    (800 kB answers) and never read. Each is dropped with SLOW_CONSUMER instead of having
    33 MB queued (before: RSS 43 -> 416 MB, 388 MB still held after they left); another
    client is answered all along, and the RSS ends near where it began."""
    config = tmp_path / "server.toml"
    config.write_text("[limits]\nmsg_rate_burst = 1000\n"
                      "msg_rate_interval_ms = 1\nhistory_page_max = 200\n")
    process = await make_server_process("--config", str(config)).start()
    alice = await client_factory("alice", server=process)
    await alice.ok(Join(room="#big"))
    ids = await alice.send_many([SendRoom(room="#big", text="y" * 4000) for _ in range(200)])
    for request_id in ids:
        assert isinstance((await alice.response(request_id))[-1], Ok)
    await alice.ok(History(room="#big", limit=200))  # warm: one answer built and sent
    baseline = process.rss_kib()

    hoarders = []
    for n in range(10):
        hoarder = await client_factory(f"hoarder{n}", server=process, rcvbuf=4096)
        await hoarder.ok(Join(room="#big"))
        hoarders.append(hoarder)
    await alice.barrier()
    alice.drain()
    for hoarder in hoarders:
        hoarder.pause_reading()
        await hoarder.send_many([History(room="#big", limit=200) for _ in range(40)])
    left: set[str] = set()
    async with asyncio.timeout(60):
        while len(left) < len(hoarders):  # alice is answered all along
            assert isinstance((await alice.request(Ping(token=b"x")))[-1], Pong)
            left |= {e.nick for e in of_type(alice.drain(), MemberLeft)
                     if e.kind == LeaveKind.DISCONNECT}
    for hoarder in hoarders:
        hoarder.resume_reading()
        errors = of_type(await hoarder.read_until_closed(timeout=20), Error)
        assert [(e.code, e.fatal) for e in errors] == [(ErrorCode.SLOW_CONSUMER, True)]
    after = process.rss_kib()
    assert after - baseline < 40 * 1024, f"RSS {baseline} -> {after} KiB"


async def test_pipelined_requests_wait_in_the_kernel_not_in_the_server(
        make_server_process: MakeServerProcess, client_factory: ClientFactory) -> None:
    """A client pipelining 24 MB of PINGs as fast as loopback takes them: the server
    handles a bounded number per loop turn and reads no more meanwhile, so the rest
    waits in the socket buffers (TCP's flow control) instead of its memory; every PING
    is still answered, in order."""
    process = await make_server_process().start()
    client = await client_factory("piper", server=process)
    await client.ok(Ping(token=b"warm"))
    baseline = process.rss_kib()
    token = b"p" * 255
    frame_size = len(encode(Ping(request_id=1, token=token)))
    batches = 24 * 1024 * 1024 // (frame_size * 1024)
    # Encoded beforehand, so that writing leaves the reader time to keep up.
    chunks = [b"".join(encode(Ping(request_id=2 + batch * 1024 + n, token=token))
                       for n in range(1024)) for batch in range(batches)]
    reader, writer = await asyncio.open_connection(HOST, process.port)
    writer.write(encode(Hello(request_id=1, min_version=1, max_version=1, nick="flood",
                              client_name="tests")))
    length = int.from_bytes(await reader.readexactly(4), "big")
    await reader.readexactly(length)  # WELCOME
    expected = frame_size * 1024 * batches  # every PONG is as long as its PING

    async def read_all() -> None:
        received = 0
        while received < expected:
            data = await reader.read(1 << 20)
            assert data, "the server closed the connection"
            received += len(data)

    reading = asyncio.get_running_loop().create_task(read_all())
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        held = process.rss_kib() - baseline
        async with asyncio.timeout(60):
            await reading
    finally:
        reading.cancel()
        writer.close()
    assert held < 8 * 1024, f"the server held {held} KiB of pipelined requests"


# ---------------------------------------------------------------- u64 edges


async def test_u64_max_fields_survive_sqlite_and_a_restart(
        make_server: MakeServer, client_factory: ClientFactory, tmp_path: Path) -> None:
    """Defect 3: SEND_ROOM with client_msg_id 2^64-1 (pipelined after a PING) is stored
    and acknowledged, a resend gets the same identity, and after a restart the replay
    carries it; HISTORY before_seq and JOIN last_seen_seq of 2^64-1 are answered."""
    data_dir = tmp_path / "u64"
    server = await make_server(data_dir=data_dir)
    alice = await client_factory("alice", server=server)
    await alice.ok(Join(room="#edge"))
    ping, sent = await alice.send_many([Ping(token=b"p"),
                                        SendRoom(room="#edge", client_msg_id=U64_MAX, text="hi")])
    assert isinstance((await alice.response(ping))[-1], Pong)
    ok = (await alice.response(sent))[-1]
    assert isinstance(ok, Ok) and ok.seq == 1
    again = (await alice.ok(SendRoom(room="#edge", client_msg_id=U64_MAX, text="hi")))[-1]
    assert isinstance(again, Ok) and (again.msg_id, again.seq) == (ok.msg_id, ok.seq)
    page = of_type(await alice.ok(History(room="#edge", before_seq=U64_MAX, limit=5)),
                   RoomMessage)
    assert [m.client_msg_id for m in page] == [U64_MAX]
    await server.shutdown()

    server = await make_server(data_dir=data_dir)
    bob = await client_factory("bob", server=server)
    replay = of_type(await bob.ok(Join(room="#edge", resume=True, last_seen_seq=0)),
                     RoomMessage)
    assert [(m.seq, m.client_msg_id, m.msg_id) for m in replay] == [(1, U64_MAX, ok.msg_id)]
    await bob.ok(Part(room="#edge"))
    answer = await bob.ok(Join(room="#edge", resume=True, last_seen_seq=U64_MAX))
    assert not of_type(answer, RoomMessage)


async def test_a_failing_handler_is_answered_internal_error(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ERR-8: a bug in a request handler is answered with a non-fatal INTERNAL_ERROR;
    the answers queued before it still arrive and the connection goes on."""
    alice = await client_factory("alice")

    def broken(session: object, request: object) -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    server.server.service.handlers[ListRooms] = broken
    ping, listing = await alice.send_many([Ping(token=b"p"), ListRooms()])
    assert isinstance((await alice.response(ping))[-1], Pong)
    error = refused(await alice.response(listing), ErrorCode.INTERNAL_ERROR)
    assert not error.fatal
    assert error.request_id == listing
    assert isinstance((await alice.request(Ping(token=b"q")))[-1], Pong)


async def test_a_handler_failing_after_its_await_is_answered_internal_error(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ERR-8 on the asynchronous path (a password check): the INTERNAL_ERROR answers
    the request's own request_id, not 0, and the frames held back behind it are served."""
    alice = await client_factory("alice")

    def broken(session: object, request: object) -> Awaitable[None]:
        async def check() -> None:
            await asyncio.sleep(0)
            raise OverflowError("the worker thread failed")
        return check()

    server.server.service.handlers[Login] = broken
    login, ping = await alice.send_many([Login(nick="alice", password="hunter22"),
                                         Ping(token=b"p")])
    error = refused(await alice.response(login), ErrorCode.INTERNAL_ERROR)
    assert (error.request_id, error.fatal) == (login, False)
    assert isinstance((await alice.response(ping))[-1], Pong)
    assert isinstance((await alice.request(Ping(token=b"q")))[-1], Pong)


async def test_a_request_type_without_a_handler_is_answered_internal_error(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ERR-8: a type missing from the handler table fails like a broken handler."""
    alice = await client_factory("alice")
    del server.server.service.handlers[ListRooms]
    listing = await alice.send(ListRooms())
    error = refused(await alice.response(listing), ErrorCode.INTERNAL_ERROR)
    assert (error.request_id, error.fatal) == (listing, False)
    assert isinstance((await alice.request(Ping(token=b"q")))[-1], Pong)


async def test_the_handler_table_covers_every_message_a_client_may_send(
        server: RunningServer) -> None:
    """Every type the schema lets a client send has a handler, and nothing else has one."""
    client_sent = {cls for cls in MESSAGE_TYPES.values()
                   if cls.SENDER in (Sender.CLIENT, Sender.BOTH)}
    assert set(server.server.service.handlers) == client_sent


def test_the_limits_have_flags_and_documented_defaults() -> None:
    """max_rooms, max_list_entries and address_rate_factor: a flag each, default in --help."""
    from reference_server.config import build_parser, load_config

    config = load_config(["--max-rooms", "5", "--max-list-entries", "200",
                          "--address-rate-factor", "0"])
    assert (config.max_rooms, config.max_list_entries, config.address_rate_factor) == (5, 200, 0)
    text = " ".join(build_parser().format_help().split())
    for flag in ("--max-rooms N", "--max-list-entries N", "--address-rate-factor N"):
        assert flag in text
    assert "(default 10000)" in text and "(default 1000)" in text
