"""The fast codec of the default schema (``SCHEMA``), as the functions chatproto exports.

The codec is generated per schema (``chatproto._codegen``); a connection built on
another schema uses that schema's codec instead of these.
"""

from __future__ import annotations

from collections.abc import Mapping

from chatproto._codegen import Decoder, Encoder
from chatproto._schema import SCHEMA

DECODERS: Mapping[int, Decoder] = SCHEMA.codec.decoders
ENCODERS: Mapping[int, Encoder] = SCHEMA.codec.encoders
GENERATED_SOURCE: str = SCHEMA.codec.source
"""Generated per-type body decoders and whole-frame encoders, and their source."""

decode_body = SCHEMA.codec.decode_body
decode_frame = SCHEMA.codec.decode_frame
encode = SCHEMA.codec.encode
