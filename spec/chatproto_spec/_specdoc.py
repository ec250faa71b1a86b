"""Markdown blocks of the spec pages, generated from the code's declarations.

A spec page holds marker pairs::

    <!-- generated:fields SEND_ROOM -->
    ...generated text, replaced on every run...
    <!-- /generated:fields -->

``fill_markers`` replaces what lies between each pair with ``render_block(name,
arg)``. The blocks are the state table and diagram (the schema's
``transitions``), the message index and each message's field table (its
``messages`` and ``body_fields``), the error registry (``ERROR_REGISTRY``) and the
limits table (the ``Limits`` model, whose ranges are found by probing its own
validation). An unknown block or message name raises ``SpecDocError``, so a
dangling reference breaks the build instead of leaving a stale page.

Links follow the pages' heading conventions: a message's section is headed
``NAME (0xCODE)`` in messages.md, an error's ``CODE NAME`` in errors.md, and
anchors are Python-Markdown's default slugs of those headings.
"""

from __future__ import annotations

import json
import re
import struct
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chatproto import _schema
from chatproto._errors import ERROR_REGISTRY, ErrorCode
from chatproto._fields import FieldError, FieldType
from chatproto._schema import SCHEMA, Schema
from chatproto._state import STATE_DESCRIPTIONS, State
from chatproto.messages import Limits, Message, Sender
from chatproto_spec import _vectors
from chatproto_spec.requirements import REQUIREMENT_ID, parse_requirements

MESSAGES_PAGE = "messages.md"
ERRORS_PAGE = "errors.md"
MESSAGE_HEADING = "{name} (0x{code:04X})"
ERROR_HEADING = "{code} {name}"
VECTORS_LINK = "vectors/messages.json"

SENDER_MARK = {Sender.CLIENT: "C", Sender.SERVER: "S"}
EDGE_SEPARATOR = " ▸ "
"""Between sender and message in diagram labels (Mermaid forbids ':' and ';' there)."""

COLLAPSE_OVER = 3
"""A diagram label lists at most this many messages; longer sets are described."""

BYTES_PER_LINE = 16


class SpecDocError(ValueError):
    """A spec page refers to something the code does not declare, or its markers are broken."""


# ---------------------------------------------------------------- helpers


def slugify(heading: str) -> str:
    """Python-Markdown's default heading anchor (``toc`` extension)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def message_anchor(cls: type[Message]) -> str:
    return slugify(MESSAGE_HEADING.format(name=cls.NAME, code=cls.TYPE))


def message_link(cls: type[Message]) -> str:
    return f"[{cls.NAME}]({MESSAGES_PAGE}#{message_anchor(cls)})"


def error_anchor(code: ErrorCode) -> str:
    return slugify(ERROR_HEADING.format(name=code.name, code=int(code)))


def error_link(code: ErrorCode) -> str:
    return f"[{code.name}]({ERRORS_PAGE}#{error_anchor(code)})"


def lookup_message(name: str, schema: Schema = SCHEMA) -> type[Message]:
    if name in schema.by_name:
        return schema.by_name[name]
    known = ", ".join(cls.NAME for cls in schema.messages.values())
    raise SpecDocError(f"unknown message {name!r}; the messages are: {known}")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def escape(text: str) -> str:
    """Text for a Markdown table cell, shown literally."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""


def _field_type_of(info: Any) -> FieldType:
    found = [meta for meta in info.metadata if isinstance(meta, FieldType)]
    if len(found) != 1:
        raise SpecDocError("a field needs exactly one chatproto field type")
    return found[0]


# ----------------------------------------------------------- page context


