"""Operators: OPER, and the moderation requests KICK, BAN, UNBAN and MUTE.

Cases that moderate need the operator credentials configured on the target
(``--oper NAME:PASSWORD``) and are skipped without them; refusals (a wrong
OPER, moderation from a non-operator) need none.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable

from chatproto import ErrorCode, Message, fold
from chatproto.messages import (
    Ban,
    Error,
    Join,
    Kick,
    LeaveKind,
    ListMembers,
    Login,
    MemberJoined,
    MemberLeft,
    Mute,
    MuteChanged,
    Nick,
    Oper,
    PrivateMessage,
    RoomMessage,
    SendPrivate,
    SendRoom,
    SetTopic,
    TopicChanged,
    Unban,
    UserInfo,
)
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import Peer, ServerContext, mixed_case
from conformance.suites.server._steps import AUTH_TIMEOUT, operator_client, registered_account
from conformance.transcript import describe, outcome


def _random(length: int = 12) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


async def _join_all(room: str, *peers: Peer) -> None:
    for peer in peers:
        await peer.join(room)


async def _members(peer: Peer, room: str) -> list[str]:
    answer = await peer.ok(ListMembers(room=room), req="CP-ROOM-18")
    return [info.nick for info in answer.of_type(UserInfo)]


def _left(room: str, nick: str) -> Callable[[MemberLeft], bool]:
    return lambda m: fold(m.room) == fold(room) and fold(m.nick) == fold(nick)


async def _expect_removal(ctx: ServerContext, peer: Peer, req: str, *, room: str, nick: str,
                          kind: LeaveKind, reason: str, by: str) -> None:
    """``peer`` receives MEMBER_LEFT for ``nick`` with the kind, reason and operator given."""
    with ctx.attribute(req):
        left = await peer.expect_type(MemberLeft, req=req, where=_left(room, nick))
    ctx.check(left.kind == kind and left.reason == reason and left.by == by, req,
              f"{peer.label} received {describe(left)}; expected kind={kind.name} "
              f"reason={reason!r} by={by!r}")
    ctx.check(left.nick == nick, "CP-NICK-3",
              f"{peer.label} received {describe(left)}; the removed user holds {nick!r}")


# ------------------------------------------------------------------ OPER


@server_case("CP-OPER-1", "CP-OPER-7", needs=("oper",))
async def oper_with_configured_credentials_grants_operator(ctx: ServerContext) -> None:
    """OPER with configured credentials: OK; the connection may moderate, even after NICK."""
    room = ctx.room("oper")
    bob = await ctx.client("bob")
    await bob.join(room)
    op = await operator_client(ctx)

    async def still_operator(when: str) -> None:
        answer = await op.request(Unban(room=room, nick=ctx.nick("nobody")), req="CP-OPER-7")
        final = answer.final
        if isinstance(final, Error) and final.code == ErrorCode.NOT_OPERATOR:
            raise Violation("CP-OPER-1", f"{when}, UNBAN was refused with NOT_OPERATOR: the "
                            "connection must be an operator until it ends")
        if isinstance(final, Error):
            raise Violation("CP-OPER-7", f"{when}, UNBAN was answered with {outcome(final)}, "
                            "not OK")

    await still_operator("right after OPER was answered OK")
    await op.ok(Nick(nick=ctx.nick("renamed")), req="CP-NICK-7")
    await still_operator("after the operator changed nick")


@server_case("CP-OPER-2", "CP-OPER-3")
async def oper_with_wrong_credentials_refused(ctx: ServerContext) -> None:
    """OPER with credentials that match none configured gets AUTH_FAILED and grants nothing."""
    room = ctx.room("badop")
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    await _join_all(room, alice, bob)
    attempts = [("random name and password", _random(), _random())]
    if ctx.options.oper is not None:
        name, password = ctx.options.oper
        attempts += [("the right name with a wrong password", name, password + "x"),
                     ("the right name with the password in upper case", name,
                      password.upper()),
                     ("a wrong name with the right password", name + "x", password)]
    for why, name, password in attempts:
        if (name, password) == ctx.options.oper:
            continue  # a password without letters upper-cases to itself
        answer = await alice.request(Oper(name=name, password=password), req="CP-OPER-2",
                                     timeout=AUTH_TIMEOUT)
        final = answer.final
        if not isinstance(final, Error) or final.code != ErrorCode.AUTH_FAILED:
            raise Violation("CP-OPER-2", f"OPER with {why} was answered with "
                            f"{outcome(final)}; the spec requires ERROR AUTH_FAILED")
    await alice.refused(Kick(room=room, nick=bob.nick, reason="test"), ErrorCode.NOT_OPERATOR,
                        req="CP-OPER-3")


@server_case("CP-OPER-3", "CP-ERR-5")
async def moderation_from_non_operator_refused(ctx: ServerContext) -> None:
    """KICK, BAN, UNBAN and MUTE from a non-operator get NOT_OPERATOR, whatever room and nick."""
    room = ctx.room("nonop")
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    await _join_all(room, alice, bob)
    targets = {
        "a member of an existing room": (room, bob.nick),
        "the requester itself": (room, alice.nick),
        "a nick nobody holds": (room, ctx.nick("ghost")),
        "a room that does not exist": (ctx.room("none"), bob.nick),
    }
    for where, (target_room, nick) in targets.items():
        requests: list[Message] = [
            Kick(room=target_room, nick=nick, reason="no"),
            Ban(room=target_room, nick=nick, reason="no"),
            Unban(room=target_room, nick=nick),
            Mute(room=target_room, nick=nick, muted=True),
            Mute(room=target_room, nick=nick, muted=False),
        ]
        for request in requests:
            answer = await alice.request(request, req="CP-OPER-3")
            final = answer.final
            if not isinstance(final, Error) or final.code != ErrorCode.NOT_OPERATOR:
                raise Violation("CP-OPER-3", f"{request.NAME} from a non-operator naming "
                                f"{where} was answered with {outcome(final)}; the spec "
                                "requires ERROR NOT_OPERATOR")
    await bob.assert_none((MemberLeft, MuteChanged), req="CP-ERR-5",
                          why="a refused KICK, BAN or MUTE causes no event")
    # bob is still a member and may still speak.
    answer = await bob.request(SendRoom(room=room, text="still here"), req="CP-ERR-5")
    if isinstance(answer.final, Error):
        raise Violation("CP-ERR-5", f"after refused moderation requests, bob's SEND_ROOM was "
                        f"answered with {outcome(answer.final)}: a refused request changed "
                        "his membership or mute")
    answer = await bob.request(Join(room=room), req="CP-ERR-5")
    if isinstance(answer.final, Error) and answer.final.code == ErrorCode.BANNED_FROM_ROOM:
        raise Violation("CP-ERR-5", "a refused BAN left bob banned")


# ------------------------------------------------------------------ KICK


@server_case("CP-OPER-4", needs=("oper",))
async def kick_by_operator_outside_room(ctx: ServerContext) -> None:
    """An operator who is not a member KICKs a member: OK, MEMBER_LEFT (KICK) to target and room."""
    room = ctx.room("kick")
    mallory = await ctx.client("mallory")
    bob = await ctx.client("bob")
    await _join_all(room, mallory, bob)
    op = await operator_client(ctx)
    reason = "flooding \u2014 cool down"
    await op.ok(Kick(room=room, nick=mallory.nick, reason=reason), req="CP-OPER-4")
    for peer in (mallory, bob):
        await _expect_removal(ctx, peer, "CP-OPER-4", room=room, nick=mallory.nick,
                              kind=LeaveKind.KICK, reason=reason, by=op.nick)
    await op.assert_none(MemberLeft, req="CP-OPER-4",
                         why="the operator learns of the kick from its OK")
    ctx.check(fold(mallory.nick) not in {fold(n) for n in await _members(bob, room)},
              "CP-OPER-4", "after the KICK, LIST_MEMBERS still lists mallory")
    answer = await mallory.request(SendRoom(room=room, text="still here?"), req="CP-OPER-4")
    ctx.check(isinstance(answer.final, Error), "CP-OPER-4",
              f"after being kicked, mallory's SEND_ROOM was answered with "
              f"{outcome(answer.final)}; she is no longer a member")
    await bob.assert_none(RoomMessage, req="CP-OPER-4",
                          why="a kicked member's SEND_ROOM reaches nobody")
    await mallory.join(room)  # a kicked member can join again


@server_case("CP-OPER-4", "CP-NICK-2", "CP-NICK-3", needs=("oper",))
async def kick_by_member_operator_spares_the_operator(ctx: ServerContext) -> None:
    """A member operator KICKs a nick's case variant: all but the operator get MEMBER_LEFT."""
    room = ctx.room("kick2")
    op = await operator_client(ctx)
    mallory = await ctx.client("mallory")
    bob = await ctx.client("bob")
    await _join_all(room, op, mallory, bob)
    variant = mallory.nick.upper()
    await op.ok(Kick(room=room, nick=variant, reason=""), req="CP-NICK-2")
    for peer in (mallory, bob):
        await _expect_removal(ctx, peer, "CP-OPER-4", room=room, nick=mallory.nick,
                              kind=LeaveKind.KICK, reason="", by=op.nick)
    await op.assert_none(MemberLeft, req="CP-OPER-4",
                         why="every remaining member except the operator gets MEMBER_LEFT")
    await bob.assert_none(MemberLeft, req="CP-OPER-4", why="one KICK, one MEMBER_LEFT")


