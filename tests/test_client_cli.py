"""``chatproto-client`` as a process, end to end against ``python -m reference_server``.

``--send`` delivers a message, ``--json`` clients chat through a real server,
private messages reach only their addressee, refused commands come back as
JSON ERROR lines with the spec's code, and every failure (connection refused,
nick in use, wrong password, server shutdown) is one line on stderr with the
documented exit status, never a traceback.

Every wait is bounded (readline and process exit under deadlines; the PING or
/users barrier instead of sleeps); servers listen on 127.0.0.1 port 0; every
process is killed at teardown whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
import trustme
from conftest import AsyncResources, MakeServerProcess
from server_harness import HOST, ROOT, ServerProcess

from chatproto import ErrorCode, decode_frame
from chatproto.messages import Hello, RoomMessage
from conformance.client_side import split_frames
from reference_client.__main__ import MISSING_TUI_EXTRA, parse_address
from reference_client.client import ChatClient

TIMEOUT = 15.0
"""Bound of every single wait (a client process starts in well under a second)."""

Event = dict[str, Any]


def client_command(*args: str, without: tuple[str, ...] = ()) -> list[str]:
    """``python -m reference_client ARGS``; with ``without``, as an install lacking
    those modules runs it (importing one fails, as if it had never been installed)."""
    if not without:
        return [sys.executable, "-m", "reference_client", *args]
    runner = (f"import runpy, sys; sys.modules.update(dict.fromkeys({list(without)!r})); "
              "runpy.run_module('reference_client', run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", runner, *args]


class CliProcess:
    """One ``python -m reference_client`` process; its stdout read as JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.unread: list[Event] = []
        """Events read from stdout and not consumed by ``expect`` yet."""
        self.seen: list[Event] = []
        """Every event read so far, consumed or not."""
        self.eof = False

    def __repr__(self) -> str:
        return f"<client {self.name} pid={self.proc.pid}>"

    async def _read_event(self, deadline: float) -> Event | None:
        assert self.proc.stdout is not None
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"{self!r}: timed out; unconsumed events: {self.unread}")
        try:
            async with asyncio.timeout(remaining):
                raw = await self.proc.stdout.readline()
        except TimeoutError:
            raise AssertionError(f"{self!r}: timed out; unconsumed events: {self.unread}") \
                from None
        if not raw:
            self.eof = True
            return None
        try:
            event = json.loads(raw)
        except ValueError:
            raise AssertionError(f"{self!r}: stdout line is not JSON: {raw!r}") from None
        assert isinstance(event, dict) and "event" in event, raw
        self.seen.append(event)
        return event

    async def expect(self, match: Callable[[Event], bool], timeout: float = TIMEOUT) -> Event:
        """The oldest unconsumed (or next) event for which ``match`` is true; consumed."""
        deadline = asyncio.get_running_loop().time() + timeout
        for index, event in enumerate(self.unread):
            if match(event):
                return self.unread.pop(index)
        while True:
            if self.eof:
                raise AssertionError(f"{self!r}: stdout closed; unconsumed: {self.unread}")
            received = await self._read_event(deadline)
            if received is None:
                continue
            if match(received):
                return received
            self.unread.append(received)

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def command(self, line: str, timeout: float = TIMEOUT) -> Event:
        """Send one command line; return its OK or ERROR line (every command gets one)."""
        await self.send(line)
        return await self.expect(lambda e: "command" in e, timeout)

    async def ok(self, line: str, timeout: float = TIMEOUT) -> Event:
        result = await self.command(line, timeout)
        assert result["event"] == "OK", f"{self!r}: {line!r} failed: {result}"
        return result

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    async def finish(self, timeout: float = TIMEOUT) -> tuple[int, list[Event], str]:
        """Wait for exit: (status, every event read, stderr)."""
        assert self.proc.stderr is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.eof:
            await self._read_event(deadline)
        async with asyncio.timeout(max(deadline - asyncio.get_running_loop().time(), 0.1)):
            stderr = (await self.proc.stderr.read()).decode("utf-8", "replace")
            status = await self.proc.wait()
        return status, self.seen, stderr

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.proc.wait()


