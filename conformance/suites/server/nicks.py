"""Nicknames: the profile, case-insensitive ownership, changes and their announcement.

Invalid nicks cannot be built through the validating message classes, so the
cases build them with ``model_construct``: the same classes and encoder, minus
the schema's checks, so the kit can send what the spec forbids (and the peer
still paces them to the advertised buckets).
"""

from __future__ import annotations

import asyncio
import secrets
import string

from chatproto import ErrorCode, Message, fold
from chatproto.messages import (
    Ban,
    Error,
    Hello,
    Kick,
    ListMembers,
    ListUsers,
    Login,
    MemberJoined,
    MemberLeft,
    Mute,
    Nick,
    NickChanged,
    Ok,
    PrivateMessage,
    Register,
    RoomMessage,
    SendPrivate,
    SetTopic,
    TopicChanged,
    Unban,
    UserInfo,
    Welcome,
)
from conformance.outcomes import Violation
from conformance.registry import server_case, server_cases, variant
from conformance.server_side import KIT_CLIENT_NAME, Peer, ServerContext, mixed_case
from conformance.suites.server._steps import hello_answer
from conformance.transcript import describe, outcome

PASSWORD = "kit-Passw0rd-\u00e9"
RACERS = 8
"""Connections that race for one nick in each round of a concurrency case."""
RACE_ROUNDS = 3

SYNTAX_FAULTS = {
    "a digit first": "9{r}",
    "an underscore first": "_{r}",
    "a hyphen first": "-{r}",
    "a space inside": "ab {r}",
    "a leading space": " a{r}",
    "a trailing space": "a{r} ",
    "a tab": "a\t{r}",
    "a dot": "a.{r}",
    "an at sign": "a@{r}",
    "IRC brackets": "[a{r}]",
    "a backslash": "a\\{r}",
    "a NUL byte": "a{r}\x00",
}
"""Invalid nicks within ASCII, each with one fault; ``{r}`` becomes a random suffix."""

NON_ASCII = {
    "a Latin letter with an accent (\u00e9)": "ren\u00e9{r}",
    "a combining accent (e + U+0301)": "rene\u0301{r}",
    "a Cyrillic \u0430 (U+0430) that looks like a": "\u0430lice{r}",
    "a Cyrillic \u0456 (U+0456) that looks like i": "al\u0456ce{r}",
    "a Greek omicron (U+03BF) that looks like o": "b\u03bfb{r}",
    "fullwidth letters (U+FF4E...)": "\uff4e\uff49\uff43\uff4b{r}",
    "the Kelvin sign (U+212A) that folds to k in Unicode": "\u212aelvin{r}",
    "a zero-width space (U+200B)": "al\u200bice{r}",
    "a no-break space (U+00A0)": "al\u00a0ice{r}",
    "an emoji": "bob\U0001f600{r}",
}
"""Nicks with characters outside ASCII: the profile is ASCII only (CP-NICK-1)."""


def _suffix(length: int = 4) -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(length))


def _hello(nick: str) -> Hello:
    """A guest HELLO for ``nick``, built without the schema's checks."""
    return Hello.model_construct(min_version=1, max_version=1, nick=nick, password="",
                                 client_name=KIT_CLIENT_NAME, capabilities=())


async def _max_nick_length(ctx: ServerContext) -> int:
    """The target's max_nick_length, from a WELCOME (a welcomed probe if none yet)."""
    if ctx.limits is None:
        await ctx.client("probe")
    assert ctx.limits is not None
    return ctx.limits.max_nick_length


def _fit(nick: str, length: int) -> str:
    """``nick`` padded with random letters or cut to exactly ``length`` bytes."""
    while len(nick) < length:
        nick += _suffix(1)
    return nick[:length]


