"""Frames a peer sent that no wait has claimed yet, and the waits that claim them.

The kit's connection to a server (``server_side.Peer``) and to a client
(``client_side.ClientLink``) both keep what arrived in an inbox and let a case
wait for a matching frame with a deadline; how a wait ends without one (which
rule the silence breaks, how the message reads) is each side's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

from chatproto import Message

M = TypeVar("M", bound=Message)
T = TypeVar("T")
Matcher = type[Message] | tuple[type[Message], ...] | Callable[[Message], bool]
"""A message class, several, or a predicate."""


def matches(match: Matcher, message: Message) -> bool:
    if isinstance(match, type | tuple):
        return isinstance(message, match)
    return match(message)


class Inbox(ABC):
    """Unclaimed frames, in arrival order, and waits for them."""

    _unclaimed: list[Message]

    @abstractmethod
    def _deadline(self, timeout: float | None) -> float:
        """The loop time by which a wait of ``timeout`` seconds (None: the default) ends."""

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
