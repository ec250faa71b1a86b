"""What a case sent and received, frame by frame, for the reports.

Every frame is kept as the bytes on the wire and as the kit decoded them, with
the time since the case started, so a failure can be read without a packet
capture.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from chatproto import Message, error_name
from chatproto.messages import Error

Direction = Literal["sent", "received", "note"]


def describe(message: Message) -> str:
    """``NAME field=value ...`` with the request_id first, as the spec's examples write it."""
    fields = " ".join(f"{name}={value!r}" for name, value in message.model_dump().items()
                      if name != "request_id")
    return f"{message.NAME} (request {message.request_id}) {fields}".rstrip()


def outcome(message: Message) -> str:
    """How a final response reads in a verdict: ``OK`` or ``ERROR NAME``."""
    if isinstance(message, Error):
        return f"ERROR {error_name(message.code)}"
    return message.NAME


@dataclass(frozen=True, slots=True)
class Entry:
    time_s: float
    """Seconds since the case started."""
    connection: str
    direction: Direction
    data: bytes
    decoded: str

    def hex(self) -> str:
        return self.data.hex(" ")


@dataclass
class Transcript:
    started: float = field(default_factory=time.monotonic)
    entries: list[Entry] = field(default_factory=list)
    limit: int = 2000
    """Entries kept per case; a flood case would otherwise fill the report."""
    dropped: int = 0

    def add(self, connection: str, direction: Direction, data: bytes, decoded: str) -> None:
        if len(self.entries) >= self.limit:
            self.dropped += 1
            return
        self.entries.append(Entry(time.monotonic() - self.started, connection, direction,
                                  bytes(data[:4096]), decoded))

    def note(self, connection: str, text: str) -> None:
        self.add(connection, "note", b"", text)
