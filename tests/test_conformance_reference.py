"""The conformance kit against the unmodified reference server: everything passes.

The kit runs as its users run it (``python -m conformance server HOST:PORT``)
against ``python -m reference_server``: every case, the slow ones included
(keepalive and idle timeout, with the server's timers shortened so they take
seconds), then the TLS cases against the server serving TLS with a throw-away
CA (trustme). Every case must PASS or be skipped, with exit status 0, and the
JUnit, JSON and HTML reports must say which kit, which spec and which target.
The full run is the one the test guide shows: it must end with the summary the
guide renders from the registry (conformance/guide_blocks.py).

That the kit also fails what it should is shown by test_conformance_faults.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeServerProcess
from server_harness import HOST, ROOT, Pki

import conformance
from chatproto import PROTOCOL_VERSION
from conformance.guide_blocks import render_summary
from conformance.registry import all_cases

OPER = "kitop:kitpass"
KIT_TIMEOUT_S = 500.0
BAD_OUTCOMES = ("FAIL", "WARN", "ERROR", "FLAKY")


@dataclass
class Reports:
    status: int
    output: str
    json: dict[str, Any]
    junit: Path
    html: Path

    def summary(self) -> str:
        """The last line the kit printed: cases, outcomes, requirements, exit status."""
        lines = [line for line in self.output.splitlines() if _SUMMARY.match(line)]
        assert lines, f"the kit printed no summary line:\n{self.output[-3000:]}"
        return lines[-1]

    def bad_cases(self) -> list[str]:
        """The cases that did not pass or skip, with the kit's messages."""
        lines = []
        for case in self.json["cases"]:
            if case["outcome"] in BAD_OUTCOMES:
                lines.append(f"{case['outcome']} {case['id']}")
                lines += [f"    {v['requirement']}: {v['message']}" for v in case["violations"]]
                if case["detail"]:
                    lines.append("    " + case["detail"].strip().replace("\n", "\n    "))
        return lines


_SUMMARY = re.compile(r"^\d+ case\(s\).* in \d+\.\d s: ")


def _without_time(summary: str) -> str:
    return re.sub(r" in \d+\.\d s: ", " in ... s: ", summary)


def _guide_summary(block: str) -> str:
    return next(line for line in block.splitlines() if _SUMMARY.match(line))


def run_kit(target: str, out: Path, *options: str) -> Reports:
    """``python -m conformance server TARGET`` with every report written into ``out``."""
    junit, report, html = out / "kit.xml", out / "kit.json", out / "kit.html"
    command = [sys.executable, "-m", "conformance", "server", target, "--oper", OPER,
               "-q", "--junit", str(junit), "--json", str(report), "--html", str(html),
               *options]
    kit = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                         timeout=KIT_TIMEOUT_S, check=False)
    output = kit.stdout + kit.stderr
    assert report.exists(), f"the kit wrote no JSON report (exit {kit.returncode}):\n{output}"
    return Reports(kit.returncode, output, json.loads(report.read_text(encoding="utf-8")),
                   junit, html)


def assert_all_passed(reports: Reports) -> None:
    bad = reports.bad_cases()
    assert not bad, "the reference server should pass every case:\n" + "\n".join(bad)
    assert reports.status == 0, f"kit exit status {reports.status}:\n{reports.output[-3000:]}"
    outcomes = {info["outcome"] for info in reports.json["requirements"].values()}
    assert not outcomes & set(BAD_OUTCOMES), reports.json["requirements"]


def assert_reports_name_kit_spec_and_target(reports: Reports, target: str) -> None:
    data = reports.json
    assert (data["kit_version"], data["spec_version"], data["target"]) == (
        conformance.__version__, PROTOCOL_VERSION, target)
    assert data["exit_status"] == 0 and data["suite"] == "server"
    properties = {p.get("name"): p.get("value")
                  for p in ET.parse(reports.junit).getroot().iter("property")}
    assert properties == {"kit_version": conformance.__version__,
                          "spec_version": str(PROTOCOL_VERSION), "target": target}
    page = reports.html.read_text(encoding="utf-8")
    for text in (f"chatproto-conformance {conformance.__version__}",
                 f"chatproto v{PROTOCOL_VERSION}", target):
        assert text in page, f"the HTML report does not say {text!r}"


