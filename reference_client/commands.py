"""The "/commands" a person types, shared by the terminal UI and the ``--json`` mode.

* ``parse_command(line, current_room)`` turns one input line into a ``Command``
  (or raises ``CommandError`` whose message is one line: the usage, or what is
  wrong). A line that does not start with ``/`` is text for the current room;
  ``//`` at the start sends a literal ``/``.
* ``execute(client, command)`` carries it out with the ``ChatClient`` library
  and returns a ``CommandResult``: JSON-ready ``data`` for the ``--json`` mode,
  one-line ``lines`` for a person, the library's own return ``value`` (the
  terminal UI shows the history of a JOIN from it) and the room to make
  current. It raises what the library raises (``ChatError``,
  ``ConnectionLost``) or ``CommandError`` for conditions found locally.
* ``COMMANDS``: name, usage and one-line help of every command, in the order
  ``/help`` lists them; the argument kinds drive tab completion.
* ``describe_error(exc)``: one clear line for a person, for every failure the
  client can meet (and for the events that end a conversation: kicked, banned,
  reconnecting, disconnected). Nobody ever sees a traceback.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from chatproto import (
    ERROR_REGISTRY,
    ErrorCode,
    LocalProtocolError,
    Message,
    error_name,
    fold,
    known_error_code,
)
from chatproto import validation_error_code as _validation_error_code
from chatproto.messages import (
    Error,
    History,
    HistoryGap,
    LeaveKind,
    MemberLeft,
    RoomInfo,
    RoomMessage,
    UserInfo,
)
from chatproto.names import NICK_MAX_BYTES, ROOM_NAME_MAX_BYTES
from reference_client.client import (
    ChatClient,
    ChatError,
    ConnectionLost,
    HandshakeFailed,
    tls_failure,
)
from reference_client.events import (
    ClientEvent,
    Disconnected,
    HistoryGapDetected,
    Reconnected,
    Reconnecting,
)

__all__ = [
    "COMMANDS",
    "Command",
    "CommandError",
    "CommandResult",
    "CommandSpec",
    "complete_command",
    "describe_error",
    "disconnect_reason",
    "execute",
    "help_lines",
    "message_fields",
    "parse_command",
]


# ------------------------------------------------------------------- parsing


class CommandError(Exception):
    """A command that cannot be carried out as typed; ``str()`` is one line.

    ``command`` is the command's name (``None`` when it is not known);
    ``code`` the spec's error code when one applies (an invalid room name found
    locally), else ``None`` for a plain usage mistake.
    """

    def __init__(self, message: str, *, command: str | None = None,
                 code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.command = command
        self.code = code


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed input line.

    ``name`` is a key of ``COMMANDS`` or ``"say"`` (text for ``room``). Which
    other fields are set depends on the command:

    ========================  ==========================================
    say                       room, text
    join, switch              room
    part                      room, text (reason)
    msg                       nick, text
    nick                      nick
    members                   room
    topic                     room, text (None: show the topic)
    away                      text (the away message)
    register                  password
    login                     nick, password
    oper                      target (NAME), password
    kick, ban                 room, nick, text (reason)
    unban, mute, unmute       room, nick
    history                   room, count
    quit                      text (reason)
    help                      target (a command name, or None)
    ========================  ==========================================
    """

    name: str
    room: str | None = None
    nick: str | None = None
    text: str | None = None
    password: str = ""
    count: int | None = None
    target: str | None = None
    """/oper's NAME; /help's COMMAND."""


@dataclass(frozen=True, slots=True)
class _Typed:
    """One command line being parsed: which command, the text after its name, the room."""

    name: str
    usage: str
    rest: str
    current_room: str | None

    def words(self, count: int) -> tuple[list[str], str]:
        """Up to ``count`` leading words of the rest of the line, and what follows them."""
        words: list[str] = []
        rest = self.rest.strip()
        while rest and len(words) < count:
            parts = rest.split(None, 1)
            words.append(parts[0])
            rest = parts[1].strip() if len(parts) > 1 else ""
        return words, rest

    def exactly(self, count: int) -> list[str]:
        """Exactly ``count`` words and nothing after them, else the usage."""
        words, extra = self.words(count)
        if len(words) != count or extra:
            raise self.usage_error()
        return words

    def room_or_current(self, words: list[str]) -> str:
        """The room named by the first word if it is one (removed), else the current room."""
        if words and _looks_like_room(words[0]):
            return words.pop(0)
        if self.current_room is None:
            raise CommandError(f"no current room: usage: {self.usage}", command=self.name)
        return self.current_room

    def usage_error(self) -> CommandError:
        return CommandError(f"usage: {self.usage}", command=self.name)