async def _hello_refused(ctx: ServerContext, nick: str, code: ErrorCode, req: str,
                         why: str) -> None:
    """A fresh connection's HELLO for ``nick`` is refused with ``code``."""
    peer = await ctx.connect("hello")
    sent = await peer.send(_hello(nick))
    answer = await peer.response(sent.request_id, "HELLO", req=req)
    final = answer.final
    if not isinstance(final, Error) or final.code != code:
        raise Violation(req, f"HELLO for {nick!r} ({why}) was answered with "
                        f"{outcome(final)}; the spec requires ERROR {code.name}")


async def _hello_answer(ctx: ServerContext, nick: str, req: str) -> Message:
    peer = await ctx.connect("hello")
    sent = await peer.send(_hello(nick))
    answer = await peer.response(sent.request_id, "HELLO", req=req)
    return answer.final


async def _room_of(ctx: ServerContext, room: str, *peers: Peer) -> None:
    """Every peer joins ``room`` (the first creates it)."""
    for peer in peers:
        await peer.join(room)


# ------------------------------------------------------------------ profile


@server_case("CP-NICK-1")
async def valid_edge_case_nicks_welcomed(ctx: ServerContext) -> None:
    """HELLO with nicks at the edges of the profile (max_nick_length bytes exactly) is welcomed."""
    length = await _max_nick_length(ctx)
    candidates = {
        f"exactly max_nick_length ({length}) bytes": _fit("x" + _suffix(8), length),
        "digits, '_' and '-' after the first letter": _fit(f"Q{_suffix()}_-9", length),
        "ending in '-'": _fit(f"z{_suffix()}", length - 1) + "-" if length > 1 else "z",
        "ending in '_'": _fit(f"y{_suffix()}", length - 1) + "_" if length > 1 else "y",
        "capital letters only": _fit(_suffix(8), length).upper(),
        "a single letter": secrets.choice(string.ascii_letters),
    }
    for why, nick in candidates.items():
        final = await _hello_answer(ctx, nick, "CP-NICK-1")
        # A one-letter nick (or one cut short by a small limit) may be held by
        # someone else on a shared server: NICK_IN_USE still shows it was valid.
        in_use_allowed = len(nick) < 6
        accepted = isinstance(final, Welcome) or (
            in_use_allowed and isinstance(final, Error) and final.code == ErrorCode.NICK_IN_USE)
        ctx.check(accepted, "CP-NICK-1",
                  f"HELLO for the valid nick {nick!r} ({why}) was answered with "
                  f"{outcome(final)}, not WELCOME")


@server_case("CP-NICK-1", "CP-NICK-7")
async def valid_edge_case_nicks_accepted_by_nick(ctx: ServerContext) -> None:
    """NICK to nicks at the edges of the profile (max_nick_length bytes exactly) is accepted."""
    alice = await ctx.client("alice")
    length = await _max_nick_length(ctx)
    for nick in (_fit("w" + _suffix(8), length), _fit(f"P{_suffix()}-_0", length),
                 _fit(_suffix(8), length).upper()):
        answer = await alice.request(Nick(nick=nick), req="CP-NICK-7")
        ctx.check(isinstance(answer.final, Ok), "CP-NICK-1",
                  f"NICK to the valid free nick {nick!r} ({len(nick)} bytes, limit {length}) "
                  f"was answered with {outcome(answer.final)}, not OK")


@server_case("CP-NICK-1")
async def nick_one_byte_over_limit_refused(ctx: ServerContext) -> None:
    """A nick one byte longer than max_nick_length is refused with INVALID_NICK (HELLO and NICK)."""
    length = await _max_nick_length(ctx)
    too_long = _fit("v" + _suffix(8), length + 1)
    await _hello_refused(ctx, too_long, ErrorCode.INVALID_NICK, "CP-NICK-1",
                         f"{length + 1} bytes, limit {length}")
    alice = await ctx.client("alice")
    await alice.refused(Nick.model_construct(nick=_fit("u" + _suffix(8), length + 1)),
                        ErrorCode.INVALID_NICK, req="CP-NICK-1")


SYNTAX_OR_EMPTY = {"an empty nick": "", **SYNTAX_FAULTS}


