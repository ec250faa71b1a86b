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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from chatproto import ERROR_REGISTRY, ErrorCode, LocalProtocolError, Message, fold
from chatproto import validation_error_code as _validation_error_code
from chatproto.messages import (
    Error,
    HistoryGap,
    LeaveKind,
    MemberLeft,
    RoomInfo,
    RoomMessage,
    UserInfo,
)
from reference_client.client import (
    ChatClient,
    ChatError,
    ConnectionLost,
    HandshakeFailed,
    HistoryPage,
    JoinResult,
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


# ------------------------------------------------------------------ metadata


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """What a person needs to know about one command.

    ``args`` names the kind of each positional argument, for completion:
    ``"room"`` (any room name), ``"joined_room"`` (a room the client is in),
    ``"nick"``, ``"command"`` (a command name, for /help), ``"text"`` (free
    text, the rest of the line), ``"password"``, ``"name"``, ``"count"``.
    """

    name: str
    usage: str
    help: str
    args: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


def _spec(name: str, usage: str, help: str, *args: str,
          aliases: tuple[str, ...] = ()) -> CommandSpec:
    return CommandSpec(name, usage, help, args, aliases)


COMMANDS: Mapping[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        _spec("join", "/join #room", "join a room (creating it) and make it the current room",
              "room", aliases=("j",)),
        _spec("part", "/part [#room] [reason]", "leave a room (default: the current room)",
              "joined_room", "text", aliases=("leave",)),
        _spec("switch", "/switch #room", "make a joined room the current room",
              "joined_room"),
        _spec("msg", "/msg NICK TEXT", "send a private message to one user",
              "nick", "text", aliases=("query", "m")),
        _spec("nick", "/nick NEW", "change your nickname", "nick"),
        _spec("users", "/users", "list the connected users", aliases=("who",)),
        _spec("rooms", "/rooms", "list the rooms on the server", aliases=("list",)),
        _spec("members", "/members [#room]", "list the members of a room (default: current)",
              "joined_room", aliases=("names",)),
        _spec("topic", "/topic [#room] [TEXT]",
              "set a room's topic (without TEXT: show it)", "joined_room", "text"),
        _spec("away", "/away [MESSAGE]", "mark yourself away (with a message)", "text"),
        _spec("back", "/back", "clear your away status"),
        _spec("register", "/register PASSWORD",
              "register your current nick as an account with this password", "password"),
        _spec("login", "/login NICK PASSWORD", "log in to an account and take its nick",
              "nick", "password"),
        _spec("oper", "/oper NAME PASSWORD", "authenticate as a server operator",
              "name", "password"),
        _spec("kick", "/kick #room NICK [reason]", "operator: remove a user from a room",
              "joined_room", "nick", "text"),
        _spec("ban", "/ban #room NICK [reason]",
              "operator: ban a nick from a room (and remove it)", "joined_room", "nick", "text"),
        _spec("unban", "/unban #room NICK", "operator: lift a ban", "joined_room", "nick"),
        _spec("mute", "/mute #room NICK", "operator: stop a member's messages in a room",
              "joined_room", "nick"),
        _spec("unmute", "/unmute #room NICK", "operator: allow a member's messages again",
              "joined_room", "nick"),
        _spec("history", "/history [#room] [N]",
              "show the last N messages of a room (default 50)", "joined_room", "count"),
        _spec("quit", "/quit [reason]", "leave the server", "text", aliases=("exit",)),
        _spec("help", "/help [COMMAND]", "list the commands, or explain one", "command",
              aliases=("?",)),
    )
}
"""Every command by name, in the order ``/help`` lists them."""

SAY = "say"
"""The ``Command.name`` of plain text sent to the current room."""

_ALIASES: dict[str, str] = {
    alias: spec.name for spec in COMMANDS.values() for alias in (spec.name, *spec.aliases)
}

DEFAULT_HISTORY = 50
_MAX_HISTORY = 65535


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


