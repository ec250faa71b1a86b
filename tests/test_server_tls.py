"""The reference server over TLS (CP-SEC-1, CP-SEC-2), with a throw-away CA from trustme."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.util
import logging
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ClientFactory, MakeServer, MakeServerProcess, RunningServer
from server_harness import HOST, ChatTestClient, Pki

from chatproto import encode
from chatproto.messages import Hello, Join, Ok, RoomMessage, SendRoom
from reference_server.__main__ import connect_hint
from reference_server.config import ServerConfig
from reference_server.server import TLS_HANDSHAKE_TIMEOUT_S, handshake_failure


async def _tls_server(make_server: MakeServer, pki: Pki) -> RunningServer:
    """An in-process server that speaks only TLS, with the certificate of ``pki``."""
    return await make_server(tls_cert=pki.cert, tls_key=pki.key)


def _tls_version(client: ChatTestClient) -> str | None:
    assert client.ssl_object is not None, f"{client!r} does not speak TLS"
    return client.ssl_object.version()


async def test_hello_and_room_message_over_tls(pki: Pki, make_server: MakeServer,
                                               client_factory: ClientFactory) -> None:
    server = await _tls_server(make_server, pki)
    alice = await client_factory(None, server=server, tls=pki.client_context())
    bob = await client_factory(None, server=server, tls=pki.client_context())
    assert _tls_version(alice) in ("TLSv1.2", "TLSv1.3")
    assert alice.ssl_object is not None
    peer_cert = alice.ssl_object.getpeercert()
    assert peer_cert is not None and ("IP Address", HOST) in peer_cert["subjectAltName"]
    assert (await alice.hello("alice")).nick == "alice"
    assert (await bob.hello("bob")).nick == "bob"
    await alice.ok(Join(room="#secure"))
    await bob.ok(Join(room="#secure"))
    answer = await alice.ok(SendRoom(room="#secure", text="over TLS", client_msg_id=1))
    ok = answer[-1]
    assert isinstance(ok, Ok) and ok.seq == 1
    event = await bob.expect(RoomMessage)
    assert (event.sender, event.text, event.seq) == ("alice", "over TLS", 1)


async def test_client_without_the_ca_is_refused_by_its_own_check(
        pki: Pki, make_server: MakeServer, client_factory: ClientFactory) -> None:
    """Sanity check of the set-up: the certificate is only trusted through the test CA."""
    server = await _tls_server(make_server, pki)
    with pytest.raises(ssl.SSLCertVerificationError):
        await client_factory(None, server=server, tls=ssl.create_default_context())


async def test_plain_tcp_client_fails_cleanly_and_the_server_keeps_serving(
        pki: Pki, make_server: MakeServer, client_factory: ClientFactory) -> None:
    server = await _tls_server(make_server, pki)
    # A raw socket, not a ChatTestClient: what comes back is a TLS record, not a frame.
    reader, writer = await asyncio.open_connection(HOST, server.port)
    try:
        writer.write(encode(Hello(request_id=1, min_version=1, max_version=1,
                                  nick="plain", client_name="plain-tcp")))
        await writer.drain()
        received = b""
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(10):
                while chunk := await reader.read(4096):
                    received += chunk
        # At most a TLS alert record (content type 21), never a chatproto frame.
        assert not received or received[0] == 21, received[:40]
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    assert not server.server.sessions
    client = await client_factory(None, server=server, tls=pki.client_context())
    assert (await client.hello("after")).nick == "after"


async def test_tls_1_2_is_accepted(pki: Pki, make_server: MakeServer,
                                   client_factory: ClientFactory) -> None:
    server = await _tls_server(make_server, pki)
    context = pki.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    client = await client_factory(None, server=server, tls=context)
    assert _tls_version(client) == "TLSv1.2"
    await client.hello("twelve")


def _old_tls_client_context(pki: Pki) -> ssl.SSLContext:
    context = pki.client_context()
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


async def _local_openssl_offers_tls_1_1(pki: Pki) -> bool:
    """Can this OpenSSL negotiate TLS 1.1 at all (against a server that allows it)?"""
    try:
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.set_ciphers("DEFAULT:@SECLEVEL=0")
        server_context.minimum_version = ssl.TLSVersion.TLSv1
        server_context.maximum_version = ssl.TLSVersion.TLSv1_1
        server_context.load_cert_chain(pki.cert, pki.key)
        client_context = _old_tls_client_context(pki)
    except (ssl.SSLError, ValueError):
        return False

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    probe = await asyncio.start_server(handle, HOST, 0, ssl=server_context)
    try:
        port = probe.sockets[0].getsockname()[1]
        try:
            async with asyncio.timeout(10):
                _, writer = await asyncio.open_connection(HOST, port, ssl=client_context,
                                                          server_hostname=HOST)
        except (ssl.SSLError, ConnectionError):
            return False
        ssl_object = writer.get_extra_info("ssl_object")
        version = ssl_object.version() if ssl_object is not None else None
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        return bool(version == "TLSv1.1")
    finally:
        probe.close()
        await probe.wait_closed()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls_older_than_1_2_is_refused(pki: Pki, make_server: MakeServer,
                                             client_factory: ClientFactory) -> None:
    if not await _local_openssl_offers_tls_1_1(pki):
        pytest.skip("the local OpenSSL cannot negotiate TLS 1.1 even when allowed")
    server = await _tls_server(make_server, pki)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await client_factory(None, server=server, tls=_old_tls_client_context(pki))
    # The refused handshake did not hurt the server.
    client = await client_factory(None, server=server, tls=pki.client_context())
    await client.hello("modern")


async def test_tls_clients_come_and_go_without_warnings(
        pki: Pki, make_server: MakeServer, client_factory: ClientFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    server = await _tls_server(make_server, pki)
    for nick in ("first", "second"):
        client = await client_factory(None, server=server, tls=pki.client_context())
        await client.hello(nick)
        await client.close()
    async with asyncio.timeout(10):
        while server.server.sessions:
            await asyncio.sleep(0.01)
    await server.shutdown()  # its records count too

    disconnects = [r for r in caplog.records if r.getMessage().startswith("disconnect ")]
    assert len(disconnects) == 2
    warnings = [f"{r.name}: {r.getMessage()}" for r in caplog.records
                if r.levelno >= logging.WARNING]
    assert not warnings


async def test_tls_from_the_command_line(pki: Pki, make_server_process: MakeServerProcess,
                                         client_factory: ClientFactory) -> None:
    server = await make_server_process("--tls-cert", str(pki.cert),
                                       "--tls-key", str(pki.key)).start()
    assert any(f"listening on {HOST}:{server.port} (TLS)" in line
               for line in server.stderr_lines), server.stderr_text()
    client = await client_factory(None, server=server, tls=pki.client_context())
    assert _tls_version(client) in ("TLSv1.2", "TLSv1.3")
    assert (await client.hello("cli")).nick == "cli"
    await client.ok(Join(room="#cli"))
    await client.close()
    assert await server.stop() == 0
    # The banner follows the log line: complete once the process has exited.
    banner = [line for line in server.stderr_lines if line.startswith("chatproto-server ")]
    assert len(banner) == 1, server.stderr_text()
    assert (f"connect with `chatproto-client {HOST}:{server.port} --nick NAME --tls` "
            "(with `--cafile CA.pem` instead of `--tls`") in banner[0]


# ------------------------------------------------- failed handshakes, logged


_HELLO = encode(Hello(request_id=1, min_version=1, max_version=1, nick="plain",
                      client_name="plain-tcp"))


async def _plain_tcp_hello(port: int) -> int:
    """A chatproto HELLO in plain TCP to a TLS server; the client's own port."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        own_port: int = writer.get_extra_info("sockname")[1]
        writer.write(_HELLO)
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(10):
                while await reader.read(4096):
                    pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return own_port