def _looks_like_room(word: str) -> bool:
    return word.startswith("#")


Parser = Callable[[_Typed], Command]
"""Turns the rest of a command line into a ``Command`` (or raises ``CommandError``)."""


def _no_arguments(typed: _Typed) -> Command:
    typed.exactly(0)
    return Command(typed.name)


def _one_room(typed: _Typed) -> Command:
    return Command(typed.name, room=typed.exactly(1)[0])


def _one_nick(typed: _Typed) -> Command:
    return Command(typed.name, nick=typed.exactly(1)[0])


def _optional_room(typed: _Typed) -> Command:
    words, extra = typed.words(1)
    if extra or (words and not _looks_like_room(words[0])):
        raise typed.usage_error()
    return Command(typed.name, room=typed.room_or_current(words))


def _room_and_text(typed: _Typed) -> tuple[str, str]:
    """``[#room] [text]``: a first word that is no room starts the text."""
    words, text = typed.words(1)
    if words and not _looks_like_room(words[0]):
        text, words = typed.rest.strip(), []
    return typed.room_or_current(words), text


def _room_and_reason(typed: _Typed) -> Command:
    room, reason = _room_and_text(typed)
    return Command(typed.name, room=room, text=reason)


def _room_and_topic(typed: _Typed) -> Command:
    room, topic = _room_and_text(typed)
    return Command(typed.name, room=room, text=topic or None)  # None: show the topic


def _nick_and_text(typed: _Typed) -> Command:
    words, text = typed.words(1)
    if not words or not text:
        raise typed.usage_error()
    return Command(typed.name, nick=words[0], text=text)


def _away_message(typed: _Typed) -> Command:
    return Command(typed.name, text=typed.rest.strip() or "away")


def _reason(typed: _Typed) -> Command:
    return Command(typed.name, text=typed.rest.strip())


def _password(typed: _Typed) -> Command:
    password = typed.rest.strip()
    if not password:
        raise typed.usage_error()
    return Command(typed.name, password=password)


def _word_and_password(typed: _Typed) -> tuple[str, str]:
    words, password = typed.words(1)
    if not words or not password:
        raise typed.usage_error()
    return words[0], password


def _nick_and_password(typed: _Typed) -> Command:
    nick, password = _word_and_password(typed)
    return Command(typed.name, nick=nick, password=password)


def _name_and_password(typed: _Typed) -> Command:
    name, password = _word_and_password(typed)
    return Command(typed.name, target=name, password=password)


def _room_nick_and_reason(typed: _Typed) -> Command:
    words, reason = typed.words(2)
    if len(words) != 2 or not _looks_like_room(words[0]):
        raise typed.usage_error()
    return Command(typed.name, room=words[0], nick=words[1], text=reason)


def _room_and_nick(typed: _Typed) -> Command:
    room, nick = typed.exactly(2)
    if not _looks_like_room(room):
        raise typed.usage_error()
    return Command(typed.name, room=room, nick=nick)


DEFAULT_HISTORY = 50

_HISTORY_LIMIT = TypeAdapter(History.model_fields["limit"].rebuild_annotation())
"""HISTORY's own ``limit`` field: the counts /history can ask for (0 is no page)."""


def _history_count(word: str) -> int | None:
    if not word.isdigit() or int(word) < 1:
        return None
    try:
        return int(_HISTORY_LIMIT.validate_python(int(word)))
    except ValidationError:
        return None


def _room_and_count(typed: _Typed) -> Command:
    words, extra = typed.words(2)
    if extra:
        raise typed.usage_error()
    room = typed.room_or_current(words)
    count: int | None = DEFAULT_HISTORY
    if words:
        count = _history_count(words[0]) if len(words) == 1 else None
        if count is None:
            raise typed.usage_error()
    return Command(typed.name, room=room, count=count)


def _command_name(typed: _Typed) -> Command:
    words, extra = typed.words(1)
    if extra:
        raise typed.usage_error()
    if words and words[0].lstrip("/").lower() not in _ALIASES:
        raise CommandError(f"unknown command {words[0]}; /help lists the commands",
                           command=typed.name)
    return Command(typed.name, target=words[0].lstrip("/").lower() if words else None)