@pytest.fixture
def cli(async_resources: AsyncResources) -> Callable[..., Any]:
    """``await cli(*args, name=..., stdin=True)``: a started client process (killed at teardown)."""
    processes: list[CliProcess] = []

    async def start(*args: str, name: str = "client",
                    without: tuple[str, ...] = ()) -> CliProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("CHATPROTO_DEBUG", None)
        proc = await asyncio.create_subprocess_exec(
            *client_command(*args, without=without), cwd=ROOT, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        process = CliProcess(proc, name)
        processes.append(process)
        return process

    async def cleanup() -> None:
        for process in processes:
            await process.kill()

    async_resources.on_teardown(cleanup, order=5)
    return start


async def json_client(cli: Callable[..., Any], server: ServerProcess, nick: str,
                      *extra: str) -> CliProcess:
    process: CliProcess = await cli(f"{HOST}:{server.port}", "--nick", nick, "--json", *extra,
                                    name=nick)
    return process


async def start_server(make_server_process: MakeServerProcess, *args: str) -> ServerProcess:
    return await make_server_process(*args).start()


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens: bound (so no one else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def assert_one_clean_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith("chatproto-client: "), lines[0]
    return lines[0]


async def run_to_exit(cli: Callable[..., Any], *args: str, timeout: float = TIMEOUT,
                      without: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """Run a client with stdin closed; (status, stdout, stderr)."""
    process: CliProcess = await cli(*args, without=without)
    process.close_stdin()
    assert process.proc.stdout is not None and process.proc.stderr is not None
    async with asyncio.timeout(timeout):
        stdout, stderr = await asyncio.gather(process.proc.stdout.read(),
                                              process.proc.stderr.read())
        status = await process.proc.wait()
    return status, stdout.decode(), stderr.decode()


# -------------------------------------------------------------------- --send


async def test_send_delivers_a_message_and_exits_0(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    reader = await ChatClient.connect(HOST, server.port, nick="reader")
    try:
        await reader.join("#news")
        status, stdout, stderr = await run_to_exit(
            cli, f"{HOST}:{server.port}", "--nick", "poster", "--send", "#news",
            "extra extra: read all about it")
        assert status == 0, stderr
        assert stderr == "" and stdout == ""
        message: RoomMessage | None = None
        async with asyncio.timeout(TIMEOUT):
            async for event in reader.events():
                if isinstance(event, RoomMessage):
                    message = event
                    break
        assert message is not None
        event = message
        assert event.sender == "poster"
        assert event.room == "#news"
        assert event.text == "extra extra: read all about it"
        assert not event.history
    finally:
        await reader.quit()


async def test_send_to_a_room_the_server_refuses_exits_1(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    holder = await ChatClient.connect(HOST, server.port, nick="holder")
    try:
        long_text = "x" * 5000  # over the default max_message_length (4096)
        status, _, stderr = await run_to_exit(
            cli, f"{HOST}:{server.port}", "--nick", "poster", "--send", "#news", long_text)
        assert status == 1
        assert "too long" in assert_one_clean_line(stderr)
    finally:
        await holder.quit()


@pytest.mark.parametrize("args", [
    ("--send", "no-hash", "hi"),
    ("--send", "#room", "   "),
    ("--json", "--send", "#room", "hi"),
    ("host:99999", "--json"),
    ("--json", "--password-env", "CHATPROTO_TEST_NO_SUCH_VARIABLE"),
], ids=["bad-room", "empty-text", "send-and-json", "bad-port", "missing-env"])
async def test_usage_errors_exit_2(cli: Callable[..., Any], args: tuple[str, ...]) -> None:
    with closed_port() as port:
        full = [*args] if args[0].startswith("host") else [f"{HOST}:{port}", *args]
        status, stdout, stderr = await run_to_exit(cli, *full, "--nick", "alice")
    assert status == 2, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert "error:" in stderr


# ------------------------------------------------- without the tui extra


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_terminal_ui_without_prompt_toolkit_says_how_to_install_it() -> None:
    # In a terminal, so that the UI is what the client would start. Nothing
    # listens on the port: the client must stop before connecting.
    env = dict(os.environ, TERM="xterm-256color", PYTHONUNBUFFERED="1")
    env.pop("CHATPROTO_DEBUG", None)
    with closed_port() as port:
        command = client_command(f"{HOST}:{port}", "--nick", "alice", without=("prompt_toolkit",))
        child = pexpect.spawn(command[0], command[1:], cwd=str(ROOT), env=env,
                              encoding="utf-8", codec_errors="replace", timeout=TIMEOUT)
        try:
            output = child.read()
        finally:
            child.close(force=True)
    assert child.exitstatus == 2, output
    assert assert_one_clean_line(output) == f"chatproto-client: {MISSING_TUI_EXTRA}"
    assert "pip install '.[tui]'" in MISSING_TUI_EXTRA


async def test_send_works_without_prompt_toolkit(make_server_process: MakeServerProcess,
                                                 cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    status, stdout, stderr = await run_to_exit(
        cli, f"{HOST}:{server.port}", "--nick", "poster", "--send", "#news", "no UI needed",
        without=("prompt_toolkit",))
    assert status == 0, stderr
    assert stderr == "" and stdout == ""


async def test_json_works_without_prompt_toolkit(make_server_process: MakeServerProcess,
                                                 cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    process: CliProcess = await cli(f"{HOST}:{server.port}", "--nick", "bot", "--json",
                                    without=("prompt_toolkit",))
    await process.ok("/join #general")
    process.close_stdin()
    status, _, stderr = await process.finish()
    assert status == 0, stderr
    assert stderr == ""


# -------------------------------------------------------------------- --json


async def test_two_json_clients_chat(make_server_process: MakeServerProcess,
                                     cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    alice = await json_client(cli, server, "alice")
    bob = await json_client(cli, server, "bob")
    joined = await bob.ok("/join #room")
    assert joined["room"] == "#room" and joined["members"] == ["bob"]
    joined = await alice.ok("/join #room")
    assert sorted(joined["members"]) == ["alice", "bob"]
    await bob.expect(lambda e: e["event"] == "MEMBER_JOINED" and e["nick"] == "alice")

    first = await alice.ok("hello bob")
    assert first["command"] == "say" and first["room"] == "#room" and first["seq"] == 1
    await alice.ok("//slash is literal")
    for want, seq in (("hello bob", 1), ("/slash is literal", 2)):
        message = await bob.expect(lambda e: e["event"] == "ROOM_MESSAGE")
        assert message["sender"] == "alice" and message["room"] == "#room"
        assert message["text"] == want and message["seq"] == seq
        assert message["history"] is False and message["msg_id"] > 0

    # bob answers, alice reads; then both leave with stdin closed: exit 0.
    await bob.ok("hi alice")
    reply = await alice.expect(lambda e: e["event"] == "ROOM_MESSAGE")
    assert reply["sender"] == "bob" and reply["text"] == "hi alice"
    alice.close_stdin()
    status, events, stderr = await alice.finish()
    assert status == 0, stderr
    assert stderr == ""
    assert {"event": "OK", "command": "quit"} in events
    left = await bob.expect(lambda e: e["event"] == "MEMBER_LEFT")
    assert left["nick"] == "alice" and left["kind_name"] == "QUIT"
    await bob.ok("/quit done")
    status, _, stderr = await bob.finish()
    assert status == 0 and stderr == ""


async def test_private_message_reaches_only_its_addressee(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    alice, bob, carol = [await json_client(cli, server, nick)
                         for nick in ("alice", "bob", "carol")]
    for client in (alice, bob, carol):  # all connected, all in one room
        await client.ok("/join #room")
    sent = await alice.ok("/msg bob the password is swordfish")
    assert sent["nick"] == "bob" and sent["msg_id"] > 0
    private = await bob.expect(lambda e: e["event"] == "PRIVATE_MESSAGE")
    assert private["sender"] == "alice" and private["text"] == "the password is swordfish"
    # Barrier: carol's /users is answered after anything queued for her before it.
    users = await carol.ok("/users")
    assert sorted(u["nick"] for u in users["users"]) == ["alice", "bob", "carol"]
    assert not [e for e in carol.seen if e["event"] == "PRIVATE_MESSAGE"], carol.seen
    assert not [e for e in carol.seen if "swordfish" in json.dumps(e)], carol.seen
    assert not [e for e in alice.seen if e["event"] == "PRIVATE_MESSAGE"], alice.seen


async def test_refused_commands_are_json_error_lines(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    alice = await json_client(cli, server, "alice")
    cases = [
        ("/join bad!name", ErrorCode.INVALID_ROOM_NAME, "join"),
        ("/msg nobody hello?", ErrorCode.NO_SUCH_NICK, "msg"),
        ("/part #never-made", ErrorCode.NO_SUCH_ROOM, "part"),
        ("/kick #room bob", ErrorCode.NOT_OPERATOR, "kick"),
        ("/oper admin wrong", ErrorCode.AUTH_FAILED, "oper"),
    ]
    for line, code, command in cases:
        result = await alice.command(line)
        assert result == {"event": "ERROR", "command": command, "code": int(code),
                          "name": code.name, "message": result["message"]}, result
        assert result["message"] and "\n" not in result["message"]
    # Mistakes found before anything is sent: usage errors, code 0.
    usage = await alice.command("/msg bob")
    assert usage["event"] == "ERROR" and usage["code"] == 0 and usage["name"] == "USAGE"
    assert usage["message"] == "usage: /msg NICK|#room TEXT"
    unknown = await alice.command("/dance")
    assert unknown["event"] == "ERROR" and unknown["command"] is None
    no_room = await alice.command("text before any join")
    assert no_room["event"] == "ERROR" and "no current room" in no_room["message"]
    # The connection is still fine after all that.
    assert (await alice.ok("/join #room"))["room"] == "#room"
    assert (await alice.ok("/rooms"))["rooms"][0]["room"] == "#room"
    # But the script is told, by the exit status, that not everything was done.
    alice.close_stdin()
    status, _, stderr = await alice.finish()
    assert status == 1
    assert assert_one_clean_line(stderr) == \
        "chatproto-client: 8 commands got an ERROR (see the ERROR lines on stdout)"


async def test_json_exit_status_is_1_after_a_single_refused_command(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    alice = await json_client(cli, server, "alice")
    assert (await alice.ok("/join #room"))["room"] == "#room"
    refused = await alice.command("/msg nobody hi")
    assert refused["event"] == "ERROR" and refused["name"] == "NO_SUCH_NICK"
    await alice.ok("after the error")
    alice.close_stdin()
    status, events, stderr = await alice.finish()
    assert status == 1
    assert {"event": "OK", "command": "quit"} in events  # it still left politely
    assert assert_one_clean_line(stderr) == \
        "chatproto-client: 1 command got an ERROR (see the ERROR lines on stdout)"


async def test_current_room_is_the_last_joined(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    alice = await json_client(cli, server, "alice")
    await alice.ok("/join #one")
    await alice.ok("/join #two")
    assert (await alice.ok("to two"))["room"] == "#two"
    await alice.ok("/part")  # leaves #two, the current room
    assert (await alice.ok("to one"))["room"] == "#one"
    history = await alice.ok("/history #one")
    assert [m["text"] for m in history["messages"]] == ["to one"]


class SilentServer:
    """A listener on 127.0.0.1 that reads what one client sends and never answers."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.arrived = asyncio.Event()
        self.closed = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            self.received += data
            self.arrived.set()
        self.closed.set()
        writer.close()


async def test_quit_before_welcome_closes_without_quit(cli: Callable[..., Any]) -> None:
    """A12: /quit while HELLO is unanswered closes the connection; no QUIT (exit 0)."""
    silent = SilentServer()
    server = await asyncio.start_server(silent.serve, HOST, 0)
    try:
        port = server.sockets[0].getsockname()[1]
        process = await cli(f"{HOST}:{port}", "--nick", "alice", "--json")
        async with asyncio.timeout(TIMEOUT):
            await silent.arrived.wait()
            await process.send("/quit")
            await silent.closed.wait()
            assert await process.proc.wait() == 0
        assert [type(m) for m in map(decode_frame, split_frames(bytes(silent.received)))] \
            == [Hello]
    finally:
        server.close()


async def test_lines_typed_before_welcome_wait_for_the_session(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    """Commands typed at once, maybe before WELCOME, are carried out in order, none lost."""
    server = await start_server(make_server_process)
    process: CliProcess = await cli(f"{HOST}:{server.port}", "--nick", "alice", "--json")
    await process.send("/join #early")  # written at once: the client may still be connecting
    await process.send("/msg #early typed before WELCOME")
    joined = await process.expect(lambda e: e.get("command") == "join")
    said = await process.expect(lambda e: e.get("command") == "say")
    assert joined["event"] == said["event"] == "OK" and said["room"] == "#early"


# ----------------------------------------------------------------- failures


async def test_connection_refused_is_one_line_and_exit_1(cli: Callable[..., Any]) -> None:
    with closed_port() as port:
        for mode in (("--send", "#room", "hi"), ("--json",)):
            status, stdout, stderr = await run_to_exit(cli, f"{HOST}:{port}", "--nick", "alice",
                                                       *mode)
            assert status == 1, stderr
            assert stdout == ""
            line = assert_one_clean_line(stderr)
            assert "connection refused" in line and str(port) in line


async def test_nick_in_use_is_one_line(make_server_process: MakeServerProcess,
                                       cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    holder = await json_client(cli, server, "alice")
    await holder.ok("/join #room")
    for mode in (("--send", "#room", "hi"), ("--json",)):
        status, stdout, stderr = await run_to_exit(cli, f"{HOST}:{server.port}", "--nick",
                                                   "ALICE", *mode)
        assert status == 1 and stdout == ""
        # The server's "ALICE is in use" says it: no "nick already in use (... in use)".
        assert assert_one_clean_line(stderr) == \
            "chatproto-client: cannot log in: ALICE is in use: choose another nick"


async def test_password_login_and_wrong_password(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    alice = await json_client(cli, server, "alice")
    await alice.ok("/register correct-horse")
    alice.close_stdin()
    assert (await alice.finish())[0] == 0

    address = f"{HOST}:{server.port}"
    os.environ["CHATPROTO_TEST_PASSWORD"] = "correct-horse"
    try:
        status, _, stderr = await run_to_exit(
            cli, address, "--nick", "alice", "--password-env", "CHATPROTO_TEST_PASSWORD",
            "--send", "#room", "logged in")
    finally:
        del os.environ["CHATPROTO_TEST_PASSWORD"]
    assert status == 0, stderr

    # --password-stdin: the first line is the password, the rest are commands.
    process: CliProcess = await cli(address, "--nick", "alice", "--password-stdin", "--json")
    await process.send("correct-horse")
    users = await process.ok("/users")
    assert users["users"] == [{"nick": "alice", "away": False, "away_message": "",
                               "operator": False, "registered": True}]
    process.close_stdin()
    assert (await process.finish())[0] == 0

    process = await cli(address, "--nick", "alice", "--password-stdin", "--json")
    await process.send("wrong")
    process.close_stdin()
    status, events, stderr = await process.finish()
    assert status == 1 and events == []
    assert "wrong password" in assert_one_clean_line(stderr)

    status, _, stderr = await run_to_exit(cli, address, "--nick", "alice", "--json")
    assert status == 1
    assert assert_one_clean_line(stderr) == (
        "chatproto-client: cannot log in: this nick needs its password: "
        "give its password (--password-env VAR or --password-stdin)")


async def test_server_shutdown_ends_json_client_with_exit_1(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    alice = await json_client(cli, server, "alice")
    await alice.ok("/join #room")  # connected, and the server has its signal handlers
    assert await server.stop() == 0
    status, events, stderr = await alice.finish()
    assert status == 1
    assert "server is shutting down" in assert_one_clean_line(stderr)
    last = events[-1]
    assert last["event"] == "DISCONNECTED" and last["code"] == int(ErrorCode.SERVER_SHUTDOWN)


async def test_sigint_quits_politely_without_traceback(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    watcher = await json_client(cli, server, "watcher")
    await watcher.ok("/join #room")
    alice = await json_client(cli, server, "alice")
    await alice.ok("/join #room")
    alice.proc.send_signal(signal.SIGINT)
    status, events, stderr = await alice.finish()
    assert status == 130
    assert "Traceback" not in stderr
    assert {"event": "OK", "command": "quit"} in events
    left = await watcher.expect(lambda e: e["event"] == "MEMBER_LEFT")
    assert left["nick"] == "alice" and left["kind_name"] == "QUIT"


async def test_reconnecting_is_reported_and_stdin_eof_still_exits_0(
        make_server_process: MakeServerProcess, cli: Callable[..., Any]) -> None:
    server = await start_server(make_server_process)
    alice = await json_client(cli, server, "alice", "--reconnect")
    await alice.ok("/join #room")
    assert await server.stop() == 0
    reconnecting = await alice.expect(lambda e: e["event"] == "RECONNECTING")
    assert reconnecting["attempt"] == 1 and reconnecting["delay_s"] > 0
    assert "SERVER_SHUTDOWN" in reconnecting["reason"]
    alice.close_stdin()  # give up waiting for the server: a clean exit
    status, events, stderr = await alice.finish()
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert not [e for e in events if e["event"] == "RECONNECTED"]


async def test_tls_send_with_cafile_and_untrusted_server(
        make_server_process: MakeServerProcess, cli: Callable[..., Any], tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert(HOST)  # an IP address SAN for 127.0.0.1
    cert, key, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_pem))
    server = await start_server(make_server_process, "--tls-cert", str(cert),
                                "--tls-key", str(key))
    address = f"{HOST}:{server.port}"

    watcher = await json_client(cli, server, "watcher", "--cafile", str(ca_pem))
    await watcher.ok("/join #secure")
    status, _, stderr = await run_to_exit(cli, address, "--nick", "poster", "--tls",
                                          "--cafile", str(ca_pem), "--send", "#secure", "psst")
    assert status == 0, stderr
    message = await watcher.expect(lambda e: e["event"] == "ROOM_MESSAGE")
    assert message["sender"] == "poster" and message["text"] == "psst"

    # The system's CAs do not know this one: refused by the client's own check.
    status, _, stderr = await run_to_exit(cli, address, "--nick", "eve", "--tls",
                                          "--send", "#secure", "hi")
    assert status == 1
    assert "certificate is not trusted" in assert_one_clean_line(stderr)
    # Plain TCP to a TLS server: the handshake never completes; still one line.
    status, _, stderr = await run_to_exit(cli, address, "--nick", "eve", "--send", "#secure",
                                          "hi")
    assert status == 1
    assert "try --tls" in assert_one_clean_line(stderr)


TLS_MODES = [("--send", "#room", "hi"), ("--json",)]


@pytest.mark.parametrize("mode", TLS_MODES, ids=["send", "json"])
async def test_tls_mismatches_say_what_happened_and_what_to_do(
        make_server_process: MakeServerProcess, cli: Callable[..., Any], tmp_path: Path,
        mode: tuple[str, ...]) -> None:
    """--tls against a plain server and a self-signed server without --cafile: one line
    each naming the problem and the option that fixes it, not OpenSSL's reason code."""
    ca, other = trustme.CA(), trustme.CA()
    issued = ca.issue_cert(HOST)
    cert, key, other_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "other.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    other.cert_pem.write_to_path(str(other_pem))
    plain = await start_server(make_server_process)
    tls = await start_server(make_server_process, "--tls-cert", str(cert), "--tls-key", str(key))
    plain_at, tls_at = f"{HOST}:{plain.port}", f"{HOST}:{tls.port}"
    cases = [
        ((plain_at, "--tls"), f"cannot connect to {plain_at}: the server does not speak TLS: "
                              "drop --tls"),
        ((plain_at, "--cafile", str(other_pem)),
         f"cannot connect to {plain_at}: the server does not speak TLS: drop --tls and --cafile"),
        ((tls_at, "--tls"), f"cannot connect to {tls_at}: the server's certificate is not "
                            "trusted (self-signed, or from an unknown CA): pass --cafile CA.pem "
                            "(the signing CA's certificate, or the self-signed one)"),
        ((tls_at, "--cafile", str(other_pem)),
         f"cannot connect to {tls_at}: the server's certificate is not trusted (self-signed, "
         f"or from an unknown CA): {other_pem} does not hold the CA that signed it"),
    ]
    for args, expected in cases:
        status, stdout, stderr = await run_to_exit(cli, *args, "--nick", "eve", *mode)
        assert status == 1, (args, stderr)
        assert stdout == ""
        assert assert_one_clean_line(stderr) == f"chatproto-client: {expected}", args


async def test_version_and_help_state_the_defaults(cli: Callable[..., Any]) -> None:
    status, stdout, stderr = await run_to_exit(cli, "--version")
    assert status == 0, stderr
    assert stdout == "chatproto-client 0.1.0 (chatproto protocol version 1)\n"
    status, stdout, _ = await run_to_exit(cli, "--help")
    assert status == 0
    entries: dict[str, str] = {}  # each argument's help, its wrapped lines run together
    last = ""
    for row in stdout.splitlines():
        if row.startswith("  ") and not row.startswith("   "):
            name, _, text = row.strip().partition("  ")
            entries[name] = text.strip()
            last = name
        elif row.startswith("   ") and last:
            entries[last] += " " + row.strip()
    for option, default in [
        ("HOST[:PORT]", "default 127.0.0.1:7878"),
        ("--password-env VAR", "default: no password"),
        ("--password-stdin", "default: no password"),
        ("--tls", "default: plain TCP"),
        ("--cafile PEM", "default: the system's CA certificates"),
        ("--reconnect", "default: exit instead"),
        ("--send ROOM TEXT", "default mode: the terminal UI"),
    ]:
        assert default in entries[option], (option, entries[option])
    assert "exit 1 if any command got an ERROR" in entries["--json"]


@pytest.mark.parametrize(("text", "expected"), [
    ("example.org", ("example.org", 7878)),
    ("example.org:9000", ("example.org", 9000)),
    ("127.0.0.1:1", ("127.0.0.1", 1)),
    ("[::1]", ("::1", 7878)),
    ("[::1]:9000", ("::1", 9000)),
    ("[fe80::1%eth0]:7", ("fe80::1%eth0", 7)),
    ("::1", ("::1", 7878)),
])
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["host:0", "host:65536", "host:http", ":7878", "[::1",
                                  "[::1]9000", "[]:7878"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_console_script_is_declared() -> None:
    text = (Path(ROOT) / "pyproject.toml").read_text()
    assert 'chatproto-client = "reference_client.__main__:main"' in text
