"""Soak: many clients chat at random for a while; nothing acknowledged may go missing.

Run: ``python bench/soak.py`` (15 s, 50 clients, against a server it starts on
127.0.0.1 port 0 with a temporary --data-dir); ``--duration 300`` for five
minutes; ``--target HOST:PORT`` for a server already running; ``--json FILE``
to keep the report. Exit status 1 when anything was lost, duplicated or
reordered, or when an unexpected error happened.

Every client picks its next action with its own seeded ``random.Random``: send
to a room, send a private message, join, part, quit and reconnect, or crash
(send, then reset the connection) and reconnect. A reconnecting client takes a
new nick and joins its rooms again with ``resume`` from the last seq it saw, so
a room membership lasts from JOIN to PART whatever happens to the connections
in between: its *window*.

What the report counts, and how it knows:

* One observer connection joins every room first and never acts. It sees the
  server's order of events per room, so the position of each MEMBER_LEFT among
  the ROOM_MESSAGEs gives the exact last seq of the membership it ends.
* A window must hold every seq in (JOIN's last_seq, end] exactly once: end is
  that position for a PART, the room's final last_seq for a window still open.
  Its own messages count through their OK, replays through the resumed JOIN.
  Missing seqs are *lost*, seqs seen twice *duplicated*, seqs outside the
  window *extra*; an event whose seq is not above the previous one on the same
  connection is *out of order*.
* A private message acknowledged with OK must reach the connection holding the
  nick exactly once, unless that connection was reset by the soak itself (a
  crashed client cannot be delivered to): those are counted apart.
* Every ERROR is counted by code. RATE_LIMITED (the clients pace themselves from
  WELCOME's limits, so it should stay rare) and NO_SUCH_NICK (an addressee that
  had started to quit or crash) are expected; anything else, a timeout, a
  connection the server ended, or NO_SUCH_NICK for a connection that had not
  started to leave, is not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat_connection import HOST, ChatConnection, Lost, MessageHook
from server_process import ServerDidNotStart, ServerProcess

from chatproto import (
    ErrorCode,
    Limits,
    error_name,
)
from chatproto.messages import (
    Bye,
    Error,
    HistoryGap,
    Join,
    ListRooms,
    MemberLeft,
    Message,
    Ok,
    Part,
    Ping,
    PrivateMessage,
    Quit,
    RoomInfo,
    RoomMessage,
    SendPrivate,
    SendRoom,
    Welcome,
)

REQUEST_TIMEOUT_S = 15.0
"""Longest wait for one answer before the soak calls it an error."""
ROOMS = 6
MAX_ROOMS_PER_CLIENT = 3
EXPECTED_CODES = frozenset({"RATE_LIMITED", "NO_SUCH_NICK"})

# How often each action is picked.
ACTIONS = {"send_room": 50, "send_private": 15, "join": 12, "part": 9, "quit": 3,
           "crash": 3}


# ------------------------------------------------------------------ ledger


@dataclass
class Window:
    """One membership of one client in one room, across reconnections."""

    room: str
    start: int
    """Messages with a seq above this belong to the window."""
    seqs: list[int] = field(default_factory=list)
    """Every seq received in it (events, replays, own OKs), in arrival order."""
    parted: tuple[str, int] | None = None
    """(nick, ordinal of that nick's leave of the room) for a window ended by PART."""
    cut: bool = False
    """It could not be resumed: completeness is not checked."""
    resuming: bool = False
    """A JOIN with resume is under way: its replay belongs to the window."""

    @property
    def last(self) -> int:
        return max(self.seqs, default=self.start)


@dataclass
class Observed:
    """What the observer saw of one room."""

    start: int = 0
    last_seq: int = 0
    seqs: list[int] = field(default_factory=list)
    leaves: dict[str, list[int]] = field(default_factory=dict)
    """nick -> last seq seen before each MEMBER_LEFT of that nick, in order."""


@dataclass
class Tally:
    connections: int = 0
    room_sent: int = 0
    private_sent: int = 0
    room_delivered: int = 0
    private_delivered: int = 0
    out_of_order: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)

    def error(self, code: str, what: str = "") -> None:
        self.errors[code] += 1
        if code not in EXPECTED_CODES and len(self.unexpected) < 50:
            self.unexpected.append(f"{code}: {what}" if what else code)


@dataclass
class PrivateSent:
    to_nick: str
    msg_id: int