# ----------------------------------------------------------------- executing


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command did.

    ``data``: JSON-ready details (the ``--json`` mode prints
    ``{"event": "OK", "command": command, **data}``); ``lines``: what to show a
    person, one line each; ``value``: the library's return value (JoinResult,
    HistoryPage, lists of UserInfo or RoomInfo, Ok, ...); ``room``: the room to
    make current (after /join and /switch); ``quit``: the client has quit.
    """

    command: str
    data: dict[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()
    value: object = None
    room: str | None = None
    quit: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"event": "OK", "command": self.command, **self.data}


Action = Callable[[ChatClient, Command], Awaitable[CommandResult]]
"""Carries out one parsed command with the library."""


def _jsonable(value: object) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, Message):
        return message_fields(value)
    return value


def message_fields(message: Message) -> dict[str, Any]:
    """A message's fields for JSON (``request_id`` left out, bytes as hex)."""
    fields = message.model_dump(exclude={"request_id"})
    return {name: _jsonable(value) for name, value in fields.items()}


def event_json(event: Message | ClientEvent) -> dict[str, Any]:
    """One event as the ``--json`` mode prints it: ``{"event": NAME, ...fields}``."""
    if isinstance(event, ClientEvent):
        return {name: _jsonable(value) for name, value in event.to_dict().items()}
    data: dict[str, Any] = {"event": event.NAME, **message_fields(event)}
    if isinstance(event, Error):
        data["name"] = error_name(event.code)
    if isinstance(event, MemberLeft):
        data["kind_name"] = _leave_kind_name(event.kind)
    return data


def _leave_kind_name(kind: int) -> str:
    try:
        return LeaveKind(kind).name
    except ValueError:
        return str(kind)


def _user_line(user: UserInfo) -> str:
    marks = []
    if user.operator:
        marks.append("operator")
    if user.registered:
        marks.append("registered")
    if user.away:
        marks.append(f"away: {user.away_message}" if user.away_message else "away")
    return f"{user.nick} ({', '.join(marks)})" if marks else user.nick


def _users_line(title: str, users: Iterable[UserInfo]) -> str:
    users = list(users)
    names = ", ".join(_user_line(user) for user in users)
    return f"{title}: {len(users)}: {names}" if users else f"{title}: none"


def _room_line(room: RoomInfo) -> str:
    topic = f" - {room.topic}" if room.topic else ""
    return f"{room.room} ({room.member_count} members, {room.last_seq} messages){topic}"


def format_time(timestamp_ms: int) -> str:
    """``HH:MM`` in local time."""
    return datetime.fromtimestamp(timestamp_ms / 1000).strftime("%H:%M")


def _message_line(message: RoomMessage) -> str:
    return f"{format_time(message.timestamp_ms)} {message.sender}: {message.text}"


def _gap_line(room: str, gap: HistoryGap | None) -> list[str]:
    if gap is None:
        return []
    return [f"{room}: messages {gap.first_seq}-{gap.last_seq} are no longer available"]


def _joined_room(client: ChatClient, command: Command, advice: str = "") -> str:
    """The joined room ``command`` names, spelt as joined; else NOT_IN_ROOM, found locally."""
    room = command.room or ""
    state = client.rooms.get(fold(room))
    if state is None:
        raise CommandError(f"you are not in {room}{advice}", command=command.name,
                           code=int(ErrorCode.NOT_IN_ROOM))
    return state.name


async def _say(client: ChatClient, command: Command) -> CommandResult:
    room = command.room or ""
    ok = await client.send_room(room, command.text or "")
    return CommandResult(command.name, {"room": room, "msg_id": ok.msg_id, "seq": ok.seq,
                                        "timestamp_ms": ok.timestamp_ms}, value=ok)


async def _join(client: ChatClient, command: Command) -> CommandResult:
    joined = await client.join(command.room or "")
    info = joined.info
    topic = f" - topic: {info.topic}" if info.topic else ""
    lines = [f"joined {info.room} ({info.member_count} members){topic}",
             *_gap_line(info.room, joined.gap)]
    data = {
        "room": info.room, "topic": info.topic, "member_count": info.member_count,
        "last_seq": info.last_seq,
        "members": [member.nick for member in joined.members],
        "history": [message_fields(m) for m in joined.history],
        "gap": message_fields(joined.gap) if joined.gap is not None else None,
    }
    return CommandResult(command.name, data, tuple(lines), value=joined, room=info.room)


async def _switch(client: ChatClient, command: Command) -> CommandResult:
    found = _joined_room(client, command, ": /join it first")
    return CommandResult(command.name, {"room": found}, (f"now talking in {found}",),
                         room=found)


async def _part(client: ChatClient, command: Command) -> CommandResult:
    room = command.room or ""
    ok = await client.part(room, command.text or "")
    return CommandResult(command.name, {"room": room}, (f"left {room}",), value=ok)


async def _msg(client: ChatClient, command: Command) -> CommandResult:
    nick, text = command.nick or "", command.text or ""
    ok = await client.send_private(nick, text)
    return CommandResult(command.name, {"nick": nick, "msg_id": ok.msg_id,
                                        "timestamp_ms": ok.timestamp_ms},
                         (f"-> {nick}: {text}",), value=ok)


