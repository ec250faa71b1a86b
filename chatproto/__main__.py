"""``chatproto``: print a summary of protocol v1, straight from the schema."""

from __future__ import annotations

import argparse
import sys

from chatproto import DEFAULT_PORT, ERROR_REGISTRY, MESSAGE_TYPES, PROTOCOL_VERSION, __version__
from chatproto.messages import Limits
from chatproto.names import CASEMAPPING


def summary() -> str:
    """The protocol at a glance: framing, message types, errors and limits."""
    lines = [
        f"chatproto {__version__}: protocol version {PROTOCOL_VERSION}, "
        f"default TCP port {DEFAULT_PORT}, casemapping {CASEMAPPING!r}",
        "Frame: length u32 (octets after it) | type u16 | request_id u32 | body",
        "",
        f"{len(MESSAGE_TYPES)} message types:",
    ]
    for code, cls in MESSAGE_TYPES.items():
        answer = f" -> {cls.FINAL_RESPONSE.NAME}" if cls.FINAL_RESPONSE else ""
        lines.append(f"  {code:#06x}  {cls.NAME:<16} {cls.SENDER.value:<6}{answer}")
    lines += ["", f"{len(ERROR_REGISTRY)} error codes:"]
    for info in ERROR_REGISTRY.values():
        flags = ", ".join(
            word for word, on in (("fatal", info.fatal), ("retriable", info.retriable),
                                  ("local only", not info.on_wire)) if on
        )
        lines.append(f"  {int(info.code):>4}  {info.name:<20} {flags}")
    lines += ["", "Limits a server advertises (reference defaults):"]
    for name, value in Limits().model_dump().items():
        lines.append(f"  {name:<22} {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatproto", description=__doc__)
    parser.parse_args(argv)
    print(summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
