"""The error registry of spec v1 and the exceptions that carry its codes.

The registry is data: the spec's error table, the ERROR frames a server sends and
the exceptions raised by the sans-IO core all read the same entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ErrorCode(IntEnum):
    """Numeric error codes carried by ERROR frames (spec: errors)."""

    MALFORMED_FRAME = 100
    FRAME_TOO_LARGE = 101
    MALFORMED_MESSAGE = 102
    INVALID_UTF8 = 103
    UNKNOWN_TYPE = 104
    STATE_VIOLATION = 105
    UNSUPPORTED_VERSION = 106
    TRUNCATED_FRAME = 107
    IDLE_TIMEOUT = 108
    INVALID_REQUEST_ID = 109
    INVALID_FIELD = 110

    INVALID_NICK = 200
    NICK_IN_USE = 201
    NICK_REGISTERED = 202
    AUTH_FAILED = 203
    ALREADY_REGISTERED = 204

    INVALID_ROOM_NAME = 300
    NO_SUCH_ROOM = 301
    NOT_IN_ROOM = 302
    ALREADY_IN_ROOM = 303
    TOO_MANY_ROOMS = 304
    BANNED_FROM_ROOM = 305
    MUTED = 306
    NO_SUCH_NICK = 307
    MESSAGE_TOO_LONG = 308

    NOT_OPERATOR = 400

    RATE_LIMITED = 500
    SLOW_CONSUMER = 501
    SERVER_SHUTDOWN = 502
    INTERNAL_ERROR = 503
    TOO_MANY_CONNECTIONS = 504


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One row of the error registry."""

    code: ErrorCode
    fatal: bool
    """The sender closes the connection after sending it."""
    retriable: bool
    """The same request can succeed later (after a wait, or a changed condition)."""
    on_wire: bool
    """False for conditions only ever reported locally (there is no one to tell)."""
    summary: str
    requirements: tuple[str, ...]
    """Requirement IDs whose breach (or rule) produces this error."""
    retry_after: bool = False
    """Its ERROR may carry a nonzero ``retry_after_ms``; every other code's carries 0 (CP-ERR-4)."""

    @property
    def name(self) -> str:
        return self.code.name


def _row(
    code: ErrorCode,
    summary: str,
    requirements: tuple[str, ...],
    *,
    fatal: bool = False,
    retriable: bool = False,
    on_wire: bool = True,
    retry_after: bool = False,
) -> ErrorInfo:
    return ErrorInfo(code, fatal, retriable, on_wire, summary, requirements, retry_after)


_E = ErrorCode

ERROR_REGISTRY: dict[ErrorCode, ErrorInfo] = {
    info.code: info
    for info in (
        _row(_E.MALFORMED_FRAME, "The length field is below 6; framing is lost.",
             ("CP-FRAME-7",), fatal=True),
        _row(_E.FRAME_TOO_LARGE, "The length field exceeds the receiver's advertised limit.",
             ("CP-FRAME-3", "CP-FRAME-4", "CP-FRAME-6"), fatal=True),
        _row(_E.MALFORMED_MESSAGE, "The body does not parse as the message type's fields.",
             ("CP-FRAME-9",)),
        _row(_E.INVALID_UTF8, "A string field is not valid UTF-8.", ("CP-FIELD-2",)),
        _row(_E.UNKNOWN_TYPE, "The server does not know the frame's type code.", ("CP-EXT-2",)),
        _row(_E.STATE_VIOLATION, "The message is not allowed in the connection's state.",
             ("CP-STATE-2", "CP-STATE-3", "CP-STATE-5"), fatal=True),
        _row(_E.UNSUPPORTED_VERSION, "No protocol version is supported by both peers.",
             ("CP-HS-5", "CP-HS-6", "CP-HS-7"), fatal=True),
        _row(_E.TRUNCATED_FRAME, "The stream ended in the middle of a frame.",
             ("CP-FRAME-11", "CP-ERR-7"), fatal=True, on_wire=False),
        _row(_E.IDLE_TIMEOUT, "Nothing was received for the advertised idle timeout, or "
             "the handshake took too long.",
             ("CP-KEEP-5", "CP-HS-11"), fatal=True, retriable=True),
        _row(_E.INVALID_REQUEST_ID, "A client request carried request_id 0.", ("CP-REQ-3",)),
        _row(_E.INVALID_FIELD, "A field breaks its constraint (characters, range, length).",
             ("CP-FIELD-3", "CP-FIELD-5", "CP-ROOM-16", "CP-ACCT-3", "CP-HIST-12",
              "CP-SEC-13")),
        _row(_E.INVALID_NICK, "The nickname breaks the nickname profile or advertised length.",
             ("CP-NICK-1",)),
        _row(_E.NICK_IN_USE, "Another connection holds a nickname with the same fold.",
             ("CP-NICK-10", "CP-NICK-5"), retriable=True),
        _row(_E.NICK_REGISTERED, "The nickname belongs to an account; a password is needed.",
             ("CP-ACCT-5", "CP-NICK-8")),
        _row(_E.AUTH_FAILED, "Wrong account or operator credentials.",
             ("CP-ACCT-5", "CP-ACCT-7", "CP-OPER-2", "CP-SEC-8")),
        _row(_E.ALREADY_REGISTERED, "The nickname is already registered as an account.",
             ("CP-ACCT-2",)),
        _row(_E.INVALID_ROOM_NAME, "The room name breaks the room name rules.", ("CP-ROOM-1",)),
        _row(_E.NO_SUCH_ROOM, "The room does not exist.", ("CP-ROOM-7",)),
        _row(_E.NOT_IN_ROOM, "The request needs membership of the room.",
             ("CP-ROOM-8", "CP-OPER-5")),
        _row(_E.ALREADY_IN_ROOM, "The client is already a member of the room.", ("CP-ROOM-11",)),
        _row(_E.TOO_MANY_ROOMS, "Joining would exceed max_rooms_per_user.",
             ("CP-ROOM-12", "CP-ROOM-6"), retriable=True),
        _row(_E.BANNED_FROM_ROOM, "The client's nickname is banned from the room, or was "
             "while the client held it.", ("CP-ROOM-13", "CP-OPER-10")),
        _row(_E.MUTED, "The client is muted in the room.", ("CP-OPER-9", "CP-OPER-10"),
             retriable=True),
        _row(_E.NO_SUCH_NICK, "No connected user has that nickname.", ("CP-MSG-5", "CP-OPER-5"),
             retriable=True),
        _row(_E.MESSAGE_TOO_LONG, "The text exceeds the advertised max_message_length.",
             ("CP-MSG-2",)),
        _row(_E.NOT_OPERATOR, "The request needs operator privileges.", ("CP-OPER-3",)),
        _row(_E.RATE_LIMITED, "A token bucket is empty, or the server's limit on login "
             "failures or new accounts is reached; retry_after_ms says when to retry.",
             ("CP-RATE-2", "CP-SEC-11"), retriable=True, retry_after=True),
        _row(_E.SLOW_CONSUMER, "The client's output buffer passed the server's bound.",
             ("CP-FLOW-2",), fatal=True, retriable=True),
        _row(_E.SERVER_SHUTDOWN, "The server is shutting down.", ("CP-CLOSE-7",), fatal=True,
             retriable=True, retry_after=True),
        _row(_E.INTERNAL_ERROR, "The server failed to carry out a valid request.",
             ("CP-ERR-8",), retriable=True),
        _row(_E.TOO_MANY_CONNECTIONS, "The server holds as many connections, in all or from "
             "the client's address, as it accepts.",
             ("CP-SEC-12",), fatal=True, retriable=True, retry_after=True),
    )
}