@server_cases(
    variant("invalid_nick_syntax_refused_in_hello",
            "HELLO with an empty nick, a digit first, spaces or punctuation: INVALID_NICK.",
            "CP-NICK-1", via="HELLO", faults=SYNTAX_OR_EMPTY),
    variant("invalid_nick_syntax_refused_in_nick",
            "NICK to an empty nick, a digit first, spaces or punctuation is refused with "
            "INVALID_NICK.", "CP-NICK-1", via="NICK", faults=SYNTAX_OR_EMPTY),
    variant("non_ascii_nicks_refused_in_hello",
            "HELLO with non-ASCII nicks (é, Cyrillic look-alikes, fullwidth): INVALID_NICK.",
            "CP-NICK-1", via="HELLO", faults=NON_ASCII),
    variant("non_ascii_nicks_refused_in_nick",
            "NICK to non-ASCII nicks (é, Cyrillic look-alikes, fullwidth) is refused with "
            "INVALID_NICK.", "CP-NICK-1", via="NICK", faults=NON_ASCII),
)
async def invalid_nicks_refused(ctx: ServerContext, *, via: str,
                                faults: dict[str, str]) -> None:
    """Each of ``faults`` (why it is invalid: a pattern with ``{r}`` for a random part),
    asked for with HELLO on a fresh connection or NICK on a welcomed one: INVALID_NICK."""
    alice = await ctx.client("alice") if via == "NICK" else None
    for why, pattern in faults.items():
        nick = pattern.format(r=_suffix())
        if alice is None:
            await _hello_refused(ctx, nick, ErrorCode.INVALID_NICK, "CP-NICK-1", why)
            continue
        answer = await alice.request(Nick.model_construct(nick=nick), req="CP-NICK-1")
        final = answer.final
        ctx.check(isinstance(final, Error) and final.code == ErrorCode.INVALID_NICK, "CP-NICK-1",
                  f"NICK to {nick!r} ({why}) was answered with {outcome(final)}; the spec "
                  "requires ERROR INVALID_NICK")


@server_case("CP-NICK-1")
async def nick_fields_of_login_and_send_private_checked(ctx: ServerContext) -> None:
    """LOGIN and SEND_PRIVATE naming an invalid nick are refused with INVALID_NICK."""
    alice = await ctx.client("alice")
    for nick in (f"9{_suffix()}", f"\u0430lice{_suffix()}", f"a b{_suffix()}"):
        await alice.refused(Login.model_construct(nick=nick, password=PASSWORD),
                            ErrorCode.INVALID_NICK, req="CP-NICK-1")
        await alice.refused(SendPrivate.model_construct(nick=nick, client_msg_id=0,
                                                        text="hello"),
                            ErrorCode.INVALID_NICK, req="CP-NICK-1")


@server_case("CP-NICK-1", needs=("oper",))
async def nick_fields_of_moderation_requests_checked(ctx: ServerContext) -> None:
    """An operator's KICK, BAN, UNBAN and MUTE naming an invalid nick: INVALID_NICK."""
    op = await ctx.client("op")
    await op.oper()
    room = ctx.room("nickf")
    await op.join(room)
    for nick in (f"9{_suffix()}", f"\u0430lice{_suffix()}"):
        for request in (Kick.model_construct(room=room, nick=nick, reason=""),
                        Ban.model_construct(room=room, nick=nick, reason=""),
                        Unban.model_construct(room=room, nick=nick),
                        Mute.model_construct(room=room, nick=nick, muted=True)):
            await op.refused(request, ErrorCode.INVALID_NICK, req="CP-NICK-1")


# --------------------------------------------------------------- ownership


@server_case("CP-NICK-10")
async def hello_for_held_nick_refused(ctx: ServerContext) -> None:
    """HELLO for a nick another connection holds is refused with NICK_IN_USE."""
    alice = await ctx.client("alice")
    await _hello_refused(ctx, alice.nick, ErrorCode.NICK_IN_USE, "CP-NICK-10",
                         "held by another connection")