async def _nick(client: ChatClient, command: Command) -> CommandResult:
    ok = await client.change_nick(command.nick or "")
    return CommandResult(command.name, {"nick": client.nick},
                         (f"you are now known as {client.nick}",), value=ok)


async def _users(client: ChatClient, command: Command) -> CommandResult:
    users = await client.list_users()
    return CommandResult(command.name, {"users": [message_fields(u) for u in users]},
                         (_users_line("users", users),), value=users)


async def _rooms(client: ChatClient, command: Command) -> CommandResult:
    rooms = await client.list_rooms()
    lines = tuple(_room_line(r) for r in rooms) or ("no rooms yet",)
    return CommandResult(command.name, {"rooms": [message_fields(r) for r in rooms]}, lines,
                         value=rooms)


async def _members(client: ChatClient, command: Command) -> CommandResult:
    room = command.room or ""
    members = await client.list_members(room)
    return CommandResult(command.name, {"room": room,
                                        "members": [message_fields(m) for m in members]},
                         (_users_line(f"members of {room}", members),), value=members)


async def _topic(client: ChatClient, command: Command) -> CommandResult:
    if command.text is None:  # show it: the room's state already holds it
        room = _joined_room(client, command)
        topic = client.rooms[fold(room)].topic
        line = f"topic of {room}: {topic}" if topic else f"{room} has no topic"
        return CommandResult(command.name, {"room": room, "topic": topic}, (line,))
    room, text = command.room or "", command.text
    ok = await client.set_topic(room, text)
    return CommandResult(command.name, {"room": room, "topic": text},
                         (f"topic of {room} set to: {text}",), value=ok)


async def _away(client: ChatClient, command: Command) -> CommandResult:
    text = command.text or ""
    ok = await client.away(text)
    return CommandResult(command.name, {"away": True, "message": text},
                         (f"you are marked away: {text}",), value=ok)


async def _back(client: ChatClient, command: Command) -> CommandResult:
    ok = await client.away("")
    return CommandResult(command.name, {"away": False}, ("you are back",), value=ok)


async def _register(client: ChatClient, command: Command) -> CommandResult:
    ok = await client.register(command.password)
    return CommandResult(command.name, {"nick": client.nick},
                         (f"registered {client.nick}; log in with its password next time",),
                         value=ok)


async def _login(client: ChatClient, command: Command) -> CommandResult:
    ok = await client.login(command.nick or "", command.password)
    return CommandResult(command.name, {"nick": client.nick},
                         (f"logged in as {client.nick}",), value=ok)


async def _oper(client: ChatClient, command: Command) -> CommandResult:
    oper_name = command.target or ""
    ok = await client.oper(oper_name, command.password)
    return CommandResult(command.name, {"name": oper_name},
                         ("you are now a server operator",), value=ok)


async def _kick(client: ChatClient, command: Command) -> CommandResult:
    room, nick, reason = command.room or "", command.nick or "", command.text or ""
    ok = await client.kick(room, nick, reason)
    return CommandResult(command.name, {"room": room, "nick": nick, "reason": reason},
                         (f"{nick} kicked from {room}",), value=ok)


async def _ban(client: ChatClient, command: Command) -> CommandResult:
    room, nick, reason = command.room or "", command.nick or "", command.text or ""
    ok = await client.ban(room, nick, reason)
    return CommandResult(command.name, {"room": room, "nick": nick, "reason": reason},
                         (f"{nick} banned from {room}",), value=ok)


async def _unban(client: ChatClient, command: Command) -> CommandResult:
    room, nick = command.room or "", command.nick or ""
    ok = await client.unban(room, nick)
    return CommandResult(command.name, {"room": room, "nick": nick},
                         (f"{nick} unbanned in {room}",), value=ok)


def _muting(muted: bool) -> Action:
    """/mute (``muted``) or /unmute: the same request, either way."""

    async def run(client: ChatClient, command: Command) -> CommandResult:
        room, nick = command.room or "", command.nick or ""
        ok = await client.mute(room, nick, muted)
        return CommandResult(command.name, {"room": room, "nick": nick, "muted": muted},
                             (f"{nick} {command.name}d in {room}",), value=ok)

    return run


async def _history(client: ChatClient, command: Command) -> CommandResult:
    room = command.room or ""
    page = await client.history(room, limit=command.count or DEFAULT_HISTORY)
    lines = [*_gap_line(room, page.gap), *(_message_line(m) for m in page.messages)]
    data = {"room": room, "messages": [message_fields(m) for m in page.messages],
            "gap": message_fields(page.gap) if page.gap is not None else None}
    return CommandResult(command.name, data, tuple(lines) or (f"{room}: no messages",),
                         value=page)


