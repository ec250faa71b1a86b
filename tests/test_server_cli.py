"""``python -m reference_server`` as a process: serving, signals, errors, hash-password."""

from __future__ import annotations

import contextlib
import getpass
import io
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import termios
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from conftest import ClientFactory, MakeServerProcess
from server_harness import HOST, ROOT, ServerProcess

import reference_server.__main__ as server_main
from chatproto import ErrorCode, Limits
from chatproto.messages import Error, Oper, Welcome
from reference_server.passwords import is_hash, verify_password


def _assert_clean_stderr(lines: Iterable[str]) -> None:
    text = "\n".join(lines)
    assert "Traceback" not in text, text


# ------------------------------------------------------------------- serving


async def test_listening_line_and_welcome(make_server_process: MakeServerProcess,
                                          client_factory: ClientFactory) -> None:
    server = await make_server_process().start()
    listening = [line for line in server.stderr_lines if "listening on" in line]
    assert listening and f"listening on {HOST}:{server.port}" in listening[0]
    assert server.port != 0

    client = await client_factory(None, server=server)
    welcome = await client.hello("alice")
    assert welcome.nick == "alice"
    assert welcome.version == 1
    assert not welcome.logged_in
    limits = {name: getattr(welcome, name) for name in Limits.model_fields}
    assert limits == Limits().model_dump()
    await client.close()

    assert await server.stop() == 0
    _assert_clean_stderr(server.stderr_lines)
    assert (server.data_dir / "chatproto.sqlite3").exists()
    # The banner follows the log line: complete once the process has exited.
    banner = [line for line in server.stderr_lines if line.startswith("chatproto-server ")]
    assert len(banner) == 1 and (f"connect with `chatproto-client {HOST}:{server.port} "
                                 "--nick NAME`; Ctrl-C") in banner[0], server.stderr_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_signal_shuts_down_gracefully(make_server_process: MakeServerProcess,
                                            client_factory: ClientFactory, signum: int) -> None:
    server = await make_server_process().start()
    clients = [await client_factory(None, server=server) for _ in range(3)]
    await clients[0].hello("alice")
    await clients[1].hello("bob")
    # clients[2] has not said HELLO: it is told too.
    server.send_signal(signum)
    for client in clients:
        frames = await client.read_until_closed(timeout=15)
        errors = [f for f in frames if isinstance(f, Error)]
        assert len(errors) == 1, frames
        error = errors[0]
        assert frames[-1] is error, "nothing may follow a fatal ERROR"
        assert error.code == 502
        assert ErrorCode(error.code) is ErrorCode.SERVER_SHUTDOWN
        assert error.fatal
        assert error.request_id == 0
    assert await server.wait() == 0
    _assert_clean_stderr(server.stderr_lines)


async def _settled(client_factory: ClientFactory, server: ServerProcess) -> None:
    """One HELLO/QUIT round trip: the server has run past its start-up (signal handlers)."""
    probe = await client_factory("probe", server=server)
    await probe.quit("done")


async def test_signal_with_no_clients(make_server_process: MakeServerProcess,
                                      client_factory: ClientFactory) -> None:
    server = await make_server_process().start()
    await _settled(client_factory, server)
    started = time.monotonic()
    server.send_signal(signal.SIGINT)
    assert await server.wait() == 0
    # With nobody to tell, shutdown does not wait for the grace period (5 s).
    assert time.monotonic() - started < 4
    _assert_clean_stderr(server.stderr_lines)


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


async def test_signal_handlers_are_in_place_when_listening_is_announced(
        make_server_process: MakeServerProcess) -> None:
    server = await make_server_process(entry=("-c", _PROBE)).start()
    probes = [line for line in server.stderr_lines if line.startswith("PROBE ")]
    assert probes == ["PROBE sigterm_default=False"], server.stderr_text()
    # A signal sent right after the line must still mean a graceful stop.
    assert await server.stop(signum=signal.SIGTERM) == 0


