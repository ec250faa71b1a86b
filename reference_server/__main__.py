"""``chatproto-server``: run the reference server until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import getpass
import logging
import signal
import sys

from reference_server.config import ConfigError, ServerConfig, load_config
from reference_server.logs import configure_logging
from reference_server.passwords import hash_password
from reference_server.server import ChatServer

log = logging.getLogger("chatproto.server")


def connect_hint(config: ServerConfig, port: int) -> str:
    """The client command line for this server, as the start-up banner shows it."""
    host = f"[{config.host}]" if ":" in config.host else config.host
    command = f"`chatproto-client {host}:{port} --nick NAME"
    if config.tls_cert is None:
        return command + "`"
    # The server cannot tell whether a public CA signed its certificate; say both.
    return (command + " --tls` (with `--cafile CA.pem` instead of `--tls` if no public CA "
            "signed the certificate)")


async def _run(config: ServerConfig) -> None:
    server = ChatServer(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Before listening: a signal that arrives as soon as we listen still
    # gets the graceful shutdown.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    if config.log_format == "text":  # JSON logs stay one object per line
        tls = " (TLS)" if config.tls_cert is not None else ""
        print(f"chatproto-server listening on {config.host}:{server.port}{tls}: connect with "
              f"{connect_hint(config, server.port)}; Ctrl-C stops the server",
              file=sys.stderr, flush=True)
    await stop.wait()
    await server.shutdown()


def _install_fast_loop() -> None:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["hash-password"]:
        # For the operators table of a config file: keep no plain passwords there.
        print(hash_password(getpass.getpass("password: ")))
        return 0
    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"chatproto-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format)
    _install_fast_loop()
    try:
        asyncio.run(_run(config))
    except OSError as exc:  # the port is taken, the certificate is missing...
        print(f"chatproto-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
