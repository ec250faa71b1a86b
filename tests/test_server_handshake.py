"""Reference server: handshake, version negotiation, nicknames (over real sockets).

Spec pages: lifecycle (Handshake), nicknames-and-rooms (Nick profile, ownership,
changing nick), limits.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import ClientFactory, RunningServer
from server_harness import (
    ChatTestClient,
    HelloRefused,
    join_all,
    of_type,
    raw_frame,
    refused,
    str8,
    unchecked,
)

from chatproto import ErrorCode, Limits
from chatproto.messages import (
    Error,
    Hello,
    ListUsers,
    MemberLeft,
    Nick,
    NickChanged,
    Notice,
    Ping,
    Pong,
    UserInfo,
    Welcome,
)

CUSTOM_LIMITS = Limits(
    max_frame_size=8192, max_nick_length=16, max_room_name_length=24,
    max_message_length=2000, max_topic_length=100, max_rooms_per_user=5,
    msg_rate_burst=7, msg_rate_interval_ms=300, cmd_rate_burst=33, cmd_rate_interval_ms=150,
    keepalive_interval_s=45, idle_timeout_s=120, history_on_join=11, history_page_max=77,
)


@pytest.mark.server_config(limits=CUSTOM_LIMITS, server_name="test-server/9.9")
async def test_welcome_carries_the_configured_limits(server: RunningServer,
                                                    client_factory: ClientFactory) -> None:
    """CP-HS-1, CP-HS-2, CP-HS-4, CP-HS-10: WELCOME names version 1, the nick as sent,
    casemapping "ascii", no capabilities, and exactly the configured limits."""
    client = await client_factory()
    welcome = await client.hello("Alice")
    assert welcome.version == 1
    assert welcome.request_id == 1
    assert welcome.nick == "Alice"
    assert welcome.logged_in is False
    assert welcome.casemapping == "ascii"
    assert welcome.capabilities == ()
    assert welcome.server_name == "test-server/9.9"
    assert welcome.limits == CUSTOM_LIMITS
    limits = welcome.limits
    assert 17 + limits.max_room_name_length + limits.max_message_length <= limits.max_frame_size


async def test_welcome_default_limits_are_the_reference_defaults(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-HS-2: the default configuration advertises the reference defaults (limits page)."""
    client = await client_factory()
    welcome = await client.hello("bob")
    assert welcome.limits == Limits()


@pytest.mark.server_config(motd="Welcome to the test server.\nBe nice.")
async def test_motd_follows_welcome_as_notice_events(server: RunningServer,
                                                    client_factory: ClientFactory) -> None:
    """CP-HS-1 (handshake example), CP-REQ-7: the MOTD comes as NOTICE events
    (request_id 0) right after WELCOME; the lines join up to the configured text."""
    client = await client_factory("alice")
    notices = of_type(await client.barrier(), Notice)
    assert notices, "no NOTICE after WELCOME"
    assert all(notice.request_id == 0 for notice in notices)
    assert "\n".join(notice.text for notice in notices) == "Welcome to the test server.\nBe nice."


async def test_no_notice_without_motd(server: RunningServer,
                                      client_factory: ClientFactory) -> None:
    """An empty MOTD sends no NOTICE: nothing at all arrives between WELCOME and a PONG."""
    client = await client_factory("alice")
    assert await client.barrier() == []