@dataclass(frozen=True)
class SpecContext:
    """What the blocks are rendered from: the schema, and what the pages define
    (requirement locations and heading anchors, for links)."""

    requirement_links: Mapping[str, str] = field(default_factory=dict)
    """Requirement ID -> ``page.md#anchor`` of the section that states it."""
    anchors: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Page file name -> the anchors of its headings."""
    schema: Schema = SCHEMA
    """The schema the blocks describe."""

    @classmethod
    def from_pages(cls, pages: Mapping[str, str], schema: Schema = SCHEMA) -> SpecContext:
        """Read page file name -> text (the texts may still have stale blocks)."""
        requirement_links: dict[str, str] = {}
        anchors: dict[str, frozenset[str]] = {}
        for page, text in sorted(pages.items()):
            seen: dict[str, int] = {}
            current = ""
            in_fence = False
            for line in text.splitlines():
                stripped = line.strip()
                if stripped.startswith(("```", "~~~")):
                    in_fence = not in_fence
                    continue
                if in_fence:
                    continue
                heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
                if heading:
                    slug = slugify(heading.group(1))
                    count = seen.get(slug, 0)
                    seen[slug] = count + 1
                    current = slug if count == 0 else f"{slug}_{count}"
                    continue
                start = re.match(rf"^\s*(?:[-*]\s+)?\*\*({REQUIREMENT_ID.pattern})\*\*", line)
                if start:
                    requirement_links[start.group(1)] = f"{page}#{current}" if current else page
            anchors[page] = frozenset(
                slug if n == 0 else f"{slug}_{n}"
                for slug, count in seen.items() for n in range(count)
            )
        return cls(requirement_links, anchors, schema)

    @classmethod
    def from_dir(cls, spec_dir: Path, schema: Schema = SCHEMA) -> SpecContext:
        return cls.from_pages({path.name: path.read_text(encoding="utf-8")
                               for path in spec_dir.glob("*.md")}, schema)

    def requirement(self, rid: str) -> str:
        target = self.requirement_links.get(rid)
        return f"[{rid}]({target})" if target else rid


# ------------------------------------------------------------- the blocks


def _message_keys(cls: type[Message], schema: Schema) -> list[str]:
    """The state-table keys of a message type (ERROR has one per fatality)."""
    keys = {key for (_, _, key) in schema.transitions}
    return sorted(key for key in keys if key == cls.NAME or key.startswith(cls.NAME + " ("))


def _ordered_keys(schema: Schema) -> list[str]:
    return [key for cls in schema.messages.values() for key in _message_keys(cls, schema)]


def _senders() -> tuple[Sender, ...]:
    return tuple(sender for sender in Sender if sender is not Sender.BOTH)


Transitions = Mapping[tuple[State, Sender, str], State]


def _grouped_transitions(transitions: Transitions, schema: Schema,
                         ) -> dict[tuple[State, Sender, State], list[str]]:
    order = {key: index for index, key in enumerate(_ordered_keys(schema))}
    groups: dict[tuple[State, Sender, State], list[str]] = {}
    for state in State:
        for sender in _senders():
            for key in sorted((k for (s, who, k) in transitions if s is state and who is sender),
                              key=lambda k: order.get(k, len(order))):
                after = transitions[(state, sender, key)]
                groups.setdefault((state, sender, after), []).append(key)
    return dict(sorted(groups.items(), key=lambda item: (
        list(State).index(item[0][0]), _senders().index(item[0][1]),
        list(State).index(item[0][2]))))


def render_state_table(schema: Schema = SCHEMA) -> str:
    rows = [
        [f"`{state}`", sender.value, ", ".join(keys), f"`{after}`"]
        for (state, sender, after), keys in _grouped_transitions(schema.transitions,
                                                                  schema).items()
    ]
    return "\n".join([
        _table(["State", "Sender", "Message", "Next state"], rows),
        "",
        "Any other combination of state, sender and message is not allowed: it is a "
        f"protocol violation, answered with ERROR {error_link(ErrorCode.STATE_VIOLATION)}.",
    ])


def render_states() -> str:
    described = [[f"`{state}`", escape(STATE_DESCRIPTIONS[state])] for state in State]
    return _table(["State", "Meaning"], described)


def _sendable(sender: Sender, schema: Schema) -> list[str]:
    return [key for cls in schema.messages.values() if cls.SENDER in (sender, Sender.BOTH)
            for key in _message_keys(cls, schema)]


def _requests(sender: Sender, schema: Schema) -> list[str]:
    return [cls.NAME for cls in schema.messages.values()
            if cls.SENDER in (sender, Sender.BOTH) and cls.FINAL_RESPONSE is not None]


def _joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe_messages(keys: list[str], sender: Sender, schema: Schema = SCHEMA) -> str:
    """A readable label for a set of messages one sender may send."""
    if len(keys) <= COLLAPSE_OVER:
        return ", ".join(keys)
    chosen = set(keys)
    best: tuple[int, str] | None = None
    for base, universe in (("any request", _requests(sender, schema)),
                           ("any message", _sendable(sender, schema))):
        missing = [key for key in universe if key not in chosen]
        extra = [key for key in keys if key not in universe]
        label = base + (f" but {_joined(missing)}" if missing else "")
        if extra:
            label = f"{', '.join(extra)} or {label}"
        cost = len(missing) + len(extra)
        if best is None or cost < best[0]:
            best = (cost, label)
    assert best is not None
    return best[1]


def state_edges(transitions: Transitions | None = None,
                schema: Schema = SCHEMA) -> dict[tuple[State, State], list[str]]:
    """Each (state, next state) pair of ``transitions`` (the schema's by default)
    with its diagram labels.

    A label is ``C ▸ messages`` or ``S ▸ messages``; one ``C or S ▸ messages``
    when both senders take the pair with the same messages.
    """
    if transitions is None:
        transitions = schema.transitions
    by_pair: dict[tuple[State, State], dict[Sender, list[str]]] = {}
    for (state, sender, after), keys in _grouped_transitions(transitions, schema).items():
        by_pair.setdefault((state, after), {})[sender] = keys
    edges: dict[tuple[State, State], list[str]] = {}
    for pair, by_sender in by_pair.items():
        senders = list(by_sender)
        if len(senders) > 1 and all(by_sender[s] == by_sender[senders[0]] for s in senders):
            marks = " or ".join(SENDER_MARK[s] for s in senders)
            edges[pair] = [marks + EDGE_SEPARATOR
                           + describe_messages(by_sender[senders[0]], senders[0], schema)]
        else:
            edges[pair] = [SENDER_MARK[sender] + EDGE_SEPARATOR
                           + describe_messages(keys, sender, schema)
                           for sender, keys in by_sender.items()]
    return edges


def state_diagram_legend() -> str:
    """What the sender marks of the diagram labels mean (Markdown)."""
    return ", ".join(f"`{mark}{EDGE_SEPARATOR}X`: the {sender.value} sends X"
                     for sender, mark in SENDER_MARK.items())


def render_state_diagram(schema: Schema = SCHEMA) -> str:
    """The state diagram as Mermaid source (GitHub draws it; the site draws its own SVG)."""
    lines = ["```mermaid", "stateDiagram-v2", f"    [*] --> {next(iter(State))}"]
    for (state, after), labels in state_edges(schema=schema).items():
        lines += [f"    {state} --> {after} : {label}" for label in labels]
    for state in State:
        if not any(s is state for (s, _, _) in schema.transitions):
            lines.append(f"    {state} --> [*]")
    lines.append("```")
    return ("\n".join(lines)
            + f"\n\n{state_diagram_legend()}. The state table above is authoritative.")


def render_message_index(schema: Schema = SCHEMA) -> str:
    rows = []
    for code, cls in schema.messages.items():
        final = cls.FINAL_RESPONSE
        rows.append([
            f"`0x{code:04X}`", message_link(cls), cls.SENDER.value,
            message_link(final) if final else "—", escape(_first_line(cls.__doc__)),
        ])
    return _table(["Code", "Message", "Sender", "Final response", "Purpose"], rows)


def _allowed(cls: type[Message], schema: Schema) -> str:
    keys = _message_keys(cls, schema)
    parts = []
    for sender in _senders():
        per_key = {key: [s for s in State if (s, sender, key) in schema.transitions]
                   for key in keys}
        per_key = {key: states for key, states in per_key.items() if states}
        if not per_key:
            continue
        distinct = {tuple(states) for states in per_key.values()}
        if len(per_key) == len(keys) and len(distinct) == 1:
            parts.append(f"{sender.value} in " + ", ".join(f"`{s}`" for s in per_key[keys[0]]))
            continue
        described = []
        for key, states in per_key.items():
            variant = key[len(cls.NAME):].strip(" ()") or key
            described.append(f"{variant} in " + ", ".join(f"`{s}`" for s in states))
        parts.append(f"{sender.value}: " + "; ".join(described))
    return "; ".join(parts) if parts else "never"


def _request_id_type() -> FieldType:
    return _field_type_of(Message.model_fields["request_id"])


@dataclass(frozen=True, slots=True)
class _Row:
    name: str
    wire: str
    size: str
    constraint: str
    meaning: str


def _prefix_size(field_type: FieldType) -> int:
    """Octets of the integer, or of the length/count prefix."""
    return struct.calcsize(field_type.wire.prefix_format)


def _size(field_type: FieldType) -> str:
    wire = field_type.wire
    prefix = _prefix_size(field_type)
    if wire.shape in _vectors.FIXED_SHAPES:
        return str(prefix)
    extent = _vectors.field_extent(field_type)
    if wire.shape == "strlist":
        return (f"{prefix} + sum over the items of ({prefix} + n), "
                f"{extent.minimum}..{extent.maximum} items, "
                f"n = {extent.item_minimum}..{extent.item_maximum}")
    return f"{prefix} + n, n = {extent.minimum}..{extent.maximum}"


def _wire_cell(field_type: FieldType) -> str:
    wire = f"`{field_type.wire.name}`"
    return wire if field_type.name == field_type.wire.name else f"{wire} {field_type.name}"


def _constraint_cell(field_type: FieldType) -> str:
    text = escape(field_type.constraint)
    if field_type.limit:
        text += f"; at most `{field_type.limit}` bytes as advertised"
    return text


def _header_rows(cls: type[Message]) -> list[_Row]:
    sizes = {sub.name: sub.sizeof() for sub in _schema.FRAME_HEADER.subcons}
    wires = {sub.name: {1: "u8", 2: "u16", 4: "u32", 8: "u64"}[sub.sizeof()]
             for sub in _schema.FRAME_HEADER.subcons}
    request_type = _request_id_type()
    client_request = cls.SENDER is not Sender.SERVER and cls.FINAL_RESPONSE is not None
    return [
        _Row("length", f"`{wires['length']}`", str(sizes["length"]),
             f"{_schema.MIN_FRAME_LENGTH} + body size",
             "Header: number of octets after this field."),
        _Row("type", f"`{wires['type']}`", str(sizes["type"]), f"`0x{cls.TYPE:04X}`",
             f"Header: the message type, {cls.NAME}."),
        _Row("request_id", f"`{wires['request_id']}`", str(sizes["request_id"]),
             "nonzero" if client_request else escape(request_type.constraint),
             escape(Message.model_fields["request_id"].description or "")),
    ]


def _layout(cls: type[Message], schema: Schema) -> str:
    """The byte layout: offsets (symbolic after a variable-length field) and sizes."""
    rows: list[tuple[str, str, str, str]] = []
    fixed = 0
    symbols: list[str] = []
    letters = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")

    def add(size: str, name: str, encoding: str) -> None:
        offset = "+".join([str(fixed), *symbols])
        rows.append((offset, size, name, encoding))

    for sub in _schema.FRAME_HEADER.subcons:
        note = {"length": " = octets after this field", "type": f" = 0x{cls.TYPE:04X}"}
        add(str(sub.sizeof()), sub.name, _integer_name(sub.sizeof()) + note.get(sub.name, ""))
        fixed += sub.sizeof()
    for body_field in schema.body_fields[cls.TYPE]:
        wire = body_field.field_type.wire
        prefix = _prefix_size(body_field.field_type)
        if wire.shape in _vectors.FIXED_SHAPES:
            add(str(prefix), body_field.name, wire.name)
            fixed += prefix
            continue
        letter = next(letters)
        if wire.shape == "strlist":
            add(str(prefix), f"{body_field.name} count", f"{_integer_name(prefix)} = N")
            fixed += prefix
            add(letter, body_field.name,
                f"N items, each {_integer_name(prefix)} length + UTF-8 ({letter} octets)")
        else:
            add(str(prefix), f"{body_field.name} length", f"{_integer_name(prefix)} = {letter}")
            fixed += prefix
            add(letter, body_field.name,
                "octets of UTF-8" if wire.shape == "str" else "opaque octets")
        symbols.append(letter)
    add("", "(end)", "")
    titles = ("offset", "size", "field", "encoding")
    width = [max(len(row[i]) for row in [*rows, titles]) for i in range(3)]
    lines = [f"{off:>{width[0]}}  {size:>{width[1]}}  {name:<{width[2]}}  {encoding}".rstrip()
             for off, size, name, encoding in [titles, *rows]]
    return "```text\n" + "\n".join(lines) + "\n```"


def _integer_name(size: int) -> str:
    return f"u{size * 8}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return f"{int(value)} ({str(value).lower()})"
    if isinstance(value, bytes):
        return "0x" + value.hex() if value else "(empty)"
    if isinstance(value, tuple):
        return json.dumps(list(value), ensure_ascii=False)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _hex_lines(data: bytes, note: str) -> list[str]:
    chunks = [data[i:i + BYTES_PER_LINE] for i in range(0, len(data), BYTES_PER_LINE)] or [b""]
    width = BYTES_PER_LINE * 3 - 1
    out = []
    for index, chunk in enumerate(chunks):
        text = " ".join(f"{octet:02x}" for octet in chunk)
        out.append(f"{text:<{width}}  {note if index == 0 else ''}".rstrip())
    return out


def _annotated_typical(cls: type[Message], schema: Schema) -> str:
    case = _vectors.message_case(cls, "typical", schema)
    frame = case.frame
    lines: list[str] = []
    position = 0
    header = _schema.FRAME_HEADER.parse(frame)
    for sub in _schema.FRAME_HEADER.subcons:
        size = sub.sizeof()
        value = header[sub.name]
        note = f"{sub.name} = {value}" + (f" (0x{value:04X}, {cls.NAME})" if sub.name == "type"
                                           else "")
        lines += _hex_lines(frame[position:position + size], note)
        position += size
    for body_field in schema.body_fields[cls.TYPE]:
        value = getattr(case.message, body_field.name)
        encoded = bytes(body_field.field_type.wire.subcon.build(value))
        if frame[position:position + len(encoded)] != encoded:
            raise SpecDocError(f"{cls.NAME}.{body_field.name}: field octets do not match the frame")
        lines += _hex_lines(encoded, f"{body_field.name} = {_show(value)}")
        position += len(encoded)
    if position != len(frame):
        raise SpecDocError(f"{cls.NAME}: the fields do not cover the frame")
    return (f"Typical frame (case `typical` of [messages.json]({VECTORS_LINK})), "
            f"{len(frame)} octets:\n\n```text\n" + "\n".join(lines) + "\n```")


def render_fields(name: str, schema: Schema = SCHEMA) -> str:
    cls = lookup_message(name, schema)
    final = cls.FINAL_RESPONSE
    head = (f"**Type code** `0x{cls.TYPE:04X}` · **Sender** {cls.SENDER.value} · "
            f"**Allowed** {_allowed(cls, schema)} · "
            f"**Final response** {message_link(final) if final else '—'}")
    rows = _header_rows(cls)
    # Advertised limits are bounded by the Limits model as a whole, not by their type.
    ranges: dict[str, tuple[int, int, tuple[str, ...]]] = (
        limit_ranges() if issubclass(cls, Limits) else {})
    for body_field in schema.body_fields[cls.TYPE]:
        field_type = body_field.field_type
        constraint = _constraint_cell(field_type)
        if body_field.name in ranges:
            low, high, _ = ranges[body_field.name]
            constraint = f"{low}..{high} ([limits](limits.md))"
        rows.append(_Row(f"{body_field.name}", _wire_cell(field_type), _size(field_type),
                         constraint, escape(body_field.description)))
    table = _table(["Field", "Wire type", "Size", "Constraint", "Meaning"],
                   [[f"`{row.name}`", row.wire, row.size, row.constraint, row.meaning]
                    for row in rows])
    if not schema.body_fields[cls.TYPE]:
        table += "\n\nThe body is empty: the frame is the header alone."
    return "\n\n".join([head, table, _layout(cls, schema), _annotated_typical(cls, schema)])


def render_error_registry(context: SpecContext) -> str:
    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    rows = []
    for code, info in ERROR_REGISTRY.items():
        rows.append([
            str(int(code)), error_link(code), yes(info.fatal), yes(info.retriable),
            yes(info.on_wire) if info.on_wire else "no (local only)",
            escape(info.summary), ", ".join(context.requirement(r) for r in info.requirements),
        ])
    return _table(["Code", "Name", "Fatal", "Retriable", "On wire", "Meaning", "Requirements"],
                  rows)


def _limits_valid(values: Mapping[str, Any]) -> bool:
    try:
        Limits.model_validate(dict(values))
    except (ValidationError, FieldError):
        return False
    return True


@cache
def limit_ranges() -> dict[str, tuple[int, int, tuple[str, ...]]]:
    """Each limit's protocol range, and the other limits that also bound it.

    Found by probing the ``Limits`` model (a fixed declaration, so the result is
    cached): first each limit alone, the others at
    their reference defaults; then with each other limit at its own extremes,
    which uncovers rules across limits (and widens the range to all the values
    some valid WELCOME can carry).
    """
    defaults = Limits().model_dump()
    names = list(Limits.model_fields)

    def interval(name: str, context: Mapping[str, Any]) -> tuple[int, int] | None:
        top = _field_type_of(Limits.model_fields[name]).wire.max_prefix_value
        if not _limits_valid(context):
            return None
        return _vectors._interval(lambda v: _limits_valid({**context, name: v}), 0, top,
                                  context[name])

    alone = {}
    for name in names:
        found = interval(name, defaults)
        assert found is not None
        alone[name] = found
    out: dict[str, tuple[int, int, tuple[str, ...]]] = {}
    for name in names:
        low, high = alone[name]
        coupled = []
        for other in names:
            if other == name:
                continue
            for extreme in alone[other]:
                found = interval(name, {**defaults, other: extreme})
                if found is None or found == alone[name]:
                    continue
                low, high = min(low, found[0]), max(high, found[1])
                if other not in coupled:
                    coupled.append(other)
        out[name] = (low, high, tuple(coupled))
    return out


def render_limits_table() -> str:
    defaults = Limits()
    rows = []
    for name, (low, high, coupled) in limit_ranges().items():
        info = Limits.model_fields[name]
        field_type = _field_type_of(info)
        wire_top = field_type.wire.max_prefix_value
        span = escape(field_type.constraint) if (low, high) == (0, wire_top) else f"{low}..{high}"
        if coupled:
            span += "; also bounded by " + ", ".join(f"`{other}`" for other in coupled)
        rows.append([f"`{name}`", f"`{field_type.wire.name}`", str(getattr(defaults, name)),
                     span, escape(info.description or "")])
    return _table(["Limit", "Wire type", "Reference default", "Protocol range", "Meaning"], rows)


# ---------------------------------------------------------------- markers

BLOCKS: dict[str, Callable[[str | None, SpecContext], str]] = {}


def _of_schema(render: Callable[[Schema], str]) -> Callable[[str | None, SpecContext], str]:
    def block(arg: str | None, context: SpecContext) -> str:
        return render(context.schema)
    return block


BLOCKS["states"] = lambda arg, context: render_states()
BLOCKS["state-table"] = _of_schema(render_state_table)
BLOCKS["state-diagram"] = _of_schema(render_state_diagram)
BLOCKS["message-index"] = _of_schema(render_message_index)
BLOCKS["limits-table"] = lambda arg, context: render_limits_table()
BLOCKS["error-registry"] = lambda arg, context: render_error_registry(context)
BLOCKS["fields"] = lambda arg, context: render_fields(arg or "", context.schema)

_TAKES_ARG = {"fields"}


def render_block(name: str, arg: str | None = None, *,
                 context: SpecContext | None = None) -> str:
    """The Markdown of block ``name`` (``arg``: the message name of a ``fields`` block)."""
    if name not in BLOCKS:
        raise SpecDocError(f"unknown generated block {name!r}; the blocks are: "
                           + ", ".join(sorted(BLOCKS)))
    if name in _TAKES_ARG and not arg:
        raise SpecDocError(f"block {name!r} needs an argument, e.g. '{name} SEND_ROOM'")
    if name not in _TAKES_ARG and arg:
        raise SpecDocError(f"block {name!r} takes no argument (got {arg!r})")
    return BLOCKS[name](arg, context or SpecContext()).rstrip("\n")


_OPEN = re.compile(r"<!--\s*generated:([A-Za-z0-9_-]+)(?:[ \t]+([^\s]+?))?\s*-->")
_CLOSE = re.compile(r"<!--\s*/generated:([A-Za-z0-9_-]+)(?:[ \t]+([^\s]+?))?\s*-->")
_ANY = re.compile(rf"{_OPEN.pattern}|{_CLOSE.pattern}")


@dataclass(frozen=True, slots=True)
class Marker:
    name: str
    arg: str | None
    start: int
    """Offset just after the opening marker."""
    end: int
    """Offset of the closing marker."""
    line: int


def find_markers(text: str, where: str = "<text>") -> list[Marker]:
    """The marker pairs of a page, checked for pairing (no nesting)."""
    found: list[Marker] = []
    open_match: re.Match[str] | None = None
    for match in _ANY.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if match.group(0).lstrip("<!- \t").startswith("/"):
            name = match.group(3)
            if open_match is None:
                raise SpecDocError(f"{where}:{line}: closing marker for {name!r} without an "
                                   "opening marker")
            if name != open_match.group(1):
                raise SpecDocError(f"{where}:{line}: closing marker for {name!r} inside "
                                   f"block {open_match.group(1)!r}")
            if match.group(4) is not None and match.group(4) != open_match.group(2):
                raise SpecDocError(f"{where}:{line}: closing marker "
                                   f"'{name} {match.group(4)}' does not match the opening "
                                   f"'{name} {open_match.group(2) or ''}'".rstrip())
            open_line = text.count("\n", 0, open_match.start()) + 1
            found.append(Marker(open_match.group(1), open_match.group(2), open_match.end(),
                                match.start(), open_line))
            open_match = None
        else:
            if open_match is not None:
                raise SpecDocError(f"{where}:{line}: marker {match.group(1)!r} opened inside "
                                   f"block {open_match.group(1)!r}, which is not closed")
            open_match = match
    if open_match is not None:
        line = text.count("\n", 0, open_match.start()) + 1
        raise SpecDocError(f"{where}:{line}: block {open_match.group(1)!r} is never closed")
    return found


def fill_markers(text: str, *, context: SpecContext | None = None,
                 where: str = "<text>") -> str:
    """``text`` with every marked block regenerated (the markers are kept)."""
    out = []
    position = 0
    for marker in find_markers(text, where):
        try:
            block = render_block(marker.name, marker.arg, context=context)
        except SpecDocError as exc:
            raise SpecDocError(f"{where}:{marker.line}: {exc}") from None
        out.append(text[position:marker.start])
        # Blank lines around the block: Markdown must not read it as part of the comment.
        out.append("\n\n" + block + "\n\n")
        position = marker.end
    out.append(text[position:])
    return "".join(out)


_LINK = re.compile(r"\]\(([\w.-]+\.md)?#([^)\s]+)\)")


def broken_links(text: str, page: str, context: SpecContext) -> list[str]:
    """Anchor links of the generated blocks in ``text`` whose target heading is missing."""
    problems = []
    for marker in find_markers(text, page):
        for match in _LINK.finditer(text, marker.start, marker.end):
            target = match.group(1) or page
            if target in context.anchors and match.group(2) not in context.anchors[target]:
                problems.append(f"{page}:{marker.line}: block {marker.name!r} links to "
                                f"{target}#{match.group(2)}, which has no such heading")
    return problems


def registry_mismatches(pages: Mapping[str, str]) -> list[str]:
    """Requirement IDs cited by ERROR_REGISTRY that no page defines."""
    defined = {req.id for page, text in pages.items()
               for req in parse_requirements(text, page) if not req.retired}
    return [f"ERROR_REGISTRY[{code.name}] cites {rid}, which no spec page defines"
            for code, info in ERROR_REGISTRY.items()
            for rid in info.requirements if rid not in defined]
