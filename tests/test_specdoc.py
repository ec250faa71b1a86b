"""The generated blocks of the spec pages, and the specgen command.

The blocks are rendered from the declarations: the tests check that they say
what the code says, that a schema change changes them, that broken or unknown
markers raise, and that the checked-in pages are up to date
(``python -m chatproto_spec.specgen --check``, run in-process).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import ClassVar

import pytest
from schema_patch import retyped, with_message

from chatproto import ERROR_REGISTRY, ErrorCode, Limits, _schema
from chatproto._fields import UINT32, FieldType, ShortText
from chatproto._schema import TRANSITIONS
from chatproto._state import State
from chatproto.messages import MESSAGE_TYPES, Message, Sender, SendRoom
from chatproto.names import NICK_MAX_BYTES, ROOM_NAME_MAX_BYTES
from chatproto_spec import _specdoc, _vectors, specgen
from chatproto_spec.requirements import spec_dir

SPEC_DIR = spec_dir()
ALL_BLOCKS = ["states", "state-table", "state-diagram", "message-index", "error-registry",
              "limits-table"]


# ----------------------------------------------------------------- blocks


@pytest.mark.parametrize("name", ALL_BLOCKS)
def test_every_block_renders(name: str) -> None:
    text = _specdoc.render_block(name)
    assert text.strip() and not text.endswith("\n")


@pytest.mark.parametrize("cls", list(MESSAGE_TYPES.values()), ids=lambda c: c.NAME)
def test_every_message_has_a_field_block(cls: type[Message]) -> None:
    text = _specdoc.render_block("fields", cls.NAME)
    assert f"`0x{cls.TYPE:04X}`" in text
    for field in _schema.BODY_FIELDS[cls.TYPE]:
        assert f"| `{field.name}` | `{field.field_type.wire.name}`" in text
    for header in ("length", "type", "request_id"):
        assert f"| `{header}` |" in text
    typical = _vectors.message_case(cls, "typical").frame
    dumped = re.findall(r"^((?:[0-9a-f]{2} ?)+)", text.split("Typical frame")[1], re.M)
    assert bytes.fromhex("".join(dumped).replace(" ", "")) == typical
    assert "```text" in text


def test_field_table_rows_follow_the_declaration() -> None:
    text = _specdoc.render_block("fields", "SEND_ROOM")
    rows = [line.split("|")[1].strip(" `") for line in text.splitlines()
            if line.startswith("| `")]
    assert rows == ["length", "type", "request_id", "room", "client_msg_id", "text"]
    assert "| `client_msg_id` | `u64` | 8 |" in text
    assert "[OK](messages.md#ok-0x0003)" in text
    assert "client in `READY`" in text


def test_state_table_holds_every_transition() -> None:
    text = _specdoc.render_block("state-table")
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip(" `") for cell in line.split("|")[1:-1]]
        if len(cells) == 4 and cells[0] in {s.value for s in State}:
            for key in cells[2].split(", "):
                rows[(State(cells[0]), Sender(cells[1]), key)] = State(cells[3])
    assert rows == TRANSITIONS
    assert "STATE_VIOLATION" in text


def test_state_diagram_is_valid_mermaid() -> None:
    text = _specdoc.render_block("state-diagram")
    body = text.split("```mermaid\n")[1].split("```")[0]
    lines = body.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert f"[*] --> {next(iter(State))}" in body
    edges = set()
    for line in lines[1:]:
        match = re.fullmatch(r"    (\S+) --> (\S+)(?: : (.*))?", line)
        assert match, line
        label = match.group(3) or ""
        # Mermaid ends a transition label at ':' or ';', and '#' starts a comment.
        assert not set(label) & {":", ";", "#"}, label
        edges.add((match.group(1), match.group(2)))
    assert {(s.value, a.value) for (s, _, _), a in TRANSITIONS.items()} <= edges
    assert "C ▸ PONG or any request but HELLO and QUIT" in body


def test_message_index_lists_every_message() -> None:
    text = _specdoc.render_block("message-index")
    for cls in MESSAGE_TYPES.values():
        assert f"| `0x{cls.TYPE:04X}` | {_specdoc.message_link(cls)} | {cls.SENDER.value} |" \
            in text


def test_error_registry_lists_every_code() -> None:
    cited = ERROR_REGISTRY[ErrorCode.FRAME_TOO_LARGE].requirements[0]
    context = _specdoc.SpecContext(requirement_links={cited: "framing.md#x"})
    text = _specdoc.render_block("error-registry", context=context)
    for code, info in ERROR_REGISTRY.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {int(code)} |"))
        assert _specdoc.error_link(code) in row
        assert ("| yes |" if info.fatal else "| no |") in row
    assert "no (local only)" in text
    assert f"[{cited}](framing.md#x)" in text


def test_limits_table_reads_the_caps_from_the_model() -> None:
    text = _specdoc.render_block("limits-table")
    ranges = _specdoc.limit_ranges()
    assert list(ranges) == list(Limits.model_fields)
    assert ranges["max_nick_length"][:2] == (1, NICK_MAX_BYTES)
    assert ranges["max_room_name_length"][1] == ROOM_NAME_MAX_BYTES
    defaults = Limits()
    for name, (low, high, coupled) in ranges.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"| {getattr(defaults, name)} |" in row
        if coupled:
            continue
        # The bounds are exactly where the model starts refusing.
        top = _specdoc._field_type_of(Limits.model_fields[name]).wire.max_prefix_value
        base = defaults.model_dump()
        assert _specdoc._limits_valid({**base, name: low})
        assert _specdoc._limits_valid({**base, name: high})
        assert low == 0 or not _specdoc._limits_valid({**base, name: low - 1})
        assert high == top or not _specdoc._limits_valid({**base, name: high + 1})
    assert ranges["keepalive_interval_s"][2] == ("idle_timeout_s",)
    assert "also bounded by `idle_timeout_s`" in text


def test_slugs_match_python_markdown() -> None:
    assert _specdoc.slugify("HISTORY (0x020A)") == "history-0x020a"
    assert _specdoc.slugify("101 FRAME_TOO_LARGE") == "101-frame_too_large"
    assert _specdoc.slugify("The `max_frame_size` limit") == "the-max_frame_size-limit"


# ----------------------------------------------------- schema changes


def test_changing_a_field_type_changes_the_page() -> None:
    before = _specdoc.render_block("fields", "SEND_ROOM")
    schema = retyped(SendRoom, "client_msg_id", UINT32)
    after = _specdoc.render_block("fields", "SEND_ROOM",
                                  context=_specdoc.SpecContext(schema=schema))
    assert after != before
    assert "| `client_msg_id` | `u32` | 4 |" in after
    assert "| `client_msg_id` | `u64` |" not in after
    assert "00 00 00 2a" in after.split("Typical frame")[1]  # 42 in four octets
    assert "19+A" in before and "15+A" in after  # the text moved up by four octets


def test_a_new_message_type_appears_everywhere() -> None:
    from pydantic import Field

    from chatproto.messages import _ClientRequest

    class Shout(_ClientRequest):
        """Shout at everyone (a test-only message)."""

        TYPE: ClassVar[int] = 0x7F01
        words: ShortText = Field(description="What to shout.")

    schema = with_message(Shout)
    context = _specdoc.SpecContext(schema=schema)
    assert Shout.NAME == "SHOUT"
    fields = _specdoc.render_block("fields", "SHOUT", context=context)
    assert "| `words` | `str8` short-text |" in fields
    # A client request, so the state table lets the client send it once welcomed.
    assert "**Allowed** client in `READY`" in fields
    assert "[SHOUT](messages.md#shout-0x7f01)" in _specdoc.render_block("message-index",
                                                                         context=context)
    assert "SHOUT" in _specdoc.render_block("state-table", context=context)
    cases = _vectors.message_cases(Shout, schema)
    assert [case.kind for case in cases] == ["typical", "minimal", "maximal", "non-ascii"]
    # The default schema, and the pages rendered from it, never heard of it.
    assert "SHOUT" not in _specdoc.render_block("message-index")
    assert Shout.TYPE not in MESSAGE_TYPES


# ---------------------------------------------------------------- markers


PAGE = """# Page

