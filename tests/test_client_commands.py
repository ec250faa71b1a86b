"""The reference client's /commands: parsing (valid and invalid forms) and error lines.

``parse_command`` turns what a person types into a ``Command``, or raises
``CommandError`` with a one-line usage message; ``describe_error``
(``reference_client.wording``) gives one line (never a traceback) for every
failure the client can meet. No network here: ``execute`` is covered end to
end by tests/test_client_cli.py, and here against a stand-in ``ChatClient`` to
show each command runs its own library call.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from unittest.mock import AsyncMock, MagicMock

import pytest
from pydantic import ValidationError

from chatproto import ErrorCode
from chatproto.messages import Error, History, Join, LeaveKind, MemberLeft, RoomInfo
from chatproto.names import NICK_MAX_BYTES, ROOM_NAME_MAX_BYTES, is_valid_nick, is_valid_room_name
from reference_client.client import (
    ChatClient,
    ChatError,
    ConnectionLost,
    HandshakeFailed,
    HistoryPage,
    JoinResult,
)
from reference_client.commands import (
    COMMANDS,
    Command,
    CommandError,
    CommandResult,
    complete_command,
    event_json,
    execute,
    help_lines,
    parse_command,
)
from reference_client.events import (
    Disconnected,
    HistoryGapDetected,
    Reconnected,
    Reconnecting,
)
from reference_client.wording import describe_error

ROOM = "#general"

# ------------------------------------------------------------- valid forms

VALID: list[tuple[str, str | None, Command]] = [
    # plain text and the // escape
    ("hello world", ROOM, Command("say", room=ROOM, text="hello world")),
    ("  indented  text ", ROOM, Command("say", room=ROOM, text="  indented  text ")),
    ("//etc/passwd is a path", ROOM, Command("say", room=ROOM, text="/etc/passwd is a path")),
    ("// ", ROOM, Command("say", room=ROOM, text="/ ")),
    ("//", ROOM, Command("say", room=ROOM, text="/")),
    ("hello\r\n", ROOM, Command("say", room=ROOM, text="hello")),
    # rooms
    ("/join #lobby", None, Command("join", room="#lobby")),
    ("/JOIN   #Lobby  ", None, Command("join", room="#Lobby")),
    ("/j #lobby", None, Command("join", room="#lobby")),
    ("/join not-a-room", None, Command("join", room="not-a-room")),  # the server's to refuse
    ("/part", ROOM, Command("part", room=ROOM, text="")),
    ("/part #other", ROOM, Command("part", room="#other", text="")),
    ("/part #other see you  later", ROOM, Command("part", room="#other", text="see you  later")),
    ("/part going home", ROOM, Command("part", room=ROOM, text="going home")),
    ("/leave", ROOM, Command("part", room=ROOM, text="")),
    ("/switch #other", ROOM, Command("switch", room="#other")),
    ("/members", ROOM, Command("members", room=ROOM)),
    ("/members #other", None, Command("members", room="#other")),
    ("/names", ROOM, Command("members", room=ROOM)),
    ("/rooms", None, Command("rooms")),
    ("/users", None, Command("users")),
    ("/topic", ROOM, Command("topic", room=ROOM, text=None)),
    ("/topic #other", None, Command("topic", room="#other", text=None)),
    ("/topic new topic here", ROOM, Command("topic", room=ROOM, text="new topic here")),
    ("/topic #other new topic", ROOM, Command("topic", room="#other", text="new topic")),
    ("/history", ROOM, Command("history", room=ROOM, count=50)),
    ("/history 10", ROOM, Command("history", room=ROOM, count=10)),
    ("/history #other", None, Command("history", room="#other", count=50)),
    ("/history #other 5", None, Command("history", room="#other", count=5)),
    # users
    ("/msg bob hi there", None, Command("msg", nick="bob", text="hi there")),
    ("/msg   bob    spaced  out ", None, Command("msg", nick="bob", text="spaced  out")),
    # a room as the target: text for that room (the conformance kit's client contract)
    ("/msg #kit hello there", None, Command("say", room="#kit", text="hello there")),
    ("/query bob hi", None, Command("msg", nick="bob", text="hi")),
    ("/nick Alice2", None, Command("nick", nick="Alice2")),
    ("/away", None, Command("away", text="away")),
    ("/away gone to lunch", None, Command("away", text="gone to lunch")),
    ("/back", None, Command("back")),
    ("/register s3cret", None, Command("register", password="s3cret")),
    ("/register two words", None, Command("register", password="two words")),
    ("/login alice s3cret", None, Command("login", nick="alice", password="s3cret")),
    ("/oper admin hunter2", None, Command("oper", target="admin", password="hunter2")),
    # operators
    ("/kick #r bob", None, Command("kick", room="#r", nick="bob", text="")),
    ("/kick #r bob be nice", None, Command("kick", room="#r", nick="bob", text="be nice")),
    ("/ban #r bob spam", None, Command("ban", room="#r", nick="bob", text="spam")),
    ("/unban #r bob", None, Command("unban", room="#r", nick="bob")),
    ("/mute #r bob", None, Command("mute", room="#r", nick="bob")),
    ("/unmute #r bob", None, Command("unmute", room="#r", nick="bob")),
    # the rest
    ("/quit", None, Command("quit", text="")),
    ("/quit bye all", None, Command("quit", text="bye all")),
    ("/exit", None, Command("quit", text="")),
    ("/help", None, Command("help", target=None)),
    ("/help join", None, Command("help", target="join")),
    ("/help /MSG", None, Command("help", target="msg")),
    ("/join\t#tabbed", None, Command("join", room="#tabbed")),
]


@pytest.mark.parametrize(("line", "current", "expected"), VALID, ids=[v[0] for v in VALID])
def test_parse_valid(line: str, current: str | None, expected: Command) -> None:
    assert parse_command(line, current) == expected


def test_every_command_has_a_valid_example() -> None:
    parsed = {command.name for _, _, command in VALID}
    assert set(COMMANDS) <= parsed
    assert "say" in parsed


# ----------------------------------------------------------- invalid forms

INVALID: list[tuple[str, str | None, str]] = [
    # (line, current room, what the message must contain)
    ("hello", None, "no current room"),
    ("", ROOM, "nothing to send"),
    ("   ", ROOM, "nothing to send"),
    ("/", ROOM, "/help"),
    ("/frobnicate", ROOM, "unknown command /frobnicate"),
    ("/join", None, "usage: /join #room"),
    ("/join #a #b", None, "usage: /join #room"),
    ("/switch", ROOM, "usage: /switch #room"),
    ("/part", None, "no current room"),
    ("/part just a reason", None, "no current room"),
    ("/msg", None, "usage: /msg NICK|#room TEXT"),
    ("/msg bob", None, "usage: /msg NICK|#room TEXT"),
    ("/msg bob    ", None, "usage: /msg NICK|#room TEXT"),
    ("/nick", None, "usage: /nick NEW"),
    ("/nick two words", None, "usage: /nick NEW"),
    ("/users everyone", None, "usage: /users"),
    ("/rooms now", None, "usage: /rooms"),
    ("/members", None, "no current room"),
    ("/members bob", ROOM, "usage: /members [#room]"),
    ("/members #a #b", ROOM, "usage: /members [#room]"),
    ("/topic", None, "no current room"),
    ("/topic some text", None, "no current room"),
    ("/back again", None, "usage: /back"),
    ("/register", None, "usage: /register PASSWORD"),
    ("/login", None, "usage: /login NICK PASSWORD"),
    ("/login alice", None, "usage: /login NICK PASSWORD"),
    ("/oper", None, "usage: /oper NAME PASSWORD"),
    ("/oper admin", None, "usage: /oper NAME PASSWORD"),
    ("/kick", ROOM, "usage: /kick #room NICK [reason]"),
    ("/kick #r", ROOM, "usage: /kick #room NICK [reason]"),
    ("/kick bob", ROOM, "usage: /kick #room NICK [reason]"),
    ("/ban #r", ROOM, "usage: /ban #room NICK [reason]"),
    ("/unban #r", ROOM, "usage: /unban #room NICK"),
    ("/unban #r bob extra", ROOM, "usage: /unban #room NICK"),
    ("/mute bob", ROOM, "usage: /mute #room NICK"),
    ("/unmute #r", ROOM, "usage: /unmute #room NICK"),
    ("/history", None, "no current room"),
    ("/history ten", ROOM, "usage: /history [#room] [N]"),
    ("/history 0", ROOM, "usage: /history [#room] [N]"),
    ("/history -3", ROOM, "usage: /history [#room] [N]"),
    ("/history 70000", ROOM, "usage: /history [#room] [N]"),
    ("/history #r 5 6", ROOM, "usage: /history [#room] [N]"),
    ("/help nosuch", None, "unknown command nosuch"),
    ("/help join msg", None, "usage: /help [COMMAND]"),
]


@pytest.mark.parametrize(("line", "current", "message"), INVALID, ids=[i[0] or "(empty)"
                                                                       for i in INVALID])
def test_parse_invalid(line: str, current: str | None, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(line, current)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_usage_error_names_its_command() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("/msg bob", ROOM)
    assert caught.value.command == "msg"
    assert caught.value.code is None
    with pytest.raises(CommandError) as caught:
        parse_command("/nosuch", ROOM)
    assert caught.value.command is None


# ------------------------------------------------------- metadata, help, json


def test_commands_metadata_is_complete() -> None:
    required = {"join", "part", "msg", "nick", "users", "rooms", "members", "topic", "away",
                "back", "register", "login", "oper", "kick", "ban", "unban", "mute", "unmute",
                "history", "quit", "help"}
    assert required <= set(COMMANDS)
    for name, spec in COMMANDS.items():
        assert spec.name == name
        assert spec.usage.startswith(f"/{name}")
        assert spec.help and "\n" not in spec.help
    aliases = [alias for spec in COMMANDS.values() for alias in spec.aliases]
    assert len(aliases) == len(set(aliases))
    assert not set(aliases) & set(COMMANDS)


def test_help_and_completion() -> None:
    lines = help_lines()
    assert len(lines) == len(COMMANDS) + 1
    assert any(line.startswith("/join #room") for line in lines)
    assert help_lines("leave") == [f"{COMMANDS['part'].usage} - {COMMANDS['part'].help} "
                                   "(also /leave)"]
    assert complete_command("/jo") == ["/join"]
    assert complete_command("/m") == ["/msg", "/members", "/mute"]
    assert complete_command("/zz") == []
    assert "/unban" in complete_command("/un") and "/unmute" in complete_command("/UN")


def test_event_json_shapes() -> None:
    error = Error(code=502, fatal=True, retry_after_ms=1000, detail="bye")
    assert event_json(error) == {"event": "ERROR", "code": 502, "fatal": True,
                                 "retry_after_ms": 1000, "detail": "bye",
                                 "name": "SERVER_SHUTDOWN"}
    left = MemberLeft(room="#r", nick="bob", kind=int(LeaveKind.KICK), reason="", by="op")
    assert event_json(left)["kind_name"] == "KICK"
    assert event_json(Reconnecting(2, 1.5, "lost")) == {
        "event": "RECONNECTING", "attempt": 2, "delay_s": 1.5, "reason": "lost"}
    assert event_json(Reconnected("al", ("#a",))) == {
        "event": "RECONNECTED", "nick": "al", "rooms": ["#a"]}
    result = CommandResult("join", {"room": "#r"})
    assert result.to_json() == {"event": "OK", "command": "join", "room": "#r"}


# ---------------------------------------------------------- describe_error


def _validation_error() -> ValidationError:
    try:
        Join(request_id=1, room="no-hash")
    except ValidationError as exc:
        return exc
    raise AssertionError("Join accepted a bad room name")


def _me_left(kind: LeaveKind) -> MemberLeft:
    return MemberLeft(room="#r", nick="alice", kind=int(kind), reason="spam", by="op")


CONDITIONS: list[tuple[str, object, tuple[str, ...]]] = [
    # (condition, the exception or event, words the line must contain)
    ("connection refused",
     ConnectionLost("cannot connect to 127.0.0.1:7878: connection refused"),
     ("connection refused", "127.0.0.1:7878", "server running")),
    ("connection refused (raw OSError)",
     ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), ("connection refused",)),
    ("handshake: version mismatch",
     HandshakeFailed(int(ErrorCode.UNSUPPORTED_VERSION), "server speaks 2..3", request="HELLO"),
     ("version mismatch", "version 1", "2..3")),
    ("handshake: nick in use",
     HandshakeFailed(int(ErrorCode.NICK_IN_USE), "alice is in use", request="HELLO"),
     ("cannot log in", "alice is in use", "choose another nick")),
    ("handshake: wrong password",
     HandshakeFailed(int(ErrorCode.AUTH_FAILED), "wrong password", request="HELLO"),
     ("wrong password",)),
    ("handshake: registered nick",
     HandshakeFailed(int(ErrorCode.NICK_REGISTERED), "alice is registered", request="HELLO"),
     ("registered", "password")),
    ("handshake: invalid nick",
     HandshakeFailed(int(ErrorCode.INVALID_NICK), "", request="HELLO"), ("invalid nick",)),
    ("nick in use (/nick)",
     ChatError(int(ErrorCode.NICK_IN_USE), "bob is in use", request="NICK"), ("in use",)),
    ("wrong password (/login)",
     ChatError(int(ErrorCode.AUTH_FAILED), "wrong password", request="LOGIN"),
     ("wrong password",)),
    ("wrong operator password",
     ChatError(int(ErrorCode.AUTH_FAILED), "wrong operator credentials", request="OPER"),
     ("wrong operator credentials",)),
    ("kicked", _me_left(LeaveKind.KICK), ("you were kicked from #r", "op", "spam")),
    ("banned", _me_left(LeaveKind.BAN), ("you were banned from #r", "op")),
    ("banned on join",
     ChatError(int(ErrorCode.BANNED_FROM_ROOM), "banned from #r", request="JOIN"),
     ("banned", "#r")),
    ("server shutdown (connection lost)",
     ConnectionLost("server closed the connection: SERVER_SHUTDOWN: server shutting down",
                    int(ErrorCode.SERVER_SHUTDOWN), 2000),
     ("server is shutting down", "2.0 s")),
    ("server shutdown (event)",
     Disconnected("server closed the connection: SERVER_SHUTDOWN: bye",
                  int(ErrorCode.SERVER_SHUTDOWN)),
     ("server is shutting down",)),
    ("server shutdown (ERROR frame)",
     Error(code=int(ErrorCode.SERVER_SHUTDOWN), fatal=True, retry_after_ms=5000, detail="bye"),
     ("server is shutting down", "5.0 s")),
    ("connection lost", ConnectionLost("connection lost: Connection reset by peer"),
     ("connection lost", "reset")),
    ("connection lost (closed by the server)",
     ConnectionLost("connection closed by the server"), ("connection lost", "closed")),
    ("connection lost (event)", Disconnected("connection closed by the server"),
     ("connection lost",)),
    ("reconnecting", Reconnecting(3, 4.0, "connection lost: reset"),
     ("reconnecting in 4.0 s", "attempt 3")),
    ("reconnected", Reconnected("alice", ("#a", "#b")), ("reconnected", "#a, #b")),
    ("rate limited",
     ChatError(int(ErrorCode.RATE_LIMITED), "slow down", retry_after_ms=1500,
               request="SEND_ROOM"),
     ("rate limited", "wait 1.5 s")),
    ("idle timeout", ConnectionLost("x", int(ErrorCode.IDLE_TIMEOUT)), ("idle",)),
    ("slow consumer", ConnectionLost("x", int(ErrorCode.SLOW_CONSUMER)), ("too slowly",)),
    ("no such nick", ChatError(int(ErrorCode.NO_SUCH_NICK), "no user zed"), ("no user zed",)),
    ("not operator", ChatError(int(ErrorCode.NOT_OPERATOR), ""), ("/oper",)),
    ("invalid room name", ChatError(int(ErrorCode.INVALID_ROOM_NAME), "invalid room"),
     ("invalid room name", "'#'")),
    ("unknown error code", ChatError(999, "strange", request="JOIN"),
     ("JOIN refused", "ERROR_999", "strange")),
    ("history gap", HistoryGapDetected("#r", 3, 7), ("#r", "3-7")),
    ("usage", CommandError("usage: /msg NICK|#room TEXT", command="msg"), ("usage: /msg",)),
    ("local invalid room",
     CommandError("invalid room", command="join", code=int(ErrorCode.INVALID_ROOM_NAME)),
     ("invalid room name",)),
    ("timeout", TimeoutError(), ("timed out",)),
    ("TLS certificate",
     ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate"),
     ("TLS",)),
    ("validation error", _validation_error(), ("invalid room",)),
    ("multi-line detail", ChatError(int(ErrorCode.INTERNAL_ERROR), "one\ntwo\x1b[31m"),
     ("one two",)),
    ("unexpected exception", RuntimeError("boom\n  at line 3"), ("RuntimeError: boom",)),
]


@pytest.mark.parametrize(("condition", "exc", "words"), CONDITIONS,
                         ids=[c[0] for c in CONDITIONS])
def test_describe_error_is_one_clear_line(condition: str, exc: object,
                                          words: tuple[str, ...]) -> None:
    line = describe_error(exc, me="alice")  # type: ignore[arg-type]
    assert line, condition
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "Traceback" not in line
    for word in words:
        assert word in line, f"{condition}: {word!r} not in {line!r}"


E = ErrorCode
SAID_ONCE: list[tuple[str, object, str]] = [
    # (condition, the error with the reference server's own detail, the whole line)
    ("nick in use at login", HandshakeFailed(int(E.NICK_IN_USE), "alice is in use",
                                             request="HELLO"),
     "cannot log in: alice is in use: choose another nick"),
    ("nick in use", ChatError(int(E.NICK_IN_USE), "bob is in use", request="NICK"),
     "bob is in use: choose another nick"),
    ("wrong password", ChatError(int(E.AUTH_FAILED), "wrong password", request="LOGIN"),
     "wrong password"),
    ("not in the room", ChatError(int(E.NOT_IN_ROOM), "not in #r"), "not in #r"),
    ("already in the room", ChatError(int(E.ALREADY_IN_ROOM), "already in #r"),
     "already in #r"),
    ("banned", ChatError(int(E.BANNED_FROM_ROOM), "banned from #r"), "banned from #r"),
    ("muted", ChatError(int(E.MUTED), "muted in #r"), "muted in #r"),
    ("no such room", ChatError(int(E.NO_SUCH_ROOM), "no room #x"), "no room #x"),
    ("already registered", ChatError(int(E.ALREADY_REGISTERED), "alice is registered"),
     "alice is registered"),
    # A detail that says something the wording does not: kept beside it.
    ("too many rooms", ChatError(int(E.TOO_MANY_ROOMS), "max_rooms_per_user reached"),
     "you are in too many rooms (max_rooms_per_user reached): /part one first"),
    ("too long", ChatError(int(E.MESSAGE_TOO_LONG),
                           "text is longer than max_message_length = 4096"),
     "message too long (text is longer than max_message_length = 4096)"),
    ("version", HandshakeFailed(int(E.UNSUPPORTED_VERSION), "server speaks 2..3",
                                request="HELLO"),
     "cannot log in: version mismatch: the server does not speak chatproto version 1 "
     "(server speaks 2..3): use a client that matches the server"),
    ("no detail", ChatError(int(E.NICK_IN_USE), ""), "nick already in use: choose another nick"),
]


@pytest.mark.parametrize(("condition", "exc", "line"), SAID_ONCE,
                         ids=[c[0] for c in SAID_ONCE])
def test_error_lines_say_each_thing_once(condition: str, exc: object, line: str) -> None:
    """The server's detail replaces the client's wording when it restates it (shares a
    content word with it), and is added in parentheses when it says something else."""
    assert describe_error(exc) == line  # type: ignore[arg-type]


def test_describe_someone_else_kicked() -> None:
    event = MemberLeft(room="#r", nick="bob", kind=int(LeaveKind.KICK), reason="", by="op")
    assert describe_error(event, me="alice") == "bob was kicked from #r by op"


# ------------------------------------------------- the table is the dispatch

LIBRARY_CALLS: list[tuple[str, str, tuple[object, ...]]] = [
    # (line typed in ROOM, the ChatClient method it awaits, with these arguments)
    ("hello there", "send_room", (ROOM, "hello there")),
    ("/join #other", "join", ("#other",)),
    ("/part bye", "part", (ROOM, "bye")),
    ("/msg bob hi", "send_private", ("bob", "hi")),
    ("/nick carol", "change_nick", ("carol",)),
    ("/users", "list_users", ()),
    ("/rooms", "list_rooms", ()),
    ("/members", "list_members", (ROOM,)),
    ("/topic new topic", "set_topic", (ROOM, "new topic")),
    ("/away lunch", "away", ("lunch",)),
    ("/back", "away", ("",)),
    ("/register s3cret", "register", ("s3cret",)),
    ("/login alice s3cret", "login", ("alice", "s3cret")),
    ("/oper root s3cret", "oper", ("root", "s3cret")),
    ("/kick #r bob rude", "kick", ("#r", "bob", "rude")),
    ("/ban #r bob rude", "ban", ("#r", "bob", "rude")),
    ("/unban #r bob", "unban", ("#r", "bob")),
    ("/mute #r bob", "mute", ("#r", "bob", True)),
    ("/unmute #r bob", "mute", ("#r", "bob", False)),
    ("/quit gone", "quit", ("gone",)),
]


@pytest.mark.parametrize(("line", "method", "args"), LIBRARY_CALLS,
                         ids=[call[0] for call in LIBRARY_CALLS])
def test_each_command_runs_its_library_call(line: str, method: str,
                                            args: tuple[object, ...]) -> None:
    """``execute`` reaches the library through the command's own entry in ``COMMANDS``."""
    client = MagicMock(spec=ChatClient)
    client.nick = "alice"
    client.rooms = {}
    client.join.return_value = JoinResult(RoomInfo(room="#other", member_count=1, last_seq=0),
                                          history=[], gap=None, members=[])
    command = parse_command(line, ROOM)
    result = asyncio.run(execute(client, command))
    assert result.command == command.name
    getattr(client, method).assert_awaited_once_with(*args)
    awaited = [name for name in dir(client)
               if isinstance(getattr(client, name, None), AsyncMock)
               and getattr(client, name).await_count]
    assert awaited == [method]


