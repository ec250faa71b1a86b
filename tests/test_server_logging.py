"""What the reference server logs: connections yes; passwords and message texts never.

CP-SEC-9: no passwords in logs, failed attempts included. CP-SEC-10: no room or
private message texts in logs. ``configure_logging`` writes one line per record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from server_tools import HOST, CliServer, WireClient

from chatproto import ErrorCode
from chatproto.messages import (
    Bye,
    Error,
    Hello,
    Join,
    Login,
    Oper,
    PrivateMessage,
    Quit,
    Register,
    RoomMessage,
    SendPrivate,
    SendRoom,
)
from reference_server.config import ServerConfig
from reference_server.logs import JsonFormatter, configure_logging
from reference_server.server import ChatServer

ALICE_PASSWORD = "Alice-Pw-q7Zx41"
BOB_PASSWORD = "Bob-Pw-m3Kd92"
OPER_PASSWORD = "Oper-Pw-w8Yt55"
WRONG_PASSWORDS = ("Wrong-Hello-Pw-p2Lr67", "Wrong-Oper-Pw-j5Hs03", "Wrong-Login-Pw-c9Vn28")
ROOM_TEXT = "room text 8f3e21 meet at the usual place"
PRIVATE_TEXT = "private text 5b7c90 the code is 1234"
SECRETS = (ALICE_PASSWORD, BOB_PASSWORD, OPER_PASSWORD, *WRONG_PASSWORDS, ROOM_TEXT,
           PRIVATE_TEXT)
# Distinctive fragments too, in case a log line shortens or reprs the text.
FRAGMENTS = ("q7Zx41", "m3Kd92", "w8Yt55", "p2Lr67", "j5Hs03", "c9Vn28", "8f3e21", "5b7c90")


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(60):
            await scenario()

    asyncio.run(bounded())


async def _refused(client: WireClient, request: Hello | Oper | Login, code: ErrorCode) -> None:
    answer = await client.request(request)
    assert isinstance(answer[-1], Error) and answer[-1].code == code, answer


async def _quit(client: WireClient) -> None:
    answer = await client.request(Quit(reason="bye now"))
    assert isinstance(answer[-1], Bye), answer
    await client.read_until_eof()


async def _session(port: int) -> None:
    """Every request that carries a password or a message text, and a failure of each."""
    clients: list[WireClient] = []

    async def connect() -> WireClient:
        client = await WireClient.connect(port)
        clients.append(client)
        return client

    try:
        alice = await connect()
        await alice.hello("alice")
        await alice.ok(Register(password=ALICE_PASSWORD))
        await _quit(alice)

        wrong = await connect()
        await _refused(wrong, Hello(min_version=1, max_version=1, nick="alice",
                                    password=WRONG_PASSWORDS[0], client_name="t"),
                       ErrorCode.AUTH_FAILED)
        await wrong.close()

        alice = await connect()
        assert (await alice.hello("alice", ALICE_PASSWORD)).logged_in
        bob = await connect()
        await bob.hello("bob")
        await bob.ok(Register(password=BOB_PASSWORD))
        await _refused(bob, Login(nick="alice", password=WRONG_PASSWORDS[2]),
                       ErrorCode.AUTH_FAILED)
        await _refused(alice, Oper(name="admin", password=WRONG_PASSWORDS[1]),
                       ErrorCode.AUTH_FAILED)
        await alice.ok(Oper(name="admin", password=OPER_PASSWORD))
        await alice.ok(Join(room="#logs"))
        await bob.ok(Join(room="#logs"))
        await alice.ok(SendRoom(room="#logs", text=ROOM_TEXT, client_msg_id=1))
        room_message = await bob.expect(lambda f: isinstance(f, RoomMessage))
        assert isinstance(room_message, RoomMessage) and room_message.text == ROOM_TEXT
        await alice.ok(SendPrivate(nick="bob", text=PRIVATE_TEXT, client_msg_id=2))
        private = await bob.expect(lambda f: isinstance(f, PrivateMessage))
        assert isinstance(private, PrivateMessage) and private.text == PRIVATE_TEXT
        await _quit(alice)
        await _quit(bob)
    finally:
        for client in clients:
            await client.close()


async def _serve_session(data_dir: Path) -> None:
    server = ChatServer(ServerConfig(host=HOST, port=0, data_dir=data_dir,
                                     operators={"admin": OPER_PASSWORD}, shutdown_grace_s=1.0))
    await server.start()
    try:
        await _session(server.port)
        async with asyncio.timeout(10):  # let the server see every close
            while server.sessions:
                await asyncio.sleep(0.01)
    finally:
        await server.shutdown()


def _leaks(text: str) -> list[str]:
    return [secret for secret in (*SECRETS, *FRAGMENTS) if secret in text]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG], ids=["INFO", "DEBUG"])
def test_log_has_connections_but_no_passwords_or_texts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, level: int) -> None:
    caplog.set_level(level)
    caplog.set_level(level, logger="chatproto.server")
    _run(lambda: _serve_session(tmp_path))

    server_records = [r for r in caplog.records if r.name == "chatproto.server"]
    messages = [r.getMessage() for r in server_records]
    connects = [m for m in messages if re.match(r"connect peer=127\.0\.0\.1:\d+ ", m)]
    assert len(connects) == 4, messages  # four connections in the session
    disconnects = [m for m in messages if m.startswith("disconnect ")]
    assert len(disconnects) == 4, messages
    assert all(re.search(r" reason=\S", m) for m in disconnects), disconnects
    assert any("nick=alice" in m and "reason=quit" in m for m in disconnects), disconnects
    assert any(m.startswith("oper ") for m in messages), messages

    everything = "\n".join([caplog.text, *(r.getMessage() for r in caplog.records),
                            *(repr(r.args) for r in caplog.records)])
    assert not _leaks(everything), f"CP-SEC-9/10: secrets in the log: {_leaks(everything)}"


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _log_samples() -> None:
    log = logging.getLogger("chatproto.server")
    log.info("plain record peer=%s", "127.0.0.1:1")
    log.warning("two\nlines and caf\u00e9 \U0001f600")
    log.debug("below the threshold")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("with a traceback")


def test_json_format_is_one_object_per_line(tmp_path: Path, restore_root_logging: None,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    _log_samples()
    _run(lambda: _serve_session(tmp_path))
    err = capsys.readouterr().err
    lines = err.splitlines()
    entries = [json.loads(line) for line in lines]
    assert all(isinstance(entry, dict) for entry in entries)
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", e["time"]) for e in entries)
    assert entries[0] == {**entries[0], "level": "INFO", "logger": "chatproto.server",
                          "message": "plain record peer=127.0.0.1:1"}
    assert entries[1]["message"] == "two\nlines and caf\u00e9 \U0001f600"
    assert entries[1]["level"] == "WARNING"
    assert not any(e["message"] == "below the threshold" for e in entries)
    assert entries[2]["level"] == "ERROR" and "RuntimeError: boom" in entries[2]["exception"]
    messages = [e["message"] for e in entries]
    assert any(m.startswith("listening on 127.0.0.1:") for m in messages)
    assert any(m.startswith("connect ") for m in messages)
    assert any(m.startswith("disconnect ") for m in messages)
    assert not _leaks(err)


def test_text_format_is_one_line_per_plain_record(tmp_path: Path, restore_root_logging: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    _run(lambda: _serve_session(tmp_path))
    lines = capsys.readouterr().err.splitlines()
    assert lines
    pattern = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) \S")
    assert all(pattern.match(line) for line in lines), lines
    assert any(" INFO connect peer=" in line for line in lines)


def test_json_formatter_directly() -> None:
    record = logging.LogRecord("chatproto.server", logging.INFO, __file__, 1,
                               "hello %s", ("w\u00f6rld",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hello w\u00f6rld"
    assert entry["level"] == "INFO" and entry["logger"] == "chatproto.server"
    assert "exception" not in entry


def test_json_log_format_of_the_process(tmp_path: Path) -> None:
    with CliServer(tmp_path, "--log-format", "json", "--oper", f"admin:{OPER_PASSWORD}") as server:
        _run(lambda: _session(server.port))
        server.send_signal(signal.SIGTERM)
        assert server.wait() == 0
    lines = [line for line in server.stderr_lines if line.strip()]
    # The start-up banner for people ("chatproto-server: connect ... to HOST:PORT") is
    # printed, not logged; every other line is a JSON record.
    records = [json.loads(line) for line in lines if not line.startswith("chatproto-server:")]
    assert all(isinstance(record, dict) and "message" in record for record in records)
    messages = [record["message"] for record in records]
    assert any(m.startswith("connect ") for m in messages), messages
    assert any(m.startswith("disconnect ") for m in messages), messages
    assert messages[-1] == "stopped"
    assert not _leaks("\n".join(lines))
