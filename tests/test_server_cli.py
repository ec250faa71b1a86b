"""``python -m reference_server`` as a process: serving, signals, errors, hash-password."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import termios
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from server_tools import HOST, ROOT, CliServer, WireClient, server_command

import reference_server.__main__ as server_main
from chatproto import ErrorCode, Limits
from chatproto.messages import Bye, Error, Oper, Quit, Welcome
from reference_server.passwords import is_hash, verify_password


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run an async scenario in a fresh loop, bounded in time."""

    async def bounded() -> None:
        async with asyncio.timeout(60):
            await scenario()

    asyncio.run(bounded())


def _assert_clean_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


# ------------------------------------------------------------------- serving


def test_listening_line_and_welcome(tmp_path: Path) -> None:
    with CliServer(tmp_path) as server:
        listening = [line for line in server.stderr_lines if "listening on" in line]
        assert listening and f"listening on {HOST}:{server.port}" in listening[0]
        assert server.port != 0

        async def scenario() -> None:
            client = await WireClient.connect(server.port)
            try:
                welcome = await client.hello("alice")
                assert welcome.nick == "alice"
                assert welcome.version == 1
                assert not welcome.logged_in
                limits = {name: getattr(welcome, name) for name in Limits.model_fields}
                assert limits == Limits().model_dump()
            finally:
                await client.close()

        _run(scenario)
        server.send_signal(signal.SIGTERM)
        assert server.wait() == 0
    _assert_clean_stderr(server.stderr_text())
    assert (tmp_path / "chatproto.sqlite3").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_shuts_down_gracefully(tmp_path: Path, signum: int) -> None:
    with CliServer(tmp_path) as server:

        async def scenario() -> None:
            clients = [await WireClient.connect(server.port) for _ in range(3)]
            try:
                await clients[0].hello("alice")
                await clients[1].hello("bob")
                # clients[2] has not said HELLO: it is told too.
                server.send_signal(signum)
                for client in clients:
                    frames = await client.read_until_eof(timeout=15)
                    errors = [f for f in frames if isinstance(f, Error)]
                    assert len(errors) == 1, frames
                    error = errors[0]
                    assert frames[-1] is error, "nothing may follow a fatal ERROR"
                    assert error.code == 502
                    assert ErrorCode(error.code) is ErrorCode.SERVER_SHUTDOWN
                    assert error.fatal
                    assert error.request_id == 0
            finally:
                for client in clients:
                    await client.close()

        _run(scenario)
        assert server.wait() == 0
    _assert_clean_stderr(server.stderr_text())


async def _settled(port: int) -> None:
    """One HELLO/QUIT round trip: the server has run past its start-up (signal handlers)."""
    client = await WireClient.connect(port)
    try:
        await client.hello("probe")
        answer = await client.request(Quit(reason="done"))
        assert isinstance(answer[-1], Bye), answer
        await client.read_until_eof()
    finally:
        await client.close()


def test_signal_with_no_clients(tmp_path: Path) -> None:
    with CliServer(tmp_path) as server:
        _run(lambda: _settled(server.port))
        started = time.monotonic()
        server.send_signal(signal.SIGINT)
        assert server.wait() == 0
        # With nobody to tell, shutdown does not wait for the grace period (5 s).
        assert time.monotonic() - started < 4
    _assert_clean_stderr(server.stderr_text())


_PROBE = """
import logging, signal, sys
import reference_server.__main__ as entry

class Probe(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("listening on"):
            term = signal.getsignal(signal.SIGTERM)
            print(f"PROBE sigterm_default={term == signal.SIG_DFL}", file=sys.stderr, flush=True)

logging.getLogger("chatproto.server").addHandler(Probe())
sys.exit(entry.main(sys.argv[1:]))
"""


def test_signal_handlers_are_in_place_when_listening_is_announced(tmp_path: Path) -> None:
    with CliServer(tmp_path, entry=("-c", _PROBE)) as server:
        probes = [line for line in server.stderr_lines if line.startswith("PROBE ")]
        assert probes == ["PROBE sigterm_default=False"], server.stderr_text()
        # A signal sent right after the line must still mean a graceful stop.
        server.send_signal(signal.SIGTERM)
        assert server.wait() == 0


@pytest.mark.parametrize("level", [
    "DEBUG", "INFO",
    "WARNING", "ERROR",
])
def test_listening_line_at_every_log_level(tmp_path: Path, level: str) -> None:
    # Ready once any line names the bound port; then the documented line must be there.
    server = CliServer(tmp_path, "--log-level", level,
                       ready=re.compile(r"127\.0\.0\.1:(?P<port>\d+)"))
    try:
        server.start()
        _run(lambda: _settled(server.port))
        assert f"listening on {HOST}:{server.port}" in server.stderr_text()
    finally:
        server.close()


