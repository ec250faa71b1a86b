"""Frames a peer sent that no wait has claimed yet, and the waits that claim them.

The kit's connection to a server (``server_side.Peer``) and to a client
(``client_side.ClientLink``) both keep what arrived in an inbox and let a case
wait for a matching frame with a deadline, woken by each frame, fault or close
the reader task reports; how a wait ends without one (which rule the silence
breaks, how the message reads) is each side's own.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

from chatproto import Message
from conformance.outcomes import Violation

M = TypeVar("M", bound=Message)
T = TypeVar("T")
Matcher = type[Message] | tuple[type[Message], ...] | Callable[[Message], bool]
"""A message class, several, or a predicate."""


def matches(match: Matcher, message: Message) -> bool:
    if isinstance(match, type | tuple):
        return isinstance(message, match)
    return match(message)


class Inbox(ABC):
    """Unclaimed frames, in arrival order, and waits for them.

    A subclass sets ``_writer`` (its end of the stream) and ``_task`` (the reader
    task that fills the inbox) when it connects.
    """

    _writer: asyncio.StreamWriter
    _task: asyncio.Task[None]

    def __init__(self, default_timeout: float, timeout_scale: float) -> None:
        self._unclaimed: list[Message] = []
        self._faults: list[Violation] = []
        """MUSTs the reader task found broken; the next wait raises the first."""
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self.close_note = ""
        """How the connection ended, once it has."""
        self._default_timeout = default_timeout
        self._timeout_scale = timeout_scale

    async def close(self) -> None:
        """Close the kit's end and stop the reader; never raises."""
        with contextlib.suppress(Exception):
            if not self._writer.is_closing():
                self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task

    @property
    def closed(self) -> bool:
        """The peer closed its end (the kit read EOF) or the connection broke."""
        return self._closed.is_set()

    def raise_fault(self) -> None:
        """Raise the first MUST the reader task found broken, if any."""
        if self._faults:
            raise self._faults[0]

    def _deadline(self, timeout: float | None) -> float:
        """The loop time by which a wait of ``timeout`` seconds (None: the default) ends."""
        seconds = self._default_timeout if timeout is None else timeout * self._timeout_scale
        return asyncio.get_running_loop().time() + seconds

    async def _until(self, deadline: float) -> bool:
        """Wait for news (a frame, a fault, the close) until ``deadline``; False once past it."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    @abstractmethod
    async def _wait(self, found: Callable[[], T | None], deadline: float, req: str,
                    what: str) -> T:
        """``found()``'s first result, or a Violation of ``req`` once waiting is over."""

    async def expect(self, match: Matcher, *, req: str, what: str | None = None,
                     timeout: float | None = None) -> Message:
        """Wait for (and consume) the first unclaimed frame that matches."""
        def find() -> Message | None:
            for index, message in enumerate(self._unclaimed):
                if matches(match, message):
                    return self._unclaimed.pop(index)
            return None
        label = what or (match.__name__ if isinstance(match, type) else "the expected frame")
        return await self._wait(find, self._deadline(timeout), req, label)

    async def expect_type(self, cls: type[M], *, req: str,
                          where: Callable[[M], bool] | None = None,
                          timeout: float | None = None) -> M:
        """``expect`` for one message class, typed."""
        def match(message: Message) -> bool:
            return isinstance(message, cls) and (where is None or where(message))
        found = await self.expect(match, req=req, what=cls.NAME, timeout=timeout)
        assert isinstance(found, cls)
        return found

    def take(self, match: Matcher) -> list[Message]:
        """Consume and return every unclaimed frame that matches (no waiting)."""
        taken = [m for m in self._unclaimed if matches(match, m)]
        self._unclaimed = [m for m in self._unclaimed if not matches(match, m)]
        return taken
