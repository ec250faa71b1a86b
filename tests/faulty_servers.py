"""Deliberately faulty servers: the reference server with ONE rule of the spec broken.

    python tests/faulty_servers.py FAULT [reference server flags...]

run from the repository root, applies the patch of ``FAULTS[FAULT]`` and then
runs the reference server's own ``main`` with the flags, so it prints the usual
"listening on HOST:PORT" banner. ``tests/test_conformance_faults.py`` runs the
conformance kit against each of them: the kit must fail each one on exactly the
requirements in ``Fault.breaks`` and on no other, which shows both that it
catches the fault and that it blames the right rule.

Each fault is a subclass of the reference server's ``ChatService`` or
``Session`` that overrides one of their public methods (the request handlers
``on_*``, the decisions they share such as ``member_room`` or ``tell``, and the
output path's ``write`` and ``exceeds_output_bound``), installed through
``ChatServer.service_class`` / ``session_class``, with the bug a student could
plausibly write, the wrong line marked ``BUG``; its docstring says why that
breaks exactly the rules listed and no other. Where the bug is a single changed
line inside a longer method, the override calls ``super()`` and swaps, for the
duration of the call, the one collaborator that line uses (``_instead``),
rather than copying the method. The three framing faults break the core's
``FrameDecoder``, which has no such seam: they replace its methods. Faults
apply to this process only; nothing on disk changes.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatproto import Event, RemoteProtocolError
    from chatproto._framing import FrameDecoder, RawFrame
    from chatproto.messages import Hello, Join, Kick, Message, Ping, Quit, SendPrivate, SendRoom
    from reference_server.backplane import Member
    from reference_server.moderation import MarkKind
    from reference_server.service import ChatService, Refused, Room
    from reference_server.session import Session
    from reference_server.store import StoredMessage


@dataclass(frozen=True)
class Fault:
    """One deliberate bug: what it does, the requirements it breaks, how to apply it."""

    description: str
    breaks: frozenset[str]
    patch: Callable[[], None]


@contextlib.contextmanager
def _instead(obj: object, name: str, value: object) -> Iterator[None]:
    """Within the block, ``obj.name`` is ``value`` (an instance attribute, then restored)."""
    attributes = vars(obj)
    missing = object()
    previous = attributes.get(name, missing)
    attributes[name] = value
    try:
        yield
    finally:
        if previous is missing:
            del attributes[name]
        else:
            attributes[name] = previous


def _serve_with(service_class: type[ChatService]) -> None:
    """Serve requests with ``service_class``, a ChatService with one rule broken."""
    from reference_server.server import ChatServer

    ChatServer.service_class = service_class


def _session_with(session_class: type[Session]) -> None:
    """Serve each connection with ``session_class``, a Session with one rule broken."""
    from reference_server.server import ChatServer

    ChatServer.session_class = session_class


# ------------------------------------------------------------------- framing


def _no_partial_frame_buffering() -> None:
    """A read that ends less than four bytes into a frame loses those bytes.

    The decoder takes a leftover too short to hold a length field for noise and
    drops it when the next read arrives, so a length field split across reads
    is lost and the stream is then read from the middle of a frame: CP-FRAME-8
    (the same frames however the stream is split). Whole frames, and frames
    split anywhere after their length field, still decode.
    """
    from chatproto._framing import FrameDecoder
    from chatproto._schema import LENGTH_FIELD_SIZE

    def feed(self: FrameDecoder, data: bytes | bytearray | memoryview) -> None:
        if self._pos:
            del self.buffer[: self._pos]
            self._pos = 0
        if len(self.buffer) < LENGTH_FIELD_SIZE:
            self.buffer.clear()  # BUG: "not even a length field: line noise"
        self.buffer += data

    FrameDecoder.feed = feed  # type: ignore[method-assign]


def _limit_checked_late(*, check_at_all: bool) -> Callable[[FrameDecoder], RawFrame | None]:
    """``FrameDecoder.next_frame`` that waits for the whole frame before any limit check."""
    import struct

    from chatproto._errors import ErrorCode, RemoteProtocolError
    from chatproto._framing import RawFrame
    from chatproto._schema import HEADER_SIZE, HEADER_STRUCT, LENGTH_FIELD_SIZE, MIN_FRAME_LENGTH

    def next_frame(self: FrameDecoder) -> RawFrame | None:
        pos = self._pos
        available = len(self.buffer) - pos
        if available < LENGTH_FIELD_SIZE:
            return None
        (length,) = struct.unpack_from(">I", self.buffer, pos)
        if length < MIN_FRAME_LENGTH:
            raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME,
                                      f"length {length} is below the minimum of 6")
        if available < LENGTH_FIELD_SIZE + length:
            return None
        # BUG: the limit is checked (if at all) only now, after the body was buffered.
        if check_at_all and length > self.max_length:
            raise RemoteProtocolError(ErrorCode.FRAME_TOO_LARGE,
                                      f"length {length} exceeds the limit of {self.max_length}")
        _, type_code, request_id = HEADER_STRUCT.unpack_from(self.buffer, pos)
        self._pos = pos + LENGTH_FIELD_SIZE + length
        return RawFrame(type_code, request_id, pos + HEADER_SIZE, self._pos)

    return next_frame


def _no_frame_size_check() -> None:
    """The length field is never compared with a limit: every frame is buffered and read.

    This breaks CP-FRAME-3 (reject an over-limit length as soon as the length
    bytes arrive) and CP-FRAME-4 (apply 4096 before WELCOME and max_frame_size
    after it): both rest on the one check this server lacks, and with no limit
    at all there is no limit applied. Frames within the limits read as before.
    """
    from chatproto._framing import FrameDecoder

    FrameDecoder.next_frame = _limit_checked_late(  # type: ignore[method-assign, assignment]
        check_at_all=False)


def _frame_size_checked_after_body() -> None:
    """The right limit, but checked only once the whole frame has been buffered.

    An over-limit frame is still refused with FRAME_TOO_LARGE, and the limit is
    4096 before WELCOME and max_frame_size after it (CP-FRAME-4 holds), but the
    server first waits for and buffers the body: CP-FRAME-3 wants the frame
    rejected as soon as its four length bytes have arrived.
    """
    from chatproto._framing import FrameDecoder

    FrameDecoder.next_frame = _limit_checked_late(  # type: ignore[method-assign, assignment]
        check_at_all=True)


# ------------------------------------------------------------------ messages


def _echoes_room_message() -> None:
    """The ROOM_MESSAGE goes to every member of the room, the sender included.

    CP-MSG-1: a ROOM_MESSAGE to every other member, "but not to the sender's
    connection". The OK, and the recipients of every other room event, are as
    in the reference.
    """
    from reference_server.service import ChatService

    class EchoingService(ChatService):
        def on_send_room(self, session: Session, request: SendRoom) -> None:
            def everyone(room: Room, sender: Session) -> Collection[Member]:
                return self.backplane.room_members(room.fold)  # BUG: the sender too

            with _instead(self, "others_in", everyone):
                super().on_send_room(session, request)

    _serve_with(EchoingService)


def _private_message_broadcast() -> None:
    """PRIVATE_MESSAGE goes to every connection; clients are trusted to show only theirs.

    CP-MSG-4: "to the connection that holds the addressed nick, and to no other
    connection". The addressee gets it with the right identity, and the OK is
    unchanged.
    """
    from reference_server.service import ChatService

    class BroadcastingService(ChatService):
        def on_send_private(self, session: Session, request: SendPrivate) -> None:
            tell = self.tell

            def to_everyone(event: Message, to: Collection[Member]) -> None:
                tell(event, self.backplane.members())  # BUG: everyone, not the addressee

            with _instead(self, "tell", to_everyone):
                super().on_send_private(session, request)

    _serve_with(BroadcastingService)


def _strips_message_text() -> None:
    """Room message texts are trimmed of surrounding white space before they are stored.

    CP-MSG-3: the ROOM_MESSAGE carries "the request's text unchanged byte for
    byte". The trimmed text is what the server accepted, stored and replays, so
    history (CP-HIST-3) agrees with the live message; only texts with leading
    or trailing white space change.
    """
    from reference_server.service import ChatService

    class StrippingService(ChatService):
        def on_send_room(self, session: Session, request: SendRoom) -> None:
            cleaned = request.model_copy(update={"text": request.text.strip()})  # BUG
            super().on_send_room(session, cleaned)

    _serve_with(StrippingService)


def _text_past_cap_is_invalid_field() -> None:
    """A text longer than 16384 bytes is refused as INVALID_FIELD, not MESSAGE_TOO_LONG.

    The bug of version 1's first reading: the protocol's cap on the message-text
    field taken for a field constraint, apart from max_message_length. CP-MSG-2
    gives MESSAGE_TOO_LONG to every text longer than max_message_length, and no
    max_message_length exceeds 16384. Texts between the limit and the cap are
    still MESSAGE_TOO_LONG, so only the case past the cap sees it.
    """
    import dataclasses

    from chatproto import ErrorCode, FrameRejected
    from reference_server.session import Session

    class CapConfusedSession(Session):
        def handle_event(self, event: Event) -> Awaitable[None] | None:
            if isinstance(event, FrameRejected) and event.code is ErrorCode.MESSAGE_TOO_LONG \
                    and "more than any max_message_length" in event.detail:
                event = dataclasses.replace(event, code=ErrorCode.INVALID_FIELD)  # BUG
            return super().handle_event(event)

    _session_with(CapConfusedSession)


def _seq_is_msg_id() -> None:
    """A room message's seq is its msg_id: increasing in each room, but not 1, 2, 3...

    msg_id is one counter for the whole server, so a room's first message does
    not get seq 1 and messages of other rooms (and private ones) leave holes in
    a room's seqs: CP-MSG-8. ROOM_INFO's last_seq is still the seq of the
    room's latest message, so the first live message after a JOIN follows it
    (CP-HIST-6) unless another message was accepted in between.
    """
    from reference_server.service import ChatService

    class MsgIdSeqService(ChatService):
        def on_send_room(self, session: Session, request: SendRoom) -> None:
            room = self.member_room(session, request.room)
            last_seq, next_msg_id = room.last_seq, self.next_msg_id
            room.last_seq = next_msg_id - 1  # BUG: the room counter jumps to the msg_id
            try:
                super().on_send_room(session, request)
            finally:
                if self.next_msg_id == next_msg_id:  # refused, or a resend: nothing accepted
                    room.last_seq = last_seq

    _serve_with(MsgIdSeqService)


def _history_on_join_off_by_one() -> None:
    """The JOIN replay asks for the messages before last_seq, not before last_seq + 1.

    It replays history_on_join messages (when there are that many) but not the
    most recent ones: the room's latest message is left out, CP-HIST-4. Resume
    (CP-HIST-15) and HISTORY paging (CP-HIST-10) compute their own bounds.
    """
    from reference_server.service import ChatService

    class OffByOneService(ChatService):
        def on_join(self, session: Session, request: Join) -> None:
            before = self.store.messages_before

            def messages_before(room_fold: str, before_seq: int,
                                limit: int) -> list[StoredMessage]:
                return before(room_fold, before_seq - 1, limit)  # BUG: off by one

            with _instead(self.store, "messages_before", messages_before):
                super().on_join(session, request)

    _serve_with(OffByOneService)


# ------------------------------------------------------------ nicks and rooms


def _case_sensitive_hello_nicks() -> None:
    """HELLO refuses a nick only when another connection holds that exact spelling.

    With "alice" connected, HELLO as "ALICE" is welcomed: CP-NICK-2 (two nicks
    are the same when their folds are equal). Only HELLO's check is wrong: a
    HELLO for the exact spelling is still NICK_IN_USE (CP-NICK-10), and NICK,
    accounts, private messages, bans and the resend key still fold.
    """
    from chatproto import ErrorCode, fold
    from reference_server.service import ChatService, Refused

    class SpellingService(ChatService):
        def on_hello(self, session: Session, hello: Hello) -> Awaitable[None] | None:
            def refuse_spelled(session: Session, nick: str) -> None:
                holder = self.backplane.find_member(fold(nick))
                if holder is not None and holder.session_id != session.session_id \
                        and holder.nick == nick:  # BUG: the same bug, in the early check
                    raise Refused(ErrorCode.NICK_IN_USE, f"{nick} is in use")

            with _instead(self, "refuse_held_nick", refuse_spelled):
                return super().on_hello(session, hello)

        def welcome(self, session: Session, hello: Hello, nick: str, *,
                    logged_in: bool) -> None:
            backplane = self.backplane
            claim = backplane.claim_nick

            def claim_spelling(nick_fold: str, member: Member) -> bool:
                holder = backplane.find_member(nick_fold)
                if holder is None or holder is member:
                    return claim(nick_fold, member)
                return holder.nick != nick  # BUG: "in use" only if spelled the same

            with _instead(backplane, "claim_nick", claim_spelling):
                super().welcome(session, hello, nick, logged_in=logged_in)

    _serve_with(SpellingService)


def _nick_changed_per_shared_room() -> None:
    """NICK_CHANGED is sent once per shared room, so a peer sharing two rooms gets two.

    CP-NICK-9: "exactly one NICK_CHANGED ... to every other connection that
    shares at least one room". PRESENCE keeps the reference's de-duplicated
    recipients (CP-USER-3 holds).
    """
    from chatproto.messages import NickChanged
    from reference_server.service import ChatService

    class PerRoomService(ChatService):
        def change_nick(self, session: Session, new_nick: str) -> None:
            tell = self.tell

            def per_room(event: Message, to: Collection[Member]) -> None:
                if not isinstance(event, NickChanged):
                    tell(event, to)
                    return
                for room_fold in self.backplane.rooms_of(session):  # BUG: per room, not peer
                    tell(event, [m for m in self.backplane.room_members(room_fold)
                                 if m.session_id != session.session_id])

            with _instead(self, "tell", per_room):
                super().change_nick(session, new_nick)

    _serve_with(PerRoomService)


def _not_in_room_as_no_such_room() -> None:
    """A request for a room the client is not in is refused with NO_SUCH_ROOM.

    The room is looked up among the client's own rooms, so "not a member" and
    "no such room" come out alike: CP-ROOM-8 wants NOT_IN_ROOM for PART,
    SET_TOPIC, SEND_ROOM and HISTORY from a non-member. A room that does not
    exist is still NO_SUCH_ROOM (CP-ROOM-7); KICK's NOT_IN_ROOM (about its
    target, CP-OPER-5) does not come from here.
    """
    from chatproto import ErrorCode, fold
    from reference_server.service import ChatService, Refused

    class OneCodeService(ChatService):
        def member_room(self, session: Session, name: str) -> Room:
            room = self.rooms.get(fold(name))
            if room is None or room.fold not in self.backplane.rooms_of(session):
                raise Refused(ErrorCode.NO_SUCH_ROOM, f"no room {name}")  # BUG: one code
            return room

    _serve_with(OneCodeService)


def _member_count_excludes_joiner() -> None:
    """The ROOM_INFO answering a JOIN counts the members as they were before the joiner.

    CP-ROOM-9: ROOM_INFO describes the room "right after the client was added
    (the client counted in member_count)". LIST_ROOMS (CP-ROOM-17) counts
    right.
    """
    from chatproto.messages import RoomInfo
    from reference_server.service import ChatService

    class OldCountService(ChatService):
        def on_join(self, session: Session, request: Join) -> None:
            reply = session.reply

            def reply_with_old_count(message: Message) -> None:
                if isinstance(message, RoomInfo):
                    # BUG: member_count = len(members) taken before the joiner was added.
                    message = message.model_copy(
                        update={"member_count": message.member_count - 1})
                reply(message)

            with _instead(session, "reply", reply_with_old_count):
                super().on_join(session, request)

    _serve_with(OldCountService)


def _kick_without_operator_check() -> None:
    """KICK forgets the operator check that BAN, UNBAN and MUTE make.

    CP-OPER-3: KICK from a non-operator is refused with NOT_OPERATOR whatever
    it names. Here it is carried out, or refused with NO_SUCH_NICK or
    NOT_IN_ROOM as an operator's KICK would be.
    """
    from reference_server.service import ChatService

    class UncheckedKickService(ChatService):
        def on_kick(self, session: Session, request: Kick) -> None:
            with _instead(self, "need_operator", lambda session: None):  # BUG: no check
                super().on_kick(session, request)

    _serve_with(UncheckedKickService)


def _moderation_by_current_nick_only() -> None:
    """A ban or mute is checked against the client's current nick only.

    CP-OPER-10: a ban or mute stays with every connection that held the nick.
    Here a NICK shakes it off: the banned member joins again, the muted one
    speaks. Every other moderation rule is about the holder of the nick named,
    and holds.
    """
    from reference_server.service import ChatService

    class CurrentNickService(ChatService):
        def is_marked(self, kind: MarkKind, session: Session, room: Room) -> bool:
            # BUG: the nick only, not the connection that held it
            return self.moderation.applies(kind, room.fold, -1, session.nick_fold)

    _serve_with(CurrentNickService)


# ---------------------------------------------------------- handshake, errors


def _welcome_casemapping_rfc1459() -> None:
    """WELCOME says casemapping "rfc1459", out of IRC habit; nicks still fold as ascii.

    CP-HS-1: WELCOME's casemapping is "ascii". Nothing else changes.
    """
    import reference_server.service

    reference_server.service.CASEMAPPING = "rfc1459"  # type: ignore[attr-defined]  # BUG


def _unsupported_version_detail_in_prose() -> None:
    """UNSUPPORTED_VERSION says "this server speaks version 1 only", not "1-1".

    CP-HS-6: the detail is the server's range as two decimal numbers joined by
    a hyphen. Code, fatality and closing (CP-HS-5) are unchanged.
    """
    from chatproto import ErrorCode, RemoteProtocolError
    from reference_server.session import Session

    class ProseSession(Session):
        def fail(self, exc: RemoteProtocolError) -> None:
            if exc.code == ErrorCode.UNSUPPORTED_VERSION:
                exc = RemoteProtocolError(exc.code, "this server speaks version 1 only",  # BUG
                                          request_id=exc.request_id)
            super().fail(exc)

    _session_with(ProseSession)


def _hello_refusal_without_request_id() -> None:
    """An ERROR refusing a HELLO (NICK_IN_USE, NICK_REGISTERED, AUTH_FAILED) has request_id 0.

    "The client has no session yet", so the refusal goes out uncorrelated:
    CP-ERR-2 (an ERROR refusing a request carries its request_id). Refusals of
    every other request, and HELLO refusals by the frame checks (such as
    INVALID_NICK), carry the request_id as in the reference.
    """
    from chatproto.messages import Error, Hello
    from reference_server.service import ChatService

    class UncorrelatedService(ChatService):
        def refuse(self, session: Session, message: Message, refused: Refused) -> None:
            if not isinstance(message, Hello):
                super().refuse(session, message, refused)
                return
            session.reply(Error(request_id=0, code=int(refused.code), fatal=False,  # BUG
                                detail=refused.detail or refused.code.name))

    _serve_with(UncorrelatedService)


def _unknown_type_closes_connection() -> None:
    """A frame of an unknown type is answered with UNKNOWN_TYPE, then the connection closed.

    CP-EXT-2: answer UNKNOWN_TYPE, discard the frame "and continue with the
    next frame". The ERROR itself is right (non-fatal, the frame's request_id).
    """
    from chatproto import ErrorCode, FrameRejected
    from reference_server.session import Session

    class ClosingSession(Session):
        def handle_event(self, event: Event) -> Awaitable[None] | None:
            pending = super().handle_event(event)
            if isinstance(event, FrameRejected) and event.code == ErrorCode.UNKNOWN_TYPE:
                # BUG: "a client that sends garbage is broken anyway".
                self.server.service.leave_chat(self, "sent a frame of unknown type")
                self.close_after_flush()
            return pending

    _session_with(ClosingSession)


# ------------------------------------------------------- keepalive and flow


def _no_pong() -> None:
    """PING from a client is ignored: "the server pings, clients answer".

    CP-KEEP-1: an endpoint that receives a PING answers it with PONG. (A PING
    left without its final response also breaks the general CP-REQ-4; CP-KEEP-1
    is the rule about PING, and the one the kit must report.) The server's own
    PINGs and the idle timeout are unchanged.
    """
    from reference_server.service import ChatService

    class DeafService(ChatService):
        def on_ping(self, session: Session, ping: Ping) -> None:
            return None  # BUG

    _serve_with(DeafService)


def _send_blocking(fd: int, data: bytes) -> None:
    """Write all of ``data``, waiting (with the whole event loop) until the socket takes it."""
    view = memoryview(data)
    while view:
        select.select([], [fd], [])  # no timeout: as long as the client does not read
        try:
            sent = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[sent:]


def _slow_reader_stalls_room() -> None:
    """Output is written with a blocking send, so one client that does not read stalls all.

    The classic thread-per-client design's blocking sendall, on the event
    loop: a flush waits until the client's socket has taken every byte. While
    one client does not read, nothing is delivered to anyone and no request of
    any connection is handled: CP-FLOW-4. The bytes queued per connection never
    exceed the socket buffers (CP-FLOW-1 holds), and as the queue never
    exceeds its bound nobody is dropped as a slow consumer (CP-FLOW-2 does not
    apply). Plain TCP only: the bytes bypass TLS.
    """
    import asyncio

    from reference_server.session import Session

    class BlockingSession(Session):
        def write(self, transport: asyncio.Transport, data: bytes) -> None:
            try:
                _send_blocking(transport.get_extra_info("socket").fileno(), data)  # BUG
            except OSError:
                transport.abort()

    _session_with(BlockingSession)


def _unbounded_output_queue() -> None:
    """Output for a client that does not read is queued without limit; nobody is dropped.

    The session never compares its backlog with max_output_buffer: CP-FLOW-1
    (bound the bytes queued per connection). Having no bound, there is none to
    exceed, so CP-FLOW-2 (what to do past the bound) does not apply; writes
    are still asynchronous, so the other clients are served as before
    (CP-FLOW-4 holds). The price is the server's memory.
    """
    from reference_server.session import Session

    class UnboundedSession(Session):
        def exceeds_output_bound(self, queued: int) -> bool:
            return False  # BUG: no bound, for answers, events or the transport's buffer

    _session_with(UnboundedSession)


# ------------------------------------------------------------------- closing


def _quit_reason_dropped() -> None:
    """The MEMBER_LEFT sent for a QUIT has kind QUIT but an empty reason.

    CP-CLOSE-3: MEMBER_LEFT "with kind QUIT and the QUIT's reason". BYE
    (CP-CLOSE-1) and PART's reason (CP-ROOM-14) are unaffected.
    """
    from reference_server.service import ChatService

    class ReasonlessService(ChatService):
        def on_quit(self, session: Session, request: Quit) -> None:
            super().on_quit(session, request.model_copy(update={"reason": ""}))  # BUG

    _serve_with(ReasonlessService)


def _no_member_left_on_disconnect() -> None:
    """Only a QUIT is announced: a connection that just ends leaves its rooms silently.

    CP-CLOSE-9: when a connection ends other than after QUIT, the other members
    get MEMBER_LEFT with kind DISCONNECT. The member is still removed from its
    rooms and its nick released (CP-NICK-6); a QUIT is announced (CP-CLOSE-3).
    """
    from chatproto.messages import LeaveKind
    from reference_server.service import ChatService

    class SilentService(ChatService):
        def leave_chat(self, session: Session, why: str,
                       kind: LeaveKind = LeaveKind.DISCONNECT, reason: str = "") -> None:
            if kind is LeaveKind.QUIT:
                super().leave_chat(session, why, kind, reason)
                return

            def nobody(event: Message, to: Collection[Member]) -> None:
                return None  # BUG: only QUIT is worth telling the room

            with _instead(self, "tell", nobody):
                super().leave_chat(session, why, kind, reason)

    _serve_with(SilentService)


FAULTS: dict[str, Fault] = {
    "no_partial_frame_buffering": Fault(
        "a read's leftover of fewer than 4 bytes (a split length field) is dropped",
        frozenset({"CP-FRAME-8"}), _no_partial_frame_buffering),
    "no_frame_size_check": Fault(
        "the frame length is never checked against a receive limit",
        frozenset({"CP-FRAME-3", "CP-FRAME-4"}), _no_frame_size_check),
    "frame_size_checked_after_body": Fault(
        "an over-limit frame is refused only after its whole body was buffered",
        frozenset({"CP-FRAME-3"}), _frame_size_checked_after_body),
    "echoes_room_message": Fault(
        "the sender also gets its own ROOM_MESSAGE",
        frozenset({"CP-MSG-1"}), _echoes_room_message),
    "private_message_broadcast": Fault(
        "PRIVATE_MESSAGE is sent to every connection, not only to the addressee",
        frozenset({"CP-MSG-4"}), _private_message_broadcast),
    "strips_message_text": Fault(
        "room message texts lose leading and trailing white space",
        frozenset({"CP-MSG-3"}), _strips_message_text),
    "text_past_cap_is_invalid_field": Fault(
        "a text longer than 16384 bytes is refused as INVALID_FIELD",
        frozenset({"CP-MSG-2"}), _text_past_cap_is_invalid_field),
    "seq_is_msg_id": Fault(
        "a room message's seq is its server-wide msg_id, not 1, 2, 3... per room",
        frozenset({"CP-MSG-8"}), _seq_is_msg_id),
    "history_on_join_off_by_one": Fault(
        "the JOIN replay leaves out the room's latest message",
        frozenset({"CP-HIST-4"}), _history_on_join_off_by_one),
    "case_sensitive_hello_nicks": Fault(
        "HELLO refuses a nick only if another connection holds the same spelling",
        frozenset({"CP-NICK-2"}), _case_sensitive_hello_nicks),
    "nick_changed_per_shared_room": Fault(
        "NICK_CHANGED is sent once per shared room, not once per peer",
        frozenset({"CP-NICK-9"}), _nick_changed_per_shared_room),
    "not_in_room_as_no_such_room": Fault(
        "a non-member's PART, SET_TOPIC, SEND_ROOM or HISTORY is refused NO_SUCH_ROOM",
        frozenset({"CP-ROOM-8"}), _not_in_room_as_no_such_room),
    "member_count_excludes_joiner": Fault(
        "the ROOM_INFO answering JOIN does not count the joiner",
        frozenset({"CP-ROOM-9"}), _member_count_excludes_joiner),
    "kick_without_operator_check": Fault(
        "KICK from a non-operator is carried out",
        frozenset({"CP-OPER-3"}), _kick_without_operator_check),
    "moderation_by_current_nick_only": Fault(
        "a ban or mute is checked against the current nick only: NICK shakes it off",
        frozenset({"CP-OPER-10"}), _moderation_by_current_nick_only),
    "welcome_casemapping_rfc1459": Fault(
        'WELCOME advertises casemapping "rfc1459"',
        frozenset({"CP-HS-1"}), _welcome_casemapping_rfc1459),
    "unsupported_version_detail_in_prose": Fault(
        "UNSUPPORTED_VERSION's detail is prose, not the range 1-1",
        frozenset({"CP-HS-6"}), _unsupported_version_detail_in_prose),
    "hello_refusal_without_request_id": Fault(
        "an ERROR refusing HELLO (NICK_IN_USE, ...) carries request_id 0",
        frozenset({"CP-ERR-2"}), _hello_refusal_without_request_id),
    "unknown_type_closes_connection": Fault(
        "after answering UNKNOWN_TYPE the server closes the connection",
        frozenset({"CP-EXT-2"}), _unknown_type_closes_connection),
    "no_pong": Fault(
        "a client's PING is never answered",
        frozenset({"CP-KEEP-1"}), _no_pong),
    "slow_reader_stalls_room": Fault(
        "output is written with a blocking send: a client that does not read stalls all",
        frozenset({"CP-FLOW-4"}), _slow_reader_stalls_room),
    "unbounded_output_queue": Fault(
        "output for a client that does not read is queued without limit",
        frozenset({"CP-FLOW-1"}), _unbounded_output_queue),
    "quit_reason_dropped": Fault(
        "MEMBER_LEFT for a QUIT has an empty reason",
        frozenset({"CP-CLOSE-3"}), _quit_reason_dropped),
    "no_member_left_on_disconnect": Fault(
        "a connection that ends without QUIT leaves its rooms without MEMBER_LEFT",
        frozenset({"CP-CLOSE-9"}), _no_member_left_on_disconnect),
}


# ------------------------ spec 1.1: errors, handshake and history (issue 14)


def _unsupported_version_detail_in_a_sentence() -> None:
    """UNSUPPORTED_VERSION's detail holds the range inside a sentence: "server supports 1-1".

    CP-HS-6: the detail is the range and nothing else, for a program to read.
    The range itself is right, so the cases that read it (CP-HS-4, CP-HS-5) pass.
    """
    from chatproto import ErrorCode, RemoteProtocolError
    from reference_server.session import Session

    class SentenceSession(Session):
        def fail(self, exc: RemoteProtocolError) -> None:
            if exc.code == ErrorCode.UNSUPPORTED_VERSION:
                exc = RemoteProtocolError(exc.code, f"server supports versions {exc.detail}",
                                          request_id=exc.request_id)  # BUG: words around it
            super().fail(exc)

    _session_with(SentenceSession)



def _client_error_body_judged_by_state() -> None:
    """A client ERROR whose body does not parse is judged by the state table: STATE_VIOLATION.

    "The table allows only a fatal ERROR from a client, and this one is not even
    an ERROR", so the server answers STATE_VIOLATION (fatal) where CP-ERR-11 wants
    MALFORMED_MESSAGE with fatal 0: the check of state reads the body. It closes
    the connection either way, and every other frame is judged as in the reference.
    """
    from chatproto import ErrorCode, RemoteProtocolError
    from reference_server.session import Session

    class StateJudgedSession(Session):
        def fail(self, exc: RemoteProtocolError) -> None:
            if exc.closing and not exc.fatal:
                exc = RemoteProtocolError(ErrorCode.STATE_VIOLATION,  # BUG: judged by its body
                                          "a client sends only fatal ERRORs")
            super().fail(exc)

    _session_with(StateJudgedSession)


def _history_room_checked_before_limit() -> None:
    """HISTORY's ``limit`` is declared a bare u16, and the handler looks the room up before
    it refuses 0: limit 0 for a room the client is not in gets NOT_IN_ROOM, for one that
    does not exist NO_SUCH_ROOM.

    CP-HIST-12: limit 0 is INVALID_FIELD whatever the room, a field check made before
    the room is looked at. A member's HISTORY with limit 0 is still INVALID_FIELD.
    """
    from typing import Any

    from chatproto import Connection, ErrorCode, Sender
    from chatproto._fields import UINT16
    from chatproto._schema import SCHEMA
    from chatproto.messages import History
    from reference_server.service import ChatService, Refused
    from reference_server.session import Session

    lax = SCHEMA.with_field_type(History, "limit", UINT16)  # BUG: limit 0 passes step 5

    class LaxSession(Session):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.conn = Connection(Sender.SERVER, self.conn.limits, schema=lax)

    class RoomFirstService(ChatService):
        def on_history(self, session: Session, request: History) -> None:
            self.member_room(session, request.room)  # BUG: the room before the field
            if request.limit == 0:
                raise Refused(ErrorCode.INVALID_FIELD, "limit must be at least 1")
            super().on_history(session, request)

    _session_with(LaxSession)
    _serve_with(RoomFirstService)

FAULTS.update({
    "history_room_checked_before_limit": Fault(
        "HISTORY limit 0 for an unknown room or a non-member is NO_SUCH_ROOM / NOT_IN_ROOM",
        frozenset({"CP-HIST-12"}), _history_room_checked_before_limit),
    "client_error_body_judged_by_state": Fault(
        "a client ERROR whose body does not parse is answered STATE_VIOLATION",
        frozenset({"CP-ERR-11"}), _client_error_body_judged_by_state),
    "unsupported_version_detail_in_a_sentence": Fault(
        'UNSUPPORTED_VERSION\'s detail is "server supports versions 1-1", not "1-1"',
        frozenset({"CP-HS-6"}), _unsupported_version_detail_in_a_sentence),
})


# ---------------------- spec 1.1: nicks, rate limits and moderation (issue 14)


def _account_checked_before_holder() -> None:
    """NICK looks for an account before it looks at who holds the nick.

    A NICK to a registered nick that its owner holds is then NICK_REGISTERED,
    where CP-NICK-10 requires NICK_IN_USE for any nick another connection holds,
    registered or not (CP-NICK-8 is for a registered nick nobody holds). A NICK
    to a registered nick nobody holds, or to a guest's nick, is answered right,
    and HELLO and LOGIN are untouched.
    """
    from chatproto import ErrorCode, fold
    from chatproto.messages import Nick
    from reference_server.service import ChatService, Refused

    class AccountFirstService(ChatService):
        def on_nick(self, session: Session, request: Nick) -> None:
            new_fold = fold(request.nick)
            if new_fold != session.nick_fold and self.store.account_hash(new_fold) is not None:
                raise Refused(ErrorCode.NICK_REGISTERED, "registered")  # BUG: holder not seen
            super().on_nick(session, request)

    _serve_with(AccountFirstService)


def _bucket_before_fields() -> None:
    """A message takes its token before its fields are checked.

    The reading of version 1's "the bucket is checked before the request's
    fields": a SEND_ROOM or SEND_PRIVATE refused for a field (INVALID_FIELD,
    MESSAGE_TOO_LONG, ...) takes a token, and once the bucket is empty such a
    message is answered RATE_LIMITED instead. CP-RATE-7: a request refused
    before the rate limits in the order of checks takes no token. Messages that
    pass their field checks, and commands, are counted as in the reference.
    """
    from chatproto import ErrorCode, FrameRejected
    from chatproto.messages import Error, SendPrivate, SendRoom
    from reference_server.session import Session

    message_types = (SendRoom.TYPE, SendPrivate.TYPE)

    class BucketFirstSession(Session):
        def handle_event(self, event: Event) -> Awaitable[None] | None:
            if isinstance(event, FrameRejected) and event.type_code in message_types:
                wait_ms = self.server.service.take_token(self, True)  # BUG: before the fields
                if wait_ms:
                    self.reply(Error(request_id=event.request_id,
                                     code=int(ErrorCode.RATE_LIMITED), fatal=False,
                                     retry_after_ms=wait_ms, detail="rate limit"))
                    return None
            return super().handle_event(event)

    _session_with(BucketFirstSession)


def _operator_never_told() -> None:
    """Moderation events go to everyone concerned but the operator, even when he is the target.

    The reading of version 1's "the requester never receives the event of its
    own action" without its exceptions: an operator who KICKs, BANs or MUTEs his
    own nick gets only OK. CP-OPER-12 gives him the event a target gets, before
    the OK. Every other member's events, and private messages, are as in the
    reference.
    """
    from chatproto.messages import Ban, Mute
    from reference_server.service import ChatService

    class OperatorUntoldService(ChatService):
        def _untold(self, session: Session) -> contextlib.AbstractContextManager[None]:
            tell = self.tell

            def all_but_the_operator(event: Message, to: Collection[Member]) -> None:
                tell(event, [m for m in to if m.session_id != session.session_id])  # BUG

            return _instead(self, "tell", all_but_the_operator)

        def on_kick(self, session: Session, request: Kick) -> None:
            with self._untold(session):
                super().on_kick(session, request)

        def on_ban(self, session: Session, request: Ban) -> None:
            with self._untold(session):
                super().on_ban(session, request)

        def on_mute(self, session: Session, request: Mute) -> None:
            with self._untold(session):
                super().on_mute(session, request)

    _serve_with(OperatorUntoldService)


def _mute_checked_before_resend() -> None:
    """SEND_ROOM checks the mute before it looks for a resend.

    Version 1's reference order: a muted sender's resend of a message accepted
    before the mute is answered MUTED, so the client takes a delivered message
    for a lost one. CP-MSG-13 puts the resend's OK first. A muted sender's new
    messages are MUTED, and resends by senders who are not muted are OK, as in
    the reference.
    """
    from chatproto import ErrorCode
    from reference_server.service import ChatService, Refused

    class MuteFirstService(ChatService):
        def on_send_room(self, session: Session, request: SendRoom) -> None:
            room = self.member_room(session, request.room)
            if self.is_marked("mute", session, room):
                raise Refused(ErrorCode.MUTED, "muted")  # BUG: before the resend check
            super().on_send_room(session, request)

    _serve_with(MuteFirstService)


FAULTS.update({
    "account_checked_before_holder": Fault(
        "NICK to a registered nick its owner holds is NICK_REGISTERED, not NICK_IN_USE",
        frozenset({"CP-NICK-10"}), _account_checked_before_holder),
    "bucket_before_fields": Fault(
        "a message refused for its fields takes a token; past the burst it is RATE_LIMITED",
        frozenset({"CP-RATE-7"}), _bucket_before_fields),
    "operator_never_told": Fault(
        "an operator who kicks, bans or mutes himself gets no event, only OK",
        frozenset({"CP-OPER-12"}), _operator_never_told),
    "mute_checked_before_resend": Fault(
        "a muted sender's resend of a message accepted before the mute is MUTED",
        frozenset({"CP-MSG-13"}), _mute_checked_before_resend),
})


def _usage() -> str:
    lines = [f"  {name:<37} {', '.join(sorted(fault.breaks))}: {fault.description}"
             for name, fault in FAULTS.items()]
    return "usage: python tests/faulty_servers.py FAULT [server flags...]\nfaults:\n" + \
        "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in FAULTS:
        print(_usage(), file=sys.stderr)
        return 2
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    fault = FAULTS[argv[0]]
    fault.patch()
    from reference_server.__main__ import main as server_main

    print(f"faulty server {argv[0]} (breaks {', '.join(sorted(fault.breaks))}): "
          f"{fault.description}", file=sys.stderr, flush=True)
    return server_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

