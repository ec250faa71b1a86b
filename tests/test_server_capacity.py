"""Reference server capacity: many concurrent clients in one room (real sockets).

The server runs as its own process (``ServerProcess``), so that its resident
memory can be read from /proc/PID/status. The figures are printed (``pytest -s``
shows them); the test asserts only behaviour: every client is served and every
member receives every message.

Each connection is one file descriptor in this process and one in the server's.
The soft RLIMIT_NOFILE of this process is raised (up to the hard limit) before the
server is started, and the server inherits it.
"""

from __future__ import annotations

import asyncio
import resource
import time

from conftest import ClientFactory, MakeServerProcess
from server_harness import ChatTestClient, ServerProcess

from chatproto.messages import Join, MemberJoined, Ok, RoomInfo, RoomMessage, SendRoom

CLIENTS = 1000
"""Concurrent connections, all in one room."""

MESSAGES = 3
"""Room messages sent once everyone is in; every other member must receive each."""

CONCURRENCY = 100
"""Connections opened (and HELLOs, JOINs sent) at the same time."""

ROOM = "#everyone"


def raise_nofile_limit(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to at least ``needed`` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def in_batches(count: int, make: object) -> list[ChatTestClient]:
    assert callable(make)
    clients: list[ChatTestClient] = []
    for start in range(0, count, CONCURRENCY):
        batch = range(start, min(count, start + CONCURRENCY))
        clients += await asyncio.gather(*(make(index) for index in batch))
    return clients


async def test_many_clients_in_one_room(make_server_process: MakeServerProcess,
                                        client_factory: ClientFactory) -> None:
    """CLIENTS connections HELLO and JOIN one room; MESSAGES room messages then reach every
    other member (CP-MSG-1, CP-MSG-10, CP-FLOW-4 under load); the server's RSS is
    recorded at that count."""
    soft, _ = raise_nofile_limit(2 * CLIENTS + 200)
    assert soft >= CLIENTS + 100, f"RLIMIT_NOFILE {soft} is too low for {CLIENTS} clients"
    # All from 127.0.0.1: above the default 64 connections per address.
    process: ServerProcess = make_server_process(
        "--cmd-rate-burst", "100", "--max-connections-per-address", str(2 * CLIENTS))
    await process.start()
    rss_idle = process.rss_kib()
    started = time.monotonic()

    async def connect(index: int) -> ChatTestClient:
        # MEMBER_JOINED grows as n^2 over the room; decode it, but do not keep it.
        return await client_factory(f"user{index}", server=process, drop=(MemberJoined,))

    clients = await in_batches(CLIENTS, connect)
    connected = time.monotonic()
    rss_connected = process.rss_kib()

    async def join(index: int) -> ChatTestClient:
        client = clients[index]
        frames = await client.ok(Join(room=ROOM), timeout=60)
        info = frames[0]
        assert isinstance(info, RoomInfo) and info.room == ROOM
        return client

    await in_batches(CLIENTS, join)
    joined = time.monotonic()
    rss_joined = process.rss_kib()

    senders = clients[:MESSAGES]
    oks = []
    for number, sender in enumerate(senders):
        final = (await sender.ok(SendRoom(room=ROOM, text=f"hello everyone #{number}"),
                                 timeout=60))[-1]
        assert isinstance(final, Ok)
        oks.append(final)
    expected_seqs = [ok.seq for ok in oks]

    async def receive(client: ChatTestClient) -> int:
        wanted = [ok.seq for ok, sender in zip(oks, senders, strict=True) if sender is not client]
        got = [await client.expect(RoomMessage, timeout=60) for _ in wanted]
        assert [m.seq for m in got] == wanted, f"{client!r} got {[m.seq for m in got]}"
        return len(got)

    counts = await asyncio.gather(*(receive(client) for client in clients))
    delivered = time.monotonic()
    rss_after = process.rss_kib()
    assert sum(counts) == CLIENTS * MESSAGES - MESSAGES
    assert expected_seqs == list(range(1, MESSAGES + 1))
    assert all(not client.closed for client in clients)
    assert process.returncode is None

    print(f"\ncapacity: {CLIENTS} clients in {ROOM}; server pid {process.pid}")
    print(f"  server RSS: idle {rss_idle / 1024:.1f} MiB, {CLIENTS} connected "
          f"{rss_connected / 1024:.1f} MiB, all joined {rss_joined / 1024:.1f} MiB, "
          f"after {MESSAGES} messages {rss_after / 1024:.1f} MiB "
          f"(~{(rss_after - rss_idle) / CLIENTS:.1f} KiB per client)")
    print(f"  connect+HELLO {connected - started:.2f} s, JOIN {joined - connected:.2f} s "
          f"({CLIENTS * (CLIENTS - 1) // 2} MEMBER_JOINED events), "
          f"{MESSAGES} messages to all {delivered - joined:.2f} s; RLIMIT_NOFILE soft {soft}")
