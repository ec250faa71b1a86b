"""The registry of conformance cases.

A case is an async function decorated with ``server_case`` or ``client_case``
and the requirement IDs it checks. Its ID is ``suite.module.function``, for
example ``server.framing.one_byte_per_write``; its title is the first line of
its docstring. Requirement IDs are checked against the spec pages when the case
is declared, so a case cannot cite a requirement that does not exist.

A parametrized declaration (``server_cases`` and ``client_cases``, as pytest's
``parametrize``) runs one function as several cases: each ``Variant`` names
its case, with its own title, requirements and arguments.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Concatenate, Literal

from chatproto_spec.requirements import Level, Requirement, load_requirements

if TYPE_CHECKING:
    from conformance.client_side import ClientContext
    from conformance.server_side import ServerContext

Suite = Literal["server", "client"]
Need = Literal["oper", "tls", "shutdown"]
"""Kit options a case needs; without them it is skipped."""


@dataclass(frozen=True)
class Case:
    id: str
    suite: Suite
    requirements: tuple[str, ...]
    title: str
    func: Callable[[Any], Awaitable[None]]
    slow: bool = False
    needs: tuple[Need, ...] = ()

    @property
    def area(self) -> str:
        return self.id.split(".")[1]

    def strongest_level(self) -> Level:
        levels = {requirement(r).level for r in self.requirements}
        for level in Level:
            if level in levels:
                return level
        return Level.MAY


_CASES: dict[str, Case] = {}


def requirement(requirement_id: str) -> Requirement:
    """The spec's requirement with that ID (KeyError if the spec has none)."""
    return load_requirements()[requirement_id]


def _check_citations(requirements: tuple[str, ...]) -> None:
    if not requirements:
        raise ValueError("a case must cite at least one requirement")
    known = load_requirements()
    for requirement_id in requirements:
        if requirement_id not in known:
            raise ValueError(f"{requirement_id} is not a requirement of the spec")


def _register(suite: Suite, module: str, name: str, requirements: tuple[str, ...], title: str,
              func: Callable[[Any], Awaitable[None]], slow: bool,
              needs: tuple[Need, ...]) -> None:
    case_id = f"{suite}.{module.rsplit('.', 1)[-1]}.{name}"
    if case_id in _CASES:
        raise ValueError(f"case {case_id} is declared twice")
    _CASES[case_id] = Case(case_id, suite, requirements, title, func, slow, needs)


