"""``python -m reference_server`` as a child process of a bench script.

It listens on 127.0.0.1 port 0 with the data dir it is given; the port is read
from the "listening on HOST:PORT" line on its stderr, which a thread drains and
keeps (the first ``keep_lines`` lines, tracebacks counted), so that a chatty
server never blocks on a full pipe. Shared by ``attacks.py`` and ``soak.py``.
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
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
_LISTENING = re.compile(r"listening on \[?([^\]\s]+?)\]?:(\d+)")


class ServerDidNotStart(Exception):
    """No "listening on" line came; the message ends with the server's last log lines."""


class ServerProcess:
    """The reference server, started at once; ``started``/``wait_listening`` wait for its port.

    ``nofile`` caps its file descriptors (RLIMIT_NOFILE), for the attack on that limit.
    """

    def __init__(self, data_dir: Path | str, args: Sequence[str] = (), *,
                 nofile: int | None = None, keep_lines: int = 20_000) -> None:
        self.args = list(args)
        self.lines: list[str] = []
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
            [sys.executable, "-m", "reference_server", "--host", HOST, "--port", "0",
             "--data-dir", str(data_dir), *self.args],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=limit_descriptors if nofile is not None else None)
        threading.Thread(target=self._drain, daemon=True).start()

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
        self._listening.set()  # it exited: nobody should wait any longer

    def wait_listening(self, timeout: float = 20.0) -> int:
        """Its port, once it listens; ServerDidNotStart (and killed) if it does not."""
        self._listening.wait(timeout)
        if not self.port:
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
