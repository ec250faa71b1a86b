"""Reference client library: connect, messages, users, accounts, keepalive, closing.

``reference_client.ChatClient`` against the in-process reference server (real
sockets), and against a scripted fake server where a real one cannot produce
the situation. Rooms, history and moderation: test_client_library_rooms.py;
reconnection: test_client_reconnect.py.

Spec pages: lifecycle, messaging, users, keepalive-and-flow, errors; the
library's contract: the client design brief (ChatError / HandshakeFailed /
ConnectionLost, events(), Disconnected).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from client_tools import (
    RELAXED,
    ClientMaker,
    FakePeer,
    FakeServer,
    Watched,
    check_refused,
    free_port,
    one_line,
    refused,
    room_messages,
    welcome_and_serve,
    without_barriers,
)
from conftest import AsyncResources, ClientFactory, MakeServer, RunningServer
from server_harness import HOST, describe_all, raw_frame

from chatproto import ErrorCode, Limits, encode
from chatproto.messages import (
    Error,
    Hello,
    Join,
    MemberLeft,
    Message,
    NickChanged,
    Notice,
    Ok,
    Ping,
    Pong,
    Presence,
    PrivateMessage,
    RoomMessage,
    UserInfo,
    Welcome,
)
from reference_client import (
    ChatClient,
    ChatError,
    ConnectionLost,
    Disconnected,
    HandshakeFailed,
    HistoryGapDetected,
)

pytestmark = pytest.mark.server_config(limits=RELAXED)


# ------------------------------------------------------------------ handshake


@pytest.mark.server_config(motd="Be nice.", limits={**RELAXED, "max_message_length": 1000,
                                                    "max_topic_length": 100})
async def test_connect_returns_welcome_limits_and_motd(server: RunningServer,
                                                       clients: ClientMaker) -> None:
    """CP-HS-1, CP-HS-2, CP-HS-4: connect() returns once WELCOME arrived; welcome, nick
    and limits are the server's; the MOTD NOTICE comes out of events()."""
    alice = await clients("alice", server.port)
    welcome = alice.client.welcome
    assert welcome is not None
    assert (welcome.version, welcome.nick, welcome.logged_in, welcome.casemapping) == (
        1, "alice", False, "ascii")
    assert alice.client.nick == "alice"
    assert alice.client.limits == server.limits
    assert alice.client.limits.max_message_length == 1000
    assert alice.client.rooms == {}
    assert alice.client.connected
    notice = await alice.expect_type(Notice)
    assert (notice.text, notice.request_id) == ("Be nice.", 0)


async def test_connect_keeps_the_spelling_of_the_nick(server: RunningServer,
                                                     clients: ClientMaker) -> None:
    """CP-HS-1, CP-NICK-3: a guest holds the nick as it spelled it."""
    alice = await clients("AlIce", server.port)
    assert alice.client.nick == "AlIce"
    users = await alice.client.list_users()
    assert [u.nick for u in users] == ["AlIce"]


async def test_connect_with_a_nick_in_use_raises_handshake_failed(
        server: RunningServer, clients: ClientMaker) -> None:
    """CP-NICK-10, CP-NICK-2: HELLO for a nick held by another connection (in any letter
    case) raises HandshakeFailed (a ChatError) NICK_IN_USE, request HELLO, one line."""
    await clients("alice", server.port)
    for nick in ("alice", "ALICE"):
        with pytest.raises(HandshakeFailed) as info:
            await ChatClient.connect(HOST, server.port, nick=nick)
        check_refused(info.value, ErrorCode.NICK_IN_USE, "HELLO")


async def test_connect_to_an_account(server: RunningServer, clients: ClientMaker) -> None:
    """CP-ACCT-5, CP-HS-1: a registered nick needs its password (NICK_REGISTERED without,
    AUTH_FAILED with a wrong one, both HandshakeFailed); the right password logs in, and
    WELCOME gives the stored spelling; a password for a nick without an account is
    AUTH_FAILED."""
    carol = await clients("carol", server.port)
    await carol.client.register("s3cret pass")
    await carol.client.quit()

    cases = [("carol", "wrong", ErrorCode.AUTH_FAILED),
             ("carol", "", ErrorCode.NICK_REGISTERED),
             ("CAROL", "S3CRET PASS", ErrorCode.AUTH_FAILED),
             ("dave", "anything", ErrorCode.AUTH_FAILED)]
    for nick, password, code in cases:
        with pytest.raises(HandshakeFailed) as info:
            await ChatClient.connect(HOST, server.port, nick=nick, password=password)
        check_refused(info.value, code, "HELLO")

    again = await clients("CAROL", server.port, password="s3cret pass")
    assert again.client.welcome is not None and again.client.welcome.logged_in
    assert again.client.nick == "carol"
    (me,) = await again.client.list_users()
    assert (me.nick, me.registered) == ("carol", True)


