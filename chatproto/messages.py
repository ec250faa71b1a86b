"""The messages of chatproto v1: each declared once, here.

A message class is the single declaration of one message type. From it come:

* the typed API: the class itself, a frozen pydantic model;
* the wire schema: a ``construct.Struct`` of the body, derived from the field
  types' subcons in declaration order, the fast codec generated from it and the
  state table's rows, all held by one ``chatproto._schema.Schema``;
* the spec's field tables, the test vectors and the conformance kit's frames.

Declaring a class registers nothing: ``MESSAGE_CLASSES``, collected at the end
of this module, is what spec v1's ``SCHEMA`` is built from.

Every frame starts with the same header (length, type, request_id); the body
holds the fields below ``request_id`` in the order they are declared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatproto._errors import ErrorCode, known_error_code
from chatproto._fields import (
    MESSAGE_TEXT_MAX_BYTES,
    TOPIC_MAX_BYTES,
    Capabilities,
    FieldError,
    FieldType,
    Flag,
    FrameLimit,
    Label,
    LeaveKindCode,
    MessageText,
    Nickname,
    NoticeText,
    OptionalNickname,
    OptionalPassword,
    PageSize,
    Password,
    RoomName,
    ShortText,
    Token,
    Topic,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Version,
)
from chatproto._header import MIN_FRAME_LENGTH
from chatproto.names import NICK_MAX_BYTES, ROOM_NAME_MAX_BYTES


class Sender(StrEnum):
    """Which peer may send a message type."""

    CLIENT = "client"
    SERVER = "server"
    BOTH = "both"


class LeaveKind(IntEnum):
    """Why a member left a room (MEMBER_LEFT.kind)."""

    PART = 0
    QUIT = 1
    KICK = 2
    BAN = 3
    DISCONNECT = 4


def _wire_name(class_name: str) -> str:
    out = []
    for index, char in enumerate(class_name):
        if char.isupper() and index:
            out.append("_")
        out.append(char.upper())
    return "".join(out)


class Message(BaseModel):
    """Base of every message. ``request_id`` lives in the frame header."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    TYPE: ClassVar[int]
    """The type code (header ``type``)."""
    NAME: ClassVar[str]
    """The wire name used by the spec (``SEND_ROOM``)."""
    SENDER: ClassVar[Sender]
    FINAL_RESPONSE: ClassVar[type[Message] | None] = None
    """For a request: the type of the message that ends its answer. Each answer is
    declared before the requests that name it."""

    request_id: Uint32 = Field(
        default=0,
        description="Header field. A client request's id; the id a response answers; "
        "0 for an event.",
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if is_message_type(cls):
            cls.NAME = _wire_name(cls.__name__)

    @property
    def is_request(self) -> bool:
        """True when this message expects a final response from the server."""
        return self.FINAL_RESPONSE is not None

    @classmethod
    def unvalidated(cls, **values: Any) -> Self:
        """A message built from values the caller made or has already checked, unchecked.

        For a server's own answers and events on its hot path (the OK of a SEND_ROOM,
        the ROOM_MESSAGE built from a stored message): what ``model_construct`` does,
        at a fraction of its cost. Fields left out take their defaults. Anything read
        off the wire goes through validation instead (the codec's decoders).
        """
        missing = cls.model_fields.keys() - values.keys()
        for name in missing:
            values[name] = cls.model_fields[name].get_default(call_default_factory=True)
        model = object.__new__(cls)
        object.__setattr__(model, "__dict__", values)
        object.__setattr__(model, "__pydantic_fields_set__", set(values))
        object.__setattr__(model, "__pydantic_extra__", None)
        object.__setattr__(model, "__pydantic_private__", None)
        return model


def is_message_type(cls: type[Message]) -> bool:
    """True for a class that declares a message type (not a base such as _ClientRequest)."""
    return "TYPE" in cls.__dict__


def messages_by_code(classes: Iterable[type[Message]]) -> Mapping[int, type[Message]]:
    """``classes`` by type code, in the order of the codes; a code or name twice is an error."""
    by_code: dict[int, type[Message]] = {}
    names: set[str] = set()
    for cls in classes:
        if cls.TYPE in by_code:
            raise TypeError(f"type code {cls.TYPE:#06x} declared twice "
                            f"({by_code[cls.TYPE].__name__} and {cls.__name__})")
        if cls.NAME in names:
            raise TypeError(f"message name {cls.NAME} declared twice")
        by_code[cls.TYPE] = cls
        names.add(cls.NAME)
    return MappingProxyType(dict(sorted(by_code.items())))


class _ServerMessage(Message):
    SENDER: ClassVar[Sender] = Sender.SERVER


class Ok(_ServerMessage):
    """The request named by request_id succeeded."""

    TYPE = 0x0003
    msg_id: Uint64 = Field(
        default=0, description="Id of the message the request created; 0 if none."
    )
    seq: Uint64 = Field(
        default=0, description="Room sequence number of that message; 0 if none."
    )
    timestamp_ms: Uint64 = Field(
        default=0, description="Server time of that message, ms since the Unix epoch; 0 if none."
    )


class _ClientRequest(Message):
    SENDER: ClassVar[Sender] = Sender.CLIENT
    FINAL_RESPONSE: ClassVar[type[Message] | None] = Ok


# ------------------------------------------------------------------ connection


class Limits(BaseModel):
    """What a server advertises in WELCOME: the limits of this connection.

    The defaults are the reference server's; the protocol caps are checked here.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    max_frame_size: FrameLimit = Field(
        default=65536, description="Largest length field the server accepts."
    )
    max_nick_length: Uint8 = Field(default=32, description="Longest nickname, in bytes.")
    max_room_name_length: Uint8 = Field(
        default=64, description="Longest room name, in bytes, '#' included."
    )
    max_message_length: Uint16 = Field(
        default=4096, description="Longest message text, in bytes of UTF-8."
    )
    max_topic_length: Uint16 = Field(default=390, description="Longest topic, in bytes of UTF-8.")
    max_rooms_per_user: Uint16 = Field(
        default=32, description="Most rooms one connection may be in."
    )
    msg_rate_burst: Uint16 = Field(
        default=20,
        description="Message bucket size (SEND_ROOM, SEND_PRIVATE): requests allowed at once.",
    )
    msg_rate_interval_ms: Uint32 = Field(
        default=500, description="Message bucket refill: one token per this many milliseconds."
    )
    cmd_rate_burst: Uint16 = Field(
        default=40, description="Command bucket size (every other request but PING, PONG, QUIT)."
    )
    cmd_rate_interval_ms: Uint32 = Field(
        default=250, description="Command bucket refill: one token per this many milliseconds."
    )
    keepalive_interval_s: Uint16 = Field(
        default=30, description="Seconds of silence after which the server sends PING."
    )
    idle_timeout_s: Uint16 = Field(
        default=90, description="Seconds without any frame from the client before it is closed."
    )
    history_on_join: Uint16 = Field(
        default=50, description="Most messages replayed by a plain JOIN."
    )
    history_page_max: Uint16 = Field(
        default=200, description="Most messages one HISTORY request returns."
    )

    @model_validator(mode="after")
    def _within_protocol_caps(self) -> Limits:
        caps = {
            "max_nick_length": (1, NICK_MAX_BYTES),
            "max_room_name_length": (2, ROOM_NAME_MAX_BYTES),
            "max_message_length": (1, MESSAGE_TEXT_MAX_BYTES),
            "max_topic_length": (0, TOPIC_MAX_BYTES),
            "max_rooms_per_user": (1, 65535),
            "msg_rate_burst": (1, 65535),
            "cmd_rate_burst": (1, 65535),
            "keepalive_interval_s": (1, 65535),
            "idle_timeout_s": (1, 65535),
            "history_page_max": (1, 65535),
        }
        for name, (low, high) in caps.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise FieldError(ErrorCode.INVALID_FIELD, f"{name} must be {low}..{high}")
        for name in ("msg_rate_interval_ms", "cmd_rate_interval_ms"):
            if getattr(self, name) < 1:
                raise FieldError(ErrorCode.INVALID_FIELD, f"{name} must be at least 1")
        if self.idle_timeout_s <= self.keepalive_interval_s:
            raise FieldError(ErrorCode.INVALID_FIELD,
                             "idle_timeout_s must exceed keepalive_interval_s")
        # CP-HS-10: a SEND_ROOM at the advertised limits must fit in one frame.
        largest_send_room = SEND_ROOM_OVERHEAD + self.max_room_name_length + self.max_message_length
        if largest_send_room > self.max_frame_size:
            raise FieldError(ErrorCode.INVALID_FIELD,
                             f"max_frame_size must be at least {largest_send_room} for these "
                             "room name and message lengths")
        return self


class _WelcomeHead(_ServerMessage):
    version: Version = Field(description="The protocol version chosen for this connection.")
    server_name: Label = Field(description="Server software name and version.")
    nick: Nickname = Field(description="The nickname the client now holds.")
    logged_in: Flag = Field(description="1 when the nick was authenticated as an account.")
    casemapping: Label = Field(description='How names fold; "ascii" in version 1.')
    capabilities: Capabilities = Field(
        default=(), description="Capabilities in effect: those both peers listed."
    )


class Welcome(Limits, _WelcomeHead):
    """The server accepts the HELLO and advertises what applies to this connection.

    Its fields are the head above, then every field of ``Limits`` in order.
    """

    TYPE = 0x0002

    @property
    def limits(self) -> Limits:
        return Limits(**{name: getattr(self, name) for name in Limits.model_fields})


class Hello(_ClientRequest):
    """First frame of a connection: versions, identity, capabilities."""

    TYPE = 0x0001
    FINAL_RESPONSE = Welcome
    min_version: Version = Field(description="Lowest protocol version the client speaks.")
    max_version: Version = Field(description="Highest protocol version the client speaks.")
    nick: Nickname = Field(description="The nickname to use on this connection.")
    password: OptionalPassword = Field(
        default="", description="Account password for a registered nick; empty for a guest."
    )
    client_name: Label = Field(description="Client software name and version, for logs.")
    capabilities: Capabilities = Field(
        default=(), description="Capabilities the client supports."
    )


class Error(Message):
    """The request named by request_id failed, or (request_id 0) the connection did."""

    TYPE = 0x0004
    SENDER = Sender.BOTH
    code: Uint16 = Field(description="Error code from the registry.")
    fatal: Flag = Field(description="1 when the sender closes the connection after this frame.")
    retry_after_ms: Uint32 = Field(
        default=0, description="How long to wait before retrying; 0 when it does not apply."
    )
    detail: ShortText = Field(default="", description="Human-readable explanation.")

    @property
    def error_code(self) -> ErrorCode | None:
        """The registry entry for ``code``, or None for a code this version does not know."""
        return known_error_code(self.code)


class Pong(Message):
    """Answers a PING; carries its token and request_id unchanged."""

    TYPE = 0x0006
    SENDER = Sender.BOTH
    token: Token = Field(default=b"", description="The token of the PING being answered.")


class Ping(Message):
    """Asks the peer for a PONG echoing the token (keepalive and barrier)."""

    TYPE = 0x0005
    SENDER = Sender.BOTH
    FINAL_RESPONSE = Pong
    token: Token = Field(default=b"", description="Opaque octets the PONG echoes.")


class Bye(_ServerMessage):
    """Answers QUIT; the server closes the connection after it."""

    TYPE = 0x0008
    reason: ShortText = Field(default="", description="Parting words from the server.")


class Quit(_ClientRequest):
    """The client is leaving; the server answers BYE and closes."""

    TYPE = 0x0007
    FINAL_RESPONSE = Bye
    reason: ShortText = Field(default="", description="Shown to members of the client's rooms.")


class Notice(_ServerMessage):
    """Server text for the user, such as the message of the day."""

    TYPE = 0x0009
    text: NoticeText = Field(description="One notice, may span lines.")


# -------------------------------------------------------------- users, accounts


class Nick(_ClientRequest):
    """Change the connection's nickname."""

    TYPE = 0x0101
    nick: Nickname = Field(description="The new nickname.")


class Register(_ClientRequest):
    """Register the current nickname as an account protected by a password."""

    TYPE = 0x0102
    password: Password = Field(description="The account's password.")


class Login(_ClientRequest):
    """Log in to an account and take its nickname."""

    TYPE = 0x0103
    nick: Nickname = Field(description="The account's nickname.")
    password: Password = Field(description="The account's password.")


class Oper(_ClientRequest):
    """Authenticate as a server operator."""

    TYPE = 0x0104
    name: Label = Field(description="Operator name.")
    password: Password = Field(description="Operator password.")


class Away(_ClientRequest):
    """Set (non-empty message) or clear (empty) the away status."""

    TYPE = 0x0105
    message: ShortText = Field(default="", description="Away message; empty means back.")


class ListUsers(_ClientRequest):
    """List the connected users: USER_INFO frames, then OK."""

    TYPE = 0x0106


class UserInfo(_ServerMessage):
    """One user, in answer to LIST_USERS or LIST_MEMBERS."""

    TYPE = 0x0107
    nick: Nickname = Field(description="The user's nickname.")
    away: Flag = Field(description="1 when the user is away.")
    away_message: ShortText = Field(default="", description="The away message, if away.")
    operator: Flag = Field(description="1 when the user is a server operator.")
    registered: Flag = Field(description="1 when the user is logged in to an account.")


class NickChanged(_ServerMessage):
    """A user who shares a room with the receiver changed nickname."""

    TYPE = 0x0108
    old_nick: Nickname = Field(description="The nickname before.")
    new_nick: Nickname = Field(description="The nickname after.")


class Presence(_ServerMessage):
    """A user who shares a room with the receiver went away or came back."""

    TYPE = 0x0109
    nick: Nickname = Field(description="The user.")
    away: Flag = Field(description="1 when now away.")
    away_message: ShortText = Field(default="", description="The away message, if away.")


# ----------------------------------------------------------------------- rooms


class Join(_ClientRequest):
    """Join a room (creating it if needed); ROOM_INFO and history come before OK."""

    TYPE = 0x0201
    room: RoomName = Field(description="The room to join.")
    resume: Flag = Field(
        default=False, description="1 to resume: replay every message after last_seen_seq."
    )
    last_seen_seq: Uint64 = Field(
        default=0, description="With resume: the last sequence number the client saw."
    )


class Part(_ClientRequest):
    """Leave a room."""

    TYPE = 0x0202
    room: RoomName = Field(description="The room to leave.")
    reason: ShortText = Field(default="", description="Shown to the remaining members.")


class ListRooms(_ClientRequest):
    """List the rooms: ROOM_INFO frames, then OK."""

    TYPE = 0x0203


class RoomInfo(_ServerMessage):
    """One room, in answer to LIST_ROOMS or JOIN."""

    TYPE = 0x0204
    room: RoomName = Field(description="The room.")
    topic: Topic = Field(default="", description="Its topic; empty if none.")
    member_count: Uint32 = Field(description="How many members it has now.")
    last_seq: Uint64 = Field(description="Sequence number of its latest message; 0 if none.")


class SetTopic(_ClientRequest):
    """Set a room's topic (empty clears it)."""

    TYPE = 0x0205
    room: RoomName = Field(description="The room.")
    topic: Topic = Field(description="The new topic.")


class ListMembers(_ClientRequest):
    """List a room's members: USER_INFO frames, then OK."""

    TYPE = 0x0206
    room: RoomName = Field(description="The room.")


class MemberJoined(_ServerMessage):
    """Someone joined a room the receiver is in."""

    TYPE = 0x0207
    room: RoomName = Field(description="The room.")
    nick: Nickname = Field(description="Who joined.")


class MemberLeft(_ServerMessage):
    """Someone left a room the receiver is in (or the receiver was removed)."""

    TYPE = 0x0208
    room: RoomName = Field(description="The room.")
    nick: Nickname = Field(description="Who left.")
    kind: LeaveKindCode = Field(description="0 PART, 1 QUIT, 2 KICK, 3 BAN, 4 DISCONNECT.")
    reason: ShortText = Field(default="", description="The reason given, if any.")
    by: OptionalNickname = Field(default="", description="The operator, for KICK and BAN.")


class TopicChanged(_ServerMessage):
    """A room's topic changed."""

    TYPE = 0x0209
    room: RoomName = Field(description="The room.")
    topic: Topic = Field(description="The new topic.")
    by: OptionalNickname = Field(default="", description="Who set it; empty for the server.")


class History(_ClientRequest):
    """Page backwards through a room's history: ROOM_MESSAGE frames, then OK."""

    TYPE = 0x020A
    room: RoomName = Field(description="The room.")
    before_seq: Uint64 = Field(
        default=0, description="Return messages with seq below this; 0 for the newest."
    )
    limit: PageSize = Field(description="Most messages wanted (capped by history_page_max).")


class HistoryGap(_ServerMessage):
    """Messages first_seq..last_seq of a room are no longer available."""

    TYPE = 0x020B
    room: RoomName = Field(description="The room.")
    first_seq: Uint64 = Field(description="First missing sequence number.")
    last_seq: Uint64 = Field(description="Last missing sequence number.")


# -------------------------------------------------------------------- messages


class SendRoom(_ClientRequest):
    """Post text to a room; OK carries its identity; the other members get it."""

    TYPE = 0x0301
    room: RoomName = Field(description="The room, which the sender has joined.")
    client_msg_id: Uint64 = Field(
        default=0, description="Nonzero makes a resend idempotent; 0 for none."
    )
    text: MessageText = Field(description="The message.")


def fixed_frame_length(cls: type[Message]) -> int:
    """Octets of a ``cls`` frame's length field that no value changes.

    The header after the length field, every integer field, and the length
    prefix of every string or list: what a frame holds besides its texts.
    """
    total = MIN_FRAME_LENGTH
    for name, info in cls.model_fields.items():
        if name == "request_id":
            continue
        (field_type,) = (meta for meta in info.metadata if isinstance(meta, FieldType))
        total += field_type.wire.prefix_size
    return total


SEND_ROOM_OVERHEAD = fixed_frame_length(SendRoom)
"""Octets of a SEND_ROOM frame's length besides the room name and text (CP-HS-10)."""


class SendPrivate(_ClientRequest):
    """Send text to one user only."""

    TYPE = 0x0302
    nick: Nickname = Field(description="The addressee.")
    client_msg_id: Uint64 = Field(
        default=0, description="Nonzero makes a resend idempotent; 0 for none."
    )
    text: MessageText = Field(description="The message.")


class RoomMessage(_ServerMessage):
    """A message posted to a room, live or (history = 1) replayed."""

    TYPE = 0x0303
    room: RoomName = Field(description="The room.")
    seq: Uint64 = Field(description="Dense per-room sequence number, from 1.")
    msg_id: Uint64 = Field(description="Server-unique message id.")
    timestamp_ms: Uint64 = Field(description="Server time of acceptance, ms since the Unix epoch.")
    sender: Nickname = Field(description="Who posted it (nickname at the time).")
    client_msg_id: Uint64 = Field(default=0, description="The sender's client_msg_id, or 0.")
    history: Flag = Field(default=False, description="1 when replayed from history.")
    text: MessageText = Field(description="The message.")


class PrivateMessage(_ServerMessage):
    """A private message to the receiver."""

    TYPE = 0x0304
    msg_id: Uint64 = Field(description="Server-unique message id.")
    timestamp_ms: Uint64 = Field(description="Server time of acceptance, ms since the Unix epoch.")
    sender: Nickname = Field(description="Who sent it.")
    client_msg_id: Uint64 = Field(default=0, description="The sender's client_msg_id, or 0.")
    text: MessageText = Field(description="The message.")


# ------------------------------------------------------------------- operators


class Kick(_ClientRequest):
    """Operator: remove a user from a room."""

    TYPE = 0x0401
    room: RoomName = Field(description="The room.")
    nick: Nickname = Field(description="The user to remove.")
    reason: ShortText = Field(default="", description="Shown to the room.")


class Ban(_ClientRequest):
    """Operator: ban a nickname from a room (and remove it if present)."""

    TYPE = 0x0402
    room: RoomName = Field(description="The room.")
    nick: Nickname = Field(description="The nickname to ban.")
    reason: ShortText = Field(default="", description="Shown to the room.")


class Unban(_ClientRequest):
    """Operator: lift a ban."""

    TYPE = 0x0403
    room: RoomName = Field(description="The room.")
    nick: Nickname = Field(description="The nickname to unban.")


class Mute(_ClientRequest):
    """Operator: stop (muted = 1) or allow again (0) a member's messages in a room."""

    TYPE = 0x0404
    room: RoomName = Field(description="The room.")
    nick: Nickname = Field(description="The member.")
    muted: Flag = Field(description="1 to mute, 0 to unmute.")


class MuteChanged(_ServerMessage):
    """A member of a room the receiver is in was muted or unmuted."""

    TYPE = 0x0405
    room: RoomName = Field(description="The room.")
    nick: Nickname = Field(description="The member.")
    muted: Flag = Field(description="1 when now muted.")
    by: OptionalNickname = Field(default="", description="The operator.")


MESSAGE_CLASSES: tuple[type[Message], ...] = tuple(
    value for value in dict(globals()).values()
    if isinstance(value, type) and issubclass(value, Message) and is_message_type(value)
    and value.__module__ == __name__
)
"""Every message type declared above, in declaration order (each answer before the
requests that name it). ``chatproto._schema.SCHEMA`` is built from these."""

MESSAGE_TYPES: Mapping[int, type[Message]] = messages_by_code(MESSAGE_CLASSES)
"""Every message type of spec v1, by type code, in the order of the codes (read-only)."""


def message_class(name: str) -> type[Message]:
    """The message class with wire name ``name`` (``"SEND_ROOM"``)."""
    for cls in MESSAGE_TYPES.values():
        if cls.NAME == name:
            return cls
    raise KeyError(name)
