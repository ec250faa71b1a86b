"""Regenerate what the spec derives from the code: test vectors and generated blocks.

    python -m chatproto_spec.specgen [--check] [--spec-dir DIR]

Writes ``spec/vectors/*.json`` (``chatproto_spec._vectors``) and the
requirements index ``spec/requirements.md`` (``chatproto_spec._requirements_index``,
in the order of the nav of the ``mkdocs.yml`` beside the spec directory, if any),
and fills the ``<!-- generated:NAME ARG -->`` blocks of every ``spec/*.md`` page
(``chatproto_spec._specdoc``). With ``--check`` nothing is written: the exit status
is 1 and every out-of-date file is listed when a run would change anything.
The default spec directory is the repository's ``spec`` folder, the one that
holds this package.

Exit status: 0 up to date (or written), 1 out of date (``--check``), 2 the
pages or the code are inconsistent (an unknown block or message name, broken
markers, a generated link to a missing heading, a vector that disagrees with
the reference implementation).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from chatproto_spec._requirements_index import REQUIREMENTS_PAGE, render_markdown, site_nav
from chatproto_spec._specdoc import (
    SpecContext,
    SpecDocError,
    broken_links,
    fill_markers,
    registry_mismatches,
)
from chatproto_spec._vectors import VectorError, render_vectors
from chatproto_spec.requirements import spec_dir as default_spec_dir

VECTORS_DIR = "vectors"


def _read(path: Path) -> str:
    # Bytes in, bytes out: line endings stay exactly as the author wrote them.
    return path.read_bytes().decode("utf-8")


def generate(spec_dir: Path) -> dict[Path, str]:
    """Every generated file's path and its up-to-date text. Raises SpecDocError."""
    if not spec_dir.is_dir():
        raise SpecDocError(f"no spec directory at {spec_dir}")
    out: dict[Path, str] = {}
    for name, text in render_vectors(spec_dir).items():
        out[spec_dir / VECTORS_DIR / name] = text
    pages = {path.name: _read(path) for path in sorted(spec_dir.glob("*.md"))}
    context = SpecContext.from_pages(pages)
    filled = {name: fill_markers(text, context=context, where=name)
              for name, text in pages.items()}
    after = SpecContext.from_pages(filled)
    problems = [problem for name, text in filled.items()
                for problem in broken_links(text, name, after)]
    if problems:
        raise SpecDocError("generated links to missing headings:\n  " + "\n  ".join(problems))
    for name, text in filled.items():
        out[spec_dir / name] = text
    out[spec_dir / REQUIREMENTS_PAGE] = render_markdown(filled, site_nav(spec_dir))
    return out


def out_of_date(spec_dir: Path) -> list[Path]:
    """The generated files whose content on disk differs from a fresh run."""
    return [path for path, text in generate(spec_dir).items()
            if not path.is_file() or _read(path) != text]


def warnings(spec_dir: Path) -> list[str]:
    """Inconsistencies worth a look that do not stop the build."""
    pages = {path.name: _read(path) for path in sorted(spec_dir.glob("*.md"))}
    return registry_mismatches(pages)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatproto_spec.specgen",
        description="Regenerate spec/vectors/*.json, spec/requirements.md and the generated "
                    "blocks of spec/*.md.",
    )
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and list the files that are out of date")
    parser.add_argument("--spec-dir", type=Path, default=None,
                        help="the spec directory (default: the repository's 'spec' folder, "
                             "which holds the chatproto_spec package)")
    args = parser.parse_args(argv)
    spec_dir: Path = args.spec_dir if args.spec_dir is not None else default_spec_dir()
    try:
        wanted = generate(spec_dir)
        notes = warnings(spec_dir)
    except (SpecDocError, VectorError) as exc:
        print(f"specgen: error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"specgen: warning: {note}", file=sys.stderr)
    stale = [path for path, text in wanted.items() if not path.is_file() or _read(path) != text]
    if args.check:
        if stale:
            print("specgen: out of date (run python -m chatproto_spec.specgen):")
            for path in stale:
                print(f"  {path}")
            return 1
        print(f"specgen: {len(wanted)} generated files are up to date")
        return 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wanted[path].encode("utf-8"))
        print(f"specgen: wrote {path}")
    if not stale:
        print(f"specgen: {len(wanted)} generated files were already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
