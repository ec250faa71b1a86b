"""The server works under both event loops it may run on: asyncio's and uvloop's.

``pip install '.[fast]'`` makes the server use uvloop, whose transports are not
subclasses of asyncio's (an ``isinstance`` check once broke every connection
under it). The in-process server suite therefore runs a second time here, in a
child pytest with ``--event-loop uvloop``; the server processes the other tests
start use uvloop already (``--event-loop auto``, and the dev extra installs it);
``--event-loop`` makes a server process take either loop.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest
from conftest import ClientFactory, MakeServerProcess
from server_harness import ROOT

from chatproto.messages import Join
from reference_server.__main__ import event_loop_factory

UVLOOP_SUITE = (
    "tests/test_server_handshake.py",
    "tests/test_server_messages.py",
    "tests/test_server_rooms.py",
    "tests/test_server_history.py",
    "tests/test_server_limits.py",
    "tests/test_server_robustness.py",
    "tests/test_server_operators.py",
    "tests/test_server_accounts.py",
    "tests/test_server_tls.py",
    "tests/test_client_library.py",
    "tests/test_client_library_rooms.py",
)
"""Every module that runs the server in-process, and the client library against it."""


async def test_async_tests_run_on_the_chosen_loop(request: pytest.FixtureRequest) -> None:
    chosen = request.config.getoption("--event-loop")
    assert type(asyncio.get_running_loop()).__module__.split(".")[0] == chosen


@pytest.mark.timeout(600)
def test_the_in_process_server_suite_passes_under_uvloop() -> None:
    pytest.importorskip("uvloop")
    this_module = "tests/test_event_loops.py::test_async_tests_run_on_the_chosen_loop"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--event-loop",
         "uvloop", this_module, *UVLOOP_SUITE],
        cwd=ROOT, capture_output=True, text=True, timeout=560, check=False)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 200, summary


@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
async def test_the_server_process_serves_on_the_loop_it_is_told(
        make_server_process: MakeServerProcess, client_factory: ClientFactory,
        choice: str) -> None:
    server = await make_server_process("--event-loop", choice).start()
    assert any(f"loop={choice}" in line for line in server.stderr_lines), server.stderr_text()
    alice = await client_factory("alice", server=server)
    await alice.ok(Join(room="#loops"))


def test_auto_picks_uvloop_when_it_is_installed() -> None:
    pytest.importorskip("uvloop")
    assert event_loop_factory("auto") is not None
    assert event_loop_factory("asyncio") is None
