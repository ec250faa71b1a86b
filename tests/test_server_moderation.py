"""reference_server.moderation: which connections a ban or mute applies to (no network).

Spec page: users (Bans and mutes across nick changes, CP-OPER-10, CP-OPER-11).
Connections are plain ids here; the server passes its session ids.
"""

from __future__ import annotations

from reference_server.moderation import Mark, Moderation

ROOM, OTHER_ROOM = "#room", "#other"
MALLORY, BOB = 1, 2


def test_a_mark_applies_to_its_nick_and_to_its_holder_after_a_nick_change() -> None:
    moderation = Moderation()
    moderation.took_nick(MALLORY, "mallory")
    moderation.set(Mark("ban", ROOM, "mallory"), holder=MALLORY)
    assert moderation.applies("ban", ROOM, MALLORY, "mallory")
    assert moderation.applies("ban", ROOM, MALLORY, "innocent")  # after NICK
    assert moderation.applies("ban", ROOM, BOB, "mallory")  # whoever holds the nick
    assert not moderation.applies("ban", ROOM, BOB, "bob")
    assert not moderation.applies("mute", ROOM, MALLORY, "innocent")  # kinds are apart
    assert not moderation.applies("ban", OTHER_ROOM, MALLORY, "innocent")  # rooms too


def test_taking_a_marked_nick_brings_its_marks_and_a_former_holder_keeps_none() -> None:
    """Marks loaded from the store (no holder) reach a connection that takes the nick."""
    moderation = Moderation([Mark("mute", ROOM, "troll"), Mark("ban", OTHER_ROOM, "troll")])
    moderation.took_nick(BOB, "troll")
    assert moderation.applies("mute", ROOM, BOB, "bob")
    assert moderation.applies("ban", OTHER_ROOM, BOB, "bob")
    # MALLORY held "innocent" before it was muted, then moved on: nothing sticks.
    moderation.took_nick(MALLORY, "innocent")
    moderation.took_nick(MALLORY, "mallory")
    moderation.set(Mark("mute", ROOM, "innocent"), holder=None)
    assert not moderation.applies("mute", ROOM, MALLORY, "mallory")


def test_lifting_frees_every_carrier_and_the_holder_of_the_nick_named() -> None:
    moderation = Moderation()
    moderation.set(Mark("ban", ROOM, "mallory"), holder=MALLORY)
    moderation.lift(Mark("ban", ROOM, "innocent"), holder=MALLORY)  # by her new nick
    assert not moderation.applies("ban", ROOM, MALLORY, "innocent")
    assert moderation.applies("ban", ROOM, BOB, "mallory")  # the nick stays banned

    moderation.took_nick(BOB, "mallory")  # BOB takes the banned nick, then is muted
    moderation.set(Mark("mute", ROOM, "mallory"), holder=BOB)
    moderation.took_nick(BOB, "bob")
    assert moderation.applies("mute", ROOM, BOB, "bob")
    assert moderation.applies("ban", ROOM, BOB, "bob")
    moderation.lift(Mark("mute", ROOM, "mallory"), holder=None)  # by the nick muted
    assert not moderation.applies("mute", ROOM, BOB, "bob")
    assert moderation.applies("ban", ROOM, BOB, "bob")  # the other kind stays
    # A new mute of the nick does not reach connections freed from the old one.
    moderation.set(Mark("mute", ROOM, "mallory"), holder=None)
    assert not moderation.applies("mute", ROOM, BOB, "bob")


def test_a_connection_that_ends_carries_nothing() -> None:
    moderation = Moderation()
    moderation.set(Mark("ban", ROOM, "mallory"), holder=MALLORY)
    moderation.forget(MALLORY)
    assert not moderation.applies("ban", ROOM, MALLORY, "innocent")  # the id is reused
    assert moderation.applies("ban", ROOM, MALLORY, "mallory")
