"""``chatproto-client``: the terminal client, a one-shot sender, and a JSON-lines mode.

    chatproto-client [HOST[:PORT]] --nick NAME [--password-env VAR | --password-stdin]
                     [--tls] [--cafile PEM] [--reconnect] [--send ROOM TEXT] [--json]

* no ``--send``/``--json``: the full-screen terminal UI (``reference_client.tui``),
  which needs prompt_toolkit (the ``tui`` extra); without it, one line says how to
  install it (exit 2);
* ``--send ROOM TEXT``: connect, join ROOM, send TEXT, wait for OK, quit (exit 0;
  1 with a one-line message on stderr if anything fails; 2 for usage errors);
* ``--json``: commands from stdin, one per line (the same /commands as the UI;
  plain lines go to the last joined room); every event on stdout as one JSON
  object per line, and the outcome of each command as ``{"event": "OK",
  "command": ...}`` or ``{"event": "ERROR", "command": ..., "code": N, "name":
  ..., "message": ...}``. Exit 0 once stdin closes (after QUIT) if every
  command succeeded, 1 if any got an ERROR (one line on stderr says how many)
  or when the connection ends without reconnection. Stdin is read from the
  start: lines typed before WELCOME wait for the session, and ``/quit`` before
  WELCOME closes the connection without QUIT (CP-HS-13) and exits 0. This is
  the contract the conformance kit's client suite types to (its test guide).

No traceback reaches the person: every failure is one line (``describe_error``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import signal
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, NoReturn

from chatproto import DEFAULT_PORT, PROTOCOL_VERSION, __version__, error_name
from chatproto.names import is_valid_room_name
from reference_client.client import (
    ChatClient,
    ChatError,
    ConnectionLost,
    TlsFailure,
)
from reference_client.commands import (
    CommandError,
    event_json,
    execute,
    parse_command,
)
from reference_client.events import Disconnected
from reference_client.wording import describe_error

PROG = "chatproto-client"
DEFAULT_HOST = "127.0.0.1"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
_STDIN_CHUNK = 1 << 16
"""Bytes read from stdin at a time: any size works, the lines are split afterwards."""

_CONNECT_ERRORS = (ChatError, ConnectionLost, OSError, ssl.SSLError, TimeoutError)

TerminalUI = Callable[..., Awaitable[int]]
"""``reference_client.tui.run_tui``: ``await run(client, reconnect=...)``."""
MISSING_TUI_EXTRA = ("the terminal UI needs prompt_toolkit, which the 'tui' extra installs "
                     "(in a checkout: pip install '.[tui]'); --json and --send work without it")


# ------------------------------------------------------------------ arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parse_address(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[IPv6]``, ``[IPv6]:PORT`` or a bare IPv6 literal."""
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in {text!r}")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected {rest!r} after ']' in {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    # Two or more colons without brackets: an IPv6 literal without a port.
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port {port_text!r} (1-65535)")
    return host, int(port_text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="The chatproto reference client: a terminal chat, or a scriptable "
        "sender (--send) and JSON-lines client (--json).",
        epilog="Commands in the terminal UI and in --json mode: /help lists them. "
        "Exit status: 0 success, 1 failure (one line on stderr; with --json also when "
        "any command got an ERROR), 2 usage error.",
    )
    parser.add_argument("address", nargs="?", default=f"{DEFAULT_HOST}:{DEFAULT_PORT}",
                        metavar="HOST[:PORT]",
                        help=f"server address (default {DEFAULT_HOST}:{DEFAULT_PORT}; "
                        f"IPv6 as [::1]:{DEFAULT_PORT})")
    parser.add_argument("--version", action="version", version=_version_line())
    parser.add_argument("--nick", required=True, help="the nickname to use (required)")
    password = parser.add_mutually_exclusive_group()
    password.add_argument("--password-env", metavar="VAR",
                          help="read the account password from environment variable VAR "
                          "(default: no password)")
    password.add_argument("--password-stdin", action="store_true",
                          help="read the account password from the first line of stdin "
                          "(default: no password)")
    parser.add_argument("--tls", action="store_true",
                        help="connect with TLS (default: plain TCP)")
    parser.add_argument("--cafile", metavar="PEM",
                        help="trust the CA certificates in this PEM file (implies --tls; "
                        "default: the system's CA certificates)")
    parser.add_argument("--reconnect", action="store_true",
                        help="reconnect (and resume the rooms) when the connection drops "
                        "(default: exit instead)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--send", nargs=2, metavar=("ROOM", "TEXT"),
                      help="join ROOM, send TEXT, wait for the server's OK and quit "
                      "(default mode: the terminal UI)")
    mode.add_argument("--json", action="store_true",
                      help="read /commands from stdin, print every event as a JSON line; "
                      "exit 1 if any command got an ERROR")
    return parser