async def test_connect_with_an_invalid_nick_raises_chat_error(server: RunningServer) -> None:
    """CP-NICK-1: a nick outside the profile is refused as INVALID_NICK (checked locally or
    by the server): a ChatError, not a pydantic ValidationError."""
    for nick in ("9lives", "al ice", "x" * 33, "\u0430lice"):
        with pytest.raises(ChatError) as info:
            await ChatClient.connect(HOST, server.port, nick=nick)
        assert info.value.code == ErrorCode.INVALID_NICK, repr(info.value)
        assert one_line(str(info.value))


async def test_connection_refused_raises_connection_lost_with_one_line() -> None:
    """Brief: a closed port raises ConnectionLost (no OSError traceback), one line, fast."""
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ConnectionLost) as info:
        await ChatClient.connect(HOST, port, nick="alice", connect_timeout=5)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert one_line(message), repr(message)
    assert "refused" in message and str(port) in message, message


async def test_connect_timeout_covers_a_server_that_never_answers(
        async_resources: AsyncResources) -> None:
    """Brief: connect() gives up after connect_timeout when no WELCOME comes; it raises
    ConnectionLost with one line."""
    silent_peers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_peers.append(writer)  # read nothing, say nothing

    silent = await asyncio.start_server(accept, HOST, 0)

    async def stop() -> None:
        silent.close()
        for writer in silent_peers:
            writer.transport.abort()

    async_resources.on_teardown(stop)
    port = silent.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        async with asyncio.timeout(5):
            with pytest.raises(ConnectionLost) as info:
                await ChatClient.connect(HOST, port, nick="alice", connect_timeout=0.5)
    except TimeoutError:
        pytest.fail("connect() still waiting for WELCOME 5 s after a 0.5 s connect_timeout")
    assert time.monotonic() - started < 3
    assert one_line(str(info.value))


async def test_server_that_hangs_up_during_the_handshake_raises_connection_lost() -> None:
    """Brief: the connection ending before WELCOME raises ConnectionLost, one line."""

    async def hang_up(peer: FakePeer) -> None:
        await peer.receive_type(Hello)
        await peer.close()

    fake = await FakeServer(hang_up).start()
    try:
        with pytest.raises(ConnectionLost) as info:
            await ChatClient.connect(HOST, fake.port, nick="alice")
        assert one_line(str(info.value)), str(info.value)
    finally:
        await fake.close()


async def test_unsupported_version_raises_handshake_failed() -> None:
    """CP-HS-5: a fatal ERROR UNSUPPORTED_VERSION answering HELLO raises HandshakeFailed."""

    async def refuse(peer: FakePeer) -> None:
        hello = await peer.receive_type(Hello)
        assert (hello.min_version, hello.max_version) == (1, 1)
        peer.send(Error(request_id=hello.request_id, code=ErrorCode.UNSUPPORTED_VERSION,
                        fatal=True, detail="2-3"))
        await peer.close()

    fake = await FakeServer(refuse).start()
    try:
        with pytest.raises(HandshakeFailed) as info:
            await ChatClient.connect(HOST, fake.port, nick="alice")
        check_refused(info.value, ErrorCode.UNSUPPORTED_VERSION, "HELLO")
    finally:
        await fake.close()


# ------------------------------------------------------------------ messages


async def test_send_room_returns_ok_and_only_the_others_receive_it(
        server: RunningServer, clients: ClientMaker) -> None:
    """CP-MSG-1, CP-MSG-3, CP-MSG-7, CP-MSG-9: send_room returns the OK with the identity;
    the other member gets the ROOM_MESSAGE with the same identity from events(); the
    sender gets no echo and a non-member gets nothing."""
    alice, bob, carol = [await clients(n, server.port) for n in ("alice", "bob", "carol")]
    await alice.client.join("#room")
    await bob.client.join("#room")
    before = int(time.time() * 1000)
    ok = await alice.client.send_room("#room", "hello all")
    assert isinstance(ok, Ok)
    assert ok.msg_id != 0 and ok.seq == 1
    assert before - 1000 <= ok.timestamp_ms <= int(time.time() * 1000) + 1000
    message = await bob.expect_type(RoomMessage)
    assert (message.request_id, message.room, message.seq, message.msg_id,
            message.timestamp_ms, message.sender, message.history, message.text) == (
        0, "#room", 1, ok.msg_id, ok.timestamp_ms, "alice", False, "hello all")
    assert message.client_msg_id != 0  # CP-MSG-12: a client_msg_id by default
    assert room_messages(await alice.barrier()) == []
    assert room_messages(await carol.barrier()) == []
    assert room_messages(await bob.barrier()) == []


