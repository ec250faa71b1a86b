"""What every frame a client sends must respect, whatever the case checks.

The client suite's monitor: a client's frames must decode, fit the frame limit,
carry a nonzero request_id when they are requests, and be allowed by the
spec's state table in the session's phase. The phase is derived from the
message declarations (who sends what) and the frames each side sent, never
from chatproto's own state machine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum

from chatproto import (
    ERROR_REGISTRY,
    HEADER_SIZE,
    LENGTH_FIELD_SIZE,
    MAX_FRAME_LENGTH,
    MESSAGE_TYPES,
    MIN_FRAME_LENGTH,
    PRE_WELCOME_FRAME_LENGTH,
    ErrorCode,
    Message,
    PendingRequests,
    Sender,
    error_name,
    fold,
)
from chatproto.messages import (
    Bye,
    Error,
    Hello,
    Ping,
    Pong,
    PrivateMessage,
    Quit,
    RoomMessage,
    SendRoom,
    Welcome,
)
from conformance.outcomes import Violation
from conformance.transcript import describe
from conformance.wire import Received, decode, length_at

SAFE_TEXT_FIELDS = {"message-text", "notice-text", "topic", "short-text"}
"""Semantic types that must hold safe text (CP-FIELD-4)."""
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WIRE_SIZES = {"u8": 1, "u8 enum": 1, "bool": 1, "u16": 2, "u32": 4, "u64": 8}
CLIENT_MESSAGES = frozenset(cls for cls in MESSAGE_TYPES.values()
                            if cls.SENDER in (Sender.CLIENT, Sender.BOTH))
SERVER_MESSAGES = frozenset(cls for cls in MESSAGE_TYPES.values()
                            if cls.SENDER in (Sender.SERVER, Sender.BOTH))


def frame_name(frame: Received) -> str:
    return describe(frame.message) if frame.message is not None else frame.name


def unsafe_text_field(frame: Received) -> str | None:
    """The name of a safe-text field of ``frame`` that holds a control character, if any.

    Walks the body by the wire kinds of the message's declared fields (the spec's
    field encodings), so it works on a frame that the strict decoder refused.
    """
    cls = MESSAGE_TYPES.get(frame.type_code)
    if cls is None:
        return None
    body, offset = frame.raw[HEADER_SIZE:], 0
    try:
        for name, info in cls.model_fields.items():
            if name == "request_id":
                continue
            field_type = next(m for m in info.metadata if hasattr(m, "wire"))
            kind: str = field_type.wire.name
            if kind in _WIRE_SIZES:
                offset += _WIRE_SIZES[kind]
                continue
            if kind == "strlist8":
                count = body[offset]
                offset += 1
                for _ in range(count):
                    offset += 1 + body[offset]
                continue
            width = 2 if kind == "str16" else 1
            size = int.from_bytes(body[offset:offset + width], "big")
            value = body[offset + width:offset + width + size]
            offset += width + size
            if field_type.name in SAFE_TEXT_FIELDS and _UNSAFE_TEXT.search(
                    value.decode("utf-8", "replace")):
                return name
    except (IndexError, StopIteration):
        return None
    return None


class Phase(StrEnum):
    """Where the client's session stands, as the spec's state table says (plus how it ended)."""

    AWAIT_HELLO = "AWAIT_HELLO"
    AWAIT_WELCOME = "AWAIT_WELCOME"
    READY = "READY"
    QUITTING = "QUITTING"
    REJECTING = "rejecting"
    """The kit sent something the state table does not allow: the client must close
    (CP-STATE-5), at most after a fatal ERROR (CP-ERR-9)."""
    ENDED_BY_SERVER = "ended by the kit's BYE or fatal ERROR"
    """Nothing more may come from the client (CP-CLOSE-5)."""
    ENDED_BY_CLIENT = "ended by the client's fatal ERROR"
    """The client must close right after its fatal ERROR (CP-CLOSE-4)."""


QUIT_BEFORE_WELCOME = "CP-HS-13"
"""The rule a QUIT before WELCOME breaks: a client that leaves before WELCOME closes the
connection. (The state table still has QUIT in ``AWAIT_HELLO``, for the server's sake:
it answers a version-1 client's QUIT there with BYE.)"""


def client_may_send(phase: Phase, cls: type[Message], fatal: bool | None) -> bool:
    """The state table's client rows: may a client send ``cls`` in ``phase``?

    ``fatal`` is the ERROR's flag (None when the frame could not be decoded).
    Before WELCOME a client sends nothing but HELLO and a fatal ERROR: the table's
    QUIT in ``AWAIT_HELLO`` is for the server to answer, a client that wants to
    leave closes the connection (``QUIT_BEFORE_WELCOME``).
    """
    if cls is Error:
        return fatal is not False and phase in (Phase.AWAIT_HELLO, Phase.AWAIT_WELCOME,
                                                Phase.READY, Phase.QUITTING, Phase.REJECTING)
    if phase is Phase.AWAIT_HELLO:
        return cls is Hello
    if phase is Phase.READY:
        return cls in CLIENT_MESSAGES and cls is not Hello
    return False


class ClientMonitor:
    """The rules every frame a client sends must follow, judged against the session's phase.

    The kit's own frames move the phase (WELCOME, BYE, fatal ERROR, a frame the
    table forbids); the client's move it too (HELLO, QUIT, its fatal ERROR).
    Until the client has shown that it read a kit frame that changed the phase
    (by answering a PING sent after it), frames it sent before reading it are
    judged against the earlier phase as well.
    """

    def __init__(self, warn: Callable[[Violation], None]) -> None:
        self.phase = Phase.AWAIT_HELLO
        self.frame_limit = PRE_WELCOME_FRAME_LENGTH
        self.welcomed = False
        self.offered: range | None = None
        self.capabilities_offered: tuple[str, ...] = ()
        self.ended_by_unknown_code = False
        self.message_texts: set[str] = set()
        """Message texts the kit sent; a client's ERROR detail must not repeat them (CP-ERR-6)."""
        self._warn = warn
        self._stale: list[tuple[Phase, int]] = []
        self._kit_frames = 0
        self._pings: dict[bytes, int] = {}
        self._outstanding: PendingRequests[None] = PendingRequests()
        """The client's requests the kit has not answered yet (for CP-REQ-2)."""
        self._client_msg_ids: dict[tuple[str, int], str] = {}
        self._pending = b""
        self._stream_broken = False

    # ------------------------------------------------------------ the kit's frames
    def kit_sent(self, data: bytes) -> None:
        """Bytes the kit wrote: complete frames move the phase as the client will see them."""
        if self._stream_broken:
            return
        self._pending += data
        while len(self._pending) >= LENGTH_FIELD_SIZE:
            length = length_at(self._pending)
            if length < MIN_FRAME_LENGTH or length > MAX_FRAME_LENGTH:
                # The client can no longer find frames: it must give up the connection.
                self._stream_broken = True
                self._move(Phase.REJECTING)
                return
            if len(self._pending) < LENGTH_FIELD_SIZE + length:
                return
            raw = self._pending[:LENGTH_FIELD_SIZE + length]
            self._pending = self._pending[LENGTH_FIELD_SIZE + length:]
            self._kit_frame(decode(raw))

    def kit_eof(self) -> None:
        """The kit shut down its sending direction; a frame cut short ends the session."""
        if self._pending and not self._stream_broken:
            self._move(Phase.REJECTING)

    def _kit_frame(self, frame: Received) -> None:
        self._kit_frames += 1
        message = frame.message
        if isinstance(message, Ping):
            self._pings[message.token] = self._kit_frames
        if isinstance(message, RoomMessage | PrivateMessage) and len(message.text) >= 8:
            self.message_texts.add(message.text)
        if message is not None:
            self._outstanding.receive(message)  # a final response ends the oldest request
        self._move(self._after_kit_frame(frame))

    def _after_kit_frame(self, frame: Received) -> Phase:
        phase, message = self.phase, frame.message
        if phase in (Phase.REJECTING, Phase.ENDED_BY_SERVER, Phase.ENDED_BY_CLIENT):
            return phase
        cls = MESSAGE_TYPES.get(frame.type_code)
        if cls is None:  # unknown type: ignored in READY and QUITTING (CP-EXT-3)
            return phase if phase in (Phase.READY, Phase.QUITTING) else Phase.REJECTING
        if message is None:  # a malformed body: the client discards it (CP-FRAME-10)
            return phase
        if cls not in SERVER_MESSAGES:
            return Phase.REJECTING
        if isinstance(message, Error):
            if message.fatal:
                self.ended_by_unknown_code = message.error_code is None
                return Phase.ENDED_BY_SERVER
            return Phase.AWAIT_HELLO if phase is Phase.AWAIT_WELCOME else phase
        if isinstance(message, Bye):
            return Phase.ENDED_BY_SERVER
        if isinstance(message, Welcome):
            if phase is Phase.AWAIT_WELCOME and self.offered is not None \
                    and message.version in self.offered:
                self.frame_limit = message.max_frame_size
                self.welcomed = True
                return Phase.READY
            return Phase.REJECTING
        if phase in (Phase.READY, Phase.QUITTING):
            return phase
        return Phase.REJECTING

    def _move(self, phase: Phase) -> None:
        if phase is not self.phase:
            self._stale.append((self.phase, self._kit_frames))
            self.phase = phase

    # ------------------------------------------------------------ the client's frames
    def check(self, frame: Received) -> list[Violation]:
        """The rules ``frame`` breaks (MUSTs); SHOULDs go to the warning callback."""
        found: list[Violation] = []

        def breach(req: str, message: str) -> None:
            found.append(Violation(req, message))

        length = len(frame.raw) - LENGTH_FIELD_SIZE
        if length > self.frame_limit:
            when = ("after WELCOME, above the max_frame_size it advertised" if self.welcomed
                    else "before WELCOME, above")
            breach("CP-FRAME-5", f"the client sent {frame.name} with length {length}, {when} "
                   f"{self.frame_limit}")
        cls = MESSAGE_TYPES.get(frame.type_code)
        message = frame.message
        if frame.type_code >= 0x8000 and self.capabilities_offered:
            # The kit confirms no capability: extension frames use one it did not confirm.
            breach("CP-HS-9", f"the client sent a frame of extension type "
                   f"{frame.type_code:#06x}, although WELCOME confirmed none of the "
                   f"capabilities it offered ({', '.join(self.capabilities_offered)})")
            return found
        if frame.type_code == 0 or frame.type_code >= 0x8000:
            breach("CP-EXT-1", f"the client sent a frame of type {frame.type_code:#06x}, which "
                   "is reserved or an extension type that no capability in WELCOME defines")
            return found
        if cls is None:
            breach("CP-STATE-1", f"the client sent a frame of type {frame.type_code:#06x}, "
                   "which version 1 does not define (the state table allows no such message)")
            return found
        if message is None:
            self._check_undecodable(frame, breach)
        if isinstance(message, Pong):
            self._pong_seen(message.token)
        if isinstance(message, Error):
            self._check_error(message, breach)
        fatal = message.fatal if isinstance(message, Error) else None
        allowed = client_may_send(self.phase, cls, fatal) or any(
            client_may_send(phase, cls, fatal) for phase, _ in self._stale)
        if not allowed:
            breach(*self._disallowed(cls, fatal))
        if message is not None and message.is_request and message.request_id == 0:
            breach("CP-REQ-1", f"the client sent {cls.NAME} with request_id 0")
        if message is not None and message.is_request:
            self._check_request_should(message)
        if allowed:
            self._client_moves(cls, fatal, message)
        return found

    def _check_undecodable(self, frame: Received, breach: Callable[[str, str], None]) -> None:
        if frame.fault_code == ErrorCode.MALFORMED_MESSAGE:
            breach("CP-FRAME-1", f"the client's {frame.name} body does not match its declared "
                   f"fields: {frame.fault}")
        elif frame.fault_code == ErrorCode.INVALID_UTF8:
            breach("CP-FIELD-1", f"the client's {frame.name} has a string that is not "
                   f"well-formed UTF-8: {frame.fault}")
        else:
            field = unsafe_text_field(frame)
            if field is not None:
                breach("CP-FIELD-4", f"the client's {frame.name} has a control character in "
                       f"its safe-text field {field!r}")
            # Any other broken constraint is for the server to refuse (the kit answers it).

    def _disallowed(self, cls: type[Message], fatal: bool | None) -> tuple[str, str]:
        what = f"{cls.NAME}{' (non-fatal)' if fatal is False else ''}"
        if self.phase is Phase.ENDED_BY_SERVER:
            if self.ended_by_unknown_code:
                return ("CP-EXT-4", f"the client sent {what} after an ERROR of an unknown code "
                        "with fatal set, instead of ending the connection")
            return ("CP-CLOSE-5", f"the client sent {what} after receiving BYE or a fatal ERROR")
        if self.phase is Phase.ENDED_BY_CLIENT:
            return ("CP-CLOSE-4", f"the client sent {what} after its own fatal ERROR instead of "
                    "closing the connection")
        if cls is Quit and self.phase in (Phase.AWAIT_HELLO, Phase.AWAIT_WELCOME):
            return (QUIT_BEFORE_WELCOME, "the client sent QUIT before WELCOME; a client that "
                    "leaves before WELCOME closes the connection without QUIT")
        if self.phase is Phase.REJECTING:
            return ("CP-STATE-5", f"the client sent {what} after the kit sent a frame the state "
                    "table does not allow, instead of closing the connection")
        return ("CP-STATE-1", f"the client sent {what} in state {self.phase.value}, where the "
                "state table does not allow it from a client")

    def _check_error(self, error: Error, breach: Callable[[str, str], None]) -> None:
        known = error.error_code
        if error.code == ErrorCode.TRUNCATED_FRAME:
            breach("CP-ERR-7", "the client sent ERROR TRUNCATED_FRAME (107), a local-only code")
        elif known is not None and ERROR_REGISTRY[known].fatal != error.fatal:
            breach("CP-ERR-1", f"the client sent ERROR {known.name} with fatal={int(error.fatal)}"
                   f"; the registry says fatal={int(ERROR_REGISTRY[known].fatal)}")
        if error.request_id != 0:
            breach("CP-ERR-3", f"the client's ERROR {error_name(error.code)} carries request_id "
                   f"{error.request_id}; it answers no request, so it must carry 0")
        if error.retry_after_ms and error.code not in (ErrorCode.RATE_LIMITED,
                                                       ErrorCode.SERVER_SHUTDOWN):
            breach("CP-ERR-4", f"the client's ERROR {error_name(error.code)} has retry_after_ms "
                   f"{error.retry_after_ms}, not 0")
        leaked = next((t for t in self.message_texts if t in error.detail), None)
        if leaked is not None:
            breach("CP-ERR-6", f"the client's ERROR detail {error.detail!r} repeats the text of "
                   "a message")

    def _check_request_should(self, message: Message) -> None:
        if message.request_id and message.request_id in self._outstanding:
            self._warn(Violation("CP-REQ-2", f"the client reused request_id "
                                 f"{message.request_id} for {message.NAME} while an earlier "
                                 "request with that id was still waiting for its answer"))
        if message.request_id:
            self._outstanding.track(message, None)
        if isinstance(message, SendRoom):
            key = (fold(message.room), message.client_msg_id)
            if message.client_msg_id == 0:
                self._warn(Violation("CP-MSG-12", f"the client sent SEND_ROOM to "
                                     f"{message.room} with client_msg_id 0"))
            elif self._client_msg_ids.setdefault(key, message.text) != message.text:
                self._warn(Violation("CP-MSG-12", f"the client reused client_msg_id "
                                     f"{message.client_msg_id} in {message.room} for a "
                                     "different text"))

    def _client_moves(self, cls: type[Message], fatal: bool | None,
                      message: Message | None) -> None:
        if cls is Error:
            self.phase = Phase.ENDED_BY_CLIENT
        elif cls is Hello and self.phase is Phase.AWAIT_HELLO:
            self.phase = Phase.AWAIT_WELCOME
            if isinstance(message, Hello):
                self.offered = range(message.min_version, message.max_version + 1)
                self.capabilities_offered = message.capabilities
        elif cls is Quit and self.phase is Phase.READY:
            self.phase = Phase.QUITTING

    def _pong_seen(self, token: bytes) -> None:
        sent_at = self._pings.get(token)
        if sent_at is not None:
            # The client read every kit frame before that PING: earlier phases are over.
            self._stale = [(phase, at) for phase, at in self._stale if at >= sent_at]
