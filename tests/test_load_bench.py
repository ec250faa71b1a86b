"""The relay benchmark, small: its frames, its delivery checks, and one short run of the command.

Speed is the benchmark's business (``python bench/load.py``); these tests only
prove that what it counts is counted right: its hand-built frames are
chatproto's, a member notices a repeated, reordered or echoed message, and a
short run against both servers delivers everything exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import loadgen
from server_harness import ROOT

from chatproto import encode
from chatproto.messages import PrivateMessage, RoomMessage

LOAD = ROOT / "bench" / "load.py"


def test_hand_built_frames_are_chatprotos() -> None:
    loadgen.check_frames()


def _room_message(seq: int, sent_ns: int = 1) -> bytes:
    return encode(RoomMessage(room="#r", seq=seq, msg_id=seq, timestamp_ms=0, sender="u000001",
                              client_msg_id=seq, history=False,
                              text=loadgen.message_text(sent_ns, seq).decode()))


def _private_message(counter: int) -> bytes:
    return encode(PrivateMessage(msg_id=counter, timestamp_ms=0, sender="u000002",
                                 client_msg_id=counter,
                                 text=loadgen.message_text(5, counter).decode()))


async def test_a_member_counts_room_messages_and_flags_order_and_echo() -> None:
    tally = loadgen.Tally()
    member = loadgen.Member(0, "u000000", tally, measure_latency=True)
    member.own_seqs.add(4)
    stream = b"".join(_room_message(seq) for seq in (1, 2, 2, 4, 3))
    for cut in range(0, len(stream), 7):  # TCP may cut anywhere
        member.data_received(stream[cut:cut + 7])
    assert member.received == 5
    assert tally.out_of_order == 2  # the second 2, and 3 after 4
    assert tally.echoed == 1  # 4 was its own
    assert len(tally.latencies_ns) == 5


async def test_a_member_checks_each_senders_private_counter() -> None:
    tally = loadgen.Tally()
    member = loadgen.Member(0, "u000000", tally, measure_latency=False)
    member.data_received(b"".join(_private_message(n) for n in (1, 2, 4)))
    assert member.private_received == 3
    assert tally.out_of_order == 1
    assert member.private_seen == {b"u000002": 4}


def test_a_short_run_delivers_everything_once_on_both_servers(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(LOAD), "--quick", "--scenario", "room-10x10",
         "--scenario", "private-pairs", "--deliveries", "3000", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "results.json").read_text())
    runs = {(r["scenario"], r["server"]): r for r in report["results"]}
    assert set(runs) == {(s, k) for s in ("room-10x10", "private-pairs")
                         for k in ("reference", "classic")}
    for run in runs.values():
        assert run["correct"], run
        assert run["deliveries"] == run["expected"] > 0
        assert run["server_cpu_s"] > 0
    assert "--msg-rate-burst" in runs[("room-10x10", "reference")]["flags"]
    assert set(report["classic_over_reference"]) == {"room-10x10", "private-pairs"}
    assert (tmp_path / "throughput.png").stat().st_size > 1000
    assert "| room-10x10 | reference |" in report["table_markdown"]
