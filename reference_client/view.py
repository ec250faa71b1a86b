"""What the terminal client's screen shows, as plain data: the view of a conversation.

``ChatView`` holds the whole state of the screen -- the windows (one per
joined room, plus the status window), the lines of each, unread counts, the
current window, the members of each room, the connection state -- and the
rules that turn events and command results into lines. The functions below it
decide how those lines look: styled fragments (``render_line``,
``pane_fragments``, ``panel_fragments``) wrapped at word boundaries
(``wrap_fragments``). Nothing here runs an application or touches a socket,
so all of it is unit-tested directly; ``reference_client.tui`` puts it on a
terminal.
"""

from __future__ import annotations

import re
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING

from chatproto import fold
from chatproto.messages import (
    LeaveKind,
    MemberJoined,
    MemberLeft,
    Message,
    MuteChanged,
    NickChanged,
    Notice,
    Presence,
    PrivateMessage,
    RoomMessage,
    TopicChanged,
)
from reference_client.events import (
    ClientEvent,
    Disconnected,
    HistoryGapDetected,
    Reconnected,
    Reconnecting,
)
from reference_client.wording import describe_error, disconnect_reason

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples


STATUS_WINDOW = "(status)"
"""Name of the window that is not a room: notices, errors, connection news."""

MAX_LINES_PER_WINDOW = 2000
"""Oldest lines of a window are dropped past this many."""

NICK_PALETTE: tuple[str, ...] = (
    "#e06c75",  # red
    "#98c379",  # green
    "#e5c07b",  # yellow
    "#61afef",  # blue
    "#c678dd",  # magenta
    "#56b6c2",  # cyan
    "#d19a66",  # orange
    "#ff79c6",  # pink
    "#8be9fd",  # light cyan
    "#50fa7b",  # bright green
    "#bd93f9",  # lavender
    "#f1fa8c",  # light yellow
)
"""Readable foreground colours on a dark or light background; a nick keeps its own."""


def nick_colour(nick: str) -> str:
    """The palette colour of ``nick``: the same for every spelling that folds alike.

    CRC-32 of the folded nick, not ``hash()``, so that it is stable across runs.
    """
    return NICK_PALETTE[zlib.crc32(fold(nick).encode("utf-8")) % len(NICK_PALETTE)]


def clock_hhmm(timestamp_ms: int) -> str:
    """``HH:MM`` in local time of a server timestamp (ms since the Unix epoch)."""
    return datetime.fromtimestamp(timestamp_ms / 1000).strftime("%H:%M")


class LineKind(Enum):
    MESSAGE = "message"
    """Someone's room message (``own`` tells whether it is ours)."""
    PRIVATE = "private"
    """A private message, received or sent."""
    SYSTEM = "system"
    """Joins, parts, topics, nick changes, connection news: shown dim."""
    ERROR = "error"
    """A refused command or a lost connection."""
    NOTICE = "notice"
    """Server text (message of the day)."""
    INFO = "info"
    """Output of a command the user asked for (/users, /rooms, /help)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One line (possibly several screen rows) of a window."""

    kind: LineKind
    time: str
    text: str
    nick: str = ""
    history: bool = False
    """Replayed from the room's history, not live: shown dimmed."""
    own: bool = False
    to: str = ""
    """For a private message we sent: the addressee."""

    def plain(self) -> str:
        """The line as a person reads it, without styles."""
        if self.kind is LineKind.MESSAGE:
            body = f"{self.nick}: {self.text}"
        elif self.kind is LineKind.PRIVATE:
            body = (f"[private] -> {self.to}: {self.text}" if self.own
                    else f"[private] {self.nick}: {self.text}")
        elif self.kind is LineKind.ERROR:
            body = f"!! {self.text}"
        elif self.kind is LineKind.NOTICE:
            body = f"-!- {self.text}"
        elif self.kind is LineKind.INFO:
            body = self.text
        else:
            body = f"-- {self.text}"
        return f"{self.time} {body}" if self.time else body


@dataclass
class Member:
    nick: str
    away: bool = False
    muted: bool = False