async def test_send_room_gives_each_message_its_own_client_msg_id(
        server: RunningServer, clients: ClientMaker) -> None:
    """CP-MSG-12: without client_msg_id, every message gets a new nonzero one (also across
    two clients of the same nick); a given client_msg_id is sent as is."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await alice.client.join("#room")
    await bob.client.join("#room")
    for n in range(5):
        await alice.client.send_room("#room", f"m{n}")
    await alice.client.send_room("#room", "mine", client_msg_id=4242)
    await alice.client.quit()
    alice2 = await clients("alice", server.port)
    await alice2.client.join("#room")
    await alice2.client.send_room("#room", "again")
    got = [await bob.expect_type(RoomMessage) for _ in range(7)]
    assert [m.text for m in got] == ["m0", "m1", "m2", "m3", "m4", "mine", "again"]
    ids = [m.client_msg_id for m in got]
    assert ids[5] == 4242
    assert 0 not in ids and len(set(ids)) == 7, ids


async def test_send_room_resend_with_the_same_client_msg_id_is_not_delivered_twice(
        server: RunningServer, clients: ClientMaker) -> None:
    """CP-MSG-11: a resend with the same client_msg_id returns the first OK's identity
    and the others receive the message once."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await alice.client.join("#room")
    await bob.client.join("#room")
    first = await alice.client.send_room("#room", "deploying now", client_msg_id=77)
    second = await alice.client.send_room("#room", "deploying now", client_msg_id=77)
    assert (second.msg_id, second.seq, second.timestamp_ms) == (
        first.msg_id, first.seq, first.timestamp_ms)
    assert [m.seq for m in room_messages(await bob.barrier())] == [first.seq]


async def test_own_messages_advance_last_seq_without_a_gap(server: RunningServer,
                                                           clients: ClientMaker) -> None:
    """CP-MSG-8, CP-MSG-10: with no echo, the sender counts its own OK's seq as seen:
    messages of alice and bob, interleaved, give neither a HistoryGapDetected."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await alice.client.join("#room")
    await bob.client.join("#room")
    for n in range(3):
        ok = await alice.client.send_room("#room", f"a{n}")
        assert (await bob.expect_type(RoomMessage)).seq == ok.seq
        ok = await bob.client.send_room("#room", f"b{n}")
        assert (await alice.expect_type(RoomMessage)).seq == ok.seq
    assert alice.client.rooms["#room"].last_seq == 6
    assert bob.client.rooms["#room"].last_seq == 6
    await alice.barrier()
    await bob.barrier()
    assert alice.of_type(HistoryGapDetected) == [] and bob.of_type(HistoryGapDetected) == []


@pytest.mark.server_config(limits={**RELAXED, "max_message_length": 50})
async def test_send_room_refusals_raise_chat_error(server: RunningServer,
                                                  clients: ClientMaker) -> None:
    """CP-ROOM-7, CP-ROOM-8, CP-MSG-2, CP-FIELD-3: NO_SUCH_ROOM, NOT_IN_ROOM,
    MESSAGE_TOO_LONG (advertised max_message_length) and INVALID_FIELD (empty text) are
    ChatErrors with the code, locally or from the server; the connection goes on."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await bob.client.join("#room")
    await alice.client.join("#mine")
    await refused(alice.client.send_room("#nowhere", "hi"), ErrorCode.NO_SUCH_ROOM,
                  "SEND_ROOM")
    await refused(alice.client.send_room("#room", "hi"), ErrorCode.NOT_IN_ROOM, "SEND_ROOM")
    await refused(alice.client.send_room("#mine", "x" * 51), ErrorCode.MESSAGE_TOO_LONG,
                  "SEND_ROOM")
    await refused(alice.client.send_room("#mine", "\u00e9" * 26), ErrorCode.MESSAGE_TOO_LONG,
                  "SEND_ROOM")  # 52 bytes of UTF-8
    await refused(alice.client.send_room("#mine", ""), ErrorCode.INVALID_FIELD, "SEND_ROOM")
    ok = await alice.client.send_room("#mine", "x" * 50)
    assert ok.seq == 1
    assert (await alice.client.ping(b"still here")).token == b"still here"
    assert room_messages(await bob.barrier()) == []