def _version_line() -> str:
    return f"{PROG} {__version__} (chatproto protocol version {PROTOCOL_VERSION})"


def _read_password_line() -> str:
    """The first line of stdin, read byte by byte so that nothing after it is consumed."""
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass("password: ")
    data = bytearray()
    while True:
        byte = os.read(0, 1)
        if not byte or byte == b"\n":
            break
        data += byte
    return data.decode("utf-8", "replace").rstrip("\r")


# ---------------------------------------------------------------- connecting


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls or args.cafile):
        return None
    return ssl.create_default_context(cafile=args.cafile)


async def _connect(args: argparse.Namespace, host: str, port: int, password: str,
                   tls: ssl.SSLContext | None) -> ChatClient:
    return await ChatClient.connect(host, port, nick=args.nick, password=password, tls=tls,
                                    reconnect=args.reconnect)


def _fail(exc: BaseException) -> int:
    _error_line(describe_error(exc))
    return EXIT_FAILURE


def _tls_advice(failure: TlsFailure, args: argparse.Namespace) -> str:
    """What to do about a failed TLS handshake, in terms of this command's options."""
    if failure is TlsFailure.NOT_TLS:
        return "drop --tls and --cafile" if args.cafile else "drop --tls"
    if failure is TlsFailure.UNTRUSTED:
        if args.cafile:
            return f"{args.cafile} does not hold the CA that signed it"
        return "pass --cafile CA.pem (the signing CA's certificate, or the self-signed one)"
    return "connect by a name the certificate lists"


def _fail_connect(exc: BaseException, args: argparse.Namespace,
                  tls: ssl.SSLContext | None) -> int:
    """``_fail`` for ``connect``: TLS mismatches and a plain connection dropped before
    WELCOME get a hint saying what to do."""
    line = describe_error(exc)
    if isinstance(exc, ConnectionLost) and exc.tls_failure is not None:
        line += f": {_tls_advice(exc.tls_failure, args)}"
    elif (isinstance(exc, ConnectionLost) and exc.code is None and tls is None
            and not exc.reason.startswith("cannot connect")):
        line += " before the handshake completed (a TLS server? try --tls)"
    _error_line(line)
    return EXIT_FAILURE


