"""The spec's numbered requirements, read from the spec pages themselves.

A requirement is a paragraph or list item of a spec page that begins with its
bold ID, for example::

    **CP-FRAME-3** A receiver MUST reject a frame whose length ...

Its level is the RFC 2119 keyword it uses. The pages are the only place the
requirements are written: tests, the conformance kit and the site's index all
read them through this module, so a reference to an ID that does not exist is
caught by a test rather than retyped by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path


class Level(StrEnum):
    """RFC 2119 requirement levels, strongest first."""

    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"


@dataclass(frozen=True, slots=True)
class Requirement:
    id: str
    level: Level
    negative: bool
    """True for MUST NOT / SHOULD NOT."""
    text: str
    page: str
    """The page's file name (``framing.md``)."""
    retired: bool

    @property
    def area(self) -> str:
        return self.id.split("-")[1]


REQUIREMENT_ID = re.compile(r"CP-[A-Z]+-\d+")
_START = re.compile(r"^\s*(?:[-*]\s+)?\*\*(CP-[A-Z]+-\d+)\*\*\s*(.*)$")
_KEYWORD = re.compile(r"\b(MUST NOT|MUST|SHOULD NOT|SHOULD|MAY)\b")
_RETIRED = re.compile(r"^\(retired\b", re.IGNORECASE)


def spec_dir() -> Path:
    """Where the spec pages are: the repository's ``spec/``, or the installed copy."""
    package = Path(__file__).resolve().parent
    # In the repository this package lives in spec/ itself; a wheel carries a
    # copy of the pages inside the package (pyproject.toml's force-include).
    for candidate in (package.parent, package / "pages"):
        if (candidate / "index.md").is_file():
            return candidate
    raise FileNotFoundError("the chatproto spec pages are not installed")


def parse_requirements(text: str, page: str) -> list[Requirement]:
    """Every requirement on one page, in order."""
    found: list[Requirement] = []
    lines = text.splitlines()
    in_fence = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else _START.match(line)
        index += 1
        if match is None:
            continue
        parts = [match.group(2)]
        # The requirement runs to the end of its paragraph or list item.
        while index < len(lines) and lines[index].strip() and not _START.match(lines[index]) \
                and not lines[index].lstrip().startswith(("- ", "* ", "#", "!!!", "|")):
            parts.append(lines[index].strip())
            index += 1
        body = " ".join(part.strip() for part in parts).strip()
        retired = _RETIRED.match(body) is not None
        keywords = _KEYWORD.findall(body)
        if not keywords and not retired:
            raise ValueError(f"{page}: {match.group(1)} has no RFC 2119 keyword")
        strongest = min(keywords, key=lambda word: list(Level).index(Level(word.split()[0])),
                        default="MAY")
        found.append(Requirement(
            id=match.group(1),
            level=Level(strongest.split()[0]),
            negative=strongest.endswith("NOT"),
            text=body,
            page=page,
            retired=retired,
        ))
    return found


@cache
def load_requirements(directory: Path | None = None) -> dict[str, Requirement]:
    """All requirements of the spec, by ID, in page order. Raises on a duplicate ID."""
    directory = directory or spec_dir()
    out: dict[str, Requirement] = {}
    for path in sorted(directory.glob("*.md")):
        for requirement in parse_requirements(path.read_text(encoding="utf-8"), path.name):
            if requirement.id in out:
                raise ValueError(f"{requirement.id} is defined twice "
                                 f"({out[requirement.id].page} and {path.name})")
            out[requirement.id] = requirement
    return out