async def _quit(client: ChatClient, command: Command) -> CommandResult:
    await client.quit(command.text or "")
    return CommandResult(command.name, {}, ("disconnected",), quit=True)


async def _help(client: ChatClient, command: Command) -> CommandResult:
    topic = command.target
    specs = [COMMANDS[_ALIASES[topic]]] if topic else list(COMMANDS.values())
    return CommandResult(command.name, {"commands": [
        {"name": s.name, "usage": s.usage, "help": s.help} for s in specs]},
        tuple(help_lines(topic)))


# ------------------------------------------------------------------ the table


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command: what a person needs to know about it, how to read it, what it does.

    ``args`` names the kind of each positional argument, for completion:
    ``"room"`` (any room name), ``"joined_room"`` (a room the client is in),
    ``"nick"``, ``"command"`` (a command name, for /help), ``"text"`` (free
    text, the rest of the line), ``"password"``, ``"name"``, ``"count"``.
    ``parse`` reads the rest of the line into a ``Command``; ``run`` carries
    that out with the library.
    """

    name: str
    usage: str
    help: str
    parse: Parser
    run: Action
    args: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


def _spec(name: str, usage: str, help: str, parse: Parser, run: Action, *args: str,
          aliases: tuple[str, ...] = ()) -> CommandSpec:
    return CommandSpec(name, usage, help, parse, run, args, aliases)


COMMANDS: Mapping[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        _spec("join", "/join #room", "join a room (creating it) and make it the current room",
              _one_room, _join, "room", aliases=("j",)),
        _spec("part", "/part [#room] [reason]", "leave a room (default: the current room)",
              _room_and_reason, _part, "joined_room", "text", aliases=("leave",)),
        _spec("switch", "/switch #room", "make a joined room the current room",
              _one_room, _switch, "joined_room"),
        _spec("msg", "/msg NICK TEXT", "send a private message to one user",
              _nick_and_text, _msg, "nick", "text", aliases=("query", "m")),
        _spec("nick", "/nick NEW", "change your nickname", _one_nick, _nick, "nick"),
        _spec("users", "/users", "list the connected users", _no_arguments, _users,
              aliases=("who",)),
        _spec("rooms", "/rooms", "list the rooms on the server", _no_arguments, _rooms,
              aliases=("list",)),
        _spec("members", "/members [#room]", "list the members of a room (default: current)",
              _optional_room, _members, "joined_room", aliases=("names",)),
        _spec("topic", "/topic [#room] [TEXT]",
              "set a room's topic (without TEXT: show it)", _room_and_topic, _topic,
              "joined_room", "text"),
        _spec("away", "/away [MESSAGE]", "mark yourself away (with a message)",
              _away_message, _away, "text"),
        _spec("back", "/back", "clear your away status", _no_arguments, _back),
        _spec("register", "/register PASSWORD",
              "register your current nick as an account with this password",
              _password, _register, "password"),
        _spec("login", "/login NICK PASSWORD", "log in to an account and take its nick",
              _nick_and_password, _login, "nick", "password"),
        _spec("oper", "/oper NAME PASSWORD", "authenticate as a server operator",
              _name_and_password, _oper, "name", "password"),
        _spec("kick", "/kick #room NICK [reason]", "operator: remove a user from a room",
              _room_nick_and_reason, _kick, "joined_room", "nick", "text"),
        _spec("ban", "/ban #room NICK [reason]",
              "operator: ban a nick from a room (and remove it)",
              _room_nick_and_reason, _ban, "joined_room", "nick", "text"),
        _spec("unban", "/unban #room NICK", "operator: lift a ban",
              _room_and_nick, _unban, "joined_room", "nick"),
        _spec("mute", "/mute #room NICK", "operator: stop a member's messages in a room",
              _room_and_nick, _muting(True), "joined_room", "nick"),
        _spec("unmute", "/unmute #room NICK", "operator: allow a member's messages again",
              _room_and_nick, _muting(False), "joined_room", "nick"),
        _spec("history", "/history [#room] [N]",
              "show the last N messages of a room (default 50)",
              _room_and_count, _history, "joined_room", "count"),
        _spec("quit", "/quit [reason]", "leave the server", _reason, _quit, "text",
              aliases=("exit",)),
        _spec("help", "/help [COMMAND]", "list the commands, or explain one",
              _command_name, _help, "command", aliases=("?",)),
    )
}
"""Every command by name, in the order ``/help`` lists them."""

SAY = "say"
"""The ``Command.name`` of plain text sent to the current room."""

_ACTIONS: Mapping[str, Action] = {SAY: _say, **{spec.name: spec.run for spec in COMMANDS.values()}}
"""What carries out each ``Command.name``: the table's actions, and plain text's."""

_ALIASES: dict[str, str] = {
    alias: spec.name for spec in COMMANDS.values() for alias in (spec.name, *spec.aliases)
}


def complete_command(prefix: str) -> list[str]:
    """The command names (with their ``/``) that start with ``prefix`` (``"/jo"``)."""
    word = prefix[1:] if prefix.startswith("/") else prefix
    return [f"/{name}" for name in COMMANDS if name.startswith(word.lower())]


def help_lines(name: str | None = None) -> list[str]:
    """``/help``: one line per command; or the usage and help of one command."""
    if name is not None:
        spec = COMMANDS[_ALIASES[name.lstrip("/").lower()]]
        aliases = f" (also /{', /'.join(spec.aliases)})" if spec.aliases else ""
        return [f"{spec.usage} - {spec.help}{aliases}"]
    width = max(len(spec.usage) for spec in COMMANDS.values())
    lines = [f"{spec.usage.ljust(width)}  {spec.help}" for spec in COMMANDS.values()]
    lines.append("Plain text goes to the current room; start it with // to send a leading /.")
    return lines


def parse_command(line: str, current_room: str | None) -> Command:
    """Parse one input line; raise ``CommandError`` (one line) if it is not a valid command."""
    line = line.rstrip("\r\n")
    if not line.startswith("/") or line.startswith("//"):
        text = line[1:] if line.startswith("//") else line
        if not text.strip():
            raise CommandError("nothing to send", command=SAY)
        if current_room is None:
            raise CommandError("no current room: /join #room first, or /msg NICK TEXT",
                               command=SAY)
        return Command(SAY, room=current_room, text=text)

    head, _, rest = line[1:].partition(" ")
    head = head.strip().lower()
    if "\t" in head:  # "/join\t#room"
        head, _, more = head.partition("\t")
        rest = f"{more} {rest}"
    if not head:
        raise CommandError("no command after '/'; /help lists the commands")
    name = _ALIASES.get(head)
    if name is None:
        raise CommandError(f"unknown command /{head}; /help lists the commands")
    spec = COMMANDS[name]
    return spec.parse(_Typed(name, spec.usage, rest, current_room))


async def execute(client: ChatClient, command: Command) -> CommandResult:
    """Carry out ``command`` with ``client``.

    Raises ``ChatError`` (the server refused, or a field is invalid),
    ``ConnectionLost``, or ``CommandError`` (found locally: not in that room...).
    """
    action = _ACTIONS.get(command.name)
    if action is None:
        raise CommandError(f"unknown command {command.name}", command=command.name)
    try:
        return await action(client, command)
    except ValidationError as exc:  # a field the library did not check itself
        raise CommandError(f"invalid {_validation_where(exc)}", command=command.name,
                           code=int(_validation_error_code(exc))) from None
    except LocalProtocolError as exc:
        raise CommandError(exc.detail, command=command.name, code=int(exc.code)) from None


def _validation_where(exc: ValidationError) -> str:
    errors = exc.errors()
    return ".".join(str(part) for part in errors[0]["loc"]) if errors else "field"


# -------------------------------------------------------------------- errors

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def _one_line(text: str) -> str:
    """Whitespace and control characters collapsed: one printable line."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _seconds(ms: int) -> str:
    seconds = ms / 1000
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _what(request: str) -> str:
    return request.replace("_", " ") if request else "request"


