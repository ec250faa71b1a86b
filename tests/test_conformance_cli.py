"""What ``chatproto-conformance`` tells its user in the terminal, run as users run it.

A SKIP line says why the case was skipped (and which case blocks it); ``--skip-slow``
leaves the slow cases out and says how many, the same in the banner and the
summary; ``--repeat`` runs the shutdown case once, after every round, and a case
that could not always be run is ERROR, not FLAKY; a client that cannot be started
is said to be so, with status 2 and no requirement claimed as checked; and a
reader that stops early (``| head``) ends the kit quietly. The command line and
the pytest plugin take the same options, declared once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeServerProcess
from server_harness import HOST, ROOT

from conformance.cli import _parser
from conformance.options import OPTIONS, KitOptions
from conformance.pytest_plugin import pytest_addoption
from conformance.registry import all_cases, select

KIT_TIMEOUT_S = 120.0
SUMMARY = re.compile(r"^\d+ case\(s\).* in \d+\.\d s: .*; (\d+) requirement\(s\) checked; "
                     r"exit status (\d)$", re.MULTILINE)


def _kit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=KIT_TIMEOUT_S, check=False)


def _summary(output: str) -> re.Match[str]:
    match = SUMMARY.search(output)
    assert match, f"no summary line in:\n{output}"
    return match


# ---------------------------------------------------------------- SKIP lines


@pytest.mark.timeout(KIT_TIMEOUT_S + 30)
def test_skip_lines_name_the_case_that_blocks_them(tmp_path: Path) -> None:
    """A client whose first frame is broken fails the first case; every later case is
    SKIP, and its line names that case and the requirement it failed on."""
    client = tmp_path / "garbage_client.py"
    client.write_text(
        "import socket, sys\n"
        "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
        "s.sendall(bytes([0, 0, 0, 4, 0x7f, 0x7f, 0, 0]))  # a length too small for a frame\n"
        "s.recv(1)\n", encoding="utf-8")
    result = _kit("client", "--", sys.executable, str(client), "{host}", "{port}")
    assert result.returncode == 1, result.stdout + result.stderr
    first = "client.basics.hello_first_and_well_formed"
    assert re.search(rf"^\[ *1/\d+\] FAIL  {re.escape(first)} ", result.stdout, re.MULTILINE)
    skips = [line for line in result.stdout.splitlines() if re.match(r"\[ *\d+/\d+\] SKIP", line)]
    assert skips, result.stdout
    blocked = re.compile(r" \d+ ms: blocked: the handshake does not work "
                         rf"\({re.escape(first)} failed on CP-[A-Z]+-\d+\)$")
    assert all(blocked.search(line) for line in skips), "\n".join(skips)


@pytest.mark.timeout(KIT_TIMEOUT_S + 30)
def test_skip_slow_leaves_slow_cases_out_and_counts_them_alike_everywhere(
        make_server_process: MakeServerProcess, tmp_path: Path) -> None:
    """--skip-slow: the slow cases are not run and not listed; the banner, the summary,
    --list and the JSON report give the same numbers. A SKIP line says what it needs."""
    server = make_server_process()
    asyncio.run(server.start())
    selected = select(all_cases(), suite="server", requirement_patterns=["CP-KEEP-*", "CP-SEC-1"])
    fast = [c.id for c in selected if not c.slow]
    slow = [c.id for c in selected if c.slow]
    assert fast and slow, "the selection must hold slow and fast cases"
    phrase = f"{len(fast)} case(s) ({len(slow)} slow case(s) deselected by --skip-slow)"
    report = tmp_path / "kit.json"
    result = _kit("server", f"{HOST}:{server.port}", "--req", "CP-KEEP-*", "--req", "CP-SEC-1",
                  "--skip-slow", "--json", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"server suite, {phrase}, target " in lines[0]
    assert _summary(result.stdout).group(0).startswith(f"{phrase} in ")
    progress = [line for line in lines if re.match(r"\[ *\d+/\d+\] ", line)]
    assert len(progress) == len(fast) and all(f"/{len(fast)}]" in line for line in progress)
    assert not [case for case in slow if case in result.stdout]
    tls = [line for line in progress if "server.tls." in line]
    assert tls and all(line.endswith("(give the kit --tls or --cafile)") for line in tls), tls
    data = json.loads(report.read_text(encoding="utf-8"))
    assert [case["id"] for case in data["cases"]] == fast
    assert data["deselected"] == slow
    listed = _kit("server", "--list", "--req", "CP-KEEP-*", "--req", "CP-SEC-1", "--skip-slow")
    assert listed.stdout.splitlines()[-1] == phrase
    assert not [case for case in slow if case in listed.stdout]


@pytest.mark.timeout(KIT_TIMEOUT_S + 30)
def test_skip_slow_under_pytest_deselects_the_slow_cases(
        make_server_process: MakeServerProcess, tmp_path: Path) -> None:
    server = make_server_process()
    asyncio.run(server.start())
    selected = select(all_cases(), suite="server", requirement_patterns=["CP-KEEP-*"])
    fast, slow = [c for c in selected if not c.slow], [c for c in selected if c.slow]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "conformance", "-p", "no:cacheprovider",
         "--target", f"{HOST}:{server.port}", "--req", "CP-KEEP-*", "--skip-slow", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=KIT_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"\b{len(fast)} passed, {len(slow)} deselected\b", result.stdout), (
        result.stdout)


# ---------------------------------------------------------------- --repeat


@pytest.mark.timeout(KIT_TIMEOUT_S + 30)
def test_repeat_with_shutdown_runs_the_shutdown_case_once_after_every_round(
        make_server_process: MakeServerProcess, tmp_path: Path) -> None:
    """--repeat 3 --shutdown-command: the other case runs three times against a live
    server, then the shutdown case once; nothing is FLAKY, and the banner, the progress
    total and the summary count the same cases (--skip-slow on, as a user would)."""
    server = make_server_process()
    asyncio.run(server.start())
    other = "server.framing.server_frames_decode_exactly_and_carry_safe_text"
    shutdown = "server.shutdown.orderly_shutdown_tells_every_connection"
    report = tmp_path / "kit.json"
    result = _kit("server", f"{HOST}:{server.port}", "--case", other, "--case", shutdown,
                  "--repeat", "3", "--skip-slow", "--shutdown-command", f"kill -TERM {server.pid}",
                  "--json", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    progress = [line for line in lines if re.match(r"\[ *\d+/\d+\] ", line)]
    assert [line.split()[1:3] for line in progress] == [["PASS", other]] * 3 + [
        ["PASS", shutdown]], result.stdout
    assert all("/4]" in line for line in progress)
    assert "server suite, 2 case(s), target " in lines[0]
    assert _summary(result.stdout).group(0).startswith("2 case(s) in ")
    runs = {case["id"]: case for case in json.loads(report.read_text("utf-8"))["cases"]}
    assert {case_id: case["outcome"] for case_id, case in runs.items()} == {
        other: "PASS", shutdown: "PASS"}
    assert server.proc is not None and server.proc.wait(timeout=15) is not None


def _results(*outcomes: Any) -> list[Any]:
    from conformance.runner import CaseResult

    (case,) = [c for c in all_cases() if c.id == ("server.basics.ping_answered_with_same_token_and_"
                                                        "request_id")]
    return [CaseResult(case, outcome, detail=f"run {index}") for index, outcome in
            enumerate(outcomes, 1)]


def test_a_case_the_kit_could_not_always_run_is_error_not_flaky() -> None:
    """Runs in ERROR (the target gone) decide nothing: they make the case ERROR, and FLAKY
    stays for verdicts that differ; a MUST found broken in one run stays FAIL."""
    from conformance.outcomes import Outcome
    from conformance.runner import _merge

    p, f, e, s = Outcome.PASS, Outcome.FAIL, Outcome.ERROR, Outcome.SKIP
    unreachable = _merge(_results(p, e, e))
    assert unreachable.outcome is e and unreachable.runs == [p, e, e]
    assert unreachable.detail.startswith("outcome varied over 3 runs: PASS 1x, ERROR 2x\nrun 2")
    assert _merge(_results(p, f, e)).outcome is Outcome.FLAKY
    assert _merge(_results(p, s)).outcome is Outcome.FLAKY
    assert _merge(_results(f, e)).outcome is f
    assert _merge(_results(p, p)).outcome is p and _merge(_results(p, p)).detail == "run 1"


# ---------------------------------------------------------------- a client that cannot start


def test_missing_client_command_is_said_so_with_status_2(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-client"
    result = _kit("client", "--", str(missing), "{host}", "{port}")
    assert result.returncode == 2
    assert result.stderr == (f"chatproto-conformance: the client could not be started: "
                             f"{missing}: no such file\n")
    assert result.stdout == "", "nothing ran, so nothing may be claimed"
    on_path = _kit("client", "--", "no-such-chatproto-client", "{host}", "{port}")
    assert on_path.returncode == 2
    assert on_path.stderr.endswith("no-such-chatproto-client: no such program on PATH\n")
    not_executable = tmp_path / "client.txt"
    not_executable.write_text("not a program\n", encoding="utf-8")
    plain = _kit("client", "--", str(not_executable))
    assert plain.returncode == 2 and plain.stderr.endswith(": not an executable file\n")


@pytest.mark.parametrize(("content", "why"), [
    (b"\x00\x01\x02\x03", r"could not be started \(\[Errno 8\] Exec format error"),
    (b"#!/bin/sh\nexit 3\n", r"never connected \(it exited with status 3 before connecting\)"),
])
def test_client_that_does_not_start_checks_no_requirement(
        tmp_path: Path, content: bytes, why: str) -> None:
    """The program exists but cannot run, or exits at once: the first case is ERROR, the
    others SKIP; the summary says the client did not start and claims nothing checked."""
    client = tmp_path / "client"
    client.write_bytes(content)
    client.chmod(0o755)
    result = _kit("client", "--", str(client), "{host}", "{port}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(rf"^Blocked: the client {why}.*; the cases that build on it were SKIP$",
                     result.stdout, re.MULTILINE), result.stdout
    summary = _summary(result.stdout)
    assert (summary.group(1), summary.group(2)) == ("0", "2"), summary.group(0)
    assert re.search(r": \d+ SKIP, 1 ERROR;", summary.group(0)), summary.group(0)


# ---------------------------------------------------------------- | head


def _kit_with_closed_stdout(*args: str, after_lines: int) -> tuple[int, str]:
    """Run the kit, close its stdout after reading ``after_lines`` lines (as ``head``
    does), and return its exit status and stderr."""
    kit = subprocess.Popen([sys.executable, "-m", "conformance", *args], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert kit.stdout is not None and kit.stderr is not None
    try:
        for _ in range(after_lines):
            kit.stdout.readline()
        kit.stdout.close()
        status = kit.wait(timeout=KIT_TIMEOUT_S)
        return status, kit.stderr.read()
    finally:
        if kit.poll() is None:
            kit.kill()
            kit.wait()
        kit.stderr.close()


@pytest.mark.timeout(KIT_TIMEOUT_S + 30)
def test_output_closed_mid_run_ends_the_kit_quietly() -> None:
    """``chatproto-conformance server ... | head -1``: the first case takes a while (the
    target accepts connections and never answers), so its line meets a closed pipe."""
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen(16)
        status, stderr = _kit_with_closed_stdout(
            "server", f"{HOST}:{silent.getsockname()[1]}", "--timeout-scale", "0.5",
            "--case", "server.basics.ping_answered_with_same_token_and_request_id",
            after_lines=1)
    assert stderr == ""
    assert status == 2


def test_listing_into_a_closed_pipe_ends_quietly() -> None:
    status, stderr = _kit_with_closed_stdout("server", "--list", after_lines=0)
    assert stderr == ""
    assert status == 2


# ---------------------------------------------------------------- options, declared once


def test_every_option_is_read_alike_by_the_command_line_and_pytest() -> None:
    """Each declared option reaches KitOptions the same way through argparse and pytest:
    the CLI's server parser and pytest's parser both know every flag, with one default."""
    args = _parser().parse_args([
        "server", "h:1", "--oper", "op:pw", "--cafile", "ca.pem", "--timeout-scale", "2",
        "--shutdown-command", "kill -TERM 7", "--flood-budget", "1024"])
    from_cli = KitOptions.from_values(vars(args))
    assert from_cli == KitOptions(timeout_scale=2.0, oper=("op", "pw"), flood_budget=1024,
                                  tls=True, cafile="ca.pem",
                                  shutdown_command=["kill", "-TERM", "7"])
    plugin = argparse.ArgumentParser()  # pytest hands addoption's arguments to argparse

    class Group:
        def addoption(self, *flags: str, **settings: Any) -> None:
            plugin.add_argument(*flags, **settings)

    class Parser:
        def getgroup(self, name: str) -> Group:
            return Group()

    pytest_addoption(Parser())  # type: ignore[arg-type]
    parsed = plugin.parse_args([
        "--oper", "op:pw", "--cafile", "ca.pem", "--timeout-scale", "2",
        "--shutdown-command", "kill -TERM 7", "--flood-budget", "1024"])
    assert KitOptions.from_values(vars(parsed)) == from_cli
    defaults = _parser().parse_args(["server", "h:1"])
    pytest_defaults = vars(plugin.parse_args([]))
    for option in OPTIONS:
        assert getattr(defaults, option.dest) == option.default == pytest_defaults[option.dest]
    assert KitOptions.from_values(vars(defaults)) == KitOptions()


def test_oper_without_a_colon_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^--oper wants NAME:PASSWORD$"):
        KitOptions.from_values({"oper": "justaname"})