@server_case("CP-OPER-12", needs=("oper",))
async def operator_moderating_himself_gets_the_targets_event(ctx: ServerContext) -> None:
    """A member operator who MUTEs, KICKs, BANs his own nick, or writes to it, gets, before
    each OK, the MUTE_CHANGED, MEMBER_LEFT or PRIVATE_MESSAGE that a target gets."""
    room = ctx.room("self")
    op = await operator_client(ctx)
    bob = await ctx.client("bob")
    await _join_all(room, op, bob)
    steps: list[tuple[Message, type[Message], str]] = [
        (Mute(room=room, nick=op.nick, muted=True), MuteChanged, "MUTE"),
        (Kick(room=room, nick=op.nick, reason="self"), MemberLeft, "KICK"),
        (Ban(room=room, nick=op.nick, reason="self"), MemberLeft, "BAN"),
        (SendPrivate(nick=op.nick, text="note to self"), PrivateMessage, "SEND_PRIVATE")]
    for request, event_type, what in steps:
        if isinstance(request, Ban):
            await op.join(room)  # back in after the KICK
        await op.ok(request, req="CP-OPER-12")

        def about_op(message: Message, event_type: type[Message] = event_type) -> bool:
            if not isinstance(message, event_type):
                return False
            if isinstance(message, MuteChanged | MemberLeft):
                return fold(message.room) == fold(room) and fold(message.nick) == fold(op.nick)
            return isinstance(message, PrivateMessage) and fold(message.sender) == fold(op.nick)

        # Everything sent before the OK has been read by the time the OK is.
        early = any(about_op(message) for message in op.pending())
        with ctx.attribute("CP-OPER-12"):
            await op.expect(about_op, req="CP-OPER-12", what=event_type.NAME)
        ctx.check(early, "CP-OPER-12", f"the operator's {what} of his own nick was answered OK "
                  f"before the {event_type.NAME} that he gets as its target")


