"""Users: LIST_USERS, the fields of USER_INFO, and presence (AWAY and PRESENCE).

The target may serve other clients while the kit runs, so a listing is checked
for what it must contain and must not contain, never for equality.
"""

from __future__ import annotations

from chatproto import ErrorCode, fold
from chatproto.messages import (
    Away,
    Error,
    ListMembers,
    ListUsers,
    Login,
    Nick,
    Presence,
    Register,
    UserInfo,
)
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import Peer, ServerContext
from conformance.suites.server._steps import (
    AUTH_TIMEOUT,
    hello_answer,
    new_password,
    operator_client,
    registered_account,
)
from conformance.transcript import describe


async def _users(peer: Peer, req: str = "CP-USER-1") -> list[UserInfo]:
    """The USER_INFO frames answering one LIST_USERS, which holds nothing else (CP-USER-1)."""
    answer = await peer.ok(ListUsers(), req=req)
    others = [m for m in answer.intermediate if not isinstance(m, UserInfo)]
    if others:
        raise Violation("CP-USER-1", f"the answer to LIST_USERS holds {describe(others[0])}; "
                        "only USER_INFO frames may come before its OK")
    return answer.of_type(UserInfo)


def _entries(infos: list[UserInfo], nick: str) -> list[UserInfo]:
    return [info for info in infos if fold(info.nick) == fold(nick)]


def _one(infos: list[UserInfo], nick: str, where: str) -> UserInfo:
    """The single USER_INFO for ``nick`` (CP-USER-1: one per connection in READY)."""
    found = _entries(infos, nick)
    if len(found) != 1:
        raise Violation("CP-USER-1", f"{where} holds {len(found)} USER_INFO frames for "
                        f"{nick!r}, a connection in READY; exactly one is required")
    return found[0]


def _check_fields(ctx: ServerContext, info: UserInfo, *, nick: str, away: str = "",
                  operator: bool = False, registered: bool = False, req: str = "CP-USER-2",
                  where: str = "LIST_USERS") -> None:
    expected = (f"nick={nick!r} away={int(bool(away))} away_message={away!r} "
                f"operator={int(operator)} registered={int(registered)}")
    ctx.check(info.nick == nick and info.away == bool(away) and info.away_message == away
              and info.operator == operator and info.registered == registered, req,
              f"{where} described {nick!r} as {describe(info)}; expected {expected}")


# ------------------------------------------------------------------ listing


@server_case("CP-USER-1")
async def list_users_includes_requester_and_others(ctx: ServerContext) -> None:
    """LIST_USERS holds one USER_INFO for the requester and each other welcomed connection."""
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    carol = await ctx.client("carol")
    infos = await _users(alice)
    for peer in (alice, bob, carol):
        _one(infos, peer.nick, f"alice's LIST_USERS ({len(infos)} users)")


@server_case("CP-USER-1")
async def list_users_omits_connections_not_ready(ctx: ServerContext) -> None:
    """Connections back in AWAIT_HELLO after a refused HELLO, or gone after QUIT, are not listed."""
    owned, _ = await registered_account(ctx, "owned")
    ghost = ctx.nick("ghost")
    # Each HELLO is refused (AUTH_FAILED), so its connection stays in AWAIT_HELLO.
    for nick in (owned, ghost):
        final = await hello_answer(await ctx.connect("waiting"), nick, new_password())
        if not isinstance(final, Error) or final.code != ErrorCode.AUTH_FAILED:
            raise Violation("CP-ACCT-5", f"HELLO for {nick!r} with a wrong password was "
                            f"answered with {describe(final)}, not ERROR AUTH_FAILED")
    await ctx.connect("silent")  # connected, never sent HELLO
    gone = await ctx.client("gone")
    await gone.quit()
    await gone.expect_closed(req="CP-CLOSE-1")
    alice = await ctx.client("alice")
    infos = await _users(alice)
    _one(infos, alice.nick, "alice's LIST_USERS")
    for nick, why in ((owned, "whose HELLO was refused with AUTH_FAILED"),
                      (ghost, "whose HELLO was refused with AUTH_FAILED"),
                      (gone.nick, "that quit and was closed")):
        listed = _entries(infos, nick)
        ctx.check(not listed, "CP-USER-1",
                  f"LIST_USERS lists {describe(listed[0]) if listed else ''} for a connection "
                  f"{why}; only connections in READY are users")


