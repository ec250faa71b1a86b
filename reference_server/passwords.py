"""Password hashing with scrypt: slow on purpose, salted, never reversible (CP-SEC-5, CP-SEC-6).

A stored password is one of two things, told apart by its first characters:
a hash made by ``hash_password`` (``scrypt$N$r$p$SALT$DIGEST``), or, for an
operator configured by hand, the password itself. Anything that starts with
``scrypt$`` is taken for a hash and must be a whole one: a truncated paste or
the documentation's ``scrypt$16384$8$1$...`` placeholder is an error, never a
password that happens to work.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import functools
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

# 2^14 x 8 x 1 is the interactive-login setting recommended with scrypt's
# paper and by OWASP: about 16 MiB and tens of milliseconds per check, which is
# why the server runs it in a worker thread rather than on the event loop.
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024
HASH_PREFIX = "scrypt$"
_M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter number
_MMAP_THRESHOLD = 4 * 1024 * 1024

_BASE64 = r"[A-Za-z0-9+/]+={0,2}"
_HASH_FORMAT = re.compile(rf"scrypt\$([0-9]+)\$([0-9]+)\$([0-9]+)\$({_BASE64})\$({_BASE64})")


@dataclass(frozen=True)
class ScryptHash:
    """A parsed ``scrypt$N$r$p$SALT$DIGEST``."""

    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, stored: str) -> ScryptHash:
        """The hash in ``stored``; ValueError saying what is wrong (never quoting it)."""
        match = _HASH_FORMAT.fullmatch(stored)
        if match is None:
            raise ValueError(
                "starts with scrypt$ but is not a whole hash (scrypt$N$r$p$SALT$DIGEST); "
                "paste the full line `chatproto-server hash-password` prints, or give a "
                "plain password that does not start with scrypt$")
        n, r, p = (int(match.group(i)) for i in (1, 2, 3))
        if n < 2 or n & (n - 1):
            raise ValueError("the scrypt hash's N is not a power of 2")
        if r < 1 or p < 1:
            raise ValueError("the scrypt hash's r and p must be at least 1")
        # OpenSSL's own limits: N below 2^(16 r), and 128 r (N + p + 2) bytes of memory.
        if n >= 1 << (16 * r) or 128 * r * (n + p + 2) > _MAXMEM:
            raise ValueError("the scrypt hash's N, r and p are beyond what the server checks "
                             "(N below 2^(16 r), at most 64 MiB)")
        try:
            salt = base64.b64decode(match.group(4), validate=True)
            digest = base64.b64decode(match.group(5), validate=True)
        except binascii.Error:
            raise ValueError("the scrypt hash's salt or digest is not valid base64") from None
        if len(digest) < 16:
            raise ValueError("the scrypt hash's digest is shorter than 16 bytes")
        return cls(n, r, p, salt, digest)


@functools.cache
def _give_big_buffers_back() -> None:
    """Make glibc's malloc return scrypt's buffers to the system as soon as they are freed.

    glibc raises its mmap threshold past the first large block freed, after which
    every 16 MiB scrypt buffer comes from the arena of the worker thread running it
    and stays there: a few concurrent logins left the server 16 MiB per worker
    thread larger for good (45 -> 140 MB RSS, six threads). A fixed threshold turns
    that adjustment off: blocks of 4 MiB or more are mapped and unmapped each time.
    Where there is no glibc, nothing is done.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    _give_big_buffers_back()
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=_MAXMEM)


def hash_password(password: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    """A self-describing hash: ``scrypt$n$r$p$salt$digest`` (base64)."""
    salt = os.urandom(16)
    digest = _scrypt(password, salt, n, r, p, 32)
    encode = base64.b64encode
    return f"{HASH_PREFIX}{n}${r}${p}${encode(salt).decode()}${encode(digest).decode()}"


def check_stored_password(stored: str) -> None:
    """Raise ValueError if ``stored`` claims to be a hash (``scrypt$...``) and is not one."""
    if stored.startswith(HASH_PREFIX):
        ScryptHash.parse(stored)


def is_hash(stored: str) -> bool:
    """``stored`` is a whole scrypt hash (not a plain password, not a broken hash)."""
    try:
        ScryptHash.parse(stored)
    except ValueError:
        return False
    return True


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (a hash, or a plain configured password).

    ``stored`` must have passed ``check_stored_password`` (the configuration
    checks every operator's): a broken hash raises ValueError here.
    """
    if not stored.startswith(HASH_PREFIX):  # an operator password written in plain text
        return hmac.compare_digest(password.encode("utf-8"), stored.encode("utf-8"))
    expected = ScryptHash.parse(stored)
    actual = _scrypt(password, expected.salt, expected.n, expected.r, expected.p,
                     len(expected.digest))
    return hmac.compare_digest(actual, expected.digest)