@server_case("CP-NICK-3", "CP-OPER-13", needs=("oper",))
async def moderation_events_name_the_target_as_it_spells_itself(ctx: ServerContext) -> None:
    """MUTE and BAN naming a member in another letter case announce her own spelling; a MUTE of
    a nick nobody holds announces the MUTE's spelling."""
    room = ctx.room("spell")
    mallory = await ctx.client("mallory", nick=mixed_case(ctx.nick("mallory")))
    bob = await ctx.client("bob")
    await _join_all(room, mallory, bob)
    op = await operator_client(ctx)
    await op.ok(Mute(room=room, nick=mallory.nick.swapcase(), muted=True), req="CP-OPER-8")
    with ctx.attribute("CP-OPER-8"):
        muted = await bob.expect_type(MuteChanged, req="CP-OPER-8")
    ctx.check(muted.nick == mallory.nick, "CP-NICK-3",
              f"a MUTE naming {mallory.nick.swapcase()!r} was announced to bob as "
              f"{describe(muted)}; the muted member spells her nick {mallory.nick!r}")
    await op.ok(Ban(room=room, nick=mallory.nick.upper(), reason=""), req="CP-OPER-6")
    await _expect_removal(ctx, bob, "CP-OPER-6", room=room, nick=mallory.nick,
                          kind=LeaveKind.BAN, reason="", by=op.nick)
    absent = mixed_case(ctx.nick("ghost"))
    await op.ok(Mute(room=room, nick=absent, muted=True), req="CP-OPER-8")
    with ctx.attribute("CP-OPER-8"):
        ghost = await bob.expect_type(MuteChanged, req="CP-OPER-8")
    ctx.check(ghost.nick == absent, "CP-OPER-13",
              f"a MUTE of {absent!r}, which nobody holds, was announced to bob as "
              f"{describe(ghost)}; the spec requires the MUTE's spelling {absent!r}")