@pytest.mark.parametrize("level", [
    "DEBUG", "INFO",
    "WARNING", "ERROR",
])
async def test_listening_line_at_every_log_level(make_server_process: MakeServerProcess,
                                                 client_factory: ClientFactory,
                                                 level: str) -> None:
    server = await make_server_process("--log-level", level).start()
    await _settled(client_factory, server)
    assert any(f"listening on {HOST}:{server.port}" in line for line in server.stderr_lines), \
        server.stderr_text()


# -------------------------------------------------------------------- errors


def test_port_in_use(make_server_process: MakeServerProcess) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        # The later --port wins over the harness's --port 0.
        result = make_server_process("--port", str(port)).run_to_exit()
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chatproto-server: ")
    assert str(port) in lines[0] or "in use" in lines[0]


def test_missing_tls_files_are_a_one_line_error(make_server_process: MakeServerProcess,
                                                tmp_path: Path) -> None:
    result = make_server_process("--tls-cert", str(tmp_path / "no-cert.pem"),
                                 "--tls-key", str(tmp_path / "no-key.pem")).run_to_exit()
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("chatproto-server: "), result.stderr


@pytest.mark.parametrize("args", [["--no-such-flag"], ["--port", "abc"],
                                  ["--log-level", "LOUD"]])
def test_bad_flag_is_a_usage_error(make_server_process: MakeServerProcess,
                                   args: list[str]) -> None:
    result = make_server_process(*args).run_to_exit()
    assert result.returncode == 2
    _assert_clean_stderr(result.stderr.splitlines())
    assert "usage:" in result.stderr


@pytest.mark.parametrize("args", [["--max-frame-size", "100"], ["--idle-timeout-s", "1"],
                                  ["--oper", "nocolon"], ["--tls-cert", "only-cert.pem"],
                                  ["--oper", "teacher:scrypt$16384$8$1$..."]])
def test_invalid_setting_is_a_one_line_error(make_server_process: MakeServerProcess,
                                             args: list[str]) -> None:
    result = make_server_process(*args).run_to_exit()
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("chatproto-server: "), result.stderr


# ------------------------------------------------------------- hash-password


class _FakeTerminal(io.StringIO):
    """A stdin that says it is a terminal (getpass itself is replaced)."""

    def isatty(self) -> bool:
        return True


