"""The chat itself: what each request of spec v1 does to the server's state.

``ChatService.handle`` takes one decoded request from a session and answers it
(through ``Session.reply``), telling other sessions what they must see (through
the backplane, one encoded frame for all of them). Requests that need a worker
thread (password hashing) return an awaitable; everything else is synchronous,
so one request completes before the next frame of any connection is handled.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chatproto import CASEMAPPING, ErrorCode, encode, fold
from chatproto.messages import (
    Away,
    Ban,
    Bye,
    Error,
    Hello,
    History,
    HistoryGap,
    Join,
    Kick,
    LeaveKind,
    ListMembers,
    ListRooms,
    ListUsers,
    Login,
    MemberJoined,
    MemberLeft,
    Message,
    Mute,
    MuteChanged,
    Nick,
    NickChanged,
    Notice,
    Ok,
    Oper,
    Part,
    Ping,
    Pong,
    Presence,
    PrivateMessage,
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
from reference_server.backplane import Backplane, Member
from reference_server.config import ServerConfig
from reference_server.moderation import MARK_KINDS, Mark, MarkKind, Moderation
from reference_server.passwords import hash_password, verify_password
from reference_server.session import Session, TokenBucket
from reference_server.store import RoomRecord, Store, StoredMessage
from reference_server.throttle import KeyedBuckets, LoginThrottle, RareLog

log = logging.getLogger("chatproto.server")

_MESSAGE_REQUESTS = (SendRoom, SendPrivate)
_UNLIMITED = (Hello, Ping, Pong, Quit, Error)
_MSG_ID_COUNTER = "msg_id"


class Refused(Exception):
    """A request is refused with a non-fatal ERROR carrying ``code``."""

    def __init__(self, code: ErrorCode, detail: str = "", retry_after_ms: int = 0) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_after_ms = retry_after_ms


@dataclass(slots=True)
class Room:
    """A room's durable state (membership lives in the backplane)."""

    fold: str
    name: str
    topic: str = ""
    last_seq: int = 0

    def record(self) -> RoomRecord:
        return RoomRecord(self.fold, self.name, self.topic, self.last_seq)


@functools.cache
def _dummy_hash() -> str:
    """A hash no password matches, made as accounts' are: checking it costs the same."""
    return hash_password(secrets.token_urlsafe(24))


_OPER_KEY_PREFIX = "oper:"
"""Prefix of an operator name's key in the login throttle (":" is in no nick)."""