def _declare(suite: Suite, requirements: tuple[str, ...], slow: bool,
             needs: tuple[Need, ...]) -> Callable[[Callable[[Any], Awaitable[None]]],
                                                  Callable[[Any], Awaitable[None]]]:
    _check_citations(requirements)

    def register(func: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        doc = (func.__doc__ or "").strip()
        title = doc.splitlines()[0] if doc else func.__name__.replace("_", " ")
        _register(suite, func.__module__, func.__name__, requirements, title, func, slow, needs)
        return func

    return register


@dataclass(frozen=True)
class Variant:
    """One case of a parametrized declaration: its name (the last part of its ID), its
    title, the requirements it checks, and the keyword arguments the function gets."""

    name: str
    title: str
    requirements: tuple[str, ...]
    args: Mapping[str, Any]


def variant(name: str, title: str, *requirements: str, **args: Any) -> Variant:
    """A ``Variant``; its requirements are checked against the spec at once."""
    _check_citations(requirements)
    return Variant(name, title, requirements, args)


def _declare_variants(suite: Suite, variants: tuple[Variant, ...], slow: bool,
                      needs: tuple[Need, ...]) -> Callable[[Callable[..., Awaitable[None]]],
                                                           Callable[..., Awaitable[None]]]:
    if not variants:
        raise ValueError("a parametrized case needs at least one variant")

    def register(func: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        for each in variants:
            _register(suite, func.__module__, each.name, each.requirements, each.title,
                      functools.partial(func, **each.args), slow, needs)
        return func

    return register


def server_case(
    *requirements: str, slow: bool = False, needs: tuple[Need, ...] = ()
) -> Callable[[Callable[[ServerContext], Awaitable[None]]],
              Callable[[ServerContext], Awaitable[None]]]:
    """Declare a server-suite case checking ``requirements``."""
    return _declare("server", requirements, slow, needs)


def server_cases(
    *variants: Variant, slow: bool = False, needs: tuple[Need, ...] = ()
) -> Callable[[Callable[Concatenate[ServerContext, ...], Awaitable[None]]],
              Callable[Concatenate[ServerContext, ...], Awaitable[None]]]:
    """Declare one server-suite case per variant, all run by the decorated function."""
    return _declare_variants("server", variants, slow, needs)


def client_case(
    *requirements: str, slow: bool = False
) -> Callable[[Callable[[ClientContext], Awaitable[None]]],
              Callable[[ClientContext], Awaitable[None]]]:
    """Declare a client-suite case checking ``requirements``."""
    return _declare("client", requirements, slow, ())


def client_cases(
    *variants: Variant, slow: bool = False
) -> Callable[[Callable[Concatenate[ClientContext, ...], Awaitable[None]]],
              Callable[Concatenate[ClientContext, ...], Awaitable[None]]]:
    """Declare one client-suite case per variant, all run by the decorated function."""
    return _declare_variants("client", variants, slow, ())


def in_run_order(cases: list[Case]) -> list[Case]:
    """``cases`` with those that shut the target down moved to the end."""
    return sorted(cases, key=lambda case: "shutdown" in case.needs)


def all_cases() -> list[Case]:
    """Every case of both suites, in declaration order (suite modules imported once)."""
    for suite in ("server", "client"):
        package = importlib.import_module(f"conformance.suites.{suite}")
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{info.name}")
    return list(_CASES.values())


def select(
    cases: list[Case],
    *,
    suite: Suite | None = None,
    requirement_patterns: list[str] | None = None,
    keyword: str | None = None,
) -> list[Case]:
    """The cases of ``suite`` matching every given filter.

    ``requirement_patterns`` are shell patterns (``CP-FRAME-*``) of which one
    must match one of the case's requirements. ``keyword`` is a ``-k``
    expression: words joined by ``and``, ``or`` and ``not`` (with
    parentheses), each matching a substring of the case ID, its title or one
    of its requirement IDs, case-insensitively.
    """
    chosen = [c for c in cases if suite is None or c.suite == suite]
    if requirement_patterns:
        chosen = [c for c in chosen
                  if any(fnmatchcase(r, p) for r in c.requirements for p in requirement_patterns)]
    if keyword:
        matcher = compile_keyword(keyword)
        chosen = [c for c in chosen
                  if matcher(" ".join((c.id, c.title, *c.requirements)).lower())]
    return chosen


def compile_keyword(expression: str) -> Callable[[str], bool]:
    """A ``-k`` expression as a predicate over a lower-cased haystack."""
    tokens = expression.replace("(", " ( ").replace(")", " ) ").split()
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise ValueError(f"incomplete -k expression: {expression!r}")
        position += 1
        return tokens[position - 1]

    def parse_or() -> Callable[[str], bool]:
        left = parse_and()
        while peek() == "or":
            take()
            right = parse_and()
            left = (lambda a, b: lambda h: a(h) or b(h))(left, right)
        return left

    def parse_and() -> Callable[[str], bool]:
        left = parse_not()
        while peek() == "and":
            take()
            right = parse_not()
            left = (lambda a, b: lambda h: a(h) and b(h))(left, right)
        return left

    def parse_not() -> Callable[[str], bool]:
        if peek() == "not":
            take()
            inner = parse_not()
            return lambda h: not inner(h)
        token = take()
        if token == "(":
            inner = parse_or()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in -k expression: {expression!r}")
            return inner
        if token in ("and", "or", ")"):
            raise ValueError(f"unexpected {token!r} in -k expression: {expression!r}")
        word = token.lower()
        return lambda h: word in h

    predicate = parse_or()
    if position != len(tokens):
        raise ValueError(f"unexpected {tokens[position]!r} in -k expression: {expression!r}")
    return predicate