@server_case("CP-NICK-2")
async def hello_for_case_variant_of_held_nick_refused(ctx: ServerContext) -> None:
    """HELLO for a case variant of a held nick (ALICE while alice is held): NICK_IN_USE."""
    alice = await ctx.client("alice")
    for spelling in (alice.nick.upper(), mixed_case(alice.nick)):
        await _hello_refused(ctx, spelling, ErrorCode.NICK_IN_USE, "CP-NICK-2",
                             f"same fold as the held nick {alice.nick!r}")


@server_case("CP-NICK-10")
async def nick_to_held_nick_refused(ctx: ServerContext) -> None:
    """NICK to a nick another connection holds is refused with NICK_IN_USE."""
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    await bob.refused(Nick(nick=alice.nick), ErrorCode.NICK_IN_USE, req="CP-NICK-10")


@server_case("CP-NICK-2")
async def nick_to_case_variant_of_held_nick_refused(ctx: ServerContext) -> None:
    """NICK to a case variant of a nick another connection holds is refused with NICK_IN_USE."""
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    for spelling in (alice.nick.upper(), mixed_case(alice.nick)):
        await bob.refused(Nick(nick=spelling), ErrorCode.NICK_IN_USE, req="CP-NICK-2")


@server_case("CP-NICK-10")
async def login_to_held_nick_refused(ctx: ServerContext) -> None:
    """LOGIN to a registered nick that another connection holds is refused with NICK_IN_USE."""
    alice = await ctx.client("alice")
    await alice.ok(Register(password=PASSWORD), req="CP-ACCT-1")
    guest = await ctx.client("guest")
    await guest.refused(Login(nick=alice.nick, password=PASSWORD), ErrorCode.NICK_IN_USE,
                        req="CP-NICK-10")


@server_case("CP-NICK-10", "CP-NICK-8")
async def registered_nick_held_by_its_owner_is_in_use(ctx: ServerContext) -> None:
    """While its owner holds a registered nick, HELLO (with or without a password) and NICK
    for it get NICK_IN_USE, not NICK_REGISTERED or AUTH_FAILED."""
    owner = await ctx.client("owner")
    await owner.ok(Register(password=PASSWORD), req="CP-ACCT-1")
    for password, why in (("", "without a password"), ("wrong-" + _suffix(), "with a wrong "
                          "password"), (PASSWORD, "with the right password")):
        peer = await ctx.connect("hello")
        # The exact spelling: a case variant would be CP-NICK-2's question too.
        final = await hello_answer(peer, owner.nick, password, req="CP-NICK-10")
        if not isinstance(final, Error) or final.code != ErrorCode.NICK_IN_USE:
            raise Violation("CP-NICK-10", f"HELLO for {owner.nick!r} {why}, while its "
                            f"owner holds the registered nick, was answered with "
                            f"{outcome(final)}; the spec requires ERROR NICK_IN_USE")
    guest = await ctx.client("guest")
    answer = await guest.request(Nick(nick=owner.nick), req="CP-NICK-10")
    if not isinstance(answer.final, Error) or answer.final.code != ErrorCode.NICK_IN_USE:
        raise Violation("CP-NICK-10", f"NICK to {owner.nick!r}, a registered nick its owner "
                        f"holds, was answered with {outcome(answer.final)}; the spec requires "
                        "ERROR NICK_IN_USE (NICK_REGISTERED is for a registered nick nobody "
                        "holds)")


