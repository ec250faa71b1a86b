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
* ``COMMANDS``: every command's name, usage, one-line help, argument kinds
  (they drive tab completion), parser and action, in the order ``/help``
  lists them. The table is the dispatch: adding a command is adding a row.

What a failed command says to a person is ``reference_client.wording``'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from chatproto import (
    ErrorCode,
    LocalProtocolError,
    Message,
    error_name,
    fold,
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
from reference_client.client import (
    ChatClient,
)
from reference_client.events import (
    ClientEvent,
)

__all__ = [
    "COMMANDS",
    "Command",
    "CommandError",
    "CommandResult",
    "CommandSpec",
    "complete_command",
    "execute",
    "help_lines",
    "message_fields",
    "parse_command",
    "validation_where",
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


def _target_and_text(typed: _Typed) -> Command:
    """``/msg NICK TEXT`` is private; ``/msg #room TEXT`` is text for that room (as in IRC,
    and as the conformance kit's client contract types it)."""
    command = _nick_and_text(typed)
    if _looks_like_room(command.nick or ""):
        return Command(SAY, room=command.nick, text=command.text)
    return command


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
        _spec("msg", "/msg NICK|#room TEXT",
              "send a private message to one user, or text to a joined room",
              _target_and_text, _msg, "nick", "text", aliases=("query", "m")),
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
            raise CommandError("no current room: /join #room first, or /msg NICK|#room TEXT",
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
        raise CommandError(f"invalid {validation_where(exc)}", command=command.name,
                           code=int(_validation_error_code(exc))) from None
    except LocalProtocolError as exc:
        raise CommandError(exc.detail, command=command.name, code=int(exc.code)) from None


def validation_where(exc: ValidationError) -> str:
    """Which field a ``ValidationError`` is about (``"room"``, ``"limits.max_frame_size"``)."""
    errors = exc.errors()
    return ".".join(str(part) for part in errors[0]["loc"]) if errors else "field"
