"""Who is connected, under which nick, in which rooms: the server's shared state.

Connection handling sees this state only through ``Backplane``: a small set of
operations on nick ownership, room membership and delivery. ``LocalBackplane``
keeps it in this process; a backplane shared by several server processes (the
same operations over a broker) can replace it without touching ``session.py``.

Everything here runs on the event loop's one thread, so no lock is needed: each
operation completes before another connection's frame is handled. (The course
brief's threaded server needed a lock around its client list for exactly the
state this class holds.)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Protocol

from chatproto import Message


class Member(Protocol):
    """What the backplane needs of a connection: an id, a nick, and a way to deliver."""

    @property
    def session_id(self) -> int: ...

    @property
    def nick(self) -> str: ...

    def deliver(self, event_type: type[Message], frame: bytes) -> None:
        """Queue an event frame of ``event_type``, encoded once for every recipient."""


class Backplane(Protocol):
    """Nick ownership, room membership and delivery, for the whole server."""

    def claim_nick(self, nick_fold: str, member: Member) -> bool:
        """Take a nick for ``member``; False if another member holds it (CP-NICK-10, -5)."""

    def release_nick(self, nick_fold: str, member: Member) -> None:
        """Give up a nick held by ``member``."""

    def find_member(self, nick_fold: str) -> Member | None:
        """The member holding a nick, if any."""

    def members(self) -> Collection[Member]:
        """Every member that completed the handshake."""

    def join(self, room_fold: str, member: Member) -> None: ...

    def leave(self, room_fold: str, member: Member) -> None: ...

    def room_members(self, room_fold: str) -> Collection[Member]: ...

    def rooms_of(self, member: Member) -> Collection[str]: ...

    def deliver(self, event_type: type[Message], frame: bytes, to: Iterable[Member]) -> None:
        """Deliver one encoded frame to many members: encoded once, written per member."""


FanOut = Callable[[Iterable[Member], type[Message], bytes], None]
"""Writes one encoded frame to each of a set of this process's members."""


def deliver_each(members: Iterable[Member], event_type: type[Message], frame: bytes) -> None:
    """The plain fan-out: ``Member.deliver`` for each member."""
    for member in members:
        member.deliver(event_type, frame)


class LocalBackplane:
    """The in-process backplane: dictionaries on the event loop's thread.

    ``fan_out`` is how a frame reaches the members it is for; the server passes
    its sessions' own loop (``Session.fan_out``), which does per recipient what
    ``deliver_each`` does without a call per recipient.
    """

    def __init__(self, fan_out: FanOut = deliver_each) -> None:
        self._fan_out = fan_out
        self._nicks: dict[str, Member] = {}
        self._rooms: dict[str, dict[int, Member]] = {}
        self._rooms_of: dict[int, set[str]] = {}

    def claim_nick(self, nick_fold: str, member: Member) -> bool:
        holder = self._nicks.setdefault(nick_fold, member)
        return holder is member

    def release_nick(self, nick_fold: str, member: Member) -> None:
        if self._nicks.get(nick_fold) is member:
            del self._nicks[nick_fold]

    def find_member(self, nick_fold: str) -> Member | None:
        return self._nicks.get(nick_fold)

    def members(self) -> Collection[Member]:
        return list(self._nicks.values())

    def join(self, room_fold: str, member: Member) -> None:
        self._rooms.setdefault(room_fold, {})[member.session_id] = member
        self._rooms_of.setdefault(member.session_id, set()).add(room_fold)

    def leave(self, room_fold: str, member: Member) -> None:
        room = self._rooms.get(room_fold)
        if room is not None:
            room.pop(member.session_id, None)
            if not room:
                del self._rooms[room_fold]
        rooms = self._rooms_of.get(member.session_id)
        if rooms is not None:
            rooms.discard(room_fold)
            if not rooms:
                del self._rooms_of[member.session_id]

    def room_members(self, room_fold: str) -> Collection[Member]:
        room = self._rooms.get(room_fold)
        return list(room.values()) if room else []

    def rooms_of(self, member: Member) -> Collection[str]:
        return sorted(self._rooms_of.get(member.session_id, ()))

    def deliver(self, event_type: type[Message], frame: bytes, to: Iterable[Member]) -> None:
        self._fan_out(to, event_type, frame)