@dataclass(frozen=True, slots=True)
class _Wording:
    """How the client words one error code: what happened, then what to do."""

    what: str
    advice: str = ""
    shows_detail: bool = True
    """False when the wording says all there is (the server's detail is left out)."""
    what_answering: Mapping[str, str] = field(default_factory=dict)
    """A ``what`` of its own for the answer to one request type (``"OPER"``)."""
    handshake_advice: str = ""
    """The ``advice`` when HELLO was refused (the person is not logged in yet)."""
    wait_advice: str = ""
    """The ``advice`` when the ERROR says how long to wait: ``{wait}`` is that time."""


_E = ErrorCode
_WORDING: Mapping[ErrorCode, _Wording] = {
    _E.NICK_IN_USE: _Wording("nick already in use", "choose another nick"),
    _E.NICK_REGISTERED: _Wording(
        "this nick is registered to an account", "use /login NICK PASSWORD",
        handshake_advice="give its password (--password-env VAR or --password-stdin)"),
    _E.AUTH_FAILED: _Wording("wrong password",
                             what_answering={"OPER": "wrong operator name or password"}),
    _E.UNSUPPORTED_VERSION: _Wording(
        "version mismatch: the server does not speak chatproto version 1",
        "use a client that matches the server"),
    _E.INVALID_NICK: _Wording("invalid nick: a nick is an ASCII letter then letters, digits, "
                              f"'_' or '-' (at most {NICK_MAX_BYTES})",
                              shows_detail=False),
    _E.INVALID_ROOM_NAME: _Wording(f"invalid room name: a room name is '#' then 1 to "
                                   f"{ROOM_NAME_MAX_BYTES - 1} letters, digits, '_' or '-'",
                                   shows_detail=False),
    _E.BANNED_FROM_ROOM: _Wording("you are banned from that room"),
    _E.RATE_LIMITED: _Wording("rate limited (too many requests)", shows_detail=False,
                              wait_advice="wait {wait} before trying again"),
    _E.SERVER_SHUTDOWN: _Wording("the server is shutting down", shows_detail=False,
                                 wait_advice="try again in {wait}"),
    _E.NOT_OPERATOR: _Wording("only server operators can do that", "/oper NAME PASSWORD first",
                              shows_detail=False),
    _E.NOT_IN_ROOM: _Wording("you are not in that room"),
    _E.ALREADY_IN_ROOM: _Wording("you are already in that room"),
    _E.NO_SUCH_NICK: _Wording("no such nick is connected"),
    _E.NO_SUCH_ROOM: _Wording("no such room"),
    _E.MUTED: _Wording("you are muted in that room"),
    _E.MESSAGE_TOO_LONG: _Wording("message too long"),
    _E.TOO_MANY_ROOMS: _Wording("you are in too many rooms", "/part one first"),
    _E.ALREADY_REGISTERED: _Wording("this nick is already registered"),
    _E.IDLE_TIMEOUT: _Wording("the server closed the idle connection", shows_detail=False),
    _E.SLOW_CONSUMER: _Wording("the server dropped the connection: this client was reading "
                               "too slowly", shows_detail=False),
}
"""The client's own words for the codes a person meets; other codes get the registry's."""

