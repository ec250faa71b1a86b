"""The test vectors in spec/vectors/: fresh, complete, and true of the reference code.

The checked-in files must equal a fresh ``build_vectors()`` byte for byte; every
valid frame must decode (fast codec and construct) to its fields and encode back
to its octets; every invalid input must produce its error through
``chatproto.Connection``; the nick vectors must agree with ``chatproto.names``.
Changing the schema must change the vectors, or fail the generator loudly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pairs import feed
from schema_patch import retyped

from chatproto import (
    ERROR_REGISTRY,
    Connection,
    ErrorCode,
    FrameRejected,
    Limits,
    RemoteProtocolError,
    Sender,
    State,
    _fastcodec,
    _schema,
    error_message,
    names,
)
from chatproto._fields import NICK, OPTIONAL_NICK, ROOM, UINT32, FieldError
from chatproto.messages import MESSAGE_TYPES, Hello, Message, SendRoom, Welcome, message_class
from chatproto_spec import _vectors
from chatproto_spec.requirements import spec_dir

SPEC_DIR = spec_dir()
VECTORS_DIR = SPEC_DIR / "vectors"


def _load(name: str) -> dict[str, Any]:
    content: dict[str, Any] = json.loads((VECTORS_DIR / name).read_text(encoding="utf-8"))
    return content


MESSAGES = _load("messages.json")
INVALID = _load("invalid.json")
NICKFOLD = _load("nickfold.json")


# ----------------------------------------------------------------- freshness


@pytest.fixture(scope="module")
def fresh() -> dict[str, str]:
    return _vectors.render_vectors(SPEC_DIR)


@pytest.mark.parametrize("name", _vectors.VECTOR_FILES)
def test_checked_in_file_equals_a_fresh_build(name: str, fresh: dict[str, str]) -> None:
    on_disk = (VECTORS_DIR / name).read_bytes()
    assert on_disk == fresh[name].encode("utf-8"), (
        f"spec/vectors/{name} is out of date: run python -m chatproto_spec.specgen"
    )


def test_build_is_deterministic(fresh: dict[str, str]) -> None:
    assert _vectors.render_vectors(SPEC_DIR) == fresh


@pytest.mark.parametrize("name", _vectors.VECTOR_FILES)
def test_file_format(name: str, fresh: dict[str, str]) -> None:
    text = fresh[name]
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text.startswith('{\n  "header": {')
    header = json.loads(text)["header"]
    assert header["spec_version"] == _vectors.SPEC_VERSION == 1
    assert header["generated_by"] == "python -m chatproto_spec.specgen"
    assert header["description"]


# ------------------------------------------------------------ valid frames


def test_every_message_type_has_its_cases() -> None:
    assert [m["type"] for m in MESSAGES["messages"]] == list(MESSAGE_TYPES)
    for entry in MESSAGES["messages"]:
        cls = MESSAGE_TYPES[entry["type"]]
        assert entry["name"] == cls.NAME
        assert entry["type_hex"] == f"0x{cls.TYPE:04X}"
        assert [f["name"] for f in entry["fields"]] == [
            f.name for f in _schema.BODY_FIELDS[cls.TYPE]]
        kinds = [case["case"] for case in entry["cases"]]
        assert kinds[:3] == ["typical", "minimal", "maximal"]
        unicode_fields = [f for f in _schema.BODY_FIELDS[cls.TYPE]
                          if _vectors.accepts_unicode(f.field_type)]
        assert ("non-ascii" in kinds) == bool(unicode_fields), cls.NAME


def test_the_non_ascii_cases_carry_unicode() -> None:
    seen = 0
    for entry in MESSAGES["messages"]:
        for case in entry["cases"]:
            if case["case"] == "non-ascii":
                texts = [v for v in case["fields"].values() if isinstance(v, str)]
                assert any(not text.isascii() for text in texts), entry["name"]
                seen += 1
    assert seen > 10


def test_every_u64_value_is_a_decimal_string() -> None:
    """JSON.parse rounds numbers above 2^53 (RFC 8259 section 6): u64s are strings."""
    u64_fields = 0
    for entry in MESSAGES["messages"]:
        wires = {f["name"]: f["wire"] for f in entry["fields"]}
        for case in entry["cases"]:
            for name, value in case["fields"].items():
                if wires[name] == "u64":
                    u64_fields += 1
                    assert isinstance(value, str) and value.isdecimal(), (entry["name"], name)
                    if case["case"] == "maximal":
                        assert value == str(2**64 - 1)
                else:
                    assert not (isinstance(value, int) and value > 2**53 - 1), (entry["name"], name)
    assert u64_fields > 20
    assert '"18446744073709551615"' in MESSAGES["header"]["description"]
    assert "RFC 8259" in MESSAGES["header"]["description"]


def test_a_u64_value_must_be_a_string() -> None:
    from chatproto._fields import UINT64

    assert _vectors.from_json_value(UINT64, "18446744073709551615") == 2**64 - 1
    for not_a_string in (42, "4.2", "-1", "", "\u0661"):
        with pytest.raises(ValueError):
            _vectors.from_json_value(UINT64, not_a_string)


def test_typical_timestamps_look_like_milliseconds_and_ids_are_small() -> None:
    for entry in MESSAGES["messages"]:
        typical = entry["cases"][0]["fields"]
        if "timestamp_ms" in typical:  # 2020 .. 2100 in ms since the epoch
            assert 1_577_836_800_000 <= int(typical["timestamp_ms"]) < 4_102_444_800_000
        if "client_msg_id" in typical:
            assert 0 < int(typical["client_msg_id"]) < 1000, entry["name"]


def _cases() -> list[tuple[str, str, dict[str, Any]]]:
    return [(entry["name"], case["case"], case) for entry in MESSAGES["messages"]
            for case in entry["cases"]]


def _expected_message(cls: type[Message], case: dict[str, Any]) -> Message:
    values: dict[str, Any] = {"request_id": case["request_id"]}
    for field in _schema.BODY_FIELDS[cls.TYPE]:
        values[field.name] = _vectors.from_json_value(field.field_type, case["fields"][field.name])
    return cls.model_validate(values)


@pytest.mark.parametrize(("name", "kind", "case"), _cases(),
                         ids=[f"{name}-{kind}" for name, kind, _ in _cases()])
def test_valid_frame_decodes_to_its_fields_and_back(name: str, kind: str,
                                                     case: dict[str, Any]) -> None:
    cls = message_class(name)
    frame = bytes.fromhex(case["hex"])
    assert case["length"] == len(frame) - 4
    expected = _expected_message(cls, case)
    for decode in (_fastcodec.decode_frame, _schema.construct_decode):
        decoded = decode(frame)
        assert type(decoded) is cls
        assert decoded == expected, decode.__name__
        assert decoded.request_id == case["request_id"]
    assert _fastcodec.encode(expected) == frame
    assert _schema.construct_encode(expected) == frame


def test_minimal_and_maximal_are_the_extremes() -> None:
    """The probed extremes are exactly where the field types' checks draw the line."""
    for field_type in _vectors.SAMPLES:
        extent = _vectors.field_extent(field_type)
        shape = field_type.wire.shape
        if shape == "uint":
            for inside in (extent.minimum, extent.maximum):
                field_type.validate(inside)
            for outside in (extent.minimum - 1, extent.maximum + 1):
                if 0 <= outside <= field_type.wire.max_prefix_value:
                    with pytest.raises(FieldError):
                        field_type.validate(outside)
        elif shape == "str":
            longest = _vectors.field_value(field_type, "maximal")
            assert len(longest.encode("utf-8")) == extent.maximum
            field_type.validate(longest)
            if extent.maximum < field_type.wire.max_prefix_value:
                with pytest.raises(FieldError):
                    field_type.validate(longest + longest[-1])


