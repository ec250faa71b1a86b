"""Names: the ``ascii`` fold (only A-Z change) and the nickname and room-name rules."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatproto import names
from chatproto.names import fold, is_valid_nick, is_valid_room_name


def same_name(a: str, b: str) -> bool:
    """The spec's sameness: two names are the same iff their folds are equal."""
    return fold(a) == fold(b)


def spec_fold_bytes(name: str) -> bytes:
    """The spec's pseudocode, byte by byte over the UTF-8 form."""
    return bytes(b + 0x20 if 0x41 <= b <= 0x5A else b for b in name.encode("utf-8"))


def test_casemapping_is_ascii() -> None:
    assert names.CASEMAPPING == "ascii"


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("alice", "alice"),
        ("Alice", "alice"),
        ("ALICE", "alice"),
        ("Alice_Bob-2", "alice_bob-2"),
        ("#General", "#general"),
        ("#Room_1-X", "#room_1-x"),
        ("", ""),
        ("@[`{", "@[`{"),  # the neighbours of A-Z and a-z stay put
    ],
)
def test_fold_examples(name: str, folded: str) -> None:
    assert fold(name) == folded


def test_fold_maps_each_capital_to_its_small_letter() -> None:
    for capital, small in zip(string.ascii_uppercase, string.ascii_lowercase, strict=True):
        assert fold(capital) == small


def test_fold_leaves_every_other_code_point_unchanged() -> None:
    capitals = {ord(c) for c in string.ascii_uppercase}
    everything_else = "".join(chr(cp) for cp in range(0x110000) if cp not in capitals)
    assert fold(everything_else) == everything_else


@pytest.mark.parametrize(
    "char",
    [
        "\u00c9",  # É: Unicode lower-cases it to é; the ascii fold does not
        "\u017f",  # LATIN SMALL LETTER LONG S: casefold() gives "s"
        "\u212a",  # KELVIN SIGN: lower() gives "k"
        "\u0130",  # İ: lower() gives "i̇"
        "\u00df",  # ß: casefold() gives "ss"
        "\u03a3",  # Σ
        "\u0410",  # CYRILLIC CAPITAL LETTER A
        "\uff21",  # FULLWIDTH LATIN CAPITAL LETTER A
    ],
)
def test_fold_does_not_apply_unicode_case_mapping(char: str) -> None:
    assert char.lower() != char or char.casefold() != char  # Unicode would change it
    assert fold(char) == char


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("alice", "ALICE"),
        ("Alice", "aLiCe"),
        ("bob-2_X", "BOB-2_x"),
        ("#General", "#GENERAL"),
        ("#room", "#room"),
    ],
)
def test_names_with_equal_folds_are_the_same(a: str, b: str) -> None:
    assert same_name(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("alice", "\u0430lice"),  # CYRILLIC SMALL LETTER A
        ("sam", "\u017fam"),  # long s
        ("kate", "\u212aate"),  # Kelvin sign
        ("emile", "\u00e9mile"),
        ("Il", "lI"),  # visually close in some fonts, still different names
        ("alice", "alice_"),
        ("#room", "room"),
    ],
)
def test_names_with_different_folds_are_different(a: str, b: str) -> None:
    assert not same_name(a, b)


@given(st.text())  # no surrogates: every drawn string has a UTF-8 form
def test_fold_matches_the_spec_byte_pseudocode(name: str) -> None:
    assert fold(name).encode("utf-8") == spec_fold_bytes(name)


@given(st.text())
def test_fold_is_idempotent_and_keeps_the_length(name: str) -> None:
    assert fold(fold(name)) == fold(name)
    assert len(fold(name)) == len(name)


@given(st.text())
def test_sameness_is_case_blind_for_ascii_letters(name: str) -> None:
    ascii_upper = name.translate({ord(c): c.upper() for c in string.ascii_lowercase})
    assert same_name(name, ascii_upper)
    assert same_name(name, fold(name))


# ----------------------------------------------------------------- validity


@pytest.mark.parametrize(
    ("nick", "valid"),
    [
        ("a", True),
        ("Z", True),
        ("alice", True),
        ("Alice_Bob-2", True),
        ("a-", True),
        ("a" * 32, True),
        ("a" * 33, False),
        ("", False),
        ("1alice", False),
        ("_alice", False),
        ("-alice", False),
        ("al ice", False),
        ("alice\n", False),
        ("alice!", False),
        ("\u0430lice", False),  # CYRILLIC SMALL LETTER A
        ("\u00e9mile", False),
        ("#alice", False),
    ],
)
def test_is_valid_nick(nick: str, valid: bool) -> None:
    assert is_valid_nick(nick) is valid


@pytest.mark.parametrize(
    ("room", "valid"),
    [
        ("#a", True),
        ("#General", True),
        ("#1", True),
        ("#_", True),
        ("#-", True),
        ("#room_1-x", True),
        ("#" + "a" * 63, True),
        ("#" + "a" * 64, False),
        ("#", False),
        ("", False),
        ("room", False),
        ("##room", False),
        ("#ro om", False),
        ("#room\n", False),
        ("#caf\u00e9", False),
        ("#\u0430", False),
    ],
)
def test_is_valid_room_name(room: str, valid: bool) -> None:
    assert is_valid_room_name(room) is valid


def test_protocol_caps() -> None:
    assert names.NICK_MAX_BYTES == 32
    assert names.ROOM_NAME_MAX_BYTES == 64


_NICKS = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters),
    st.text(string.ascii_letters + string.digits + "_-", max_size=31),
)


@given(_NICKS)
def test_valid_nicks_fold_to_valid_nicks(nick: str) -> None:
    assert is_valid_nick(nick)
    assert is_valid_nick(fold(nick))
    assert is_valid_room_name("#" + fold(nick))


@given(st.text(max_size=40))
def test_validity_does_not_depend_on_ascii_case(name: str) -> None:
    assert is_valid_nick(name) == is_valid_nick(fold(name))
    assert is_valid_room_name(name) == is_valid_room_name(fold(name))