@server_case("CP-NICK-2")
async def nicks_with_different_folds_are_different(ctx: ServerContext) -> None:
    """Nicks whose folds differ (a_b and a-b, o and 0, l and 1) are different nicks."""
    base = "k" + _suffix(6)
    for held, other in ((f"{base}_x", f"{base}-x"), (f"{base}o", f"{base}0"),
                        (f"{base}l", f"{base}1"), (f"{base}Il", f"{base}ll")):
        holder = await ctx.connect("holder")
        await holder.hello(held, req="CP-ACCT-5")
        final = await _hello_answer(ctx, other, "CP-NICK-2")
        ctx.check(isinstance(final, Welcome), "CP-NICK-2",
                  f"HELLO for {other!r} while {held!r} is held was answered with "
                  f"{outcome(final)}; their folds {fold(other)!r} and {fold(held)!r} "
                  "differ, so they are different nicks")


# ----------------------------------------------------------------- spelling


@server_case("CP-NICK-3")
async def exact_spelling_in_every_frame(ctx: ServerContext) -> None:
    """A mixed-case nick is shown as chosen in MEMBER_JOINED, USER_INFO, messages, topics."""
    room = ctx.room("spell")
    bob = await ctx.client("bob")
    await bob.join(room)
    nick = mixed_case(ctx.nick("spelling"))
    alice = await ctx.connect("alice")
    await alice.hello(nick)
    await alice.join(room)

    def named(where: str, shown: str) -> None:
        ctx.check(shown == nick, "CP-NICK-3",
                  f"{where} names the user {shown!r}; the user chose {nick!r}")

    joined = await bob.expect_type(MemberJoined, req="CP-ROOM-10",
                                   where=lambda m: fold(m.nick) == fold(nick))
    named("MEMBER_JOINED", joined.nick)
    members = await bob.ok(ListMembers(room=room), req="CP-ROOM-18")
    infos = [u for u in members.of_type(UserInfo) if fold(u.nick) == fold(nick)]
    ctx.check(bool(infos), "CP-ROOM-18", f"LIST_MEMBERS {room} has no USER_INFO for {nick!r}")
    named("USER_INFO of LIST_MEMBERS", infos[0].nick)
    users = await bob.ok(ListUsers(), req="CP-USER-1")
    infos = [u for u in users.of_type(UserInfo) if fold(u.nick) == fold(nick)]
    ctx.check(bool(infos), "CP-USER-1", f"LIST_USERS has no USER_INFO for {nick!r}")
    named("USER_INFO of LIST_USERS", infos[0].nick)
    await alice.say(room, "spelling test")
    message = await bob.expect_type(RoomMessage, req="CP-MSG-1",
                                    where=lambda m: fold(m.room) == fold(room))
    named("ROOM_MESSAGE.sender", message.sender)
    await alice.tell(bob.nick, "spelling test")
    private = await bob.expect_type(PrivateMessage, req="CP-MSG-4")
    named("PRIVATE_MESSAGE.sender", private.sender)
    await alice.ok(SetTopic(room=room, topic=""), req="CP-ROOM-15")
    topic = await bob.expect_type(TopicChanged, req="CP-ROOM-15")
    named("TOPIC_CHANGED.by", topic.by)
    await alice.part(room)
    left = await bob.expect_type(MemberLeft, req="CP-ROOM-14",
                                 where=lambda m: fold(m.nick) == fold(nick))
    named("MEMBER_LEFT", left.nick)


@server_case("CP-NICK-3", "CP-NICK-7")
async def case_only_change_shown_with_new_spelling(ctx: ServerContext) -> None:
    """After NICK to a case variant of its own nick, frames name the user with the new spelling."""
    room = ctx.room("recase")
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    await _room_of(ctx, room, alice, bob)
    new = alice.nick.upper()
    await alice.ok(Nick(nick=new), req="CP-NICK-7")
    users = await bob.ok(ListMembers(room=room), req="CP-ROOM-18")
    shown = [u.nick for u in users.of_type(UserInfo) if fold(u.nick) == fold(new)]
    ctx.check(shown == [new], "CP-NICK-3",
              f"after NICK {new!r}, LIST_MEMBERS names the user {shown}; expected [{new!r}]")
    await alice.say(room, "after the case change")
    message = await bob.expect_type(RoomMessage, req="CP-MSG-1")
    ctx.check(message.sender == new, "CP-NICK-3",
              f"after NICK {new!r}, ROOM_MESSAGE.sender is {message.sender!r}")


