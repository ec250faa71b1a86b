"""Small tools for the reference server's config, CLI, TLS and logging tests (not a test module).

* ``WireClient``: a minimal chatproto client over asyncio streams, plain TCP or
  TLS, built on the sans-IO ``chatproto.Connection(Sender.CLIENT)``.
* ``CliServer``: ``python -m reference_server`` as a child process; ``start``
  waits for the "listening on HOST:PORT" line on stderr (a thread drains the
  pipe) and ``close`` terminates and reaps it whatever happened. The server
  logs that line before it installs its signal handlers: complete a request
  before sending SIGINT or SIGTERM.

Every wait is bounded by a timeout; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from chatproto import Connection, ConnectionClosed, FrameRejected, Message, Sender
from chatproto.messages import Bye, Error, Hello, Ok, Pong, Welcome

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TIMEOUT = 10.0
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(?P<port>\d+)")

_FINAL = (Welcome, Ok, Error, Bye, Pong)


class WireClient:
    """One client connection; frames received and not consumed yet wait in ``frames``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = Connection(Sender.CLIENT)
        self.frames: list[Message] = []
        self.eof = False
        self._next_id = 1

    @classmethod
    async def connect(cls, port: int, *, tls: ssl.SSLContext | None = None,
                      timeout: float = TIMEOUT) -> WireClient:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                HOST, port, ssl=tls, server_hostname=HOST if tls is not None else None)
        return cls(reader, writer)

    async def send(self, message: Message) -> int:
        """Send ``message``, numbering a request that has no id yet; return its id."""
        if message.is_request and message.request_id == 0:
            message = message.model_copy(update={"request_id": self._next_id})
            self._next_id += 1
        self.writer.write(self.conn.send(message))
        await self.writer.drain()
        return message.request_id

    async def _read_more(self, deadline: float) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"timed out; frames so far: {self.frames!r}")
        try:
            async with asyncio.timeout(remaining):
                data = await self.reader.read(65536)
        except TimeoutError:
            raise AssertionError(f"timed out; frames so far: {self.frames!r}") from None
        except ConnectionError:
            data = b""
        for event in self.conn.receive_data(data):
            if isinstance(event, ConnectionClosed):
                self.eof = True
            elif isinstance(event, FrameRejected):
                raise AssertionError(f"the server sent a bad frame: {event!r}")
            else:
                self.frames.append(event)
        if not data:
            self.eof = True

    async def expect(self, match: Callable[[Message], bool],
                     timeout: float = TIMEOUT) -> Message:
        """The oldest frame (received or arriving) for which ``match`` is true; removed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for index, frame in enumerate(self.frames):
                if match(frame):
                    return self.frames.pop(index)
            if self.eof:
                raise AssertionError(f"connection closed; unmatched frames: {self.frames!r}")
            await self._read_more(deadline)

    async def request(self, message: Message, timeout: float = TIMEOUT) -> list[Message]:
        """Send a request; its intermediate frames and final response (last)."""
        request_id = await self.send(message)
        answer: list[Message] = []
        while not answer or not isinstance(answer[-1], _FINAL):
            answer.append(await self.expect(lambda f: f.request_id == request_id, timeout))
        return answer

    async def ok(self, message: Message, timeout: float = TIMEOUT) -> list[Message]:
        answer = await self.request(message, timeout)
        assert not isinstance(answer[-1], Error), f"{message!r} refused: {answer[-1]!r}"
        return answer

    async def hello(self, nick: str, password: str = "") -> Welcome:
        answer = await self.request(Hello(min_version=1, max_version=1, nick=nick,
                                          password=password, client_name="server-tests/1"))
        welcome = answer[-1]
        assert isinstance(welcome, Welcome), f"HELLO answered with {answer!r}"
        return welcome

    async def read_until_eof(self, timeout: float = TIMEOUT) -> list[Message]:
        """Every frame until the server closes the connection (drained)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.eof:
            await self._read_more(deadline)
        frames, self.frames = self.frames, []
        return frames

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            async with asyncio.timeout(5):
                await self.writer.wait_closed()


def server_command(data_dir: Path, *args: str,
                   entry: tuple[str, ...] = ("-m", "reference_server")) -> list[str]:
    """The server's command line; ``entry`` replaces ``-m reference_server`` (``-c CODE``)."""
    return [sys.executable, *entry, "--host", HOST, "--port", "0",
            "--data-dir", str(data_dir), *args]


class CliServer:
    """``python -m reference_server`` in a child process, stderr kept in ``stderr_lines``."""

    def __init__(self, data_dir: Path, *args: str,
                 entry: tuple[str, ...] = ("-m", "reference_server"),
                 ready: re.Pattern[str] = LISTENING) -> None:
        self.command = server_command(data_dir, *args, entry=entry)
        self.ready = ready
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_lines: list[str] = []
        self._listening = threading.Event()
        self._drainer: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> CliServer:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(self.command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._drainer = threading.Thread(target=self._drain, args=(self.proc,), daemon=True)
        self._drainer.start()
        self._listening.wait(timeout)
        if not self.port:
            self.close()
            raise AssertionError(f"no 'listening on' line within {timeout} s; "
                                 f"stderr:\n{self.stderr_text()}")
        return self

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(line)
            match = self.ready.search(line)
            if match and not self.port:
                self.port = int(match.group("port"))
                self._listening.set()
        self._listening.set()  # the process ended (or closed stderr): stop waiting
        proc.stderr.close()

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines)

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        """The exit status, once the process has exited (and its stderr is read)."""
        assert self.proc is not None
        status = self.proc.wait(timeout)
        if self._drainer is not None:
            self._drainer.join(timeout)
        return status

    def close(self) -> None:
        """Terminate (then kill) and reap the process; safe to call more than once."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._drainer is not None:
            self._drainer.join(10)

    def __enter__(self) -> CliServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
