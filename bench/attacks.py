"""Attack the reference server as a hostile user would, and say what held.

Run: ``python bench/attacks.py`` (every attack, about a minute), ``--only NAME``
(repeatable) for some, ``--list`` for their names, ``--json FILE`` to keep the
figures. Exit status 1 when any attack is not held.

Each attack is one of the ten found in issue 11 ("Found when the server was
attacked as a hostile user would"), replayed as the issue describes it, bounded
in count and time, with traffic to 127.0.0.1 only (other 127/8 addresses stand
for other client hosts: Linux routes all of them to lo). Each starts its own
``python -m reference_server`` on 127.0.0.1 port 0 with a temporary data dir and
the defaults, unless it needs a flag (the table says which, after its name), so
that the per-address buckets one attack empties do not blunt the next.

The table prints, per attack, the figure measured now, the issue's figure from
before the fixes, and the verdict with its criterion. A server that logs a
traceback, or does not exit 0 on SIGTERM, breaks the attack it was under.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat_connection import HOST, ChatConnection, Lost
from server_process import ServerDidNotStart, ServerProcess

from chatproto import (
    MESSAGE_TYPES,
    Connection,
    Event,
    FrameDecoder,
    Message,
    Sender,
    State,
    encode,
    error_name,
)
from chatproto.messages import (
    Ban,
    Bye,
    Error,
    Hello,
    History,
    Join,
    ListRooms,
    ListUsers,
    Login,
    Mute,
    Nick,
    Oper,
    Ping,
    Quit,
    Register,
    RoomMessage,
    SendPrivate,
    SendRoom,
    Welcome,
)

U64_MAX = (1 << 64) - 1
ATTACK_TIMEOUT_S = 90.0
"""Longest any one attack may take before it counts as not held."""


def outcome(frames: list[Message]) -> str:
    """The final answer's name: OK, or the ERROR's code."""
    final = frames[-1]
    return error_name(final.code) if isinstance(final, Error) else final.NAME


async def open_peer(port: int, source: str = HOST, *,
                    receive_buffer: int = 0) -> ChatConnection:
    """A connection from loopback address ``source``, not yet welcomed."""
    return await ChatConnection(client_name="attacks/1").open(
        port, source=source, receive_buffer=receive_buffer)


class Lab:
    """What one attack may use: its own server, connections, a scratch directory."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.server: ServerProcess | None = None
        self.peers: list[ChatConnection] = []

    async def start(self, *args: str, nofile: int | None = None) -> ServerProcess:
        data_dir = self.scratch / "data"
        data_dir.mkdir(exist_ok=True)
        self.server = ServerProcess(data_dir, args, nofile=nofile)
        try:
            return await self.server.started()
        except ServerDidNotStart as exc:
            raise Lost(str(exc)) from None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    async def peer(self, source: str = HOST, *, receive_buffer: int = 0) -> ChatConnection:
        peer = await open_peer(self.port, source, receive_buffer=receive_buffer)
        self.peers.append(peer)
        return peer

    async def user(self, nick: str, source: str = HOST, password: str = "") -> ChatConnection:
        return await (await self.peer(source)).welcomed(nick, password)

    async def close_peers(self) -> None:
        peers, self.peers = self.peers, []
        await asyncio.gather(*(p.close(reset=True) for p in peers))


def address(host_index: int) -> str:
    """A loopback address standing for client host number ``host_index`` (0..65535)."""
    return f"127.0.{1 + host_index // 250}.{1 + host_index % 250}"


async def ping_times(peer: ChatConnection, stop: asyncio.Event,
                     every_s: float = 0.05) -> list[float]:
    """Ping until ``stop``; the round trips, in seconds."""
    times = []
    while not stop.is_set():
        started = time.monotonic()
        await peer.request(Ping(token=b"bystander"), timeout=60)
        times.append(time.monotonic() - started)
        await asyncio.sleep(every_s)
    return times


# ------------------------------------------------------------------ attacks


