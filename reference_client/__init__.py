"""The chatproto v1 reference client: an asyncio library and a terminal client."""

from reference_client.client import (
    ChatClient,
    ChatError,
    ConnectionLost,
    HandshakeFailed,
    HistoryPage,
    JoinResult,
    RoomState,
    TlsFailure,
)
from reference_client.events import (
    ClientEvent,
    Disconnected,
    HistoryGapDetected,
    Reconnected,
    Reconnecting,
)

__all__ = [
    "ChatClient",
    "ChatError",
    "ClientEvent",
    "ConnectionLost",
    "Disconnected",
    "HandshakeFailed",
    "HistoryGapDetected",
    "HistoryPage",
    "JoinResult",
    "Reconnected",
    "Reconnecting",
    "RoomState",
    "TlsFailure",
]
