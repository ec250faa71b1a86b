"""Accounts: REGISTER, logging in with HELLO or LOGIN, and how passwords are compared.

Servers may check passwords with a slow key derivation function, so every
request that carries a password gets ``AUTH_TIMEOUT`` rather than the kit's
usual wait. Cases that need an account make it with ``registered_account``,
which also checks that the account outlives the connection that made it, so
that a server which forgets accounts fails on CP-ACCT-4 wherever it is found.
"""

from __future__ import annotations

import secrets
import string
import unicodedata

from chatproto import ErrorCode, Message
from chatproto.messages import (
    Error,
    Login,
    Nick,
    NickChanged,
    Ok,
    Register,
    RoomMessage,
    Welcome,
)
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import Peer, ServerContext, mixed_case
from conformance.suites.server._steps import (
    AUTH_TIMEOUT,
    hello_answer,
    new_password,
    quit_and_closed,
    registered_account,
)
from conformance.transcript import describe, outcome

PASSWORD_MAX_BYTES = 255


async def _logged_in(ctx: ServerContext, label: str, nick: str, password: str, *,
                     req: str = "CP-ACCT-5") -> Peer:
    """A connection welcomed after HELLO with an account's nick and password."""
    peer = await ctx.connect(label)
    await peer.hello(nick, password=password, req=req, timeout=AUTH_TIMEOUT)
    return peer


def _check_welcome(ctx: ServerContext, answer: Message, *, nick: str, logged_in: bool,
                   what: str) -> None:
    if not isinstance(answer, Welcome):
        raise Violation("CP-ACCT-5", f"{what} was answered with {outcome(answer)}; the "
                        f"spec requires WELCOME with logged_in {int(logged_in)}")
    ctx.check(answer.logged_in == logged_in, "CP-ACCT-5",
              f"{what} was answered with WELCOME logged_in={int(answer.logged_in)}; the spec "
              f"requires logged_in {int(logged_in)}")
    ctx.check(answer.nick == nick, "CP-HS-1",
              f"{what} was answered with WELCOME nick={answer.nick!r}; the connection holds "
              f"{nick!r}")


def _check_refused(answer: Message, code: ErrorCode, req: str, what: str) -> None:
    if not isinstance(answer, Error) or answer.code != code:
        raise Violation(req, f"{what} was answered with {outcome(answer)}; the spec "
                        f"requires ERROR {code.name}")


# ------------------------------------------------------------------ REGISTER


@server_case("CP-ACCT-1")
async def register_creates_account_with_that_password(ctx: ServerContext) -> None:
    """REGISTER is answered OK; once alice has left, LOGIN with her password takes the nick."""
    alice = await ctx.client("alice")
    password = new_password()
    await alice.ok(Register(password=password), req="CP-ACCT-1", timeout=AUTH_TIMEOUT)
    # While alice holds the nick, any LOGIN to it meets NICK_IN_USE (CP-NICK-10),
    # which tells nothing about the account: she leaves first.
    await quit_and_closed(alice)
    bob = await ctx.client("bob")
    answer = await bob.request(Login(nick=alice.nick, password=password), req="CP-ACCT-1",
                               timeout=AUTH_TIMEOUT)
    if isinstance(answer.final, Error) and answer.final.code == ErrorCode.AUTH_FAILED:
        raise Violation("CP-ACCT-1", f"after alice's REGISTER was answered OK, LOGIN to "
                        f"{alice.nick!r} with her password was refused with AUTH_FAILED: the "
                        "account was not registered with that password")
    if not isinstance(answer.final, Ok):
        raise Violation("CP-ACCT-1", f"after alice registered {alice.nick!r} and left, LOGIN "
                        f"with her password was answered with {outcome(answer.final)}, not OK")


@server_case("CP-ACCT-3")
async def register_with_empty_password_refused(ctx: ServerContext) -> None:
    """REGISTER with an empty password is refused with INVALID_FIELD and registers nothing."""
    alice = await ctx.client("alice")
    await alice.refused(Register.model_construct(password=""), ErrorCode.INVALID_FIELD,
                        req="CP-ACCT-3", timeout=AUTH_TIMEOUT)
    answer = await alice.request(Register(password=new_password()), req="CP-ACCT-1",
                                 timeout=AUTH_TIMEOUT)
    final = answer.final
    if isinstance(final, Error) and final.code == ErrorCode.ALREADY_REGISTERED:
        raise Violation("CP-ACCT-3", "a REGISTER with an empty password was refused, yet a "
                        "later REGISTER found the nick already registered")
    if isinstance(final, Error):
        raise Violation("CP-ACCT-1", f"REGISTER with a non-empty password was answered with "
                        f"{outcome(final)}, not OK")