async def test_send_private_reaches_only_the_addressee(server: RunningServer,
                                                      clients: ClientMaker) -> None:
    """CP-MSG-4: OK with msg_id, seq 0 and a timestamp; the addressee (by any letter
    case) gets the PRIVATE_MESSAGE with the same identity; nobody else gets anything."""
    alice, bob, carol = [await clients(n, server.port) for n in ("alice", "bob", "carol")]
    ok = await alice.client.send_private("BOB", "psst", client_msg_id=9)
    assert ok.msg_id != 0 and ok.seq == 0 and ok.timestamp_ms > 0
    message = await bob.expect_type(PrivateMessage)
    assert (message.request_id, message.msg_id, message.timestamp_ms, message.sender,
            message.client_msg_id, message.text) == (
        0, ok.msg_id, ok.timestamp_ms, "alice", 9, "psst")
    assert without_barriers(await alice.barrier()) == []
    assert without_barriers(await carol.barrier()) == []


async def test_send_private_to_an_absent_nick_is_no_such_nick(server: RunningServer,
                                                             clients: ClientMaker) -> None:
    """CP-MSG-5, CP-NICK-1: NO_SUCH_NICK for a nick nobody holds; INVALID_NICK for a
    nick outside the profile."""
    alice = await clients("alice", server.port)
    await refused(alice.client.send_private("ghost", "hello?"), ErrorCode.NO_SUCH_NICK,
                  "SEND_PRIVATE")
    await refused(alice.client.send_private("no way", "hello?"), ErrorCode.INVALID_NICK,
                  "SEND_PRIVATE")


# --------------------------------------------------------------- ping, requests


async def test_ping_returns_the_pong_with_the_token(server: RunningServer,
                                                   clients: ClientMaker) -> None:
    """CP-KEEP-1: ping() returns the PONG, which carries the token."""
    alice = await clients("alice", server.port)
    pong = await alice.client.ping(b"\x00\x01token")
    assert isinstance(pong, Pong) and pong.token == b"\x00\x01token"
    assert (await alice.client.ping()).token == b""


