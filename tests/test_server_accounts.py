"""Reference server: accounts (REGISTER, login in HELLO, LOGIN), over real sockets.

Spec page: users (Accounts, Passwords), nicknames-and-rooms (CP-NICK-8).
"""

from __future__ import annotations

import pytest
from conftest import ClientFactory, RunningServer
from server_harness import ChatTestClient, HelloRefused, join_all, of_type, refused

from chatproto import ErrorCode
from chatproto.messages import (
    Error,
    Hello,
    Join,
    ListUsers,
    Login,
    Nick,
    NickChanged,
    Register,
    UserInfo,
)

PASSWORD = "correct horse battery staple"


async def users_of(client: ChatTestClient) -> dict[str, UserInfo]:
    """LIST_USERS, by nick."""
    return {u.nick: u for u in of_type(await client.ok(ListUsers()), UserInfo)}


async def test_register_then_log_in_with_hello(server: RunningServer,
                                               client_factory: ClientFactory) -> None:
    """CP-ACCT-1, CP-ACCT-4, CP-ACCT-5, CP-HS-1, CP-USER-2: REGISTER is OK and logs the
    connection in (USER_INFO registered=1); after reconnecting, HELLO with the nick in
    another letter case and the password is WELCOME logged_in=1 with the stored spelling."""
    alice = await client_factory("Alice")
    await alice.ok(Register(password=PASSWORD))
    assert (await users_of(alice))["Alice"].registered is True
    await alice.quit()

    again = await client_factory()
    welcome = await again.hello("aLICE", PASSWORD)
    assert welcome.logged_in is True
    assert welcome.nick == "Alice"
    assert (await users_of(again))["Alice"].registered is True


async def test_wrong_or_missing_password(server: RunningServer,
                                         client_factory: ClientFactory) -> None:
    """CP-ACCT-5, CP-ACCT-8, CP-HS-3: a registered nick with no password is
    NICK_REGISTERED, with a wrong one (also one differing only in case) AUTH_FAILED, both
    non-fatal: the same connection then logs in with the right password."""
    owner = await client_factory("alice")
    await owner.ok(Register(password=PASSWORD))
    await owner.quit()

    client = await client_factory()
    for password, code in (("", ErrorCode.NICK_REGISTERED),
                           ("wrong", ErrorCode.AUTH_FAILED),
                           (PASSWORD.upper(), ErrorCode.AUTH_FAILED),
                           (PASSWORD + " ", ErrorCode.AUTH_FAILED)):
        with pytest.raises(HelloRefused) as refusal:
            await client.hello("alice", password)
        assert (refusal.value.error.code, refusal.value.error.fatal) == (code, False)
        assert PASSWORD not in refusal.value.error.detail  # CP-ERR-6
    welcome = await client.hello("alice", PASSWORD)
    assert welcome.logged_in is True


async def test_registered_nick_is_refused_to_others(server: RunningServer,
                                                    client_factory: ClientFactory) -> None:
    """CP-ACCT-5, CP-NICK-8: while the owner is away, a guest asking for the registered
    nick (any case) by HELLO gets NICK_REGISTERED, and by NICK too."""
    owner = await client_factory("alice")
    await owner.ok(Register(password=PASSWORD))
    await owner.quit()
    guest = await client_factory()
    with pytest.raises(HelloRefused) as refusal:
        await guest.hello("ALICE")
    assert refusal.value.error.code == ErrorCode.NICK_REGISTERED
    await guest.hello("mallory")
    refused(await guest.request(Nick(nick="Alice")), ErrorCode.NICK_REGISTERED)
    assert set(await users_of(guest)) == {"mallory"}


async def test_registered_nick_in_use(server: RunningServer,
                                      client_factory: ClientFactory) -> None:
    """CP-NICK-10, CP-NICK-8, CP-ACCT-7: while the owner is connected, every request for
    the registered nick is NICK_IN_USE: HELLO with no, a wrong or the right password, NICK
    (not NICK_REGISTERED), LOGIN with a wrong or the right password (not AUTH_FAILED)."""
    owner = await client_factory("alice")
    await owner.ok(Register(password=PASSWORD))
    other = await client_factory()
    for password in ("", "wrong", PASSWORD):
        with pytest.raises(HelloRefused) as refusal:
            await other.hello("ALICE", password)
        assert refusal.value.error.code == ErrorCode.NICK_IN_USE, password
    await other.hello("bob")
    refused(await other.request(Nick(nick="Alice")), ErrorCode.NICK_IN_USE)
    for password in ("wrong", PASSWORD):
        refused(await other.request(Login(nick="alice", password=password)),
                ErrorCode.NICK_IN_USE)


async def test_password_for_an_unregistered_nick(server: RunningServer,
                                                 client_factory: ClientFactory) -> None:
    """CP-ACCT-5 (last row): HELLO with a password for a nick that is not registered is
    AUTH_FAILED, not a silent guest login."""
    client = await client_factory()
    with pytest.raises(HelloRefused) as refusal:
        await client.hello("newbie", "some password")
    assert refusal.value.error.code == ErrorCode.AUTH_FAILED
    welcome = await client.hello("newbie")
    assert welcome.logged_in is False


async def test_register_twice_and_empty_password(server: RunningServer,
                                                 client_factory: ClientFactory) -> None:
    """CP-ACCT-2, CP-ACCT-3: REGISTER of an already registered nick is ALREADY_REGISTERED;
    an empty password is INVALID_FIELD."""
    alice = await client_factory("alice")
    refused(await alice.request_unchecked(Register, password=""), ErrorCode.INVALID_FIELD)
    assert (await users_of(alice))["alice"].registered is False
    await alice.ok(Register(password=PASSWORD))
    refused(await alice.request(Register(password="another")), ErrorCode.ALREADY_REGISTERED)


