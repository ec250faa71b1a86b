"""The attack command, short: ``bench/attacks.py`` runs three of its quick attacks.

The whole run is by hand (``python bench/attacks.py``, about a minute); this one
proves the command starts its own servers, replays an attack over the network and
one without it, and reports each as held (issue 11: u64 fields at 2^64-1 reach
SQLite, CP-ERR-8; moderation follows the connection across NICK, CP-OPER-10; a
CLOSED ``Connection`` buffers nothing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from server_harness import ROOT

ATTACKS = ROOT / "bench" / "attacks.py"
QUICK = ["u64_edge", "moderation_after_nick", "closed_connection"]


def test_quick_attacks_are_held(tmp_path: Path) -> None:
    report_file = tmp_path / "attacks.json"
    only = [arg for name in QUICK for arg in ("--only", name)]
    done = subprocess.run([sys.executable, str(ATTACKS), *only, "--json", str(report_file)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(report_file.read_text())
    assert [row["attack"] for row in rows] == QUICK
    assert all(row["held"] for row in rows), done.stdout
    by_name = {row["attack"]: row for row in rows}
    assert by_name["u64_edge"]["figures"]["answers"][1] == "SEND_ROOM OK"
    assert by_name["moderation_after_nick"]["figures"]["heard"] == []
    assert by_name["closed_connection"]["figures"]["server_kib"] < 1024
    # The table: a header, then one row per attack with its before figure and verdict.
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("| attack (issue 11 item) | measured now | before the fixes |")
    assert len(lines) == 2 + len(QUICK)
    assert all("| held: " in line for line in lines[2:])


def test_every_item_of_the_issue_has_an_attack() -> None:
    listed = subprocess.run([sys.executable, str(ATTACKS), "--list"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    items = {int(line.split("item ")[1].split(":")[0]) for line in listed.stdout.splitlines()}
    assert items == set(range(1, 11))