async def test_concurrent_requests_each_get_their_own_answer(server: RunningServer,
                                                             clients: ClientMaker) -> None:
    """CP-REQ-1, CP-REQ-5, CP-REQ-9: many requests in flight at once; each awaitable gets
    the answer to its own request (tokens, list contents, seqs)."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await alice.client.join("#room")
    await bob.client.join("#room")
    tokens = [f"t{n}".encode() for n in range(20)]
    pings = [alice.client.ping(token) for token in tokens]
    sends = [alice.client.send_room("#room", f"m{n}") for n in range(10)]
    results = await asyncio.gather(*pings, alice.client.list_users(), *sends,
                                   alice.client.list_members("#room"))
    assert [p.token for p in results[:20] if isinstance(p, Pong)] == tokens
    users = results[20]
    assert isinstance(users, list) and {u.nick for u in users} == {"alice", "bob"}
    oks = results[21:31]
    assert sorted(ok.seq for ok in oks if isinstance(ok, Ok)) == list(range(1, 11))
    messages = [await bob.expect_type(RoomMessage) for _ in range(10)]
    by_text = {m.text: m.seq for m in messages}
    for n, ok in enumerate(oks):
        assert isinstance(ok, Ok) and by_text[f"m{n}"] == ok.seq


@pytest.mark.server_config(limits={**RELAXED, "msg_rate_burst": 2,
                                   "msg_rate_interval_ms": 60_000})
async def test_rate_limited_is_raised_with_retry_after_and_not_retried(
        server: RunningServer, clients: ClientMaker) -> None:
    """CP-RATE-2, CP-RATE-3, brief: the third message in a burst of 2 raises ChatError
    RATE_LIMITED with retry_after_ms > 0, at once (no silent retry); the connection
    stays up."""
    alice = await clients("alice", server.port)
    await alice.client.join("#room")
    await alice.client.send_room("#room", "one")
    await alice.client.send_room("#room", "two")
    started = time.monotonic()
    error = await refused(alice.client.send_room("#room", "three"), ErrorCode.RATE_LIMITED,
                          "SEND_ROOM")
    assert time.monotonic() - started < 2
    assert 0 < error.retry_after_ms <= 60_000
    assert str(error.retry_after_ms) in str(error)
    await refused(alice.client.send_private("alice", "four"), ErrorCode.RATE_LIMITED,
                  "SEND_PRIVATE")
    assert (await alice.client.ping(b"ok")).token == b"ok"
    assert alice.client.connected and alice.disconnected == []


# ------------------------------------------------------------- users, accounts


@pytest.mark.server_config(operators={"root": "rootpw"}, limits=RELAXED)
async def test_list_users_shows_every_user_with_flags(server: RunningServer,
                                                     clients: ClientMaker) -> None:
    """CP-USER-1, CP-USER-2: one UserInfo per user, the requester included, with away,
    away_message, operator and registered."""
    alice, bob, root = [await clients(n, server.port) for n in ("alice", "bob", "root")]
    await alice.client.register("pw")
    await bob.client.away("lunch")
    await root.client.oper("root", "rootpw")
    users = {u.nick: u for u in await alice.client.list_users()}
    assert set(users) == {"alice", "bob", "root"}
    assert all(isinstance(u, UserInfo) for u in users.values())
    assert (users["alice"].registered, users["alice"].away, users["alice"].operator) == (
        True, False, False)
    assert (users["bob"].away, users["bob"].away_message, users["bob"].registered) == (
        True, "lunch", False)
    assert users["root"].operator


async def test_away_sends_presence_to_those_sharing_a_room(server: RunningServer,
                                                          clients: ClientMaker) -> None:
    """CP-USER-3: away(msg) -> bob, who shares a room, gets PRESENCE away; carol, who
    does not, gets nothing; away() with no message -> PRESENCE present again."""
    alice, bob, carol = [await clients(n, server.port) for n in ("alice", "bob", "carol")]
    await alice.client.join("#room")
    await bob.client.join("#room")
    await carol.client.join("#other")
    assert isinstance(await alice.client.away("lunch"), Ok)
    presence = await bob.expect_type(Presence)
    assert (presence.nick, presence.away, presence.away_message) == ("alice", True, "lunch")
    await alice.client.away()
    presence = await bob.expect_type(Presence)
    assert (presence.nick, presence.away, presence.away_message) == ("alice", False, "")
    assert [e for e in await carol.barrier() if isinstance(e, Presence)] == []
    assert [e for e in await alice.barrier() if isinstance(e, Presence)] == []


async def test_change_nick(server: RunningServer, clients: ClientMaker) -> None:
    """CP-NICK-7, CP-NICK-9: change_nick() -> client.nick is the new nick, bob (sharing a
    room) gets one NICK_CHANGED and his member list follows; a case change is a change."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    for room in ("#one", "#two"):
        await alice.client.join(room)
        await bob.client.join(room)
    assert isinstance(await alice.client.change_nick("alicia"), Ok)
    assert alice.client.nick == "alicia"
    changed = await bob.expect_type(NickChanged)
    assert (changed.old_nick, changed.new_nick) == ("alice", "alicia")
    assert [e for e in await bob.barrier() if isinstance(e, NickChanged)] == []
    assert bob.client.rooms["#one"].members == {"alicia", "bob"}
    assert alice.client.rooms["#two"].members == {"alicia", "bob"}
    await alice.client.change_nick("Alicia")
    assert alice.client.nick == "Alicia"
    changed = await bob.expect_type(NickChanged)
    assert (changed.old_nick, changed.new_nick) == ("alicia", "Alicia")
    assert [u.nick for u in await bob.client.list_members("#one")].count("Alicia") == 1


async def test_change_nick_refusals(server: RunningServer, clients: ClientMaker) -> None:
    """CP-NICK-10, CP-NICK-8, CP-NICK-1: NICK_IN_USE, NICK_REGISTERED, INVALID_NICK; the
    nick stays as it was."""
    carol = await clients("carol", server.port)
    await carol.client.register("pw")
    alice, _bob = await clients("alice", server.port), await clients("bob", server.port)
    await refused(alice.client.change_nick("BOB"), ErrorCode.NICK_IN_USE, "NICK")
    await carol.client.quit()
    await refused(alice.client.change_nick("Carol"), ErrorCode.NICK_REGISTERED, "NICK")
    await refused(alice.client.change_nick("-dash"), ErrorCode.INVALID_NICK, "NICK")
    assert alice.client.nick == "alice"
    assert [u.nick for u in await alice.client.list_users()].count("alice") == 1