_FILLER_WORDS = frozenset({
    "a", "an", "the", "is", "are", "be", "was", "in", "on", "at", "of", "to", "for", "and",
    "or", "it", "its", "this", "that", "you", "your", "server", "client", "request"})
"""Words any error line may use: sharing one of them does not make two texts say the same."""


def _content_words(text: str) -> set[str]:
    return {word for word in re.findall(r"[a-z0-9_]+", text.lower())
            if word not in _FILLER_WORDS}


def _what_with_detail(what: str, detail: str) -> str:
    """What happened, told once: the client's wording and the server's detail.

    A detail that restates the wording -- shares a content word with it, as
    "alice is in use" does with "nick already in use" -- replaces it, being
    the more specific of the two; any other detail is added in parentheses.
    """
    if not detail:
        return what
    if _content_words(detail) & _content_words(what):
        return detail
    return f"{what} ({detail})"


def _chat_error_line(code: int, detail: str, retry_after_ms: int, request: str,
                     handshake: bool) -> str:
    """The line for an ERROR with ``code`` answering ``request``."""
    detail = detail.strip()
    known = known_error_code(code)
    wording = _WORDING.get(known) if known is not None else None
    if wording is None:
        summary = ERROR_REGISTRY[known].summary.rstrip(".") if known is not None else \
            f"error {code}"
        return f"{_what(request)} refused: {error_name(code)}: {detail or summary}"
    what = wording.what_answering.get(request, wording.what)
    advice = wording.handshake_advice if handshake and wording.handshake_advice \
        else wording.advice
    if retry_after_ms and wording.wait_advice:
        advice = wording.wait_advice.format(wait=_seconds(retry_after_ms))
    if wording.shows_detail:
        what = _what_with_detail(what, detail)
    return f"{what}: {advice}" if advice else what


def _handshake_line(exc: HandshakeFailed) -> str:
    return "cannot log in: " + _chat_error_line(exc.code, exc.detail, exc.retry_after_ms,
                                               exc.request, True)


_ENDS_THE_CONNECTION = frozenset({ErrorCode.SERVER_SHUTDOWN, ErrorCode.IDLE_TIMEOUT,
                                  ErrorCode.SLOW_CONSUMER})
"""Codes whose own wording says why the connection ended (others: the reason does)."""


def _lost_reason(reason: str, code: int | None, retry_after_ms: int) -> str:
    """Why a connection ended, without the word "disconnected" in front."""
    reason = reason.strip() or "connection closed"
    if code is not None:
        if code in _ENDS_THE_CONNECTION:
            return _chat_error_line(code, "", retry_after_ms, "", False)
        return reason
    lowered = reason.lower()
    if "refused" in lowered:
        return f"{reason} (is the server running, on this host and port?)"
    if lowered.startswith(("cannot connect", "connection lost", "disconnected")):
        return reason
    return f"connection lost: {reason}"