@dataclass
class Window:
    """One pane of lines: a room, or the status window."""

    name: str
    is_room: bool = True
    joined: bool = True
    topic: str = ""
    lines: deque[Line] = field(default_factory=lambda: deque(maxlen=MAX_LINES_PER_WINDOW))
    unread: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    """Members by folded nick."""
    history_at: int | None = None
    """Where join history goes: set when live events opened the window before
    the JOIN's answer was shown (the answer and the events race)."""

    def member_nicks(self) -> list[str]:
        return sorted((m.nick for m in self.members.values()), key=fold)


class ConnectionState(Enum):
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"


_REMOVED_BY: Mapping[int, str] = {LeaveKind.KICK: "kicked", LeaveKind.BAN: "banned"}
"""How a member was made to leave a room, by its MEMBER_LEFT kind."""

_WENT_AWAY: Mapping[int, str] = {LeaveKind.QUIT: "quit", LeaveKind.DISCONNECT: "disconnected"}
"""How someone else left the whole server (we who quit see no more lines)."""

class ChatView:
    """Everything the screen shows, as plain state, updated by events and commands.

    Windows are kept in order: the status window first, then rooms in the order
    they were joined. Room names are matched by their fold.
    """

    def __init__(self, *, nick: str, server: str = "",
                 commands: Mapping[str, Sequence[str]] | Iterable[str] = (),
                 aliases: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.nick = nick
        self.server = server
        self._command_args: dict[str, tuple[str, ...]] = (
            {name.lstrip("/"): tuple(args) for name, args in commands.items()}
            if isinstance(commands, Mapping) else {name.lstrip("/"): () for name in commands})
        self.commands = sorted("/" + name for name in self._command_args)
        """The command names (with their "/") that Tab completes."""
        self._aliases = {k.lstrip("/"): v.lstrip("/") for k, v in (aliases or {}).items()}
        self.clock = clock
        self.state = ConnectionState.CONNECTED
        self.state_detail = ""
        """What the state word in the title leaves unsaid ("attempt 2", why it ended)."""
        self._windows: dict[str, Window] = {
            fold(STATUS_WINDOW): Window(STATUS_WINDOW, is_room=False, joined=False)
        }
        self._current = fold(STATUS_WINDOW)
        self.scroll = 0
        """Lines scrolled back from the bottom of the current window (PageUp)."""
        self.changed: Callable[[], None] = lambda: None
        """Called after every change (the TUI redraws)."""

    # ------------------------------------------------------------ windows

    @property
    def windows(self) -> list[Window]:
        return list(self._windows.values())

    @property
    def current(self) -> Window:
        return self._windows[self._current]

    @property
    def current_room(self) -> str | None:
        """The current window's room name, when it is a joined room."""
        window = self.current
        return window.name if window.is_room and window.joined else None

    def window(self, name: str) -> Window | None:
        return self._windows.get(fold(name))

    def rooms(self) -> list[str]:
        return [w.name for w in self._windows.values() if w.is_room]

    def _ensure_room(self, room: str) -> Window:
        key = fold(room)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = Window(room)
            window.history_at = 0
        elif not window.joined:
            window.joined = True
            window.history_at = len(window.lines)
        return window

    def switch(self, name: str) -> bool:
        """Make ``name`` the current window; False when there is no such window."""
        key = fold(name)
        if key not in self._windows:
            return False
        self._current = key
        self._windows[key].unread = 0
        self.scroll = 0
        self.changed()
        return True

    def switch_index(self, index: int) -> bool:
        """Switch to window number ``index`` as numbered in the side panel (status = 0)."""
        names = list(self._windows)
        if not 0 <= index < len(names):
            return False
        return self.switch(names[index])

    def cycle(self, step: int) -> None:
        """Next (+1) or previous (-1) window, wrapping around."""
        names = list(self._windows)
        index = names.index(self._current)
        self.switch(names[(index + step) % len(names)])

    def scroll_by(self, lines: int, *, keep: int = 1) -> None:
        """Scroll back (positive) or forward (negative) in the current window.

        At least ``keep`` lines stay above the scroll position (the TUI passes
        the pane's height, so that a window that fits is never scrolled).
        """
        limit = max(0, len(self.current.lines) - max(1, keep))
        self.scroll = max(0, min(self.scroll + lines, limit))
        self.changed()

    # ------------------------------------------------------------- lines

    def now(self) -> str:
        return datetime.fromtimestamp(self.clock()).strftime("%H:%M")

    def _add(self, window: Window, line: Line, *, counts: bool = False) -> None:
        window.lines.append(line)
        if counts and window.name != self.current.name:
            window.unread += 1
        self.changed()

    def system(self, text: str, room: str | None = None, *,
               kind: LineKind = LineKind.SYSTEM) -> None:
        """A line in ``room``'s window; with no room, in the current window (and status)."""
        line = Line(kind, self.now(), text)
        if room is not None:
            window = self.window(room)
            if window is not None:
                self._add(window, line)
                return
        self._add(self.current, line)
        status = self._windows[fold(STATUS_WINDOW)]
        if self.current is not status:
            status.lines.append(line)

    def error(self, text: str, room: str | None = None) -> None:
        self.system(text, room, kind=LineKind.ERROR)

    def info(self, text: str) -> None:
        """Command output, in the current window."""
        self._add(self.current, Line(LineKind.INFO, "", text))

    # -------------------------------------------------- results of commands

    def joined(self, room: str, *, topic: str = "", members: Iterable[str] = (),
               history: Sequence[RoomMessage] = (), switch: bool = True) -> None:
        """We joined ``room`` (JOIN answered): open its window, show its history dimmed."""
        window = self._ensure_room(room)
        window.name = room
        window.joined = True
        window.topic = topic
        for nick in members:
            window.members.setdefault(fold(nick), Member(nick))
        window.members.setdefault(fold(self.nick), Member(self.nick))
        lines = [self._message_line(message, history=True) for message in history]
        at = window.history_at
        if at is None:
            window.lines.extend(lines)
        else:
            for offset, line in enumerate(lines):
                window.lines.insert(at + offset, line)
        window.history_at = None
        window.lines.append(Line(LineKind.SYSTEM, self.now(), f"You joined {room}"
                                 + (f" -- topic: {topic}" if topic else "")))
        if switch:
            self.switch(room)
        self.changed()

    def parted(self, room: str) -> None:
        """We left ``room``: close its window."""
        key = fold(room)
        if key not in self._windows or key == fold(STATUS_WINDOW):
            return
        names = list(self._windows)
        index = names.index(key)
        del self._windows[key]
        if self._current == key:
            self._current = list(self._windows)[max(0, index - 1)]
            self.current.unread = 0
            self.scroll = 0
        self.changed()

    def own_message(self, room: str, text: str, timestamp_ms: int = 0) -> None:
        """Our message was accepted (the server does not echo it back to us)."""
        window = self.window(room) or self._ensure_room(room)
        stamp = clock_hhmm(timestamp_ms) if timestamp_ms else self.now()
        self._add(window, Line(LineKind.MESSAGE, stamp, text, nick=self.nick, own=True))

    def own_private(self, nick: str, text: str, timestamp_ms: int = 0) -> None:
        stamp = clock_hhmm(timestamp_ms) if timestamp_ms else self.now()
        self._add(self.current, Line(LineKind.PRIVATE, stamp, text, nick=self.nick,
                                     own=True, to=nick))

    def set_nick(self, nick: str) -> None:
        """Our own nick is now ``nick`` (NICK or LOGIN succeeded, or reconnect)."""
        if nick == self.nick:
            return
        old = self.nick
        self.nick = nick
        for window in self._windows.values():
            member = window.members.pop(fold(old), None)
            if member is not None:
                member.nick = nick
                window.members[fold(nick)] = member
                window.lines.append(Line(LineKind.SYSTEM, self.now(),
                                         f"You are now known as {nick}"))
        if not any(w.is_room and w.joined for w in self._windows.values()):
            self.system(f"You are now known as {nick}")
        self.changed()

    def set_members(self, room: str, nicks: Iterable[str]) -> None:
        """Replace ``room``'s member list (after LIST_MEMBERS or a reconnect)."""
        window = self.window(room)
        if window is None:
            return
        old = window.members
        window.members = {}
        for nick in nicks:
            previous = old.get(fold(nick))
            window.members[fold(nick)] = Member(
                nick, away=previous.away if previous else False,
                muted=previous.muted if previous else False)
        self.changed()

    # ------------------------------------------------------------ events

    def _message_line(self, message: RoomMessage, *, history: bool) -> Line:
        return Line(LineKind.MESSAGE, clock_hhmm(message.timestamp_ms), message.text,
                    nick=message.sender, history=history,
                    own=fold(message.sender) == fold(self.nick))

    def _is_me(self, nick: str) -> bool:
        return fold(nick) == fold(self.nick)

    def _rooms_with(self, nick: str) -> list[Window]:
        key = fold(nick)
        return [w for w in self._windows.values() if w.is_room and key in w.members]

    def on_event(self, event: Message | ClientEvent) -> None:
        """Apply one event from ``ChatClient.events()``."""
        match event:
            case RoomMessage():
                self._on_room_message(event)
            case PrivateMessage():
                self._on_private(event)
            case MemberJoined():
                self._on_joined(event)
            case MemberLeft():
                self._on_left(event)
            case NickChanged():
                self._on_nick(event)
            case TopicChanged():
                self._on_topic(event)
            case Presence():
                self._on_presence(event)
            case MuteChanged():
                self._on_mute(event)
            case Notice():
                self._on_notice(event)
            case HistoryGapDetected():
                self._on_gap(event)
            case Reconnecting():
                self._on_reconnecting(event)
            case Reconnected():
                self._on_reconnected(event)
            case Disconnected():
                self._on_disconnected(event)
            case _:
                return
        self.changed()

    def _on_room_message(self, event: RoomMessage) -> None:
        window = self._ensure_room(event.room)
        window.members.setdefault(fold(event.sender), Member(event.sender))
        self._add(window, self._message_line(event, history=event.history), counts=True)

    def _on_private(self, event: PrivateMessage) -> None:
        line = Line(LineKind.PRIVATE, clock_hhmm(event.timestamp_ms), event.text,
                    nick=event.sender)
        self._add(self.current, line)
        status = self._windows[fold(STATUS_WINDOW)]
        if status is not self.current:
            status.lines.append(line)  # kept there too, once the room window is gone

    def _on_joined(self, event: MemberJoined) -> None:
        window = self._ensure_room(event.room)
        window.members[fold(event.nick)] = Member(event.nick)
        self._add(window, Line(LineKind.SYSTEM, self.now(),
                               f"{event.nick} joined {window.name}"))

    def _on_left(self, event: MemberLeft) -> None:
        window = self.window(event.room)
        if window is None:
            return
        text = self._left_line(event, window.name)
        if self._is_me(event.nick):
            window.joined = False
            window.members.clear()
            window.history_at = None
            line = Line(LineKind.ERROR, self.now(), text)
            window.lines.append(line)
            if window is not self.current:
                self._add(self.current, line)
            return
        window.members.pop(fold(event.nick), None)
        self._add(window, Line(LineKind.SYSTEM, self.now(), text))

    def _left_line(self, event: MemberLeft, room: str) -> str:
        reason = f" ({event.reason})" if event.reason else ""
        mine = self._is_me(event.nick)
        removed = _REMOVED_BY.get(event.kind)
        if removed is not None:
            who = "You were" if mine else f"{event.nick} was"
            by = f" by {event.by}" if event.by else ""
            return f"{who} {removed} from {room}{by}{reason}"
        went = _WENT_AWAY.get(event.kind)
        if went is not None and not mine:
            return f"{event.nick} {went}{reason}"
        return f"{'You' if mine else event.nick} left {room}{reason}"

    def _on_nick(self, event: NickChanged) -> None:
        if self._is_me(event.old_nick):
            self.set_nick(event.new_nick)
            return
        for window in self._rooms_with(event.old_nick):
            member = window.members.pop(fold(event.old_nick))
            member.nick = event.new_nick
            window.members[fold(event.new_nick)] = member
            window.lines.append(Line(LineKind.SYSTEM, self.now(),
                                     f"{event.old_nick} is now known as {event.new_nick}"))

    def _on_topic(self, event: TopicChanged) -> None:
        window = self.window(event.room)
        if window is None:
            return
        window.topic = event.topic
        who = event.by or "The server"
        text = (f"{who} changed the topic of {window.name} to: {event.topic}" if event.topic
                else f"{who} cleared the topic of {window.name}")
        self._add(window, Line(LineKind.SYSTEM, self.now(), text))

    def _on_presence(self, event: Presence) -> None:
        if event.away:
            text = f"{event.nick} is away" + (f": {event.away_message}"
                                              if event.away_message else "")
        else:
            text = f"{event.nick} is back"
        for window in self._rooms_with(event.nick):
            window.members[fold(event.nick)].away = event.away
            window.lines.append(Line(LineKind.SYSTEM, self.now(), text))

    def _on_mute(self, event: MuteChanged) -> None:
        window = self.window(event.room)
        if window is None:
            return
        member = window.members.get(fold(event.nick))
        if member is not None:
            member.muted = event.muted
        by = f" by {event.by}" if event.by else ""
        if self._is_me(event.nick):
            text = (f"You were muted in {window.name}{by}" if event.muted
                    else f"You were unmuted in {window.name}{by}")
            self._add(window, Line(LineKind.ERROR, self.now(), text))
        else:
            text = (f"{event.nick} was muted{by}" if event.muted
                    else f"{event.nick} was unmuted{by}")
            self._add(window, Line(LineKind.SYSTEM, self.now(), text))

    def _on_notice(self, event: Notice) -> None:
        for text in event.text.splitlines() or [""]:
            self._add(self.current, Line(LineKind.NOTICE, self.now(), text))

    def _on_gap(self, event: HistoryGapDetected) -> None:
        count = event.last_seq - event.first_seq + 1
        noun = "message" if count == 1 else "messages"
        self.system(f"{count} {noun} of {event.room} could not be recovered "
                    f"(seq {event.first_seq}-{event.last_seq})", event.room)

    def _on_reconnecting(self, event: Reconnecting) -> None:
        self.state = ConnectionState.RECONNECTING
        self.state_detail = f"attempt {event.attempt}"
        self.error(describe_error(event))

    def _on_reconnected(self, event: Reconnected) -> None:
        self.state = ConnectionState.CONNECTED
        self.state_detail = ""
        if event.nick:
            self.set_nick(event.nick)
        self.system(describe_error(event))

    def _on_disconnected(self, event: Disconnected) -> None:
        self.state = ConnectionState.DISCONNECTED
        # The title says "disconnected" itself: only the reason goes with it.
        self.state_detail = disconnect_reason(event)
        if event.code is None and event.reason == "closed":
            return  # we closed it ourselves
        self.error(describe_error(event))

    def resync(self, rooms: Mapping[str, Iterable[str]]) -> None:
        """After a reconnect: the rooms the client is in again, with their members.

        A room that could not be joined again (banned meanwhile...) is marked
        as left, with a line saying so.
        """
        back = {fold(name): members for name, members in rooms.items()}
        for window in self._windows.values():
            if not (window.is_room and window.joined):
                continue
            members = back.get(fold(window.name))
            if members is None:
                window.joined = False
                window.members.clear()
                self._add(window, Line(LineKind.ERROR, self.now(),
                                       f"Could not rejoin {window.name}"))
            else:
                self.set_members(window.name, members)
                window.members.setdefault(fold(self.nick), Member(self.nick))
        self.changed()

    def show_history(self, room: str, messages: Sequence[RoomMessage]) -> None:
        """Messages fetched with /history: dimmed, under a heading, in ``room``'s window.

        That window becomes the current one: the person asked to see the room,
        and what they type next goes to the room whose messages they are
        reading (shown in another room's window, a reply would go astray).
        A room without a window (not joined) gets the heading in the current one.
        """
        window = self.window(room) or self.current
        name = window.name if window.is_room and fold(window.name) == fold(room) else room
        count = len(messages)
        noun = "message" if count == 1 else "messages"
        self._add(window, Line(LineKind.INFO, "",
                               f"History of {name}: {count or 'no'} {noun}"))
        for message in messages:
            self._add(window, self._message_line(message, history=True))
        if window is not self.current:
            self.switch(window.name)

    # -------------------------------------------------------- completion

    def completions(self, text_before_cursor: str) -> list[str]:
        """Words that can replace the word before the cursor (Tab).

        The first word of a line that starts with "/" completes to a command.
        An argument of a command completes by its kind: a room (joined rooms),
        a nick (members of the current room), a command name (for /help);
        passwords and names complete to nothing. In plain text (and free-text
        arguments) a word starting with "#" completes to a room, any other word
        to a member of the current room. Matching is by fold (case-insensitive).
        """
        words = text_before_cursor.split(" ")
        word = words[-1]
        kind = "text"
        if text_before_cursor.startswith("/"):
            if len(words) == 1:
                return [c for c in self.commands if c.startswith(fold(word))]
            name = words[0][1:].lower()
            name = self._aliases.get(name, name)
            args = self._command_args.get(name, ())
            position = len([w for w in words[1:-1] if w])
            if position < len(args):
                kind = args[position]
            elif args and args[-1] == "text":
                kind = "text"
            else:
                return []
        if kind == "command":
            names = [c[1:] for c in self.commands]
            return [n for n in names if n.startswith(fold(word.lstrip("/")))]
        if kind in ("room", "joined_room") or (kind == "text" and word.startswith("#")):
            return [r for r in self.rooms() if fold(r).startswith(fold(word))]
        if kind in ("nick", "text"):
            nicks = self.current.member_nicks()
            return [n for n in nicks if fold(n).startswith(fold(word))]
        return []

    # ----------------------------------------------------------- display

    def state_text(self) -> str:
        """The connection state in words: ``connected``, ``disconnected: <why>``..."""
        state = self.state.value
        if self.state_detail and self.state is not ConnectionState.CONNECTED:
            state = f"{state}: {self.state_detail}"
        return state

    def title(self) -> str:
        where = self.current.name
        topic = f" -- {self.current.topic}" if self.current.topic else ""
        return f"chatproto {self.server} | {self.nick} | {where} | {self.state_text()}{topic}"

    def panel(self) -> list[tuple[str, str]]:
        """The side panel as (style class, text) rows: windows, then members."""
        rows: list[tuple[str, str]] = [("panel.heading", "Rooms")]
        for index, window in enumerate(self._windows.values()):
            current = window is self.current
            marker = ">" if current else " "
            name = window.name if window.joined or not window.is_room else f"({window.name})"
            unread = f" [{window.unread}]" if window.unread else ""
            style = ("panel.current" if current
                     else "panel.unread" if window.unread else "panel.room")
            rows.append((style, f"{marker}{index} {name}{unread}"))
        if self.current.is_room:
            members = self.current.members
            rows.append(("panel.heading", ""))
            rows.append(("panel.heading", f"Members ({len(members)})"))
            for nick in self.current.member_nicks():
                member = members[fold(nick)]
                flags = (" (away)" if member.away else "") + (" (muted)" if member.muted else "")
                rows.append((f"nick:{nick}", f" {nick}{flags}"))
        return rows

    def prompt(self) -> str:
        return f"[{self.current.name}] "



STYLE_RULES: dict[str, str] = {
    "title": "reverse bold",
    "time": "#8a8a8a",
    "system": "#8a8a8a",
    "history": "#6c6c6c italic",
    "error": "#ff5f5f bold",
    "notice": "#87afff",
    "private": "#ff87d7",
    "own": "bold",
    "info": "",
    "separator": "#585858",
    "panel.heading": "bold underline",
    "panel.current": "reverse",
    "panel.unread": "bold #ffd75f",
    "panel.room": "",
    "prompt": "bold",
}
"""Style classes of the screen (prompt_toolkit style strings)."""


CONTINUATION_INDENT = "      "
"""What starts every row of a line after its first: the text lines up past "HH:MM "."""


def render_line(line: Line) -> StyleAndTextTuples:
    """The styled fragments of one line (nick in its colour, history dimmed)."""
    text = line.text.expandtabs(4).replace("\n", "\n" + CONTINUATION_INDENT)
    stamp: StyleAndTextTuples = [("class:time", f"{line.time} ")] if line.time else []
    if line.history:
        return [("class:history",
                 line.plain().expandtabs(4).replace("\n", "\n" + CONTINUATION_INDENT))]
    if line.kind is LineKind.MESSAGE:
        nick_style = nick_colour(line.nick) + (" class:own" if line.own else "")
        return [*stamp, (nick_style, line.nick), ("", ": "), ("", text)]
    if line.kind is LineKind.PRIVATE:
        who: StyleAndTextTuples = (
            [("class:private", "[private] -> "), (nick_colour(line.to), line.to)] if line.own
            else [("class:private", "[private] "), (nick_colour(line.nick), line.nick)])
        return [*stamp, *who, ("", ": "), ("class:private", text)]
    style = {LineKind.ERROR: "class:error", LineKind.NOTICE: "class:notice",
             LineKind.INFO: "class:info"}.get(line.kind, "class:system")
    body = line.plain()[len(line.time) + 1:] if line.time else line.plain()
    return [*stamp, (style, body.expandtabs(4).replace("\n", "\n" + CONTINUATION_INDENT))]


_WORD_OR_GAP = re.compile(r"\n| +|[^ \n]+")


def wrap_fragments(fragments: StyleAndTextTuples, width: int,
                   indent: str = CONTINUATION_INDENT) -> StyleAndTextTuples:
    """``fragments`` broken into rows of at most ``width`` cells, at word boundaries.

    A word that does not fit on the row moves to the next one (the spaces
    before it are dropped); only a word longer than a whole row is broken
    inside. Rows after the first of a line start with ``indent`` (left out
    when the width leaves no room for it); a line's own newlines and leading
    spaces are kept. Styles stay with their text.
    """
    from prompt_toolkit.utils import get_cwidth

    width = max(1, width)
    indent_width = get_cwidth(indent) if get_cwidth(indent) * 2 <= width else 0
    out: StyleAndTextTuples = []
    column = 0
    row_start = 0  # the column where the row's own text begins (after an indent)
    at_line_start = True
    gap: StyleAndTextTuples = []  # spaces waiting to see whether the next word fits
    word: StyleAndTextTuples = []

    def new_row() -> None:
        nonlocal column, row_start
        out.append(("", "\n"))
        if indent_width:
            out.append(("", indent))
        column = row_start = indent_width

    def width_of(pieces: StyleAndTextTuples) -> int:
        return sum(get_cwidth(piece[1]) for piece in pieces)

    def place_word() -> None:
        nonlocal column, at_line_start
        if not word:
            return
        needed = width_of(word)
        spaces = width_of(gap)
        if column + spaces + needed <= width:
            out.extend(gap)
            column += spaces
        elif column > row_start and indent_width + needed <= width:
            new_row()
        elif column + spaces < width:  # too long for any row: break it, starting here
            out.extend(gap)
            column += spaces
        else:
            new_row()
        for style, text, *_ in word:
            chunk = ""
            for char in text:
                char_width = get_cwidth(char)
                if column + char_width > width and column > row_start:
                    if chunk:
                        out.append((style, chunk))
                    chunk = ""
                    new_row()
                chunk += char
                column += char_width
            if chunk:
                out.append((style, chunk))
        gap.clear()
        word.clear()
        at_line_start = False

    for fragment in fragments:
        style, text = fragment[0], fragment[1]
        if not text:  # zero-width markers ([SetCursorPosition]) stay where they are
            place_word()
            out.append(fragment)
            continue
        for piece in _WORD_OR_GAP.findall(text):
            if piece == "\n":
                place_word()
                out.append(("", "\n"))
                column = row_start = 0
                gap.clear()
                at_line_start = True
            elif piece[0] == " ":
                place_word()
                if at_line_start:  # indentation of the line itself
                    out.append((style, piece))
                    column = row_start = min(column + len(piece), width - 1)
                else:
                    gap.append((style, piece))
            else:
                word.append((style, piece))
    place_word()
    return out


def pane_fragments(view: ChatView, *, limit: int = 400,
                   width: int | None = None) -> StyleAndTextTuples:
    """The message pane: the current window's last lines, ``view.scroll`` up from the end.

    With ``width`` (the pane's columns) each line is wrapped at word boundaries.
    The cursor marker goes at the end of the last visible line so that the
    window scrolls to show it (and what comes before it).
    """
    lines = list(view.current.lines)
    end = len(lines) - view.scroll
    fragments: StyleAndTextTuples = []
    for index, line in enumerate(lines[max(0, end - limit):end]):
        if index:
            fragments.append(("", "\n"))
        rendered = render_line(line)
        fragments.extend(wrap_fragments(rendered, width) if width else rendered)
    fragments.append(("[SetCursorPosition]", ""))
    return fragments


def panel_fragments(view: ChatView) -> StyleAndTextTuples:
    fragments: StyleAndTextTuples = []
    for style, text in view.panel():
        style = nick_colour(style[5:]) if style.startswith("nick:") else f"class:{style}"
        fragments.append((style, text))
        fragments.append(("", "\n"))
    return fragments


def input_scroll(scroll: int, line_width: int, window_width: int) -> int:
    """Columns to scroll the one-row input left by, at most what shows the line's end.

    prompt_toolkit keeps a horizontal scroll once made while the line is as
    wide as the scroll itself, so after a line wider than the window was sent
    (or refused, or erased) the prompt stayed scrolled out of sight for good.
    It still scrolls further on its own to keep the cursor visible.
    """
    return max(0, min(scroll, line_width + 1 - window_width))
