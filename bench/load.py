"""The relay benchmark: the reference server against the classic design, scenario by scenario.

Run: ``python bench/load.py`` (about six minutes) or ``--quick`` (under a
minute); ``--scenario room-100x10`` for one; ``--out DIR`` for where the JSON
and the plots go (default ``spec/assets/bench``, which the site's Benchmarks
page shows). Installing ``.[bench]`` brings uvloop for the load generator and
matplotlib for the plots.

Each scenario runs against a fresh server process: the reference server
(``python -m reference_server``, history in SQLite as in production, every
check on) and the classic design (``bench/classic_server.py``: a thread per
client, a global lock, ``sendall`` to each member). On a machine with two or
more cores the server is pinned to core 0 and the load generator to core 1.
What is measured, and how:

* deliveries: ROOM_MESSAGE or PRIVATE_MESSAGE frames received by members,
  each checked in order and exactly once (``loadgen``'s module docstring);
* server CPU seconds per million deliveries: utime + stime of the server
  process from ``/proc/PID/stat``, from the first send to the last delivery;
* the load generator's CPU share: its own CPU seconds over the same wall
  time (1.0 means it used a whole core, and the figure is its limit, not the
  server's);
* latency p50 / p99 / max: the send time a sender writes into the text,
  against the time a member reads it (one clock, one process);
* connection + handshake rate and server RSS per idle connection, from
  ``/proc/PID/status`` before and after opening the idle connections.

The advertised rate limits are raised by flag for the saturation scenarios
and the latency run (a relay benchmark measures relaying, not the flood
control that would stop it); the flags go into the results, and
``defaults-100x10`` runs the same room at the advertised defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadgen import Member, Tally, check_frames, connect
from server_process import ROOT, ServerProcess

CLASSIC_ENTRY = (str(ROOT / "bench" / "classic_server.py"),)
RESULTS_DIR = ROOT / "spec" / "assets" / "bench"
SATURATION_FLAGS = (
    "--msg-rate-burst", "65535", "--msg-rate-interval-ms", "1",
    "--cmd-rate-burst", "65535", "--cmd-rate-interval-ms", "1",
    "--address-rate-factor", "0",
)
"""Raised limits for the saturation runs: 65,535 messages at once and 1,000 more a second per
connection, no per-address bucket. Validation, history and slow-reader protection stay on."""
CAPACITY_FLAGS = ("--max-connections", "19000", "--max-connections-per-address", "19000",
                  "--log-level", "WARNING")
"""Every scenario: room for the idle run's connections from one loopback address; no log
line per connection (what the reference server logs at INFO)."""
CONNECT_BATCH = 200
"""Handshakes in flight at once while members connect."""
TIMEOUT_S = 120.0
"""The longest any one phase may take before the run is called failed."""


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    """room, private, latency or idle."""
    members: int
    senders: int = 0
    rooms: int = 1
    window: int = 8
    """SEND requests a sender keeps in flight (saturation); the next goes on each OK."""
    rate: float = 0.0
    """Messages per second in all (latency), spread evenly over the senders."""
    duration_s: float = 0.0
    raised_limits: bool = True
    """Run with ``SATURATION_FLAGS``; False: at the advertised defaults."""

    def messages_per_sender(self, deliveries: int) -> int:
        per_room = self.members // self.rooms
        messages = deliveries / max(1, per_room - 1)
        return max(1, round(messages / max(1, self.senders)))


SCENARIOS = (
    Scenario("room-10x10", "room", 10, 10),
    Scenario("room-100x10", "room", 100, 10),
    Scenario("room-100x100", "room", 100, 100, window=4),
    Scenario("room-1000x10", "room", 1000, 10),
    Scenario("room-1000x1000", "room", 1000, 1000, window=2),
    Scenario("rooms-100x10", "room", 1000, 1000, rooms=100, window=2),
    Scenario("private-pairs", "private", 1000, 1000, window=4),
    # 200 messages a second from one address is more than its default bucket allows.
    Scenario("latency", "latency", 100, 10, rate=200.0, duration_s=10.0),
    # At the defaults each connection may send 2 messages a second after a burst of 20:
    # 10 senders at 1.9 a second stay within both their own and their address's bucket.
    Scenario("defaults-100x10", "latency", 100, 10, rate=19.0, duration_s=10.0,
             raised_limits=False),
    Scenario("idle-10000", "idle", 10_000, raised_limits=False),
)
"""The scenarios of issue 13: one room of 10, 100, 1,000 members with 10 senders or all
sending; 1,000 clients in 100 rooms; private messages between random pairs; a light fixed
load for latency; the same room at the advertised default limits; 10,000 idle
connections."""


@dataclass
class Result:
    scenario: str
    server: str
    members: int
    senders: int
    deliveries: int = 0
    expected: int = 0
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    server_sys_s: float = 0.0  # the kernel's part of server_cpu_s: mostly socket writes
    loadgen_cpu_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    handshakes_per_s: float = 0.0
    rss_kib_per_connection: float = 0.0
    correct: bool = False
    problems: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_s_per_million(self) -> float:
        return self.server_cpu_s / self.deliveries * 1e6 if self.deliveries else 0.0

    @property
    def loadgen_share(self) -> float:
        return self.loadgen_cpu_s / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(deliveries_per_s=round(self.deliveries_per_s),
                   cpu_s_per_million_deliveries=round(self.cpu_s_per_million, 3),
                   loadgen_cpu_share=round(self.loadgen_share, 2))
        for key in ("wall_s", "server_cpu_s", "server_sys_s", "loadgen_cpu_s",
                    "rss_kib_per_connection", "handshakes_per_s"):
            out[key] = round(out[key], 3)
        return out


# ----------------------------------------------------------------- the server


class ServerUnderTest:
    """A server process on core 0 whose CPU time and memory are read from /proc."""

    def __init__(self, kind: str, data_dir: Path, flags: Sequence[str],
                 profile: Path | None = None) -> None:
        self.kind = kind
        self.flags = [*flags, *CAPACITY_FLAGS] if kind == "reference" else list(flags)
        entry: tuple[str, ...] = CLASSIC_ENTRY if kind == "classic" else ("-m", "reference_server")
        if profile is not None:  # cProfile writes its file when the server exits on SIGTERM
            entry = ("-m", "cProfile", "-o", str(profile), *entry)
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.process = ServerProcess(data_dir, self.flags, entry=entry, nofile=hard)

    async def start(self) -> int:
        await self.process.started()
        if (os.cpu_count() or 1) >= 2:
            os.sched_setaffinity(self.process.proc.pid, {0})
        return self.process.port

    def cpu_s(self) -> tuple[float, float]:
        """(user + system, system) CPU seconds of the server process so far."""
        fields = Path(f"/proc/{self.process.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tick, int(fields[12]) / tick

    def rss_kib(self) -> int:
        return self.process.rss_kib()

    def stop(self) -> None:
        self.process.stop()


# -------------------------------------------------------------- the scenarios


async def connect_all(port: int, count: int, tally: Tally, *,
                      latency_members: int = 0, first: int = 0) -> list[Member]:
    """``count`` members, nicks numbered from ``first``, ``CONNECT_BATCH`` at a time."""
    members: list[Member] = []
    for start in range(first, first + count, CONNECT_BATCH):
        batch = range(start, min(first + count, start + CONNECT_BATCH))
        members += await asyncio.gather(*(
            connect(port, index, tally, measure_latency=index < latency_members)
            for index in batch))
    return members


async def until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.005)


async def deliveries_done(count: Callable[[], int], expected: int, result: Result,
                          what: str = "deliveries") -> None:
    """Wait for ``expected`` deliveries; past ``TIMEOUT_S`` the run is measured as it stands
    and marked incomplete (a server that collapses under the load still gets its figures)."""
    try:
        await until(lambda: count() >= expected, TIMEOUT_S, "deliveries")
    except TimeoutError:
        result.problems.append(f"incomplete: {count():,} of {expected:,} {what} in "
                               f"{TIMEOUT_S:.0f} s")


class Meter:
    """Server CPU, load-generator CPU and wall time over one phase."""

    def __init__(self, server: ServerUnderTest) -> None:
        self.server = server

    def __enter__(self) -> Meter:
        self.wall = time.monotonic()
        self.cpu, self.sys = self.server.cpu_s()
        self.own = time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.monotonic() - self.wall
        cpu, sys = self.server.cpu_s()
        self.cpu, self.sys = cpu - self.cpu, sys - self.sys
        self.own = time.process_time() - self.own


def _record(result: Result, meter: Meter, tally: Tally) -> None:
    result.wall_s, result.server_cpu_s, result.loadgen_cpu_s = meter.wall, meter.cpu, meter.own
    result.server_sys_s = meter.sys
    if tally.latencies_ns:
        ordered = sorted(tally.latencies_ns)
        result.latency_ms = {
            "p50": ordered[len(ordered) // 2] / 1e6,
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6,
            "max": ordered[-1] / 1e6,
            "samples": len(ordered),
        }
    if tally.out_of_order:
        result.problems.append(f"{tally.out_of_order} deliveries out of order or repeated")
    if tally.echoed:
        result.problems.append(f"{tally.echoed} messages echoed to their sender")
    for what, count in tally.errors.items():
        result.problems.append(f"{count} x {what}")


async def run_room(scenario: Scenario, port: int, server: ServerUnderTest, result: Result,
                   deliveries: int) -> None:
    tally = Tally()
    members = await connect_all(port, scenario.members, tally, latency_members=10)
    per_room = scenario.members // scenario.rooms
    rooms = [f"#{scenario.name}-{index:03d}" for index in range(scenario.rooms)]
    for index, member in enumerate(members):
        await member.join(rooms[index // per_room], TIMEOUT_S)
    quota = scenario.messages_per_sender(deliveries)
    # The senders are spread over the rooms: the first few members of each.
    senders_per_room = max(1, scenario.senders // scenario.rooms)
    senders = [m for i, m in enumerate(members) if i % per_room < senders_per_room]
    sent: dict[int, int] = {m.index: 0 for m in senders}
    acked_per_room: dict[bytes, int] = {}

    def on_ok(member: Member, seq: int) -> None:
        acked_per_room[member.room] = acked_per_room.get(member.room, 0) + 1
        if sent[member.index] < quota:
            sent[member.index] += 1
            member.send_room(sent[member.index])

    expected = len(senders) * quota * (per_room - 1)
    result.expected = expected
    with Meter(server) as meter:
        for member in senders:
            member.on_ok = on_ok
            for _ in range(min(scenario.window, quota)):
                sent[member.index] += 1
                member.send_room(sent[member.index])
        await deliveries_done(lambda: sum(m.received for m in members), expected, result)
        # A server may deliver before it answers: the counts below need every OK in.
        await deliveries_done(lambda: sum(acked_per_room.values()), len(senders) * quota,
                              result, "answers")
    result.deliveries = sum(m.received for m in members)
    _record(result, meter, tally)
    for member in members:  # each got its room's messages but its own, no more, no fewer
        own = len(member.own_seqs)
        room_total = acked_per_room.get(member.room, 0)
        if member.received != room_total - own:
            result.problems.append(f"{member.nick} received {member.received} of "
                                   f"{room_total - own}")
            break
    for member in members:
        member.close()


async def run_private(scenario: Scenario, port: int, server: ServerUnderTest, result: Result,
                      deliveries: int) -> None:
    tally = Tally()
    members = await connect_all(port, scenario.members, tally, latency_members=10)
    order = list(range(len(members)))
    random.Random(13).shuffle(order)
    partner = {order[i]: order[i ^ 1] for i in range(len(order) - len(order) % 2)}
    quota = max(10, deliveries // len(partner))
    sent = {index: 0 for index in partner}

    def on_ok(member: Member, _seq: int) -> None:
        if sent[member.index] < quota:
            sent[member.index] += 1
            member.send_private(members[partner[member.index]].nick.encode(),
                                sent[member.index])

    expected = quota * len(partner)
    result.expected = expected
    with Meter(server) as meter:
        for index in partner:
            members[index].on_ok = on_ok
            for _ in range(min(scenario.window, quota)):
                sent[index] += 1
                members[index].send_private(members[partner[index]].nick.encode(), sent[index])
        await deliveries_done(lambda: sum(m.private_received for m in members), expected, result)
    result.deliveries = sum(m.private_received for m in members)
    _record(result, meter, tally)
    for member in members:
        member.close()


async def run_latency(scenario: Scenario, port: int, server: ServerUnderTest,
                      result: Result, _deliveries: int) -> None:
    tally = Tally()
    members = await connect_all(port, scenario.members, tally,
                                latency_members=scenario.members)
    room = f"#{scenario.name}"
    for member in members:
        await member.join(room, TIMEOUT_S)
    senders = members[:scenario.senders]
    count = int(scenario.rate * scenario.duration_s)
    interval = 1.0 / scenario.rate
    for member in senders:
        member.on_ok = lambda _member, _seq: None
    expected = count * (scenario.members - 1)
    result.expected = expected
    with Meter(server) as meter:
        start = time.monotonic()
        for n in range(count):  # paced: message n leaves at start + n * interval
            delay = start + n * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            senders[n % len(senders)].send_room(n // len(senders) + 1)
        await deliveries_done(lambda: sum(m.received for m in members), expected, result)
    result.deliveries = sum(m.received for m in members)
    _record(result, meter, tally)
    for member in members:
        member.close()


async def run_idle(scenario: Scenario, port: int, server: ServerUnderTest, result: Result,
                   _deliveries: int) -> None:
    tally = Tally()
    warm = await connect_all(port, 10, tally)  # the first connections pay for imports
    before = server.rss_kib()
    with Meter(server) as meter:
        members = await connect_all(port, scenario.members, Tally(), first=len(warm))
    await asyncio.sleep(0.5)  # let the server's allocator settle before reading RSS
    after = server.rss_kib()
    result.wall_s, result.server_cpu_s, result.loadgen_cpu_s = meter.wall, meter.cpu, meter.own
    result.handshakes_per_s = scenario.members / meter.wall
    result.rss_kib_per_connection = (after - before) / scenario.members
    for member in [*warm, *members]:
        member.close()


RUNNERS: dict[str, Callable[[Scenario, int, ServerUnderTest, Result, int], Awaitable[None]]] = {
    "room": run_room, "private": run_private, "latency": run_latency, "idle": run_idle,
}


async def run_one(scenario: Scenario, kind: str, deliveries: int,
                  profile_dir: Path | None = None) -> Result:
    flags = list(SATURATION_FLAGS) if scenario.raised_limits else []
    result = Result(scenario.name, kind, scenario.members, scenario.senders, flags=flags)
    with tempfile.TemporaryDirectory(prefix="chatproto-bench-") as data_dir:
        profile = profile_dir / f"{scenario.name}-{kind}.prof" if profile_dir else None
        server = ServerUnderTest(kind, Path(data_dir), flags, profile)
        result.flags = server.flags
        try:
            port = await server.start()
            await RUNNERS[scenario.kind](scenario, port, server, result, deliveries)
        except (TimeoutError, ConnectionError, OSError) as exc:
            result.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            server.stop()
            if server.process.tracebacks:
                result.problems.append(f"{server.process.tracebacks} tracebacks in its log")
    result.correct = not result.problems and result.deliveries == result.expected
    return result


# ------------------------------------------------------------------- reporting


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "loop": loop_name(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def loop_name() -> str:
    return type(asyncio.get_event_loop_policy()).__module__.split(".")[0]


def ratios(results: list[Result]) -> dict[str, float]:
    """Classic CPU per delivery over the reference's, per scenario (above 1: the reference wins)."""
    by_key = {(r.scenario, r.server): r for r in results}
    out = {}
    for (name, kind), result in by_key.items():
        classic = by_key.get((name, "classic"))
        if kind == "reference" and classic and result.cpu_s_per_million and \
                classic.cpu_s_per_million:
            out[name] = round(classic.cpu_s_per_million / result.cpu_s_per_million, 2)
    return out


