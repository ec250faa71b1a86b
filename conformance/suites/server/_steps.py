"""Steps the server-suite cases share; no cases of its own.

Each step either gives a case what it builds on (welcomed clients in a room,
an account nobody is connected to, an operator connection) or judges
something many cases rely on (the connection is still served), and names the
requirement it checks when it fails.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chatproto import ErrorCode, Message
from chatproto.messages import Error, Hello, Oper, Ping, Pong, Register, RoomMessage, Welcome
from conformance.outcomes import Violation
from conformance.server_side import FINAL_TYPES, KIT_CLIENT_NAME, Peer, ServerContext, mixed_case
from conformance.transcript import describe, outcome

T = TypeVar("T")


async def still_served(peer: Peer, req: str) -> None:
    """The server still answers this connection: a PING gets its PONG.

    ``req`` is the rule that says the connection goes on. Unlike the barrier,
    a failure here does not mark PING as broken for later cases; a case that
    relies on this proves PING works first (``ping_works``).
    """
    peer.ctx.require_working("ping")
    ping = await peer.send(Ping(token=secrets.token_bytes(4)), pace=False)
    answer = await peer.response(ping.request_id, "PING", req=req)
    if not isinstance(answer.final, Pong):
        raise Violation(req, f"{peer.label}: PING was answered with {describe(answer.final)}, "
                        "so the connection is no longer served")


async def ping_works(ctx: ServerContext) -> None:
    """PING is answered at all, shown on a fresh connection before a case relies on it.

    A case that judges its own rule by a PONG (the connection still served, a
    frame after a bad one read) would otherwise blame that rule on a server
    that never answers PING: that is CP-KEEP-1, which fails here, and marks
    PING as broken so that later such cases are skipped.
    """
    probe = await ctx.client("probe")
    await probe.barrier()


async def maybe(wait: Awaitable[T]) -> T | None:
    """The result of a wait, or None when it timed out or the connection closed first."""
    try:
        return await wait
    except Violation as exc:
        if exc.kind in ("timeout", "closed"):
            return None
        raise


async def room_with(ctx: ServerContext, room: str, *labels: str) -> list[Peer]:
    """Welcomed clients that all joined ``room``, in order (the first creates it)."""
    peers = []
    for label in labels:
        peer = await ctx.client(label)
        await peer.join(room)
        peers.append(peer)
    return peers


def fit_topic(peer: Peer, topic: str) -> str:
    """``topic`` cut to the advertised max_topic_length (whole characters only)."""
    assert peer.welcome is not None
    data = topic.encode()[:peer.welcome.max_topic_length]
    return data.decode(errors="ignore")


def text_is(text: str) -> Callable[[RoomMessage], bool]:
    return lambda m: m.text == text


AUTH_TIMEOUT = 10.0
"""Seconds for REGISTER, LOGIN and a HELLO with a password: servers may use a slow KDF."""


def new_password() -> str:
    """A fresh password of ASCII letters and digits."""
    return "kit-" + "".join(secrets.choice(string.ascii_letters + string.digits)
                            for _ in range(16))


def _hello(nick: str, password: str = "") -> Hello:
    return Hello(min_version=1, max_version=1, nick=nick, password=password,
                 client_name=KIT_CLIENT_NAME)


async def hello_answer(peer: Peer, nick: str, password: str = "", *,
                       req: str = "CP-ACCT-5") -> Message:
    """The final answer to a HELLO for ``nick`` with ``password`` on ``peer``.

    A refusal that comes back with request_id 0 instead of the HELLO's is
    reported as such (CP-ERR-2), rather than as a HELLO left unanswered.
    """
    sent = await peer.send(_hello(nick, password))

    def answers(message: Message) -> bool:
        return (message.request_id == sent.request_id and message.NAME in FINAL_TYPES) or \
            (isinstance(message, Error) and message.request_id == 0)

    final = await peer.expect(answers, req=req, what=f"the answer to HELLO {nick!r}",
                              timeout=AUTH_TIMEOUT)
    if final.request_id != sent.request_id:
        raise Violation("CP-ERR-2", f"HELLO {nick!r} (request {sent.request_id}) was refused "
                        f"with {describe(final)}, which carries request_id 0")
    return final


async def quit_and_closed(peer: Peer) -> None:
    await peer.quit()
    await peer.expect_closed(req="CP-CLOSE-1")


async def registered_account(ctx: ServerContext, base: str = "acct", *,
                             mixed: bool = False,
                             password: str | None = None) -> tuple[str, str]:
    """An account that nobody is connected to: (its nick as stored, its password).

    A guest registers its nick and quits. A later connection then asks for
    the nick without a password: NICK_REGISTERED shows the account was kept
    (CP-ACCT-4). A guest WELCOME is either a forgotten account or a broken
    NICK_REGISTERED rule, and a HELLO with the password tells the two apart.
    """
    nick = ctx.nick(base)
    owner = await ctx.connect(base)
    await owner.hello(mixed_case(nick) if mixed else nick)
    password = new_password() if password is None else password
    await owner.ok(Register(password=password), req="CP-ACCT-1", timeout=AUTH_TIMEOUT)
    await quit_and_closed(owner)
    probe = await ctx.connect("probe")
    first = await hello_answer(probe, owner.nick)
    if isinstance(first, Error) and first.code == ErrorCode.NICK_REGISTERED:
        return owner.nick, password
    if not isinstance(first, Welcome):
        raise Violation("CP-ACCT-5", f"HELLO without a password for the registered nick "
                        f"{owner.nick!r} was answered with {outcome(first)}, not ERROR "
                        "NICK_REGISTERED")
    await quit_and_closed(probe)
    second = await hello_answer(await ctx.connect("probe"), owner.nick, password)
    if isinstance(second, Welcome):
        raise Violation("CP-ACCT-5", f"HELLO without a password for the registered nick "
                        f"{owner.nick!r} was welcomed as a guest (the account exists: the "
                        "password is accepted); the spec requires ERROR NICK_REGISTERED")
    raise Violation("CP-ACCT-4", f"the account {owner.nick!r} was gone once the connection "
                    f"that registered it had ended: HELLO without a password was welcomed "
                    f"as a guest and HELLO with the password was answered {outcome(second)}")


async def operator_client(ctx: ServerContext, label: str = "op") -> Peer:
    """A welcomed connection made operator with the credentials given to the kit.

    Skipped without ``--oper``, and when a plain-TCP OPER with them meets
    AUTH_FAILED: a server may refuse OPER without TLS (CP-SEC-8).
    """
    name, password = ctx.need_oper()
    peer = await ctx.client(label)
    answer = await peer.request(Oper(name=name, password=password), req="CP-OPER-1",
                                timeout=AUTH_TIMEOUT)
    final = answer.final
    if isinstance(final, Error) and final.code == ErrorCode.AUTH_FAILED and \
            not ctx.options.tls:
        ctx.skip("OPER with the credentials given to the kit was refused with AUTH_FAILED on a "
                 "connection without TLS, which CP-SEC-8 allows; run the kit with --tls")
    if isinstance(final, Error):
        raise Violation("CP-OPER-1", f"OPER with the configured credentials was answered "
                        f"with {outcome(final)}, not OK")
    return peer