@dataclass
class Finding:
    measured: str
    held: bool
    criterion: str
    figures: dict[str, Any] = field(default_factory=dict)


async def room_flood(lab: Lab) -> Finding:
    """One address creates rooms in a loop: 32 pipelined JOINs of new rooms per
    connection, connections kept until the per-address cap refuses one, then the
    oldest dropped (its rooms emptied) and a new one opened."""
    await lab.start()
    window_s, per_address_burst, per_address_rate = 4.0, 40 * 64, 64 / 0.25
    answers: Counter[str] = Counter()
    held: list[tuple[ChatConnection, int]] = []  # connection, rooms it created
    most_held = serial = created_then = 0
    limited_at = 0.0  # when the address bucket first said RATE_LIMITED
    started = time.monotonic()
    while time.monotonic() - started < window_s:
        try:
            peer = await (await open_peer(lab.port)).welcomed(f"flood{serial}")
        except Lost:
            answers["connections refused"] += 1
            if not held:
                break
            oldest, _ = held.pop(0)
            await oldest.close(reset=True)
            continue
        ids = [peer.send(Join(room=f"#f{serial}-{k}")) for k in range(32)]
        serial += 1
        results = [outcome(await peer.answer(i)) for i in ids]
        if "RATE_LIMITED" in results and not limited_at:
            limited_at, created_then = time.monotonic(), answers["OK"]
        answers.update(results)
        held.append((peer, results.count("OK")))
        most_held = max(most_held, sum(n for _, n in held))
    elapsed = time.monotonic() - started
    await asyncio.gather(*(p.close(reset=True) for p, _ in held))
    created = answers["OK"]
    # 5% and one connection's JOINs of slack: the server's clock starts a little earlier.
    ceiling = per_address_burst + per_address_rate * elapsed * 1.05 + 32
    sustained = (created - created_then) / (time.monotonic() - limited_at) if limited_at else 0
    refused = {k: v for k, v in answers.items() if k != "OK"}
    return Finding(
        f"{created} rooms in {elapsed:.1f} s ({created / elapsed:.0f}/s; {sustained:.0f}/s "
        f"once the address bucket was empty) by one address reconnecting; "
        f"{sum(refused.values())} refused ({_counts(refused)}); at most {most_held} held at once",
        created <= ceiling and most_held <= 64 * 32,
        f"created <= the address's command bucket (2560 + 256/s x t, = {ceiling:.0f} with 5% "
        "slack) and held <= 64 connections x 32 rooms",
        {"created": created, "elapsed_s": round(elapsed, 2), "refused": refused,
         "sustained_per_s": round(sustained, 1), "most_held": most_held})


async def list_freeze(lab: Lab, users: int = 5000, rooms_each: int = 2) -> Finding:
    """Many users in many rooms; 4 attacker connections each pipeline 20 LIST_ROOMS and
    20 LIST_USERS at a time for 3 s, reading the answers as fast as they come, while a
    bystander pings."""
    await lab.start()
    hosts = (users + 49) // 50  # 50 connections per address, under the cap of 64

    async def member(k: int) -> None:
        peer = await lab.user(f"u{k}", address(k % hosts))
        ids = [peer.send(Join(room=f"#r{k}-{j}")) for j in range(rooms_each)]
        for i in ids:
            await peer.answer(i, timeout=60)

    setup = time.monotonic()
    for batch in range(0, users, 200):
        await asyncio.gather(*(member(k) for k in range(batch, min(users, batch + 200))))
    setup_s = time.monotonic() - setup
    bystander = await lab.user("bystander", address(hosts + 1))
    one_list: dict[str, float] = {}
    for request in (ListUsers(), ListRooms()):
        started = time.monotonic()
        await bystander.request(request)
        one_list[request.NAME] = (time.monotonic() - started) * 1000
    stop = asyncio.Event()
    frames: Counter[str] = Counter()
    pinger = asyncio.create_task(ping_times(bystander, stop))
    attacks = [asyncio.create_task(raw_lister(lab.port, address(hosts + 2), f"lister{k}",
                                              stop, frames)) for k in range(4)]
    await asyncio.sleep(3.0)
    stop.set()
    await asyncio.gather(*attacks)
    pings = await pinger
    slowest, median = max(pings), statistics.median(pings)
    return Finding(
        f"{users} users in {users * rooms_each} rooms (set up in {setup_s:.0f} s); one "
        f"LIST_USERS {one_list['LIST_USERS']:.0f} ms, one LIST_ROOMS "
        f"{one_list['LIST_ROOMS']:.0f} ms (bystander, decoded); 4 connections pipelining "
        f"lists for 3 s got {frames['OK']} OK, {frames['ERROR']} ERROR, {frames['entries']} "
        f"entries, {frames['NOTICE']} NOTICE; meanwhile the bystander's {len(pings)} PINGs: "
        f"slowest PONG {slowest * 1000:.0f} ms, median {median * 1000:.0f} ms",
        slowest < 1.0,
        "the bystander's slowest answer < 1 s",
        {"users": users, "rooms": users * rooms_each, "one_list_ms": one_list,
         "slowest_bystander_ms": round(slowest * 1000, 1),
         "median_bystander_ms": round(median * 1000, 1), **frames})


