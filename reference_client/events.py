"""Events the client library adds to the server's: they describe the connection itself."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Base of the events that are not wire messages."""

    NAME: ClassVar[str] = "CLIENT_EVENT"

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.NAME, **asdict(self)}


@dataclass(frozen=True, slots=True)
class Reconnecting(ClientEvent):
    """The connection dropped; the client tries again after ``delay_s``."""

    NAME: ClassVar[str] = "RECONNECTING"
    attempt: int
    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Reconnected(ClientEvent):
    """Logged back in and rejoined ``rooms``, each resumed from its last seen message."""

    NAME: ClassVar[str] = "RECONNECTED"
    nick: str
    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HistoryGapDetected(ClientEvent):
    """Messages ``first_seq``..``last_seq`` of ``room`` were missed and cannot be had."""

    NAME: ClassVar[str] = "HISTORY_GAP_DETECTED"
    room: str
    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class Disconnected(ClientEvent):
    """The connection is over for good; ``events()`` ends after this."""

    NAME: ClassVar[str] = "DISCONNECTED"
    reason: str
    code: int | None = None