# -------------------------------------------------------------- concurrency


async def _race_hello(ctx: ServerContext, nicks: list[str]) -> list[Message]:
    """Connections that all send HELLO at the same instant; their final answers."""
    peers = [await ctx.connect("racer") for _ in nicks]
    requests = [_hello(nick).model_copy(update={"request_id": peer.next_id()})
                for peer, nick in zip(peers, nicks, strict=True)]
    await asyncio.gather(*(peer.send(request) for peer, request in zip(peers, requests,
                                                                       strict=True)))
    answers = await asyncio.gather(*(peer.response(request.request_id, "HELLO", req="CP-REQ-4")
                                     for peer, request in zip(peers, requests, strict=True)))
    return [answer.final for answer in answers]


def _judge_race(ctx: ServerContext, what: str, spellings: list[str],
                finals: list[Message], success: type[Message], free_req: str) -> None:
    winners = [s for s, f in zip(spellings, finals, strict=True) if isinstance(f, success)]
    ctx.check(len(winners) <= 1, "CP-NICK-5",
              f"{len(winners)} of {len(finals)} concurrent {what} for the same free nick "
              f"succeeded ({winners}); at most one may")
    for spelling, final in zip(spellings, finals, strict=True):
        if not isinstance(final, success):
            ctx.check(isinstance(final, Error) and final.code == ErrorCode.NICK_IN_USE,
                      "CP-NICK-10", f"a losing {what} for {spelling!r} was answered with "
                      f"{outcome(final)}; the nick was held, so NICK_IN_USE")
    ctx.check(len(winners) == 1, free_req,
              f"none of {len(finals)} concurrent {what} for a free nick succeeded")


@server_case("CP-NICK-5", "CP-NICK-10", "CP-ACCT-5")
async def concurrent_hellos_for_one_nick(ctx: ServerContext) -> None:
    """Several connections sending HELLO for one free nick at the same instant: one WELCOME."""
    for _ in range(RACE_ROUNDS):
        nick = ctx.nick("race")
        finals = await _race_hello(ctx, [nick] * RACERS)
        _judge_race(ctx, "HELLOs", [nick] * RACERS, finals, Welcome, "CP-ACCT-5")


@server_case("CP-NICK-5", "CP-NICK-2", "CP-NICK-10", "CP-ACCT-5")
async def concurrent_hellos_for_case_variants(ctx: ServerContext) -> None:
    """Connections sending HELLO for case variants of one free nick at once: one WELCOME."""
    # First without a race: a server that folds no case fails here, on CP-NICK-2.
    held = ctx.nick("fold")
    holder = await ctx.connect("holder")
    await holder.hello(held, req="CP-ACCT-5")
    await _hello_refused(ctx, held.upper(), ErrorCode.NICK_IN_USE, "CP-NICK-2",
                         f"same fold as the held nick {held!r}")
    for _ in range(RACE_ROUNDS):
        base = ctx.nick("race")
        spellings = [base, base.upper(), mixed_case(base), mixed_case(base).swapcase(),
                     base.capitalize(), base[:-1] + base[-1].upper(),
                     base.upper()[:3] + base[3:], base[:3] + base.upper()[3:]]
        finals = await _race_hello(ctx, spellings)
        _judge_race(ctx, "HELLOs (case variants)", spellings, finals, Welcome, "CP-ACCT-5")


@server_case("CP-NICK-5", "CP-NICK-10", "CP-NICK-7")
async def concurrent_nick_changes_to_one_nick(ctx: ServerContext) -> None:
    """Several connections sending NICK to one free nick at the same instant: one OK."""
    peers = [await ctx.client("racer") for _ in range(RACERS)]
    for _ in range(RACE_ROUNDS):
        nick = ctx.nick("race")
        requests = [peer.with_id(Nick(nick=nick)) for peer in peers]
        await asyncio.gather(*(peer.send(request) for peer, request in zip(peers, requests,
                                                                           strict=True)))
        answers = await asyncio.gather(*(
            peer.response(request.request_id, "NICK", req="CP-REQ-4")
            for peer, request in zip(peers, requests, strict=True)))
        _judge_race(ctx, "NICKs", [nick] * RACERS, [a.final for a in answers], Ok,
                    "CP-NICK-7")