async def _untrusting_tls_client(port: int) -> int:
    """A TLS client that does not trust the server's CA; the client's own port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
        own_port: int = sock.getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError):
            async with asyncio.timeout(10):
                await asyncio.open_connection(sock=sock, ssl=ssl.create_default_context(),
                                              server_hostname=HOST)
    finally:
        sock.close()
    return own_port


async def _until(condition: Callable[[], list[str]], what: str) -> list[str]:
    """Wait (at most 10 s) until ``condition`` returns a non-empty list; return it."""
    try:
        async with asyncio.timeout(10):
            while not (found := condition()):
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"no {what} within 10 s") from None
    return found


def _handshake_lines(lines: list[str], own_port: int) -> list[str]:
    return [line for line in lines
            if f"TLS handshake failed peer={HOST}:{own_port} reason=" in line]


async def test_failed_handshakes_are_logged_one_line_each_and_the_server_keeps_serving(
        pki: Pki, make_server: MakeServer, client_factory: ClientFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    """Under whichever loop runs the test (conftest's --event-loop: asyncio or uvloop)."""
    caplog.set_level(logging.INFO)
    server = await _tls_server(make_server, pki)

    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "chatproto.server"]

    plain_port = await _plain_tcp_hello(server.port)
    plain = await _until(lambda: _handshake_lines(messages(), plain_port),
                         "log line for the plain-TCP client")
    assert plain == [f"TLS handshake failed peer={HOST}:{plain_port} "
                     "reason=WRONG_VERSION_NUMBER: not TLS: a plain-TCP client?"]

    untrusting_port = await _untrusting_tls_client(server.port)
    untrusting = await _until(lambda: _handshake_lines(messages(), untrusting_port),
                              "log line for the client without the CA")
    assert len(untrusting) == 1
    # asyncio's client resets the connection, OpenSSL's own tools send the alert.
    assert re.fullmatch(r"TLS handshake failed peer=\S+ reason=(CONNECTION_RESET|"
                        r"TLSV1_ALERT_UNKNOWN_CA): .*does not trust the certificate",
                        untrusting[0]), untrusting

    client = await client_factory(None, server=server, tls=pki.client_context())
    assert (await client.hello("after")).nick == "after"
    await client.close()
    await server.shutdown()

    handshake_records = [r for r in caplog.records
                         if r.getMessage().startswith("TLS handshake failed")]
    assert len(handshake_records) == 2
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in handshake_records)
    assert not [r for r in caplog.records if r.exc_info is not None or r.exc_text]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # A refused handshake is not a session: no connect or disconnect line for it.
    connects = [m for m in messages() if m.startswith("connect ")]
    assert len(connects) == 1, connects