_TYPE_NAMES = {code: cls.NAME for code, cls in MESSAGE_TYPES.items()}


async def raw_lister(port: int, source: str, nick: str, stop: asyncio.Event,
                     frames: Counter[str]) -> None:
    """Pipeline LIST_USERS and LIST_ROOMS, 40 at a time, until ``stop``; count frames.

    It frames the answers (``FrameDecoder``) without decoding them: an attacker need
    not pay for what it asks, and the bystander's figure must not include our own
    client's work.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    decoder = FrameDecoder()
    try:
        writer.write(encode(Hello(request_id=1, min_version=1, max_version=1, nick=nick,
                                  client_name="attacks/1")))
        next_id, waiting = 2, 1
        while waiting or not stop.is_set():
            if not waiting:
                batch = [(ListRooms if n % 2 else ListUsers)(request_id=next_id + n)
                         for n in range(40)]
                writer.write(b"".join(encode(m) for m in batch))
                next_id, waiting = next_id + 40, 40
            data = await asyncio.wait_for(reader.read(1 << 16), 60)
            if not data:
                raise Lost(f"{nick}: the server closed the connection")
            decoder.feed(data)
            while (raw := decoder.next_frame()) is not None:
                name = _TYPE_NAMES.get(raw.type_code, "?")
                if name in ("ROOM_INFO", "USER_INFO"):
                    frames["entries"] += 1
                    continue
                frames[name] += 1
                if name in ("OK", "ERROR", "WELCOME") and raw.request_id:
                    waiting = max(0, waiting - 1) if name != "WELCOME" else 0
    finally:
        writer.transport.abort()


async def history_flood(lab: Lab) -> Finding:
    """A room of 200 messages of 4,000 bytes; 10 connections that never read pipeline 40
    HISTORY (limit 200) each; RSS before, at its peak over 4 s, and after they leave."""
    server = await lab.start()
    fillers = [await lab.user(f"filler{k}", address(k)) for k in range(10)]
    for peer in fillers:
        await peer.request(Join(room="#big"))
    for peer in fillers:
        ids = [peer.send(SendRoom(room="#big", client_msg_id=n + 1, text="x" * 4000))
               for n in range(20)]
        for i in ids:
            await peer.answer(i)
    await lab.close_peers()
    attackers = []
    for k in range(10):
        peer = await (await lab.peer(address(20), receive_buffer=4096)).welcomed(f"reader{k}")
        await peer.request(Join(room="#big"))
        attackers.append(peer)
    before = server.rss_kib() / 1024
    for peer in attackers:
        peer.pause_reading()
        for _ in range(40):
            peer.send(History(room="#big", before_seq=0, limit=200))
    peak = before
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        peak = max(peak, server.rss_kib() / 1024)
        await asyncio.sleep(0.05)
    dropped = sum(p.closed.is_set() for p in attackers)
    await lab.close_peers()
    probe = await lab.user("probe", address(30))
    await probe.request(Ping(token=b"after"))  # the server has seen them go
    await asyncio.sleep(1.0)
    after = server.rss_kib() / 1024
    grown, kept = peak - before, after - before
    return Finding(
        f"RSS {before:.0f} -> {peak:.0f} -> {after:.0f} MiB (before / peak / after); "
        f"{dropped} of 10 readers dropped as slow consumers",
        grown <= 64 and kept <= 16,
        "peak growth <= 64 MiB (10 x max_output_buffer 1 MiB, with room) and <= 16 MiB "
        "kept after",
        {"rss_before_mib": round(before, 1), "rss_peak_mib": round(peak, 1),
         "rss_after_mib": round(after, 1), "dropped": dropped})


async def u64_edge(lab: Lab) -> Finding:
    """Pipelined: SEND_ROOM (client_msg_id 1), then every u64 field that reaches SQLite at
    2^64-1 (SEND_ROOM and SEND_PRIVATE client_msg_id, HISTORY before_seq, JOIN resume
    last_seen_seq), then PING."""
    await lab.start()
    peer = await lab.user("edge")
    await peer.request(Join(room="#edge"))
    requests: list[Message] = [
        SendRoom(room="#edge", client_msg_id=1, text="first"),
        SendRoom(room="#edge", client_msg_id=U64_MAX, text="u64 max"),
        SendPrivate(nick="edge", client_msg_id=U64_MAX, text="to myself"),
        History(room="#edge", before_seq=U64_MAX, limit=10),
        Join(room="#edge2", resume=True, last_seen_seq=U64_MAX),
        Ping(token=b"after"),
    ]
    ids = [peer.send(r) for r in requests]
    answers: list[str] = []
    for request, i in zip(requests, ids, strict=True):
        try:
            answers.append(f"{request.NAME} {outcome(await peer.answer(i))}")
        except Lost:
            answers.append(f"{request.NAME} (none)")
    echoed = [m.client_msg_id for m in peer.events if isinstance(m, RoomMessage)]
    alive = not peer.closed.is_set()
    return Finding(
        f"answers: {', '.join(answers)}; connection {'open' if alive else 'dropped'}",
        alive and all(not a.endswith("(none)") and "INTERNAL" not in a for a in answers)
        and answers[1] == "SEND_ROOM OK",
        "every pipelined request answered, SEND_ROOM with 2^64-1 is OK, the connection stays",
        {"answers": answers, "echoed_client_msg_ids": echoed})


async def silent_connections(lab: Lab) -> Finding:
    """64 connections from one address send nothing; a 65th opens and says HELLO."""
    await lab.start()
    silent = [await lab.peer() for _ in range(64)]
    extra = await lab.peer()
    answer = "(none)"
    with contextlib.suppress(Lost):
        answer = outcome([await extra.hello("one_more", timeout=5)])
    if answer == "(none)" and extra.events:
        answer = outcome(extra.events[-1:])
    await asyncio.gather(*(p.wait_closed(30) for p in silent))
    held_s = max((p.closed_at or time.monotonic()) - p.opened_at for p in silent)
    why = Counter(outcome(p.events[-1:]) if p.events else "closed, no frame" for p in silent)
    return Finding(
        f"silent connections held {held_s:.1f} s at most, closed with {_counts(why)}; "
        f"the 65th from the address got {answer}",
        held_s <= 10 + 2 and answer == "TOO_MANY_CONNECTIONS",
        "held <= hello_timeout_s (10) + 2 s; the 65th refused with TOO_MANY_CONNECTIONS",
        {"held_s": round(held_s, 2), "closed_with": dict(why), "extra_answer": answer})


async def descriptor_limit(lab: Lab) -> Finding:
    """The server runs with RLIMIT_NOFILE 256; 400 connections from 8 addresses each say
    HELLO; then all leave and one more comes."""
    server = await lab.start(nofile=256)
    got: Counter[str] = Counter()

    async def one(k: int) -> None:
        try:
            peer = await lab.peer(address(k % 8))
        except Lost:
            got["connect failed"] += 1
            return
        try:
            answer = await peer.hello(f"fd{k}", timeout=10)
            got["WELCOME" if isinstance(answer, Welcome) else outcome([answer])] += 1
        except Lost as exc:
            refusal = [e for e in peer.events if isinstance(e, Error)]
            if refusal:
                got[error_name(refusal[0].code)] += 1
            else:
                got["hung" if "no answer" in str(exc) else
                    "reset, no frame" if peer.reset else "closed, no frame"] += 1

    started = time.monotonic()
    await asyncio.gather(*(one(k) for k in range(400)))
    took = time.monotonic() - started
    await lab.close_peers()
    recovered = "no"
    with contextlib.suppress(Lost):
        answer = await (await lab.peer()).hello("after", timeout=10)
        recovered = "WELCOME" if isinstance(answer, Welcome) else outcome([answer])
    return Finding(
        f"400 HELLOs in {took:.1f} s: {_counts(got)}; log {server.log_bytes} bytes; after "
        f"they left a new one got {recovered}",
        got["hung"] == 0 and got["TOO_MANY_CONNECTIONS"] > 0 and recovered == "WELCOME"
        and server.log_bytes < 100_000,
        "none hung; a refusal is TOO_MANY_CONNECTIONS, or a close without a frame past the "
        "refusal room (why CP-SEC-12 is a SHOULD); log < 100 kB; a new connection is "
        "welcomed afterwards",
        {"answers": dict(got), "log_bytes": server.log_bytes, "recovered": recovered},
    )


async def password_guessing(lab: Lab) -> Finding:
    """One socket sends HELLO for a registered nick with a new wrong password, for 3 s."""
    await lab.start()
    owner = await lab.user("victim")
    await owner.request(Register(password="correct horse battery staple"))
    await owner.request(Quit())
    guesser = await lab.peer(address(1))
    answers: Counter[str] = Counter()
    started = time.monotonic()
    while time.monotonic() - started < 3.0 and not guesser.closed.is_set():
        try:
            answers[outcome([await guesser.hello("victim", f"guess{sum(answers.values())}")])] += 1
        except Lost:
            break
    elapsed = time.monotonic() - started
    checked = answers["AUTH_FAILED"]
    ceiling = 10 + elapsed / 30 + 1
    return Finding(
        f"{checked} guesses checked in {elapsed:.1f} s ({checked / elapsed:.1f}/s), "
        f"{answers['RATE_LIMITED']} refused with RATE_LIMITED",
        checked <= ceiling,
        f"checked <= auth_failure_burst_per_nick 10 + t / 30 s + 1 (= {ceiling:.0f})",
        {"answers": dict(answers), "elapsed_s": round(elapsed, 2)})


async def login_timing(lab: Lab, rounds: int = 7) -> Finding:
    """LOGIN with a wrong password, for an account that exists and for nicks that do
    not: the answers' wording, and their median time over ``rounds`` each."""
    await lab.start()
    owner = await lab.user("holder")
    await owner.request(Register(password="correct horse battery staple"))
    await owner.request(Quit())
    guest = await lab.user("guest", address(1))
    times: dict[str, list[float]] = {"existing": [], "missing": []}
    details: set[str] = set()
    for n in range(rounds):
        for kind, nick in (("existing", "holder"), ("missing", f"nobody{n}")):
            started = time.monotonic()
            frames = await guest.request(Login(nick=nick, password=f"wrong{n}"))
            times[kind].append(time.monotonic() - started)
            final = frames[-1]
            details.add(f"{outcome(frames)} {final.detail!r}" if isinstance(final, Error)
                        else outcome(frames))
    existing, missing = (statistics.median(times[k]) * 1000 for k in ("existing", "missing"))
    ratio = min(existing, missing) / max(existing, missing)
    return Finding(
        f"AUTH_FAILED median {existing:.1f} ms with an account, {missing:.1f} ms without "
        f"(median of {rounds}); answers: {' | '.join(sorted(details))}",
        len(details) == 1 and ratio >= 0.5,
        "one wording for both, and the medians within a factor of 2",
        {"existing_ms": round(existing, 2), "missing_ms": round(missing, 2),
         "answers": sorted(details)})