# ---------------------------------------------------------- invalid inputs


def _ready_pair_messages() -> tuple[Hello, Welcome]:
    """invalid.json's 'ready_after': the HELLO and the WELCOME, each its fields and its bytes."""
    hello_entry, welcome_entry = INVALID["ready_after"]
    hello = _fastcodec.decode_frame(bytes.fromhex(hello_entry["hex"]))
    welcome = _fastcodec.decode_frame(bytes.fromhex(welcome_entry["hex"]))
    assert isinstance(hello, Hello) and isinstance(welcome, Welcome)
    for entry, message in ((hello_entry, hello), (welcome_entry, welcome)):
        assert (entry["name"], entry["request_id"]) == (message.NAME, message.request_id)
        assert _expected_message(type(message), entry) == message
    return hello, welcome


def test_ready_is_reached_by_a_guest_handshake() -> None:
    """A real server accepts the HELLO: a guest's, with no password (CP-ACCT-5)."""
    hello, welcome = _ready_pair_messages()
    assert hello.password == "" and welcome.logged_in is False
    assert hello.nick == welcome.nick and hello.request_id == welcome.request_id != 0
    assert "'ready_after'" in INVALID["header"]["description"]


def _connection(receiver: str, state: str) -> Connection:
    """Set up as invalid.json's header says: READY = after the HELLO and WELCOME of
    'ready_after'."""
    hello, welcome = _ready_pair_messages()
    role = Sender(receiver)
    conn = Connection(role, welcome.limits if role is Sender.SERVER else None)
    if state == State.READY:
        if role is Sender.SERVER:
            assert feed(conn, _fastcodec.encode(hello)) == [hello]
            conn.send(welcome)
        else:
            conn.send(hello)
            assert feed(conn, _fastcodec.encode(welcome)) == [welcome]
    assert conn.state == state
    return conn