@server_case("CP-OPER-5", needs=("oper",))
async def kick_of_non_member_refused(ctx: ServerContext) -> None:
    """KICK of a nick nobody holds gets NO_SUCH_NICK; of a connected non-member, NOT_IN_ROOM."""
    room = ctx.room("kick3")
    alice = await ctx.client("alice")
    outsider = await ctx.client("outsider")
    await alice.join(room)
    op = await operator_client(ctx)
    await op.refused(Kick(room=room, nick=ctx.nick("ghost"), reason=""),
                     ErrorCode.NO_SUCH_NICK, req="CP-OPER-5")
    await op.refused(Kick(room=room, nick=outsider.nick, reason=""), ErrorCode.NOT_IN_ROOM,
                     req="CP-OPER-5")
    await op.refused(Kick(room=room, nick=op.nick, reason=""), ErrorCode.NOT_IN_ROOM,
                     req="CP-OPER-5")
    for peer in (alice, outsider):
        await peer.assert_none(MemberLeft, req="CP-OPER-5",
                               why="a refused KICK removes nobody")


# ------------------------------------------------------------------ BAN and UNBAN


@server_case("CP-OPER-6", "CP-ROOM-13", "CP-NICK-2", needs=("oper",))
async def ban_removes_member_and_blocks_rejoin(ctx: ServerContext) -> None:
    """BAN of a member: OK, MEMBER_LEFT (BAN) to target and room; its JOIN is then refused."""
    room = ctx.room("ban")
    op = await operator_client(ctx)
    mallory = await ctx.client("mallory")
    bob = await ctx.client("bob")
    await _join_all(room, op, mallory, bob)
    reason = "spam"
    await op.ok(Ban(room=room, nick=mallory.nick, reason=reason), req="CP-OPER-6")
    for peer in (mallory, bob):
        await _expect_removal(ctx, peer, "CP-OPER-6", room=room, nick=mallory.nick,
                              kind=LeaveKind.BAN, reason=reason, by=op.nick)
    await op.assert_none(MemberLeft, req="CP-OPER-6",
                         why="every remaining member except the operator gets MEMBER_LEFT")
    ctx.check(fold(mallory.nick) not in {fold(n) for n in await _members(bob, room)},
              "CP-OPER-6", "after the BAN, LIST_MEMBERS still lists mallory")
    await mallory.refused(Join(room=room), ErrorCode.BANNED_FROM_ROOM, req="CP-ROOM-13")
    await mallory.ok(Nick(nick=mallory.nick.upper()), req="CP-NICK-7")
    await mallory.refused(Join(room=room), ErrorCode.BANNED_FROM_ROOM, req="CP-NICK-2")