def known_error_code(code: int) -> ErrorCode | None:
    """The registry's ``ErrorCode`` for a wire code, or None for one spec v1 does not define."""
    try:
        return ErrorCode(code)
    except ValueError:
        return None


def error_name(code: int) -> str:
    """A wire code's registry name, or ``ERROR_<code>`` for one spec v1 does not define."""
    known = known_error_code(code)
    return known.name if known is not None else f"ERROR_{code}"


DETAIL_MAX_BYTES = 255
"""ERROR.detail is a str8."""


def utf8_fault(exc: BaseException) -> str:
    """A detail for INVALID_UTF8 that names the fault but never the bytes.

    Python's (and construct's) own messages quote the offending bytes, which may
    belong to a password or a message text (spec: CP-ERR-6).
    """
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, UnicodeDecodeError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return "a text field is not well-formed UTF-8"
    return f"a text field is not well-formed UTF-8 ({cause.reason} at its byte {cause.start})"


def clip_detail(detail: str) -> str:
    """``detail`` cut to what fits in ERROR.detail, on a character boundary."""
    return detail.encode("utf-8")[:DETAIL_MAX_BYTES].decode("utf-8", "ignore")


class ProtocolError(Exception):
    """A breach of spec v1, carrying the error code the spec assigns to it."""

    def __init__(self, code: ErrorCode, detail: str = "", *, request_id: int = 0) -> None:
        self.code = code
        self.detail = detail or ERROR_REGISTRY[code].summary
        self.request_id = request_id
        super().__init__(f"{code.name} ({int(code)}): {self.detail}")

    @property
    def fatal(self) -> bool:
        return ERROR_REGISTRY[self.code].fatal


class LocalProtocolError(ProtocolError):
    """We tried to do something the spec forbids (our bug, not the peer's)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the spec forbids; answer it with an ERROR of ``code``.

    ``silent`` is set when the breach is a frame after which nothing may be
    sent at all, such as a BYE the client did not ask for (CP-CLOSE-5): close
    without answering. ``closing`` is set when the connection ends although
    ``code`` is not fatal: a client's ERROR whose body does not parse is
    answered with that code and the connection closes all the same (CP-ERR-11).
    """

    def __init__(self, code: ErrorCode, detail: str = "", *, request_id: int = 0,
                 silent: bool = False, closing: bool = False) -> None:
        super().__init__(code, detail, request_id=request_id)
        self.silent = silent
        self.closing = closing

    @property
    def ends_connection(self) -> bool:
        """Whether the connection closes after this breach is answered."""
        return self.fatal or self.closing
