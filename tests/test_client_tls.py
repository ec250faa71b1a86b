"""Reference client library over TLS (CP-SEC-1), with a throw-away CA from trustme.

The in-process reference server serves TLS; ``ChatClient.connect(tls=context)``
must work with a context that trusts the CA, and every mismatch (untrusted
certificate, TLS against plain TCP and the reverse) must end in ConnectionLost
with a one-line reason, never a traceback or a hang.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme
from client_tools import RELAXED, ClientMaker, one_line
from conftest import MakeServer
from server_harness import HOST

from chatproto.messages import RoomMessage
from reference_client import ChatClient, ConnectionLost, HandshakeFailed, TlsFailure
from reference_client.client import tls_failure


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path, Path]:
    directory = tmp_path_factory.mktemp("client-pki")
    ca = trustme.CA()
    issued = ca.issue_cert(HOST)
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return ca, cert, key


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


async def test_chat_over_tls(pki: tuple[trustme.CA, Path, Path], make_server: MakeServer,
                             clients: ClientMaker) -> None:
    """CP-SEC-1: with a context that trusts the server's CA, the whole exchange works."""
    ca, cert, key = pki
    chat = await make_server(tls_cert=cert, tls_key=key, limits=RELAXED)
    alice = await clients("alice", chat.port, tls=trusting(ca))
    bob = await clients("bob", chat.port, tls=trusting(ca))
    await alice.client.join("#room")
    await bob.client.join("#room")
    ok = await alice.client.send_room("#room", "encrypted hello")
    message = await bob.expect_type(RoomMessage)
    assert (message.seq, message.text) == (ok.seq, "encrypted hello")
    await alice.client.quit()
    await alice.wait_ended()


async def test_an_untrusted_certificate_raises_connection_lost(
        pki: tuple[trustme.CA, Path, Path], make_server: MakeServer) -> None:
    """CP-SEC-1, brief: a certificate the context does not trust -> ConnectionLost, one
    line that says it is about TLS."""
    _, cert, key = pki
    chat = await make_server(tls_cert=cert, tls_key=key)
    untrusting = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionLost) as info:
            await ChatClient.connect(HOST, chat.port, nick="alice", tls=untrusting)
    message = str(info.value)
    assert one_line(message), message
    # What happened, in words (OpenSSL's CERTIFICATE_VERIFY_FAILED alone says little).
    assert info.value.tls_failure is TlsFailure.UNTRUSTED
    assert message == (f"cannot connect to {HOST}:{chat.port}: the server's certificate is "
                       "not trusted (self-signed, or from an unknown CA)")


async def test_tls_to_a_plain_server_raises_connection_lost(
        pki: tuple[trustme.CA, Path, Path], make_server: MakeServer) -> None:
    """Brief: a TLS client against a plain-TCP server fails with ConnectionLost, one line,
    without hanging."""
    ca, _, _ = pki
    chat = await make_server()
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionLost) as info:
            await ChatClient.connect(HOST, chat.port, nick="alice", tls=trusting(ca),
                                     connect_timeout=5)
    assert one_line(str(info.value)), str(info.value)
    # Not OpenSSL's WRONG_VERSION_NUMBER: what it means.
    assert info.value.tls_failure is TlsFailure.NOT_TLS
    assert str(info.value) == f"cannot connect to {HOST}:{chat.port}: the server does not speak TLS"


async def test_a_certificate_for_another_name_is_named_as_such(
        make_server: MakeServer, tmp_path: Path) -> None:
    """A trusted CA, but a certificate issued for another host name: WRONG_NAME."""
    ca = trustme.CA()
    issued = ca.issue_cert("chat.example")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    chat = await make_server(tls_cert=cert, tls_key=key)
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionLost) as info:
            await ChatClient.connect(HOST, chat.port, nick="alice", tls=trusting(ca))
    assert info.value.tls_failure is TlsFailure.WRONG_NAME
    assert str(info.value).endswith("the server's certificate was issued for another name")


def test_other_failures_are_no_tls_failure() -> None:
    assert tls_failure(ConnectionResetError()) is None
    assert tls_failure(ssl.SSLError(1, "[SSL: SOMETHING_ELSE] something else")) is None
    # Made by hand (no verify_code): not classified, and no AttributeError either.
    assert tls_failure(ssl.SSLCertVerificationError(1, "certificate verify failed")) is None


async def test_plain_to_a_tls_server_raises_connection_lost(
        pki: tuple[trustme.CA, Path, Path], make_server: MakeServer) -> None:
    """Brief: a plain-TCP client against a TLS server fails with ConnectionLost (or a
    HandshakeFailed), one line, without hanging."""
    _, cert, key = pki
    chat = await make_server(tls_cert=cert, tls_key=key)
    async with asyncio.timeout(10):
        with pytest.raises((ConnectionLost, HandshakeFailed)) as info:
            await ChatClient.connect(HOST, chat.port, nick="alice", connect_timeout=5)
    assert one_line(str(info.value)), str(info.value)