@server_case("CP-ACCT-2")
async def register_of_registered_nick_refused(ctx: ServerContext) -> None:
    """REGISTER from a connection whose nick is registered gets ALREADY_REGISTERED."""
    alice = await ctx.client("alice")
    await alice.ok(Register(password=new_password()), req="CP-ACCT-1", timeout=AUTH_TIMEOUT)
    await alice.refused(Register(password=new_password()), ErrorCode.ALREADY_REGISTERED,
                        req="CP-ACCT-2", timeout=AUTH_TIMEOUT)
    nick, password = await registered_account(ctx, "owner", mixed=True)
    carol = await _logged_in(ctx, "carol", nick.lower(), password)
    await carol.refused(Register(password=new_password()), ErrorCode.ALREADY_REGISTERED,
                        req="CP-ACCT-2", timeout=AUTH_TIMEOUT)


@server_case("CP-ACCT-4", "CP-ACCT-5", "CP-ACCT-6")
async def account_kept_for_later_connections(ctx: ServerContext) -> None:
    """An account outlives its connection: later connections log in with HELLO and LOGIN in turn."""
    nick, password = await registered_account(ctx, "kept")
    for round_number in range(2):
        peer = await _logged_in(ctx, "hello", nick, password)
        assert peer.welcome is not None
        ctx.check(peer.welcome.logged_in, "CP-ACCT-5",
                  f"HELLO {round_number + 1} with the account's password was answered with "
                  "WELCOME logged_in=0")
        await quit_and_closed(peer)
        guest = await ctx.client("guest")
        await guest.ok(Login(nick=nick, password=password), req="CP-ACCT-6",
                       timeout=AUTH_TIMEOUT)
        await quit_and_closed(guest)


# ------------------------------------------------------------------ HELLO


@server_case("CP-ACCT-5", "CP-HS-1")
async def hello_with_account_password_logs_in(ctx: ServerContext) -> None:
    """HELLO with a registered nick (any case) and its password: WELCOME logged_in=1."""
    nick, password = await registered_account(ctx, "login", mixed=True)
    for spelling in (nick, nick.lower()):
        peer = await ctx.connect("alice")
        answer = await hello_answer(peer, spelling, password)
        _check_welcome(ctx, answer, nick=nick, logged_in=True,
                       what=f"HELLO {spelling!r} with the password of the account {nick!r}")
        await quit_and_closed(peer)


@server_case("CP-ACCT-5", "CP-HS-3")
async def hello_without_password_for_registered_nick_refused(ctx: ServerContext) -> None:
    """HELLO for a registered nick (any letter case) without a password gets NICK_REGISTERED."""
    nick, password = await registered_account(ctx, "nopass", mixed=True)
    peer = await ctx.connect("alice")
    for spelling in (nick, nick.upper(), nick.lower()):
        answer = await hello_answer(peer, spelling)
        _check_refused(answer, ErrorCode.NICK_REGISTERED, "CP-ACCT-5",
                       f"HELLO {spelling!r} without a password (registered as {nick!r})")
    answer = await hello_answer(peer, nick, password, req="CP-HS-3")
    if not isinstance(answer, Welcome):
        raise Violation("CP-HS-3", f"after non-fatal errors, HELLO with the right password "
                        f"was answered with {outcome(answer)}, not WELCOME")


@server_case("CP-ACCT-5", "CP-HS-3")
async def hello_with_wrong_password_refused(ctx: ServerContext) -> None:
    """HELLO for a registered nick with another password gets AUTH_FAILED; the client may retry."""
    nick, password = await registered_account(ctx, "wrongpw")
    peer = await ctx.connect("alice")
    for wrong in (new_password(), password + "x", password[:-1]):
        answer = await hello_answer(peer, nick, wrong)
        _check_refused(answer, ErrorCode.AUTH_FAILED, "CP-ACCT-5",
                       f"HELLO {nick!r} with a wrong password ({wrong!r})")
    guest = ctx.nick("guest")
    answer = await hello_answer(peer, guest, req="CP-HS-3")
    if not isinstance(answer, Welcome):
        raise Violation("CP-HS-3", f"after AUTH_FAILED, a guest HELLO {guest!r} on the same "
                        f"connection was answered with {outcome(answer)}, not WELCOME")


