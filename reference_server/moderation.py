"""Bans and mutes in force: by nick, and on the connections that held a marked nick.

A mark (a ban or a mute) names a nick in a room. It is kept by the nick's fold,
whether or not anyone holds the nick (CP-OPER-6, CP-OPER-8), and the store
keeps it across restarts. It also sticks to every connection that holds the
nick while the mark stands, the one holding it when the mark is set and any
that takes it later by HELLO, NICK or LOGIN, for the rest of that connection's
life: a NICK does not shake it off (CP-OPER-10). Since an account is its
registered nick, a mark on a registered nick reaches every connection that
logs in to the account. Lifting a mark lifts it from those connections too,
and lifts every mark of its kind in the room from the connection holding the
nick named (CP-OPER-11).

Plain data, no I/O: the service calls it and saves the nick marks itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

MarkKind = Literal["ban", "mute"]
MARK_KINDS: tuple[MarkKind, ...] = ("ban", "mute")


@dataclass(frozen=True, slots=True)
class Mark:
    """A ban or mute of one nick fold in one room."""

    kind: MarkKind
    room_fold: str
    nick_fold: str


class Moderation:
    """Which connections may not join a room (ban) or may not speak in it (mute)."""

    def __init__(self, marks: Iterable[Mark] = ()) -> None:
        self._rooms_by_nick: dict[tuple[MarkKind, str], set[str]] = {}
        self._carried: dict[int, set[Mark]] = {}   # connection id -> marks it carries
        self._carriers: dict[Mark, set[int]] = {}  # mark -> connection ids carrying it
        for mark in marks:
            self._rooms_by_nick.setdefault((mark.kind, mark.nick_fold), set()).add(
                mark.room_fold)

    def set(self, mark: Mark, holder: int | None) -> None:
        """Record ``mark``; ``holder`` is the connection holding the nick now, if any."""
        self._rooms_by_nick.setdefault((mark.kind, mark.nick_fold), set()).add(mark.room_fold)
        if holder is not None:
            self._carry(holder, mark)

    def lift(self, mark: Mark, holder: int | None) -> None:
        """Remove ``mark`` from the nick and from every connection carrying it; and every
        mark of its kind in its room from ``holder``, the connection holding the nick."""
        rooms = self._rooms_by_nick.get((mark.kind, mark.nick_fold))
        if rooms is not None:
            rooms.discard(mark.room_fold)
            if not rooms:
                del self._rooms_by_nick[(mark.kind, mark.nick_fold)]
        for connection in self._carriers.pop(mark, set()):
            self._carried[connection].discard(mark)
        if holder is not None:
            for carried in [m for m in self._carried.get(holder, ())
                            if m.kind == mark.kind and m.room_fold == mark.room_fold]:
                self._carried[holder].discard(carried)
                self._carriers[carried].discard(holder)
                if not self._carriers[carried]:
                    del self._carriers[carried]

    def took_nick(self, connection: int, nick_fold: str) -> None:
        """``connection`` now holds ``nick_fold``: it carries that nick's marks from now on."""
        for kind in MARK_KINDS:
            for room_fold in self._rooms_by_nick.get((kind, nick_fold), ()):
                self._carry(connection, Mark(kind, room_fold, nick_fold))

    def applies(self, kind: MarkKind, room_fold: str, connection: int, nick_fold: str) -> bool:
        """Whether a ban or mute in the room applies to the connection holding ``nick_fold``."""
        if room_fold in self._rooms_by_nick.get((kind, nick_fold), ()):
            return True
        return any(m.kind == kind and m.room_fold == room_fold
                   for m in self._carried.get(connection, ()))

    def forget(self, connection: int) -> None:
        """The connection has ended: it carries nothing any more."""
        for mark in self._carried.pop(connection, set()):
            self._carriers[mark].discard(connection)
            if not self._carriers[mark]:
                del self._carriers[mark]

    def _carry(self, connection: int, mark: Mark) -> None:
        self._carried.setdefault(connection, set()).add(mark)
        self._carriers.setdefault(mark, set()).add(connection)
