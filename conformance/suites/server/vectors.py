"""The spec's maximal test vectors, sent to the server: every u64 at 2^64-1.

``spec/vectors/messages.json`` gives, for every message type, a "maximal" frame
whose integers are the largest their wire holds. An implementation that keeps
a u64 in a signed 64-bit integer or a double (JavaScript's numbers) decodes
them wrong, often without an error. The requests that carry a u64 are sent as
the vectors give them, their request_id (2^32-1) and every u64 unchanged; only
the names and texts are swapped for this session's, since a server's
advertised limits may refuse the vectors' longest ones. Then what the server
does with each u64 is checked against the rule that uses it.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, TypeVar

from chatproto import Message, decode_frame
from chatproto.messages import (
    History,
    HistoryGap,
    Join,
    PrivateMessage,
    RoomMessage,
    SendPrivate,
    SendRoom,
)
from chatproto_spec.requirements import spec_dir
from conformance.outcomes import KitError
from conformance.registry import server_case
from conformance.server_side import ServerContext

M = TypeVar("M", bound=Message)

U64_MAX = 2**64 - 1


@cache
def _maximal_frames() -> dict[str, bytes]:
    path = spec_dir() / "vectors" / "messages.json"
    try:
        content: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KitError(f"cannot read the spec's vectors at {path}: {exc}") from None
    return {entry["name"]: bytes.fromhex(case["hex"])
            for entry in content["messages"] for case in entry["cases"]
            if case["case"] == "maximal"}


def maximal(cls: type[M], **session: Any) -> M:
    """The maximal vector of ``cls`` as the server gets it, with this session's names."""
    message = decode_frame(_maximal_frames()[cls.NAME])
    if not isinstance(message, cls):
        raise KitError(f"the maximal vector of {cls.NAME} decodes as {message.NAME}")
    return message.model_copy(update=session)


@server_case("CP-MSG-4", "CP-HIST-3", "CP-HIST-15", "CP-HIST-10")
async def maximal_u64_values_are_taken_whole(ctx: ServerContext) -> None:
    """The maximal vectors' u64s (2^64-1) are read whole: echoed, compared and paged exactly."""
    alice = await ctx.client("alice")
    bob = await ctx.client("bob")
    room = ctx.room("max")
    await alice.join(room)
    await bob.join(room)

    said = maximal(SendRoom, room=room, text="the largest client_msg_id")
    assert said.client_msg_id == U64_MAX and said.request_id == 2**32 - 1
    await alice.ok(said, req="CP-MSG-1")
    delivered = await bob.expect_type(RoomMessage, req="CP-MSG-1",
                                      where=lambda m: m.room == room and m.request_id == 0)

    told = maximal(SendPrivate, nick=bob.nick, text="the largest client_msg_id, privately")
    await alice.ok(told, req="CP-MSG-4")
    private = await bob.expect_type(PrivateMessage, req="CP-MSG-4")
    ctx.check(private.client_msg_id == U64_MAX, "CP-MSG-4",
              f"SEND_PRIVATE carried client_msg_id {U64_MAX}; the PRIVATE_MESSAGE carried "
              f"{private.client_msg_id}")

    # before_seq 2^64-1 is past the room's last message: the newest come back.
    paged = await bob.ok(maximal(History, room=room), req="CP-HIST-10")
    replayed = paged.of_type(RoomMessage)
    ctx.check([m.seq for m in replayed] == [delivered.seq], "CP-HIST-10",
              f"HISTORY before_seq {U64_MAX} returned seqs {[m.seq for m in replayed]}, "
              f"not [{delivered.seq}]")
    ctx.check(replayed[-1].client_msg_id == U64_MAX, "CP-HIST-3",
              f"the replayed message carried client_msg_id {replayed[-1].client_msg_id}, "
              f"not {U64_MAX}")

    # last_seen_seq 2^64-1 is past every message: nothing to resume, and no gap.
    carol = await ctx.client("carol")
    resumed = await carol.ok(maximal(Join, room=room), req="CP-HIST-15")
    ctx.check(not resumed.of_type(RoomMessage) and not resumed.of_type(HistoryGap),
              "CP-HIST-15",
              f"JOIN resume 1 last_seen_seq {U64_MAX} was answered with "
              f"{[m.NAME for m in resumed.intermediate]}, where only ROOM_INFO belongs")