@server_case("CP-ACCT-5")
async def hello_guest_for_unregistered_nick_welcomed(ctx: ServerContext) -> None:
    """HELLO for a nick that is not registered, without a password: WELCOME logged_in=0."""
    nick = mixed_case(ctx.nick("guest"))
    peer = await ctx.connect("guest")
    answer = await hello_answer(peer, nick)
    _check_welcome(ctx, answer, nick=nick, logged_in=False,
                   what=f"HELLO {nick!r} (not registered) without a password")


@server_case("CP-ACCT-5", "CP-HS-3")
async def hello_with_password_for_unregistered_nick_refused(ctx: ServerContext) -> None:
    """HELLO with a password for a nick that is not registered gets AUTH_FAILED, not WELCOME."""
    nick = ctx.nick("nobody")
    peer = await ctx.connect("alice")
    answer = await hello_answer(peer, nick, new_password())
    _check_refused(answer, ErrorCode.AUTH_FAILED, "CP-ACCT-5",
                   f"HELLO {nick!r} (not registered) with a password")
    answer = await hello_answer(peer, nick, req="CP-HS-3")
    if not isinstance(answer, Welcome):
        raise Violation("CP-HS-3", f"after AUTH_FAILED, a guest HELLO {nick!r} on the same "
                        f"connection was answered with {outcome(answer)}, not WELCOME")
    _check_welcome(ctx, answer, nick=nick, logged_in=False,
                   what=f"the guest HELLO {nick!r} after AUTH_FAILED")


# ------------------------------------------------------------------ LOGIN


@server_case("CP-ACCT-6", "CP-NICK-9")
async def login_switches_to_stored_spelling(ctx: ServerContext) -> None:
    """LOGIN (in another letter case) is answered OK; the connection then holds the stored nick."""
    nick, password = await registered_account(ctx, "Stored", mixed=True)
    room = ctx.room("login")
    bob = await ctx.client("bob")
    watcher = await ctx.client("watcher")
    await bob.join(room)
    await watcher.join(room)
    guest_nick = bob.nick
    await bob.ok(Login(nick=nick.lower(), password=password), req="CP-ACCT-6",
                 timeout=AUTH_TIMEOUT)
    with ctx.attribute("CP-NICK-9"):
        changed = await watcher.expect_type(NickChanged, req="CP-NICK-9")
    ctx.check(changed.old_nick == guest_nick, "CP-NICK-9",
              f"watcher received {describe(changed)}; expected old_nick={guest_nick!r}")
    ctx.check(changed.new_nick == nick, "CP-ACCT-6",
              f"after LOGIN {nick.lower()!r}, NICK_CHANGED names the new nick "
              f"{changed.new_nick!r}; the account's nick is stored as {nick!r}")
    await bob.say(room, "logged in")
    message = await watcher.expect_type(RoomMessage, req="CP-MSG-1")
    ctx.check(message.sender == nick, "CP-ACCT-6",
              f"after LOGIN, bob's message names the sender {message.sender!r}; the "
              f"account's nick is stored as {nick!r}")


@server_case("CP-ACCT-7")
async def login_with_unknown_nick_or_wrong_password_refused(ctx: ServerContext) -> None:
    """LOGIN to a nick that is not registered, or with a wrong password, gets AUTH_FAILED."""
    nick, password = await registered_account(ctx, "acct")
    bob = await ctx.client("bob")
    await bob.refused(Login(nick=ctx.nick("nobody"), password=new_password()),
                      ErrorCode.AUTH_FAILED, req="CP-ACCT-7", timeout=AUTH_TIMEOUT)
    for wrong in (new_password(), password + "x", password[:-1]):
        await bob.refused(Login(nick=nick, password=wrong), ErrorCode.AUTH_FAILED,
                          req="CP-ACCT-7", timeout=AUTH_TIMEOUT)
    await bob.ok(Login(nick=nick, password=password), req="CP-ACCT-6", timeout=AUTH_TIMEOUT)


@server_case("CP-ACCT-9", "CP-NICK-3")
async def case_change_keeps_the_accounts_spelling(ctx: ServerContext) -> None:
    """The owner's NICK to another letter case is shown as typed; a later login gets the
    spelling stored with the account."""
    nick, password = await registered_account(ctx, "spell", mixed=True)
    owner = await _logged_in(ctx, "owner", nick, password)
    watcher = await ctx.client("watcher")
    room = ctx.room("spell")
    await owner.join(room)
    await watcher.join(room)
    shown = nick.swapcase()
    await owner.ok(Nick(nick=shown), req="CP-NICK-7")
    changed = await watcher.expect_type(NickChanged, req="CP-NICK-9")
    ctx.check(changed.new_nick == shown, "CP-NICK-3",
              f"after the owner's NICK {shown!r}, watcher received {describe(changed)}; the "
              f"connection holds {shown!r} as it spelled it")
    await quit_and_closed(owner)
    peer = await ctx.connect("again")
    answer = await hello_answer(peer, nick.lower(), password, req="CP-ACCT-9")
    if not isinstance(answer, Welcome):
        raise Violation("CP-ACCT-5", f"HELLO with the account's password was answered with "
                        f"{outcome(answer)}, not WELCOME")
    ctx.check(answer.nick == nick, "CP-ACCT-9",
              f"after the owner had shown the nick as {shown!r}, a new login got WELCOME "
              f"nick={answer.nick!r}; the account stores {nick!r}, which a case change must "
              "not rewrite")