def _error_line(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(f"{PROG}: {line}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- send


async def run_send(args: argparse.Namespace, host: str, port: int, password: str,
                   tls: ssl.SSLContext | None) -> int:
    room, text = args.send
    try:
        client = await _connect(args, host, port, password, tls)
    except _CONNECT_ERRORS as exc:
        return _fail_connect(exc, args, tls)
    try:
        async with asyncio.timeout(max(client.connect_timeout, 1.0) * 3):
            await client.join(room)
            await client.send_room(room, text)
    except (*_CONNECT_ERRORS, CommandError) as exc:
        if isinstance(exc, TimeoutError):  # the server stalls: do not wait for a BYE too
            await client.close()
        else:
            await client.quit()
        return _fail(exc)
    await client.quit()
    return EXIT_OK


# ---------------------------------------------------------------------- json


class _JsonOut:
    """One JSON object per line on stdout, flushed each time; a closed stdout is ignored."""

    def __init__(self) -> None:
        self.broken = False

    def __call__(self, obj: dict[str, Any]) -> None:
        if self.broken:
            return
        line = json.dumps(obj, ensure_ascii=False, separators=(", ", ": ")) + "\n"
        try:
            sys.stdout.buffer.write(line.encode("utf-8"))
            sys.stdout.buffer.flush()
        except (OSError, ValueError):
            self.broken = True


def _error_json(command: str | None, exc: BaseException) -> dict[str, Any]:
    code: int | None = None
    if isinstance(exc, ChatError | CommandError | ConnectionLost):
        code = exc.code
    if isinstance(exc, ConnectionLost) and code is None:
        name = "CONNECTION_LOST"
    elif isinstance(exc, CommandError) and code is None:
        name = "USAGE"
    else:
        name = error_name(code or 0)
    data: dict[str, Any] = {"event": "ERROR", "command": command, "code": code or 0,
                            "name": name, "message": describe_error(exc)}
    if isinstance(exc, ChatError) and exc.retry_after_ms:
        data["retry_after_ms"] = exc.retry_after_ms
    return data


def _start_stdin_reader(loop: asyncio.AbstractEventLoop,
                        queue: asyncio.Queue[str | None]) -> None:
    """Feed stdin's lines (then None at EOF) into ``queue`` from a daemon thread.

    ``os.read`` on the descriptor works for pipes, files and terminals alike and
    holds no lock of ``sys.stdin``, so the process can exit while it blocks.
    """

    def put(item: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody listens any more
            return False
        return True

    def read() -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(0, _STDIN_CHUNK)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not put(line.decode("utf-8", "replace").rstrip("\r")):
                    return
        if pending:
            put(pending.decode("utf-8", "replace").rstrip("\r"))
        put(None)

    threading.Thread(target=read, name="stdin reader", daemon=True).start()


def _asks_to_quit(line: str) -> bool:
    """Whether a line of stdin is ``/quit``."""
    with contextlib.suppress(CommandError):
        return parse_command(line, None).name == "quit"
    return False


async def connect_json(connect: Callable[[], Coroutine[Any, Any, ChatClient]],
                       lines: asyncio.Queue[str | None]) -> tuple[ChatClient | None, list[str]]:
    """Connect while reading stdin: ``(client, lines read meanwhile)``, or ``(None, [])``
    when ``/quit`` comes before WELCOME.

    Leaving before WELCOME is closing the connection: a client MUST NOT send QUIT
    before WELCOME, so the handshake is abandoned (``ChatClient`` closes on cancel).
    Other lines wait for the session, in order: text typed at once is not lost.
    The end of stdin lets the handshake finish (a refused connection is still
    reported) and then ends the session as usual.
    """
    loop = asyncio.get_running_loop()
    connecting: asyncio.Task[ChatClient] = loop.create_task(connect(), name="connect")
    early: list[str] = []
    ended = False
    while not connecting.done() and not ended:
        get_line = loop.create_task(lines.get())
        await asyncio.wait({get_line, connecting}, return_when=asyncio.FIRST_COMPLETED)
        if not get_line.done():
            get_line.cancel()
            continue
        line = get_line.result()
        if line is None:
            ended = True
            lines.put_nowait(None)  # for the session, once there is one
        elif _asks_to_quit(line) and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_CONNECT_ERRORS):
                await connecting
            return None, []
        else:
            early.append(line)
    return await connecting, early


async def run_json(client: ChatClient, *,
                   lines: asyncio.Queue[str | None] | None = None, early: Sequence[str] = (),
                   stop_signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
                   ) -> int:
    """The --json loop; returns the exit status.

    ``lines`` is stdin already being read (``connect_json``), with ``early`` the
    lines read before WELCOME; without it, reading starts here.
    The event stream ends when the connection is over for good (with
    ``--reconnect``: only when the client gives up), which ends the loop too.
    A script learns from the status whether everything it asked for was done:
    0 only if no command got an ERROR line.
    """
    out = _JsonOut()
    loop = asyncio.get_running_loop()
    if lines is None:
        lines = asyncio.Queue()
        _start_stdin_reader(loop, lines)
    waiting = list(early)
    current_room: str | None = None
    disconnected: list[Disconnected] = []
    interrupted: list[int] = []
    refused = 0

    def on_signal(signum: int) -> None:
        interrupted.append(signum)
        lines.put_nowait(None)

    installed = []
    for signum in stop_signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)

    async def pump() -> None:
        async for event in client.events():
            out(event_json(event))
            if isinstance(event, Disconnected):
                disconnected.append(event)

    pump_task = loop.create_task(pump(), name="events")
    quitting = False
    try:
        while not quitting:
            line: str | None = None
            if waiting and not interrupted:
                line = waiting.pop(0)
            elif not interrupted:  # a signal skips the lines still waiting
                get_line = loop.create_task(lines.get())
                await asyncio.wait({get_line, pump_task}, return_when=asyncio.FIRST_COMPLETED)
                if pump_task.done():  # the connection is over for good
                    get_line.cancel()
                    break
                line = get_line.result()
            if line is None:  # stdin closed (or a signal): leave politely
                quitting = True
                await client.quit()
                out({"event": "OK", "command": "quit"})
                break
            if not line.strip():
                continue
            try:
                command = parse_command(line, current_room)
            except CommandError as exc:
                refused += 1
                out(_error_json(exc.command, exc))
                continue
            try:
                result = await execute(client, command)
            except (ChatError, CommandError, ConnectionLost) as exc:
                refused += 1
                out(_error_json(command.name, exc))
                continue
            except Exception as exc:  # a bug; keep the session, say what failed
                refused += 1
                out({"event": "ERROR", "command": command.name, "code": 0,
                     "name": "CLIENT_ERROR", "message": describe_error(exc)})
                continue
            out(result.to_json())
            if result.quit:
                quitting = True
            elif result.room is not None:
                current_room = result.room
            elif current_room is not None and not any(
                    state.name == current_room for state in client.rooms.values()):
                # Left the current room: the most recently joined other one, if any.
                rooms = [state.name for state in client.rooms.values()]
                current_room = rooms[-1] if rooms else None
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        if not pump_task.done():
            if not quitting:
                await client.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await asyncio.shield(pump_task)
            pump_task.cancel()
    if interrupted:
        return EXIT_INTERRUPTED
    if quitting and refused:
        noun = "command" if refused == 1 else "commands"
        _error_line(f"{refused} {noun} got an ERROR (see the ERROR lines on stdout)")
        return EXIT_FAILURE
    if quitting:
        return EXIT_OK
    if disconnected:
        _error_line(describe_error(disconnected[-1]))
    else:
        _error_line("disconnected")
    return EXIT_FAILURE


# ----------------------------------------------------------------------- tui


def load_terminal_ui() -> TerminalUI | None:
    """The terminal UI, or None after one line on stderr saying why it cannot run.

    Loaded before connecting, so that a missing prompt_toolkit (an install
    without the ``tui`` extra) costs the server nothing.
    """
    try:
        from reference_client.tui import run_tui
    except ImportError as exc:
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing is not None and missing.split(".")[0] == "prompt_toolkit":
            _error_line(MISSING_TUI_EXTRA)
        else:
            _error_line(f"the terminal UI is not available ({exc}); use --json or --send")
        return None
    return run_tui


# ---------------------------------------------------------------------- main


async def _run(args: argparse.Namespace, host: str, port: int, password: str,
               terminal_ui: TerminalUI | None) -> int:
    try:
        tls = _tls_context(args)
    except (OSError, ssl.SSLError) as exc:
        _error_line(f"cannot load --cafile {args.cafile}: {describe_error(exc)}")
        return EXIT_FAILURE
    if args.send:
        return await run_send(args, host, port, password, tls)
    if terminal_ui is None:  # --json (main loads the UI for the terminal mode)
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        _start_stdin_reader(asyncio.get_running_loop(), lines)
        try:
            found, early = await connect_json(
                lambda: _connect(args, host, port, password, tls), lines)
        except _CONNECT_ERRORS as exc:
            return _fail_connect(exc, args, tls)
        if found is None:  # asked to quit before WELCOME: the connection is closed
            _JsonOut()({"event": "OK", "command": "quit"})
            return EXIT_OK
        return await run_json(found, lines=lines, early=early)
    try:
        client = await _connect(args, host, port, password, tls)
    except _CONNECT_ERRORS as exc:
        return _fail_connect(exc, args, tls)
    return await terminal_ui(client, reconnect=args.reconnect)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        host, port = parse_address(args.address)
    except ValueError as exc:
        parser.error(str(exc))
    if args.send:
        room, text = args.send
        if not is_valid_room_name(room):
            parser.error(f"--send: invalid room name {room!r} ('#' then letters, digits, "
                         "'_' or '-')")
        if not text.strip():
            parser.error("--send: the text is empty")
    elif not args.json and not (sys.stdin.isatty() and sys.stdout.isatty()):
        parser.error("the terminal UI needs a terminal; use --json or --send in scripts")
    terminal_ui = None
    if not (args.send or args.json):
        terminal_ui = load_terminal_ui()
        if terminal_ui is None:
            return EXIT_USAGE
    password = ""
    if args.password_env:
        if args.password_env not in os.environ:
            parser.error(f"--password-env: environment variable {args.password_env} is not set")
        password = os.environ[args.password_env]
    elif args.password_stdin:
        try:
            password = _read_password_line()
        except (OSError, EOFError, KeyboardInterrupt):
            password = ""
        if not password:
            parser.error("--password-stdin: no password on stdin")
    return _guarded(lambda: asyncio.run(_run(args, host, port, password, terminal_ui)))


def _guarded(run: Callable[[], int]) -> int:
    """Run; turn Ctrl-C and any unexpected failure into one line and an exit status."""
    try:
        return run()
    except KeyboardInterrupt:
        _error_line("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, the details only on request
        if os.environ.get("CHATPROTO_DEBUG"):
            raise
        _error_line(f"internal error: {describe_error(exc)} (set CHATPROTO_DEBUG=1 for details)")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