async def test_register(server: RunningServer, clients: ClientMaker) -> None:
    """CP-ACCT-1, CP-ACCT-2, CP-ACCT-3, CP-ACCT-4: register() logs the connection in; a
    second one is ALREADY_REGISTERED; an empty password is INVALID_FIELD; the account
    takes logins from later connections."""
    alice = await clients("alice", server.port)
    await refused(alice.client.register(""), ErrorCode.INVALID_FIELD, "REGISTER")
    assert isinstance(await alice.client.register("pw one"), Ok)
    (me,) = await alice.client.list_users()
    assert me.registered
    await refused(alice.client.register("pw two"), ErrorCode.ALREADY_REGISTERED, "REGISTER")
    await alice.client.quit()
    again = await clients("alice", server.port, password="pw one")
    assert again.client.welcome is not None and again.client.welcome.logged_in


async def test_login_switches_a_guest_to_the_account(server: RunningServer,
                                                    clients: ClientMaker) -> None:
    """CP-ACCT-6, CP-ACCT-7, CP-NICK-9: login() with a wrong password or an unknown nick
    is AUTH_FAILED; the right one makes the guest hold the account's nick (client.nick),
    registered, and bob, sharing a room, gets NICK_CHANGED."""
    alice = await clients("alice", server.port)
    await alice.client.register("pw")
    await alice.client.quit()
    guest, bob = await clients("guest1", server.port), await clients("bob", server.port)
    await guest.client.join("#room")
    await bob.client.join("#room")
    await refused(guest.client.login("alice", "PW"), ErrorCode.AUTH_FAILED, "LOGIN")
    await refused(guest.client.login("nobody", "pw"), ErrorCode.AUTH_FAILED, "LOGIN")
    assert guest.client.nick == "guest1"
    assert isinstance(await guest.client.login("alice", "pw"), Ok)
    assert guest.client.nick == "alice"
    changed = await bob.expect_type(NickChanged)
    assert (changed.old_nick, changed.new_nick) == ("guest1", "alice")
    users = {u.nick: u for u in await bob.client.list_users()}
    assert users["alice"].registered and "guest1" not in users
    assert guest.client.rooms["#room"].members == {"alice", "bob"}


async def test_login_with_other_letter_case_takes_the_stored_spelling(
        server: RunningServer, clients: ClientMaker) -> None:
    """CP-ACCT-6, CP-NICK-3: after login("ALICE", pw) the connection holds "alice", the
    spelling stored with the account, and client.nick says so."""
    alice = await clients("alice", server.port)
    await alice.client.register("pw")
    await alice.client.quit()
    guest = await clients("guest1", server.port)
    await guest.client.login("ALICE", "pw")
    assert [u.nick for u in await guest.client.list_users()] == ["alice"]
    assert guest.client.nick == "alice"


# ------------------------------------------------------------------ keepalive


@pytest.mark.slow
@pytest.mark.server_config(limits={**RELAXED, "keepalive_interval_s": 1, "idle_timeout_s": 3})
async def test_server_pings_are_answered_so_a_silent_client_stays_connected(
        server: RunningServer, clients: ClientMaker, client_factory: ClientFactory) -> None:
    """CP-KEEP-1, CP-KEEP-4, CP-KEEP-5: the library answers the server's PINGs by itself.
    Two control connections that do not answer PINGs are closed with IDLE_TIMEOUT one
    after the other (each after at least 3 s of silence); alice, who sends nothing of
    her own all that time (over 6 s), is still connected."""
    alice = await clients("alice", server.port)
    started = time.monotonic()
    for name in ("control1", "control2"):
        control = await client_factory(name, auto_pong=False)
        events = await control.read_until_closed(timeout=10)
        last = events[-1] if events else None
        assert isinstance(last, Error) and last.code == ErrorCode.IDLE_TIMEOUT, \
            describe_all(events)
        assert control.pings_received >= 1
    assert time.monotonic() - started > 4
    assert alice.client.connected and alice.disconnected == [], alice.log
    assert not alice.ended.is_set()
    assert (await alice.client.ping(b"alive")).token == b"alive"
    users = [u.nick for u in await alice.client.list_users()]
    assert users == ["alice"]


async def test_a_server_ping_is_answered_with_pong_and_request_id_0() -> None:
    """CP-KEEP-1: PONG with the same token and request_id 0; the PING is not an error."""
    got: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    async def script(peer: FakePeer) -> None:
        await peer.welcome()
        peer.send(Ping(request_id=0, token=b"\x00\x00\x00\x17"))
        got.set_result(await peer.receive())
        await peer.serve()

    fake = await FakeServer(script).start()
    alice = Watched(await ChatClient.connect(HOST, fake.port, nick="alice"))
    try:
        async with asyncio.timeout(5):
            pong = await got
        assert isinstance(pong, Pong)
        assert (pong.request_id, pong.token) == (0, b"\x00\x00\x00\x17")
        assert (await alice.client.ping(b"x")).token == b"x"
        assert alice.disconnected == []
    finally:
        await alice.close()
        await fake.close()


