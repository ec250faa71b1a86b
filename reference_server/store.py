"""Durable state in SQLite: accounts, rooms, bans, mutes and room history.

Writes are not committed one by one: the server commits once per event-loop
turn, just before it writes that turn's output, so nothing is acknowledged to
a client before it is committed, and a burst of messages costs one commit.
Room messages are not even inserted one by one: ``append_message`` keeps them
until the commit (or the next read of the history), which inserts the turn's
rows in one ``executemany`` and trims each room's history once.
WAL with synchronous=NORMAL keeps every committed transaction across a crash
of the process (kill -9); only a power failure could lose the last ones.

SQLite integers are signed 64-bit, the protocol's ``seq``, ``msg_id``,
``timestamp_ms`` and ``client_msg_id`` are u64: each is stored as the signed
integer with the same 64 bits (``_to_db``), so values below 2^63, all that a
database written before this mapping can hold, keep their meaning and no
migration is needed. Range queries on ``seq`` split a u64 range at 2^63
(``_db_ranges``), so they stay in u64 order across it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    nick_fold TEXT PRIMARY KEY,
    nick TEXT NOT NULL,
    password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    room_fold TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    room_fold TEXT NOT NULL,
    seq INTEGER NOT NULL,
    msg_id INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    sender TEXT NOT NULL,
    sender_fold TEXT NOT NULL,
    client_msg_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (room_fold, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_resend
    ON messages (room_fold, sender_fold, client_msg_id) WHERE client_msg_id != 0;
CREATE TABLE IF NOT EXISTS room_marks (
    kind TEXT NOT NULL,          -- 'ban' or 'mute'
    room_fold TEXT NOT NULL,
    nick_fold TEXT NOT NULL,
    PRIMARY KEY (kind, room_fold, nick_fold)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


_U64_SIGN = 1 << 63
_U64_SPAN = 1 << 64
U64_MAX = _U64_SPAN - 1


def _to_db(value: int) -> int:
    """The signed 64-bit integer with the same bits as the u64 ``value``."""
    return value - _U64_SPAN if value >= _U64_SIGN else value


def _from_db(value: int) -> int:
    return value + _U64_SPAN if value < 0 else value


def _db_ranges(first: int, last: int) -> list[tuple[int, int]]:
    """The u64 range first..last (inclusive) as stored ranges, in increasing u64 order."""
    first, last = max(first, 0), min(last, U64_MAX)
    if first > last:
        return []
    if last < _U64_SIGN or first >= _U64_SIGN:
        return [(_to_db(first), _to_db(last))]
    return [(first, _U64_SIGN - 1), (-_U64_SIGN, _to_db(last))]


@dataclass(frozen=True, slots=True)
class RoomRecord:
    fold: str
    name: str
    topic: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int
    msg_id: int
    timestamp_ms: int
    sender: str
    client_msg_id: int
    text: str

    @classmethod
    def from_row(cls, row: tuple[int, int, int, str, int, str]) -> StoredMessage:
        seq, msg_id, timestamp_ms, sender, client_msg_id, text = row
        return cls(_from_db(seq), _from_db(msg_id), _from_db(timestamp_ms), sender,
                   _from_db(client_msg_id), text)


_MESSAGE_COLUMNS = "seq, msg_id, timestamp_ms, sender, client_msg_id, text"


class Store:
    """The server's SQLite database. Single-threaded: the event loop's thread only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self.dirty = False
        # Room messages of this turn, not inserted yet (see the module docstring).
        self._unwritten: list[tuple[object, ...]] = []
        self._unwritten_resends: dict[tuple[str, str, int], StoredMessage] = {}
        self._trim: dict[str, tuple[int, int]] = {}
        """room_fold -> (its newest seq, how many to keep): the trim the next write owes."""

    # ---------------------------------------------------------------- accounts

    def account_hash(self, nick_fold: str) -> tuple[str, str] | None:
        """(nick as registered, password hash) of an account, or None."""
        row = self._db.execute("SELECT nick, password_hash FROM accounts WHERE nick_fold = ?",
                               (nick_fold,)).fetchone()
        return (row[0], row[1]) if row else None

    def create_account(self, nick_fold: str, nick: str, password_hash: str) -> bool:
        """False when the nick is already registered."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO accounts (nick_fold, nick, password_hash) VALUES (?, ?, ?)",
            (nick_fold, nick, password_hash))
        self.dirty = True
        return cursor.rowcount == 1

    # ------------------------------------------------------------------- rooms

    def rooms(self) -> list[RoomRecord]:
        rows = self._db.execute("SELECT room_fold, name, topic, last_seq FROM rooms").fetchall()
        return [RoomRecord(fold, name, topic, _from_db(last_seq))
                for fold, name, topic, last_seq in rows]

    def save_room(self, room: RoomRecord) -> None:
        self._db.execute(
            "INSERT INTO rooms (room_fold, name, topic, last_seq) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (room_fold) DO UPDATE SET topic = excluded.topic, "
            "last_seq = excluded.last_seq",
            (room.fold, room.name, room.topic, _to_db(room.last_seq)))
        self.dirty = True

    def delete_room(self, room_fold: str) -> None:
        """Forget a room entirely: its row, its messages, its bans and mutes."""
        self._write_messages()
        for table in ("rooms", "messages", "room_marks"):
            self._db.execute(f"DELETE FROM {table} WHERE room_fold = ?", (room_fold,))
        self.dirty = True

    def room_has_marks(self, room_fold: str) -> bool:
        """Whether any ban or mute is recorded in the room."""
        return self._db.execute("SELECT 1 FROM room_marks WHERE room_fold = ? LIMIT 1",
                                (room_fold,)).fetchone() is not None

    def marks(self, kind: str) -> list[tuple[str, str]]:
        """(room fold, nick fold) of every ban or mute."""
        rows = self._db.execute("SELECT room_fold, nick_fold FROM room_marks WHERE kind = ?",
                                (kind,)).fetchall()
        return [(row[0], row[1]) for row in rows]

    def set_mark(self, kind: str, room_fold: str, nick_fold: str, present: bool) -> None:
        if present:
            self._db.execute("INSERT OR IGNORE INTO room_marks VALUES (?, ?, ?)",
                             (kind, room_fold, nick_fold))
        else:
            self._db.execute(
                "DELETE FROM room_marks WHERE kind = ? AND room_fold = ? AND nick_fold = ?",
                (kind, room_fold, nick_fold))
        self.dirty = True

    # ----------------------------------------------------------------- history

    def append_message(self, room_fold: str, message: StoredMessage, sender_fold: str,
                       keep: int) -> None:
        """Store one room message and forget those older than the last ``keep``.

        The row is written with the turn's others, at the commit at the latest.
        """
        self._unwritten.append(
            (room_fold, _to_db(message.seq), _to_db(message.msg_id),
             _to_db(message.timestamp_ms), message.sender, sender_fold,
             _to_db(message.client_msg_id), message.text))
        if message.client_msg_id:
            self._unwritten_resends[(room_fold, sender_fold, message.client_msg_id)] = message
        self._trim[room_fold] = (message.seq, keep)
        self.dirty = True

    def _write_messages(self) -> None:
        """Insert the messages kept since the last write, then trim their rooms' history."""
        if self._unwritten:
            self._db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 self._unwritten)
            self._unwritten.clear()
        for room_fold, (newest, keep) in self._trim.items():
            for low, high in _db_ranges(0, newest - keep):
                self._db.execute(
                    "DELETE FROM messages WHERE room_fold = ? AND seq BETWEEN ? AND ?",
                    (room_fold, low, high))
        self._trim.clear()
        self._unwritten_resends.clear()

    def _kept(self, room_fold: str, seq: int) -> bool:
        """Whether retention still keeps ``seq``, counting the trim not written yet."""
        newest, keep = self._trim.get(room_fold, (0, 0))
        return not keep or seq > newest - keep

    def find_resend(self, room_fold: str, sender_fold: str,
                    client_msg_id: int) -> StoredMessage | None:
        # Asked before every SEND_ROOM with an id: answered without writing the turn.
        unwritten = self._unwritten_resends.get((room_fold, sender_fold, client_msg_id))
        if unwritten is not None:
            return unwritten if self._kept(room_fold, unwritten.seq) else None
        # Left to itself SQLite's planner prefers the primary key's room_fold prefix and
        # reads the whole room's history (about 150 us at 1,000 messages, per SEND_ROOM);
        # the index finds the one row in about 5 us.
        row = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages INDEXED BY messages_resend "
            "WHERE room_fold = ? AND sender_fold = ? AND client_msg_id = ? "
            "AND client_msg_id != 0",
            (room_fold, sender_fold, _to_db(client_msg_id))).fetchone()
        if not row:
            return None
        stored = StoredMessage.from_row(row)
        return stored if self._kept(room_fold, stored.seq) else None

    def messages_after(self, room_fold: str, after_seq: int, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` messages with seq > after_seq, oldest first."""
        self._write_messages()
        found: list[StoredMessage] = []
        for low, high in _db_ranges(after_seq + 1, U64_MAX):
            rows = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages "
                "WHERE room_fold = ? AND seq BETWEEN ? AND ? ORDER BY seq LIMIT ?",
                (room_fold, low, high, limit - len(found))).fetchall()
            found.extend(StoredMessage.from_row(row) for row in rows)
            if len(found) >= limit:
                break
        return found

    def messages_before(self, room_fold: str, before_seq: int, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages with seq < before_seq (at most 2^64), oldest first."""
        self._write_messages()
        found: list[StoredMessage] = []
        for low, high in reversed(_db_ranges(0, before_seq - 1)):
            rows = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages "
                "WHERE room_fold = ? AND seq BETWEEN ? AND ? ORDER BY seq DESC LIMIT ?",
                (room_fold, low, high, limit - len(found))).fetchall()
            found.extend(StoredMessage.from_row(row) for row in rows)
            if len(found) >= limit:
                break
        found.reverse()
        return found

    def oldest_seq(self, room_fold: str) -> int | None:
        self._write_messages()
        for low, high in _db_ranges(0, U64_MAX):
            row = self._db.execute(
                "SELECT MIN(seq) FROM messages WHERE room_fold = ? AND seq BETWEEN ? AND ?",
                (room_fold, low, high)).fetchone()
            if row and row[0] is not None:
                return _from_db(row[0])
        return None

    # ---------------------------------------------------------------- counters

    def counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return _from_db(int(row[0])) if row else 0

    def set_counter(self, name: str, value: int) -> None:
        self._db.execute("INSERT INTO counters VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                         (name, _to_db(value)))
        self.dirty = True

    # --------------------------------------------------------------- lifecycle

    def commit(self) -> None:
        self._write_messages()
        if self.dirty:
            self._db.commit()
            self.dirty = False

    def close(self) -> None:
        self.commit()
        self._db.close()
