"""How the client words what goes wrong: one clear line for a person, never a traceback.

``describe_error(exc)`` takes every failure the client can meet (a refused
request, a lost connection, TLS and network errors, a command typed wrong) and
the events that end or trouble a conversation (kicked, banned, reconnecting,
disconnected), and says what happened, then what to do. The wording of each
error code is a table, ``_WORDING``; codes it leaves out get the registry's
own summary.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from chatproto import ERROR_REGISTRY, ErrorCode, Message, error_name, fold, known_error_code
from chatproto.messages import Error, LeaveKind, MemberLeft
from chatproto.names import NICK_MAX_BYTES, ROOM_NAME_MAX_BYTES
from reference_client.client import ChatError, ConnectionLost, HandshakeFailed, tls_failure
from reference_client.commands import CommandError, validation_where
from reference_client.events import (
    ClientEvent,
    Disconnected,
    HistoryGapDetected,
    Reconnected,
    Reconnecting,
)

__all__ = ["describe_error", "disconnect_reason"]


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def _one_line(text: str) -> str:
    """Whitespace and control characters collapsed: one printable line."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _seconds(ms: int) -> str:
    seconds = ms / 1000
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _what(request: str) -> str:
    return request.replace("_", " ") if request else "request"


@dataclass(frozen=True, slots=True)
class _Wording:
    """How the client words one error code: what happened, then what to do."""

    what: str
    advice: str = ""
    shows_detail: bool = True
    """False when the wording says all there is (the server's detail is left out)."""
    what_answering: Mapping[str, str] = field(default_factory=dict)
    """A ``what`` of its own for the answer to one request type (``"OPER"``)."""
    handshake_advice: str = ""
    """The ``advice`` when HELLO was refused (the person is not logged in yet)."""
    wait_advice: str = ""
    """The ``advice`` when the ERROR says how long to wait: ``{wait}`` is that time."""


_E = ErrorCode
_WORDING: Mapping[ErrorCode, _Wording] = {
    _E.NICK_IN_USE: _Wording("nick already in use", "choose another nick"),
    _E.NICK_REGISTERED: _Wording(
        "this nick is registered to an account", "use /login NICK PASSWORD",
        handshake_advice="give its password (--password-env VAR or --password-stdin)"),
    _E.AUTH_FAILED: _Wording("wrong password",
                             what_answering={"OPER": "wrong operator name or password"}),
    _E.UNSUPPORTED_VERSION: _Wording(
        "version mismatch: the server does not speak chatproto version 1",
        "use a client that matches the server"),
    _E.INVALID_NICK: _Wording("invalid nick: a nick is an ASCII letter then letters, digits, "
                              f"'_' or '-' (at most {NICK_MAX_BYTES})",
                              shows_detail=False),
    _E.INVALID_ROOM_NAME: _Wording(f"invalid room name: a room name is '#' then 1 to "
                                   f"{ROOM_NAME_MAX_BYTES - 1} letters, digits, '_' or '-'",
                                   shows_detail=False),
    _E.BANNED_FROM_ROOM: _Wording("you are banned from that room"),
    _E.RATE_LIMITED: _Wording("rate limited (too many requests)", shows_detail=False,
                              wait_advice="wait {wait} before trying again"),
    _E.SERVER_SHUTDOWN: _Wording("the server is shutting down", shows_detail=False,
                                 wait_advice="try again in {wait}"),
    _E.NOT_OPERATOR: _Wording("only server operators can do that", "/oper NAME PASSWORD first",
                              shows_detail=False),
    _E.NOT_IN_ROOM: _Wording("you are not in that room"),
    _E.ALREADY_IN_ROOM: _Wording("you are already in that room"),
    _E.NO_SUCH_NICK: _Wording("no such nick is connected"),
    _E.NO_SUCH_ROOM: _Wording("no such room"),
    _E.MUTED: _Wording("you are muted in that room"),
    _E.MESSAGE_TOO_LONG: _Wording("message too long"),
    _E.TOO_MANY_ROOMS: _Wording("you are in too many rooms", "/part one first"),
    _E.ALREADY_REGISTERED: _Wording("this nick is already registered"),
    _E.IDLE_TIMEOUT: _Wording("the server closed the idle connection", shows_detail=False),
    _E.SLOW_CONSUMER: _Wording("the server dropped the connection: this client was reading "
                               "too slowly", shows_detail=False),
}
"""The client's own words for the codes a person meets; other codes get the registry's."""