async def test_unknown_message_types_from_the_server_are_ignored() -> None:
    """CP-EXT-3: a frame of a type the client does not know is skipped; what follows is
    delivered and the connection goes on."""
    async def script(peer: FakePeer) -> None:
        await peer.welcome()
        peer.send_raw(raw_frame(0x7F01, 0, b"future stuff") + raw_frame(0x0999, 0))
        peer.send(Notice(text="after"))
        await peer.serve()

    fake = await FakeServer(script).start()
    alice = Watched(await ChatClient.connect(HOST, fake.port, nick="alice"))
    try:
        assert (await alice.expect_type(Notice)).text == "after"
        assert (await alice.client.ping(b"x")).token == b"x"
        assert alice.disconnected == []
    finally:
        await alice.close()
        await fake.close()


# --------------------------------------------------------------------- closing


async def test_quit_says_goodbye_and_ends_events(server: RunningServer,
                                                clients: ClientMaker) -> None:
    """CP-CLOSE-1, CP-CLOSE-3, CP-NICK-6: quit(reason) -> the others get MEMBER_LEFT QUIT
    with the reason; events() ends (with Disconnected); later requests raise
    ConnectionLost; the nick is free again."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await alice.client.join("#room")
    await bob.client.join("#room")
    await alice.client.quit("time for lunch")
    left = await bob.expect_type(MemberLeft)
    assert (left.room, left.nick, left.kind, left.reason, left.by) == (
        "#room", "alice", 1, "time for lunch", "")
    await alice.wait_ended()
    assert isinstance(alice.log[-1], Disconnected), alice.log
    assert not alice.client.connected
    with pytest.raises(ConnectionLost) as info:
        await alice.client.send_room("#room", "too late")
    assert one_line(str(info.value))
    await alice.client.close()  # harmless after quit
    again = await clients("alice", server.port)
    assert again.client.nick == "alice"


async def test_close_is_abrupt_and_idempotent(server: RunningServer,
                                             clients: ClientMaker) -> None:
    """CP-CLOSE-9: close() drops the connection: the others get MEMBER_LEFT DISCONNECT;
    events() ends with Disconnected; a second close() is harmless; requests raise
    ConnectionLost."""
    alice, bob = await clients("alice", server.port), await clients("bob", server.port)
    await alice.client.join("#room")
    await bob.client.join("#room")
    await alice.client.close()
    await alice.client.close()
    left = await bob.expect_type(MemberLeft)
    assert (left.nick, left.kind) == ("alice", 4)
    await alice.wait_ended()
    assert [type(e) for e in alice.log].count(Disconnected) == 1
    assert isinstance(alice.log[-1], Disconnected)
    with pytest.raises(ConnectionLost):
        await alice.client.ping()


async def test_server_shutdown_ends_events_with_disconnected(make_server: MakeServer,
                                                            clients: ClientMaker) -> None:
    """CP-CLOSE-7: on SERVER_SHUTDOWN (reconnect off) events() ends with one Disconnected
    carrying the code and a one-line reason; requests afterwards raise ConnectionLost."""
    chat = await make_server()
    alice = await clients("alice", chat.port)
    await alice.client.join("#room")
    await chat.shutdown()
    await alice.wait_ended(timeout=10)
    disconnected = alice.disconnected
    assert len(disconnected) == 1 and alice.log[-1] is disconnected[0], alice.log
    assert disconnected[0].code == ErrorCode.SERVER_SHUTDOWN
    assert one_line(disconnected[0].reason), disconnected[0].reason
    errors = [e for e in alice.log if isinstance(e, Error)]  # the notice, if shown
    assert all((e.code, e.request_id, e.fatal) == (ErrorCode.SERVER_SHUTDOWN, 0, True)
               for e in errors), alice.log
    with pytest.raises(ConnectionLost) as info:
        await alice.client.ping()
    assert one_line(str(info.value))


async def test_a_pending_request_fails_with_connection_lost_when_the_connection_drops(
        ) -> None:
    """Brief: a request in flight when the connection ends raises ConnectionLost (one
    line); events() ends with Disconnected (reconnect off)."""

    async def script(peer: FakePeer) -> None:
        await peer.welcome()
        await peer.serve({Join: lambda request: None})  # JOIN: drop the connection

    fake = await FakeServer(script).start()
    alice = Watched(await ChatClient.connect(HOST, fake.port, nick="alice"))
    try:
        with pytest.raises(ConnectionLost) as info:
            async with asyncio.timeout(5):
                await alice.client.join("#room")
        assert one_line(str(info.value)), str(info.value)
        await alice.wait_ended()
        assert isinstance(alice.log[-1], Disconnected)
        assert alice.client.rooms == {}
    finally:
        await alice.close()
        await fake.close()


async def test_fake_server_sanity() -> None:
    """The fake server's default answers work with the library (guards the other tests)."""
    fake = await FakeServer(welcome_and_serve, limits=Limits()).start()
    alice = Watched(await ChatClient.connect(HOST, fake.port, nick="alice"))
    try:
        result = await alice.client.join("#room")
        assert result.info.room == "#room"
        assert await alice.barrier() == []
        await alice.client.quit()
        await alice.wait_ended()
    finally:
        await alice.close()
        await fake.close()


