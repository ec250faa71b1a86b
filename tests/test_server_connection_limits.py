"""Connection limits of the reference server (issue 11, defect 4).

The handshake timeout (CP-HS-11), the caps on connections in all and per
address with their refusal ERROR TOO_MANY_CONNECTIONS (CP-SEC-12), over plain
TCP and TLS, and the behaviour at the process's file-descriptor limit, in a
server process started with a low RLIMIT_NOFILE.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import textwrap
import time
from typing import Any

import pytest
import trustme
from conftest import ClientFactory, MakeServer, MakeServerProcess, RunningServer
from server_harness import HOST, ChatTestClient, HarnessError, HelloRefused, ServerProcess

from chatproto import HANDSHAKE_FLOOR_S, ErrorCode, Limits, State
from chatproto.messages import Error, Hello, Join, Ok, Ping, Pong, Register
from reference_server.server import REFUSAL_RETRY_AFTER_MS, ConnectionSlots, connection_caps

SECOND_ADDRESS = "127.0.0.2"
"""Another loopback address (Linux routes all of 127/8 to lo): a second client host."""


async def _refusal(client: ChatTestClient, timeout: float = 5.0) -> Error:
    """The one frame a refused connection gets, after which the server closes it."""
    events = await client.read_until_closed(timeout)
    assert len(events) == 1, events
    error = events[0]
    assert isinstance(error, Error), events
    return error


def _check_too_many(error: Error, cap: str) -> None:
    assert error.code == ErrorCode.TOO_MANY_CONNECTIONS
    assert error.fatal and error.request_id == 0
    assert error.retry_after_ms == REFUSAL_RETRY_AFTER_MS
    assert error.detail == f"{cap} reached"


async def _welcomed_soon(client_factory: ClientFactory, server: RunningServer | ServerProcess,
                         nick: str, timeout: float = 5.0, **options: Any) -> ChatTestClient:
    """A client welcomed as ``nick`` once a place is free: each refused try is answered at
    once, so this waits on the server's answers, retrying until ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        client = await client_factory(server=server, **options)
        try:
            await client.hello(nick)
            return client
        except HarnessError:
            if loop.time() > deadline:
                raise
            await client.close()


# ------------------------------------------------------------ handshake timeout