class Pacer:
    """The server's token bucket, mirrored, so that the client never earns RATE_LIMITED."""

    def __init__(self, burst: int, interval_ms: int) -> None:
        self.burst, self.interval_s = burst, interval_ms / 1000
        self.tokens, self.updated = float(burst), time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.interval_s)
        self.updated = now
        if self.tokens < 1:
            # A little extra: the server refills from the time it reads the frame.
            await asyncio.sleep((1 - self.tokens) * self.interval_s * 1.05)
            self.tokens, self.updated = 1.0, time.monotonic()
        self.tokens -= 1


class Soak:
    """The clients, the observer and the ledger of one run."""

    def __init__(self, args: argparse.Namespace, host: str, port: int) -> None:
        self.args = args
        self.host, self.port = host, port
        self.tally = Tally()
        self.rooms = [f"#soak{args.seed}-{k}" for k in range(ROOMS)]
        self.observed = {room: Observed() for room in self.rooms}
        self.windows: list[Window] = []
        self.nicks: dict[int, str] = {}
        """Client index -> the nick of its live connection."""
        self.privates: list[PrivateSent] = []
        self.private_received: dict[str, Counter[int]] = {}
        """nick -> msg_id -> how often its connection received it."""
        self.crashed_nicks: set[str] = set()
        self.stop = asyncio.Event()
        self.quiet: set[int] = set()
        """Clients that have made their last move."""
        self.all_quiet = asyncio.Event()
        self.final_connections: list[ChatConnection] = []
        self._client_msg_ids = iter(range(1, 1 << 62))

    def source(self, index: int) -> str | None:
        # Spread clients over loopback addresses, so that a per-address cap or
        # bucket of the server does not turn the soak into a test of that.
        return f"127.0.0.{10 + index % 240}" if self.host.startswith("127.") else None

    # -------------------------------------------------------------- observer

    def connection(self) -> ChatConnection:
        """A new connection, not open yet; its faults and ERRORs are counted."""
        conn = ChatConnection(on_fault=self.tally.error, keep_events=False,
                              timeout=REQUEST_TIMEOUT_S, client_name="chatproto-soak/1")
        self.hear(conn, lambda _conn, _message: None)
        return conn

    def hear(self, conn: ChatConnection, on_event: MessageHook) -> None:
        """``on_event`` hears every frame ``conn`` receives, answers too, in arrival order."""
        def heard(conn: ChatConnection, message: Message) -> None:
            if isinstance(message, Error):
                self.tally.error(error_name(message.code), message.detail)
            on_event(conn, message)
        conn.on_message = heard

    async def open(self, conn: ChatConnection, index: int) -> None:
        await conn.open(self.port, self.host, source=self.source(index), nodelay=True)
        self.tally.connections += 1

    async def observe(self, ready: asyncio.Event) -> ChatConnection:
        conn = self.connection()
        self.hear(conn, self._observer_event)
        await self.open(conn, 250)
        await self._hello(conn, f"obs{self.args.seed}")
        for room in self.rooms:
            frames = await conn.request(Join(room=room))
            info = frames[0]
            if not isinstance(info, RoomInfo) or not isinstance(frames[-1], Ok):
                raise SystemExit(f"soak: the observer could not join {room}: {frames[-1]!r}")
            seen = self.observed[room]
            seen.start = seen.last_seq = info.last_seq
        ready.set()
        return conn

    def _observer_event(self, conn: ChatConnection, message: Message) -> None:
        if isinstance(message, RoomMessage) and message.room in self.observed:
            seen = self.observed[message.room]
            seen.seqs.append(message.seq)
            seen.last_seq = max(seen.last_seq, message.seq)
        elif isinstance(message, MemberLeft) and message.room in self.observed:
            seen = self.observed[message.room]
            seen.leaves.setdefault(message.nick, []).append(seen.last_seq)

    # --------------------------------------------------------------- clients

    async def _hello(self, conn: ChatConnection, nick: str) -> Limits:
        welcome = await conn.hello(nick)
        if not isinstance(welcome, Welcome):
            raise Lost(f"HELLO refused: {welcome!r}")
        return welcome.limits

    async def client(self, index: int) -> None:
        """Connect, act at random until the stop, reconnecting as the actions say.

        It ends connected, its memberships resumed, after the PING barrier that
        follows everyone's last action; the connection stays open until ``run``
        has taken the final figures.
        """
        rng = random.Random(self.args.seed * 1_000_003 + index)
        windows: dict[str, Window] = {}  # room -> the open window
        pacers: list[Pacer] = []  # (messages, commands), kept across reconnections
        generation = failures = 0
        while failures < 5:
            generation += 1
            nick = f"s{index}g{generation}"
            conn = self.connection()
            finished = False
            try:
                finished = await self._connected(index, rng, conn, nick, windows, pacers)
                failures = 0
            except Lost as exc:
                failures += 1
                if not conn.crashed:
                    self.tally.error("CONNECTION_LOST", f"{nick}: {exc}")
            finally:
                self.nicks.pop(index, None)
                if finished:
                    self.final_connections.append(conn)
                else:
                    await conn.close()
            if finished:
                return
        for window in windows.values():
            window.cut = True
        self._quiet(index)

    def _quiet(self, index: int) -> None:
        self.quiet.add(index)
        if len(self.quiet) == self.args.clients:
            self.all_quiet.set()

    async def _connected(self, index: int, rng: random.Random, conn: ChatConnection,
                         nick: str, windows: dict[str, Window], pacers: list[Pacer]) -> bool:
        """One connection's life; True if it lasted to the end of the run."""
        last_event: dict[str, int] = {}  # room -> seq of the last event on this connection
        parts: Counter[str] = Counter()  # room -> PARTs on this connection
        received = self.private_received.setdefault(nick, Counter())

        def on_event(_: ChatConnection, message: Message) -> None:
            if isinstance(message, RoomMessage):
                window = windows.get(message.room)
                if message.request_id:  # a JOIN's replay: only a resumed one counts
                    if window is not None and window.resuming:
                        self._arrived(window, message.seq, last_event)
                elif window is None:
                    self.tally.error("EVENT_OUTSIDE_MEMBERSHIP", f"{nick} {message.room}")
                else:
                    self._arrived(window, message.seq, last_event)
            elif isinstance(message, HistoryGap):
                self.tally.error("HISTORY_GAP", f"{nick} {message.room} "
                                 f"{message.first_seq}..{message.last_seq}")
            elif isinstance(message, PrivateMessage):
                received[message.msg_id] += 1
                self.tally.private_delivered += 1
            elif isinstance(message, Error) and message.fatal and not message.request_id:
                raise_later.append(f"{error_name(message.code)} {message.detail}")

        raise_later: list[str] = []
        self.hear(conn, on_event)
        await self.open(conn, index)
        limits = await self._hello(conn, nick)
        if not pacers:
            # Kept across reconnections: the server's buckets per address are too.
            pacers += [Pacer(limits.msg_rate_burst, limits.msg_rate_interval_ms),
                       Pacer(limits.cmd_rate_burst, limits.cmd_rate_interval_ms)]
        msg_pacer, cmd_pacer = pacers
        for room, window in list(windows.items()):  # resume every membership
            await cmd_pacer.take()
            await self._join(conn, window, nick, resume=True, last_event=last_event)
            if window.cut:
                del windows[room]
        self.nicks[index] = nick

        while not self.stop.is_set():
            if raise_later:
                raise Lost(raise_later[0])
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            if self.stop.is_set():
                break
            action = rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
            if action in ("send_room", "crash") and windows:
                await msg_pacer.take()
                room = rng.choice(sorted(windows))
                request_id = conn.send(SendRoom(room=room, client_msg_id=next(
                    self._client_msg_ids), text=f"{nick} says {rng.random():.6f}"))
                if action == "crash":  # the answer may or may not have been sent
                    self.nicks.pop(index, None)
                    conn.crash()
                    self.crashed_nicks.add(nick)
                    return False
                final = (await conn.answer(request_id))[-1]
                if isinstance(final, Ok):
                    self.tally.room_sent += 1
                    windows[room].seqs.append(final.seq)
            elif action == "send_private":
                await msg_pacer.take()
                others = sorted(n for i, n in self.nicks.items() if i != index)
                if not others:
                    continue
                to_nick = rng.choice(others)
                final = (await conn.request(SendPrivate(
                    nick=to_nick, client_msg_id=next(self._client_msg_ids),
                    text=f"psst {to_nick}")))[-1]
                if isinstance(final, Ok):
                    self.tally.private_sent += 1
                    self.privates.append(PrivateSent(to_nick, final.msg_id))
                elif isinstance(final, Error) and final.code == ErrorCode.NO_SUCH_NICK and \
                        to_nick in self.nicks.values():  # it never started leaving
                    self.tally.error("NO_SUCH_NICK_FOR_A_LIVE_NICK", to_nick)
            elif action == "join" and len(windows) < MAX_ROOMS_PER_CLIENT:
                room = rng.choice([r for r in self.rooms if r not in windows])
                await cmd_pacer.take()
                # In the table before the request: live events may follow the
                # answer in the same read, before this coroutine runs again.
                window = windows[room] = Window(room, 0)
                await self._join(conn, window, nick, resume=False, last_event=last_event)
                if window.cut:
                    del windows[room]
                else:
                    self.windows.append(window)
            elif action == "part" and windows:
                room = rng.choice(sorted(windows))
                await cmd_pacer.take()
                final = (await conn.request(Part(room=room)))[-1]
                if isinstance(final, Ok):
                    window = windows.pop(room)
                    window.parted = (nick, parts[room])
                    parts[room] += 1
                    last_event.pop(room, None)
            elif action == "quit":
                self.nicks.pop(index, None)  # no private message is owed to it from now
                frames = await conn.request(Quit(reason="soak"))
                if not isinstance(frames[-1], Bye):
                    self.tally.error("QUIT_NOT_BYE", repr(frames[-1]))
                return False
        # The end: once every client has made its last move, wait for every event
        # sent before now (the PING barrier).
        self._quiet(index)
        await self.all_quiet.wait()
        await conn.request(Ping(token=b"end"))
        return True

    async def _join(self, conn: ChatConnection, window: Window, nick: str, *, resume: bool,
                    last_event: dict[str, int]) -> None:
        """JOIN ``window``'s room; a resumed one gets its replay through the event hook."""
        window.resuming = resume
        try:
            frames = await conn.request(Join(room=window.room, resume=resume,
                                             last_seen_seq=window.last if resume else 0))
        finally:
            window.resuming = False
        final, info = frames[-1], frames[0]
        if not isinstance(final, Ok) or not isinstance(info, RoomInfo):
            window.cut = True
        elif not resume:
            window.start = info.last_seq  # a plain JOIN's replay is before the window

    def _arrived(self, window: Window, seq: int, last_event: dict[str, int]) -> None:
        if seq <= last_event.get(window.room, 0):
            self.tally.out_of_order += 1
        last_event[window.room] = seq
        window.seqs.append(seq)
        self.tally.room_delivered += 1

    # ---------------------------------------------------------------- checks

    def verdict(self) -> dict[str, int]:
        lost = duplicated = extra = 0
        for window in self.windows:
            seen = self.observed[window.room]
            if window.cut:
                end = window.last
            elif window.parted is not None:
                nick, ordinal = window.parted
                leaves = seen.leaves.get(nick, [])
                if ordinal >= len(leaves):
                    self.tally.error("UNOBSERVED_PART", f"{nick} {window.room}")
                    continue
                end = leaves[ordinal]
            else:
                end = seen.last_seq
            counts = Counter(window.seqs)
            wanted = set(range(window.start + 1, end + 1))
            duplicated += sum(n - 1 for n in counts.values())
            extra += len(set(counts) - wanted)
            lost += len(wanted - set(counts)) if not window.cut else 0
        for seen in self.observed.values():  # the observer is a member too
            counts = Counter(seen.seqs)
            duplicated += sum(n - 1 for n in counts.values())
            lost += len(set(range(seen.start + 1, seen.last_seq + 1)) - set(counts))
            self.tally.out_of_order += sum(1 for a, b in zip(seen.seqs, seen.seqs[1:],
                                                             strict=False) if b <= a)
        undeliverable = 0
        for sent in self.privates:
            times = self.private_received.get(sent.to_nick, Counter())[sent.msg_id]
            if times == 0 and sent.to_nick in self.crashed_nicks:
                undeliverable += 1
            elif times == 0:
                lost += 1
            duplicated += max(0, times - 1)
        return {"lost": lost, "duplicated": duplicated, "out_of_order": self.tally.out_of_order,
                "extra": extra, "private_undeliverable_after_crash": undeliverable}


