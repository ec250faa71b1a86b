"""``chatproto-server``: run the reference server until SIGINT or SIGTERM.

``chatproto-server hash-password`` instead reads a password and prints its hash.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from collections.abc import Callable

from reference_server.config import ConfigError, ServerConfig, load_config
from reference_server.logs import configure_logging
from reference_server.passwords import hash_password
from reference_server.server import ChatServer

log = logging.getLogger("chatproto.server")

HASH_PASSWORD = "hash-password"


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


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``--event-loop`` (None: asyncio's default loop)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("--event-loop uvloop: uvloop is not installed "
                              "(pip install 'chatproto[fast]')") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


# ------------------------------------------------------------- hash-password


class PasswordInputError(Exception):
    """No usable password was given; the message says why, in one line."""


def build_hash_password_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=f"chatproto-server {HASH_PASSWORD}",
        description="Read a password and print its scrypt hash, for the [operators] table "
        "of a config file (name = \"scrypt$...\"). On a terminal it asks twice, without "
        "echo; otherwise it reads the first line of standard input "
        "(`echo secret | chatproto-server hash-password`).",
        epilog="Exit status: 0 the hash is printed; 1 no usable password (one line on "
        "stderr); 2 usage error.",
    )


def read_new_password() -> str:
    """The password to hash: asked twice on a terminal, else stdin's first line."""
    stdin = sys.stdin
    if stdin is not None and stdin.isatty():
        try:
            password = getpass.getpass("password: ")
            if not password:
                raise PasswordInputError("empty password")
            if getpass.getpass("again: ") != password:
                raise PasswordInputError("the two passwords differ")
        except EOFError:  # Ctrl-D at the prompt
            raise PasswordInputError("no password given") from None
        return password
    # Not a terminal: a pipe or a file. getpass would read the controlling
    # terminal instead, if there is one, or warn that it cannot hide the input.
    line = stdin.buffer.readline() if stdin is not None else b""
    if not line:
        raise PasswordInputError("no password on standard input")
    try:
        password = line.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        raise PasswordInputError("the password on standard input is not UTF-8") from None
    if not password:
        raise PasswordInputError("empty password (the first line of standard input)")
    return password


def _hash_password_command(args: list[str]) -> int:
    build_hash_password_parser().parse_args(args)
    try:
        password = read_new_password()
    except PasswordInputError as exc:
        print(f"chatproto-server {HASH_PASSWORD}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)  # end the prompt's line
        return 130
    print(hash_password(password))
    return 0


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [HASH_PASSWORD]:
        return _hash_password_command(args[1:])
    try:
        config = load_config(args)
        loop_factory = event_loop_factory(config.event_loop)
    except ConfigError as exc:
        print(f"chatproto-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_run(config))
    except OSError as exc:  # the port is taken, the certificate is missing...
        print(f"chatproto-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