@server_case("CP-NICK-10")
async def login_to_a_held_nick_checks_no_password(ctx: ServerContext) -> None:
    """LOGIN to a registered nick someone holds: NICK_IN_USE, with a wrong password or the right."""
    nick, password = await registered_account(ctx, "held")
    holder = await _logged_in(ctx, "holder", nick, password)
    bob = await ctx.client("bob")
    for which, attempt in (("a wrong", new_password()), ("the right", password)):
        answer = await bob.request(Login(nick=holder.nick, password=attempt), req="CP-NICK-10",
                                   timeout=AUTH_TIMEOUT)
        _check_refused(answer.final, ErrorCode.NICK_IN_USE, "CP-NICK-10",
                       f"LOGIN to {holder.nick!r}, which another connection holds, with "
                       f"{which} password")


# ------------------------------------------------------------------ passwords


def _variants(password: str) -> dict[str, str]:
    """Strings a normalising or case-insensitive comparison would confuse with ``password``."""
    candidates = {
        "its NFD form": unicodedata.normalize("NFD", password),
        "its NFKC form": unicodedata.normalize("NFKC", password),
        "upper case": password.upper(),
        "swapped case": password.swapcase(),
        "case-folded": password.casefold(),
        "with a trailing space": password + " ",
        "with a leading space": " " + password,
    }
    return {why: text for why, text in candidates.items()
            if text != password and len(text.encode()) <= PASSWORD_MAX_BYTES}


@server_case("CP-ACCT-8")
async def password_compared_without_normalisation(ctx: ServerContext) -> None:
    """Case, NFD/NFKC and whitespace variants of a password are refused (HELLO and LOGIN)."""
    suffix = "".join(secrets.choice(string.ascii_letters) for _ in range(6))
    # NFC, with letters that NFD splits, a ligature that NFKC expands and an ess-zett.
    password = unicodedata.normalize("NFC", f"Kit-Z\u00fcrich-Stra\u00dfe-\u03a9-\ufb01-{suffix}")
    nick, password = await registered_account(ctx, "norm", password=password)
    for why, variant in _variants(password).items():
        guest = await ctx.client("guest")
        answer = await guest.request(Login(nick=nick, password=variant), req="CP-ACCT-8",
                                     timeout=AUTH_TIMEOUT)
        _check_refused(answer.final, ErrorCode.AUTH_FAILED, "CP-ACCT-8",
                       f"LOGIN with the password in {why} ({variant.encode()!r}, registered "
                       f"as {password.encode()!r})")
        await quit_and_closed(guest)
    peer = await ctx.connect("hello")
    nfd = unicodedata.normalize("NFD", password)
    refused = await hello_answer(peer, nick, nfd, req="CP-ACCT-8")
    _check_refused(refused, ErrorCode.AUTH_FAILED, "CP-ACCT-8",
                   f"HELLO with the password in its NFD form ({nfd.encode()!r})")
    await _logged_in(ctx, "owner", nick, password)


@server_case("CP-ACCT-8")
async def long_password_compared_in_full(ctx: ServerContext) -> None:
    """A 255-byte password differing only in its last byte, or cut short, is refused."""
    password = "".join(secrets.choice(string.ascii_letters) for _ in range(PASSWORD_MAX_BYTES))
    nick, password = await registered_account(ctx, "long", password=password)
    last = "a" if password[-1] != "a" else "b"
    for why, variant in (("with another last byte", password[:-1] + last),
                         ("cut to 254 bytes", password[:-1]),
                         ("cut to 72 bytes", password[:72])):
        guest = await ctx.client("guest")
        answer = await guest.request(Login(nick=nick, password=variant), req="CP-ACCT-8",
                                     timeout=AUTH_TIMEOUT)
        _check_refused(answer.final, ErrorCode.AUTH_FAILED, "CP-ACCT-8",
                       f"LOGIN with the 255-byte password {why}")
        await quit_and_closed(guest)
    await _logged_in(ctx, "owner", nick, password)
