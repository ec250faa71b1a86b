"""chatproto: the wire format and sans-IO protocol core of chatproto v1.

``Connection`` drives either end of a connection without doing any I/O; the
message classes in ``chatproto.messages`` are the typed API and the schema.
"""

from chatproto._connection import (
    NEED_DATA,
    PROTOCOL_VERSION,
    SPEC_REVISION,
    SUPPORTED_VERSIONS,
    Connection,
    ConnectionClosed,
    Event,
    FrameRejected,
    NeedData,
    error_message,
    limit_breach,
)
from chatproto._errors import (
    ERROR_REGISTRY,
    ErrorCode,
    ErrorInfo,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    error_name,
    known_error_code,
)
from chatproto._fastcodec import decode_frame, encode
from chatproto._framing import FrameDecoder
from chatproto._header import (
    HEADER_FORMAT,
    HEADER_SIZE,
    HEADER_STRUCT,
    LENGTH_FIELD_SIZE,
    MAX_FRAME_LENGTH,
    MIN_FRAME_LENGTH,
    PRE_WELCOME_FRAME_LENGTH,
)
from chatproto._requests import (
    FINAL_RESPONSE_TYPES,
    FinalResponse,
    IntermediateFrame,
    Outstanding,
    PendingRequests,
    is_final_response,
)
from chatproto._schema import SCHEMA, Schema
from chatproto._schema import error_code_of as validation_error_code
from chatproto._state import State
from chatproto.messages import MESSAGE_TYPES, SEND_ROOM_OVERHEAD, Limits, Message, Sender
from chatproto.names import CASEMAPPING, fold

__version__ = "0.1.0"

DEFAULT_PORT = 7878
"""The TCP port spec v1 names for chatproto servers."""

HANDSHAKE_FLOOR_S = 5
"""A server closes no connection for its handshake or idle timeout sooner than this many
seconds after accepting it (CP-HS-12): the time a client can count on to send HELLO."""

__all__ = [
    "CASEMAPPING",
    "DEFAULT_PORT",
    "ERROR_REGISTRY",
    "FINAL_RESPONSE_TYPES",
    "HANDSHAKE_FLOOR_S",
    "HEADER_FORMAT",
    "HEADER_SIZE",
    "HEADER_STRUCT",
    "LENGTH_FIELD_SIZE",
    "MAX_FRAME_LENGTH",
    "MESSAGE_TYPES",
    "MIN_FRAME_LENGTH",
    "NEED_DATA",
    "PRE_WELCOME_FRAME_LENGTH",
    "PROTOCOL_VERSION",
    "SCHEMA",
    "SEND_ROOM_OVERHEAD",
    "SPEC_REVISION",
    "SUPPORTED_VERSIONS",
    "Connection",
    "ConnectionClosed",
    "ErrorCode",
    "ErrorInfo",
    "Event",
    "FinalResponse",
    "FrameDecoder",
    "FrameRejected",
    "IntermediateFrame",
    "Limits",
    "LocalProtocolError",
    "Message",
    "NeedData",
    "Outstanding",
    "PendingRequests",
    "ProtocolError",
    "RemoteProtocolError",
    "Schema",
    "Sender",
    "State",
    "decode_frame",
    "encode",
    "error_message",
    "error_name",
    "fold",
    "is_final_response",
    "known_error_code",
    "limit_breach",
    "validation_error_code",
]