@pytest.mark.parametrize("entry", INVALID["invalid"], ids=[e["id"] for e in INVALID["invalid"]])
def test_invalid_input_produces_its_error(entry: dict[str, Any]) -> None:
    data = bytes.fromhex(entry["hex"])
    expected = entry["expected"]
    conn = _connection(entry["receiver"], entry["state"])
    if expected is None:
        assert feed(conn, data) == []
        return
    code = ErrorCode[expected["error"]]
    assert int(code) == expected["code"]
    assert expected["fatal"] is ERROR_REGISTRY[code].fatal
    assert expected["sent_on_wire"] is ERROR_REGISTRY[code].on_wire
    detected_after = expected["detected_after"]
    if detected_after == "eof":
        assert entry["then_eof"]
        assert feed(conn, data) == []
        with pytest.raises(RemoteProtocolError) as caught:
            feed(conn, b"")
        assert caught.value.code is code
        return
    # Nothing happens before the octet that reveals the fault...
    assert feed(conn, data[: detected_after - 1]) == []
    rest = data[detected_after - 1:]
    # The ERROR a server sends carries what the core reports; a client's carries 0.
    from_client = conn.role is Sender.CLIENT
    if expected["fatal"]:
        # ...and it is refused as soon as that octet arrives.
        with pytest.raises(RemoteProtocolError) as caught:
            feed(conn, rest[:1])
        assert caught.value.code is code
        sent = error_message(caught.value)
    else:
        events = feed(conn, rest[:1])
        assert len(events) == 1 and isinstance(events[0], FrameRejected), events
        assert events[0].code is code
        sent = events[0].error_reply()
        assert sent.code == int(code)
    assert (0 if from_client else sent.request_id) == expected["error_request_id"]


def test_an_error_a_client_sends_carries_request_id_0() -> None:
    """CP-ERR-9: whatever the offending frame carried (welcome-twice's WELCOME has 7)."""
    from_client = [e for e in INVALID["invalid"] if e["receiver"] == "client" and e["expected"]]
    assert {e["expected"]["error_request_id"] for e in from_client} == {0}
    welcome_twice = next(e for e in from_client if e["id"] == "welcome-twice")
    assert _fastcodec.decode_frame(bytes.fromhex(welcome_twice["hex"])).request_id == 7


def test_sent_on_wire_is_defined_in_the_header() -> None:
    description = INVALID["header"]["description"]
    assert "'sent_on_wire', whether an ERROR frame with this code is sent" in description
    assert "CP-ERR-9" in description


def _codec_entries() -> list[dict[str, Any]]:
    return [e for e in INVALID["invalid"] if e["expected"] and e["expected"]["layer"] == "codec"]