# ------------------------------------------------------------------ USER_INFO


@server_case("CP-USER-2", "CP-USER-3")
async def user_info_shows_away_state(ctx: ServerContext) -> None:
    """USER_INFO shows away=1 and the message after AWAY, away=0 and "" after an empty AWAY."""
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    _check_fields(ctx, _one(await _users(bob), alice.nick, "LIST_USERS"), nick=alice.nick)
    message = "out to lunch \u2014 back at 2"
    await alice.ok(Away(message=message), req="CP-USER-3")
    infos = await _users(bob)
    _check_fields(ctx, _one(infos, alice.nick, "LIST_USERS"), nick=alice.nick, away=message,
                  where="LIST_USERS after AWAY")
    _check_fields(ctx, _one(infos, bob.nick, "LIST_USERS"), nick=bob.nick,
                  where="LIST_USERS (bob never sent AWAY)")
    await alice.ok(Away(message=""), req="CP-USER-3")
    _check_fields(ctx, _one(await _users(bob), alice.nick, "LIST_USERS"), nick=alice.nick,
                  where="LIST_USERS after an empty AWAY")


@server_case("CP-USER-2", "CP-ACCT-1", "CP-ACCT-6")
async def user_info_shows_registered_while_logged_in(ctx: ServerContext) -> None:
    """registered is set for connections logged in (HELLO, REGISTER, LOGIN), cleared by NICK."""
    first, first_password = await registered_account(ctx, "first")
    second, second_password = await registered_account(ctx, "second")
    room = ctx.room("reg")
    # Logged in through HELLO: the baseline for the field itself.
    carol = await ctx.connect("carol")
    await carol.hello(first, password=first_password, timeout=AUTH_TIMEOUT)
    await carol.join(room)
    guest = await ctx.client("guest")
    infos = await _users(guest)
    _check_fields(ctx, _one(infos, guest.nick, "LIST_USERS"), nick=guest.nick,
                  where="LIST_USERS (a guest)")
    _check_fields(ctx, _one(infos, first, "LIST_USERS"), nick=first, registered=True,
                  where="LIST_USERS (a connection that logged in with HELLO)")
    members = await carol.ok(ListMembers(room=room), req="CP-ROOM-18")
    _check_fields(ctx, _one(members.of_type(UserInfo), first, "LIST_MEMBERS"), nick=first,
                  registered=True, where="LIST_MEMBERS")
    # The field works, so a wrong value below is the login's fault.
    alice = await ctx.client("alice")
    await alice.ok(Register(password=new_password()), req="CP-ACCT-1", timeout=AUTH_TIMEOUT)
    _check_fields(ctx, _one(await _users(guest), alice.nick, "LIST_USERS"), nick=alice.nick,
                  registered=True, req="CP-ACCT-1", where="LIST_USERS after REGISTER")
    dave = await ctx.client("dave")
    await dave.ok(Login(nick=second, password=second_password), req="CP-ACCT-6",
                  timeout=AUTH_TIMEOUT)
    _check_fields(ctx, _one(await _users(guest), second, "LIST_USERS"), nick=second,
                  registered=True, req="CP-ACCT-6", where="LIST_USERS after LOGIN")
    # A change of letter case keeps the login; another nick ends it.
    await carol.ok(Nick(nick=first.upper()), req="CP-NICK-8")
    _check_fields(ctx, _one(await _users(guest), first, "LIST_USERS"), nick=first.upper(),
                  registered=True, where="LIST_USERS after a case-only NICK change")
    elsewhere = ctx.nick("carol")
    await carol.ok(Nick(nick=elsewhere), req="CP-NICK-7")
    _check_fields(ctx, _one(await _users(guest), elsewhere, "LIST_USERS"), nick=elsewhere,
                  where="LIST_USERS after NICK to another (unregistered) nick")


