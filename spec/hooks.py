"""MkDocs hooks that build the spec site from the code (``mkdocs.yml``: ``hooks``).

This file is build code, not a page: ``mkdocs.yml`` excludes it from the site.

Nothing on the site that describes the wire is copied by hand. At build time:

* every ``<!-- generated:NAME ARG -->`` block of every page (message reference,
  state table and diagram, error registry, limits) is rendered again from the
  live schema (``chatproto._schema.SCHEMA``, or the one a build puts in
  ``config.extra[SCHEMA_KEY]``, as tests/test_site.py does), so the site
  cannot show a stale table even if nobody ran ``python -m chatproto_spec.specgen``;
* the state diagram is drawn as an inline SVG from the state table
  (``chatproto_spec._statediagram``) in place of the page's Mermaid source, so the
  site loads no script to draw it and works with no network;
* ``requirements.md``, checked in as ``specgen`` writes it, is shown rendered
  again from the live pages, each requirement with the conformance cases that
  check it (which the checked-in page, from the spec package alone, cannot name);
* every requirement paragraph gets a permalink anchor named by its ID
  (``framing.md#CP-FRAME-3``);
* the test vectors under ``vectors/`` are written from the schema;
* every page carries the spec version it belongs to;
* the kit's ``<!-- generated:kit-summary -->`` blocks of the guides are rendered
  from the case registry (``conformance/guide_blocks.py``).
"""

from __future__ import annotations

import json
import re
import struct
from html import escape
from pathlib import Path
from typing import Any

from chatproto import PROTOCOL_VERSION, SPEC_REVISION, _schema
from chatproto._schema import SCHEMA, Schema
from chatproto_spec._requirements_index import (
    REQUIREMENTS_PAGE,
    count_line,
    index_sections,
    statement,
)
from chatproto_spec._requirements_index import TITLE as INDEX_TITLE
from chatproto_spec._specdoc import SpecContext, fill_markers, state_diagram_legend
from chatproto_spec._statediagram import render_state_svg
from chatproto_spec._vectors import FIXED_SHAPES, render_vectors
from chatproto_spec.requirements import load_requirements

_REQUIREMENT_START = re.compile(r"^(\s*(?:[-*]\s+)?)\*\*(CP-[A-Z]+-\d+)\*\*", re.MULTILINE)
_LEVEL_CLASS = {"MUST": "must", "SHOULD": "should", "MAY": "may"}
_FIELDS_BLOCK = re.compile(r"^<!-- generated:fields ([A-Z_]+) -->$(.*?)^```text$",
                           re.MULTILINE | re.DOTALL)
_STATE_DIAGRAM_BLOCK = re.compile(r"^(<!-- generated:state-diagram -->\n).*?"
                                  r"^(<!-- /generated:state-diagram -->)$",
                                  re.MULTILINE | re.DOTALL)

SCHEMA_KEY = "chatproto_schema"
"""The ``config.extra`` key of a schema to build the site from instead of ``SCHEMA``."""

_context = SpecContext()


def _spec_pages(docs_dir: Path) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(docs_dir.glob("*.md"))}


def on_config(config: Any) -> Any:
    global _context
    schema: Schema = config["extra"].get(SCHEMA_KEY, SCHEMA)
    _context = SpecContext.from_pages(_spec_pages(Path(config["docs_dir"])), schema)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    name = page.file.src_uri
    if name == REQUIREMENTS_PAGE:
        # The checked-in page lists the requirements; the site adds the kit's cases.
        return render_requirements_index(Path(config["docs_dir"]), config["nav"])
    if "/" not in name and name != REQUIREMENTS_PAGE:
        markdown = fill_markers(markdown, context=_context, where=name)
        markdown = _FIELDS_BLOCK.sub(_with_layout_diagram, markdown)
        markdown = _STATE_DIAGRAM_BLOCK.sub(_drawn_state_diagram, markdown)
        markdown = _REQUIREMENT_START.sub(_anchor_requirement, markdown)
    if name == "guides/benchmarks.md":
        markdown = _with_bench_results(markdown, Path(config["docs_dir"]))
    return _with_kit_blocks(markdown, name)


_BENCH_BLOCK = re.compile(r"^(<!-- generated:bench-results -->\n).*?"
                          r"^(<!-- /generated:bench-results -->)$", re.S | re.M)


def _with_bench_results(markdown: str, docs_dir: Path) -> str:
    """The Benchmarks page shows the table the last ``bench/load.py`` run wrote."""
    results = docs_dir / "assets" / "bench" / "results.json"
    if results.exists():
        report = json.loads(results.read_text())
        machine = report["machine"]
        table = (f"Run of {machine['date']} on {machine['cpus']} cores, Python "
                 f"{machine['python']}, load generator on {machine['loop']}; "
                 f"{report['deliveries_per_scenario']:,} deliveries per saturation "
                 f"scenario{' (quick run)' if report['quick'] else ''}.\n\n"
                 f"{report['table_markdown']}")
    else:
        table = "No results yet: run `python bench/load.py`."
    return _BENCH_BLOCK.sub(lambda m: f"{m.group(1)}\n{table}\n\n{m.group(2)}", markdown)


def _with_kit_blocks(markdown: str, name: str) -> str:
    """The guides show what the kit prints: those blocks come from its case registry."""
    from conformance.guide_blocks import fill

    return fill(markdown) if name.startswith("guides/") else markdown