# ------------------------------------------------------------------ release


@server_case("CP-NICK-6")
async def nick_released_after_quit(ctx: ServerContext) -> None:
    """After QUIT and the server's close, a HELLO for the same nick is welcomed."""
    alice = await ctx.client("alice")
    await alice.quit()
    await alice.expect_closed(req="CP-CLOSE-1")
    again = await ctx.connect("again")
    await again.hello(alice.nick, req="CP-NICK-6")


@server_case("CP-NICK-6")
async def nick_released_after_disconnect(ctx: ServerContext) -> None:
    """After a client drops its connection, a HELLO for the same nick is welcomed."""
    room = ctx.room("drop")
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    await _room_of(ctx, room, alice, bob)
    await alice.close()
    # MEMBER_LEFT shows that the server has seen the connection end.
    await bob.expect_type(MemberLeft, req="CP-CLOSE-9",
                          where=lambda m: fold(m.nick) == fold(alice.nick))
    again = await ctx.connect("again")
    await again.hello(alice.nick, req="CP-NICK-6")


# ----------------------------------------------------------------- changing


@server_case("CP-NICK-7")
async def nick_change_to_free_nick(ctx: ServerContext) -> None:
    """NICK to a free nick is answered OK; the connection then holds it and not the old one."""
    alice = await ctx.client("alice")
    old = alice.nick
    new = mixed_case(ctx.nick("renamed"))
    answer = await alice.request(Nick(nick=new), req="CP-NICK-7")
    ctx.check(isinstance(answer.final, Ok), "CP-NICK-7",
              f"NICK to the free nick {new!r} was answered with {outcome(answer.final)}")
    bob = await ctx.client("bob")
    users = await bob.ok(ListUsers(), req="CP-USER-1")
    folds = {fold(u.nick) for u in users.of_type(UserInfo)}
    ctx.check(fold(new) in folds, "CP-NICK-7",
              f"after NICK {new!r} was answered OK, LIST_USERS does not list {new!r}")
    ctx.check(fold(old) not in folds, "CP-NICK-7",
              f"after NICK {new!r}, LIST_USERS still lists the old nick {old!r}")
    final = await _hello_answer(ctx, old, "CP-NICK-7")
    ctx.check(isinstance(final, Welcome), "CP-NICK-7",
              f"HELLO for the old nick {old!r} after the change was answered with "
              f"{outcome(final)}; the connection no longer holds it")
    await _hello_refused(ctx, new, ErrorCode.NICK_IN_USE, "CP-NICK-7",
                         "the new nick of another connection")


@server_case("CP-NICK-7")
async def nick_change_of_letter_case_only(ctx: ServerContext) -> None:
    """NICK to a case variant of the connection's own nick is answered OK."""
    alice = await ctx.client("alice")
    for spelling in (alice.nick.upper(), mixed_case(alice.nick), alice.nick.lower()):
        answer = await alice.request(Nick(nick=spelling), req="CP-NICK-7")
        ctx.check(isinstance(answer.final, Ok), "CP-NICK-7",
                  f"NICK to {spelling!r}, a case variant of the connection's own nick, was "
                  f"answered with {outcome(answer.final)}, not OK")