Intro.

<!-- generated:fields PING -->
stale text
<!-- /generated:fields PING -->

Between.

<!-- generated:limits-table -->
<!-- /generated:limits-table -->
"""


def test_fill_markers_replaces_only_between_the_markers() -> None:
    filled = _specdoc.fill_markers(PAGE)
    assert "stale text" not in filled
    assert filled.startswith("# Page\n\nIntro.\n\n<!-- generated:fields PING -->\n\n")
    assert "\n\n<!-- /generated:fields PING -->\n\nBetween." in filled
    assert _specdoc.render_block("fields", "PING") in filled
    assert _specdoc.render_block("limits-table") in filled
    assert filled.endswith("<!-- /generated:limits-table -->\n")
    assert _specdoc.fill_markers(filled) == filled


@pytest.mark.parametrize(("page", "message"), [
    ("<!-- generated:no-such-block -->\n<!-- /generated:no-such-block -->", "unknown generated"),
    ("<!-- generated:fields NO_SUCH -->\n<!-- /generated:fields -->", "unknown message"),
    ("<!-- generated:fields -->\n<!-- /generated:fields -->", "needs an argument"),
    ("<!-- generated:state-table X -->\n<!-- /generated:state-table -->", "takes no argument"),
    ("<!-- generated:state-table -->\ntext", "never closed"),
    ("text\n<!-- /generated:state-table -->", "without an opening"),
    ("<!-- generated:state-table -->\n<!-- /generated:limits-table -->", "inside block"),
    ("<!-- generated:fields PING -->\n<!-- /generated:fields PONG -->", "does not match"),
    ("<!-- generated:state-table -->\n<!-- generated:limits-table -->\n"
     "<!-- /generated:limits-table -->\n<!-- /generated:state-table -->", "opened inside"),
])
def test_broken_markers_raise(page: str, message: str) -> None:
    with pytest.raises(_specdoc.SpecDocError, match=message):
        _specdoc.fill_markers("# Page\n\n" + page + "\n", where="page.md")


def test_errors_name_the_page_and_line() -> None:
    with pytest.raises(_specdoc.SpecDocError, match=r"page\.md:3: .*'NOPE'"):
        _specdoc.fill_markers("# P\n\n<!-- generated:fields NOPE -->\n"
                              "<!-- /generated:fields NOPE -->\n", where="page.md")


def test_broken_links_are_reported() -> None:
    page = "# P\n\n<!-- generated:fields PING -->\n<!-- /generated:fields PING -->\n"
    filled = _specdoc.fill_markers(page)
    context = _specdoc.SpecContext.from_pages({"messages.md": "# Messages\n\n## PING (0x0005)\n",
                                               "p.md": filled})
    problems = _specdoc.broken_links(filled, "p.md", context)
    assert problems and all("messages.md#pong-0x0006" in p for p in problems)


def test_context_finds_requirements_under_their_heading() -> None:
    # Made-up IDs, spelled so that no source file cites an ID the spec lacks.
    first, second, unknown = ("-".join(("CP", "TEST", str(n))) for n in (1, 2, 9))
    context = _specdoc.SpecContext.from_pages({"a.md": (
        f"# A\n\n## Frame size limits\n\n**{first}** A server MUST do it.\n\n"
        f"```text\n## not a heading\n```\n\n## Frame size limits\n\n- **{second}** x MAY y.\n")})
    assert context.requirement_links == {first: "a.md#frame-size-limits",
                                         second: "a.md#frame-size-limits_1"}
    assert context.requirement(first) == f"[{first}](a.md#frame-size-limits)"
    assert context.requirement(unknown) == unknown


# ---------------------------------------------------------------- specgen


def _copy_spec(tmp_path: Path) -> Path:
    target = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, target)
    return target


def test_specgen_writes_then_checks_clean(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    spec = _copy_spec(tmp_path)
    assert specgen.main(["--spec-dir", str(spec)]) == 0
    assert specgen.main(["--check", "--spec-dir", str(spec)]) == 0
    assert specgen.out_of_date(spec) == []
    for page in spec.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        assert _specdoc.fill_markers(text, context=_specdoc.SpecContext.from_dir(spec)) == text
    capsys.readouterr()


def test_specgen_check_lists_every_stale_file(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec = _copy_spec(tmp_path)
    assert specgen.main(["--spec-dir", str(spec)]) == 0
    (spec / "vectors" / "nickfold.json").write_text("{}\n", encoding="utf-8")
    page = spec / "test-page.md"
    page.write_text("# T\n\n<!-- generated:states -->\nold\n<!-- /generated:states -->\n",
                    encoding="utf-8")
    capsys.readouterr()
    assert specgen.main(["--check", "--spec-dir", str(spec)]) == 1
    out = capsys.readouterr().out
    assert str(spec / "vectors" / "nickfold.json") in out and str(page) in out
    assert page.read_text(encoding="utf-8").count("old") == 1  # --check wrote nothing


def test_specgen_fails_on_a_dangling_reference(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    spec = _copy_spec(tmp_path)
    (spec / "bad.md").write_text("<!-- generated:fields GONE -->\n<!-- /generated:fields -->\n",
                                 encoding="utf-8")
    assert specgen.main(["--check", "--spec-dir", str(spec)]) == 2
    assert "GONE" in capsys.readouterr().err


def test_repository_spec_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m chatproto_spec.specgen --check`` over the repository's spec."""
    status = specgen.main(["--check"])
    assert status == 0, capsys.readouterr().out


def test_field_type_lookup_is_strict() -> None:
    class Info:
        metadata: ClassVar[list[object]] = []

    with pytest.raises(_specdoc.SpecDocError):
        _specdoc._field_type_of(Info())
    assert isinstance(_specdoc._field_type_of(Message.model_fields["request_id"]), FieldType)
