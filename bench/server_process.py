"""``python -m reference_server`` as a child process, for the bench and the tests.

It listens on 127.0.0.1 port 0 with the data dir it is given; the port is read
from the "listening on HOST:PORT" line on its stderr, which a thread drains and
keeps (the first ``keep_lines`` lines, tracebacks counted), so that a chatty
server never blocks on a full pipe. Used by ``attacks.py`` and ``soak.py``, and
by the tests' ``server_harness.ServerProcess`` (which adds restarts, runs to
exit and its own errors); it imports nothing from ``tests/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SERVER_ENTRY = ("-m", "reference_server")
"""What follows the interpreter on a server's command line by default."""
_LISTENING = re.compile(r"listening on \[?([^\]\s]+?)\]?:(\d+)")


def server_command(data_dir: Path | str, args: Sequence[str] = (), *, host: str = HOST,
                   entry: Sequence[str] = SERVER_ENTRY) -> list[str]:
    """The command line: the interpreter, ``entry``, port 0 on ``host``, the data dir, ``args``."""
    return [sys.executable, *entry, "--host", host, "--port", "0", "--data-dir", str(data_dir),
            *args]


def server_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (by default this process's), with unbuffered output so log lines come at once."""
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONUNBUFFERED", "1")
    return environment


class ServerDidNotStart(Exception):
    """No "listening on" line came; the message ends with the server's last log lines."""


class ServerProcess:
    """The reference server, started at once; ``started``/``wait_listening`` wait for its port.

    ``entry`` replaces ``-m reference_server``; ``nofile`` caps its file
    descriptors (RLIMIT_NOFILE), for the attack on that limit; ``lines`` is the
    list its stderr lines are added to (a new one by default).
    """

    def __init__(self, data_dir: Path | str, args: Sequence[str] = (), *, host: str = HOST,
                 env: Mapping[str, str] | None = None, entry: Sequence[str] = SERVER_ENTRY,
                 nofile: int | None = None, keep_lines: int = 20_000,
                 lines: list[str] | None = None) -> None:
        self.args = list(args)
        self.lines: list[str] = [] if lines is None else lines
        """The first ``keep_lines`` lines of its stderr."""
        self.log_bytes = 0
        self.tracebacks = 0
        self.port = 0
        self._keep_lines = keep_lines
        self._listening = threading.Event()

        def limit_descriptors() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            server_command(data_dir, self.args, host=host, entry=entry),
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=server_environment(env),
            preexec_fn=limit_descriptors if nofile is not None else None)
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.log_bytes += len(raw)
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if len(self.lines) < self._keep_lines:
                self.lines.append(line)
            if line.startswith("Traceback"):
                self.tracebacks += 1
            match = _LISTENING.search(line)
            if match and not self.port:
                self.port = int(match.group(2))
                self._listening.set()
        self.proc.stderr.close()
        self._listening.set()  # it exited: nobody should wait any longer

    def listening(self, timeout: float = 20.0) -> bool:
        """Wait until it listens (True), exits or ``timeout`` passes (False)."""
        self._listening.wait(timeout)
        return self.port != 0

    def join_drain(self, timeout: float = 5.0) -> None:
        """Wait for the log thread (after the exit: ``lines`` is then complete)."""
        self._drainer.join(timeout)

    def wait_listening(self, timeout: float = 20.0) -> int:
        """Its port, once it listens; ServerDidNotStart (and killed) if it does not."""
        if not self.listening(timeout):
            self.proc.kill()
            raise ServerDidNotStart("the server did not start:\n" + "\n".join(self.lines[-20:]))
        return self.port

    async def started(self, timeout: float = 20.0) -> ServerProcess:
        """``wait_listening`` without blocking the event loop."""
        await asyncio.to_thread(self.wait_listening, timeout)
        return self

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def rss_kib(self) -> int:
        """Its resident set size (VmRSS) in KiB; 0 once it is gone."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 20 s; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
