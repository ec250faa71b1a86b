"""The reference server's SQLite store and password hashing, as units."""

from __future__ import annotations

import base64
import hmac
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reference_server.passwords import hash_password, is_hash, verify_password
from reference_server.store import RoomRecord, Store, StoredMessage

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "chatproto.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    store = Store(db_path)
    try:
        yield store
    finally:
        store.close()


def _message(seq: int, *, client_msg_id: int = 0, sender: str = "Alice",
             text: str = "") -> StoredMessage:
    return StoredMessage(seq=seq, msg_id=1000 + seq, timestamp_ms=1_700_000_000_000 + seq,
                         sender=sender, client_msg_id=client_msg_id, text=text or f"text {seq}")


def _append(store: Store, room: str, seqs: range, keep: int = 1000) -> None:
    for seq in seqs:
        store.append_message(room, _message(seq), "alice", keep=keep)


def _seqs(messages: list[StoredMessage]) -> list[int]:
    return [m.seq for m in messages]


# ------------------------------------------------------------------ accounts


def test_store_creates_its_directory(db_path: Path, store: Store) -> None:
    assert db_path.parent.is_dir()
    assert db_path.exists()


def test_accounts(store: Store) -> None:
    assert store.account_hash("alice") is None
    assert store.create_account("alice", "Alice", "hash-1")
    assert store.account_hash("alice") == ("Alice", "hash-1")
    # The fold is the key: a second registration of the same fold is refused.
    assert not store.create_account("alice", "ALICE", "hash-2")
    assert store.account_hash("alice") == ("Alice", "hash-1")
    assert store.create_account("bob", "Bob", "hash-3")
    assert store.account_hash("bob") == ("Bob", "hash-3")
    assert store.account_hash("Alice") is None  # lookups are by fold, as given


# --------------------------------------------------------------------- rooms


def test_rooms_are_saved_and_updated(store: Store) -> None:
    assert store.rooms() == []
    store.save_room(RoomRecord("#lobby", "#Lobby", "", 0))
    store.save_room(RoomRecord("#dev", "#dev", "code", 3))
    assert sorted(store.rooms(), key=lambda r: r.fold) == [
        RoomRecord("#dev", "#dev", "code", 3), RoomRecord("#lobby", "#Lobby", "", 0)]
    store.save_room(RoomRecord("#lobby", "#LOBBY", "new topic", 7))
    lobby = next(r for r in store.rooms() if r.fold == "#lobby")
    # Topic and last_seq change; the name keeps the spelling of the room's creation.
    assert lobby == RoomRecord("#lobby", "#Lobby", "new topic", 7)
    assert len(store.rooms()) == 2


def test_marks(store: Store) -> None:
    assert store.marks("ban") == [] and store.marks("mute") == []
    store.set_mark("ban", "#a", "eve", True)
    store.set_mark("ban", "#a", "eve", True)  # idempotent
    store.set_mark("ban", "#b", "eve", True)
    store.set_mark("mute", "#a", "mallory", True)
    assert sorted(store.marks("ban")) == [("#a", "eve"), ("#b", "eve")]
    assert store.marks("mute") == [("#a", "mallory")]
    store.set_mark("ban", "#a", "eve", False)
    store.set_mark("ban", "#a", "nobody", False)  # removing an absent mark is fine
    assert store.marks("ban") == [("#b", "eve")]
    assert store.marks("mute") == [("#a", "mallory")]


# ------------------------------------------------------------------- history


def test_append_and_read_back(store: Store) -> None:
    message = StoredMessage(seq=1, msg_id=42, timestamp_ms=123, sender="Alice",
                            client_msg_id=9, text="h\u00e9llo \U0001f600\nline two")
    store.append_message("#a", message, "alice", keep=10)
    assert store.messages_after("#a", 0, 10) == [message]
    assert store.messages_before("#a", 2, 10) == [message]
    assert store.oldest_seq("#a") == 1
    assert store.oldest_seq("#empty") is None