@server_case("CP-OPER-6", "CP-ROOM-13", "CP-NICK-2", needs=("oper",))
async def ban_of_absent_nick_blocks_later_join(ctx: ServerContext) -> None:
    """BAN (in upper case) of a nick nobody holds is OK; a later client with it cannot JOIN."""
    room = ctx.room("ban2")
    bob = await ctx.client("bob")
    await bob.join(room)
    op = await operator_client(ctx)
    ghost = ctx.nick("ghost")
    await op.ok(Ban(room=room, nick=ghost.upper(), reason="pre-emptive"), req="CP-OPER-6")
    await bob.assert_none(MemberLeft, req="CP-OPER-6",
                          why="the banned nick was not in the room, so nobody left")
    late = await ctx.connect("late")
    await late.hello(ghost)
    answer = await late.request(Join(room=room), req="CP-ROOM-13")
    if not isinstance(answer.final, Error) or answer.final.code != ErrorCode.BANNED_FROM_ROOM:
        # Is a ban of the exact spelling enforced? Then the fold was not recorded.
        await op.ok(Ban(room=room, nick=ghost, reason=""), req="CP-OPER-6")
        again = await late.request(Join(room=room), req="CP-ROOM-13")
        banned = isinstance(again.final, Error) and again.final.code == ErrorCode.BANNED_FROM_ROOM
        raise Violation("CP-OPER-6" if banned else "CP-ROOM-13",
                        f"after BAN of {ghost.upper()!r}, JOIN by {ghost!r} was answered with "
                        f"{outcome(answer.final)}, not ERROR BANNED_FROM_ROOM"
                        + ("; a BAN of the exact spelling was enforced, so the ban was not "
                           "recorded for the nick's fold" if banned else ""))
    await late.ok(Nick(nick=mixed_case(ghost)), req="CP-NICK-7")
    await late.refused(Join(room=room), ErrorCode.BANNED_FROM_ROOM, req="CP-NICK-2")


@server_case("CP-OPER-7", needs=("oper",))
async def unban_lifts_ban_and_is_ok_without_one(ctx: ServerContext) -> None:
    """UNBAN (in another letter case) lifts a ban; UNBAN without a ban is OK too."""
    room = ctx.room("unban")
    bob = await ctx.client("bob")
    await bob.join(room)
    op = await operator_client(ctx)
    await op.ok(Unban(room=room, nick=ctx.nick("never")), req="CP-OPER-7")
    mallory = await ctx.client("mallory")
    await op.ok(Ban(room=room, nick=mallory.nick, reason=""), req="CP-OPER-6")
    await mallory.refused(Join(room=room), ErrorCode.BANNED_FROM_ROOM, req="CP-ROOM-13")
    await op.ok(Unban(room=room, nick=mallory.nick.upper()), req="CP-OPER-7")
    answer = await mallory.request(Join(room=room), req="CP-OPER-7")
    ctx.check(not isinstance(answer.final, Error), "CP-OPER-7",
              f"after UNBAN, mallory's JOIN was answered with {outcome(answer.final)}, not OK")
    await op.ok(Unban(room=room, nick=mallory.nick), req="CP-OPER-7")


# ------------------------------------------------------------------ MUTE


def _mute_changed(room: str, nick: str, muted: bool) -> Callable[[MuteChanged], bool]:
    return lambda m: (fold(m.room) == fold(room) and fold(m.nick) == fold(nick)
                      and m.muted == muted)


async def _expect_mute_changed(ctx: ServerContext, peer: Peer, *, room: str, nick: str,
                               muted: bool, by: str) -> None:
    with ctx.attribute("CP-OPER-8"):
        event = await peer.expect_type(MuteChanged, req="CP-OPER-8",
                                       where=lambda m: fold(m.room) == fold(room))
    ctx.check(fold(event.nick) == fold(nick) and event.muted == muted and event.by == by,
              "CP-OPER-8", f"{peer.label} received {describe(event)}; expected nick={nick!r} "
              f"muted={int(muted)} by={by!r}")


