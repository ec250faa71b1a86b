"""The requirements index: every numbered requirement, page by page in the site's nav order.

``python -m chatproto_spec.specgen`` writes it as ``spec/requirements.md``, in
plain Markdown, so that a reader of the repository (or of an offline copy) has
it too. The site shows the same entries with the conformance cases that check
each: ``spec/hooks.py`` lays them out from ``index_sections()`` at build time,
since the cases belong to the kit, which this package does not import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatproto import SPEC_REVISION
from chatproto_spec.requirements import Level, Requirement, parse_requirements

REQUIREMENTS_PAGE = "requirements.md"
TITLE = "Requirements index"
MKDOCS_CONFIG = "mkdocs.yml"


@dataclass(frozen=True, slots=True)
class IndexSection:
    """The requirements of one spec page, under the page's title in the nav."""

    title: str
    page: str
    requirements: tuple[Requirement, ...]


def nav_pages(nav: Any) -> list[tuple[str, str]]:
    """(title, file) of every page in ``mkdocs.yml``'s ``nav``, in the order it lists them."""
    found: list[tuple[str, str]] = []
    for item in nav or []:
        entries = item.items() if isinstance(item, dict) else [(None, item)]
        for title, target in entries:
            if isinstance(target, list):
                found += nav_pages(target)
            elif isinstance(target, str):
                found.append((title or target, target))
    return found


def site_nav(spec_dir: Path) -> Any:
    """The ``nav`` of the ``mkdocs.yml`` that builds ``spec_dir``, or None if there is none."""
    config = spec_dir.parent / MKDOCS_CONFIG
    if not config.is_file():
        return None
    import yaml  # type: ignore[import-untyped]  # mkdocs needs it, so wherever the site builds

    loaded = yaml.safe_load(config.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict) or loaded.get("docs_dir") != spec_dir.name:
        return None
    return loaded.get("nav")


def index_sections(pages: Mapping[str, str], nav: Any) -> list[IndexSection]:
    """The pages with requirements, in ``nav`` order; those the nav leaves out come last."""
    titled = [(title, page) for title, page in nav_pages(nav) if page in pages]
    listed = {page for _, page in titled}
    order = titled + [(page, page) for page in sorted(pages) if page not in listed]
    sections = []
    for title, page in order:
        requirements = tuple(parse_requirements(pages[page], page))
        if requirements:
            sections.append(IndexSection(title, page, requirements))
    return sections


def statement(requirement: Requirement) -> str:
    """The requirement's text, its links within its own page made to name that page."""
    return requirement.text.replace("](#", f"]({requirement.page}#")


def count_line(sections: list[IndexSection]) -> str:
    """"170 requirements: 146 MUST, 17 SHOULD, 7 MAY."."""
    counts = {level: 0 for level in Level}
    for section in sections:
        for requirement in section.requirements:
            counts[requirement.level] += 1
    summary = ", ".join(f"{count} {level.value}" for level, count in counts.items() if count)
    return f"{sum(counts.values())} requirements: {summary}."


def render_markdown(pages: Mapping[str, str], nav: Any) -> str:
    """The checked-in index page: a list per spec page, readable as plain Markdown."""
    sections = index_sections(pages, nav)
    lines = [
        f"# {TITLE}",
        "",
        f"Every numbered requirement of chatproto version {SPEC_REVISION} with its level "
        "and its text: page by page in the order of the site's navigation, and on each page "
        "in the order they stand there. Generated from the spec pages by "
        "`python -m chatproto_spec.specgen`; do not edit. The site's copy of this page also "
        "names the conformance cases that check each requirement, as "
        "`chatproto-conformance requirements` does.",
        "",
        count_line(sections),
    ]
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        lines += [f"- [{req.id}]({section.page}#{req.id}) **{req.level.value}**: "
                  f"{statement(req)}" for req in section.requirements]
    return "\n".join(lines) + "\n"