def _split(rest: str, count: int) -> tuple[list[str], str]:
    """Up to ``count`` leading words of ``rest``, and the rest of it (stripped)."""
    words: list[str] = []
    rest = rest.strip()
    while rest and len(words) < count:
        parts = rest.split(None, 1)
        words.append(parts[0])
        rest = parts[1].strip() if len(parts) > 1 else ""
    return words, rest


def _looks_like_room(word: str) -> bool:
    return word.startswith("#")


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

    def usage() -> CommandError:
        return CommandError(f"usage: {spec.usage}", command=name)

    def room_or_current(words: list[str]) -> str:
        """The room named by the first word if it is one (removed), else the current room."""
        if words and _looks_like_room(words[0]):
            return words.pop(0)
        if current_room is None:
            raise CommandError(f"no current room: usage: {spec.usage}", command=name)
        return current_room

    if name in ("users", "rooms", "back"):
        if rest.strip():
            raise usage()
        return Command(name)
    if name in ("join", "switch"):
        words, extra = _split(rest, 1)
        if len(words) != 1 or extra:
            raise usage()
        return Command(name, room=words[0])
    if name == "part":
        room_word, reason = _split(rest, 1)
        if room_word and not _looks_like_room(room_word[0]):
            reason = rest.strip()  # all of it is the reason
            room_word = []
        return Command(name, room=room_or_current(room_word), text=reason)
    if name == "msg":
        words, text = _split(rest, 1)
        if not words or not text:
            raise usage()
        return Command(name, nick=words[0], text=text)
    if name == "nick":
        words, extra = _split(rest, 1)
        if len(words) != 1 or extra:
            raise usage()
        return Command(name, nick=words[0])
    if name == "members":
        words, extra = _split(rest, 1)
        if extra or (words and not _looks_like_room(words[0])):
            raise usage()
        return Command(name, room=room_or_current(words))
    if name == "topic":
        words, text = _split(rest, 1)
        if words and not _looks_like_room(words[0]):
            text = rest.strip()
            words = []
        room = room_or_current(words)
        return Command(name, room=room, text=text or None)
    if name == "away":
        return Command(name, text=rest.strip() or "away")
    if name == "register":
        password = rest.strip()
        if not password:
            raise usage()
        return Command(name, password=password)
    if name in ("login", "oper"):
        words, password = _split(rest, 1)
        if not words or not password:
            raise usage()
        if name == "login":
            return Command(name, nick=words[0], password=password)
        return Command(name, target=words[0], password=password)
    if name in ("kick", "ban"):
        words, reason = _split(rest, 2)
        if len(words) != 2 or not _looks_like_room(words[0]):
            raise usage()
        return Command(name, room=words[0], nick=words[1], text=reason)
    if name in ("unban", "mute", "unmute"):
        words, extra = _split(rest, 2)
        if len(words) != 2 or extra or not _looks_like_room(words[0]):
            raise usage()
        return Command(name, room=words[0], nick=words[1])
    if name == "history":
        words, extra = _split(rest, 2)
        if extra:
            raise usage()
        room = room_or_current(words)
        count = DEFAULT_HISTORY
        if words:
            if len(words) != 1 or not words[0].isdigit() or not 1 <= int(words[0]) <= _MAX_HISTORY:
                raise usage()
            count = int(words[0])
        return Command(name, room=room, count=count)
    if name == "quit":
        return Command(name, text=rest.strip())
    if name == "help":
        words, extra = _split(rest, 1)
        if extra:
            raise usage()
        if words and words[0].lstrip("/").lower() not in _ALIASES:
            raise CommandError(f"unknown command {words[0]}; /help lists the commands",
                               command=name)
        return Command(name, target=words[0].lstrip("/").lower() if words else None)
    raise AssertionError(f"command {name} has no parser")  # pragma: no cover


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
        data["name"] = _code_name(event.code)
    if isinstance(event, MemberLeft):
        data["kind_name"] = _leave_kind_name(event.kind)
    return data


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"ERROR_{code}"


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


def _find_room(client: ChatClient, room: str) -> str | None:
    state = client.rooms.get(fold(room))
    return state.name if state is not None else None