async def test_version_range_picks_the_highest_common_version(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-HS-4: a client offering 1..5 is given version 1, the highest both speak."""
    client = await client_factory()
    welcome = await client.hello("alice", min_version=1, max_version=5)
    assert welcome.version == 1


@pytest.mark.parametrize(("low", "high"), [(2, 3), (7, 200), (3, 2)])
async def test_unsupported_version_is_fatal_and_names_the_range(
        server: RunningServer, client_factory: ClientFactory, low: int, high: int) -> None:
    """CP-HS-5, CP-HS-6, CP-ERR-1, CP-CLOSE-4: no common version (also min > max) is
    answered ERROR UNSUPPORTED_VERSION, fatal, detail naming "1-1"; then the server closes."""
    client = await client_factory()
    frames = await client.request_unchecked(
        Hello, min_version=low, max_version=high, nick="alice", password="",
        client_name="tests", capabilities=())
    error = refused(frames, ErrorCode.UNSUPPORTED_VERSION, fatal=True)
    assert error.request_id == frames[0].request_id != 0
    assert "1-1" in error.detail
    assert error.retry_after_ms == 0
    assert await client.read_until_closed() == []


async def test_unknown_capabilities_are_ignored(server: RunningServer,
                                                client_factory: ClientFactory) -> None:
    """CP-HS-8: well-formed capabilities the server does not support are left out of
    WELCOME without an error (v1 defines none)."""
    client = await client_factory()
    welcome = await client.hello("alice", capabilities=("x-shiny", "example.org/thing"))
    assert welcome.capabilities == ()


async def test_malformed_capability_is_invalid_field(server: RunningServer,
                                                     client_factory: ClientFactory) -> None:
    """CP-FIELD-3, CP-HS-3 (capability syntax): a capability breaking its syntax is
    INVALID_FIELD, non-fatal; the client can send another HELLO."""
    client = await client_factory()
    frames = await client.request_unchecked(
        Hello, min_version=1, max_version=1, nick="alice", password="",
        client_name="tests", capabilities=("Bad Capability",))
    refused(frames, ErrorCode.INVALID_FIELD)
    welcome = await client.hello("alice")
    assert welcome.nick == "alice"


async def test_client_ping_is_answered_with_its_token(server: RunningServer,
                                                      client_factory: ClientFactory) -> None:
    """CP-KEEP-1, CP-REQ-4: PONG echoes the token and the request_id."""
    client = await client_factory("alice")
    request_id = await client.send(Ping(token=b"\x00\xffhello"))
    frames = await client.response(request_id)
    assert len(frames) == 1 and isinstance(frames[0], Pong)
    assert frames[0].token == b"\x00\xffhello"
    assert frames[0].request_id == request_id
    empty = await client.request(Ping(token=b""))
    assert isinstance(empty[-1], Pong) and empty[-1].token == b""


# ------------------------------------------------------------------ nicknames


async def test_nicks_are_unique_whatever_their_case(server: RunningServer,
                                                    client_factory: ClientFactory) -> None:
    """CP-NICK-2, CP-NICK-10, CP-HS-3: "ALICE" is alice's nick; the refusal is a non-fatal
    NICK_IN_USE and the client can then HELLO with another nick."""
    await client_factory("alice")
    other = await client_factory()
    for spelling in ("alice", "ALICE", "aLiCe"):
        with pytest.raises(HelloRefused) as refusal:
            await other.hello(spelling)
        assert refusal.value.error.code == ErrorCode.NICK_IN_USE
        assert refusal.value.error.fatal is False
    welcome = await other.hello("alice_")
    assert welcome.nick == "alice_"


async def test_concurrent_hellos_for_one_nick_in_different_cases(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-NICK-5: many connections send HELLO for the same free nick (differing only in
    letter case) at the same moment: exactly one gets WELCOME, the others NICK_IN_USE."""
    spellings = ["racer", "Racer", "RACER", "rAcer", "raCer", "racEr", "raceR", "RaCeR",
                 "rACER", "RACEr", "rAcEr", "RaceR", "rACeR", "RAcer", "racER", "RACer"]
    clients = await asyncio.gather(*(client_factory() for _ in spellings))
    # Write every HELLO before waiting for any answer.
    request_ids = [
        await client.send(Hello(min_version=1, max_version=1, nick=nick, client_name="race"))
        for client, nick in zip(clients, spellings, strict=True)
    ]
    answers = await asyncio.gather(*(
        client.response(request_id) for client, request_id in zip(clients, request_ids,
                                                                  strict=True)))
    finals = [frames[-1] for frames in answers]
    winners = [final for final in finals if isinstance(final, Welcome)]
    losers = [final for final in finals if isinstance(final, Error)]
    assert len(winners) == 1, finals
    assert len(losers) == len(spellings) - 1
    assert all(error.code == ErrorCode.NICK_IN_USE for error in losers)
    # The winner holds the nick with its own spelling; LIST_USERS shows it once.
    winner = clients[finals.index(winners[0])]
    users = of_type(await winner.ok(ListUsers()), UserInfo)
    assert [user.nick for user in users] == [winners[0].nick]


INVALID_NICKS = [
    "",                     # empty
    "1alice",               # must start with a letter
    "_alice",
    "al ice",               # space
    "alice!",               # punctuation
    "\u0430lice",           # Cyrillic a: never a look-alike of "alice"
    "zo\u00eb",             # non-ASCII letter
    "a" * 33,               # over the protocol cap of 32
]


@pytest.mark.parametrize("nick", INVALID_NICKS)
async def test_hello_with_an_invalid_nick(server: RunningServer, client_factory: ClientFactory,
                                          nick: str) -> None:
    """CP-NICK-1, CP-HS-3: HELLO with a nick outside the profile is INVALID_NICK,
    non-fatal; a valid HELLO on the same connection then succeeds."""
    client = await client_factory()
    frames = await client.request_unchecked(Hello, min_version=1, max_version=1, nick=nick,
                                            password="", client_name="tests", capabilities=())
    refused(frames, ErrorCode.INVALID_NICK)
    assert (await client.hello("valid")).nick == "valid"


@pytest.mark.server_config(limits=Limits(max_nick_length=8))
async def test_nick_longer_than_advertised_is_invalid(server: RunningServer,
                                                      client_factory: ClientFactory) -> None:
    """CP-NICK-1: the advertised max_nick_length applies to HELLO and NICK."""
    client = await client_factory()
    with pytest.raises(HelloRefused) as refusal:
        await client.hello("abcdefghi")
    assert refusal.value.error.code == ErrorCode.INVALID_NICK
    welcome = await client.hello("abcdefgh")
    assert welcome.limits.max_nick_length == 8
    refused(await client.request_unchecked(Nick, nick="abcdefghi"), ErrorCode.INVALID_NICK)


@pytest.mark.parametrize("nick", ["", "9lives", "b\u00f6b", "with space", "x" * 33])
async def test_nick_request_with_an_invalid_nick(server: RunningServer,
                                                 client_factory: ClientFactory,
                                                 nick: str) -> None:
    """CP-NICK-1, CP-ERR-5: NICK to an invalid nick is INVALID_NICK; the nick is unchanged."""
    client = await client_factory("alice")
    refused(await client.request_unchecked(Nick, nick=nick), ErrorCode.INVALID_NICK)
    users = of_type(await client.ok(ListUsers()), UserInfo)
    assert [user.nick for user in users] == ["alice"]


async def test_nick_change_is_told_once_to_each_room_mate(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-NICK-7, CP-NICK-9, CP-NICK-3: bob shares two rooms with alice and gets ONE
    NICK_CHANGED; carol shares one and gets one; dave shares none and alice herself
    gets none. The new spelling is what others see afterwards."""
    alice, bob, carol, dave = [await client_factory(n) for n in ("alice", "bob", "carol", "dave")]
    await join_all("#one", alice, bob, carol)
    await join_all("#two", alice, bob)
    await join_all("#other", dave)

    await alice.ok(Nick(nick="Alice2"))
    for mate in (bob, carol):
        changes = of_type(await mate.barrier(), NickChanged)
        assert [(c.old_nick, c.new_nick, c.request_id) for c in changes] == [
            ("alice", "Alice2", 0)]
    assert await dave.barrier() == []
    assert await alice.barrier() == []
    users = {user.nick for user in of_type(await dave.ok(ListUsers()), UserInfo)}
    assert users == {"Alice2", "bob", "carol", "dave"}


async def test_nick_change_of_letter_case_and_to_itself(server: RunningServer,
                                                        client_factory: ClientFactory) -> None:
    """CP-NICK-7, CP-NICK-9: a change of letter case only is allowed and announced; a NICK
    repeating the current nick byte for byte is OK and announces nothing."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    await alice.ok(Nick(nick="ALICE"))
    changes = of_type(await bob.barrier(), NickChanged)
    assert [(c.old_nick, c.new_nick) for c in changes] == [("alice", "ALICE")]
    await alice.ok(Nick(nick="ALICE"))
    assert await bob.barrier() == []


async def test_nick_change_to_a_held_nick(server: RunningServer,
                                          client_factory: ClientFactory) -> None:
    """CP-NICK-10, CP-ERR-5: NICK to another connection's nick (any case) is NICK_IN_USE
    and changes nothing; nobody is told."""
    alice, bob = await client_factory("alice"), await client_factory("bob")
    await join_all("#room", alice, bob)
    refused(await alice.request(Nick(nick="BOB")), ErrorCode.NICK_IN_USE)
    assert await bob.barrier() == []
    assert await alice.barrier() == []


async def test_old_nick_is_free_after_a_nick_change(server: RunningServer,
                                                    client_factory: ClientFactory) -> None:
    """CP-NICK-7: after NICK the connection no longer holds its old nick."""
    alice = await client_factory("alice")
    await alice.ok(Nick(nick="alicia"))
    newcomer = await client_factory("alice")
    assert newcomer.nick == "alice"
    with pytest.raises(HelloRefused):
        await client_factory("ALICIA")


async def test_nick_is_released_after_quit(server: RunningServer,
                                           client_factory: ClientFactory) -> None:
    """CP-NICK-6, CP-CLOSE-1: once the server has closed a quitting connection, its nick
    can be taken at once."""
    alice = await client_factory("alice")
    await alice.quit("bye")
    again = await client_factory("Alice")
    assert again.nick == "Alice"


async def test_nick_is_released_after_a_dropped_connection(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-NICK-6, CP-CLOSE-9: a connection that just goes away releases its nick; a room
    mate learns of it from MEMBER_LEFT kind DISCONNECT, after which HELLO succeeds."""
    alice, watcher = await client_factory("alice"), await client_factory("watcher")
    await join_all("#room", alice, watcher)
    alice.abort()
    left = await watcher.expect(MemberLeft)
    assert (left.nick, left.kind, left.by) == ("alice", 4, "")
    assert (await client_factory("alice")).nick == "alice"


async def test_hello_after_welcome_is_a_state_violation(server: RunningServer,
                                                        client_factory: ClientFactory) -> None:
    """CP-STATE-2, CP-CLOSE-4: a second HELLO in READY is STATE_VIOLATION, fatal."""
    client = await client_factory("alice")
    request_id = client.next_request_id()
    frames = await client.request_raw(
        unchecked(Hello, request_id, min_version=1, max_version=1, nick="alice2",
                  password="", client_name="tests", capabilities=()), request_id)
    refused(frames, ErrorCode.STATE_VIOLATION, fatal=True)
    await client.wait_closed()


async def test_hello_may_be_retried_after_every_non_fatal_refusal(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-HS-3: HELLO after HELLO after HELLO: each non-fatal refusal leaves the
    connection in AWAIT_HELLO."""
    await client_factory("taken")
    client = await client_factory()
    for _ in range(3):
        with pytest.raises(HelloRefused):
            await client.hello("TAKEN")
    frame = raw_frame(0x0001, 99, bytes([1, 1]) + str8("\u0430") + str8("") + str8("t") + b"\0")
    refused(await client.request_raw(frame, 99), ErrorCode.INVALID_NICK)
    assert (await client.hello("free")).nick == "free"


async def test_welcome_arrives_promptly(server: RunningServer) -> None:
    """A plain client (no fixture) gets its WELCOME well within a second."""
    client = ChatTestClient(server.port)
    await client.connect()
    started = time.monotonic()
    try:
        await client.hello("quick")
        assert time.monotonic() - started < 1.0
    finally:
        await client.close()


async def test_concurrent_nick_changes_to_one_free_nick(server: RunningServer,
                                                       client_factory: ClientFactory) -> None:
    """CP-NICK-5: twelve connections send NICK for the same free nick (in different letter
    cases) at the same moment: exactly one OK, the others NICK_IN_USE."""
    clients = [await client_factory(f"user{i}") for i in range(12)]
    spellings = ["prize", "Prize", "PRIZE", "pRize", "prIze", "priZe",
                 "prizE", "PRize", "pRIZE", "PrIzE", "pRiZe", "PRIZe"]
    ids = [await client.send(Nick(nick=nick))
           for client, nick in zip(clients, spellings, strict=True)]
    finals = [(await client.response(request_id))[-1]
              for client, request_id in zip(clients, ids, strict=True)]
    assert sum(1 for final in finals if final.NAME == "OK") == 1, finals
    assert all(final.code == ErrorCode.NICK_IN_USE for final in finals if isinstance(final, Error))
    users = [u.nick for u in of_type(await clients[0].ok(ListUsers()), UserInfo)]
    assert sum(1 for nick in users if nick.lower() == "prize") == 1
