"""The conformance kit against deliberately faulty servers: it catches each fault, and only it.

Each server of ``tests/faulty_servers.py`` is the reference server with one bug
that breaks the requirements in ``Fault.breaks``. For each one, the kit's
server suite (``python -m conformance server``, slow cases skipped) must exit
with status 1 and report FAIL for exactly those requirements: a requirement
missing means the kit does not catch the bug; an extra one means it blames a
rule the server did not break, which would send an implementer looking in the
wrong place.

The kit runs take seconds to a minute each (a fault makes the kit wait for
answers that never come), so the selected faults run concurrently, a few at a
time, as soon as the first test of this module starts; each test then waits
for its own run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from faulty_servers import FAULTS
from server_harness import ROOT, HarnessError, ServerProcess

from chatproto_spec.requirements import Level, load_requirements

FAULTY_SERVERS = Path(__file__).resolve().parent / "faulty_servers.py"
OPER = "kitop:kitpass"
KIT_TIMEOUT_S = 300.0
"""Upper bound for one kit run (the kit bounds every case; this bounds the kit)."""
KIT_TIMEOUT_SCALE = 0.5
"""The kit's waits, halved: a faulty server is the reference server on loopback, which
answers in milliseconds, and most of a fault's run is the kit waiting out the answers
its bug never sends."""
CONCURRENT_RUNS = max(2, min(6, 3 * (os.cpu_count() or 1)))
TEST_TIMEOUT_S = 1200
"""A test may wait for the runs queued before its own."""
BAD_OUTCOMES = ("FAIL", "WARN", "ERROR", "FLAKY")


@dataclass
class KitRun:
    """One kit run against one faulty server, and what it reported."""

    fault: str
    status: int | None = None
    """The kit's exit status; None when it did not run to the end."""
    report: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    server_log: str = ""
    duration_s: float = 0.0

    @property
    def failed(self) -> set[str]:
        """The requirements the kit reported as FAIL."""
        return {req for req, info in self.report.get("requirements", {}).items()
                if info["outcome"] == "FAIL"}

    @property
    def violated(self) -> set[str]:
        """The MUSTs named by the violations of failed cases, cited by the case or not."""
        requirements = load_requirements()
        return {violation["requirement"] for case in self.report.get("cases", [])
                if case["outcome"] in ("FAIL", "FLAKY") for violation in case["violations"]
                if requirements[violation["requirement"]].level is Level.MUST}

    def explain(self) -> str:
        """The cases that did not pass, with the kit's messages, for an assertion message."""
        lines = []
        for case in self.report.get("cases", []):
            if case["outcome"] not in BAD_OUTCOMES:
                continue
            lines.append(f"  {case['outcome']} {case['id']}")
            lines += [f"      {v['requirement']}: {v['message']}" for v in case["violations"]]
            if case["detail"]:
                lines.append("      " + case["detail"].strip().splitlines()[-1])
        lines.append(f"  kit exit status {self.status}, {self.duration_s:.1f} s")
        if not self.report:
            lines.append("  no JSON report; kit output:\n" + self.output[-3000:])
        log = self.server_log.splitlines()
        # The log of a kit run is long: show its problems, or its end if the run broke off.
        shown = [line for line in log if "Traceback" in line or " ERROR " in line][:10] \
            if self.report else log[-15:]
        if shown:
            lines.append("  server log:\n" + "\n".join("    " + line for line in shown))
        return "\n".join(lines)


def run_kit(fault: str, workdir: Path) -> KitRun:
    """Start the faulty server, run the kit's server suite against it, stop the server."""
    run = KitRun(fault)
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)
    report_path = workdir / "report.json"
    # python tests/faulty_servers.py FAULT instead of python -m reference_server.
    server = ServerProcess(data_dir, "--oper", OPER, entry=(str(FAULTY_SERVERS), fault))
    started = time.monotonic()
    try:
        asyncio.run(server.start())
        command = [sys.executable, "-m", "conformance", "server", f"127.0.0.1:{server.port}",
                   "--oper", OPER, "--skip-slow", "--timeout-scale", str(KIT_TIMEOUT_SCALE),
                   "-q", "--json", str(report_path)]
        try:
            kit = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                 timeout=KIT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            run.output = f"the kit did not finish within {KIT_TIMEOUT_S:.0f} s\n{exc.stdout!r}"
        else:
            run.status = kit.returncode
            run.output = kit.stdout + kit.stderr
            if report_path.exists():
                run.report = json.loads(report_path.read_text(encoding="utf-8"))
    except HarnessError as exc:
        run.output = f"the faulty server did not start: {exc}"
    finally:
        server.close()
        run.server_log = server.stderr_text()
        run.duration_s = time.monotonic() - started
    return run


def _selected_faults(session: pytest.Session) -> list[str]:
    faults = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if isinstance(item, pytest.Function) and item.module is not None \
                and item.module.__name__ == __name__ and callspec is not None:
            fault = callspec.params.get("fault")
            if isinstance(fault, str) and fault not in faults:
                faults.append(fault)
    return faults


@pytest.fixture(scope="module")
def kit_runs(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[KitRun]]]:
    """Every selected fault's kit run, started at once, CONCURRENT_RUNS at a time."""
    executor = ThreadPoolExecutor(CONCURRENT_RUNS, thread_name_prefix="kit-run")
    runs = {fault: executor.submit(run_kit, fault, tmp_path_factory.mktemp(fault))
            for fault in _selected_faults(request.session)}
    try:
        yield runs
    finally:
        for future in runs.values():
            future.cancel()
        executor.shutdown(wait=True)


def test_every_fault_breaks_musts_of_the_spec() -> None:
    """A fault's requirements exist and are MUSTs, so the kit must FAIL (not WARN) them."""
    requirements = load_requirements()
    assert len(FAULTS) >= 10
    for name, fault in FAULTS.items():
        assert fault.breaks, name
        assert fault.description and fault.patch.__doc__, name
        for req in fault.breaks:
            assert req in requirements, f"{name}: {req} is not a requirement of the spec"
            assert requirements[req].level is Level.MUST, f"{name}: {req} is not a MUST"


def test_faulty_servers_script_lists_the_faults_when_asked_for_none() -> None:
    result = subprocess.run([sys.executable, str(FAULTY_SERVERS)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    for name in FAULTS:
        assert name in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_kit_fails_the_faulty_server_on_exactly_the_rule_it_breaks(
        fault: str, kit_runs: dict[str, Future[KitRun]]) -> None:
    run = kit_runs[fault].result()
    expected = FAULTS[fault].breaks
    assert run.status == 1, (
        f"{fault} ({FAULTS[fault].description}): the kit exited with {run.status}, not 1\n"
        f"{run.explain()}")
    missed, unrelated = sorted(expected - run.failed), sorted(run.failed - expected)
    assert run.failed == expected, (
        f"{fault} ({FAULTS[fault].description}) breaks {sorted(expected)}; the kit failed "
        f"{sorted(run.failed)} (missed {missed}, unrelated {unrelated}):\n{run.explain()}")
    # A case may also fail on a requirement it does not cite, which the per-requirement
    # table leaves out; that blames an unrelated rule all the same.
    uncited = sorted(run.violated - expected)
    assert not uncited, (
        f"{fault} ({FAULTS[fault].description}) breaks {sorted(expected)}; failed cases also "
        f"name {uncited}:\n{run.explain()}")