async def execute(client: ChatClient, command: Command) -> CommandResult:
    """Carry out ``command`` with ``client``.

    Raises ``ChatError`` (the server refused, or a field is invalid),
    ``ConnectionLost``, or ``CommandError`` (found locally: not in that room...).
    """
    try:
        return await _execute(client, command)
    except ValidationError as exc:  # a field the library did not check itself
        raise CommandError(f"invalid {_validation_where(exc)}", command=command.name,
                           code=int(_validation_error_code(exc))) from None
    except LocalProtocolError as exc:
        raise CommandError(exc.detail, command=command.name, code=int(exc.code)) from None


def _validation_where(exc: ValidationError) -> str:
    errors = exc.errors()
    return ".".join(str(part) for part in errors[0]["loc"]) if errors else "field"


async def _execute(client: ChatClient, command: Command) -> CommandResult:
    name = command.name
    room = command.room or ""
    nick = command.nick or ""
    text = command.text or ""

    if name == SAY:
        ok = await client.send_room(room, text)
        return CommandResult(name, {"room": room, "msg_id": ok.msg_id, "seq": ok.seq,
                                    "timestamp_ms": ok.timestamp_ms}, value=ok)
    if name == "join":
        joined = await client.join(room)
        return _join_result(joined)
    if name == "switch":
        found = _find_room(client, room)
        if found is None:
            raise CommandError(f"you are not in {room}: /join it first", command=name,
                               code=int(ErrorCode.NOT_IN_ROOM))
        return CommandResult(name, {"room": found}, (f"now talking in {found}",), room=found)
    if name == "part":
        ok = await client.part(room, text)
        return CommandResult(name, {"room": room}, (f"left {room}",), value=ok)
    if name == "msg":
        ok = await client.send_private(nick, text)
        return CommandResult(name, {"nick": nick, "msg_id": ok.msg_id,
                                    "timestamp_ms": ok.timestamp_ms},
                             (f"-> {nick}: {text}",), value=ok)
    if name == "nick":
        ok = await client.change_nick(nick)
        return CommandResult(name, {"nick": client.nick},
                             (f"you are now known as {client.nick}",), value=ok)
    if name == "users":
        users = await client.list_users()
        return CommandResult(name, {"users": [message_fields(u) for u in users]},
                             (_users_line("users", users),), value=users)
    if name == "rooms":
        rooms = await client.list_rooms()
        lines = tuple(_room_line(r) for r in rooms) or ("no rooms yet",)
        return CommandResult(name, {"rooms": [message_fields(r) for r in rooms]}, lines,
                             value=rooms)
    if name == "members":
        members = await client.list_members(room)
        return CommandResult(name, {"room": room,
                                    "members": [message_fields(m) for m in members]},
                             (_users_line(f"members of {room}", members),), value=members)
    if name == "topic":
        if command.text is None:
            state = client.rooms.get(fold(room))
            if state is None:
                raise CommandError(f"you are not in {room}", command=name,
                                   code=int(ErrorCode.NOT_IN_ROOM))
            line = f"topic of {state.name}: {state.topic}" if state.topic else \
                f"{state.name} has no topic"
            return CommandResult(name, {"room": state.name, "topic": state.topic}, (line,))
        ok = await client.set_topic(room, text)
        return CommandResult(name, {"room": room, "topic": text},
                             (f"topic of {room} set to: {text}",), value=ok)
    if name == "away":
        ok = await client.away(text)
        return CommandResult(name, {"away": True, "message": text},
                             (f"you are marked away: {text}",), value=ok)
    if name == "back":
        ok = await client.away("")
        return CommandResult(name, {"away": False}, ("you are back",), value=ok)
    if name == "register":
        ok = await client.register(command.password)
        return CommandResult(name, {"nick": client.nick},
                             (f"registered {client.nick}; log in with its password next time",),
                             value=ok)
    if name == "login":
        ok = await client.login(nick, command.password)
        return CommandResult(name, {"nick": client.nick}, (f"logged in as {client.nick}",),
                             value=ok)
    if name == "oper":
        oper_name = command.target or ""
        ok = await client.oper(oper_name, command.password)
        return CommandResult(name, {"name": oper_name}, ("you are now a server operator",),
                             value=ok)
    if name in ("kick", "ban"):
        call = client.kick if name == "kick" else client.ban
        ok = await call(room, nick, text)
        done = "kicked from" if name == "kick" else "banned from"
        return CommandResult(name, {"room": room, "nick": nick, "reason": text},
                             (f"{nick} {done} {room}",), value=ok)
    if name == "unban":
        ok = await client.unban(room, nick)
        return CommandResult(name, {"room": room, "nick": nick}, (f"{nick} unbanned in {room}",),
                             value=ok)
    if name in ("mute", "unmute"):
        muted = name == "mute"
        ok = await client.mute(room, nick, muted)
        return CommandResult(name, {"room": room, "nick": nick, "muted": muted},
                             (f"{nick} {name}d in {room}",), value=ok)
    if name == "history":
        page = await client.history(room, limit=command.count or DEFAULT_HISTORY)
        return _history_result(room, page)
    if name == "quit":
        await client.quit(text)
        return CommandResult(name, {}, ("disconnected",), quit=True)
    if name == "help":
        topic = command.target
        specs = [COMMANDS[_ALIASES[topic]]] if topic else list(COMMANDS.values())
        return CommandResult(name, {"commands": [
            {"name": s.name, "usage": s.usage, "help": s.help} for s in specs]},
            tuple(help_lines(topic)))
    raise CommandError(f"unknown command {name}", command=name)