@server_case("CP-OPER-8", "CP-OPER-9", "CP-ERR-5", needs=("oper",))
async def mute_tells_members_and_silences(ctx: ServerContext) -> None:
    """MUTE: OK, MUTE_CHANGED to all members but the operator; the muted get MUTED; unmute."""
    room = ctx.room("mute")
    op = await operator_client(ctx)
    mallory = await ctx.client("mallory")
    bob = await ctx.client("bob")
    await _join_all(room, op, mallory, bob)
    await op.ok(Mute(room=room, nick=mallory.nick, muted=True), req="CP-OPER-8")
    for peer in (mallory, bob):
        await _expect_mute_changed(ctx, peer, room=room, nick=mallory.nick, muted=True,
                                   by=op.nick)
    await op.assert_none(MuteChanged, req="CP-OPER-8",
                         why="MUTE_CHANGED goes to every member except the operator")
    await mallory.refused(SendRoom(room=room, text="can you hear me?"), ErrorCode.MUTED,
                          req="CP-OPER-9")
    await mallory.refused(SetTopic(room=room, topic="muted topic"), ErrorCode.MUTED,
                          req="CP-OPER-9")
    await bob.assert_none((RoomMessage, TopicChanged), req="CP-ERR-5",
                          why="a refused SEND_ROOM or SET_TOPIC causes no event")
    await op.ok(Mute(room=room, nick=mallory.nick, muted=False), req="CP-OPER-8")
    for peer in (mallory, bob):
        await _expect_mute_changed(ctx, peer, room=room, nick=mallory.nick, muted=False,
                                   by=op.nick)
    answer = await mallory.request(SendRoom(room=room, text="free again"), req="CP-OPER-8")
    ctx.check(not isinstance(answer.final, Error), "CP-OPER-8",
              f"after MUTE muted=0, mallory's SEND_ROOM was answered with "
              f"{outcome(answer.final)}, not OK")


@server_case("CP-OPER-8", "CP-OPER-9", needs=("oper",))
async def mute_is_per_room_and_by_fold(ctx: ServerContext) -> None:
    """A mute (by a case variant) holds in its room only, and also for a nick that joins later."""
    muted_room, free_room = ctx.room("mute2"), ctx.room("free")
    op = await operator_client(ctx)
    mallory = await ctx.client("mallory")
    bob = await ctx.client("bob")
    await _join_all(muted_room, mallory, bob)
    await _join_all(free_room, mallory, bob)
    await op.ok(Mute(room=muted_room, nick=mallory.nick.upper(), muted=True), req="CP-OPER-8")
    await _expect_mute_changed(ctx, bob, room=muted_room, nick=mallory.nick, muted=True,
                               by=op.nick)
    answer = await mallory.request(SendRoom(room=muted_room, text="here?"), req="CP-OPER-9")
    if not isinstance(answer.final, Error) or answer.final.code != ErrorCode.MUTED:
        # Is the mute of the exact spelling enforced? Then the fold was not recorded.
        await op.ok(Mute(room=muted_room, nick=mallory.nick, muted=True), req="CP-OPER-8")
        again = await mallory.request(SendRoom(room=muted_room, text="here?"),
                                      req="CP-OPER-9")
        muted = isinstance(again.final, Error) and again.final.code == ErrorCode.MUTED
        raise Violation("CP-OPER-8" if muted else "CP-OPER-9",
                        f"after MUTE of {mallory.nick.upper()!r}, a case variant of mallory's "
                        f"nick, her SEND_ROOM was answered with {outcome(answer.final)}, not "
                        "ERROR MUTED" + ("; a MUTE of her exact spelling was enforced, so the "
                                         "mute was not recorded for the nick's fold"
                                         if muted else ""))
    answer = await mallory.request(SendRoom(room=free_room, text="and here?"), req="CP-OPER-8")
    ctx.check(not isinstance(answer.final, Error), "CP-OPER-8",
              f"mallory is muted in {muted_room} only, yet her SEND_ROOM to {free_room} was "
              f"answered with {outcome(answer.final)}")
    # A mute of a nick that is not in the room waits for it.
    ghost = ctx.nick("ghost")
    await op.ok(Mute(room=muted_room, nick=ghost, muted=True), req="CP-OPER-8")
    await _expect_mute_changed(ctx, bob, room=muted_room, nick=ghost, muted=True, by=op.nick)
    late = await ctx.connect("late")
    await late.hello(ghost)
    await late.join(muted_room)
    await late.refused(SendRoom(room=muted_room, text="new here"), ErrorCode.MUTED,
                       req="CP-OPER-9")