_FILLER_WORDS = frozenset({
    "a", "an", "the", "is", "are", "be", "was", "in", "on", "at", "of", "to", "for", "and",
    "or", "it", "its", "this", "that", "you", "your", "server", "client", "request"})
"""Words any error line may use: sharing one of them does not make two texts say the same."""


def _content_words(text: str) -> set[str]:
    return {word for word in re.findall(r"[a-z0-9_]+", text.lower())
            if word not in _FILLER_WORDS}


def _what_with_detail(what: str, detail: str) -> str:
    """What happened, told once: the client's wording and the server's detail.

    A detail that restates the wording -- shares a content word with it, as
    "alice is in use" does with "nick already in use" -- replaces it, being
    the more specific of the two; any other detail is added in parentheses.
    """
    if not detail:
        return what
    if _content_words(detail) & _content_words(what):
        return detail
    return f"{what} ({detail})"


def _chat_error_line(code: int, detail: str, retry_after_ms: int, request: str,
                     handshake: bool) -> str:
    """The line for an ERROR with ``code`` answering ``request``."""
    detail = detail.strip()
    known = known_error_code(code)
    wording = _WORDING.get(known) if known is not None else None
    if wording is None:
        summary = ERROR_REGISTRY[known].summary.rstrip(".") if known is not None else \
            f"error {code}"
        return f"{_what(request)} refused: {error_name(code)}: {detail or summary}"
    what = wording.what_answering.get(request, wording.what)
    advice = wording.handshake_advice if handshake and wording.handshake_advice \
        else wording.advice
    if retry_after_ms and wording.wait_advice:
        advice = wording.wait_advice.format(wait=_seconds(retry_after_ms))
    if wording.shows_detail:
        what = _what_with_detail(what, detail)
    return f"{what}: {advice}" if advice else what


def _handshake_line(exc: HandshakeFailed) -> str:
    return "cannot log in: " + _chat_error_line(exc.code, exc.detail, exc.retry_after_ms,
                                               exc.request, True)


_ENDS_THE_CONNECTION = frozenset({ErrorCode.SERVER_SHUTDOWN, ErrorCode.IDLE_TIMEOUT,
                                  ErrorCode.SLOW_CONSUMER})
"""Codes whose own wording says why the connection ended (others: the reason does)."""


def _lost_reason(reason: str, code: int | None, retry_after_ms: int) -> str:
    """Why a connection ended, without the word "disconnected" in front."""
    reason = reason.strip() or "connection closed"
    if code is not None:
        if code in _ENDS_THE_CONNECTION:
            return _chat_error_line(code, "", retry_after_ms, "", False)
        return reason
    lowered = reason.lower()
    if "refused" in lowered:
        return f"{reason} (is the server running, on this host and port?)"
    if lowered.startswith(("cannot connect", "connection lost", "disconnected")):
        return reason
    return f"connection lost: {reason}"


def _connection_lost_line(reason: str, code: int | None, retry_after_ms: int) -> str:
    # With a code the server said goodbye: the line says "disconnected"; without
    # one the reason itself says what happened ("connection lost: ...").
    lost = _lost_reason(reason, code, retry_after_ms)
    return f"disconnected: {lost}" if code is not None else lost


def disconnect_reason(event: Disconnected) -> str:
    """Why the connection ended, for a place that already says "disconnected" (a title
    bar); empty when this client closed it itself."""
    if event.code is None and event.reason == "closed":
        return ""
    return _lost_reason(event.reason, event.code, 0)