# ------------------------------------------------------- a server that errs


async def receive_then_eof(peer: FakePeer) -> tuple[Message, bool]:
    """The client's next frame, then whether it closes the connection within 3 s."""
    first = await peer.receive()
    try:
        await peer.wait_eof(timeout=3)
    except TimeoutError:
        return first, False
    return first, True


def future_welcome(hello: Hello, version: int) -> bytes:
    return encode(Welcome(request_id=hello.request_id, version=version,
                          server_name="odd/9", nick=hello.nick, logged_in=False,
                          casemapping="ascii", capabilities=(), **Limits().model_dump()))


async def test_a_welcome_with_a_version_not_offered_is_refused() -> None:
    """CP-HS-7, CP-CLOSE-4: WELCOME with version 2 to a client that offered 1-1: the client
    sends a fatal ERROR UNSUPPORTED_VERSION (request_id 0) and closes the connection;
    connect() raises ConnectionLost or HandshakeFailed, one line."""
    seen: asyncio.Future[tuple[Message, bool]] = asyncio.get_running_loop().create_future()

    async def script(peer: FakePeer) -> None:
        hello = await peer.receive_type(Hello)
        peer.send_raw(future_welcome(hello, 2))
        seen.set_result(await receive_then_eof(peer))

    fake = await FakeServer(script).start()
    try:
        with pytest.raises((ConnectionLost, HandshakeFailed)) as info:
            await ChatClient.connect(HOST, fake.port, nick="alice")
        assert one_line(str(info.value)), str(info.value)
        async with asyncio.timeout(10):
            error, closed = await seen
        assert isinstance(error, Error), error
        assert (error.code, error.fatal, error.request_id) == (
            ErrorCode.UNSUPPORTED_VERSION, True, 0)
        assert closed, "the client did not close the connection after its fatal ERROR"
    finally:
        await fake.close()


async def test_a_message_the_state_does_not_allow_makes_the_client_hang_up() -> None:
    """CP-STATE-5, CP-ERR-9, CP-CLOSE-5: a second WELCOME in READY is a protocol violation
    by the server: the client sends at most a fatal ERROR STATE_VIOLATION with request_id
    0, closes the connection, and events() ends with Disconnected."""
    seen: asyncio.Future[tuple[Message, bool]] = asyncio.get_running_loop().create_future()

    async def script(peer: FakePeer) -> None:
        hello = await peer.welcome()
        await peer.receive_type(Ping)
        peer.send_raw(future_welcome(hello, 1))
        seen.set_result(await receive_then_eof(peer))

    fake = await FakeServer(script).start()
    alice = Watched(await ChatClient.connect(HOST, fake.port, nick="alice"))
    try:
        with pytest.raises(ConnectionLost):
            await alice.client.ping()
        await alice.wait_ended()
        assert isinstance(alice.log[-1], Disconnected) and one_line(alice.log[-1].reason)
        async with asyncio.timeout(10):
            error, closed = await seen
        assert isinstance(error, Error), error
        assert (error.code, error.fatal, error.request_id) == (
            ErrorCode.STATE_VIOLATION, True, 0), error
        assert closed
    finally:
        await alice.close()
        await fake.close()


async def test_close_leaves_no_task_behind(server: RunningServer) -> None:
    """Brief (close, quit): once a client is closed, none of its tasks is left running."""
    before = asyncio.all_tasks()
    alice = await ChatClient.connect(HOST, server.port, nick="alice")
    bob = await ChatClient.connect(HOST, server.port, nick="bob")
    await alice.join("#room")
    await bob.join("#room")
    await alice.quit()
    await bob.close()
    for _ in range(3):  # let cancelled tasks run their last step
        await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert left == [], left