def _verify_or_pretend(password: str, stored: str | None) -> bool:
    """``verify_password``; with no account (None), the same work against a dummy, False."""
    if stored is None:
        verify_password(password, _dummy_hash())
        return False
    return verify_password(password, stored)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ChatService:
    """Rooms, messages, accounts and operators, over a backplane and a store."""

    def __init__(self, config: ServerConfig, store: Store, backplane: Backplane) -> None:
        self.config = config
        self.store = store
        self.backplane = backplane
        self.rooms: dict[str, Room] = {
            record.fold: Room(record.fold, record.name, record.topic, record.last_seq)
            for record in store.rooms()
        }
        self.moderation = Moderation(Mark(kind, room_fold, nick_fold) for kind in MARK_KINDS
                                     for room_fold, nick_fold in store.marks(kind))
        self._next_msg_id = store.counter(_MSG_ID_COUNTER) + 1
        self._saved_msg_id = self._next_msg_id
        self._dirty_rooms: set[str] = set()
        self._logins = LoginThrottle(
            KeyedBuckets(config.auth_failure_burst_per_nick,
                         config.auth_failure_interval_per_nick_s),
            KeyedBuckets(config.auth_failure_burst_per_address,
                         config.auth_failure_interval_per_address_s))
        self._new_accounts = KeyedBuckets(config.account_creation_burst_per_address,
                                          config.account_creation_interval_per_address_s)
        self._rare_log = RareLog()
        # CP-RATE-6: each address's buckets are address_rate_factor times a
        # connection's, in burst and in rate (0: none).
        factor, limits = config.address_rate_factor, config.limits
        self._address_buckets = None if not factor else (
            KeyedBuckets(limits.msg_rate_burst * factor,
                         limits.msg_rate_interval_ms / 1000 / factor),
            KeyedBuckets(limits.cmd_rate_burst * factor,
                         limits.cmd_rate_interval_ms / 1000 / factor))
        for room in list(self.rooms.values()):  # left by a server before CP-ROOM-19
            self._reclaim_if_empty(room)
        self.handlers: dict[type[Message], Callable[[Session, Any], Awaitable[None] | None]] = {
            Hello: self.on_hello, Nick: self.on_nick, Register: self.on_register,
            Login: self.on_login, Oper: self.on_oper, Away: self.on_away,
            ListUsers: self.on_list_users, Join: self.on_join, Part: self.on_part,
            ListRooms: self.on_list_rooms, SetTopic: self.on_set_topic,
            ListMembers: self.on_list_members, History: self.on_history,
            SendRoom: self.on_send_room, SendPrivate: self.on_send_private, Kick: self.on_kick,
            Ban: self.on_ban, Unban: self.on_unban, Mute: self.on_mute, Quit: self.on_quit,
            Ping: self.on_ping, Pong: self.on_pong, Error: self.on_error,
        }
        """What carries out each message type a client may send: one entry per type.

        A handler answers through ``session.reply`` and returns None, or returns
        an awaitable to finish off the event loop (a password check). Either
        way ``handle`` is the one place its failure is caught (CP-ERR-8).

        The ``on_*`` handlers, and the decisions they share (``welcome``,
        ``refuse_held_nick``, ``change_nick``, ``member_room``, ``is_marked``,
        ``need_operator``, ``others_in``, ``tell``, ``refuse``), are public so that a subclass
        (``ChatServer.service_class``) can change one rule alone: the faulty
        servers of tests/faulty_servers.py do.
        """

    # --------------------------------------------------------------- dispatch

    def handle(self, session: Session, message: Message) -> Awaitable[None] | None:
        """Carry out one request (or take note of a PONG or client ERROR)."""
        if not isinstance(message, _UNLIMITED):
            wait_ms = self.take_token(session, isinstance(message, _MESSAGE_REQUESTS))
            if wait_ms:
                session.reply(Error(request_id=message.request_id,
                                    code=int(ErrorCode.RATE_LIMITED), fatal=False,
                                    retry_after_ms=wait_ms, detail="rate limit"))
                return None
        try:
            result = self.handlers[type(message)](session, message)
        except Refused as refused:
            self.refuse(session, message, refused)
            return None
        except Exception:  # a bug in a handler, or none for the type: answer it (CP-ERR-8)
            self._internal_error(session, message)
            return None
        if result is None:
            return None
        return self._finish_async(session, message, result)

    def take_token(self, session: Session, is_message: bool) -> int:
        """Take a token from the connection's bucket and its address's, or from neither:
        0, or the milliseconds until both have one (CP-RATE-2, CP-RATE-6)."""
        own: TokenBucket = session.msg_bucket if is_message else session.cmd_bucket
        if self._address_buckets is None:
            return own.take()
        # The address's bucket too, so that reconnecting refills nothing.
        shared = self._address_buckets[0 if is_message else 1]
        wait_ms = max(own.wait_ms(), shared.wait_ms(session.address))
        if not wait_ms:
            own.take()
            shared.take(session.address)
        return wait_ms

    async def _finish_async(self, session: Session, message: Message,
                            pending: Awaitable[None]) -> None:
        try:
            await pending
        except Refused as refused:
            self.refuse(session, message, refused)
        except Exception:  # the same boundary as handle's, on the far side of the await
            self._internal_error(session, message)

    def _internal_error(self, session: Session, message: Message) -> None:
        """Answer a request whose handler failed, and keep the connection (CP-ERR-8)."""
        log.exception("handler failed session=%d request=%s", session.session_id,
                      message.NAME)
        session.reply(Error(request_id=message.request_id, code=int(ErrorCode.INTERNAL_ERROR),
                            fatal=False, detail="internal error"))

    def refuse(self, session: Session, message: Message, refused: Refused) -> None:
        if refused.code is ErrorCode.RATE_LIMITED:  # a guessing flood: not a line per try
            self._rare_log.warning(f"rate-limited {message.NAME.lower()}",
                                   "%s refused peer=%s session=%d code=RATE_LIMITED (%s)",
                                   message.NAME.lower(), session.peer, session.session_id,
                                   refused.detail)
        elif isinstance(message, Hello | Login | Register):
            log.info("%s refused peer=%s session=%d code=%s", message.NAME.lower(),
                     session.peer, session.session_id, refused.code.name)
        session.reply(Error(request_id=message.request_id, code=int(refused.code), fatal=False,
                            retry_after_ms=refused.retry_after_ms,
                            detail=refused.detail or refused.code.name))

    def before_commit(self) -> None:
        """Write what changed this turn, so that the commit carries it."""
        for room_fold in self._dirty_rooms:
            room = self.rooms.get(room_fold)
            if room is not None:
                self.store.save_room(room.record())
        self._dirty_rooms.clear()
        if self._next_msg_id != self._saved_msg_id:
            self.store.set_counter(_MSG_ID_COUNTER, self._next_msg_id - 1)
            self._saved_msg_id = self._next_msg_id

    # -------------------------------------------------------------- helpers

    def _room(self, name: str) -> Room:
        room = self.rooms.get(fold(name))
        if room is None:
            raise Refused(ErrorCode.NO_SUCH_ROOM, f"no room {name}")
        return room

    def member_room(self, session: Session, name: str) -> Room:
        room = self._room(name)
        if room.fold not in self.backplane.rooms_of(session):
            raise Refused(ErrorCode.NOT_IN_ROOM, f"not in {room.name}")
        return room

    def is_marked(self, kind: MarkKind, session: Session, room: Room) -> bool:
        """Whether a ban or mute in ``room`` applies to ``session`` (CP-OPER-10)."""
        return self.moderation.applies(kind, room.fold, session.session_id, session.nick_fold)

    def _set_mark(self, kind: MarkKind, session: Session, room: Room, nick: str,
                  present: bool) -> Member | None:
        """Impose or lift a ban or mute of ``nick`` (CP-OPER-10, -11); its holder, if any."""
        mark, target = Mark(kind, room.fold, fold(nick)), self.backplane.find_member(fold(nick))
        holder = target.session_id if target is not None else None
        (self.moderation.set if present else self.moderation.lift)(mark, holder)
        self.store.set_mark(kind, room.fold, mark.nick_fold, present)
        log.info("%s room=%s nick=%s by=%s", kind if present else f"un{kind}", room.name,
                 nick, session.nick)
        return target

    @staticmethod
    def need_operator(session: Session) -> None:
        if not session.operator:
            raise Refused(ErrorCode.NOT_OPERATOR, "operator privileges needed")

    def _room_mates(self, session: Session) -> list[Member]:
        """Every other member sharing at least one room, each once (CP-NICK-9)."""
        mates: dict[int, Member] = {}
        for room_fold in self.backplane.rooms_of(session):
            for member in self.backplane.room_members(room_fold):
                if member.session_id != session.session_id:
                    mates[member.session_id] = member
        return list(mates.values())

    def tell(self, event: Message, to: Iterable[Member]) -> None:
        self.backplane.deliver(type(event), encode(event), to)

    def others_in(self, room: Room, session: Session) -> list[Member]:
        return [m for m in self.backplane.room_members(room.fold)
                if m.session_id != session.session_id]

    def _user_info(self, session: Session, request_id: int, member: Member) -> UserInfo:
        assert isinstance(member, Session)
        # Built from state the server validated when it stored it.
        return UserInfo.unvalidated(
            request_id=request_id, nick=member.nick, away=bool(member.away_message),
            away_message=member.away_message, operator=member.operator,
            registered=member.logged_in)

    @property
    def next_msg_id(self) -> int:
        """The msg_id the next accepted message will get (one counter for the server)."""
        return self._next_msg_id

    def _allocate_msg_id(self) -> int:
        msg_id = self._next_msg_id
        self._next_msg_id += 1
        return msg_id

    def change_nick(self, session: Session, new_nick: str) -> None:
        old_nick = session.nick
        session.nick = new_nick
        session.nick_fold = fold(new_nick)
        self.moderation.took_nick(session.session_id, session.nick_fold)
        if old_nick != new_nick:
            self.tell(NickChanged(old_nick=old_nick, new_nick=new_nick),
                     self._room_mates(session))

    # ----------------------------------------------------- handshake, identity

    def refuse_held_nick(self, session: Session, nick: str) -> None:
        """NICK_IN_USE when another connection holds ``nick``, registered or not, before
        any password is checked (CP-NICK-10)."""
        holder = self.backplane.find_member(fold(nick))
        if holder is not None and holder.session_id != session.session_id:
            raise Refused(ErrorCode.NICK_IN_USE, f"{nick} is in use")

    def on_hello(self, session: Session, hello: Hello) -> Awaitable[None] | None:
        if not hello.password:
            self.refuse_held_nick(session, hello.nick)
            if self.store.account_hash(fold(hello.nick)) is not None:
                raise Refused(ErrorCode.NICK_REGISTERED, "this nick needs its password")
            self.welcome(session, hello, hello.nick, logged_in=False)
            return None
        checking = self._check_password(session, hello.nick, hello.password)

        async def check() -> None:
            self.welcome(session, hello, await checking, logged_in=True)

        return check()

    def _check_password(self, session: Session, nick: str, password: str) -> Awaitable[str]:
        """The account's nick, once ``password`` proves to be its password.

        Refused with AUTH_FAILED, in the same words and after the same scrypt
        work whether or not ``nick`` has an account (a dummy hash stands in),
        so that neither tells which; refused with RATE_LIMITED, before any check,
        once the nick or the address has used up its failures (CP-SEC-7, CP-SEC-11).
        """
        nick_fold = fold(nick)
        wait_ms = self._logins.wait_ms(nick_fold, session.address)
        if wait_ms:
            raise Refused(ErrorCode.RATE_LIMITED, "too many failed logins for this nick or "
                          "from this address", retry_after_ms=wait_ms)
        self.refuse_held_nick(session, nick)
        account = self.store.account_hash(nick_fold)

        async def check() -> str:
            ok = await asyncio.to_thread(_verify_or_pretend, password,
                                         account[1] if account is not None else None)
            if not ok or account is None:
                self._logins.failed(nick_fold, session.address)
                raise Refused(ErrorCode.AUTH_FAILED, "authentication failed")
            return account[0]

        return check()

    def welcome(self, session: Session, hello: Hello, nick: str, *, logged_in: bool) -> None:
        if session.gone:  # it hung up while its password was being checked
            return
        nick_fold = fold(nick)
        if not self.backplane.claim_nick(nick_fold, session):
            raise Refused(ErrorCode.NICK_IN_USE, f"{nick} is in use")
        session.nick, session.nick_fold, session.logged_in = nick, nick_fold, logged_in
        self.moderation.took_nick(session.session_id, nick_fold)
        versions = session.conn.common_versions
        assert versions is not None  # the Connection refuses a HELLO without one
        limits = self.config.limits
        session.reply(Welcome(
            request_id=hello.request_id, version=versions[-1], server_name=self.config.server_name,
            nick=nick, logged_in=logged_in, casemapping=CASEMAPPING, capabilities=(),
            **limits.model_dump()))
        if self.config.motd:
            session.reply(Notice(text=self.config.motd))
        log.info("hello peer=%s session=%d nick=%s account=%s client=%r", session.peer,
                 session.session_id, nick, "yes" if logged_in else "no", hello.client_name)

    def on_nick(self, session: Session, request: Nick) -> None:
        new_fold = fold(request.nick)
        if new_fold != session.nick_fold:
            self.refuse_held_nick(session, request.nick)
            if self.store.account_hash(new_fold) is not None:
                raise Refused(ErrorCode.NICK_REGISTERED, f"{request.nick} is registered")
            if not self.backplane.claim_nick(new_fold, session):
                raise Refused(ErrorCode.NICK_IN_USE, f"{request.nick} is in use")
            self.backplane.release_nick(session.nick_fold, session)
            session.logged_in = False
        self.change_nick(session, request.nick)
        session.reply(Ok(request_id=request.request_id))

    def on_register(self, session: Session, request: Register) -> Awaitable[None]:
        # The address's bucket first, as the order of checks puts rate limits
        # before the request's own conditions; a refused REGISTER gives it back.
        address = session.address
        wait_ms = self._new_accounts.take(address)
        if wait_ms:
            raise Refused(ErrorCode.RATE_LIMITED, "too many new accounts from this address",
                          retry_after_ms=wait_ms)
        if self.store.account_hash(session.nick_fold) is not None:
            self._new_accounts.give_back(address)
            raise Refused(ErrorCode.ALREADY_REGISTERED, f"{session.nick} is registered")

        async def register() -> None:
            password_hash = await asyncio.to_thread(hash_password, request.password)
            if not self.store.create_account(session.nick_fold, session.nick, password_hash):
                self._new_accounts.give_back(address)
                raise Refused(ErrorCode.ALREADY_REGISTERED, f"{session.nick} is registered")
            session.logged_in = True
            session.reply(Ok(request_id=request.request_id))
            log.info("register session=%d nick=%s", session.session_id, session.nick)

        return register()

    def on_login(self, session: Session, request: Login) -> Awaitable[None]:
        checking = self._check_password(session, request.nick, request.password)

        async def login() -> None:
            registered_nick = await checking
            if session.gone:
                return
            new_fold = fold(registered_nick)
            if new_fold != session.nick_fold:
                if not self.backplane.claim_nick(new_fold, session):
                    raise Refused(ErrorCode.NICK_IN_USE, f"{registered_nick} is in use")
                self.backplane.release_nick(session.nick_fold, session)
            self.change_nick(session, registered_nick)
            session.logged_in = True
            session.reply(Ok(request_id=request.request_id))

        return login()

    def on_oper(self, session: Session, request: Oper) -> Awaitable[None]:
        # Operator names share the failed-login buckets under a key no nick can
        # have, so guessing an operator's password is slowed like a user's.
        name_key = _OPER_KEY_PREFIX + request.name
        wait_ms = self._logins.wait_ms(name_key, session.address)
        if wait_ms:
            raise Refused(ErrorCode.RATE_LIMITED, "too many failed operator logins for this "
                          "name or from this address", retry_after_ms=wait_ms)
        stored = self.config.operators.get(request.name)

        async def check() -> None:
            # The same scrypt work for an unknown name: the time taken does not say
            # which names are operators.
            ok = await asyncio.to_thread(_verify_or_pretend, request.password, stored)
            if not ok:
                self._logins.failed(name_key, session.address)
                # The name field is the client's: it may be a password typed in the
                # wrong field. Only a configured name is logged, since it is no secret.
                log.info("oper refused session=%d name=%s", session.session_id,
                         repr(request.name) if stored is not None else
                         f"unknown ({len(request.name.encode())} bytes)")
                raise Refused(ErrorCode.AUTH_FAILED, "wrong operator credentials")
            session.operator = True
            log.info("oper session=%d nick=%s name=%r", session.session_id, session.nick,
                     request.name)
            session.reply(Ok(request_id=request.request_id))

        return check()

    def on_away(self, session: Session, request: Away) -> None:
        session.away_message = request.message
        self.tell(Presence(nick=session.nick, away=bool(request.message),
                           away_message=request.message), self._room_mates(session))
        session.reply(Ok(request_id=request.request_id))

    def on_list_users(self, session: Session, request: ListUsers) -> None:
        self._list_user_infos(session, request.request_id, "LIST_USERS",
                              list(self.backplane.members()))

    def _list_user_infos(self, session: Session, request_id: int, what: str,
                         members: list[Member]) -> None:
        """USER_INFO for each member (at most ``max_list_entries``), then OK."""
        for member in members[:self._list_limit(session, what, len(members))]:
            session.reply(self._user_info(session, request_id, member))
        session.reply(Ok(request_id=request_id))

    # ------------------------------------------------------------------ rooms

    def on_join(self, session: Session, request: Join) -> None:
        room_fold = fold(request.room)
        joined = self.backplane.rooms_of(session)
        # Refusals in the order of CP-ROOM-22: membership, ban, then the caps.
        if room_fold in joined:
            raise Refused(ErrorCode.ALREADY_IN_ROOM, f"already in {request.room}")
        room = self.rooms.get(room_fold)
        if room is not None and self.is_marked("ban", session, room):
            raise Refused(ErrorCode.BANNED_FROM_ROOM, f"banned from {room.name}")
        if len(joined) >= self.config.limits.max_rooms_per_user:
            raise Refused(ErrorCode.TOO_MANY_ROOMS, "max_rooms_per_user reached")
        if room is None:
            if len(self.rooms) >= self.config.max_rooms:  # CP-ROOM-6
                raise Refused(ErrorCode.TOO_MANY_ROOMS, "the server holds all the rooms it may")
            room = self.rooms[room_fold] = Room(room_fold, request.room)
            self._dirty_rooms.add(room_fold)
        others = list(self.backplane.room_members(room_fold))
        self.backplane.join(room_fold, session)
        # Told before the replay: a replay past the output bound drops the
        # joiner, and the others then see it leave after it joined.
        self.tell(MemberJoined(room=room.name, nick=session.nick), others)
        rid = request.request_id
        session.reply(RoomInfo(request_id=rid, room=room.name, topic=room.topic,
                               member_count=len(others) + 1, last_seq=room.last_seq))
        if request.resume:
            self._replay_after(session, rid, room, request.last_seen_seq)
        else:
            keep = self.config.limits.history_on_join
            for message in self.store.messages_before(room_fold, room.last_seq + 1, keep):
                session.reply(self._room_message(room, message, rid))
        session.reply(Ok(request_id=rid))

    def _replay_after(self, session: Session, rid: int, room: Room, last_seen: int) -> None:
        if last_seen >= room.last_seq:
            return
        # The oldest missed, a page at most (CP-HIST-15): the rest is the client's to ask
        # for with HISTORY, so a long absence does not overflow the output bound.
        count = min(room.last_seq - last_seen, self.config.limits.history_page_max)
        messages = self.store.messages_after(room.fold, last_seen, count)
        first_kept = messages[0].seq if messages else room.last_seq + 1
        if first_kept > last_seen + 1:  # CP-HIST-8: say what is gone, then replay the rest
            session.reply(HistoryGap(request_id=rid, room=room.name, first_seq=last_seen + 1,
                                     last_seq=first_kept - 1))
        for message in messages:
            session.reply(self._room_message(room, message, request_id=rid))

    @staticmethod
    def _room_message(room: Room, stored: StoredMessage, request_id: int = 0) -> RoomMessage:
        """A stored message as the event that carries it: live (request_id 0) or replayed
        in answer to a request (``history`` set)."""
        # Built from what the server validated when it stored it.
        return RoomMessage.unvalidated(
            request_id=request_id, room=room.name, seq=stored.seq, msg_id=stored.msg_id,
            timestamp_ms=stored.timestamp_ms, sender=stored.sender,
            client_msg_id=stored.client_msg_id, history=request_id != 0, text=stored.text)

    def on_part(self, session: Session, request: Part) -> None:
        room = self.member_room(session, request.room)
        self.backplane.leave(room.fold, session)
        self.tell(MemberLeft(room=room.name, nick=session.nick, kind=int(LeaveKind.PART),
                             reason=request.reason), self.backplane.room_members(room.fold))
        self._reclaim_if_empty(room)
        session.reply(Ok(request_id=request.request_id))

    def _reclaim_if_empty(self, room: Room) -> None:
        """Delete a room that holds nothing a client could tell from a new one (CP-ROOM-19).

        No member, no message ever (``last_seq`` 0, so a resume cannot miss a
        sequence number), an empty topic, no ban, no mute: the next JOIN of
        its name creates exactly the room that this one is.
        """
        if room.last_seq or room.topic or self.backplane.room_members(room.fold) \
                or self.store.room_has_marks(room.fold):
            return
        del self.rooms[room.fold]
        self._dirty_rooms.discard(room.fold)
        self.store.delete_room(room.fold)

    def _list_limit(self, session: Session, what: str, total: int) -> int:
        """How many entries a list answer holds; a NOTICE says when it is cut (CP-ROOM-20)."""
        limit = self.config.max_list_entries
        if total <= limit:
            return total
        session.reply(Notice(text=f"{what}: showing {limit} of {total} "
                                  f"(the server lists at most {limit})"))
        return limit

    def on_list_rooms(self, session: Session, request: ListRooms) -> None:
        counted = [(len(self.backplane.room_members(room.fold)), room)
                   for room in self.rooms.values()]
        limit = self._list_limit(session, "LIST_ROOMS", len(counted))
        if limit < len(counted):  # the busiest rooms are the ones worth showing
            counted = heapq.nlargest(limit, counted, key=lambda pair: pair[0])
        for member_count, room in counted:
            # Built from state the server validated when it stored it.
            session.reply(RoomInfo.unvalidated(
                request_id=request.request_id, room=room.name, topic=room.topic,
                member_count=member_count, last_seq=room.last_seq))
        session.reply(Ok(request_id=request.request_id))

    def on_set_topic(self, session: Session, request: SetTopic) -> None:
        room = self.member_room(session, request.room)
        if self.is_marked("mute", session, room):
            raise Refused(ErrorCode.MUTED, f"muted in {room.name}")
        room.topic = request.topic
        self._dirty_rooms.add(room.fold)
        self.tell(TopicChanged(room=room.name, topic=room.topic, by=session.nick),
                  self.others_in(room, session))
        session.reply(Ok(request_id=request.request_id))

    def on_list_members(self, session: Session, request: ListMembers) -> None:
        room = self._room(request.room)
        self._list_user_infos(session, request.request_id, f"LIST_MEMBERS {room.name}",
                              list(self.backplane.room_members(room.fold)))

    def on_history(self, session: Session, request: History) -> None:
        room = self.member_room(session, request.room)
        newest_plus_one = room.last_seq + 1
        before = request.before_seq if 0 < request.before_seq <= newest_plus_one \
            else newest_plus_one
        count = min(request.limit, self.config.limits.history_page_max)
        window_first = max(1, before - count)
        rid = request.request_id
        messages = self.store.messages_before(room.fold, before, count)
        first_kept = messages[0].seq if messages else before
        if window_first < first_kept:  # CP-HIST-11
            session.reply(HistoryGap(request_id=rid, room=room.name, first_seq=window_first,
                                     last_seq=first_kept - 1))
        for message in messages:
            session.reply(self._room_message(room, message, rid))
        session.reply(Ok(request_id=rid))

    # --------------------------------------------------------------- messages

    def on_send_room(self, session: Session, request: SendRoom) -> None:
        room = self.member_room(session, request.room)
        if request.client_msg_id:
            earlier = self.store.find_resend(room.fold, session.nick_fold, request.client_msg_id)
            if earlier is not None:  # CP-MSG-11: the original identity, no second delivery
                session.reply(Ok(request_id=request.request_id, msg_id=earlier.msg_id,
                                 seq=earlier.seq, timestamp_ms=earlier.timestamp_ms))
                return
        # After the resend (CP-MSG-13): that message was accepted before the mute.
        if self.is_marked("mute", session, room):
            raise Refused(ErrorCode.MUTED, f"muted in {room.name}")
        room.last_seq += 1
        stored = StoredMessage(seq=room.last_seq, msg_id=self._allocate_msg_id(),
                               timestamp_ms=_now_ms(), sender=session.nick,
                               client_msg_id=request.client_msg_id, text=request.text)
        self.store.append_message(room.fold, stored, session.nick_fold,
                                  keep=self.config.history_depth)
        self._dirty_rooms.add(room.fold)
        # Encoded once; every other member gets the same bytes (CP-MSG-1).
        self.tell(self._room_message(room, stored), self.others_in(room, session))
        # The hot path's answer, built from values the server made: not validated again.
        session.reply(Ok.unvalidated(request_id=request.request_id, msg_id=stored.msg_id,
                                     seq=stored.seq, timestamp_ms=stored.timestamp_ms))

    def on_send_private(self, session: Session, request: SendPrivate) -> None:
        target = self.backplane.find_member(fold(request.nick))
        if target is None:
            raise Refused(ErrorCode.NO_SUCH_NICK, f"no user {request.nick}")
        msg_id, timestamp_ms = self._allocate_msg_id(), _now_ms()
        self.tell(PrivateMessage(msg_id=msg_id, timestamp_ms=timestamp_ms, sender=session.nick,
                                 client_msg_id=request.client_msg_id, text=request.text),
                  [target])
        session.reply(Ok(request_id=request.request_id, msg_id=msg_id,
                         timestamp_ms=timestamp_ms))

    # -------------------------------------------------------------- operators

    def _remove_from_room(self, session: Session, room: Room, nick: str, kind: LeaveKind,
                          reason: str) -> bool:
        target = self.backplane.find_member(fold(nick))
        if target is None or room.fold not in self.backplane.rooms_of(target):
            return False
        # The operator is told only when he removes himself (CP-OPER-12).
        witnesses = [m for m in self.backplane.room_members(room.fold)
                     if m.session_id != session.session_id or m is target]
        self.backplane.leave(room.fold, target)
        self.tell(MemberLeft(room=room.name, nick=target.nick, kind=int(kind), reason=reason,
                             by=session.nick), witnesses)
        self._reclaim_if_empty(room)
        return True

    def on_kick(self, session: Session, request: Kick) -> None:
        self.need_operator(session)
        room = self._room(request.room)
        if self.backplane.find_member(fold(request.nick)) is None:
            raise Refused(ErrorCode.NO_SUCH_NICK, f"no user {request.nick}")
        if not self._remove_from_room(session, room, request.nick, LeaveKind.KICK,
                                      request.reason):
            raise Refused(ErrorCode.NOT_IN_ROOM, f"{request.nick} is not in {room.name}")
        log.info("kick room=%s nick=%s by=%s", room.name, request.nick, session.nick)
        session.reply(Ok(request_id=request.request_id))

    def on_ban(self, session: Session, request: Ban) -> None:
        self.need_operator(session)
        room = self._room(request.room)
        self._set_mark("ban", session, room, request.nick, True)
        self._remove_from_room(session, room, request.nick, LeaveKind.BAN, request.reason)
        session.reply(Ok(request_id=request.request_id))

    def on_unban(self, session: Session, request: Unban) -> None:
        self.need_operator(session)
        room = self._room(request.room)
        self._set_mark("ban", session, room, request.nick, False)
        session.reply(Ok(request_id=request.request_id))

    def on_mute(self, session: Session, request: Mute) -> None:
        self.need_operator(session)
        room = self._room(request.room)
        target = self._set_mark("mute", session, room, request.nick, request.muted)
        nick = target.nick if target is not None else request.nick  # its own spelling (CP-NICK-3)
        told = self.backplane.room_members(room.fold) if target is session \
            else self.others_in(room, session)  # an operator muting himself is told (CP-OPER-12)
        self.tell(MuteChanged(room=room.name, nick=nick, muted=request.muted,
                              by=session.nick), told)
        session.reply(Ok(request_id=request.request_id))

    # ------------------------------------------------- keepalive and closing

    def on_ping(self, session: Session, ping: Ping) -> None:
        session.reply(Pong(request_id=ping.request_id, token=ping.token))

    def on_pong(self, session: Session, pong: Pong) -> None:
        """A PONG ends the client's silence (``idle_since``), and nothing else: a stray
        one is ignored (CP-KEEP-3)."""

    def on_error(self, session: Session, error: Error) -> None:
        log.info("client error peer=%s nick=%s code=%d detail=%r", session.peer,
                 session.nick or "-", error.code, error.detail)
        self.leave_chat(session, f"client sent error {error.code}")
        session.close_after_flush()

    def on_quit(self, session: Session, request: Quit) -> None:
        session.reply(Bye(request_id=request.request_id, reason="goodbye"))
        self.leave_chat(session, "quit", LeaveKind.QUIT, request.reason)

    def leave_chat(self, session: Session, why: str, kind: LeaveKind = LeaveKind.DISCONNECT,
                   reason: str = "") -> None:
        """The session is gone from the chat: rooms, nick (idempotent)."""
        if session.gone:
            return
        session.gone = True
        if session.nick:
            for room_fold in self.backplane.rooms_of(session):
                room = self.rooms[room_fold]
                self.backplane.leave(room_fold, session)
                self.tell(MemberLeft(room=room.name, nick=session.nick, kind=int(kind),
                                     reason=reason), self.backplane.room_members(room_fold))
                self._reclaim_if_empty(room)
            self.backplane.release_nick(session.nick_fold, session)
        self.moderation.forget(session.session_id)
        log.info("disconnect peer=%s session=%d nick=%s reason=%s", session.peer,
                 session.session_id, session.nick or "-", why)
