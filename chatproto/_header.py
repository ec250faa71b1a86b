"""The frame header and the frame-length bounds: the facts every frame obeys.

Declared once here (in construct, like the bodies) and imported by the schema,
the decoder, the field checks and the apps, so no other module types ``>IHI``,
10, 4096 or 65536 again.
"""

from __future__ import annotations

import struct

import construct as cs

FRAME_HEADER = cs.Struct(
    "length" / cs.Int32ub,
    "type" / cs.Int16ub,
    "request_id" / cs.Int32ub,
)
"""Every frame's header. ``length`` counts the octets after itself."""

_FIELD_FORMATS = [sub.subcon.fmtstr.lstrip("<>=!") for sub in FRAME_HEADER.subcons]
HEADER_FORMAT = ">" + "".join(_FIELD_FORMATS)
"""The ``struct`` format of ``FRAME_HEADER``, derived from it (``>LHL``)."""
HEADER_STRUCT = struct.Struct(HEADER_FORMAT)
"""``FRAME_HEADER`` as a ``struct.Struct``: ``pack(length, type, request_id)``."""
LENGTH_STRUCT = struct.Struct(">" + _FIELD_FORMATS[0])
"""The length field alone, for reading a frame's length before the rest has arrived."""

HEADER_SIZE: int = FRAME_HEADER.sizeof()
"""Octets of the header, the length field included."""
LENGTH_FIELD_SIZE = LENGTH_STRUCT.size
MIN_FRAME_LENGTH = HEADER_SIZE - LENGTH_FIELD_SIZE
"""The smallest legal length field: type and request_id with an empty body."""

MAX_FRAME_LENGTH = 65536
"""Largest length field in spec v1: what clients accept and servers may advertise."""

PRE_WELCOME_FRAME_LENGTH = 4096
"""Largest length field a client sends before it knows the server's limit.

It is also the least ``max_frame_size`` a server may advertise (spec: limits).
"""

