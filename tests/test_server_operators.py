"""Reference server: operators (OPER, KICK, BAN, UNBAN, MUTE), over real sockets.

Spec page: users (Operators, Who sees what, Bans and mutes across nick changes). The
operator credential comes from the server configuration (``operators``): the config
file, ``--oper-file``, ``CHATPROTO_OPERATORS`` or ``--oper`` (guide: run-server).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from conftest import ClientFactory, MakeServerProcess, RunningServer
from server_harness import ChatTestClient, join_all, of_type, refused

from chatproto import ErrorCode, Limits
from chatproto.messages import (
    Ban,
    Join,
    Kick,
    LeaveKind,
    ListUsers,
    Login,
    MemberJoined,
    MemberLeft,
    Message,
    Mute,
    MuteChanged,
    Nick,
    Ok,
    Oper,
    Part,
    PrivateMessage,
    Register,
    RoomMessage,
    SendPrivate,
    SendRoom,
    SetTopic,
    TopicChanged,
    Unban,
    UserInfo,
)
from reference_server.config import OPERATORS_ENV, ConfigError, build_parser, load_config
from reference_server.passwords import hash_password

pytestmark = pytest.mark.server_config(operators={"root": "op-secret"})


async def operator(client_factory: ClientFactory, nick: str = "op") -> ChatTestClient:
    client = await client_factory(nick)
    await client.ok(Oper(name="root", password="op-secret"))
    return client


async def test_oper_with_the_configured_credential(server: RunningServer,
                                                   client_factory: ClientFactory) -> None:
    """CP-OPER-1, CP-OPER-2, CP-USER-2: a wrong name or password is AUTH_FAILED; the
    configured one is OK and USER_INFO then shows operator=1 (no event announces it)."""
    op, bob = await client_factory("op"), await client_factory("bob")
    await join_all("#room", op, bob)
    refused(await op.request(Oper(name="root", password="wrong")), ErrorCode.AUTH_FAILED)
    refused(await op.request(Oper(name="admin", password="op-secret")), ErrorCode.AUTH_FAILED)
    refused(await op.request(Oper(name="ROOT", password="op-secret")), ErrorCode.AUTH_FAILED)
    await op.ok(Oper(name="root", password="op-secret"))
    assert await bob.barrier() == []
    users = {u.nick: u.operator for u in of_type(await bob.ok(ListUsers()), UserInfo)}
    assert users == {"op": True, "bob": False}


@pytest.mark.parametrize("request_message", [
    Kick(room="#room", nick="bob"), Ban(room="#room", nick="bob"),
    Unban(room="#room", nick="bob"), Mute(room="#room", nick="bob", muted=True),
    Kick(room="#nowhere", nick="nobody"), Ban(room="#nowhere", nick="nobody"),
    Unban(room="#nowhere", nick="nobody"), Mute(room="#nowhere", nick="nobody", muted=False),
], ids=lambda m: f"{m.NAME}-{m.room}")
async def test_moderation_needs_an_operator(server: RunningServer,
                                            client_factory: ClientFactory,
                                            request_message: Message) -> None:
    """CP-OPER-3, CP-ERR-5: KICK, BAN, UNBAN and MUTE from a non-operator are
    NOT_OPERATOR whatever room and nick they name (existing or not); nothing happens."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    refused(await alice.request(request_message), ErrorCode.NOT_OPERATOR)
    assert await bob.barrier() == []
    await bob.ok(SendRoom(room="#room", text="still here and not muted"))