@pytest.mark.slow
@pytest.mark.timeout(KIT_TIMEOUT_S + 60)
def test_kit_passes_the_reference_server_every_case(
        make_server_process: MakeServerProcess, tmp_path: Path) -> None:
    server = make_server_process("--oper", OPER, "--keepalive-interval-s", "1",
                                 "--idle-timeout-s", "3", "--event-loop", "uvloop")
    asyncio.run(server.start())
    target = f"{HOST}:{server.port}"
    reports = run_kit(target, tmp_path)
    assert any("loop=uvloop" in line for line in server.stderr_lines), server.stderr_text()
    assert_all_passed(reports)
    cases = reports.json["cases"]
    assert any(case["outcome"] == "PASS" for case in cases)
    outcomes = {case["id"]: case["outcome"] for case in cases}
    slow = [case.id for case in all_cases() if case.suite == "server" and case.slow]
    assert slow and all(outcomes.get(case) == "PASS" for case in slow), (
        {case: outcomes.get(case) for case in slow})
    assert reports.json["counts"]["PASS"] >= len(cases) // 2, reports.json["counts"]
    assert_reports_name_kit_spec_and_target(reports, target)
    # The test guide shows this very run (an operator, no TLS, no shutdown command).
    assert _without_time(reports.summary()) == _without_time(_guide_summary(render_summary(
        ["oper"]))), f"the guide's summary is not what the run printed:\n{reports.output}"


@pytest.mark.timeout(KIT_TIMEOUT_S + 60)
def test_kit_passes_the_reference_server_on_asyncios_loop(
        make_server_process: MakeServerProcess, tmp_path: Path) -> None:
    """The full run above is on uvloop (what `.[fast]` gives); asyncio's own loop passes
    the same cases (the slow ones aside, which test timers rather than transports)."""
    server = make_server_process("--oper", OPER, "--event-loop", "asyncio")
    asyncio.run(server.start())
    assert any("loop=asyncio" in line for line in server.stderr_lines), server.stderr_text()
    reports = run_kit(f"{HOST}:{server.port}", tmp_path, "--skip-slow")
    assert_all_passed(reports)
    assert reports.json["counts"]["PASS"] >= len(reports.json["cases"]) // 2


@pytest.mark.timeout(KIT_TIMEOUT_S + 60)
def test_kit_passes_the_reference_server_over_tls(
        make_server_process: MakeServerProcess, pki: Pki, tmp_path: Path) -> None:
    server = make_server_process("--oper", OPER, "--tls-cert", str(pki.cert),
                                 "--tls-key", str(pki.key))
    asyncio.run(server.start())
    target = f"{HOST}:{server.port}"
    reports = run_kit(target, tmp_path, "--cafile", str(pki.ca_pem), "--req", "CP-SEC-*",
                      "--req", "CP-HS-*", "--req", "CP-KEEP-1")
    assert_all_passed(reports)
    passed = {req for req, info in reports.json["requirements"].items()
              if info["outcome"] == "PASS"}
    assert {"CP-HS-1", "CP-KEEP-1"} <= passed, sorted(passed)
    assert any(req.startswith("CP-SEC-") for req in passed), (
        f"no CP-SEC requirement was checked over TLS; passed: {sorted(passed)}")
    assert_reports_name_kit_spec_and_target(reports, target)


@pytest.mark.timeout(KIT_TIMEOUT_S + 60)
def test_kit_passes_the_reference_client_every_case(tmp_path: Path) -> None:
    """The client suite, as its users run it, against ``python -m reference_client``."""
    report = tmp_path / "client.json"
    command = [sys.executable, "-m", "conformance", "client", "-q", "--json", str(report),
               "--", sys.executable, "-m", "reference_client", "{host}:{port}",
               "--nick", "kitclient", "--json", "--reconnect"]
    kit = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                         timeout=KIT_TIMEOUT_S, check=False)
    output = kit.stdout + kit.stderr
    assert report.exists(), f"the kit wrote no JSON report (exit {kit.returncode}):\n{output}"
    reports = Reports(kit.returncode, output, json.loads(report.read_text(encoding="utf-8")),
                      tmp_path / "none.xml", tmp_path / "none.html")
    assert_all_passed(reports)
    data = reports.json
    assert data["suite"] == "client" and "reference_client" in data["target"]
    # With --reconnect nothing is SKIP: the reconnect cases (CP-CLOSE-8, CP-HIST-9) run too.
    assert data["counts"]["PASS"] == len(data["cases"]), data["counts"]


@pytest.mark.timeout(KIT_TIMEOUT_S + 60)
def test_kit_checks_the_orderly_shutdown_last(
        make_server_process: MakeServerProcess, tmp_path: Path) -> None:
    """--shutdown-command: the CP-CLOSE-7 case runs after the others, and the server exits."""
    server = make_server_process("--oper", OPER)
    asyncio.run(server.start())
    target = f"{HOST}:{server.port}"
    reports = run_kit(target, tmp_path, "--req", "CP-CLOSE-*",
                      "--shutdown-command", f"kill -TERM {server.pid}")
    assert_all_passed(reports)
    ids = [case["id"] for case in reports.json["cases"]]
    assert ids[-1] == "server.shutdown.orderly_shutdown_tells_every_connection", ids
    assert reports.json["cases"][-1]["outcome"] == "PASS"
    assert len(ids) > 1, "the selection should hold cases that run before the shutdown"
    assert asyncio.run(server.wait()) == 0