@server_case("CP-OPER-8", "CP-OPER-9", "CP-ERR-5", needs=("oper",))
async def mute_outlasts_leaving_the_room(ctx: ServerContext) -> None:
    """A mute stays after the muted member leaves and rejoins; MUTE muted=0 of nobody is OK."""
    room = ctx.room("mute3")
    bob = await ctx.client("bob")
    mallory = await ctx.client("mallory")
    await _join_all(room, bob, mallory)
    op = await operator_client(ctx)
    await op.ok(Mute(room=room, nick=ctx.nick("never"), muted=False), req="CP-OPER-8")
    await op.ok(Mute(room=room, nick=mallory.nick, muted=True), req="CP-OPER-8")
    await mallory.part(room)
    await mallory.join(room)
    answer = await mallory.request(SendRoom(room=room, text="fresh start?"), req="CP-OPER-9")
    if not isinstance(answer.final, Error) or answer.final.code != ErrorCode.MUTED:
        raise Violation("CP-OPER-8", f"mallory was muted, left and joined again; her SEND_ROOM "
                        f"was answered with {outcome(answer.final)}, not ERROR MUTED: the "
                        "mute is kept for the nick in the room, not for the membership")
    await bob.assert_none(RoomMessage, req="CP-ERR-5",
                          why="a refused SEND_ROOM reaches nobody")


# ------------------------------------------------------------------ across nick changes


@server_case("CP-OPER-10", "CP-OPER-11", "CP-ROOM-13", needs=("oper",))
async def ban_stays_with_the_connection_after_nick(ctx: ServerContext) -> None:
    """A banned member's NICK does not let it back in; UNBAN by its new nick does."""
    room = ctx.room("banick")
    op = await operator_client(ctx)
    mallory = await ctx.client("mallory")
    bob = await ctx.client("bob")
    await _join_all(room, mallory, bob)
    banned = mallory.nick
    await op.ok(Ban(room=room, nick=banned, reason="spam"), req="CP-OPER-6")
    await _expect_removal(ctx, bob, "CP-OPER-6", room=room, nick=banned, kind=LeaveKind.BAN,
                          reason="spam", by=op.nick)
    renamed = ctx.nick("fresh")
    await mallory.ok(Nick(nick=renamed), req="CP-NICK-7")
    answer = await mallory.request(Join(room=room), req="CP-OPER-10")
    if not isinstance(answer.final, Error) or answer.final.code != ErrorCode.BANNED_FROM_ROOM:
        raise Violation("CP-OPER-10", f"{banned!r} was banned from {room}, changed nick to "
                        f"{renamed!r} and joined again: JOIN was answered with "
                        f"{outcome(answer.final)}, not ERROR BANNED_FROM_ROOM; a ban stays "
                        "with the connection that held the nick")
    await bob.assert_none(MemberJoined, req="CP-OPER-10", why="a refused JOIN joins nobody")
    # The ban of the nick itself stays, for whoever takes the nick next.
    late = await ctx.connect("late")
    await late.hello(banned)
    await late.refused(Join(room=room), ErrorCode.BANNED_FROM_ROOM, req="CP-ROOM-13")
    # UNBAN naming the nick mallory holds now forgives her connection only.
    await op.ok(Unban(room=room, nick=renamed), req="CP-OPER-7")
    answer = await mallory.request(Join(room=room), req="CP-OPER-11")
    ctx.check(not isinstance(answer.final, Error), "CP-OPER-11",
              f"after UNBAN of {renamed!r}, the nick she holds now, her JOIN was answered "
              f"with {outcome(answer.final)}, not OK")
    await late.refused(Join(room=room), ErrorCode.BANNED_FROM_ROOM, req="CP-ROOM-13")