@pytest.mark.parametrize("keep", [1, 3, 5])
def test_retention_keeps_exactly_the_last_n(store: Store, keep: int) -> None:
    for seq in range(1, 13):
        store.append_message("#a", _message(seq), "alice", keep=keep)
        expected = list(range(max(1, seq - keep + 1), seq + 1))
        assert _seqs(store.messages_after("#a", 0, 100)) == expected, seq
        assert store.oldest_seq("#a") == expected[0]


def test_retention_is_per_room(store: Store) -> None:
    _append(store, "#b", range(1, 4), keep=3)
    _append(store, "#a", range(1, 11), keep=3)
    assert _seqs(store.messages_after("#a", 0, 100)) == [8, 9, 10]
    assert _seqs(store.messages_after("#b", 0, 100)) == [1, 2, 3]


def test_find_resend(store: Store) -> None:
    store.append_message("#a", _message(1, client_msg_id=7), "alice", keep=100)
    store.append_message("#a", _message(2, client_msg_id=0), "alice", keep=100)
    store.append_message("#a", _message(3, client_msg_id=7, sender="Bob"), "bob", keep=100)
    store.append_message("#b", _message(1, client_msg_id=8), "alice", keep=100)
    found = store.find_resend("#a", "alice", 7)
    assert found == _message(1, client_msg_id=7)
    bob = store.find_resend("#a", "bob", 7)
    assert bob is not None and bob.seq == 3 and bob.sender == "Bob"
    assert store.find_resend("#a", "alice", 8) is None  # another room's id
    assert store.find_resend("#b", "alice", 7) is None
    assert store.find_resend("#a", "carol", 7) is None  # another sender
    assert store.find_resend("#a", "alice", 0) is None  # 0 means "no id": never a resend