def feed(conn: Connection, data: bytes) -> list[Event]:
    """Give ``conn`` the bytes ``data``; every event they hold."""
    conn.receive_data(data)
    return list(conn.events())


async def closed_connection(lab: Lab) -> Finding:
    """Sans-IO, no server: a client and a server ``Connection`` are taken to CLOSED (QUIT,
    BYE) and then fed 1,024 chunks of 64 KiB each; what they hold afterwards."""
    client, server = Connection(Sender.CLIENT), Connection(Sender.SERVER)
    assert server.limits is not None
    feed(server, client.send(Hello(
        request_id=1, min_version=1, max_version=1, nick="a", client_name="attacks/1")))
    feed(client, server.send(Welcome(
        request_id=1, version=1, server_name="attacks", nick="a", logged_in=False,
        casemapping="ascii", **server.limits.model_dump())))
    feed(server, client.send(Quit(request_id=2)))
    feed(client, server.send(Bye(request_id=2)))
    chunk = b"\x00\x00\x00\x10" + bytes(65532)  # frames' worth of bytes, never decoded
    held: dict[str, float] = {}
    for name, conn in (("client", client), ("server", server)):
        assert conn.state is State.CLOSED, conn.state
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(1024):
            feed(conn, chunk)
        held[name] = (tracemalloc.get_traced_memory()[0] - base) / 1024
        tracemalloc.stop()
    return Finding(
        f"after 64 MiB fed once CLOSED: client holds {held['client']:.1f} KiB, server "
        f"{held['server']:.1f} KiB more than before",
        max(held.values()) < 1024,
        "each holds < 1 MiB more (a chunk is 64 KiB)",
        {"client_kib": round(held["client"], 1), "server_kib": round(held["server"], 1)})