async def test_kick(server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-OPER-4: an operator who is not a member kicks mallory: mallory and every
    remaining member get MEMBER_LEFT kind KICK with the reason and the operator as `by`;
    the operator gets only OK; mallory may join again."""
    op = await operator(client_factory)
    alice, bob, mallory = [await client_factory(n) for n in ("alice", "bob", "mallory")]
    await join_all("#room", alice, bob, mallory)
    await op.ok(Kick(room="#room", nick="MALLORY", reason="flooding"))
    for member in (mallory, alice, bob):
        left = of_type(await member.barrier(), MemberLeft)
        assert [(m.room, m.nick, m.kind, m.reason, m.by) for m in left] == [
            ("#room", "mallory", LeaveKind.KICK, "flooding", "op")]
    assert await op.barrier() == []
    refused(await mallory.request(SendRoom(room="#room", text="hey")), ErrorCode.NOT_IN_ROOM)
    await mallory.ok(Join(room="#room"))


def events_before_ok(client: ChatTestClient) -> list[Message]:
    """The events that arrived before the final frame of the client's last answer."""
    return client.events_in_window((0, client.last_answer_window[1]))


async def test_an_operator_who_moderates_himself_gets_the_targets_event(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-OPER-12, CP-OPER-4, CP-OPER-6, CP-OPER-8: an operator in the room who mutes,
    kicks and bans himself (in any letter case) gets, before each OK, the MUTE_CHANGED or
    MEMBER_LEFT the target gets, naming him as he spells his nick; the other members get
    theirs; a private message to himself arrives before its OK."""
    op = await operator(client_factory, "Op")
    alice = await client_factory("alice")
    await join_all("#room", op, alice)
    await op.ok(Mute(room="#room", nick="OP", muted=True))
    assert [(c.nick, c.muted, c.by) for c in of_type(events_before_ok(op), MuteChanged)] \
        == [("Op", True, "Op")]
    await op.ok(Kick(room="#room", nick="op", reason="self"))
    assert [(m.nick, m.kind, m.by) for m in of_type(events_before_ok(op), MemberLeft)] \
        == [("Op", LeaveKind.KICK, "Op")]
    op.drain()
    await op.ok(Join(room="#room"))
    await op.ok(Ban(room="#room", nick="op", reason="self"))
    assert [(m.nick, m.kind, m.by) for m in of_type(events_before_ok(op), MemberLeft)] \
        == [("Op", LeaveKind.BAN, "Op")]
    op.drain()
    await op.ok(SendPrivate(nick="OP", text="note to self"))
    assert [(m.sender, m.text) for m in of_type(events_before_ok(op), PrivateMessage)] \
        == [("Op", "note to self")]
    assert [m.NAME for m in await alice.barrier()] == [
        "MUTE_CHANGED", "MEMBER_LEFT", "MEMBER_JOINED", "MEMBER_LEFT"]


async def test_kick_of_someone_not_in_the_room(server: RunningServer,
                                               client_factory: ClientFactory) -> None:
    """CP-OPER-5: KICK of a nick nobody holds is NO_SUCH_NICK; of a connected user who is
    not in the room, NOT_IN_ROOM; of anyone in a missing room, NO_SUCH_ROOM (CP-ROOM-7)."""
    op = await operator(client_factory)
    alice, outsider = await client_factory("alice"), await client_factory("outsider")
    await join_all("#room", alice)
    refused(await op.request(Kick(room="#room", nick="ghost")), ErrorCode.NO_SUCH_NICK)
    refused(await op.request(Kick(room="#room", nick="outsider")), ErrorCode.NOT_IN_ROOM)
    refused(await op.request(Kick(room="#nowhere", nick="alice")), ErrorCode.NO_SUCH_ROOM)
    assert await alice.barrier() == []
    assert await outsider.barrier() == []


async def test_ban_and_unban(server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-OPER-6, CP-OPER-7, CP-ROOM-13: BAN removes mallory (MEMBER_LEFT kind BAN to her
    and the members, not the operator); she cannot rejoin (BANNED_FROM_ROOM), not even
    from a new connection spelling the nick differently; UNBAN lets her in; UNBAN with no
    ban is OK too."""
    op = await operator(client_factory)
    alice, mallory = await client_factory("alice"), await client_factory("mallory")
    await join_all("#room", alice, mallory)
    await op.ok(Ban(room="#room", nick="mallory", reason="spam"))
    for member in (mallory, alice):
        left = of_type(await member.barrier(), MemberLeft)
        assert [(m.nick, m.kind, m.reason, m.by) for m in left] == [
            ("mallory", LeaveKind.BAN, "spam", "op")]
    assert await op.barrier() == []
    refused(await mallory.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
    await mallory.quit()
    mallory2 = await client_factory("MALLORY")
    refused(await mallory2.request(Join(room="#ROOM")), ErrorCode.BANNED_FROM_ROOM)
    assert await alice.barrier() == []

    await op.ok(Unban(room="#room", nick="Mallory"))
    await mallory2.ok(Join(room="#room"))
    await op.ok(Unban(room="#room", nick="neverbanned"))


async def test_ban_of_an_absent_nick(server: RunningServer,
                                     client_factory: ClientFactory) -> None:
    """CP-OPER-6: a ban is kept per room by nick fold whether or not anyone holds the
    nick: BAN is OK, and a later JOIN under that nick is BANNED_FROM_ROOM."""
    op = await operator(client_factory)
    alice = await client_factory("alice")
    await join_all("#room", alice)
    await op.ok(Ban(room="#room", nick="troll"))
    assert await alice.barrier() == []
    troll = await client_factory("Troll")
    refused(await troll.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
    await troll.ok(Join(room="#other"))


async def test_mute_and_unmute(server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-OPER-8, CP-OPER-9: MUTE tells every member except the operator (the muted one
    included) MUTE_CHANGED; the muted member's SEND_ROOM and SET_TOPIC are MUTED and
    deliver nothing; other members still talk; unmuting restores it."""
    op = await operator(client_factory)
    alice, mallory = await client_factory("alice"), await client_factory("mallory")
    await join_all("#room", op, alice, mallory)
    await op.ok(Mute(room="#room", nick="mallory", muted=True))
    for member in (alice, mallory):
        changes = of_type(await member.barrier(), MuteChanged)
        assert [(c.room, c.nick, c.muted, c.by) for c in changes] == [
            ("#room", "mallory", True, "op")]
    assert await op.barrier() == []

    refused(await mallory.request(SendRoom(room="#room", text="you can't silence me")),
            ErrorCode.MUTED)
    refused(await mallory.request(SetTopic(room="#room", topic="muted topic")),
            ErrorCode.MUTED)
    assert await alice.barrier() == []
    await alice.ok(SendRoom(room="#room", text="peace at last"))
    assert len(of_type(await mallory.barrier(), RoomMessage)) == 1

    await op.ok(Mute(room="#room", nick="mallory", muted=False))
    changes = of_type(await alice.barrier(), MuteChanged)
    assert [(c.nick, c.muted) for c in changes] == [("mallory", False)]
    await mallory.barrier()
    await mallory.ok(SendRoom(room="#room", text="thanks"))
    assert len(of_type(await alice.barrier(), RoomMessage)) == 1


@pytest.mark.server_config(operators={"root": "op-secret"},
                            limits=Limits(max_rooms_per_user=2))
async def test_join_refusals_in_order(server: RunningServer,
                                      client_factory: ClientFactory) -> None:
    """CP-ROOM-22: a JOIN that is refused on several counts gets ALREADY_IN_ROOM before
    BANNED_FROM_ROOM, and BANNED_FROM_ROOM before TOO_MANY_ROOMS."""
    op = await operator(client_factory)
    mallory = await client_factory("mallory")
    await mallory.ok(Join(room="#banned"))
    await op.ok(Ban(room="#banned", nick="mallory", reason=""))
    await mallory.ok(Join(room="#one"))
    await mallory.ok(Join(room="#two"))  # at max_rooms_per_user
    refused(await mallory.request(Join(room="#banned")), ErrorCode.BANNED_FROM_ROOM)
    refused(await mallory.request(Join(room="#three")), ErrorCode.TOO_MANY_ROOMS)
    await op.ok(Ban(room="#one", nick="mallory", reason=""))  # removes her: one room left
    await mallory.ok(Join(room="#three"))
    await mallory.ok(Part(room="#three"))
    await op.ok(Unban(room="#one", nick="mallory"))
    await mallory.ok(Join(room="#one"))
    await op.ok(Ban(room="#one", nick="Mallory2", reason=""))
    await mallory.ok(Nick(nick="mallory2"))  # takes a nick banned in a room she is in
    # In #one, banned from it and at max_rooms_per_user: ALREADY_IN_ROOM first.
    refused(await mallory.request(Join(room="#one")), ErrorCode.ALREADY_IN_ROOM)


async def test_a_muted_senders_resend_gets_the_original_ok(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-MSG-13, CP-MSG-11, CP-OPER-9: after a mute, a resend of a message accepted before
    it is answered with the original OK and delivered to nobody; a new message is MUTED."""
    op = await operator(client_factory)
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    first = (await alice.ok(SendRoom(room="#room", text="before", client_msg_id=5)))[-1]
    await op.ok(Mute(room="#room", nick="alice", muted=True))
    again = (await alice.ok(SendRoom(room="#room", text="before", client_msg_id=5)))[-1]
    assert isinstance(first, Ok) and isinstance(again, Ok)
    assert (again.msg_id, again.seq, again.timestamp_ms) == \
        (first.msg_id, first.seq, first.timestamp_ms)
    refused(await alice.request(SendRoom(room="#room", text="after", client_msg_id=6)),
            ErrorCode.MUTED)
    assert [m.NAME for m in await bob.barrier()] == ["ROOM_MESSAGE", "MUTE_CHANGED"]


async def test_mute_follows_the_nick(server: RunningServer,
                                     client_factory: ClientFactory) -> None:
    """CP-OPER-8: mutes are kept per room by nick fold: a mute set while the nick is
    away applies when it comes back."""
    op = await operator(client_factory)
    alice = await client_factory("alice")
    await join_all("#room", alice)
    await op.ok(Mute(room="#room", nick="latecomer", muted=True))
    latecomer = await client_factory("LateComer")
    await latecomer.ok(Join(room="#room"))
    refused(await latecomer.request(SendRoom(room="#room", text="hi")), ErrorCode.MUTED)


async def test_mute_changed_shows_the_members_own_spelling(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-NICK-3, CP-OPER-13: a frame naming a user shows the nick as that user spelled
    it, whatever letter case the operator typed (KICK and BAN do this; MUTE_CHANGED must
    too); a MUTE of a nick nobody holds is announced as the MUTE spelled it."""
    op = await operator(client_factory)
    alice, mallory = await client_factory("alice"), await client_factory("mallory")
    await join_all("#room", alice, mallory)
    await op.ok(Mute(room="#room", nick="MALLORY", muted=True))
    changes = of_type(await alice.barrier(), MuteChanged)
    assert [c.nick for c in changes] == ["mallory"]
    # CP-OPER-13: a nick nobody holds is named as the MUTE spelled it.
    await op.ok(Mute(room="#room", nick="GhOsT", muted=True))
    changes = of_type(await alice.barrier(), MuteChanged)
    assert [c.nick for c in changes] == ["GhOsT"]


# ------------------------------------------------------- moderation across nick changes


async def test_ban_stays_with_the_connection_after_nick(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-OPER-10, CP-OPER-11, CP-ROOM-13: banned mallory takes another nick and is still
    refused; a newcomer under "mallory" is refused too; UNBAN of the nick she holds now
    lets her (only her) back in."""
    op = await operator(client_factory)
    alice, mallory = await client_factory("alice"), await client_factory("mallory")
    await join_all("#room", alice, mallory)
    await op.ok(Ban(room="#room", nick="mallory", reason="spam"))
    await mallory.ok(Nick(nick="innocent"))
    refused(await mallory.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
    await mallory.ok(Nick(nick="Innocent2"))
    refused(await mallory.request(Join(room="#ROOM")), ErrorCode.BANNED_FROM_ROOM)
    newcomer = await client_factory("Mallory")
    refused(await newcomer.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
    assert of_type(await alice.barrier(), MemberJoined) == []

    await op.ok(Unban(room="#room", nick="innocent2"))
    await mallory.ok(Join(room="#room"))
    refused(await newcomer.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)


async def test_mute_stays_with_the_connection_after_nick(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-OPER-10, CP-OPER-11, CP-OPER-9: muted mallory takes another nick: SEND_ROOM and
    SET_TOPIC are still MUTED and reach nobody, also after PART and JOIN; unmuting the
    nick she was muted under lets her speak."""
    op = await operator(client_factory)
    alice, mallory = await client_factory("alice"), await client_factory("mallory")
    await join_all("#room", alice, mallory)
    await op.ok(Mute(room="#room", nick="mallory", muted=True))
    await alice.barrier()
    await mallory.ok(Nick(nick="innocent"))
    await mallory.ok(Part(room="#room"))
    await mallory.ok(Join(room="#room"))
    await alice.barrier()
    refused(await mallory.request(SendRoom(room="#room", text="new nick")), ErrorCode.MUTED)
    refused(await mallory.request(SetTopic(room="#room", topic="new me")), ErrorCode.MUTED)
    assert [e for e in await alice.barrier() if isinstance(e, RoomMessage | TopicChanged)] == []

    await op.ok(Mute(room="#room", nick="mallory", muted=False))
    await mallory.ok(SendRoom(room="#room", text="thanks"))
    assert [m.sender for m in of_type(await alice.barrier(), RoomMessage)] == ["innocent"]


async def test_a_nick_taken_while_marked_brings_its_marks(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-OPER-10: a connection that takes a banned and muted nick by NICK carries both
    when it moves on; one that held the nick only before the ban carries nothing, and
    the marks a connection carries end with it."""
    op = await operator(client_factory)
    early, late = await client_factory("troll"), await client_factory("late")
    await early.ok(Nick(nick="early"))  # held "troll" before the ban only
    await join_all("#banned", op)
    await join_all("#muted", op)
    await op.ok(Ban(room="#banned", nick="troll"))
    await op.ok(Mute(room="#muted", nick="troll", muted=True))
    await late.ok(Nick(nick="troll"))
    await late.ok(Nick(nick="late"))
    refused(await late.request(Join(room="#banned")), ErrorCode.BANNED_FROM_ROOM)
    await late.ok(Join(room="#muted"))
    refused(await late.request(SendRoom(room="#muted", text="hi")), ErrorCode.MUTED)
    await early.ok(Join(room="#banned"))
    await late.quit()
    again = await client_factory("late")
    await again.ok(Join(room="#banned"))


async def test_ban_of_a_registered_nick_holds_every_login(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-OPER-10, CP-ROOM-13: the account's nick is banned while its owner is away; a
    HELLO with the password, a reconnection, and a LOGIN from a guest each carry the ban,
    and a NICK afterwards does not shed it."""
    owner = await client_factory("Alice")
    await owner.ok(Register(password="alice-password"))
    await owner.quit()
    op = await operator(client_factory)
    await op.ok(Join(room="#room"))
    await op.ok(Ban(room="#room", nick="alice"))
    for _visit in range(2):
        owner = await client_factory("alice", "alice-password")
        refused(await owner.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
        await owner.ok(Nick(nick="not_alice"))
        refused(await owner.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
        await owner.quit()
    guest = await client_factory("guest")
    await guest.ok(Login(nick="ALICE", password="alice-password"))
    await guest.ok(Nick(nick="guest"))
    refused(await guest.request(Join(room="#room")), ErrorCode.BANNED_FROM_ROOM)
    assert of_type(await op.barrier(), MemberJoined) == []


# ------------------------------------------------ operator credentials off the command line


def test_operators_from_a_file_and_the_environment(tmp_path: Path) -> None:
    """--oper-file and CHATPROTO_OPERATORS hold NAME:PASSWORD lines (blank lines and #
    comments skipped, a hash allowed); config file, then environment, then file, then
    --oper, a later entry replacing an earlier one of the same name."""
    stored = hash_password("from-file")
    oper_file = tmp_path / "operators"
    oper_file.write_text(f"# who may moderate\n\nroot:{stored}\n  teacher:pass:word  \n"
                         "shared:from-file\n", encoding="utf-8")
    config_file = tmp_path / "server.toml"
    config_file.write_text('[operators]\nold = "kept"\nshared = "from-config"\n',
                           encoding="utf-8")
    config = load_config(["--config", str(config_file), "--oper-file", str(oper_file),
                           "--oper", "teacher:from-flag"],
                         environ={OPERATORS_ENV: "env:from-env\nshared:from-env\n"})
    assert config.operators == {"old": "kept", "env": "from-env", "root": stored,
                                "shared": "from-file", "teacher": "from-flag"}
    only_env = load_config([], environ={OPERATORS_ENV: "admin:secret"})
    assert only_env.operators == {"admin": "secret"}


@pytest.mark.parametrize("text", ["root\n", ":hunter2-secret\n", "root:\n",
                                  "root:scrypt$16384$8$1$...\n"],
                         ids=["no-colon", "no-name", "no-password", "broken-hash"])
def test_a_bad_operator_line_is_refused_without_showing_it(tmp_path: Path, text: str) -> None:
    """A malformed line of --oper-file or CHATPROTO_OPERATORS stops the configuration with
    one line naming where it is, never its content (it may be a password)."""
    oper_file = tmp_path / "operators"
    oper_file.write_text("# first line\n" + text, encoding="utf-8")
    for argv, environ in ((["--oper-file", str(oper_file)], {}),
                          ([], {OPERATORS_ENV: "# first line\n" + text})):
        with pytest.raises(ConfigError) as error:
            load_config(argv, environ=environ)
        message = str(error.value)
        assert "\n" not in message
        assert "hunter2" not in message and "scrypt$16384" not in message, message
        assert "line 2" in message or "operators.root" in message, message
    with pytest.raises(ConfigError, match=r"^cannot read --oper-file \S+: No such file"):
        load_config(["--oper-file", str(tmp_path / "missing")], environ={})


def test_help_warns_that_oper_is_visible() -> None:
    """--help says that --oper is visible to other users and offers the private forms."""
    text = " ".join(build_parser().format_help().split())
    assert "--oper-file FILE" in text and OPERATORS_ENV in text
    assert "Every user of this machine can read it in the process list" in text


async def test_oper_file_keeps_the_password_off_the_command_line(
        make_server_process: MakeServerProcess, client_factory: ClientFactory,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server given its operators by --oper-file, or by CHATPROTO_OPERATORS, lets them
    OPER; the password is nowhere in its command line (what `ps` shows)."""
    oper_file = tmp_path / "operators"
    oper_file.write_text("root:file-secret-8d2k\n", encoding="utf-8")
    monkeypatch.setenv(OPERATORS_ENV, "envop:env-secret-5q9w")
    server = await make_server_process("--oper-file", str(oper_file)).start()
    cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
    assert b"file-secret" not in cmdline and b"env-secret" not in cmdline
    client = await client_factory("alice", server=server)
    await client.ok(Oper(name="root", password="file-secret-8d2k"))
    other = await client_factory("bob", server=server)
    await other.ok(Oper(name="envop", password="env-secret-5q9w"))


async def test_failed_oper_does_not_log_an_unknown_name(
        server: RunningServer, client_factory: ClientFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    """A refused OPER logs a configured name, but an unknown one only by its length: the
    name field may hold a password typed in the wrong field (CP-SEC-9)."""
    caplog.set_level(logging.DEBUG)
    client = await client_factory("alice")
    refused(await client.request(Oper(name="MyPassw0rd-x7Q", password="x")),
            ErrorCode.AUTH_FAILED)
    refused(await client.request(Oper(name="root", password="wrong-4hG2")),
            ErrorCode.AUTH_FAILED)
    lines = [r.getMessage() for r in caplog.records if r.name == "chatproto.server"]
    refusals = [re.sub(r"session=\d+", "session=N", m) for m in lines
                if m.startswith("oper refused")]
    assert refusals == ["oper refused session=N name=unknown (14 bytes)",
                        "oper refused session=N name='root'"]
    everything = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "Passw0rd" not in everything and "4hG2" not in everything