def table(results: list[Result]) -> str:
    lines = [f"{'scenario':<16} {'server':<10} {'deliveries/s':>12} {'CPU s/1M':>9} "
             f"{'loadgen':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  ok"]
    for r in results:
        lat = r.latency_ms
        extra = (f"  {r.handshakes_per_s:.0f} handshakes/s, {r.rss_kib_per_connection:.2f} "
                 "KiB/conn" if r.handshakes_per_s else "")
        lines.append(
            f"{r.scenario:<16} {r.server:<10} {r.deliveries_per_s:>12,.0f} "
            f"{r.cpu_s_per_million:>9.2f} {r.loadgen_share:>7.2f} {lat.get('p50', 0):>7.2f} "
            f"{lat.get('p99', 0):>7.2f} {lat.get('max', 0):>7.2f}  "
            f"{'yes' if r.correct else 'NO ' + '; '.join(r.problems)}{extra}")
    return "\n".join(lines)


def markdown_table(results: list[Result]) -> str:
    """The results as the Benchmarks page of the spec site shows them."""
    classic = {r.scenario: r for r in results if r.server == "classic"}
    lines = ["| scenario | server | deliveries/s | server CPU s per 1M | vs classic | "
             "load generator CPU | p50 / p99 / max ms | other | correct |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        base = classic.get(r.scenario)
        ratio = (f"{base.cpu_s_per_million / r.cpu_s_per_million:.1f}x"
                 if r.server == "reference" and base and base.cpu_s_per_million
                 and r.cpu_s_per_million else "")
        lat = r.latency_ms
        latency = (f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f}" if lat else "")
        other = (f"{r.handshakes_per_s:,.0f} handshakes/s, {r.rss_kib_per_connection:.2f} KiB "
                 "RSS per idle connection" if r.handshakes_per_s else "")
        correct = "yes" if r.correct else "**no**: " + "; ".join(r.problems)
        lines.append(f"| {r.scenario} | {r.server} | {r.deliveries_per_s:,.0f} | "
                     f"{r.cpu_s_per_million:.2f} | {ratio} | {r.loadgen_share:.2f} | {latency} | "
                     f"{other} | {correct} |")
    return "\n".join(lines)


def plot(results: list[Result], out: Path) -> list[str]:
    """throughput.png and latency.png; none when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    rooms = [r for r in results if r.scenario.startswith("room-") and r.deliveries]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for kind in ("reference", "classic"):
        for senders_all in (False, True):
            points = sorted((r.members, r) for r in rooms if r.server == kind
                            and (r.senders == r.members) is senders_all)
            if not points:
                continue
            label = f"{kind}, {'all send' if senders_all else '10 senders'}"
            left.plot([m for m, _ in points], [r.deliveries_per_s for _, r in points],
                      marker="o", label=label)
            right.plot([m for m, _ in points], [r.cpu_s_per_million for _, r in points],
                       marker="o", label=label)
    for axis, title in ((left, "deliveries per second"),
                        (right, "server CPU s per 1M deliveries")):
        axis.set_xscale("log")
        axis.set_xlabel("members in the room")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    right.set_yscale("log")  # the ratios between servers are what matters
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=100)
    plt.close(fig)
    written.append("throughput.png")
    fig, axis = plt.subplots(figsize=(6, 4))
    with_latency = [r for r in results if r.latency_ms]
    labels = [f"{r.scenario}\n{r.server}" for r in with_latency]
    positions = range(len(with_latency))
    for key, marker in (("p50", "o"), ("p99", "s"), ("max", "^")):
        axis.scatter(positions, [r.latency_ms[key] for r in with_latency], marker=marker,
                     label=key)
    axis.set_xticks(list(positions), labels, rotation=60, fontsize=6)
    axis.set_yscale("log")
    axis.set_ylabel("ms, send to delivery")
    axis.legend()
    axis.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=100)
    plt.close(fig)
    written.append("latency.png")
    return written


# ------------------------------------------------------------------------ main


def _raise_descriptor_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run(scenarios: Sequence[Scenario], servers: Sequence[str],
              deliveries: int, profile_dir: Path | None = None) -> list[Result]:
    results = []
    for scenario in scenarios:
        for kind in servers:
            result = await run_one(scenario, kind, deliveries, profile_dir)
            print(table([result]).splitlines()[1], flush=True)
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer deliveries and connections: a smoke run of every scenario")
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS],
                        help="run only these (repeatable)")
    parser.add_argument("--server", action="append", choices=["reference", "classic"],
                        help="run only against these (default both)")
    parser.add_argument("--deliveries", type=int, default=0,
                        help="deliveries per saturation scenario (default 1,000,000; "
                             "--quick 30,000)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR,
                        help="where results.json and the plots go (default: the spec "
                             "site's, which shows them on its Benchmarks page)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run each server under cProfile and keep SCENARIO-SERVER.prof "
                             "in DIR (the figures then include the profiler's cost: compare "
                             "the functions, not the totals)")
    args = parser.parse_args(argv)
    deliveries = args.deliveries or (30_000 if args.quick else 1_000_000)
    scenarios = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    if args.quick:
        scenarios = [quick(s) for s in scenarios]
    check_frames()
    _raise_descriptor_limit()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    print(table([]), flush=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run(scenarios, args.server or ["reference", "classic"], deliveries,
                              args.profile))
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "deliveries_per_scenario": deliveries,
              "quick": args.quick, "method": __doc__,
              "results": [r.as_dict() for r in results], "classic_over_reference": ratios(results),
              "table_markdown": markdown_table(results)}
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    written = plot(results, args.out)
    print(f"\nclassic CPU per delivery / reference's: {ratios(results)}")
    print(f"wrote {args.out / 'results.json'}" + "".join(f", {name}" for name in written))
    # The baseline may collapse (that is a finding); the reference server must not.
    return 0 if all(r.correct for r in results if r.server == "reference") else 1


def quick(scenario: Scenario) -> Scenario:
    """The same shape, smaller: at most 200 members, 2 s of latency, 500 idle connections."""
    from dataclasses import replace

    members = min(scenario.members, 500 if scenario.kind == "idle" else 200)
    senders = min(scenario.senders, members)
    rooms = min(scenario.rooms, max(1, members // 10))
    return replace(scenario, members=members, senders=senders, rooms=rooms,
                   duration_s=min(scenario.duration_s, 2.0))


if __name__ == "__main__":
    sys.exit(main())