async def test_login_after_the_handshake(server: RunningServer,
                                         client_factory: ClientFactory) -> None:
    """CP-ACCT-6, CP-ACCT-7, CP-NICK-9: LOGIN with a wrong password or an unregistered
    nick is AUTH_FAILED; with the right one it is OK, the connection takes the account's
    stored spelling, is registered, and room mates get NICK_CHANGED."""
    owner = await client_factory("Alice")
    await owner.ok(Register(password=PASSWORD))
    await owner.quit()

    guest, bob = await client_factory("guest1"), await client_factory("bob")
    await join_all("#room", guest, bob)
    refused(await guest.request(Login(nick="alice", password="nope")), ErrorCode.AUTH_FAILED)
    refused(await guest.request(Login(nick="nobody", password=PASSWORD)),
            ErrorCode.AUTH_FAILED)
    assert await bob.barrier() == []

    await guest.ok(Login(nick="ALICE", password=PASSWORD))
    changes = of_type(await bob.barrier(), NickChanged)
    assert [(c.old_nick, c.new_nick) for c in changes] == [("guest1", "Alice")]
    users = await users_of(bob)
    assert set(users) == {"Alice", "bob"}
    assert users["Alice"].registered is True
    assert users["bob"].registered is False


async def test_nick_change_ends_the_login(server: RunningServer,
                                          client_factory: ClientFactory) -> None:
    """CP-USER-2 (registered = logged in to the account of the CURRENT nick), users page:
    a change of letter case keeps the login, another nick ends it."""
    alice = await client_factory("alice")
    await alice.ok(Register(password=PASSWORD))
    await alice.ok(Nick(nick="ALICE"))
    assert (await users_of(alice))["ALICE"].registered is True
    await alice.ok(Nick(nick="someone"))
    assert (await users_of(alice))["someone"].registered is False
    # The account is still there: its nick stays protected.
    guest = await client_factory()
    with pytest.raises(HelloRefused) as refusal:
        await guest.hello("alice")
    assert refusal.value.error.code == ErrorCode.NICK_REGISTERED


async def test_a_case_change_keeps_the_accounts_spelling(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-ACCT-9, CP-NICK-3: the owner's NICK to another letter case shows the new spelling
    to room mates and in LIST_USERS, but a later login gets the stored spelling."""
    owner, bob = await client_factory("Alice"), await client_factory("bob")
    await owner.ok(Register(password=PASSWORD))
    await join_all("#room", owner, bob)
    await owner.ok(Nick(nick="ALICE"))
    changes = of_type(await bob.barrier(), NickChanged)
    assert [(c.old_nick, c.new_nick) for c in changes] == [("Alice", "ALICE")]
    assert (await users_of(bob))["ALICE"].registered is True
    await owner.quit()
    again = await client_factory()
    assert (await again.hello("alice", PASSWORD)).nick == "Alice"
    await again.quit()
    guest = await client_factory("guest")
    await guest.ok(Login(nick="aLiCe", password=PASSWORD))
    assert "Alice" in await users_of(guest)


async def test_logged_in_user_keeps_rooms_across_login(server: RunningServer,
                                                       client_factory: ClientFactory) -> None:
    """CP-ACCT-6: LOGIN only changes identity; the connection stays in its rooms."""
    owner = await client_factory("carol")
    await owner.ok(Register(password="pw"))
    await owner.quit()
    guest = await client_factory("visitor")
    await guest.ok(Join(room="#stay"))
    await guest.ok(Login(nick="carol", password="pw"))
    members = of_type(await guest.ok(ListUsers()), UserInfo)
    assert [m.nick for m in members] == ["carol"]
    refused(await guest.request(Join(room="#stay")), ErrorCode.ALREADY_IN_ROOM)


async def test_concurrent_logins_to_one_account(server: RunningServer,
                                                client_factory: ClientFactory) -> None:
    """CP-NICK-5, CP-ACCT-5, CP-ACCT-6: with the right password, four HELLOs and four
    LOGINs for the same account arrive at once (password checks take time, so they
    overlap): exactly one connection gets the nick, the others NICK_IN_USE."""
    owner = await client_factory("alice")
    await owner.ok(Register(password=PASSWORD))
    await owner.quit()
    fresh = [await client_factory() for _ in range(4)]
    guests = [await client_factory(f"guest{i}") for i in range(4)]
    ids = [await c.send(Hello(min_version=1, max_version=1, nick=n, password=PASSWORD,
                              client_name="race"))
           for c, n in zip(fresh, ["alice", "ALICE", "Alice", "aLiCe"], strict=True)]
    ids += [await c.send(Login(nick=n, password=PASSWORD))
            for c, n in zip(guests, ["alice", "ALICE", "Alice", "aLiCe"], strict=True)]
    finals = [(await c.response(request_id, timeout=20))[-1]
              for c, request_id in zip(fresh + guests, ids, strict=True)]
    winners = [f for f in finals if f.NAME in ("WELCOME", "OK")]
    assert len(winners) == 1, finals
    assert all(f.code == ErrorCode.NICK_IN_USE for f in finals if isinstance(f, Error)), finals
    users = [u.nick for u in of_type(await guests[-1].ok(ListUsers()), UserInfo)]
    assert users.count("alice") == 1