@server_case("CP-USER-2")
async def user_info_follows_nick_changes(ctx: ServerContext) -> None:
    """After NICK, USER_INFO names the user by the new nick (any letter case), not the old one."""
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    old = alice.nick
    for new in (ctx.nick("renamed"), None):
        target = new if new is not None else alice.nick.upper()
        await alice.ok(Nick(nick=target), req="CP-NICK-7")
        infos = await _users(bob)
        info = _one(infos, target, "LIST_USERS after NICK")
        _check_fields(ctx, info, nick=target, where=f"LIST_USERS after NICK {target!r}")
        stale = [i for i in infos if fold(i.nick) == fold(old)]
        ctx.check(not stale, "CP-USER-2",
                  f"after NICK {target!r}, LIST_USERS still lists the old nick {old!r}")
        old = target


@server_case("CP-USER-2", needs=("oper",))
async def user_info_shows_operator(ctx: ServerContext) -> None:
    """operator is set in USER_INFO (LIST_USERS and LIST_MEMBERS) for a connection after OPER."""
    room = ctx.room("oper")
    op = await operator_client(ctx)
    bob = await ctx.client("bob")
    await op.join(room)
    await bob.join(room)
    infos = await _users(bob)
    _check_fields(ctx, _one(infos, op.nick, "LIST_USERS"), nick=op.nick, operator=True,
                  where="LIST_USERS after OPER")
    _check_fields(ctx, _one(infos, bob.nick, "LIST_USERS"), nick=bob.nick,
                  where="LIST_USERS (bob is not an operator)")
    members = (await bob.ok(ListMembers(room=room), req="CP-ROOM-18")).of_type(UserInfo)
    _check_fields(ctx, _one(members, op.nick, "LIST_MEMBERS"), nick=op.nick, operator=True,
                  where="LIST_MEMBERS after OPER")


# ------------------------------------------------------------------ presence


@server_case("CP-USER-3")
async def away_sends_one_presence_to_each_room_mate(ctx: ServerContext) -> None:
    """AWAY is answered OK; each connection sharing a room gets one PRESENCE, others none."""
    first, second, elsewhere = ctx.room("aw1"), ctx.room("aw2"), ctx.room("aw3")
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")      # shares the first room
    carol = await ctx.client("carol")  # shares both rooms
    dave = await ctx.client("dave")    # shares no room
    for peer, rooms in ((alice, (first, second)), (bob, (first,)), (carol, (first, second)),
                        (dave, (elsewhere,))):
        for room in rooms:
            await peer.join(room)
    message = "in a meeting"
    await alice.ok(Away(message=message), req="CP-USER-3")

    def about_alice(m: Presence) -> bool:
        return fold(m.nick) == fold(alice.nick)

    for peer in (bob, carol):
        with ctx.attribute("CP-USER-3"):
            presence = await peer.expect_type(Presence, req="CP-USER-3", where=about_alice)
        ctx.check(presence.nick == alice.nick and presence.away
                  and presence.away_message == message, "CP-USER-3",
                  f"{peer.label} received {describe(presence)}; expected nick={alice.nick!r} "
                  f"away=1 away_message={message!r}")
        await peer.assert_none(Presence, req="CP-USER-3",
                               why="a second PRESENCE for one AWAY (one per connection, "
                               "however many rooms it shares)")
    await dave.assert_none(Presence, req="CP-USER-3",
                           why="dave shares no room with alice, so nobody tells him")
    await alice.assert_none(Presence, req="CP-USER-3",
                            why="PRESENCE goes to every *other* connection; alice has her OK")


@server_case("CP-USER-3")
async def empty_away_sends_presence_back(ctx: ServerContext) -> None:
    """An empty AWAY is answered OK and room mates get PRESENCE with away=0 and an empty message."""
    room = ctx.room("back")
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    await alice.join(room)
    await bob.join(room)
    await alice.ok(Away(message="brb"), req="CP-USER-3")
    with ctx.attribute("CP-USER-3"):
        await bob.expect_type(Presence, req="CP-USER-3", where=lambda m: m.away)
    await alice.ok(Away(message=""), req="CP-USER-3")
    with ctx.attribute("CP-USER-3"):
        back = await bob.expect_type(Presence, req="CP-USER-3")
    ctx.check(back.nick == alice.nick and not back.away and back.away_message == "",
              "CP-USER-3", f"bob received {describe(back)}; expected nick={alice.nick!r} "
              "away=0 away_message=''")
    await bob.assert_none(Presence, req="CP-USER-3", why="one AWAY causes one PRESENCE")