# ------------------------------------------------------------------ run


async def run(args: argparse.Namespace, host: str, port: int,
              server: ServerProcess | None) -> dict[str, Any]:
    soak = Soak(args, host, port)
    ready = asyncio.Event()
    observer = await soak.observe(ready)
    started = time.monotonic()
    peak_rss_kib = 0

    async def sample() -> None:
        nonlocal peak_rss_kib
        while server is not None:
            peak_rss_kib = max(peak_rss_kib, server.rss_kib())
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    clients = [asyncio.create_task(soak.client(i)) for i in range(args.clients)]
    await asyncio.sleep(args.duration)
    soak.stop.set()
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*clients)
    except TimeoutError:
        soak.tally.error("TIMEOUT", "clients did not stop within 60 s")
        soak.all_quiet.set()
    await observer.request(Ping(token=b"end"))  # every event of the run has reached it
    frames = await observer.request(ListRooms())
    for info in frames:
        if isinstance(info, RoomInfo) and info.room in soak.observed and \
                info.last_seq != soak.observed[info.room].last_seq:
            soak.tally.error("LAST_SEQ_MISMATCH", f"{info.room}: server {info.last_seq}, "
                             f"observed {soak.observed[info.room].last_seq}")
    elapsed = time.monotonic() - started
    verdict = soak.verdict()
    await asyncio.gather(observer.close(), *(conn.close() for conn in soak.final_connections))
    sampler.cancel()
    tally = soak.tally
    report: dict[str, Any] = {
        "duration_s": round(elapsed, 1), "clients": args.clients, "seed": args.seed,
        "connections": tally.connections,
        "room_messages_sent": tally.room_sent, "room_messages_delivered": tally.room_delivered,
        "private_messages_sent": tally.private_sent,
        "private_messages_delivered": tally.private_delivered,
        "memberships": len(soak.windows),
        **verdict,
        "errors_by_code": dict(sorted(tally.errors.items())),
        "unexpected_errors": tally.unexpected,
        "peak_server_rss_kib": peak_rss_kib if server is not None else None,
    }
    return report