@server_case("CP-NICK-8", "CP-NICK-2")
async def nick_to_registered_nick_refused(ctx: ServerContext) -> None:
    """NICK to a registered nick (or a case variant of it) is refused with NICK_REGISTERED."""
    owner = await ctx.client("owner")
    await owner.ok(Register(password=PASSWORD), req="CP-ACCT-1")
    await owner.quit()
    await owner.expect_closed(req="CP-CLOSE-1")
    guest = await ctx.client("guest")
    await guest.refused(Nick(nick=owner.nick), ErrorCode.NICK_REGISTERED, req="CP-NICK-8")
    await guest.refused(Nick(nick=owner.nick.upper()), ErrorCode.NICK_REGISTERED,
                        req="CP-NICK-2")


@server_case("CP-NICK-7", "CP-NICK-8")
async def registered_owner_may_change_letter_case(ctx: ServerContext) -> None:
    """A logged-in owner's NICK to a case variant of its registered nick is answered OK."""
    owner = await ctx.client("owner")
    await owner.ok(Register(password=PASSWORD), req="CP-ACCT-1")
    spelling = owner.nick.upper()
    answer = await owner.request(Nick(nick=spelling), req="CP-NICK-8")
    ctx.check(isinstance(answer.final, Ok), "CP-NICK-8",
              f"NICK to {spelling!r}, a case change of the owner's own registered nick, was "
              f"answered with {outcome(answer.final)}, not OK")


# ------------------------------------------------------------- NICK_CHANGED


@server_case("CP-NICK-9")
async def nick_changed_once_to_each_room_peer(ctx: ServerContext) -> None:
    """A nick change reaches each connection sharing a room once (even two rooms), others never."""
    first, second, elsewhere = ctx.room("nc1"), ctx.room("nc2"), ctx.room("nc3")
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")      # shares the first room
    dave = await ctx.client("dave")    # shares the second room
    erin = await ctx.client("erin")    # shares both rooms
    frank = await ctx.client("frank")  # shares no room
    await _room_of(ctx, first, alice, bob, erin)
    await _room_of(ctx, second, alice, dave, erin)
    await frank.join(elsewhere)
    old, new = alice.nick, ctx.nick("alice2")
    await alice.ok(Nick(nick=new), req="CP-NICK-7")
    for peer in (bob, dave, erin):
        changed = await peer.expect_type(NickChanged, req="CP-NICK-9",
                                         where=lambda m: fold(m.old_nick) == fold(old))
        ctx.check(changed.old_nick == old and changed.new_nick == new, "CP-NICK-9",
                  f"{peer.label} received {describe(changed)}; expected old_nick={old!r} "
                  f"new_nick={new!r}")
        await peer.assert_none(lambda m: isinstance(m, NickChanged)
                               and fold(m.old_nick) == fold(old), req="CP-NICK-9",
                               why="a second NICK_CHANGED for one change (exactly one per "
                               "connection, however many rooms it shares)")
    await frank.assert_none(NickChanged, req="CP-NICK-9",
                            why="frank shares no room with the user who changed nick")
    await alice.assert_none(NickChanged, req="CP-NICK-9",
                            why="the requester learns of its change from OK, not NICK_CHANGED")


@server_case("CP-NICK-9")
async def nick_changed_for_case_change_not_for_same_nick(ctx: ServerContext) -> None:
    """A case-only change sends NICK_CHANGED; a NICK repeating the nick byte for byte sends none."""
    room = ctx.room("ncase")
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    await _room_of(ctx, room, alice, bob)
    old = alice.nick
    await alice.ok(Nick(nick=old), req="CP-NICK-7")
    await bob.assert_none(NickChanged, req="CP-NICK-9",
                          why="a NICK that repeats the current nick byte for byte changes "
                          "nothing and causes no NICK_CHANGED")
    new = old.upper()
    await alice.ok(Nick(nick=new), req="CP-NICK-7")
    changed = await bob.expect_type(NickChanged, req="CP-NICK-9")
    ctx.check(changed.old_nick == old and changed.new_nick == new, "CP-NICK-9",
              f"bob received {describe(changed)}; expected old_nick={old!r} new_nick={new!r}")
    await bob.assert_none(NickChanged, req="CP-NICK-9",
                          why="a second NICK_CHANGED for one change of letter case")
