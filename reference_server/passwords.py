"""Password hashing with scrypt: slow on purpose, salted, never reversible (CP-SEC-5, CP-SEC-6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

# 2^14 x 8 x 1 is the interactive-login setting recommended with scrypt's
# paper and by OWASP: about 16 MiB and tens of milliseconds per check, which is
# why the server runs it in a worker thread rather than on the event loop.
_N, _R, _P = 2**14, 8, 1
_PREFIX = "scrypt"


def hash_password(password: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    """A self-describing hash: ``scrypt$n$r$p$salt$digest`` (base64)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32,
                            maxmem=64 * 1024 * 1024)
    encode = base64.b64encode
    return f"{_PREFIX}${n}${r}${p}${encode(salt).decode()}${encode(digest).decode()}"


def is_hash(stored: str) -> bool:
    return stored.startswith(_PREFIX + "$") and stored.count("$") == 5


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (a hash, or a plain configured password)."""
    if not is_hash(stored):  # an operator password written in plain text in the config
        return hmac.compare_digest(password.encode("utf-8"), stored.encode("utf-8"))
    _, n, r, p, salt, digest = stored.split("$")
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n),
                            r=int(r), p=int(p), dklen=len(expected),
                            maxmem=64 * 1024 * 1024)
    return hmac.compare_digest(actual, expected)