@pytest.mark.parametrize("entry", _codec_entries(), ids=[e["id"] for e in _codec_entries()])
def test_codec_level_faults_are_found_by_the_fast_decoder(entry: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        _fastcodec.decode_frame(bytes.fromhex(entry["hex"]))
    assert caught.value.code.name == entry["expected"]["error"]
    assert caught.value.request_id == entry["expected"]["error_request_id"]


@pytest.mark.parametrize("entry", [pytest.param(e, id=e["id"]) for e in _codec_entries()])
def test_codec_level_faults_are_found_by_the_construct_decoder(entry: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        _schema.construct_decode(bytes.fromhex(entry["hex"]))
    assert caught.value.code.name == entry["expected"]["error"]


def test_invalid_vectors_cover_the_required_faults() -> None:
    by_id = {entry["id"]: entry for entry in INVALID["invalid"]}
    wanted = {
        "length-ffffffff": "FRAME_TOO_LARGE", "length-above-limit-client": "FRAME_TOO_LARGE",
        "length-5": "MALFORMED_FRAME", "eof-mid-frame": "TRUNCATED_FRAME",
        "body-too-short": "MALFORMED_MESSAGE", "trailing-octet": "MALFORMED_MESSAGE",
        "bool-2": "MALFORMED_MESSAGE", "utf8-overlong": "INVALID_UTF8",
        "utf8-lone-continuation": "INVALID_UTF8", "utf8-surrogate": "INVALID_UTF8",
        "nick-cyrillic": "INVALID_NICK", "room-without-hash": "INVALID_ROOM_NAME",
        "text-esc": "INVALID_FIELD", "unknown-type": "UNKNOWN_TYPE",
    }
    for case_id, error in wanted.items():
        assert by_id[case_id]["expected"]["error"] == error, case_id
    for case_id in ("length-ffffffff", "length-above-limit-client"):
        assert by_id[case_id]["expected"]["detected_after"] == 4
    assert by_id["unknown-type"]["receiver"] == "server"


def test_requirement_ids_exist_in_the_spec() -> None:
    defined = _vectors.spec_requirements(SPEC_DIR)
    for entry in INVALID["invalid"]:
        for rid in entry["requirements"]:
            assert rid in defined, (entry["id"], rid)
            assert entry["expected"]["error"] in defined[rid]


def test_a_case_whose_behaviour_changes_fails_the_generator() -> None:
    """If NICK's nick field accepted the empty string, "nick-empty" would be accepted."""
    schema = retyped(message_class("NICK"), "nick", OPTIONAL_NICK)
    with pytest.raises(_vectors.VectorError, match="nick-empty"):
        _vectors.invalid_vectors(SPEC_DIR, schema)
    with pytest.raises(_vectors.VectorError):  # its minimal case no longer fits the model
        _vectors.build_vectors(SPEC_DIR, schema)
    _vectors.invalid_vectors(SPEC_DIR)  # spec v1's schema is untouched


def test_a_schema_change_changes_the_vectors() -> None:
    before = _vectors.message_case(SendRoom, "typical")
    schema = retyped(SendRoom, "client_msg_id", UINT32)
    after = _vectors.message_case(SendRoom, "typical", schema)
    assert len(after.frame) == len(before.frame) - 4
    content = _vectors.build_vectors(SPEC_DIR, schema)["messages.json"]
    assert isinstance(content, dict)
    (entry,) = [m for m in content["messages"] if m["name"] == "SEND_ROOM"]
    field = next(f for f in entry["fields"] if f["name"] == "client_msg_id")
    assert field["wire"] == "u32"
    assert entry["cases"][0]["hex"] == after.frame.hex() != before.frame.hex()


# ------------------------------------------------------------------- nicks


def test_fold_vectors_agree_with_names() -> None:
    assert NICKFOLD["casemapping"] == names.CASEMAPPING
    for entry in NICKFOLD["fold"]:
        assert names.fold(entry["input"]) == entry["folded"]
        assert entry["input"].encode("utf-8").hex() == entry["input_utf8_hex"]
        assert entry["folded"].encode("utf-8").hex() == entry["folded_utf8_hex"]
        # The fold changes exactly the octets 0x41..0x5A.
        folded = bytes(b + 0x20 if 0x41 <= b <= 0x5A else b
                       for b in bytes.fromhex(entry["input_utf8_hex"]))
        assert folded.hex() == entry["folded_utf8_hex"]


def test_nick_pairs_agree_with_names() -> None:
    pairs = {(p["a"], p["b"]): p for p in NICKFOLD["nick_pairs"]}
    for (a, b), pair in pairs.items():
        assert pair["a_valid"] is names.is_valid_nick(a)
        assert pair["b_valid"] is names.is_valid_nick(b)
        same = names.is_valid_nick(a) and names.is_valid_nick(b) and names.fold(a) == names.fold(b)
        assert pair["same_nick"] is same
    assert pairs[("Alice", "ALICE")]["same_nick"] is True
    cyrillic = pairs[("alice", "\u0430lice")]
    assert cyrillic["same_nick"] is False and cyrillic["b_valid"] is False


@pytest.mark.parametrize(("key", "field_type", "is_valid"),
                         [("nicks", NICK, names.is_valid_nick),
                          ("rooms", ROOM, names.is_valid_room_name)])
def test_name_validity_agrees_with_names(key: str, field_type: Any, is_valid: Any) -> None:
    for entry in NICKFOLD[key]:
        name = entry["name"]
        assert entry["valid"] is is_valid(name), name
        if entry["valid"]:
            assert entry["fold"] == names.fold(name)
        else:
            with pytest.raises(FieldError) as caught:
                field_type.validate(name)
            assert caught.value.code.name == entry["error"]
            assert int(caught.value.code) == entry["code"]


def test_limits_used_by_the_invalid_vectors_are_the_reference_ones() -> None:
    entry = next(e for e in INVALID["invalid"] if e["id"] == "text-above-limit")
    frame = bytes.fromhex(entry["hex"])
    text_length = int.from_bytes(frame[-(Limits().max_message_length + 1) - 2:][:2], "big")
    assert text_length == Limits().max_message_length + 1


def test_default_spec_dir_is_the_one_holding_the_package() -> None:
    assert SPEC_DIR == Path(_vectors.__file__).resolve().parent.parent
