"""The soak command, short: ``bench/soak.py`` against a server it starts itself.

The long run is by hand (``python bench/soak.py --duration 300``); this one
proves the command works and that a short run of random joins, parts, room
and private messages, quits and crashes loses, duplicates and reorders nothing
(CP-MSG-1, CP-MSG-10, CP-HIST-15 resume, CP-REQ-10 order).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from server_harness import ROOT

SOAK = ROOT / "bench" / "soak.py"


def test_short_soak_loses_nothing(tmp_path: Path) -> None:
    report_file = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(SOAK), "--duration", "10", "--clients", "30", "--seed", "7",
         "--json", str(report_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_file.read_text())
    assert (report["lost"], report["duplicated"], report["out_of_order"], report["extra"]) == (
        0, 0, 0, 0), done.stdout
    assert report["unexpected_errors"] == [], done.stdout
    # It did something of everything: reconnections, room and private traffic.
    assert report["connections"] > 30
    assert report["room_messages_sent"] > 0 and report["private_messages_sent"] > 0
    assert report["room_messages_delivered"] > report["room_messages_sent"]
    assert report["peak_server_rss_kib"] > 0
    assert "verdict               ok" in done.stdout