def _member_left_line(event: MemberLeft, me: str | None) -> str:
    mine = me is not None and fold(event.nick) == fold(me)
    who = "you were" if mine else f"{event.nick} was"
    by = f" by {event.by}" if event.by else ""
    reason = f": {event.reason}" if event.reason else ""
    if event.kind == LeaveKind.KICK:
        return f"{who} kicked from {event.room}{by}{reason}"
    if event.kind == LeaveKind.BAN:
        return f"{who} banned from {event.room}{by}{reason}"
    subject = "you" if mine else event.nick
    verb = {LeaveKind.PART: "left", LeaveKind.QUIT: "quit",
            LeaveKind.DISCONNECT: "lost the connection"}.get(LeaveKind(event.kind), "left")
    where = f" {event.room}" if event.kind == LeaveKind.PART else f" ({event.room})"
    return f"{subject} {verb}{where}{reason}"


def describe_error(exc: BaseException | Message | ClientEvent, *, me: str | None = None) -> str:
    """One line for a person: what went wrong (never a traceback).

    Takes the exceptions the client can meet (``HandshakeFailed``,
    ``ChatError``, ``ConnectionLost``, ``CommandError``, ``OSError``, TLS and
    timeout errors) and the events that report trouble: ``Reconnecting``,
    ``Disconnected``, a fatal ``ERROR`` event, ``MEMBER_LEFT`` by KICK or BAN
    (``me``: our nick, to say "you were kicked").
    """
    try:
        line = _describe(exc, me)
    except Exception:  # describing must never fail: fall back to the bare facts
        line = f"{type(exc).__name__}: {exc}"
    return _one_line(line) or "unknown error"


def _describe(exc: BaseException | Message | ClientEvent, me: str | None) -> str:
    if isinstance(exc, HandshakeFailed):
        return _handshake_line(exc)
    if isinstance(exc, ChatError):
        return _chat_error_line(exc.code, exc.detail, exc.retry_after_ms, exc.request, False)
    if isinstance(exc, CommandError):
        if exc.code in (ErrorCode.INVALID_NICK, ErrorCode.INVALID_ROOM_NAME):
            return _chat_error_line(exc.code, "", 0, exc.command or "", False)
        return exc.message
    if isinstance(exc, ConnectionLost):
        return _connection_lost_line(exc.reason, exc.code, exc.retry_after_ms)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, on this host and port?)"
    if isinstance(exc, ssl.SSLError) and (failure := tls_failure(exc)) is not None:
        return f"TLS: {failure.value}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", "") or getattr(exc, "reason", "") or exc
        return f"TLS: the server's certificate is not valid: {why}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {getattr(exc, 'reason', '') or exc}"
    if isinstance(exc, TimeoutError):
        return "timed out waiting for the server"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    if isinstance(exc, ValidationError):
        return f"invalid {validation_where(exc)}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, Reconnecting):
        return (f"connection lost ({exc.reason}); reconnecting in {exc.delay_s:.1f} s "
                f"(attempt {exc.attempt})")
    if isinstance(exc, Reconnected):
        rooms = f", back in {', '.join(exc.rooms)}" if exc.rooms else ""
        return f"reconnected as {exc.nick}{rooms}"
    if isinstance(exc, Disconnected):
        reason = disconnect_reason(exc)
        if exc.code is not None or not reason:
            return f"disconnected: {reason}" if reason else "disconnected"
        return reason
    if isinstance(exc, HistoryGapDetected):
        return (f"{exc.room}: missed messages {exc.first_seq}-{exc.last_seq}, "
                "no longer available")
    if isinstance(exc, Error):
        line = _chat_error_line(exc.code, exc.detail, exc.retry_after_ms, "", False)
        return f"disconnected: {line}" if exc.fatal else line
    if isinstance(exc, MemberLeft):
        return _member_left_line(exc, me)
    if isinstance(exc, Message | ClientEvent):
        return exc.NAME
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