def test_history_asks_for_its_count() -> None:
    client = MagicMock(spec=ChatClient)
    client.history.return_value = HistoryPage(messages=[], gap=None)
    result = asyncio.run(execute(client, parse_command("/history #r 7", ROOM)))
    client.history.assert_awaited_once_with("#r", limit=7)
    assert result.lines == ("#r: no messages",)


def test_local_commands_answer_without_the_server() -> None:
    """/help and /switch, /topic without text: answered from what the client holds."""
    client = MagicMock(spec=ChatClient)
    client.rooms = {}
    assert asyncio.run(execute(client, parse_command("/help join", ROOM))).lines[0].startswith(
        "/join #room")
    with pytest.raises(CommandError) as caught:
        asyncio.run(execute(client, parse_command("/switch #nowhere", ROOM)))
    assert caught.value.code == ErrorCode.NOT_IN_ROOM
    with pytest.raises(CommandError):
        asyncio.run(execute(client, parse_command("/topic", ROOM)))
    assert not [name for name in dir(client)
                if isinstance(getattr(client, name, None), AsyncMock)
                and getattr(client, name).await_count]


def test_history_count_is_bounded_by_the_history_limit_field() -> None:
    """The largest N is what HISTORY's ``limit`` field holds (u16), not a copy of it."""
    assert parse_command("/history 65535", ROOM).count == 65535
    with pytest.raises(CommandError, match="usage"):
        parse_command("/history 65536", ROOM)
    with pytest.raises(ValidationError):
        History(room=ROOM, limit=65536)


def test_invalid_name_wording_states_the_name_rules() -> None:
    """The lines for INVALID_NICK / INVALID_ROOM_NAME state the limits the validators apply."""
    nick_line = describe_error(ChatError(int(ErrorCode.INVALID_NICK), "", request="NICK"))
    assert f"at most {NICK_MAX_BYTES}" in nick_line
    assert is_valid_nick("a" * NICK_MAX_BYTES) and not is_valid_nick("a" * (NICK_MAX_BYTES + 1))
    room_line = describe_error(ChatError(int(ErrorCode.INVALID_ROOM_NAME), "", request="JOIN"))
    longest = ROOM_NAME_MAX_BYTES - 1
    assert f"'#' then 1 to {longest} " in room_line
    assert is_valid_room_name("#" + "r" * longest)
    assert not is_valid_room_name("#" + "r" * (longest + 1))