def _connection_lost_line(reason: str, code: int | None, retry_after_ms: int) -> str:
    # With a code the server said goodbye: the line says "disconnected"; without
    # one the reason itself says what happened ("connection lost: ...").
    lost = _lost_reason(reason, code, retry_after_ms)
    return f"disconnected: {lost}" if code is not None else lost


def disconnect_reason(event: Disconnected) -> str:
    """Why the connection ended, for a place that already says "disconnected" (a title
    bar); empty when this client closed it itself."""
    if event.code is None and event.reason == "closed":
        return ""
    return _lost_reason(event.reason, event.code, 0)


def _member_left_line(event: MemberLeft, me: str | None) -> str:
    mine = me is not None and fold(event.nick) == fold(me)
    who = "you were" if mine else f"{event.nick} was"
    by = f" by {event.by}" if event.by else ""
    reason = f": {event.reason}" if event.reason else ""
    if event.kind == LeaveKind.KICK:
        return f"{who} kicked from {event.room}{by}{reason}"
    if event.kind == LeaveKind.BAN:
        return f"{who} banned from {event.room}{by}{reason}"
    subject = "you" if mine else event.nick
    verb = {LeaveKind.PART: "left", LeaveKind.QUIT: "quit",
            LeaveKind.DISCONNECT: "lost the connection"}.get(LeaveKind(event.kind), "left")
    where = f" {event.room}" if event.kind == LeaveKind.PART else f" ({event.room})"
    return f"{subject} {verb}{where}{reason}"


def describe_error(exc: BaseException | Message | ClientEvent, *, me: str | None = None) -> str:
    """One line for a person: what went wrong (never a traceback).

    Takes the exceptions the client can meet (``HandshakeFailed``,
    ``ChatError``, ``ConnectionLost``, ``CommandError``, ``OSError``, TLS and
    timeout errors) and the events that report trouble: ``Reconnecting``,
    ``Disconnected``, a fatal ``ERROR`` event, ``MEMBER_LEFT`` by KICK or BAN
    (``me``: our nick, to say "you were kicked").
    """
    try:
        line = _describe(exc, me)
    except Exception:  # describing must never fail: fall back to the bare facts
        line = f"{type(exc).__name__}: {exc}"
    return _one_line(line) or "unknown error"


def _describe(exc: BaseException | Message | ClientEvent, me: str | None) -> str:
    if isinstance(exc, HandshakeFailed):
        return _handshake_line(exc)
    if isinstance(exc, ChatError):
        return _chat_error_line(exc.code, exc.detail, exc.retry_after_ms, exc.request, False)
    if isinstance(exc, CommandError):
        if exc.code in (ErrorCode.INVALID_NICK, ErrorCode.INVALID_ROOM_NAME):
            return _chat_error_line(exc.code, "", 0, exc.command or "", False)
        return exc.message
    if isinstance(exc, ConnectionLost):
        return _connection_lost_line(exc.reason, exc.code, exc.retry_after_ms)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, on this host and port?)"
    if isinstance(exc, ssl.SSLError) and (failure := tls_failure(exc)) is not None:
        return f"TLS: {failure.value}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", "") or getattr(exc, "reason", "") or exc
        return f"TLS: the server's certificate is not valid: {why}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {getattr(exc, 'reason', '') or exc}"
    if isinstance(exc, TimeoutError):
        return "timed out waiting for the server"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    if isinstance(exc, ValidationError):
        return f"invalid {_validation_where(exc)}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, Reconnecting):
        return (f"connection lost ({exc.reason}); reconnecting in {exc.delay_s:.1f} s "
                f"(attempt {exc.attempt})")
    if isinstance(exc, Reconnected):
        rooms = f", back in {', '.join(exc.rooms)}" if exc.rooms else ""
        return f"reconnected as {exc.nick}{rooms}"
    if isinstance(exc, Disconnected):
        reason = disconnect_reason(exc)
        if exc.code is not None or not reason:
            return f"disconnected: {reason}" if reason else "disconnected"
        return reason
    if isinstance(exc, HistoryGapDetected):
        return (f"{exc.room}: missed messages {exc.first_seq}-{exc.last_seq}, "
                "no longer available")
    if isinstance(exc, Error):
        line = _chat_error_line(exc.code, exc.detail, exc.retry_after_ms, "", False)
        return f"disconnected: {line}" if exc.fatal else line
    if isinstance(exc, MemberLeft):
        return _member_left_line(exc, me)
    if isinstance(exc, Message | ClientEvent):
        return exc.NAME
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
