"""Durable state in SQLite: accounts, rooms, bans, mutes and room history.

Writes are not committed one by one: the server commits once per event-loop
turn, just before it writes that turn's output, so nothing is acknowledged to
a client before it is committed, and a burst of messages costs one commit.
WAL with synchronous=NORMAL keeps every committed transaction across a crash
of the process (kill -9); only a power failure could lose the last ones.
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
        return [RoomRecord(*row) for row in rows]

    def save_room(self, room: RoomRecord) -> None:
        self._db.execute(
            "INSERT INTO rooms (room_fold, name, topic, last_seq) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (room_fold) DO UPDATE SET topic = excluded.topic, "
            "last_seq = excluded.last_seq",
            (room.fold, room.name, room.topic, room.last_seq))
        self.dirty = True

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
        """Store one room message and forget those older than the last ``keep``."""
        self._db.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (room_fold, message.seq, message.msg_id, message.timestamp_ms, message.sender,
             sender_fold, message.client_msg_id, message.text))
        if message.seq > keep:
            self._db.execute("DELETE FROM messages WHERE room_fold = ? AND seq <= ?",
                             (room_fold, message.seq - keep))
        self.dirty = True

    def find_resend(self, room_fold: str, sender_fold: str,
                    client_msg_id: int) -> StoredMessage | None:
        row = self._db.execute(
            "SELECT seq, msg_id, timestamp_ms, sender, client_msg_id, text FROM messages "
            "WHERE room_fold = ? AND sender_fold = ? AND client_msg_id = ? "
            "AND client_msg_id != 0",
            (room_fold, sender_fold, client_msg_id)).fetchone()
        return StoredMessage(*row) if row else None

    def messages_after(self, room_fold: str, after_seq: int, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` messages with seq > after_seq, oldest first."""
        rows = self._db.execute(
            "SELECT seq, msg_id, timestamp_ms, sender, client_msg_id, text FROM messages "
            "WHERE room_fold = ? AND seq > ? ORDER BY seq LIMIT ?",
            (room_fold, after_seq, limit)).fetchall()
        return [StoredMessage(*row) for row in rows]

    def messages_before(self, room_fold: str, before_seq: int, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages with seq < before_seq, oldest first."""
        rows = self._db.execute(
            "SELECT seq, msg_id, timestamp_ms, sender, client_msg_id, text FROM messages "
            "WHERE room_fold = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (room_fold, before_seq, limit)).fetchall()
        return [StoredMessage(*row) for row in reversed(rows)]

    def oldest_seq(self, room_fold: str) -> int | None:
        row = self._db.execute("SELECT MIN(seq) FROM messages WHERE room_fold = ?",
                               (room_fold,)).fetchone()
        return row[0] if row and row[0] is not None else None

    # ---------------------------------------------------------------- counters

    def counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def set_counter(self, name: str, value: int) -> None:
        self._db.execute("INSERT INTO counters VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))
        self.dirty = True

    # --------------------------------------------------------------- lifecycle

    def commit(self) -> None:
        if self.dirty:
            self._db.commit()
            self.dirty = False

    def close(self) -> None:
        self.commit()
        self._db.close()
