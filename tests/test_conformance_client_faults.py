"""The conformance kit's client suite against deliberately faulty clients.

Each client of ``tests/faulty_clients.py`` is the reference client with one bug
that breaks the requirements in ``Fault.breaks``. For each one, the kit's client
suite, on the cases the fault shows in (``Fault.cases``), must report exactly
those requirements as broken (FAIL for a MUST, WARN for a SHOULD or MAY) and
pass every other case it runs: a requirement missing means the kit lets the bug
through; an extra one means it blames a rule the client did not break.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from faulty_clients import FAULTS, ROOT

from chatproto_spec.requirements import Level, load_requirements

FAULTY_CLIENTS = Path(__file__).resolve().parent / "faulty_clients.py"
KIT_TIMEOUT_S = 120.0


@pytest.mark.timeout(KIT_TIMEOUT_S + 30)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_kit_blames_exactly_the_rule_the_faulty_client_breaks(fault: str,
                                                              tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    command = [sys.executable, "-m", "conformance", "client", "-q", "-k", FAULTS[fault].cases,
               "--json", str(report_path), "--", sys.executable, str(FAULTY_CLIENTS), fault,
               "{host}:{port}", "--nick", "kitclient", "--json", "--reconnect"]
    kit = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                         timeout=KIT_TIMEOUT_S, check=False)
    output = kit.stdout + kit.stderr
    assert report_path.exists(), f"no JSON report (exit {kit.returncode}):\n{output}"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    cases = report["cases"]
    blamed = {v["requirement"] for case in cases for v in case["violations"]}
    assert blamed == FAULTS[fault].breaks, output
    levels = {load_requirements()[req].level for req in FAULTS[fault].breaks}
    bad = "FAIL" if Level.MUST in levels else "WARN"
    outcomes = {case["id"]: case["outcome"] for case in cases}
    assert bad in outcomes.values(), output
    assert set(outcomes.values()) <= {"PASS", bad}, output
    assert kit.returncode == (1 if bad == "FAIL" else 0), output
