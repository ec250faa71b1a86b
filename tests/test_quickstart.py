"""The README's quick start works as written, from a fresh clone, on a system Python.

The first command (make a venv, install, run the server) runs here from a
``git clone`` of HEAD, on the distribution's Python where the machine has one
(Debian's ``/usr/bin/python3``, which refuses ``pip install`` outside a virtual
environment), and must leave a server that answers HELLO and stops cleanly on
Ctrl-C. The second command (install the dev tools, run every test) is what
``.ci/run`` runs, verbatim: checked here, run by CI.

Only ``--port 0`` is added to the first command, so that the test never
depends on port 7878 being free.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from server_harness import HOST, ROOT

from chatproto import Connection, Sender
from chatproto.messages import Hello, Welcome

README = (ROOT / "README.md").read_text(encoding="utf-8")
SYSTEM_PYTHON = Path("/usr/bin/python3")
INSTALL_TIMEOUT_S = 420.0
"""pip fetches construct, pydantic and the rest from the package index."""


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, flags=re.DOTALL)


def quick_start_python_dir() -> Path:
    """Where the ``python3`` of the quick start lives: the distribution's, as on a stock
    machine, or (with no usable one: 3.11+ with venv) the one running the tests."""
    if SYSTEM_PYTHON.exists():
        check = "import ensurepip, sys; sys.exit(sys.version_info < (3, 11))"
        if subprocess.run([str(SYSTEM_PYTHON), "-c", check], capture_output=True,
                          check=False).returncode == 0:
            return SYSTEM_PYTHON.parent
    return Path(sys.executable).parent


def clean_environment(python_dir: Path) -> dict[str, str]:
    """This process's environment without its venv, ``python_dir`` first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE")}
    env["PATH"] = f"{python_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_quick_start_is_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in command for command in commands), "each is one line to paste"
    serve, test = commands
    assert serve.endswith("chatproto-server"), "the first command runs the server"
    assert "pytest" in test and "[dev]" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    executed = [line.strip() for line in ci.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert quick_start_commands()[1] in executed


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)
def test_the_first_command_serves_from_a_fresh_clone(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is needed to make a fresh clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
                   check=True, timeout=120)
    serve = quick_start_commands()[0] + " --port 0"
    python_dir = quick_start_python_dir()
    process = subprocess.Popen(
        ["bash", "-c", serve], cwd=clone, env=clean_environment(python_dir),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)  # its own process group, as a terminal gives it
    output: list[str] = []
    port_seen = threading.Event()
    port = 0

    def read_output() -> None:
        nonlocal port
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            output.append(line)
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if match and not port:
                port = int(match.group(1))
                port_seen.set()
        port_seen.set()  # the output ended: the command failed

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        port_seen.wait(INSTALL_TIMEOUT_S)
        assert port, "the server never said where it listens:\n" + "\n".join(output[-40:])
        venv_config = (clone / ".venv" / "pyvenv.cfg").read_text(encoding="utf-8")
        assert f"home = {python_dir}" in venv_config, venv_config
        welcome = hello(port)
        assert welcome.nick == "quickstart"
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=30) == 0, "\n".join(output[-40:])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        reader.join(timeout=10)
    assert not any("Traceback" in line for line in output), "\n".join(output[-40:])


def hello(port: int) -> Welcome:
    """HELLO as ``quickstart`` over a plain socket; the server's WELCOME."""
    conn = Connection(Sender.CLIENT)
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(conn.send(Hello(request_id=1, min_version=1, max_version=1,
                                     nick="quickstart", client_name="quick start test")))
        while True:
            data = sock.recv(65536)
            conn.receive_data(data)
            for event in conn.events():
                if isinstance(event, Welcome):
                    return event
            assert data, "the server closed the connection before WELCOME"