async def account_creation(lab: Lab) -> Finding:
    """4 connections in parallel, each in a loop: connect with a new nick, REGISTER, QUIT,
    for 3 s."""
    await lab.start()
    answers: Counter[str] = Counter()
    stop_at = time.monotonic() + 3.0
    serial = iter(range(1_000_000))

    async def worker() -> None:
        while time.monotonic() < stop_at:
            peer = await lab.user(f"acct{next(serial)}")
            answers[outcome(await peer.request(Register(password="pw-0123456789")))] += 1
            await peer.request(Quit())
            await peer.close(reset=True)
            lab.peers.remove(peer)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(4)))
    elapsed = time.monotonic() - started
    created = answers["OK"]
    ceiling = 30 + elapsed / 60 + 1
    return Finding(
        f"{created} accounts in {elapsed:.1f} s ({created / elapsed:.1f}/s) from 4 "
        f"connections of one address; {answers['RATE_LIMITED']} refused with RATE_LIMITED",
        created <= ceiling,
        f"created <= account_creation_burst_per_address 30 + t / 60 s + 1 (= {ceiling:.0f})",
        {"answers": dict(answers), "elapsed_s": round(elapsed, 2)})


async def moderation_after_nick(lab: Lab) -> Finding:
    """A muted member does NICK and speaks; a banned registered user does NICK and JOIN."""
    oper_file = lab.scratch / "operators"
    oper_file.write_text("root:op-secret-Kd83\n", encoding="utf-8")
    await lab.start("--oper-file", str(oper_file))
    op, alice = await lab.user("op"), await lab.user("alice")
    mallory, banned = await lab.user("mallory"), await lab.user("banned")
    await op.request(Oper(name="root", password="op-secret-Kd83"))
    await banned.request(Register(password="banned-password"))
    for peer in (op, alice, mallory, banned):
        await peer.request(Join(room="#room"))
    await op.request(Mute(room="#room", nick="mallory", muted=True))
    await op.request(Ban(room="#room", nick="banned"))
    await mallory.request(Nick(nick="innocent"))
    spoke = outcome(await mallory.request(SendRoom(room="#room", text="still here")))
    await banned.request(Nick(nick="reformed"))
    rejoined = outcome(await banned.request(Join(room="#room")))
    await alice.request(Ping(token=b"barrier"))  # every event before it has arrived
    heard = [m.text for m in alice.events if isinstance(m, RoomMessage)]
    return Finding(
        f"muted member after NICK: SEND_ROOM {spoke}, {len(heard)} message(s) reached the "
        f"room; banned registered user after NICK: JOIN {rejoined}",
        spoke == "MUTED" and not heard and rejoined == "BANNED_FROM_ROOM",
        "SEND_ROOM is MUTED and reaches no one; JOIN is BANNED_FROM_ROOM",
        {"send_room": spoke, "heard": heard, "join": rejoined})


