"""The spec's requirement registry: parsed from the pages, referenced correctly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatproto import ERROR_REGISTRY
from chatproto_spec.requirements import (
    REQUIREMENT_ID,
    Level,
    load_requirements,
    parse_requirements,
    spec_dir,
)

ROOT = Path(__file__).resolve().parent.parent


def test_every_requirement_has_a_unique_id_and_one_level() -> None:
    requirements = load_requirements()
    assert len(requirements) >= 100
    for requirement in requirements.values():
        assert requirement.level in Level
        assert requirement.text


def test_ids_within_an_area_are_numbered_from_one_without_gaps() -> None:
    by_area: dict[str, list[int]] = {}
    for requirement_id in load_requirements():
        area, number = requirement_id.rsplit("-", 1)
        by_area.setdefault(area, []).append(int(number))
    for area, numbers in by_area.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), area


def test_the_error_registry_cites_only_requirements_that_exist() -> None:
    requirements = load_requirements()
    for info in ERROR_REGISTRY.values():
        assert info.requirements, f"{info.name} cites no requirement"
        for requirement_id in info.requirements:
            assert requirement_id in requirements, f"{info.name} cites unknown {requirement_id}"


def test_every_requirement_id_mentioned_anywhere_in_the_tree_exists() -> None:
    known = set(load_requirements())
    sources = [*ROOT.glob("chatproto/**/*.py"), *ROOT.glob("tests/**/*.py"),
               *ROOT.glob("conformance/**/*.py"), *ROOT.glob("reference_server/**/*.py"),
               *ROOT.glob("reference_client/**/*.py"), *ROOT.glob("spec/*.md"),
               ROOT / "README.md"]
    for path in sources:
        if path.name == "test_requirements.py":
            continue
        for match in REQUIREMENT_ID.finditer(path.read_text(encoding="utf-8")):
            assert match.group(0) in known, f"{path.relative_to(ROOT)} cites {match.group(0)}"


def test_parser_reads_level_negation_and_continuation_lines() -> None:
    page = (
        "Intro text that MUST be ignored.\n\n"
        "**CP-DEMO-1** A server MUST NOT do this,\n"
        "and the sentence goes on here.\n\n"
        "- **CP-DEMO-2** A client SHOULD do that.\n"
        "- **CP-DEMO-3** (retired in version 2)\n\n"
        "```text\n**CP-DEMO-9** inside a code fence MUST be ignored\n```\n"
    )
    found = parse_requirements(page, "demo.md")
    assert [r.id for r in found] == ["CP-DEMO-1", "CP-DEMO-2", "CP-DEMO-3"]
    assert found[0].level is Level.MUST and found[0].negative
    assert found[0].text.endswith("the sentence goes on here.")
    assert found[1].level is Level.SHOULD and not found[1].negative
    assert found[2].retired


def test_a_requirement_without_a_keyword_is_refused() -> None:
    with pytest.raises(ValueError, match="CP-DEMO-1"):
        parse_requirements("**CP-DEMO-1** This says nothing normative.\n", "demo.md")


def test_spec_dir_is_the_repository_spec_in_a_checkout() -> None:
    assert spec_dir() == ROOT / "spec"


def test_requirement_ids_look_like_cp_area_number() -> None:
    for requirement_id in load_requirements():
        assert re.fullmatch(r"CP-[A-Z]+-[1-9]\d*", requirement_id)
