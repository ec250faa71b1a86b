"""Password guessing and account creation, bounded (issue 11, defects 5 and 7).

CP-SEC-7, CP-SEC-11: failed logins (HELLO with a password, LOGIN) are limited per
nick and per address; past the limit an attempt is refused with RATE_LIMITED and
``retry_after_ms`` before its password is looked at. AUTH_FAILED reads and takes
the same whether or not the account exists. REGISTER is limited per address.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time

import pytest
from conftest import ClientFactory, RunningServer
from server_harness import ChatTestClient, HelloRefused, refused

from chatproto import ErrorCode
from chatproto.messages import Error, Login, Oper, Ping, Pong, Register
from reference_server.throttle import KeyedBuckets

PASSWORD = "correct horse battery staple"
SECOND_ADDRESS = "127.0.0.2"


async def _account(client_factory: ClientFactory, nick: str) -> None:
    owner = await client_factory(nick)
    await owner.ok(Register(password=PASSWORD))
    await owner.quit()


async def _hello_error(client: ChatTestClient, nick: str, password: str) -> Error:
    with pytest.raises(HelloRefused) as info:
        await client.hello(nick, password, timeout=10.0)
    return info.value.error


@pytest.mark.server_config(auth_failure_burst_per_nick=3, auth_failure_interval_per_nick_s=30)
async def test_failed_logins_for_one_nick_are_limited(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """Three wrong passwords for alice are AUTH_FAILED; then HELLO and LOGIN for alice, from
    any connection and even with the right password, get RATE_LIMITED (non-fatal,
    retry_after_ms up to 30 s); bob's account is not affected."""
    await _account(client_factory, "alice")
    await _account(client_factory, "bob")
    guesser = await client_factory()
    for attempt in range(3):
        error = await _hello_error(guesser, "alice", f"guess{attempt}")
        assert (error.code, error.detail) == (ErrorCode.AUTH_FAILED, "authentication failed")
    limited = await _hello_error(guesser, "alice", "guess3")
    assert (limited.code, limited.fatal) == (ErrorCode.RATE_LIMITED, False)
    assert 25_000 < limited.retry_after_ms <= 30_000
    right = await _hello_error(await client_factory(), "Alice", PASSWORD)
    assert right.code == ErrorCode.RATE_LIMITED  # not checked: it tells a guesser nothing
    guest = await client_factory("guest")
    refused(await guest.request(Login(nick="alice", password=PASSWORD), timeout=10.0),
            ErrorCode.RATE_LIMITED)
    assert (await guesser.hello("bob", PASSWORD, timeout=10.0)).logged_in