def failed(report: dict[str, Any]) -> bool:
    return bool(report["lost"] or report["duplicated"] or report["out_of_order"]
                or report["extra"] or report["unexpected_errors"])


def text_report(report: dict[str, Any]) -> str:
    rss = report["peak_server_rss_kib"]
    lines = [
        f"soak: {report['clients']} clients for {report['duration_s']} s (seed {report['seed']})",
        f"  connections handled   {report['connections']}",
        f"  memberships           {report['memberships']}",
        f"  room messages         {report['room_messages_sent']} sent, "
        f"{report['room_messages_delivered']} delivered",
        f"  private messages      {report['private_messages_sent']} sent, "
        f"{report['private_messages_delivered']} delivered "
        f"({report['private_undeliverable_after_crash']} to a client that crashed first)",
        f"  lost {report['lost']}, duplicated {report['duplicated']}, "
        f"out of order {report['out_of_order']}, outside membership {report['extra']}",
        f"  peak server RSS       {f'{rss / 1024:.1f} MiB' if rss else 'n/a (--target)'}",
        "  errors by code        " + (", ".join(f"{code} {count}" for code, count in
                                             report["errors_by_code"].items()) or "none"),
    ]
    lines += [f"  UNEXPECTED: {line}" for line in report["unexpected_errors"]]
    lines.append("  verdict               " + ("FAILED" if failed(report) else "ok"))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="clients (default 50)")
    parser.add_argument("--duration", type=float, default=15.0,
                        help="seconds of random traffic (default 15)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--target", metavar="HOST:PORT",
                        help="a running server on 127.0.0.1 (default: start one)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for the server the soak starts (repeatable)")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 1000 or not 0 < args.duration <= 24 * 3600:
        parser.error("--clients is 1..1000 and --duration 0..86400")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server: ServerProcess | None = None
    with tempfile.TemporaryDirectory(prefix="chatproto-soak-") as data_dir:
        if args.target:
            host, _, port_text = args.target.rpartition(":")
            if host not in ("127.0.0.1", "localhost") or not port_text.isdigit():
                print("soak: --target must be 127.0.0.1:PORT (the soak talks to loopback only)",
                      file=sys.stderr)
                return 2
            host, port = HOST, int(port_text)
        else:
            server = ServerProcess(data_dir, args.server_arg, keep_lines=40)
            try:
                host, port = HOST, server.wait_listening()
            except ServerDidNotStart as exc:
                print(f"soak: {exc}", file=sys.stderr)
                return 1
        try:
            report = asyncio.run(run(args, host, port, server))
        except Lost as exc:
            print(f"soak: cannot reach the server at {host}:{port}: {exc}", file=sys.stderr)
            return 1
        finally:
            status = server.stop() if server is not None else 0
        if server is not None:
            if status != 0:
                report["unexpected_errors"].append(f"server exit status {status}")
            if server.tracebacks:
                report["unexpected_errors"].append(
                    f"server logged {server.tracebacks} traceback(s)")
    print(text_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed(report) else 0


if __name__ == "__main__":
    sys.exit(main())