@pytest.mark.server_config(hello_timeout_s=0.5)
async def test_connection_without_hello_is_closed_after_hello_timeout(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-HS-11: nothing sent for hello_timeout_s: ERROR IDLE_TIMEOUT, fatal, then close;
    a connection welcomed in time is still served after the deadline has passed."""
    silent = await client_factory()
    chatty = await client_factory("alice")
    started = asyncio.get_running_loop().time()
    error = await _refusal(silent)
    took = asyncio.get_running_loop().time() - started
    assert (error.code, error.fatal, error.request_id) == (ErrorCode.IDLE_TIMEOUT, True, 0)
    assert error.detail == "no handshake within 0.5 s"
    assert 0.3 < took < 3.0
    answer = await chatty.ok(Ping(token=b"still here"))
    assert isinstance(answer[-1], Pong)


@pytest.mark.slow
@pytest.mark.server_config(limits=Limits(keepalive_interval_s=1, idle_timeout_s=2))
async def test_no_connection_is_closed_for_silence_within_the_handshake_floor(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-HS-12 (issue 14 A7): with idle_timeout_s 2, a connection that sends nothing is
    still open 4 s after it was accepted (the floor is HANDSHAKE_FLOOR_S, 5 s), is then
    closed with IDLE_TIMEOUT, and one that says HELLO within the floor is welcomed."""
    silent, late = await client_factory(), await client_factory()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(silent.expect(Error), timeout=HANDSHAKE_FLOOR_S - 1)
    assert not silent.closed
    assert (await late.hello("latecomer")).nick == "latecomer"
    error = await _refusal(silent)
    assert error.code == ErrorCode.IDLE_TIMEOUT
    assert loop.time() - started >= HANDSHAKE_FLOOR_S - 0.1


@pytest.mark.server_config(hello_timeout_s=0.6)
async def test_failed_hellos_do_not_restart_the_hello_timeout(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-HS-11: the timeout counts from the connection, not from the last HELLO: a client
    whose HELLOs keep failing is closed at the deadline all the same."""
    holder = await client_factory("alice")
    retrying = await client_factory()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    refused = 0
    # Until the fatal ERROR has closed the client's side (no await between the check
    # and the HELLO going out, so none is sent after it).
    while retrying.conn.state is not State.CLOSED and loop.time() < deadline:
        try:
            await retrying.hello("alice", timeout=1.0)  # NICK_IN_USE, again and again
        except HarnessError:
            refused += 1
    await retrying.wait_closed()
    assert refused >= 2
    assert any(isinstance(e, Error) and e.code == ErrorCode.IDLE_TIMEOUT
               for e in retrying.drain())
    assert not holder.closed


def test_hello_timeout_is_a_flag_with_its_default_in_help() -> None:
    from reference_server.config import build_parser, load_config

    assert load_config(["--hello-timeout-s", "2.5"]).hello_timeout_s == 2.5
    assert load_config([]).hello_timeout_s == 10.0
    text = " ".join(build_parser().format_help().split())
    assert "--hello-timeout-s SECONDS" in text and "(default 10.0)" in text


# ------------------------------------------------------------ connection caps


@pytest.mark.server_config(max_connections_per_address=3)
async def test_connections_over_the_per_address_cap_are_refused(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-SEC-12: a fourth connection from one address gets one fatal ERROR
    TOO_MANY_CONNECTIONS (request_id 0, retry_after_ms) and is closed; another address
    still gets in; when one of the three leaves, the address gets in again."""
    clients = [await client_factory(f"u{i}") for i in range(3)]
    refused = await client_factory()
    _check_too_many(await _refusal(refused), "max_connections_per_address")
    other = await client_factory("elsewhere", source_host=SECOND_ADDRESS)
    assert other.welcome is not None
    await clients[0].quit()
    again = await _welcomed_soon(client_factory, server, "again")
    assert again.welcome is not None
    assert server.server.connection_slots.by_address == {HOST: 3, SECOND_ADDRESS: 1}


@pytest.mark.server_config(max_connections=2)
async def test_connections_over_the_total_cap_are_refused(
        server: RunningServer, client_factory: ClientFactory) -> None:
    """CP-SEC-12: max_connections counts every address; the refused connection sent HELLO
    at once, and still reads its ERROR (the server drains input rather than reset)."""
    await client_factory("a")
    await client_factory("b", source_host=SECOND_ADDRESS)
    late = await client_factory(source_host=SECOND_ADDRESS)
    await late.send(Hello(min_version=1, max_version=1, nick="late", client_name="t"))
    error = await _refusal(late)
    _check_too_many(error, "max_connections")
    assert server.server.connection_slots.open == 2


@pytest.mark.server_config(max_connections_per_address=2)
async def test_refusals_are_logged_at_most_once_per_interval(
        server: RunningServer, client_factory: ClientFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    """Twenty refused connections write one log line, not twenty."""
    caplog.set_level(logging.INFO, logger="chatproto.server")
    await client_factory("a")
    await client_factory("b")
    for _ in range(20):
        _check_too_many(await _refusal(await client_factory()), "max_connections_per_address")
    lines = [r.getMessage() for r in caplog.records if "refused connection" in r.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0] == f"refused connection peer={HOST}: max_connections_per_address reached " \
                       "(2 open)"
    assert not [r for r in caplog.records if r.exc_info]


async def test_refusal_over_tls_is_sent_inside_tls(
        make_server: MakeServer, client_factory: ClientFactory,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """CP-SEC-12, CP-SEC-1: over TLS the refusal comes after the TLS handshake, inside it."""
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    issued = ca.issue_cert(HOST)
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    server = await make_server(tls_cert=cert, tls_key=key, max_connections_per_address=1)
    first = await client_factory("first", server=server, tls=context)
    refused = await client_factory(server=server, tls=context)
    assert refused.ssl_object is not None
    _check_too_many(await _refusal(refused), "max_connections_per_address")
    await first.quit()
    second = await _welcomed_soon(client_factory, server, "second", tls=context)
    assert second.ssl_object is not None


def test_the_cap_stays_below_the_file_descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """max_connections is lowered so that, at the cap, accept() still finds a descriptor to
    send the refusal with."""
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    cap, room, limit = connection_caps(10_000)
    assert limit == 1024 and cap + room <= 1024 - 64 and cap > 800
    assert connection_caps(100)[0] == 100
    slots = ConnectionSlots(cap=2, per_address=1, refusal_room=1)
    first = slots.take("a")
    assert not isinstance(first, str)
    assert slots.take("a") == "max_connections_per_address"
    assert not isinstance(slots.take("b"), str)
    assert slots.take("c") == "max_connections"
    first.release()
    first.release()  # idempotent: a handshake failure and connection_lost may both call it
    assert slots.open == 1 and slots.by_address == {"b": 1}


# ------------------------------------------------- at the file-descriptor limit

_FD_LIMIT = 128

_LOW_FD_SERVER = textwrap.dedent("""
    import os, resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range({held})]
    from reference_server.__main__ import main
    sys.exit(main(sys.argv[1:]))
""")


def _low_fd_entry(held: int = 0) -> tuple[str, str]:
    """A server process with RLIMIT_NOFILE at _FD_LIMIT and ``held`` descriptors taken
    before it starts (which its cap cannot know of: the way to reach EMFILE itself)."""
    return ("-c", _LOW_FD_SERVER.format(limit=_FD_LIMIT, held=held))


async def _crowd(port: int, count: int) -> tuple[list[ChatTestClient], list[ChatTestClient]]:
    """``count`` connections that each send HELLO: (welcomed, refused). A refused one got
    ERROR TOO_MANY_CONNECTIONS or was closed without a frame; none is left waiting."""
    async def one(i: int) -> tuple[ChatTestClient, bool]:
        client = ChatTestClient(port, name=f"c{i}")
        try:
            await client.connect()
        except OSError:  # refused by the kernel's backlog: also not left waiting
            return client, False
        try:
            await client.hello(f"c{i}", timeout=10.0)
            return client, True
        except HarnessError:
            await client.wait_closed(10.0)
            errors = [e for e in client.drain() if isinstance(e, Error)]
            assert all(e.code == ErrorCode.TOO_MANY_CONNECTIONS for e in errors), errors
            return client, False

    results = await asyncio.gather(*(one(i) for i in range(count)))
    return [c for c, ok in results if ok], [c for c, ok in results if not ok]


async def _close_all(clients: list[ChatTestClient]) -> None:
    await asyncio.gather(*(client.close() for client in clients))


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
async def test_at_a_low_descriptor_limit_the_cap_refuses_cleanly_and_recovers(
        make_server_process: MakeServerProcess, event_loop: str) -> None:
    """RLIMIT_NOFILE 128: the cap becomes 128 - 64 - 8 = 56; of 100 connections, 56 are
    welcomed and the others refused at once; the server logs a bounded number of lines,
    stays up, and welcomes again once the others have closed."""
    process = make_server_process("--log-level", "WARNING", "--event-loop", event_loop,
                                  entry=_low_fd_entry())
    await process.start()
    welcomed, refused = await _crowd(process.port, 100)
    try:
        assert len(welcomed) == 56
        assert len(refused) == 44
        assert process.returncode is None
    finally:
        await _close_all(welcomed + refused)
    again = await _welcomed_eventually(process)  # once the server has seen them close
    await again.close()
    assert "max_connections lowered from 10000 to 56" in process.stderr_text()
    assert len(process.stderr_lines) <= 10, process.stderr_text()
    assert "Traceback" not in process.stderr_text()


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
async def test_at_emfile_waiting_clients_are_refused_and_the_server_recovers(
        make_server_process: MakeServerProcess, event_loop: str) -> None:
    """With 100 of its 128 descriptors taken behind its back, the server meets EMFILE
    itself: it does not spin logging a traceback per accept, the clients beyond the limit
    are refused (not left hanging), and it accepts again when connections close."""
    process = make_server_process("--log-level", "WARNING", "--event-loop", event_loop,
                                  entry=_low_fd_entry(held=100))
    await process.start()
    welcomed, refused = await _crowd(process.port, 40)
    try:
        assert 0 < len(welcomed) < 28
        assert refused
        assert process.returncode is None
    finally:
        await _close_all(welcomed + refused)
    again = await _welcomed_eventually(process)
    await again.close()
    text = process.stderr_text()
    assert "accept failed: Too many open files; refusing new connections" in text
    assert "Traceback" not in text
    assert len(process.stderr_lines) <= 10, text


async def _welcomed_eventually(process: ServerProcess, timeout: float = 10.0) -> ChatTestClient:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        client = ChatTestClient(process.port)
        try:
            await client.connect()
            await client.hello("again")
            return client
        except (HarnessError, OSError):
            await client.close()
            if loop.time() > deadline:
                raise


# ------------------------------------------- the server's own waits are not silence


@pytest.fixture
def slow_password_checks(monkeypatch: pytest.MonkeyPatch) -> float:
    """Every password check takes this long, as when it queues behind many others."""
    import reference_server.service as service
    from reference_server.passwords import verify_password

    delay_s = 2.5

    def slow(password: str, stored: str) -> bool:
        time.sleep(delay_s)  # in the worker thread, like a long queue of scrypt checks
        return verify_password(password, stored)

    monkeypatch.setattr(service, "verify_password", slow)
    return delay_s


@pytest.mark.server_config(hello_timeout_s=1.0,
                           limits=Limits(keepalive_interval_s=1, idle_timeout_s=2))
async def test_a_hello_being_checked_outlasts_the_idle_and_handshake_timeouts(
        server: RunningServer, client_factory: ClientFactory,
        slow_password_checks: float) -> None:
    """CP-KEEP-5, CP-HS-11: a client waiting longer than both timeouts for its own
    password check is answered WELCOME and served on: the wait was the server's."""
    owner = await client_factory("owner")
    await owner.ok(Register(password="hunter2"))
    await owner.quit()
    client = await client_factory()
    welcome = await client.hello("owner", "hunter2", timeout=slow_password_checks + 5)
    assert welcome.logged_in
    assert isinstance((await client.ok(Join(room="#after")))[-1], Ok)


@pytest.mark.server_config(hello_timeout_s=1.0,
                           limits=Limits(keepalive_interval_s=1, idle_timeout_s=30))
async def test_a_hello_refused_after_the_handshake_timeout_is_followed_by_the_timeout(
        server: RunningServer, client_factory: ClientFactory,
        slow_password_checks: float) -> None:
    """CP-HS-11: the HELLO still being checked at the deadline is answered first
    (AUTH_FAILED); then, with no WELCOME, the connection gets IDLE_TIMEOUT."""
    owner = await client_factory("owner")
    await owner.ok(Register(password="hunter2"))
    await owner.quit()
    client = await client_factory()
    with pytest.raises(HelloRefused) as refused:
        await client.hello("owner", "wrong", timeout=slow_password_checks + 5)
    assert refused.value.error.code == ErrorCode.AUTH_FAILED
    error = await _refusal(client)
    assert (error.code, error.fatal) == (ErrorCode.IDLE_TIMEOUT, True)
