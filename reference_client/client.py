"""The asyncio client library: awaitable requests, an event stream, reconnection.

``ChatClient`` drives one ``chatproto.Connection`` over a TCP (or TLS) stream.
Every request gets a fresh request id and an awaitable that resolves with the
server's final answer (OK, WELCOME, PONG, BYE) or raises ``ChatError`` with the
spec's code. Everything the server sends unasked (room messages, joins,
notices) comes out of ``events()`` as the pydantic message models, together
with the client's own events (``Reconnecting``, ``Reconnected``...).

Network conditions never escape as tracebacks: they become ``ConnectionLost``
(pending requests) and ``Disconnected`` (the event stream), each with a
one-line reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from pydantic import ValidationError

from chatproto import (
    DEFAULT_PORT,
    ERROR_REGISTRY,
    MAX_FRAME_LENGTH,
    PROTOCOL_VERSION,
    Connection,
    ConnectionClosed,
    ErrorCode,
    FinalResponse,
    FrameRejected,
    IntermediateFrame,
    LocalProtocolError,
    PendingRequests,
    RemoteProtocolError,
    Sender,
    __version__,
    error_message,
    error_name,
    fold,
    known_error_code,
    validation_error_code,
)
from chatproto.messages import (
    Away,
    Ban,
    Error,
    Hello,
    History,
    HistoryGap,
    Join,
    Kick,
    Limits,
    ListMembers,
    ListRooms,
    ListUsers,
    Login,
    MemberJoined,
    MemberLeft,
    Message,
    Mute,
    Nick,
    NickChanged,
    Ok,
    Oper,
    Part,
    Ping,
    Pong,
    Quit,
    Register,
    RoomInfo,
    RoomMessage,
    SendPrivate,
    SendRoom,
    SetTopic,
    TopicChanged,
    Unban,
    UserInfo,
    Welcome,
)
from reference_client.events import (
    ClientEvent,
    Disconnected,
    HistoryGapDetected,
    Reconnected,
    Reconnecting,
)

log = logging.getLogger("chatproto.client")

DEFAULT_CLIENT_NAME = f"chatproto-reference-client/{__version__}"

# Errors after which trying again with the same nick and password is pointless.
_GIVE_UP = {ErrorCode.AUTH_FAILED, ErrorCode.NICK_REGISTERED, ErrorCode.INVALID_NICK,
            ErrorCode.UNSUPPORTED_VERSION}

M = TypeVar("M", bound=Message)


class ChatError(Exception):
    """The server (or the protocol rules, locally) refused a request."""

    def __init__(self, code: int, detail: str = "", *, retry_after_ms: int = 0,
                 request: str = "") -> None:
        self.code = code
        self.detail = detail
        self.retry_after_ms = retry_after_ms
        self.request = request
        super().__init__(self._line())

    @property
    def error_code(self) -> ErrorCode | None:
        return known_error_code(self.code)

    @property
    def name(self) -> str:
        return error_name(self.code)

    def _line(self) -> str:
        wait = f" (retry in {self.retry_after_ms} ms)" if self.retry_after_ms else ""
        return f"{self.request or 'request'} refused: {self.name}: {self.detail}{wait}"


class HandshakeFailed(ChatError):
    """HELLO was refused: nick in use, wrong password, no common version..."""


class TlsFailure(Enum):
    """Why a TLS handshake failed, in terms a person can act on (the value says it)."""

    NOT_TLS = "the server does not speak TLS"
    UNTRUSTED = "the server's certificate is not trusted (self-signed, or from an unknown CA)"
    WRONG_NAME = "the server's certificate was issued for another name"


# OpenSSL's reasons when the bytes that came back are not a TLS record at all:
# the peer is a plain server (ours answers a ClientHello with an ERROR frame).
_NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL",
                              "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE",
                              "HTTP_REQUEST", "RECORD_TOO_LARGE"})
# X509_V_ERR_* codes: no trusted chain (2, 18, 19, 20, 21), or a name mismatch (62, 64).
_UNTRUSTED_CODES = frozenset({2, 18, 19, 20, 21})
_WRONG_NAME_CODES = frozenset({62, 64})


def tls_failure(exc: BaseException) -> TlsFailure | None:
    """The ``TlsFailure`` an ``ssl`` exception stands for; None for any other failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        # verify_code is only set on the errors OpenSSL raises, not on hand-made ones.
        code = getattr(exc, "verify_code", None)
        if code in _UNTRUSTED_CODES:
            return TlsFailure.UNTRUSTED
        if code in _WRONG_NAME_CODES:
            return TlsFailure.WRONG_NAME
        return None
    if isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None) in _NOT_TLS_REASONS:
        return TlsFailure.NOT_TLS
    return None


