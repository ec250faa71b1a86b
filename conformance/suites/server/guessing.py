"""Password guessing: a login refused by the server's limit on failures is not checked.

Limiting failed logins is a SHOULD (CP-SEC-7) and its numbers are the server's
own, so the case makes wrong guesses until the server answers RATE_LIMITED, and
skips when it never does within ``GUESSES``. What it then checks is CP-SEC-11:
the refusal carries ``retry_after_ms``, and the right password sent at once is
refused the same way. A server that welcomed it would have checked a password
its limit refuses, and told the guesser which guess was right.
"""

from __future__ import annotations

import asyncio

from chatproto import ErrorCode
from chatproto.messages import Error, Login, Oper, Register
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import ServerContext
from conformance.suites.server._bodies import unchecked
from conformance.suites.server._steps import hello_answer, new_password, registered_account
from conformance.transcript import describe, outcome

GUESSES = 30
"""Wrong passwords the case makes before it concludes that the server sets no limit."""


@server_case("CP-SEC-11")
async def throttled_login_refused_before_the_password_check(ctx: ServerContext) -> None:
    """Wrong passwords in HELLO until RATE_LIMITED (skip if none in 30): it carries
    retry_after_ms of at least 1, and the right password at once is refused too."""
    nick, password = await registered_account(ctx, "guess")
    peer = await ctx.connect("guesser")
    limited: Error | None = None
    for _ in range(GUESSES):
        answer = await hello_answer(peer, nick, new_password(), req="CP-SEC-11")
        if isinstance(answer, Error) and answer.code == ErrorCode.RATE_LIMITED:
            limited = answer
            break
        if not isinstance(answer, Error) or answer.code != ErrorCode.AUTH_FAILED:
            raise Violation("CP-ACCT-5", f"HELLO {nick!r} with a wrong password was answered "
                            f"with {outcome(answer)}; the spec requires ERROR AUTH_FAILED "
                            "(or RATE_LIMITED from a limit on failures)")
    if limited is None:
        ctx.skip(f"{GUESSES} wrong passwords for {nick!r} were all answered AUTH_FAILED: the "
                 "server sets no limit on failed logins that the kit reaches (CP-SEC-7 is a "
                 "SHOULD)")
        return
    refused_at = asyncio.get_running_loop().time()
    ctx.check(limited.retry_after_ms >= 1, "CP-SEC-11",
              f"the HELLO refused by the limit on failures got {describe(limited)}; "
              "retry_after_ms must say when to try again (at least 1)")
    right = await hello_answer(peer, nick, password, req="CP-SEC-11")
    waited_ms = (asyncio.get_running_loop().time() - refused_at) * 1000
    if waited_ms >= limited.retry_after_ms:
        return  # the limit may have let go by now: nothing to conclude
    if not isinstance(right, Error) or right.code != ErrorCode.RATE_LIMITED:
        raise Violation("CP-SEC-11", f"{waited_ms:.0f} ms after RATE_LIMITED with "
                        f"retry_after_ms={limited.retry_after_ms}, HELLO {nick!r} with the "
                        f"right password was answered with {outcome(right)}: the server "
                        "checked the password of an attempt its limit refuses, which tells "
                        "a guesser when a guess is right")


@server_case("CP-SEC-13")
async def empty_password_is_invalid_field_never_auth_failed(ctx: ServerContext) -> None:
    """LOGIN (to an existing account), OPER and REGISTER with an empty password: each is
    INVALID_FIELD (a password is 1..255 bytes), not AUTH_FAILED."""
    nick, _ = await registered_account(ctx, "emptypw")
    peer = await ctx.client("emptypw")
    for message, what in ((unchecked(Login, 0, nick=nick, password=""),
                           f"LOGIN {nick!r} (an account) with an empty password"),
                          (unchecked(Oper, 0, name="kit-operator", password=""),
                           "OPER with an empty password"),
                          (unchecked(Register, 0, password=""),
                           "REGISTER with an empty password")):
        answer = await peer.request(message, req="CP-SEC-13")
        final = answer.final
        ctx.check(isinstance(final, Error) and final.code == ErrorCode.INVALID_FIELD,
                  "CP-SEC-13", f"{what} was answered with {outcome(final)}; an empty "
                  "password breaks the field's constraint (1..255 bytes): INVALID_FIELD, "
                  "never AUTH_FAILED")
