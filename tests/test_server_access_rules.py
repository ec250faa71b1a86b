"""Privacy and access rules (issue 11), one test per rule, over real sockets.

Each test is named after the rule it proves and goes further than the
per-request tests it builds on, which are cited in its docstring:

* a private message never reaches a third party;
* a banned user cannot come back by reconnecting or by changing nick;
* a non-operator cannot perform any operator action;
* a registered nick cannot be taken without its password;
* a password is never logged nor stored in clear;
* a muted user's messages reach no one (room messages and topics; private
  messages are not covered by a mute, spec users page, Mute).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ClientFactory, MakeServer, MakeServerProcess, RunningServer
from server_harness import ChatTestClient, HelloRefused, join_all, of_type, refused

from chatproto import ErrorCode
from chatproto.messages import (
    Ban,
    History,
    Join,
    Kick,
    ListMembers,
    ListUsers,
    Login,
    MemberLeft,
    Message,
    Mute,
    MuteChanged,
    Nick,
    Oper,
    Part,
    PrivateMessage,
    Register,
    RoomInfo,
    RoomMessage,
    SendPrivate,
    SendRoom,
    SetTopic,
    TopicChanged,
    Unban,
    UserInfo,
)
from reference_server.config import OPERATORS_ENV

OPERATOR = {"root": "op-secret"}
pytestmark = pytest.mark.server_config(operators=OPERATOR)


async def _operator(client_factory: ClientFactory, nick: str = "op", *,
                    server: RunningServer | None = None) -> ChatTestClient:
    client = await client_factory(nick, server=server)
    await client.ok(Oper(name="root", password="op-secret"))
    return client


async def _nicks(client: ChatTestClient) -> set[str]:
    return {u.nick for u in of_type(await client.ok(ListUsers()), UserInfo)}


async def _members(client: ChatTestClient, room: str) -> set[str]:
    return {u.nick for u in of_type(await client.ok(ListMembers(room=room)), UserInfo)}


# ------------------------------------------------------------- private messages


async def test_a_private_message_never_reaches_a_third_party(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-MSG-4 (see also test_server_messages::test_private_message_reaches_only_the_
    addressee): alice's private messages to bob, addressed in any letter case, reach bob
    and nobody else: not a member of a room all three share, not one who shares a room
    with alice only or with bob only, not a user in no room, not an operator, not a
    user who held bob's nick before; no room's history holds them."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    both, with_alice, with_bob = [await client_factory(n) for n in ("both", "near_a", "near_b")]
    loner = await client_factory("loner")
    op = await _operator(client_factory)
    former = await client_factory("bobby")
    await join_all("#shared", alice, bob, both, op)
    await join_all("#alice", alice, with_alice)
    await join_all("#bob", bob, with_bob)
    await former.ok(Nick(nick="not_bob"))
    bystanders = (both, with_alice, with_bob, loner, op, former)
    for client in (alice, bob, *bystanders):
        await client.barrier()

    texts = [f"secret {n} for bob only" for n in range(3)]
    for text, nick, client_msg_id in zip(texts, ("bob", "BOB", "Bob"), (0, 7, 8), strict=True):
        await alice.ok(SendPrivate(nick=nick, text=text, client_msg_id=client_msg_id))
    received = of_type(await bob.barrier(), PrivateMessage)
    assert [(m.sender, m.text) for m in received] == [("alice", t) for t in texts]
    for bystander in bystanders:
        assert await bystander.barrier() == [], f"{bystander!r} saw a private message"
    assert of_type(await alice.barrier(), PrivateMessage) == []  # no echo to the sender
    for room, member in (("#shared", both), ("#alice", with_alice), ("#bob", with_bob)):
        assert of_type(await member.ok(History(room=room, limit=50)), RoomMessage) == []


# ------------------------------------------------------------------------- bans


async def test_a_banned_user_cannot_come_back_by_reconnecting_or_changing_nick(
        make_server: MakeServer, client_factory: ClientFactory, tmp_path: Path) -> None:
    """CP-OPER-6, CP-OPER-10, CP-ROOM-13 (see also test_server_operators::test_ban_stays_
    with_the_connection_after_nick and ::test_ban_of_a_registered_nick_holds_every_login):
    a banned guest and a banned account are refused after NICK, after reconnecting under
    the banned nick in any letter case, and after the server restarts on its data."""
    data_dir = tmp_path / "data"
    server = await make_server(data_dir=data_dir, operators=OPERATOR)
    owner = await client_factory("Carol", server=server)
    await owner.ok(Register(password="carol-password"))
    op = await _operator(client_factory, server=server)
    mallory = await client_factory("mallory", server=server)
    await join_all("#room", op, mallory, owner)
    await op.ok(Ban(room="#room", nick="mallory", reason="spam"))
    await op.ok(Ban(room="#room", nick="carol", reason="spam"))
    assert await _members(op, "#room") == {"op"}

    async def refused_everywhere(guest_port: RunningServer) -> None:
        for nick in ("mallory", "MALLORY"):
            guest = await client_factory(nick, server=guest_port)
            refused(await guest.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
            await guest.ok(Nick(nick="someone_else"))
            refused(await guest.request(Join(room="#Room")), ErrorCode.BANNED_FROM_ROOM)
            await guest.quit()
        account = await client_factory("CAROL", "carol-password", server=guest_port)
        refused(await account.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
        await account.ok(Nick(nick="not_carol"))
        refused(await account.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
        await account.quit()

    await mallory.ok(Nick(nick="innocent"))
    refused(await mallory.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
    await mallory.quit()
    await owner.quit()
    await refused_everywhere(server)
    assert await _members(op, "#room") == {"op"}
    await op.quit()
    await server.shutdown()

    restarted = await make_server(data_dir=data_dir, operators=OPERATOR)
    await refused_everywhere(restarted)


# -------------------------------------------------------------------- operators


def _operator_actions(room: str, nick: str) -> list[Message]:
    return [Kick(room=room, nick=nick, reason="no"), Ban(room=room, nick=nick, reason="no"),
            Unban(room=room, nick=nick), Mute(room=room, nick=nick, muted=True),
            Mute(room=room, nick=nick, muted=False)]


async def test_a_non_operator_cannot_perform_any_operator_action(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-OPER-1, CP-OPER-3, CP-ERR-5 (see also test_server_operators::test_moderation_
    needs_an_operator): KICK, BAN, UNBAN and MUTE (both ways) are NOT_OPERATOR for a guest,
    a logged-in account, a user who failed OPER, a user whose nick is an operator's name,
    and a new connection of a nick that was an operator's; none of them changes anything."""
    op = await _operator(client_factory, "boss")
    await op.ok(Join(room="#room"))
    await op.ok(Ban(room="#room", nick="banned"))
    await op.ok(Mute(room="#room", nick="gagged", muted=True))
    bob = await client_factory("bob")
    await bob.ok(Join(room="#room"))

    guest = await client_factory("guest")
    account = await client_factory("acct")
    await account.ok(Register(password="acct-password"))
    failed = await client_factory("failed")
    refused(await failed.request(Oper(name="root", password="op-secreT")), ErrorCode.AUTH_FAILED)
    named_root = await client_factory("root")
    await op.quit()
    former_op = await client_factory("boss")
    await former_op.ok(Join(room="#room"))
    others = (guest, account, failed, named_root, former_op)
    for client in others[:-1]:
        await client.ok(Join(room="#room"))
    await bob.barrier()

    for client in others:
        for target_room, nick in (("#room", "bob"), ("#room", "banned"), ("#room", "gagged"),
                                  ("#room", client.name), ("#nowhere", "bob")):
            for action in _operator_actions(target_room, nick):
                refused(await client.request(action), ErrorCode.NOT_OPERATOR)
    assert [e for e in await bob.barrier() if isinstance(e, MemberLeft | MuteChanged)] == []
    assert await _members(bob, "#room") == {"bob", *(c.name for c in others)}
    await bob.ok(SendRoom(room="#room", text="nobody muted me"))
    banned = await client_factory("banned")
    refused(await banned.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
    gagged = await client_factory("gagged")
    await gagged.ok(Join(room="#room"))
    refused(await gagged.request(SendRoom(room="#room", text="hi")), ErrorCode.MUTED)


# --------------------------------------------------------------------- accounts


async def test_a_registered_nick_cannot_be_taken_without_its_password(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ACCT-5, CP-ACCT-7, CP-ACCT-8, CP-NICK-2, CP-NICK-8 (see also test_server_
    accounts::test_wrong_or_missing_password and ::test_registered_nick_is_refused_to_
    others): while its owner is away, nobody gets "Dana" by HELLO (no password, a wrong
    one, the right one in another case), by NICK, or by LOGIN (wrong password, or the
    right one differing in case), whatever letter case the nick is typed in."""
    owner = await client_factory("Dana")
    await owner.ok(Register(password="Dana-Password"))
    await owner.quit()

    intruder = await client_factory()
    for nick, password, code in (("Dana", "", ErrorCode.NICK_REGISTERED),
                                 ("DANA", "", ErrorCode.NICK_REGISTERED),
                                 ("dana", "dana-password", ErrorCode.AUTH_FAILED),
                                 ("dAnA", "wrong", ErrorCode.AUTH_FAILED)):
        with pytest.raises(HelloRefused) as refusal:
            await intruder.hello(nick, password)
        assert refusal.value.error.code == code, (nick, password)
    await intruder.hello("intruder")
    for nick in ("Dana", "dana", "DANA", "dANA"):
        refused(await intruder.request(Nick(nick=nick)), ErrorCode.NICK_REGISTERED)
    for nick, password in (("dana", "DANA-PASSWORD"), ("DANA", "Dana-Password ")):
        refused(await intruder.request(Login(nick=nick, password=password)),
                ErrorCode.AUTH_FAILED)
    assert await _nicks(intruder) == {"intruder"}
    rightful = await client_factory("dana", "Dana-Password")
    assert rightful.welcome is not None and rightful.welcome.nick == "Dana"


# -------------------------------------------------------------------- passwords

SECRET = "Pw-never-in-clear-7Kq2Zx"
"""Every password below is a variant of this one, so one search finds them all."""


async def test_a_password_is_never_logged_nor_stored_in_clear(
        make_server_process: MakeServerProcess, client_factory: ClientFactory,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CP-SEC-5, CP-SEC-9 (see also test_server_logging): a server process logging at
    DEBUG sees REGISTER, HELLO with a password, LOGIN and OPER, each right and wrong, and
    an OPER whose name field holds a password; the password is in no log line and in no
    file of the data directory (the SQLite database and its WAL), where a hash is."""
    operators = tmp_path / "operators"
    operators.write_text(f"root:{SECRET}-oper\n", encoding="utf-8")
    monkeypatch.delenv(OPERATORS_ENV, raising=False)
    data_dir = tmp_path / "data"
    server = await make_server_process("--log-level", "DEBUG", "--oper-file", str(operators),
                                       data_dir=data_dir).start()
    erin = await client_factory("erin", server=server)
    await erin.ok(Register(password=SECRET))
    await erin.quit()
    wrong = await client_factory(server=server)
    with pytest.raises(HelloRefused):
        await wrong.hello("erin", f"{SECRET}-wrong-hello")
    erin = await client_factory("erin", SECRET, server=server)
    guest = await client_factory("guest", server=server)
    await erin.quit()  # while erin is held, a LOGIN checks no password (CP-NICK-10)
    refused(await guest.request(Login(nick="erin", password=f"{SECRET}-wrong-login")),
            ErrorCode.AUTH_FAILED)
    await guest.ok(Login(nick="erin", password=SECRET))
    refused(await guest.request(Oper(name="root", password=f"{SECRET}-wrong-oper")),
            ErrorCode.AUTH_FAILED)
    refused(await guest.request(Oper(name=f"{SECRET}-as-name", password="x")),
            ErrorCode.AUTH_FAILED)
    await guest.ok(Oper(name="root", password=f"{SECRET}-oper"))
    await guest.quit()
    assert await server.stop() == 0

    log = "\n".join(server.stderr_lines)
    assert "oper refused" in log and "register session=" in log  # the log did run
    assert SECRET not in log and SECRET[-8:] not in log
    stored = sorted(data_dir.iterdir())
    assert any(path.name.endswith(".sqlite3") for path in stored), stored
    for path in stored:
        content = path.read_bytes()
        assert SECRET.encode() not in content, f"{path.name} holds a password in clear"
        assert SECRET.encode("utf-16-le") not in content, path.name
    database = b"".join(path.read_bytes() for path in stored)
    assert b"scrypt$" in database  # the account is there, as a hash


# ------------------------------------------------------------------------ mutes


async def test_a_muted_users_messages_reach_no_one(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-OPER-9, CP-OPER-10, CP-ERR-5, users page (Mute: a mute covers SEND_ROOM and
    SET_TOPIC, not SEND_PRIVATE): mallory muted in #room sends room messages and topics,
    before and after NICK and after PART and JOIN: every one is MUTED; no member, the
    operator included, receives anything; the history and a later joiner's replay hold
    none, the topic is unchanged. Her private message still reaches its addressee only."""
    op = await _operator(client_factory)
    alice, bob, mallory = [await client_factory(n) for n in ("alice", "bob", "mallory")]
    await join_all("#room", op, alice, bob, mallory)
    await op.ok(SetTopic(room="#room", topic="be nice"))
    await op.ok(Mute(room="#room", nick="mallory", muted=True))
    for client in (op, alice, bob, mallory):
        await client.barrier()

    async def every_attempt(text: str) -> None:
        refused(await mallory.request(SendRoom(room="#room", text=text)), ErrorCode.MUTED)
        refused(await mallory.request(SendRoom(room="#room", text=text, client_msg_id=99)),
                ErrorCode.MUTED)
        refused(await mallory.request(SetTopic(room="#room", topic=text)), ErrorCode.MUTED)

    await every_attempt("spam 1")
    await mallory.ok(Nick(nick="new_me"))
    await every_attempt("spam 2")
    await mallory.ok(Part(room="#room"))
    await mallory.ok(Join(room="#room"))
    await every_attempt("spam 3")
    for client in (op, alice, bob):
        assert [e for e in await client.barrier()
                if isinstance(e, RoomMessage | TopicChanged)] == []
    history = of_type(await alice.ok(History(room="#room", limit=50)), RoomMessage)
    assert history == []
    late = await client_factory("late")
    joined = await late.ok(Join(room="#room"))
    assert of_type(joined, RoomMessage) == []
    assert [info.topic for info in of_type(joined, RoomInfo)] == ["be nice"]

    await mallory.ok(SendPrivate(nick="alice", text="a private word"))
    assert [m.text for m in of_type(await alice.barrier(), PrivateMessage)] == [
        "a private word"]
    for client in (op, bob, late):
        assert of_type(await client.barrier(), PrivateMessage) == []