async def operator_secrets(lab: Lab) -> Finding:
    """The operator password given by --oper-file: is it in `ps`? Then a failed OPER with a
    password in the name field, and one with a wrong password: is either in the log?"""
    oper_file = lab.scratch / "operators"
    oper_file.write_text("root:op-secret-Kd83\n", encoding="utf-8")
    server = await lab.start("--oper-file", str(oper_file), "--log-level", "DEBUG")
    ps = subprocess.run(["ps", "-o", "args=", "-p", str(server.proc.pid)],
                        capture_output=True, text=True, timeout=10).stdout
    peer = await lab.user("alice")
    wrong_field = outcome(await peer.request(Oper(name="MyPassw0rd-x7Q", password="x")))
    wrong_password = outcome(await peer.request(Oper(name="root", password="wrong-4hG2")))
    right = outcome(await peer.request(Oper(name="root", password="op-secret-Kd83")))
    await lab.close_peers()
    server.stop()  # every line written
    leaked = [s for s in ("op-secret", "Passw0rd", "4hG2") if s in server.log]
    in_ps = "op-secret" in ps
    return Finding(
        f"password in ps: {'yes' if in_ps else 'no'}; OPER answers {wrong_field}, "
        f"{wrong_password}, {right}; secrets in the log: {', '.join(leaked) or 'none'}",
        not in_ps and not leaked and right == "OK",
        "the password is not in ps output, no secret in the DEBUG log, the right one is OK",
        {"in_ps": in_ps, "leaked": leaked, "answers": [wrong_field, wrong_password, right]})


