"""Transport security: chatproto inside TLS from the first byte, and never below TLS 1.2.

These cases run only when the target serves TLS (``--tls`` or ``--cafile``);
the kit's own connections then use TLS 1.2 or later. The version check
offers the server nothing newer than TLS 1.1, which the local OpenSSL must be
able to offer at all; where it cannot, the case is skipped with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings

from chatproto import (
    HEADER_SIZE,
    HEADER_STRUCT,
    MAX_FRAME_LENGTH,
    MESSAGE_TYPES,
    MIN_FRAME_LENGTH,
    encode,
)
from chatproto.messages import Hello, Ping, Pong, RoomMessage
from conformance.outcomes import Violation
from conformance.registry import server_case
from conformance.server_side import KIT_CLIENT_NAME, ServerContext
from conformance.transcript import describe


def _need_tls(ctx: ServerContext) -> None:
    if not ctx.options.tls:
        ctx.skip("the target is not run with TLS (give the kit --tls or --cafile)")


def _legacy_context(ctx: ServerContext) -> ssl.SSLContext:
    """A client context that offers TLS 1.0 and 1.1 only (SKIP if OpenSSL cannot)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        # OpenSSL 3 refuses these versions at its default security level.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated is the point
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError) as exc:
        ctx.skip(f"the local OpenSSL ({ssl.OPENSSL_VERSION}) cannot be set to offer TLS 1.1: "
                 f"{exc}")
    # Make sure a ClientHello for TLS 1.1 comes out, without touching the network.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    probe = context.wrap_bio(incoming, outgoing, server_side=False)
    try:
        probe.do_handshake()
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLError as exc:
        ctx.skip(f"the local OpenSSL ({ssl.OPENSSL_VERSION}) cannot offer TLS 1.1: {exc}")
    hello = outgoing.read()
    # Record header (5 bytes), handshake header (4), then the ClientHello's version.
    if len(hello) < 11 or hello[0] != 0x16 or hello[9:11] not in (b"\x03\x01", b"\x03\x02"):
        ctx.skip(f"the local OpenSSL ({ssl.OPENSSL_VERSION}) does not produce a TLS 1.1 "
                 "ClientHello")
    return context


@server_case("CP-SEC-1", needs=("tls",))
async def chat_works_inside_tls(ctx: ServerContext) -> None:
    """Over TLS from the first byte: HELLO/WELCOME, PING/PONG, JOIN and a room message."""
    _need_tls(ctx)
    room = ctx.room("tls")
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    await alice.join(room)
    await bob.join(room)
    token = b"inside tls"
    with ctx.attribute("CP-SEC-1"):
        answer = await alice.request(Ping(token=token), req="CP-SEC-1")
        ctx.check(isinstance(answer.final, Pong), "CP-KEEP-1",
                  f"PING over TLS was answered with {describe(answer.final)}")
        await alice.say(room, "sent inside TLS")
        await bob.expect_type(RoomMessage, req="CP-SEC-1",
                              where=lambda m: m.text == "sent inside TLS")


@server_case("CP-SEC-1", needs=("tls",))
async def plaintext_hello_gets_no_plaintext_answer(ctx: ServerContext) -> None:
    """A HELLO sent in plain TCP to the TLS port is not answered with a chatproto frame."""
    _need_tls(ctx)
    hello = Hello(min_version=1, max_version=1, nick=ctx.nick("plain"), password="",
                  client_name=KIT_CLIENT_NAME, request_id=1)
    data = encode(hello)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ctx.host, ctx.port),
                                                ctx.timeout)
    except (OSError, TimeoutError) as exc:
        ctx.skip(f"cannot open a plain TCP connection to the target: {exc!r}")
    ctx.transcript.add("plain", "sent", data, f"in plain TCP: {describe(hello)}")
    received = b""
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ctx.timeout
        while len(received) < HEADER_SIZE and loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(reader.read(HEADER_SIZE - len(received)),
                                               deadline - loop.time())
            except (TimeoutError, ConnectionError, OSError):
                break
            if not chunk:
                break
            received += chunk
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    ctx.transcript.add("plain", "received", received, f"{len(received)} byte(s) in reply")
    if len(received) == HEADER_SIZE:
        length, type_code, request_id = HEADER_STRUCT.unpack(received)
        if MIN_FRAME_LENGTH <= length <= MAX_FRAME_LENGTH and type_code in MESSAGE_TYPES:
            raise Violation("CP-SEC-1", f"a plain-TCP HELLO to the TLS port was answered with "
                            f"a plain {MESSAGE_TYPES[type_code].NAME} frame (request "
                            f"{request_id}): chatproto frames go inside TLS only")


@server_case("CP-SEC-2", needs=("tls",))
async def tls_older_than_1_2_refused(ctx: ServerContext) -> None:
    """A client offering only TLS 1.0 and 1.1 cannot complete the handshake."""
    _need_tls(ctx)
    context = _legacy_context(ctx)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            ctx.host, ctx.port, ssl=context, server_hostname=ctx.host), ctx.timeout)
    except (ssl.SSLError, ConnectionError, OSError, TimeoutError, EOFError,
            asyncio.IncompleteReadError) as exc:
        ctx.transcript.note("legacy", f"TLS 1.1 handshake refused: {exc!r}")
        return
    ssl_object = writer.get_extra_info("ssl_object")
    version = ssl_object.version() if isinstance(ssl_object, ssl.SSLObject) else None
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    del reader
    raise Violation("CP-SEC-2", f"the server completed a TLS handshake with a client that "
                    f"offered nothing newer than TLS 1.1 (negotiated {version or 'unknown'})")
