"""What the reference server logs: connections yes; passwords and message texts never.

CP-SEC-9: no passwords in logs, failed attempts included. CP-SEC-10: no room or
private message texts in logs. ``configure_logging`` writes one line per record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator

import pytest
from conftest import ClientFactory, MakeServer, MakeServerProcess, RunningServer
from server_harness import HelloRefused, ServerProcess

from chatproto import ErrorCode
from chatproto.messages import (
    Join,
    Login,
    Oper,
    PrivateMessage,
    Register,
    RoomMessage,
    SendPrivate,
    SendRoom,
)
from reference_server.logs import JsonFormatter, configure_logging

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


async def _session(client_factory: ClientFactory, server: RunningServer | ServerProcess) -> None:
    """Every request that carries a password or a message text, and a failure of each."""
    alice = await client_factory("alice", server=server)
    await alice.ok(Register(password=ALICE_PASSWORD))
    await alice.quit("bye now")

    wrong = await client_factory(None, server=server)
    with pytest.raises(HelloRefused) as refused:
        await wrong.hello("alice", WRONG_PASSWORDS[0])
    assert refused.value.error.code == ErrorCode.AUTH_FAILED
    await wrong.close()

    bob = await client_factory("bob", server=server)
    await bob.ok(Register(password=BOB_PASSWORD))
    # While nobody holds alice: a held nick is NICK_IN_USE, no password checked (CP-NICK-10).
    await bob.error(Login(nick="alice", password=WRONG_PASSWORDS[2]), ErrorCode.AUTH_FAILED)
    alice = await client_factory("alice", ALICE_PASSWORD, server=server)
    assert alice.welcome is not None and alice.welcome.logged_in
    await alice.error(Oper(name="admin", password=WRONG_PASSWORDS[1]), ErrorCode.AUTH_FAILED)
    await alice.ok(Oper(name="admin", password=OPER_PASSWORD))
    await alice.ok(Join(room="#logs"))
    await bob.ok(Join(room="#logs"))
    await alice.ok(SendRoom(room="#logs", text=ROOM_TEXT, client_msg_id=1))
    room_message = await bob.expect(RoomMessage)
    assert room_message.text == ROOM_TEXT
    await alice.ok(SendPrivate(nick="bob", text=PRIVATE_TEXT, client_msg_id=2))
    private = await bob.expect(PrivateMessage)
    assert private.text == PRIVATE_TEXT
    await alice.quit("bye now")
    await bob.quit("bye now")


async def _serve_session(make_server: MakeServer, client_factory: ClientFactory) -> None:
    """``_session`` against an in-process server, which is shut down afterwards."""
    server = await make_server(operators={"admin": OPER_PASSWORD})
    await _session(client_factory, server)
    async with asyncio.timeout(10):  # let the server see every close
        while server.server.sessions:
            await asyncio.sleep(0.01)
    await server.shutdown()


def _leaks(text: str) -> list[str]:
    return [secret for secret in (*SECRETS, *FRAGMENTS) if secret in text]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG], ids=["INFO", "DEBUG"])
async def test_log_has_connections_but_no_passwords_or_texts(
        make_server: MakeServer, client_factory: ClientFactory,
        caplog: pytest.LogCaptureFixture, level: int) -> None:
    caplog.set_level(level)
    caplog.set_level(level, logger="chatproto.server")
    await _serve_session(make_server, client_factory)

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


async def test_json_format_is_one_object_per_line(
        make_server: MakeServer, client_factory: ClientFactory, restore_root_logging: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    _log_samples()
    await _serve_session(make_server, client_factory)
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


async def test_text_format_is_one_line_per_plain_record(
        make_server: MakeServer, client_factory: ClientFactory, restore_root_logging: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    await _serve_session(make_server, client_factory)
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


async def test_json_log_format_of_the_process(make_server_process: MakeServerProcess,
                                             client_factory: ClientFactory) -> None:
    server = await make_server_process("--log-format", "json",
                                       "--oper", f"admin:{OPER_PASSWORD}").start()
    await _session(client_factory, server)
    assert await server.stop() == 0
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