def _anchor_requirement(match: re.Match[str]) -> str:
    prefix, requirement_id = match.groups()
    level = load_requirements()[requirement_id].level.value
    # attr_list puts the id on the link itself: the ID is its own permalink.
    return (f'{prefix}[**{requirement_id}**](#{requirement_id})'
            f'{{ #{requirement_id} .cp-requirement .cp-{_LEVEL_CLASS[level]} }}')


def _with_layout_diagram(match: re.Match[str]) -> str:
    # The drawing goes between the field table and the offset listing.
    before_listing = match.group(0)[: -len("```text")]
    return f"{before_listing}{layout_diagram(match.group(1))}\n\n```text"


def _drawn_state_diagram(match: re.Match[str]) -> str:
    return f"{match.group(1)}\n{state_diagram_figure()}\n\n{match.group(2)}"


def state_diagram_figure() -> str:
    """The state diagram as an HTML figure: the SVG and what its marks mean."""
    legend = re.sub(r"`([^`]*)`", lambda m: f"<code>{escape(m.group(1))}</code>",
                    state_diagram_legend())
    # A raw HTML block: Markdown leaves it alone as long as it has no blank line.
    return (f'<figure class="cp-state-diagram">\n{render_state_svg(_context.schema)}\n'
            f"<figcaption>{legend}. An arrow from the dashed box leaves any state inside it. "
            "The state table above is authoritative.</figcaption>\n</figure>")


def layout_diagram(name: str) -> str:
    """The frame of message ``name`` drawn as a row of boxes, one per field.

    Fixed-size fields are as wide as their octets; a length-prefixed field
    shows its prefix and its variable part.
    """
    schema = _context.schema
    cls = schema.message_class(name)
    boxes = [(sub.name, f"u{8 * sub.sizeof()}", sub.sizeof(), "header")
             for sub in _schema.FRAME_HEADER.subcons]
    for body_field in schema.body_fields[cls.TYPE]:
        wire = body_field.field_type.wire
        prefix = struct.calcsize(wire.prefix_format)
        if wire.shape in FIXED_SHAPES:
            boxes.append((body_field.name, wire.name, prefix, "fixed"))
        else:
            unit = "count" if wire.shape == "strlist" else "length"
            boxes.append((f"{body_field.name} {unit}", f"u{8 * prefix}", prefix, "prefix"))
            boxes.append((body_field.name, f"{wire.name} data", 0, "variable"))
    cells = []
    for label, wire_name, size, kind in boxes:
        width = f"flex: {size} 0 {size * 2.2}rem" if size else "flex: 3 0 5rem"
        octets = f"{size} octet{'s' if size != 1 else ''}" if size else "n octets"
        cells.append(f'<div class="cp-box cp-{kind}" style="{width}">'
                     f"<code>{escape(label)}</code><span>{escape(wire_name)} · {octets}</span>"
                     "</div>")
    return (f'<div class="cp-layout" role="img" aria-label="byte layout of {name}">'
            + "".join(cells) + "</div>")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    badge = (f'<p class="cp-spec-version">chatproto specification, '
             f'<strong>version {SPEC_REVISION}</strong> '
             f'(protocol version {PROTOCOL_VERSION})</p>')
    return badge + html


def on_post_build(config: Any) -> None:
    site = Path(config["site_dir"]) / "vectors"
    site.mkdir(parents=True, exist_ok=True)
    for name, text in render_vectors(Path(config["docs_dir"]), _context.schema).items():
        (site / name).write_text(text, encoding="utf-8")


def render_requirements_index(docs_dir: Path, nav: Any) -> str:
    """The site's requirements index, in Markdown: the checked-in page's entries, each
    with the conformance cases that check it.

    Each requirement is an entry of its own (ID and level, text, the cases that
    check it), so the text has the page's width and a case ID is never squeezed
    into a column: case IDs are whole words that wrap between each other.
    """
    from conformance.coverage import NOT_CHECKABLE, cases_by_requirement

    covered = cases_by_requirement()
    sections = index_sections(_spec_pages(docs_dir), nav)
    lines: list[str] = []
    for section in sections:
        lines += [f"## {section.title}", "", '<div class="cp-index" markdown>']
        for req in section.requirements:
            cases = covered.get(req.id, [])
            if cases:
                checked = " ".join(f"<code>{escape(case.id)}</code>" for case in cases)
            elif req.id in NOT_CHECKABLE:
                checked = escape(f"not checkable over the network: {NOT_CHECKABLE[req.id]}")
            else:
                checked = "no case"
            level = req.level.value
            lines += [
                f'<div class="cp-index-entry" id="{req.id}" markdown>',
                f'<p class="cp-index-head" markdown>[{req.id}]({section.page}#{req.id}) '
                f'<span class="cp-level cp-{_LEVEL_CLASS[level]}">{level}</span></p>',
                f"<p markdown>{statement(req)}</p>",
                f'<div class="cp-index-cases"><span class="cp-index-label">Checked by</span> '
                f"{checked}</div>",
                "</div>",
            ]
        lines += ["</div>", ""]
    return "\n".join([
        f"# {INDEX_TITLE}",
        "",
        f"Every numbered requirement of chatproto version {SPEC_REVISION} with its level, "
        "its text and the conformance cases that check it: page by page in the order of the "
        "site's navigation, and on each page in the order they stand there. Generated from the "
        "spec pages and the kit at build time.",
        "",
        count_line(sections),
        "",
        *lines,
    ])