# -------------------------------------------------------------------- errors


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        command = server_command(tmp_path, "--port", str(port))  # the later --port wins
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chatproto-server: ")
    assert str(port) in lines[0] or "in use" in lines[0]


def test_missing_tls_files_are_a_one_line_error(tmp_path: Path) -> None:
    command = server_command(tmp_path, "--tls-cert", str(tmp_path / "no-cert.pem"),
                             "--tls-key", str(tmp_path / "no-key.pem"))
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("chatproto-server: "), result.stderr


@pytest.mark.parametrize("args", [["--no-such-flag"], ["--port", "abc"],
                                  ["--log-level", "LOUD"]])
def test_bad_flag_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run(server_command(tmp_path, *args), cwd=ROOT, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    _assert_clean_stderr(result.stderr)
    assert "usage:" in result.stderr


@pytest.mark.parametrize("args", [["--max-frame-size", "100"], ["--idle-timeout-s", "1"],
                                  ["--oper", "nocolon"], ["--tls-cert", "only-cert.pem"]])
def test_invalid_setting_is_a_one_line_error(tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run(server_command(tmp_path, *args), cwd=ROOT, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("chatproto-server: "), result.stderr


# ------------------------------------------------------------- hash-password


def test_hash_password_in_process(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return "s3cret pass"

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    assert server_main.main(["hash-password"]) == 0
    out = capsys.readouterr().out
    assert prompts == ["password: "]
    lines = out.splitlines()
    assert len(lines) == 1, out
    stored = lines[0]
    assert is_hash(stored) and stored.startswith("scrypt$")
    assert "s3cret" not in out
    assert verify_password("s3cret pass", stored)
    assert not verify_password("s3cret pas", stored)


def _read_until(fd: int, needle: bytes, deadline: float) -> bytes:
    data = b""
    while needle not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {needle!r} within the deadline; got {data!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"EOF before {needle!r}; got {data!r}")
            data += chunk
    return data


def test_hash_password_from_a_terminal(tmp_path: Path) -> None:
    """The subcommand reads from a pty (as from a user's terminal), echo off."""
    master, slave = pty.openpty()
    proc: subprocess.Popen[bytes] | None = None
    try:
        # A new session has no controlling terminal, so getpass uses stdin: the pty.
        proc = subprocess.Popen([sys.executable, "-m", "reference_server", "hash-password"],
                                cwd=ROOT, stdin=slave, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        os.close(slave)
        slave = -1
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        _read_until(proc.stderr.fileno(), b"password: ", deadline)
        # getpass has turned echo off before it prompts.
        assert not termios.tcgetattr(master)[3] & termios.ECHO
        os.write(master, b"tty pass phrase\n")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        echoed = b""
        with contextlib.suppress(OSError):
            while select.select([master], [], [], 0)[0]:
                chunk = os.read(master, 4096)
                if not chunk:
                    break
                echoed += chunk
        assert b"tty pass phrase" not in echoed
        stored = out.decode().strip()
        assert "\n" not in stored
        assert verify_password("tty pass phrase", stored)
        assert not verify_password("tty pass phrasE", stored)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc is not None:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        os.close(master)
        if slave != -1:
            os.close(slave)


def test_operator_with_a_hashed_password_can_oper(tmp_path: Path) -> None:
    stored = subprocess.run(
        [sys.executable, "-c",
         "import getpass, reference_server.__main__ as m; "
         "getpass.getpass = lambda prompt='': 'oper-secret'; m.main(['hash-password'])"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert is_hash(stored)
    with CliServer(tmp_path, "--oper", f"admin:{stored}") as server:

        async def scenario() -> None:
            client = await WireClient.connect(server.port)
            try:
                await client.hello("opal")
                refused = await client.request(Oper(name="admin", password=stored))
                # The hash itself is not the password.
                assert isinstance(refused[-1], Error)
                assert refused[-1].code == ErrorCode.AUTH_FAILED
                wrong = await client.request(Oper(name="admin", password="oper-secreT"))
                assert isinstance(wrong[-1], Error)
                assert wrong[-1].code == ErrorCode.AUTH_FAILED
                await client.ok(Oper(name="admin", password="oper-secret"))
            finally:
                await client.close()

        _run(scenario)
        server.send_signal(signal.SIGTERM)
        assert server.wait() == 0
    assert "oper-secret" not in server.stderr_text()


def test_operator_hash_from_a_config_file(tmp_path: Path) -> None:
    from reference_server.passwords import hash_password

    config = tmp_path / "server.toml"
    config.write_text(f'[operators]\nroot = "{hash_password("from-file")}"\n', encoding="utf-8")
    with CliServer(tmp_path, "--config", str(config)) as server:

        async def scenario() -> None:
            client = await WireClient.connect(server.port)
            try:
                welcome = await client.hello("rooty")
                assert isinstance(welcome, Welcome)
                await client.ok(Oper(name="root", password="from-file"))
            finally:
                await client.close()

        _run(scenario)