async def long_text(lab: Lab) -> Finding:
    """SEND_ROOM with texts of 4,097 and 16,385 bytes (built past our own checks)."""
    await lab.start()
    peer = await lab.user("talker")
    await peer.request(Join(room="#room"))
    answers = {}
    for size in (4097, 16385):
        message = SendRoom.model_construct(room="#room", client_msg_id=size, text="y" * size)
        answers[size] = outcome(await peer.answer(peer.send_unchecked(message)))
    return Finding(
        f"4,097 bytes: {answers[4097]}; 16,385 bytes: {answers[16385]}",
        set(answers.values()) == {"MESSAGE_TOO_LONG"},
        "both MESSAGE_TOO_LONG (CP-MSG-2)",
        {str(k): v for k, v in answers.items()})


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counter.items())) or "none"


# ------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Attack:
    name: str
    item: int
    """Its number in issue 11's list."""
    before: str
    """What the issue measured before the fixes."""
    run: Callable[[Lab], Awaitable[Finding]]
    server: str = "defaults"
    """The flags (or process limits) its server gets."""


ATTACKS = [
    Attack("room_flood", 1, "about 1,900 rooms/s from one client reconnecting; unbounded",
           room_flood),
    Attack("list_freeze", 1, "pipelined LIST_ROOMS held every other client ~24 s; "
           "LIST_USERS 306 ms at 5,000 users", list_freeze),
    Attack("history_flood", 2, "37 MB queued per connection; 10 connections: RSS 43 -> 416 "
           "MB, 388 MB kept", history_flood),
    Attack("u64_edge", 3, "client_msg_id >= 2^63: connection dropped, no ERROR, earlier "
           "answers lost", u64_edge),
    Attack("silent_connections", 4, "no per-address cap; silent connections held the 90 s "
           "idle timeout", silent_connections),
    Attack("descriptor_limit", 4, "clients hang at the fd limit; 23.7 MB of tracebacks in "
           "14 s", descriptor_limit, server="RLIMIT_NOFILE 256"),
    Attack("password_guessing", 5, "about 20 guesses/s from one socket", password_guessing),
    Attack("login_timing", 5, "LOGIN 0.9 ms without an account vs 50 ms with; different "
           "wording", login_timing),
    Attack("closed_connection", 6, "64 MiB buffered after CLOSED (1,024 chunks)",
           closed_connection, server="none (sans-IO)"),
    Attack("account_creation", 7, "32 accounts/s from 4 connections", account_creation),
    Attack("moderation_after_nick", 8, "mute shaken off by one NICK; ban by NICK then JOIN",
           moderation_after_nick, server="--oper-file"),
    Attack("operator_secrets", 9, "--oper password in ps; failed OPER logged its name",
           operator_secrets, server="--oper-file, --log-level DEBUG"),
    Attack("long_text", 10, "16,385+ bytes INVALID_FIELD, 4,097-16,384 MESSAGE_TOO_LONG",
           long_text),
]
BY_NAME = {attack.name: attack for attack in ATTACKS}