def _join_result(joined: JoinResult) -> CommandResult:
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
    return CommandResult("join", data, tuple(lines), value=joined, room=info.room)


def _history_result(room: str, page: HistoryPage) -> CommandResult:
    lines = [*_gap_line(room, page.gap), *(_message_line(m) for m in page.messages)]
    data = {"room": room, "messages": [message_fields(m) for m in page.messages],
            "gap": message_fields(page.gap) if page.gap is not None else None}
    return CommandResult("history", data, tuple(lines) or (f"{room}: no messages",),
                         value=page)


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


_E = ErrorCode
_WORDING: Mapping[ErrorCode, _Wording] = {
    _E.NICK_IN_USE: _Wording("nick already in use", "choose another nick"),
    _E.NICK_REGISTERED: _Wording("this nick is registered to an account",
                                 "use /login NICK PASSWORD"),
    _E.AUTH_FAILED: _Wording("wrong password"),
    _E.UNSUPPORTED_VERSION: _Wording(
        "version mismatch: the server does not speak chatproto version 1",
        "use a client that matches the server"),
    _E.INVALID_NICK: _Wording("invalid nick: a nick is an ASCII letter then letters, digits, "
                              "'_' or '-' (at most 32)", shows_detail=False),
    _E.INVALID_ROOM_NAME: _Wording("invalid room name: a room name is '#' then 1 to 63 "
                                   "letters, digits, '_' or '-'", shows_detail=False),
    _E.BANNED_FROM_ROOM: _Wording("you are banned from that room"),
    _E.RATE_LIMITED: _Wording("rate limited (too many requests)", shows_detail=False),
    _E.SERVER_SHUTDOWN: _Wording("the server is shutting down", shows_detail=False),
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
    try:
        known: ErrorCode | None = ErrorCode(code)
    except ValueError:
        known = None
    wording = _WORDING.get(known) if known is not None else None
    if wording is None:
        summary = ERROR_REGISTRY[known].summary.rstrip(".") if known is not None else \
            f"error {code}"
        name = known.name if known is not None else f"ERROR_{code}"
        return f"{_what(request)} refused: {name}: {detail or summary}"
    what, advice = wording.what, wording.advice
    # The few codes whose wording depends on the request or on retry_after_ms.
    if known is _E.NICK_REGISTERED and handshake:
        advice = "give its password (--password-env VAR or --password-stdin)"
    elif known is _E.AUTH_FAILED and request == "OPER":
        what = "wrong operator name or password"
    elif known is _E.RATE_LIMITED and retry_after_ms:
        advice = f"wait {_seconds(retry_after_ms)} before trying again"
    elif known is _E.SERVER_SHUTDOWN and retry_after_ms:
        advice = f"try again in {_seconds(retry_after_ms)}"
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