class ConnectionLost(Exception):
    """The connection ended (or could not be made); the message says why in one line.

    ``tls_failure`` is set when it could not be made because the TLS handshake
    failed in a way a person can fix (the command-line client says how).
    """

    def __init__(self, reason: str, code: int | None = None,
                 retry_after_ms: int = 0, *, tls_failure: TlsFailure | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.retry_after_ms = retry_after_ms
        self.tls_failure = tls_failure


@dataclass(slots=True)
class RoomState:
    """What the client knows of a room it is in."""

    name: str
    topic: str = ""
    last_seq: int = 0
    members: set[str] = field(default_factory=set)
    missing: tuple[int, int] | None = None
    """The seqs a resume's replay left out (it sends at most history_page_max, CP-HIST-15),
    still to be fetched with HISTORY (CP-HIST-14); live messages wait in ``held``."""
    held: list[RoomMessage] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JoinResult:
    info: RoomInfo
    history: list[RoomMessage]
    gap: HistoryGap | None
    members: list[UserInfo]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[RoomMessage]
    gap: HistoryGap | None


_Answer = asyncio.Future[tuple[list[Message], Message]]
"""Where a request's awaiter gets (intermediate frames, final answer)."""


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    failure = tls_failure(exc)
    if failure is not None:
        return failure.value
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the server's certificate is not valid: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


class ChatClient:
    """One user's connection to a chatproto server. Create it with ``connect``."""

    def __init__(self, host: str, port: int, *, nick: str, password: str = "",
                 tls: ssl.SSLContext | None = None, client_name: str = DEFAULT_CLIENT_NAME,
                 reconnect: bool = False, reconnect_max_delay: float = 30.0,
                 connect_timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.nick = nick
        self._password = password
        self._tls = tls
        self._client_name = client_name
        self.reconnect = reconnect
        self.reconnect_max_delay = reconnect_max_delay
        self.connect_timeout = connect_timeout
        self.welcome: Welcome | None = None
        self.rooms: dict[str, RoomState] = {}
        """Joined rooms by folded name."""
        self._msg_ids = itertools.count(random.randrange(1, 2**40))
        self._pending: PendingRequests[_Answer] = PendingRequests()
        """Requests sent and not yet answered; it also numbers them, across reconnections."""
        self._events: asyncio.Queue[Message | ClientEvent | None] = asyncio.Queue()
        self._conn = Connection(Sender.CLIENT)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False
        self._finished = False
        self._last_error: Error | None = None
        self._rate_limited_until: dict[type[Message], float] = {}
        """Per request type refused with RATE_LIMITED: the loop time it may be sent again."""
        self._rejoining: set[int] = set()
        """Request ids of the JOINs a reconnection sends: their replay becomes events."""

    # ---------------------------------------------------------------- opening

    @classmethod
    async def connect(cls, host: str, port: int = DEFAULT_PORT, **options: object) -> ChatClient:
        """Connect, say HELLO and return once the server answered WELCOME.

        Raises HandshakeFailed (the server refused the HELLO) or ConnectionLost.
        """
        client = cls(host, port, **options)  # type: ignore[arg-type]
        await client._open()
        return client

    @property
    def limits(self) -> Limits:
        assert self.welcome is not None
        return self.welcome.limits

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._finished

    async def _open(self) -> None:
        try:
            hello = Hello(request_id=self._pending.next_id(), min_version=PROTOCOL_VERSION,
                          max_version=PROTOCOL_VERSION, nick=self.nick, password=self._password,
                          client_name=self._client_name)
        except ValidationError as exc:
            raise HandshakeFailed(int(validation_error_code(exc)), "invalid nick or password",
                                  request="HELLO") from None
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self._tls,
                    server_hostname=self.host if self._tls else None)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            host = f"[{self.host}]" if ":" in self.host else self.host
            raise ConnectionLost(
                f"cannot connect to {host}:{self.port}: {_network_reason(exc)}",
                tls_failure=tls_failure(exc)) from None
        self._conn = Connection(Sender.CLIENT)
        self._writer = writer
        self._last_error = None
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(reader))
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, welcome = await self._exchange(hello)
        except TimeoutError:
            await self._drop_connection()
            raise ConnectionLost(f"no WELCOME from {self.host}:{self.port} within "
                                 f"{self.connect_timeout} s") from None
        except ChatError as exc:
            await self._drop_connection()
            raise HandshakeFailed(exc.code, exc.detail, retry_after_ms=exc.retry_after_ms,
                                  request="HELLO") from None
        except (ConnectionLost, asyncio.CancelledError):
            # Cancelled: the user left before WELCOME, so the connection is just closed
            # (a QUIT is not allowed before WELCOME).
            await self._drop_connection()
            raise
        assert isinstance(welcome, Welcome)
        self.welcome = welcome
        self.nick = welcome.nick

    # --------------------------------------------------------------- requests

    async def _exchange(self, request: Message) -> tuple[list[Message], Message]:
        """Send one request; return (intermediate frames, final answer)."""
        loop = asyncio.get_running_loop()
        wait = self._rate_limited_until.get(type(request), 0.0) - loop.time()
        if wait > 0:
            # A request of a kind refused with RATE_LIMITED waits out its retry_after_ms
            # (CP-RATE-5); other kinds go at once, and are refused by the server if need be.
            await asyncio.sleep(wait)
        if self._writer is None or self._finished:
            raise ConnectionLost("not connected")
        try:
            frame = self._conn.send(request)
        except LocalProtocolError as exc:
            raise ChatError(int(exc.code), exc.detail, request=request.NAME) from None
        future: _Answer = loop.create_future()
        self._pending.track(request, future)
        self._writer.write(frame)
        frames, final = await future
        if isinstance(final, Error) and final.code == ErrorCode.RATE_LIMITED:
            self._rate_limited_until[type(request)] = loop.time() + final.retry_after_ms / 1000
        if isinstance(final, Error):
            raise ChatError(final.code, final.detail, retry_after_ms=final.retry_after_ms,
                            request=request.NAME)
        due = request.FINAL_RESPONSE
        if due is not None and not isinstance(final, due):
            # A server that breaks CP-REQ-4 (a PONG for a JOIN): refused, not crashed.
            raise ChatError(int(ErrorCode.STATE_VIOLATION),
                            f"answered with {final.NAME}, not {due.NAME}", request=request.NAME)
        return frames, final

    def _build(self, cls: type[M], **fields: object) -> M:
        """A request with a fresh id; a field the spec refuses raises ChatError at once."""
        try:
            return cls(request_id=self._pending.next_id(), **fields)
        except ValidationError as exc:
            errors = exc.errors()
            where = ".".join(str(part) for part in errors[0]["loc"]) if errors else ""
            raise ChatError(int(validation_error_code(exc)), f"invalid {where}".strip(),
                            request=cls.NAME) from None

    async def _ok(self, cls: type[Message], **fields: object) -> Ok:
        _, final = await self._exchange(self._build(cls, **fields))
        assert isinstance(final, Ok)
        return final

    async def join(self, room: str, *, resume_from: int | None = None) -> JoinResult:
        """Join ``room``; with ``resume_from``, replay the messages after that seq (at most
        history_page_max of them, the oldest: page on with ``history`` up to the
        ROOM_INFO's last_seq)."""
        request = self._build(Join, room=room, resume=resume_from is not None,
                              last_seen_seq=resume_from or 0)
        return await self._join(request)

    async def _join(self, request: Join) -> JoinResult:
        frames, _ = await self._exchange(request)  # room state: see _apply
        info = next(f for f in frames if isinstance(f, RoomInfo))
        history = [f for f in frames if isinstance(f, RoomMessage)]
        gap = next((f for f in frames if isinstance(f, HistoryGap)), None)
        state = self.rooms.setdefault(fold(info.room), RoomState(info.room))
        try:
            members = await self.list_members(info.room)
        except ChatError:  # rate-limited, say: the join itself stands
            members = []
        state.members = {member.nick for member in members}
        return JoinResult(info, history, gap, members)

    async def part(self, room: str, reason: str = "") -> Ok:
        ok = await self._ok(Part, room=room, reason=reason)
        self.rooms.pop(fold(room), None)
        return ok

    def _next_client_msg_id(self) -> int:
        return next(self._msg_ids)

    async def send_room(self, room: str, text: str, *, client_msg_id: int | None = None) -> Ok:
        """Post to a room; a resend with the same ``client_msg_id`` is not delivered twice."""
        msg_id = self._next_client_msg_id() if client_msg_id is None else client_msg_id
        return await self._ok(SendRoom, room=room, text=text, client_msg_id=msg_id)

    async def send_private(self, nick: str, text: str, *,
                           client_msg_id: int | None = None) -> Ok:
        msg_id = self._next_client_msg_id() if client_msg_id is None else client_msg_id
        return await self._ok(SendPrivate, nick=nick, text=text, client_msg_id=msg_id)

    async def _list(self, request: Message, kind: type[M]) -> list[M]:
        frames, _ = await self._exchange(request)
        return [frame for frame in frames if isinstance(frame, kind)]

    async def list_users(self) -> list[UserInfo]:
        return await self._list(self._build(ListUsers), UserInfo)

    async def list_rooms(self) -> list[RoomInfo]:
        return await self._list(self._build(ListRooms), RoomInfo)

    async def list_members(self, room: str) -> list[UserInfo]:
        return await self._list(self._build(ListMembers, room=room), UserInfo)

    async def set_topic(self, room: str, topic: str) -> Ok:
        ok = await self._ok(SetTopic, room=room, topic=topic)
        if (state := self.rooms.get(fold(room))) is not None:
            state.topic = topic
        return ok

    async def away(self, message: str = "") -> Ok:
        return await self._ok(Away, message=message)

    async def change_nick(self, nick: str) -> Ok:
        ok = await self._ok(Nick, nick=nick)
        self._renamed(self.nick, nick)
        self.nick = nick
        return ok

    async def register(self, password: str) -> Ok:
        ok = await self._ok(Register, password=password)
        self._password = password  # a reconnect logs in to the new account
        return ok

    async def login(self, nick: str, password: str) -> Ok:
        ok = await self._ok(Login, nick=nick, password=password)
        # OK does not say how the account spells the nick; the user list does.
        spelled = nick
        with contextlib.suppress(ChatError):
            spelled = next((user.nick for user in await self.list_users()
                            if fold(user.nick) == fold(nick)), nick)
        self._renamed(self.nick, spelled)
        self.nick, self._password = spelled, password
        return ok

    async def oper(self, name: str, password: str) -> Ok:
        return await self._ok(Oper, name=name, password=password)

    async def kick(self, room: str, nick: str, reason: str = "") -> Ok:
        return await self._ok(Kick, room=room, nick=nick, reason=reason)

    async def ban(self, room: str, nick: str, reason: str = "") -> Ok:
        return await self._ok(Ban, room=room, nick=nick, reason=reason)

    async def unban(self, room: str, nick: str) -> Ok:
        return await self._ok(Unban, room=room, nick=nick)

    async def mute(self, room: str, nick: str, muted: bool = True) -> Ok:
        return await self._ok(Mute, room=room, nick=nick, muted=muted)

    async def history(self, room: str, *, before_seq: int = 0, limit: int = 50) -> HistoryPage:
        frames, _ = await self._exchange(self._build(History, room=room, before_seq=before_seq,
                                                     limit=limit))
        return HistoryPage([f for f in frames if isinstance(f, RoomMessage)],
                           next((f for f in frames if isinstance(f, HistoryGap)), None))

    async def ping(self, token: bytes = b"") -> Pong:
        """PING the server; everything it sent before the PONG has been received (a barrier)."""
        _, final = await self._exchange(self._build(Ping, token=token))
        assert isinstance(final, Pong)
        return final

    async def quit(self, reason: str = "") -> None:
        """Leave politely: QUIT, wait for BYE, close. No reconnection after this."""
        self._closing = True
        with contextlib.suppress(ConnectionLost, ChatError, TimeoutError):
            async with asyncio.timeout(self.connect_timeout):
                await self._exchange(self._build(Quit, reason=reason))
        await self.close()

    async def close(self) -> None:
        """Close at once (idempotent); ``events()`` ends."""
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        await self._drop_connection()
        self._finish("closed")

    # ----------------------------------------------------------------- events

    async def events(self) -> AsyncIterator[Message | ClientEvent]:
        """Server events and client events, in arrival order, until the client is done."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    def _emit(self, event: Message | ClientEvent) -> None:
        self._events.put_nowait(event)

    def _renamed(self, old: str, new: str) -> None:
        for state in self.rooms.values():
            if old in state.members:
                state.members.discard(old)
                state.members.add(new)

    def _track(self, event: Message) -> None:
        """Keep room state current, and spot missed messages by arithmetic."""
        if isinstance(event, RoomMessage):
            state = self.rooms.get(fold(event.room))
            if state is not None:
                if state.last_seq and event.seq > state.last_seq + 1:
                    self._emit(HistoryGapDetected(state.name, state.last_seq + 1, event.seq - 1))
                state.last_seq = max(state.last_seq, event.seq)
        elif isinstance(event, MemberJoined):
            if (state := self.rooms.get(fold(event.room))) is not None:
                state.members.add(event.nick)
        elif isinstance(event, MemberLeft):
            if fold(event.nick) == fold(self.nick):  # kicked or banned ourselves
                self.rooms.pop(fold(event.room), None)
            elif (state := self.rooms.get(fold(event.room))) is not None:
                state.members.discard(event.nick)
        elif isinstance(event, NickChanged):
            self._renamed(event.old_nick, event.new_nick)
        elif isinstance(event, TopicChanged) and (
                state := self.rooms.get(fold(event.room))) is not None:
            state.topic = event.topic

    def _apply(self, request: Message | None, frames: list[Message], ok: Ok) -> None:
        """Room state changes as the answer is read, before any later frame is
        dispatched: a live message right behind the OK must find it (no false gap)."""
        if isinstance(request, Join):
            info = next(f for f in frames if isinstance(f, RoomInfo))
            history = [f for f in frames if isinstance(f, RoomMessage)]
            state = self.rooms.setdefault(fold(info.room), RoomState(info.room))
            state.name, state.topic = info.room, info.topic
            state.last_seq = max([info.last_seq, *(m.seq for m in history)])
            if request.request_id in self._rejoining:  # replayed in order, as events
                self._rejoining.discard(request.request_id)
                gap = next((f for f in frames if isinstance(f, HistoryGap)), None)
                if gap is not None:
                    self._emit(HistoryGapDetected(info.room, gap.first_seq, gap.last_seq))
                for message in history:
                    self._emit(message)
                replayed_to = max([request.last_seen_seq, gap.last_seq if gap else 0,
                                   *(m.seq for m in history)])
                if replayed_to < info.last_seq:  # a bounded replay: the rest by HISTORY
                    state.missing = (replayed_to + 1, info.last_seq)
        elif isinstance(request, SendRoom):
            sent_to = self.rooms.get(fold(request.room))
            if sent_to is not None and ok.seq == sent_to.last_seq + 1:
                sent_to.last_seq = ok.seq  # our own message: no echo comes back

    # ------------------------------------------------------------- the reader

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        reason, code, retry_after_ms = "connection closed by the server", None, 0
        try:
            while True:
                data = await reader.read(MAX_FRAME_LENGTH)  # a whole largest frame at once
                self._conn.receive_data(data)
                for event in self._conn.events():
                    if isinstance(event, ConnectionClosed):
                        raise EOFError
                    self._dispatch(event)
                if not data:
                    break
        except EOFError:
            pass
        except RemoteProtocolError as exc:
            reason = f"server broke the protocol: {exc}"
            if self._writer is not None and not exc.silent:  # say why we hang up (CP-ERR-9)
                with contextlib.suppress(LocalProtocolError, OSError, RuntimeError):
                    self._writer.write(self._conn.send(
                        error_message(exc).model_copy(update={"request_id": 0})))
        except (OSError, ssl.SSLError) as exc:
            reason = f"connection lost: {_network_reason(exc)}"
        except asyncio.CancelledError:
            return
        if self._last_error is not None:
            last = self._last_error
            reason = f"server closed the connection: {error_name(last.code)}: {last.detail}"
            code, retry_after_ms = last.code, last.retry_after_ms
        self._lost(ConnectionLost(reason, code, retry_after_ms))

    def _dispatch(self, event: Message | FrameRejected) -> None:
        if isinstance(event, FrameRejected):
            log.warning("ignored a malformed frame from the server: %s", event.detail)
            return
        if isinstance(event, Ping) and event.request_id == 0:
            if self._writer is not None:  # answered at once (CP-KEEP-1)
                with contextlib.suppress(LocalProtocolError):
                    self._writer.write(self._conn.send(
                        Pong(request_id=event.request_id, token=event.token)))
            return
        answer = self._pending.receive(event)
        if isinstance(answer, FinalResponse):
            outstanding = answer.outstanding
            if isinstance(event, Ok) and answer.expected:
                self._apply(outstanding.request, outstanding.frames, event)
            if not answer.payload.done():
                answer.payload.set_result((outstanding.frames, event))
            return
        if isinstance(answer, IntermediateFrame):
            return
        if isinstance(event, Error) and event.fatal:
            self._last_error = event  # a notice such as SERVER_SHUTDOWN: the server closes next
        self._track(event)
        if isinstance(event, RoomMessage) and (
                state := self.rooms.get(fold(event.room))) is not None and state.missing:
            state.held.append(event)  # after the older messages still being fetched
            return
        self._emit(event)

    # ------------------------------------------------------- losing, returning

    async def _drop_connection(self) -> None:
        writer, self._writer = self._writer, None
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
                await writer.wait_closed()

    def _fail_pending(self, exc: ConnectionLost) -> None:
        for outstanding in self._pending.clear():
            if not outstanding.payload.done():
                outstanding.payload.set_exception(exc)

    def _lost(self, exc: ConnectionLost) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        self._fail_pending(exc)
        if self._closing or self._finished:
            return
        if self._reconnect_task is not None and not self._reconnect_task.done():
            return  # a reconnection attempt lost its new connection: it tries again
        code = known_error_code(exc.code) if exc.code is not None else None
        known = ERROR_REGISTRY[code] if code is not None else None
        gave_up = exc.code is not None and (
            exc.code in _GIVE_UP or (known is not None and not known.retriable))
        if self.reconnect and self.welcome is not None and not gave_up:
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect(exc))
        else:
            self._finish(exc.reason, exc.code)

    def _finish(self, reason: str, code: int | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        self._emit(Disconnected(reason, code))
        self._events.put_nowait(None)

    async def _reconnect(self, cause: ConnectionLost) -> None:
        delay = max(0.5, cause.retry_after_ms / 1000)
        reason = cause.reason
        for attempt in itertools.count(1):
            # Jitter above the delay (never before a shutdown's retry_after_ms), so a
            # restarted server is not hit by every client at the same instant.
            wait = random.uniform(delay, delay * 1.5)
            self._emit(Reconnecting(attempt, round(wait, 3), reason))
            await asyncio.sleep(wait)
            try:
                await self._open()
                await self._rejoin()
            except HandshakeFailed as exc:
                if exc.code in _GIVE_UP:
                    self._finish(str(exc), exc.code)
                    return
                reason = str(exc)
            except (ConnectionLost, ChatError) as exc:
                reason = str(exc)
            else:
                return
            delay = min(self.reconnect_max_delay, delay * 2)

    async def _fetch_missing(self, state: RoomState) -> None:
        """Fetch, oldest first, with HISTORY, what a resume's replay left out (CP-HIST-14),
        then hand over the live messages held meanwhile: every message once, in seq order.
        What cannot be fetched (the connection drops, a refusal) is reported as a gap."""
        try:
            while state.missing is not None:
                first, last = state.missing
                end = min(last, first + self.limits.history_page_max - 1)
                page = await self.history(state.name, before_seq=end + 1, limit=end - first + 1)
                if page.gap is not None:
                    self._emit(HistoryGapDetected(state.name, page.gap.first_seq,
                                                  page.gap.last_seq))
                for message in page.messages:
                    self._emit(message)
                state.missing = (end + 1, last) if end < last else None
        except ChatError as exc:
            log.info("could not fetch the rest of %s: %s", state.name, exc)
        finally:
            if state.missing is not None:
                self._emit(HistoryGapDetected(state.name, *state.missing))
                state.missing = None
            held, state.held = state.held, []
            for message in held:
                self._emit(message)

    async def _rejoin(self) -> None:
        # Rooms stay listed until rejoined or refused: a second drop half way
        # through rejoins them all on the next attempt.
        for room_fold, state in list(self.rooms.items()):
            request = self._build(Join, room=state.name, resume=True,
                                  last_seen_seq=state.last_seq)
            self._rejoining.add(request.request_id)
            try:
                await self._join(request)
            except ChatError as exc:  # banned meanwhile, too many rooms...
                log.info("could not rejoin %s: %s", state.name, exc)
                self.rooms.pop(room_fold, None)
                continue
            await self._fetch_missing(state)
        self._emit(Reconnected(self.nick, tuple(s.name for s in self.rooms.values())))