@server_case("CP-OPER-10", "CP-OPER-11", "CP-OPER-9", "CP-ERR-5", needs=("oper",))
async def mute_stays_with_the_connection_after_nick(ctx: ServerContext) -> None:
    """A muted member's NICK does not let it speak; unmuting its old nick does."""
    room = ctx.room("mutenick")
    op = await operator_client(ctx)
    mallory = await ctx.client("mallory")
    bob = await ctx.client("bob")
    await _join_all(room, mallory, bob)
    muted = mallory.nick
    await op.ok(Mute(room=room, nick=muted, muted=True), req="CP-OPER-8")
    for peer in (mallory, bob):
        await _expect_mute_changed(ctx, peer, room=room, nick=muted, muted=True, by=op.nick)
    renamed = ctx.nick("fresh")
    await mallory.ok(Nick(nick=renamed), req="CP-NICK-7")
    for request in (SendRoom(room=room, text="new nick, new voice"),
                    SetTopic(room=room, topic="new nick, new topic")):
        answer = await mallory.request(request, req="CP-OPER-10")
        if not isinstance(answer.final, Error) or answer.final.code != ErrorCode.MUTED:
            raise Violation("CP-OPER-10", f"{muted!r} was muted in {room} and changed nick to "
                            f"{renamed!r}: {request.NAME} was answered with "
                            f"{outcome(answer.final)}, not ERROR MUTED; a mute stays with the "
                            "connection that held the nick")
    await bob.assert_none((RoomMessage, TopicChanged), req="CP-ERR-5",
                          why="a muted member's SEND_ROOM or SET_TOPIC reaches nobody")
    await op.ok(Mute(room=room, nick=muted, muted=False), req="CP-OPER-8")
    await _expect_mute_changed(ctx, bob, room=room, nick=muted, muted=False, by=op.nick)
    answer = await mallory.request(SendRoom(room=room, text="thanks"), req="CP-OPER-11")
    ctx.check(not isinstance(answer.final, Error), "CP-OPER-11",
              f"after MUTE muted=0 of {muted!r}, the nick she held when muted, her SEND_ROOM "
              f"was answered with {outcome(answer.final)}, not OK")


@server_case("CP-OPER-10", "CP-ROOM-13", needs=("oper",))
async def ban_of_registered_nick_holds_every_login(ctx: ServerContext) -> None:
    """A registered nick banned while away: HELLO or LOGIN to it, then NICK, still banned."""
    room = ctx.room("banacct")
    nick, password = await registered_account(ctx, "owner")
    op = await operator_client(ctx)
    await op.join(room)
    await op.ok(Ban(room=room, nick=nick, reason="account banned"), req="CP-OPER-6")
    for visit in ("first", "second"):  # reconnecting does not help either
        owner = await ctx.connect(f"owner-{visit}")
        await owner.hello(nick, password=password, timeout=AUTH_TIMEOUT)
        await owner.refused(Join(room=room), ErrorCode.BANNED_FROM_ROOM, req="CP-ROOM-13")
        renamed = ctx.nick("alt")
        await owner.ok(Nick(nick=renamed), req="CP-NICK-7")
        answer = await owner.request(Join(room=room), req="CP-OPER-10")
        if not isinstance(answer.final, Error) or \
                answer.final.code != ErrorCode.BANNED_FROM_ROOM:
            raise Violation("CP-OPER-10", f"the registered nick {nick!r} was banned from "
                            f"{room}; a connection that logged in to it with HELLO then "
                            f"took the nick {renamed!r}, and its JOIN was answered with "
                            f"{outcome(answer.final)}, not ERROR BANNED_FROM_ROOM")
        await owner.quit()
        await owner.expect_closed(req="CP-CLOSE-1")
    guest = await ctx.client("guest")
    await guest.ok(Login(nick=nick, password=password), req="CP-ACCT-6", timeout=AUTH_TIMEOUT)
    await guest.ok(Nick(nick=ctx.nick("alt")), req="CP-NICK-7")
    answer = await guest.request(Join(room=room), req="CP-OPER-10")
    if not isinstance(answer.final, Error) or answer.final.code != ErrorCode.BANNED_FROM_ROOM:
        raise Violation("CP-OPER-10", f"the registered nick {nick!r} was banned from {room}; "
                        "a guest logged in to it with LOGIN, then changed nick, and its JOIN "
                        f"was answered with {outcome(answer.final)}, not ERROR "
                        "BANNED_FROM_ROOM")
    await op.assert_none(MemberJoined, req="CP-OPER-10",
                         why="every JOIN by the banned account was refused")