def _steps(store: Store, what: Callable[[], object]) -> int:
    """SQLite virtual-machine steps ``what`` takes: how many rows it visits, near enough."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store._db.set_progress_handler(count, 1)
    try:
        what()
    finally:
        store._db.set_progress_handler(None, 1)
    return steps


def test_find_resend_reads_one_row_not_the_rooms_history(store: Store) -> None:
    """Every SEND_ROOM with a client_msg_id asks: its cost must not grow with the history."""
    for seq in range(1, 1001):
        store.append_message("#a", _message(seq, client_msg_id=seq), "alice", keep=1000)
    few = _steps(store, lambda: store.find_resend("#a", "alice", 5000))
    for seq in range(1001, 11001):
        store.append_message("#a", _message(seq, client_msg_id=seq), "alice", keep=20_000)
    many = _steps(store, lambda: store.find_resend("#a", "alice", 50_000))
    assert many < few * 2, (few, many)  # a scan of 11 times the rows would take 11 times


def test_a_turns_messages_are_written_in_one_statement_at_the_commit(db_path: Path,
                                                                   store: Store) -> None:
    """A burst of SEND_ROOMs is written at the commit, with one trim per room."""
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    _append(store, "#a", range(1, 6), keep=3)
    assert statements == []  # nothing yet: the turn's rows wait for its commit
    store.commit()
    store._db.set_trace_callback(None)
    inserts = [sql for sql in statements if sql.startswith("INSERT INTO messages")]
    deletes = [sql for sql in statements if sql.startswith("DELETE FROM messages")]
    assert len(inserts) == 5  # one executemany; SQLite traces each row it runs
    assert len(deletes) == 1  # not one per message past the limit
    store.close()
    reopened = Store(db_path)  # what was acknowledged after that commit is on disk
    try:
        assert _seqs(reopened.messages_after("#a", 0, 10)) == [3, 4, 5]
    finally:
        reopened.close()


def test_unwritten_messages_are_found_and_trimmed_as_written_ones(store: Store) -> None:
    store.append_message("#a", _message(1, client_msg_id=7), "alice", keep=2)
    assert store.find_resend("#a", "alice", 7) == _message(1, client_msg_id=7)
    store.append_message("#a", _message(2), "alice", keep=2)
    store.append_message("#a", _message(3), "alice", keep=2)
    assert store.find_resend("#a", "alice", 7) is None  # dropped by retention already
    assert _seqs(store.messages_after("#a", 0, 10)) == [2, 3]


def test_find_resend_forgets_what_retention_dropped(store: Store) -> None:
    store.append_message("#a", _message(1, client_msg_id=5), "alice", keep=2)
    _append(store, "#a", range(2, 4), keep=2)
    assert store.find_resend("#a", "alice", 5) is None


def test_messages_after_window(store: Store) -> None:
    _append(store, "#a", range(1, 21))
    assert _seqs(store.messages_after("#a", 0, 5)) == [1, 2, 3, 4, 5]
    assert _seqs(store.messages_after("#a", 5, 3)) == [6, 7, 8]
    assert _seqs(store.messages_after("#a", 17, 10)) == [18, 19, 20]
    assert store.messages_after("#a", 20, 10) == []
    assert store.messages_after("#a", 0, 0) == []
    assert store.messages_after("#other", 0, 10) == []


def test_messages_before_window(store: Store) -> None:
    _append(store, "#a", range(1, 21))
    # The newest ``limit`` before ``before_seq``, oldest first.
    assert _seqs(store.messages_before("#a", 21, 5)) == [16, 17, 18, 19, 20]
    assert _seqs(store.messages_before("#a", 10, 3)) == [7, 8, 9]
    assert _seqs(store.messages_before("#a", 3, 10)) == [1, 2]
    assert store.messages_before("#a", 1, 10) == []
    assert store.messages_before("#a", 21, 0) == []
    assert _seqs(store.messages_before("#a", 1000, 2)) == [19, 20]


def test_windows_after_retention(store: Store) -> None:
    _append(store, "#a", range(1, 21), keep=5)
    assert _seqs(store.messages_after("#a", 0, 100)) == [16, 17, 18, 19, 20]
    assert _seqs(store.messages_after("#a", 3, 2)) == [16, 17]
    assert _seqs(store.messages_before("#a", 18, 10)) == [16, 17]
    assert store.messages_before("#a", 16, 10) == []


# ------------------------------------------------------------------ counters


def test_counters(store: Store) -> None:
    assert store.counter("msg_id") == 0
    store.set_counter("msg_id", 41)
    assert store.counter("msg_id") == 41
    store.set_counter("msg_id", 2**40)
    assert store.counter("msg_id") == 2**40
    assert store.counter("other") == 0


# ----------------------------------------------------------------- lifecycle


def test_writes_mark_the_store_dirty_until_commit(store: Store) -> None:
    store.commit()
    assert not store.dirty
    store.create_account("alice", "Alice", "h")
    assert store.dirty
    store.commit()
    assert not store.dirty
    store.commit()  # nothing to do
    for write in (lambda: store.save_room(RoomRecord("#a", "#a", "", 0)),
                  lambda: store.set_mark("ban", "#a", "x", True),
                  lambda: store.set_counter("c", 1),
                  lambda: store.append_message("#a", _message(1), "alice", keep=5)):
        write()
        assert store.dirty
        store.commit()
        assert not store.dirty


def _fill(store: Store) -> None:
    store.create_account("alice", "Alice", "hash-a")
    store.save_room(RoomRecord("#a", "#A", "topic", 2))
    store.set_mark("mute", "#a", "eve", True)
    store.set_counter("msg_id", 1002)
    _append(store, "#a", range(1, 3))


def _assert_filled(store: Store) -> None:
    assert store.account_hash("alice") == ("Alice", "hash-a")
    assert store.rooms() == [RoomRecord("#a", "#A", "topic", 2)]
    assert store.marks("mute") == [("#a", "eve")]
    assert store.counter("msg_id") == 1002
    assert store.messages_after("#a", 0, 10) == [_message(1), _message(2)]


def test_close_and_reopen_keeps_committed_data(db_path: Path) -> None:
    store = Store(db_path)
    _fill(store)
    store.commit()
    store.close()
    reopened = Store(db_path)
    try:
        _assert_filled(reopened)
    finally:
        reopened.close()


def test_close_commits(db_path: Path) -> None:
    store = Store(db_path)
    _fill(store)
    store.close()  # no explicit commit: close writes what is pending
    reopened = Store(db_path)
    try:
        _assert_filled(reopened)
    finally:
        reopened.close()


def test_uncommitted_writes_are_invisible_to_another_connection(db_path: Path,
                                                                store: Store) -> None:
    store.create_account("alice", "Alice", "hash-a")
    store.commit()
    store.create_account("bob", "Bob", "hash-b")
    _append(store, "#a", range(1, 4))
    other = sqlite3.connect(db_path)
    try:
        assert other.execute("SELECT nick FROM accounts").fetchall() == [("Alice",)]
        assert other.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)
        store.commit()
        assert sorted(other.execute("SELECT nick FROM accounts").fetchall()) == [("Alice",),
                                                                                 ("Bob",)]
        assert other.execute("SELECT COUNT(*) FROM messages").fetchone() == (3,)
    finally:
        other.close()


def test_a_crash_loses_only_uncommitted_data(db_path: Path) -> None:
    """A process that dies (os._exit, no close) keeps what it committed, nothing else."""
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from reference_server.store import RoomRecord, Store, StoredMessage
        store = Store(Path({str(db_path)!r}))
        store.create_account("alice", "Alice", "hash-a")
        store.save_room(RoomRecord("#a", "#a", "", 1))
        store.append_message("#a", StoredMessage(1, 11, 0, "Alice", 0, "kept"), "alice", 10)
        store.commit()
        store.create_account("bob", "Bob", "hash-b")
        store.save_room(RoomRecord("#a", "#a", "lost topic", 2))
        store.append_message("#a", StoredMessage(2, 12, 0, "Alice", 0, "lost"), "alice", 10)
        store.set_counter("msg_id", 12)
        os._exit(9)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 9, result.stderr
    store = Store(db_path)
    try:
        assert store.account_hash("alice") == ("Alice", "hash-a")
        assert store.account_hash("bob") is None
        assert store.rooms() == [RoomRecord("#a", "#a", "", 1)]
        assert [m.text for m in store.messages_after("#a", 0, 10)] == ["kept"]
        assert store.counter("msg_id") == 0
    finally:
        store.close()



# ------------------------------------------------------- u64 fields in SQLite

U64_MAX = 2**64 - 1


def test_u64_fields_round_trip_through_a_restart(db_path: Path) -> None:
    """Defect 3: every u64 that reaches SQLite (seq, msg_id, timestamp_ms,
    client_msg_id, last_seq, the msg_id counter) keeps 2^64-1 and 2^63 exactly,
    across a close and a reopen (SQLite's own integers stop at 2^63-1)."""
    top = StoredMessage(seq=U64_MAX, msg_id=U64_MAX, timestamp_ms=U64_MAX, sender="Alice",
                        client_msg_id=U64_MAX, text="top")
    middle = StoredMessage(seq=2**63, msg_id=2**63, timestamp_ms=2**63, sender="Alice",
                           client_msg_id=2**63, text="middle")
    store = Store(db_path)
    store.save_room(RoomRecord("#a", "#a", "", U64_MAX))
    store.append_message("#a", middle, "alice", keep=U64_MAX)
    store.append_message("#a", top, "alice", keep=U64_MAX)
    store.set_counter("msg_id", U64_MAX)
    store.close()
    store = Store(db_path)
    try:
        assert store.rooms() == [RoomRecord("#a", "#a", "", U64_MAX)]
        assert store.counter("msg_id") == U64_MAX
        assert store.find_resend("#a", "alice", U64_MAX) == top
        assert store.find_resend("#a", "alice", 2**63) == middle
        assert store.messages_after("#a", 0, 10) == [middle, top]
        assert store.messages_before("#a", 2**64, 10) == [middle, top]
        assert store.oldest_seq("#a") == 2**63
    finally:
        store.close()


def test_seq_windows_keep_u64_order_across_2_to_the_63(store: Store) -> None:
    """Stored as signed integers, seq 2^63 would sort before 1; the windows
    (HISTORY, resume, retention) must still follow u64 order."""
    seqs = [2**63 - 2, 2**63 - 1, 2**63, 2**63 + 1]
    for seq in seqs:
        store.append_message("#a", _message(seq), "alice", keep=U64_MAX)
    assert _seqs(store.messages_after("#a", 0, 10)) == seqs
    assert _seqs(store.messages_after("#a", 2**63 - 2, 2)) == seqs[1:3]
    assert _seqs(store.messages_before("#a", 2**63 + 1, 2)) == seqs[1:3]
    assert _seqs(store.messages_before("#a", 2**64, 3)) == seqs[1:]
    store.append_message("#a", _message(2**63 + 2), "alice", keep=2)  # retention across 2^63
    assert _seqs(store.messages_after("#a", 0, 10)) == [2**63 + 1, 2**63 + 2]


def test_existing_databases_keep_their_values(db_path: Path) -> None:
    """A database written before the u64 mapping (plain INTEGERs below 2^63) reads the same."""
    Store(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute("INSERT INTO messages VALUES ('#a', 7, 70, 1700000000000, 'Alice', 'alice', "
                "9223372036854775807, 'old')")
    raw.execute("INSERT INTO rooms VALUES ('#a', '#a', '', 7)")
    raw.commit()
    raw.close()
    store = Store(db_path)
    try:
        assert store.messages_after("#a", 0, 10) == [
            StoredMessage(7, 70, 1_700_000_000_000, "Alice", 2**63 - 1, "old")]
        assert store.rooms() == [RoomRecord("#a", "#a", "", 7)]
    finally:
        store.close()


# ----------------------------------------------------------------- passwords


def test_hash_format() -> None:
    stored = hash_password("correct horse")
    assert is_hash(stored)
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert len(base64.b64decode(salt, validate=True)) == 16
    assert len(base64.b64decode(digest, validate=True)) == 32
    assert "correct horse" not in stored


def test_hashes_are_salted() -> None:
    first, second = hash_password("same"), hash_password("same")
    assert first != second
    assert verify_password("same", first) and verify_password("same", second)


@pytest.mark.parametrize("password", ["secret", "", "p\u00e4ss w\u00f6rd \U0001f511",
                                      "x" * 300])
def test_verify_hashed(password: str) -> None:
    stored = hash_password(password, n=2**10)
    assert verify_password(password, stored)
    assert not verify_password(password + "x", stored)
    assert not verify_password(password.upper() + "!", stored)


def test_verify_reads_the_cost_parameters_from_the_hash() -> None:
    stored = hash_password("pw", n=2**8, r=4, p=2)
    assert stored.split("$")[1:4] == ["256", "4", "2"]
    assert verify_password("pw", stored)
    assert not verify_password("pW", stored)


def test_is_hash() -> None:
    assert not is_hash("plain-password")
    assert not is_hash("scrypt$only$three")
    assert not is_hash("")
    assert is_hash(hash_password("x", n=2**4))


def test_plain_configured_passwords() -> None:
    assert verify_password("operpass", "operpass")
    assert not verify_password("operpass", "operpasS")
    assert not verify_password("operpas", "operpass")
    assert not verify_password("", "operpass")
    assert verify_password("\u00e9t\u00e9", "\u00e9t\u00e9")


def test_passwords_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module passwords uses
    assert verify_password("operpass", "operpass")
    assert calls == [(b"operpass", b"operpass")]
    calls.clear()
    assert not verify_password("wrong", "operpass")
    assert calls == [(b"wrong", b"operpass")]
    calls.clear()
    stored = hash_password("pw", n=2**4)
    assert verify_password("pw", stored)
    assert len(calls) == 1
    assert calls[0][1] == base64.b64decode(stored.split("$")[5])