async def test_failed_handshake_is_logged_by_the_server_process(
        pki: Pki, make_server_process: MakeServerProcess,
        client_factory: ClientFactory) -> None:
    """The process runs uvloop when it is installed (the dev extra installs it)."""
    server = await make_server_process("--tls-cert", str(pki.cert),
                                       "--tls-key", str(pki.key)).start()
    plain_port = await _plain_tcp_hello(server.port)
    lines = await _until(lambda: _handshake_lines(server.stderr_lines, plain_port),
                         "log line for the plain-TCP client")
    assert len(lines) == 1 and lines[0].endswith(
        f" INFO TLS handshake failed peer={HOST}:{plain_port} "
        "reason=WRONG_VERSION_NUMBER: not TLS: a plain-TCP client?"), lines
    untrusting_port = await _untrusting_tls_client(server.port)
    await _until(lambda: _handshake_lines(server.stderr_lines, untrusting_port),
                 "log line for the client without the CA")
    client = await client_factory(None, server=server, tls=pki.client_context())
    assert (await client.hello("after")).nick == "after"
    await client.close()
    assert await server.stop() == 0
    assert "Traceback" not in server.stderr_text()
    if importlib.util.find_spec("uvloop") is not None:
        assert any("loop=uvloop" in line for line in server.stderr_lines), server.stderr_text()


async def test_shutdown_drops_a_connection_still_in_its_handshake(
        pki: Pki, make_server: MakeServer) -> None:
    server = await _tls_server(make_server, pki)
    reader, writer = await asyncio.open_connection(HOST, server.port)  # says nothing
    try:
        async with asyncio.timeout(10):
            await server.shutdown()
            with contextlib.suppress(ConnectionError):
                assert await reader.read(4096) == b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@pytest.mark.parametrize(("error", "expected"), [
    (ConnectionResetError(errno.ECONNRESET, "reset"),
     "CONNECTION_RESET: the client hung up, as one does that does not trust the certificate"),
    (ConnectionAbortedError("SSL handshake is taking longer than 60.0 seconds"),
     f"TIMEOUT: no handshake within {TLS_HANDSHAKE_TIMEOUT_S:g} s"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "EHOSTUNREACH"),
    (OSError("no errno"), "OSError"),
], ids=["reset", "timeout", "errno", "bare"])
def test_handshake_failure_reasons(error: OSError, expected: str) -> None:
    assert handshake_failure(error) == expected


def test_handshake_failure_reason_of_an_ssl_error() -> None:
    error = ssl.SSLError(1, "[SSL: HTTP_REQUEST] http request")
    error.reason = "HTTP_REQUEST"  # set by the ssl module from OpenSSL's error
    assert handshake_failure(error) == "HTTP_REQUEST: an HTTP request, not TLS"
    error.reason = "SOMETHING_NEW"
    assert handshake_failure(error) == "SOMETHING_NEW"


# ------------------------------------------------------------------ banner


@pytest.mark.parametrize(("host", "tls", "expected"), [
    ("127.0.0.1", False, "`chatproto-client 127.0.0.1:7879 --nick NAME`"),
    ("::1", False, "`chatproto-client [::1]:7879 --nick NAME`"),
    ("127.0.0.1", True, "`chatproto-client 127.0.0.1:7879 --nick NAME --tls` (with "
     "`--cafile CA.pem` instead of `--tls` if no public CA signed the certificate)"),
], ids=["plain", "ipv6", "tls"])
def test_connect_hint(host: str, tls: bool, expected: str) -> None:
    files = {"tls_cert": Path("c.pem"), "tls_key": Path("k.pem")} if tls else {}
    assert connect_hint(ServerConfig(host=host, **files), 7879) == expected


def test_the_guide_quotes_the_tls_banner_and_log_lines_as_the_server_prints_them() -> None:
    guide = (Path(__file__).resolve().parent.parent / "spec/guides/run-server.md").read_text(
        encoding="utf-8")
    tls = ServerConfig(tls_cert=Path("c.pem"), tls_key=Path("k.pem"))
    assert f"(TLS): connect with {connect_hint(tls, 7879)}; Ctrl-C" in guide
    plain_tcp = ssl.SSLError(1, "wrong version number")
    plain_tcp.reason = "WRONG_VERSION_NUMBER"
    for error in (plain_tcp, ConnectionResetError()):
        assert f" reason={handshake_failure(error)}\n" in guide, handshake_failure(error)