@pytest.mark.server_config(auth_failure_burst_per_address=3, auth_failure_burst_per_nick=10)
async def test_failed_logins_from_one_address_are_limited_across_nicks(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """Spreading guesses over nicks does not help: three failures from one address, for
    three nicks, and the fourth nick is RATE_LIMITED from that address; another address
    still gets AUTH_FAILED."""
    guesser = await client_factory()
    for nick in ("n1", "n2", "n3"):
        assert (await _hello_error(guesser, nick, "pw")).code == ErrorCode.AUTH_FAILED
    assert (await _hello_error(guesser, "n4", "pw")).code == ErrorCode.RATE_LIMITED
    elsewhere = await client_factory(source_host=SECOND_ADDRESS)
    assert (await _hello_error(elsewhere, "n4", "pw")).code == ErrorCode.AUTH_FAILED


@pytest.mark.server_config(auth_failure_burst_per_nick=2, auth_failure_interval_per_nick_s=0.3)
async def test_the_limit_lets_go_after_retry_after_ms(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """After waiting the retry_after_ms it was given, the owner logs in."""
    await _account(client_factory, "alice")
    client = await client_factory()
    for _ in range(2):
        assert (await _hello_error(client, "alice", "nope")).code == ErrorCode.AUTH_FAILED
    limited = await _hello_error(client, "alice", PASSWORD)
    assert limited.code == ErrorCode.RATE_LIMITED and 0 < limited.retry_after_ms <= 300
    await asyncio.sleep(limited.retry_after_ms / 1000)  # the wait the server asked for
    assert (await client.hello("alice", PASSWORD, timeout=10.0)).logged_in


@pytest.mark.server_config(auth_failure_burst_per_nick=2, auth_failure_burst_per_address=2)
async def test_right_passwords_take_nothing_from_the_limit(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """Only failures count: five logins with the right password, then a wrong one is still
    AUTH_FAILED, not RATE_LIMITED."""
    await _account(client_factory, "alice")
    for _ in range(5):
        client = await client_factory("alice", PASSWORD)
        await client.quit()
    client = await client_factory()
    assert (await _hello_error(client, "alice", "wrong")).code == ErrorCode.AUTH_FAILED


@pytest.mark.server_config(auth_failure_burst_per_nick=1)
async def test_limited_answers_keep_their_order(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-REQ-5, CP-REQ-8: pipelined LOGIN (wrong: AUTH_FAILED after the password check),
    LOGIN (now RATE_LIMITED, at once), PING: the answers come in that order."""
    await _account(client_factory, "alice")
    guest = await client_factory("guest")
    ids = await guest.send_many([Login(nick="alice", password="wrong"),
                                 Login(nick="alice", password="wrong again"),
                                 Ping(token=b"after")])
    answers = [(await guest.response(request_id, timeout=10.0))[-1] for request_id in ids]
    assert [type(a) for a in answers] == [Error, Error, Pong]
    assert [a.code for a in answers[:2] if isinstance(a, Error)] == [
        ErrorCode.AUTH_FAILED, ErrorCode.RATE_LIMITED]


async def test_failure_reads_and_takes_the_same_with_or_without_an_account(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """Defect 5: HELLO and LOGIN with a wrong password for an account, and for a nick with
    no account, give the same ERROR (code, detail), in similar time: both run scrypt (was
    0.9 ms against 50 ms)."""
    await _account(client_factory, "alice")
    client = await client_factory()
    guest = await client_factory("guest")
    seconds: dict[str, list[float]] = {"alice": [], "nobody": []}
    answers: set[tuple[str, int, str]] = set()
    for _ in range(4):
        for nick in seconds:
            started = time.perf_counter()
            error = await _hello_error(client, nick, "wrong")
            seconds[nick].append(time.perf_counter() - started)
            answers.add(("HELLO", error.code, error.detail))
            login = refused(await guest.request(Login(nick=nick, password="wrong"),
                                                timeout=10.0), ErrorCode.AUTH_FAILED)
            answers.add(("LOGIN", login.code, login.detail))
    assert answers == {("HELLO", ErrorCode.AUTH_FAILED, "authentication failed"),
                       ("LOGIN", ErrorCode.AUTH_FAILED, "authentication failed")}
    with_account = statistics.median(seconds["alice"])
    without = statistics.median(seconds["nobody"])
    assert without > 0.3 * with_account, seconds  # an answer without scrypt is ~50x faster


@pytest.mark.server_config(auth_failure_burst_per_nick=2)
async def test_throttled_attempts_are_not_logged_one_line_each(
        server: RunningServer, client_factory: ClientFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    """HELLO is outside the token buckets, so a guessing flood is cheap to send: twenty
    refused attempts write one log line (and no password)."""
    caplog.set_level(logging.INFO, logger="chatproto.server")
    client = await client_factory()
    for attempt in range(22):
        await _hello_error(client, "alice", f"secret-{attempt}")
    limited = [r.getMessage() for r in caplog.records if "RATE_LIMITED" in r.getMessage()]
    assert len(limited) == 1, limited
    assert not any("secret-" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------ account creation


@pytest.mark.server_config(account_creation_burst_per_address=2,
                           account_creation_interval_per_address_s=3600)
async def test_account_creation_is_limited_per_address(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """Defect 7: two accounts from one address, then REGISTER is RATE_LIMITED with
    retry_after_ms (about an hour here), and no account is made; an ALREADY_REGISTERED
    refusal does not count; another address can still register."""
    first = await client_factory("one")
    await first.ok(Register(password=PASSWORD))
    refused(await first.request(Register(password=PASSWORD)), ErrorCode.ALREADY_REGISTERED)
    second = await client_factory("two")
    await second.ok(Register(password=PASSWORD))
    third = await client_factory("three")
    limited = refused(await third.request(Register(password=PASSWORD)), ErrorCode.RATE_LIMITED)
    assert 3_500_000 < limited.retry_after_ms <= 3_600_000
    await third.quit()
    assert (await client_factory("three")).welcome is not None  # still a guest nick
    elsewhere = await client_factory("four", source_host=SECOND_ADDRESS)
    await elsewhere.ok(Register(password=PASSWORD))


def test_keyed_buckets_refill_forget_full_keys_and_run_into_debt() -> None:
    now = [0.0]
    buckets = KeyedBuckets(2, 10.0, clock=lambda: now[0])
    assert buckets.wait_ms("k") == 0
    buckets.charge("k")
    buckets.charge("k")
    assert buckets.wait_ms("k") == 10_000
    buckets.charge("k")  # an attempt already under way: debt
    assert buckets.wait_ms("k") == 20_000
    now[0] = 20.0
    assert buckets.wait_ms("k") == 0
    assert buckets.take("k") == 0 and buckets.take("k") == 10_000
    buckets.give_back("k")
    now[0] = 1e6
    for i in range(2000):  # full buckets are dropped: memory follows recent failures only
        buckets.charge(f"k{i}")
        now[0] += 10.0
    assert len(buckets) < 1100


@pytest.mark.server_config(auth_failure_burst_per_nick=2, auth_failure_interval_per_nick_s=30,
                           operators={"admin": "opersecret"})
async def test_failed_operator_logins_are_limited_per_name(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-SEC-7, CP-SEC-11: OPER guesses count like login failures, per operator name:
    past the limit OPER for that name is RATE_LIMITED, even with the right password,
    while another client's nick logins are not held back by it."""
    guesser = await client_factory("guesser")
    for attempt in range(2):
        refused(await guesser.request(Oper(name="admin", password=f"guess{attempt}"),
                                      timeout=10.0), ErrorCode.AUTH_FAILED)
    limited = refused(await guesser.request(Oper(name="admin", password="opersecret"),
                                            timeout=10.0), ErrorCode.RATE_LIMITED)
    assert 25_000 < limited.retry_after_ms <= 30_000
    await _account(client_factory, "alice")
    assert (await (await client_factory()).hello("alice", PASSWORD, timeout=10.0)).logged_in


@pytest.mark.server_config(auth_failure_burst_per_nick=1, auth_failure_burst_per_address=1)
async def test_an_empty_password_is_invalid_field_and_counts_as_no_failure(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-SEC-13 (issue 14 A11): LOGIN, OPER and REGISTER with an empty password are
    INVALID_FIELD, never AUTH_FAILED, and take nothing from the failure limits: with room
    for one failure, a wrong password after them is still AUTH_FAILED."""
    await _account(client_factory, "alice")
    client = await client_factory("bob")
    for cls, fields in ((Login, {"nick": "alice"}), (Oper, {"name": "kitop"}),
                        (Register, {})):
        for _ in range(3):
            refused(await client.request_unchecked(cls, 5.0, password="", **fields),
                    ErrorCode.INVALID_FIELD)
    refused(await client.request(Login(nick="alice", password="wrong")), ErrorCode.AUTH_FAILED)
