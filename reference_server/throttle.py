"""The server's own rate limits, keyed by nick or address: login failures, new accounts.

The spec's two token buckets belong to one connection (``session.TokenBucket``);
these belong to a nick or an IP address, so that reconnecting, or opening many
connections, gains nothing (CP-SEC-7). None of them is advertised in WELCOME: a
refusal says, in ``retry_after_ms``, when to try again (CP-SEC-11).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("chatproto.server")

_PRUNE_AT = 1024
"""Keys held before full buckets are first dropped (then twice what was left)."""


class KeyedBuckets:
    """A token bucket per key, ``burst`` tokens, one more every ``interval_s``.

    A key seen for the first time has a full bucket, and a bucket that has
    filled up again is the same as none: full ones are dropped from time to
    time, so memory holds only the keys that failed within one refill period.
    """

    def __init__(self, burst: int, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        """key -> (tokens, when they were counted)."""
        self._prune_at = _PRUNE_AT

    def _tokens(self, key: str, now: float) -> float:
        tokens, since = self._buckets.get(key, (self.burst, now))
        return min(float(self.burst), tokens + (now - since) / self.interval_s)

    def take(self, key: str) -> int:
        """Take a token: 0 on success, else the milliseconds (at least 1) until there is one."""
        now = self._clock()
        tokens = self._tokens(key, now)
        if tokens < 1:
            return max(1, int((1 - tokens) * self.interval_s * 1000 + 0.999))
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) >= self._prune_at:
            self._prune(now)
        return 0

    def wait_ms(self, key: str) -> int:
        """0 if ``key`` has a token, else the milliseconds (at least 1) until it has one."""
        tokens = self._tokens(key, self._clock())
        return 0 if tokens >= 1 else max(1, int((1 - tokens) * self.interval_s * 1000 + 0.999))

    def charge(self, key: str) -> None:
        """Take a token even if there is none: the bucket goes into debt, which later
        waits pay off, so attempts that overlapped still count in full."""
        now = self._clock()
        self._buckets[key] = (self._tokens(key, now) - 1, now)
        if len(self._buckets) >= self._prune_at:
            self._prune(now)

    def give_back(self, key: str) -> None:
        """Return a token taken by ``take`` (the attempt did not count)."""
        now = self._clock()
        tokens = self._tokens(key, now) + 1
        if tokens >= self.burst:
            self._buckets.pop(key, None)
        else:
            self._buckets[key] = (tokens, now)

    def _prune(self, now: float) -> None:
        self._buckets = {key: (tokens, since) for key, (tokens, since) in self._buckets.items()
                         if tokens + (now - since) / self.interval_s < self.burst}
        self._prune_at = max(_PRUNE_AT, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)


class LoginThrottle:
    """Failed logins per nick and per address (CP-SEC-7).

    Only failures count, so that a right password is never held back by
    someone else's right password (logins that overlap); an attempt is allowed
    while both buckets hold a token, and each failure charges both. Attempts
    already under way when the tokens ran out are charged too, as debt.
    """

    def __init__(self, by_nick: KeyedBuckets, by_address: KeyedBuckets) -> None:
        self.by_nick = by_nick
        self.by_address = by_address

    def wait_ms(self, nick_fold: str, address: str) -> int:
        """0 if an attempt is allowed, else the milliseconds until one is."""
        return max(self.by_nick.wait_ms(nick_fold), self.by_address.wait_ms(address))

    def failed(self, nick_fold: str, address: str) -> None:
        self.by_nick.charge(nick_fold)
        self.by_address.charge(address)


class RareLog:
    """Log a recurring condition at most once per ``interval_s``, with a count of the rest.

    A flood of connections beyond a cap, of throttled logins, or accept()
    failing for want of file descriptors would otherwise write a line per attempt.
    """

    def __init__(self, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def warning(self, key: str, text: str, *args: object) -> None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._unlogged[key] = self._unlogged.get(key, 0) + 1
            return
        self._last[key] = now
        more = self._unlogged.pop(key, 0)
        if more and last is not None:
            text += f" (and {more} more like it in the last {now - last:.0f} s)"
        log.warning(text, *args)