def _fake_getpass(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Replace getpass.getpass with one that gives ``answers`` in turn; the prompts seen."""
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    return prompts


def test_hash_password_on_a_terminal_asks_twice(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", _FakeTerminal())
    prompts = _fake_getpass(monkeypatch, ["s3cret pass", "s3cret pass"])
    assert server_main.main(["hash-password"]) == 0
    out = capsys.readouterr().out
    assert prompts == ["password: ", "again: "]
    lines = out.splitlines()
    assert len(lines) == 1, out
    stored = lines[0]
    assert is_hash(stored) and stored.startswith("scrypt$")
    assert "s3cret" not in out
    assert verify_password("s3cret pass", stored)
    assert not verify_password("s3cret pas", stored)


@pytest.mark.parametrize(("answers", "reason"), [
    (["one", "two"], "the two passwords differ"),
    ([""], "empty password"),
], ids=["mismatch", "empty"])
def test_hash_password_on_a_terminal_refuses(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str],
                                             answers: list[str], reason: str) -> None:
    monkeypatch.setattr(sys, "stdin", _FakeTerminal())
    _fake_getpass(monkeypatch, answers)
    assert server_main.main(["hash-password"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"chatproto-server hash-password: {reason}\n"


def test_hash_password_reads_the_first_line_of_a_pipe(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b" piped pw \r\nnext\n")))
    _fake_getpass(monkeypatch, [])  # any prompt would fail: nothing to answer
    assert server_main.main(["hash-password"]) == 0
    stored = capsys.readouterr().out.strip()
    assert verify_password(" piped pw ", stored)  # spaces are part of it, the CR LF is not


def _hash_password_process(*args: str, stdin: bytes | None,
                           **popen: Any) -> subprocess.CompletedProcess[bytes]:
    """``chatproto-server hash-password ARGS`` with ``stdin`` piped in (None: /dev/null)."""
    return subprocess.run(
        [sys.executable, "-m", "reference_server", "hash-password", *args], cwd=ROOT,
        input=stdin, stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True, timeout=60, **popen)


def test_hash_password_from_a_pipe_without_a_terminal() -> None:
    # A new session has no controlling terminal: getpass would warn (GetPassWarning).
    result = _hash_password_process(stdin=b"piped secret\n", start_new_session=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert verify_password("piped secret", result.stdout.decode().strip())


def test_hash_password_reads_the_pipe_even_with_a_terminal_attached() -> None:
    """`echo secret | chatproto-server hash-password` typed in a terminal hashes "secret"."""
    master, slave = pty.openpty()
    terminal = os.ttyname(slave)

    def attach_terminal() -> None:  # runs after setsid: the first tty opened becomes ours
        os.close(os.open(terminal, os.O_RDWR))

    try:
        result = _hash_password_process(stdin=b"secret\n", start_new_session=True,
                                        preexec_fn=attach_terminal)
        assert result.returncode == 0, result.stderr
        assert verify_password("secret", result.stdout.decode().strip())
        written = b""
        while select.select([master], [], [], 0)[0]:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            written += chunk
        assert written == b"", "it prompted on the terminal instead of reading the pipe"
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize(("stdin", "reason"), [
    (None, "no password on standard input"),
    (b"\n", "empty password (the first line of standard input)"),
    (b"\xff\xfe\n", "the password on standard input is not UTF-8"),
], ids=["no-input", "empty-line", "not-utf8"])
def test_hash_password_without_a_usable_password(stdin: bytes | None, reason: str) -> None:
    result = _hash_password_process(stdin=stdin)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == f"chatproto-server hash-password: {reason}\n"


def test_hash_password_help_helps() -> None:
    result = _hash_password_process("--help", stdin=None)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert out.startswith("usage: chatproto-server hash-password [-h]")
    assert "asks twice" in out and "first line of standard input" in out
    assert result.stderr == b""  # no prompt


def test_hash_password_bad_option_is_a_usage_error() -> None:
    result = _hash_password_process("--no-such-option", stdin=b"pw\n")
    assert result.returncode == 2
    assert b"usage: chatproto-server hash-password" in result.stderr
    assert result.stdout == b""


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
    """The subcommand reads from a pty (as from a user's terminal), echo off, twice."""
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
        _read_until(proc.stderr.fileno(), b"again: ", deadline)
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


async def test_operator_with_a_hashed_password_can_oper(
        make_server_process: MakeServerProcess, client_factory: ClientFactory) -> None:
    result = _hash_password_process(stdin=b"oper-secret\n")
    assert result.returncode == 0, result.stderr
    stored = result.stdout.decode().strip()
    assert is_hash(stored)
    server = await make_server_process("--oper", f"admin:{stored}").start()
    client = await client_factory("opal", server=server)
    # The hash itself is not the password.
    await client.error(Oper(name="admin", password=stored), ErrorCode.AUTH_FAILED)
    await client.error(Oper(name="admin", password="oper-secreT"), ErrorCode.AUTH_FAILED)
    await client.ok(Oper(name="admin", password="oper-secret"))
    await client.close()
    assert await server.stop() == 0
    assert not any("oper-secret" in line for line in server.stderr_lines)


async def test_operator_hash_from_a_config_file(tmp_path: Path,
                                                make_server_process: MakeServerProcess,
                                                client_factory: ClientFactory) -> None:
    from reference_server.passwords import hash_password

    config = tmp_path / "server.toml"
    config.write_text(f'[operators]\nroot = "{hash_password("from-file")}"\n', encoding="utf-8")
    server = await make_server_process("--config", str(config)).start()
    client = await client_factory(None, server=server)
    welcome = await client.hello("rooty")
    assert isinstance(welcome, Welcome)
    await client.ok(Oper(name="root", password="from-file"))
