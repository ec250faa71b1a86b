"""Each layer knows only the one beneath it, read from the source (STYLE.md, issue 12).

``chatproto`` is the sans-IO core: no I/O modules, none of the packages built
on it. The reference server and client use only its public names. The
conformance kit tests other implementations, so it uses the schema but no
state machine and none of our apps. ``chatproto_spec`` (in ``spec/``) derives
the spec's generated parts from the core, so it may read the core's private
declarations, but nothing of the apps or the kit, and the core never imports it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("reference_server", "reference_client")
SPEC_PACKAGE = "chatproto_spec"
"""Lives in ``spec/`` (the repository's top level is fixed), imported by its own name."""
IO_MODULES = frozenset({"asyncio", "socket", "ssl", "threading", "selectors"})

PRIVATE_IMPORT_EXCEPTIONS: dict[tuple[str, str], str] = {}
"""(app file, ``chatproto`` name) pairs allowed although private, each with its reason."""


def _sources(package: str) -> list[Path]:
    directory = ROOT / "spec" / package if package == SPEC_PACKAGE else ROOT / package
    return sorted(directory.rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[str, str | None]]:
    """(module, name) for each import in ``path``; name is None for ``import module``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield node.module, alias.name


def _top(module: str) -> str:
    return module.split(".")[0]


def _label(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", _sources("chatproto"), ids=_label)
def test_the_core_does_no_io_and_knows_no_app(path: Path) -> None:
    forbidden = IO_MODULES | {*APPS, "conformance", SPEC_PACKAGE}
    found = sorted({module for module, _ in _imports(path) if _top(module) in forbidden})
    assert not found, f"{_label(path)} imports {found}"


@pytest.mark.parametrize("path", _sources(SPEC_PACKAGE), ids=_label)
def test_the_spec_package_builds_on_the_core_alone(path: Path) -> None:
    found = sorted({module for module, _ in _imports(path)
                    if _top(module) in {*APPS, "conformance", "tests"} or module == "hooks"})
    assert not found, f"{_label(path)} imports {found}"


def test_the_spec_package_reads_the_core() -> None:
    # The point of the package: it derives from chatproto's declarations, the
    # private ones included (schema, fields, state table), and the rules allow it.
    private = {name for path in _sources(SPEC_PACKAGE) for name in _private_core_names(path)}
    assert {"chatproto._schema", "chatproto._state", "chatproto._connection"} <= private


def _private_core_names(path: Path) -> Iterator[str]:
    for module, name in _imports(path):
        if _top(module) != "chatproto":
            continue
        parts = module.split(".")
        if name is not None and module == "chatproto":
            parts.append(name)
        if any(part.startswith("_") and not part.endswith("__") for part in parts):
            yield ".".join(parts)


@pytest.mark.parametrize("path", [p for app in APPS for p in _sources(app)], ids=_label)
def test_the_apps_use_only_the_cores_public_names(path: Path) -> None:
    private = sorted(name for name in set(_private_core_names(path))
                     if (_label(path), name) not in PRIVATE_IMPORT_EXCEPTIONS)
    assert not private, f"{_label(path)} imports private chatproto names {private}"


@pytest.mark.parametrize("path", _sources("conformance"), ids=_label)
def test_the_kit_imports_no_state_machine_and_no_app(path: Path) -> None:
    found = set()
    for module, name in _imports(path):
        if _top(module) in APPS or _top(module) == "tests":
            found.add(module)
        if module.startswith(("chatproto._state", "chatproto._connection")):
            found.add(module)
        if _top(module) == "chatproto" and name in {"Connection", "State", "_state",
                                                    "_connection"}:
            found.add(f"{module}.{name}")
        # Of the spec package only the requirement list: the vectors' generator
        # drives our Connection.
        if _top(module) == SPEC_PACKAGE and module != f"{SPEC_PACKAGE}.requirements":
            found.add(module if name is None else f"{module}.{name}")
    assert not found, f"{_label(path)} imports {sorted(found)}"


def test_the_exceptions_are_still_needed() -> None:
    for (label, name) in PRIVATE_IMPORT_EXCEPTIONS:
        assert name in set(_private_core_names(ROOT / label)), f"{label} no longer imports {name}"