async def _run_in_loop(attack: Attack, lab: Lab) -> Finding:
    try:
        async with asyncio.timeout(ATTACK_TIMEOUT_S):
            return await attack.run(lab)
    except (Lost, TimeoutError) as exc:
        reason = str(exc) or f"timed out after {ATTACK_TIMEOUT_S:.0f} s"
        return Finding(f"the attack could not finish: {reason}", False, "it finishes")
    finally:
        await lab.close_peers()


def run_attack(attack: Attack) -> dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chatproto-attack-") as scratch:
        lab = Lab(Path(scratch))
        try:
            finding = asyncio.run(_run_in_loop(attack, lab))
        finally:
            status = lab.server.stop() if lab.server is not None else 0
        if lab.server is not None and (status != 0 or lab.server.tracebacks):
            finding.held = False
            finding.measured += (f"; server exit status {status}, "
                                 f"{lab.server.tracebacks} traceback(s) logged")
    return {"attack": attack.name, "item": attack.item, "measured": finding.measured,
            "before": attack.before, "held": finding.held, "criterion": finding.criterion,
            "server": attack.server, "seconds": round(time.monotonic() - started, 1),
            "figures": finding.figures}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| attack (issue 11 item) | measured now | before the fixes | verdict |",
             "| --- | --- | --- | --- |"]
    for row in rows:
        verdict = "held" if row["held"] else "NOT HELD"
        lines.append(f"| {row['attack']} ({row['item']}; server: {row['server']}) | "
                     f"{row['measured']} | {row['before']} | {verdict}: {row['criterion']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=list(BY_NAME), metavar="NAME",
                        help="run only this attack (repeatable; --list names them)")
    parser.add_argument("--list", action="store_true", help="name the attacks and exit")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.list:
        for attack in ATTACKS:
            what = " ".join((attack.run.__doc__ or "").split("\n\n")[0].split())
            print(f"{attack.name:24} item {attack.item}: {what}")
        return 0
    rows = []
    for attack in [BY_NAME[n] for n in args.only] if args.only else ATTACKS:
        row = run_attack(attack)
        print(f"{row['attack']}: {'held' if row['held'] else 'NOT HELD'} "
              f"({row['seconds']} s)", file=sys.stderr, flush=True)
        rows.append(row)
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(row["held"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
