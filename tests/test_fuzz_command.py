"""The long fuzz command, bench/fuzz.py, starts, fuzzes and finds nothing in a second.

Its engine is atheris when installed (the ``fuzz`` extra) and hypothesis
otherwise; the hypothesis engine is also run on its own, so both paths are
known to work whichever is installed here. The three targets differ only in
the checker an input goes to: one target per test keeps this file short.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "bench" / "fuzz.py"
REPORT = re.compile(r"fuzz target=(\w+) engine=(\w+) seconds=\d+ executions=(\d+) .*crashes=(\d+)")


def _fuzz(tmp_path: Path, *args: str) -> re.Match[str]:
    result = subprocess.run(
        [sys.executable, str(FUZZ), "--seconds", "1", "--workdir", str(tmp_path), *args],
        capture_output=True, text=True, timeout=90, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = REPORT.search(result.stdout)
    assert report is not None, result.stdout
    return report


def test_fuzz_command_fuzzes_a_connection_and_finds_nothing(tmp_path: Path) -> None:
    report = _fuzz(tmp_path, "--target", "server")
    assert report.group(1) == "server"
    assert int(report.group(3)) > 0
    assert report.group(4) == "0"


def test_fuzz_command_runs_the_hypothesis_engine_without_atheris(tmp_path: Path) -> None:
    report = _fuzz(tmp_path, "--target", "client", "--engine", "hypothesis")
    assert report.group(1, 2) == ("client", "hypothesis")
    assert int(report.group(3)) > 0
    assert report.group(4) == "0"


def test_fuzz_command_replays_a_saved_input(tmp_path: Path) -> None:
    saved = tmp_path / "input"
    # Selector octets (decoder limit 4096, cut seed 5), then two PINGs and a bit.
    ping = bytes.fromhex("0000000900050000000702beef")
    saved.write_bytes(b"\x03\x05" + ping + ping + ping[:7])
    result = subprocess.run(
        [sys.executable, str(FUZZ), "--target", "decoder", "--reproduce", str(saved)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert "every property holds" in result.stdout
