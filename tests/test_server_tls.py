"""The reference server over TLS (CP-SEC-1, CP-SEC-2), with a throw-away CA from trustme."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from conftest import ClientFactory, MakeServer, MakeServerProcess, RunningServer
from server_harness import HOST, ChatTestClient

from chatproto import encode
from chatproto.messages import Hello, Join, Ok, RoomMessage, SendRoom


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    issued = ca.issue_cert(HOST)  # an IP address SAN for 127.0.0.1
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return Pki(ca, cert, key)


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
