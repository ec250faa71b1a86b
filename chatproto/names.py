"""Nickname and room-name rules, and the one fold that makes them case-insensitive.

Spec v1 uses an ASCII-only profile with the casemapping called ``"ascii"``:
only ``A``-``Z`` fold to ``a``-``z``. Every implementation, in any language, can
write this fold in one line and agree on it byte for byte; see the spec page
"Nicknames and rooms" for why PRECIS and "NFC + casefold" were not chosen.
"""

from __future__ import annotations

import re

CASEMAPPING = "ascii"
"""The casemapping name a server advertises in WELCOME."""

NICK_MAX_BYTES = 32
"""Protocol cap on a nickname's length; servers may advertise less."""

ROOM_NAME_MAX_BYTES = 64
"""Protocol cap on a room name's length, the leading ``#`` included."""

NICK_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
ROOM_NAME_PATTERN = re.compile(r"#[A-Za-z0-9_-]+")

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """Fold a nickname or room name for comparison (casemapping ``ascii``).

    Two names are the same name exactly when their folds are equal. Only the 26
    ASCII capitals change; every other character is left as it is (valid names
    contain no others).
    """
    return name.translate(_ASCII_FOLD)


def is_valid_nick(nick: str) -> bool:
    """True when ``nick`` follows the nickname profile (at the protocol cap)."""
    return len(nick) <= NICK_MAX_BYTES and NICK_PATTERN.fullmatch(nick) is not None


def is_valid_room_name(room: str) -> bool:
    """True when ``room`` follows the room-name rules (at the protocol cap)."""
    return len(room) <= ROOM_NAME_MAX_BYTES and ROOM_NAME_PATTERN.fullmatch(room) is not None
