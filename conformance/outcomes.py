"""Outcomes of a conformance case and the exceptions a case ends with.

A case checks what the spec says. When the implementation breaks a rule the
case raises ``Violation`` naming the one requirement broken; the requirement's
level in the spec decides the outcome (a broken MUST is a FAIL, a broken SHOULD
a WARN). ``NotApplicable`` ends a case that cannot be run against this target
(SKIP), ``KitError`` one the kit itself could not run (ERROR).
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    PASS = "PASS"
    """Every requirement the case checks held."""
    FAIL = "FAIL"
    """A MUST was broken."""
    WARN = "WARN"
    """A SHOULD was broken; every MUST the case checks held."""
    SKIP = "SKIP"
    """Not run: deselected, needs an option (such as --oper), or blocked by an earlier failure."""
    ERROR = "ERROR"
    """The kit could not run the case (target unreachable, a bug in the kit)."""
    FLAKY = "FLAKY"
    """With --repeat, the case's outcome differed between runs."""


SEVERITY = {
    Outcome.PASS: 0,
    Outcome.SKIP: 1,
    Outcome.WARN: 2,
    Outcome.ERROR: 3,
    Outcome.FLAKY: 4,
    Outcome.FAIL: 5,
}
"""How bad an outcome is, for summarising several into one."""


class Violation(Exception):
    """The implementation broke one requirement."""

    def __init__(self, requirement: str, message: str, kind: str = "mismatch") -> None:
        super().__init__(f"{requirement}: {message}")
        self.requirement = requirement
        self.message = message
        self.kind = kind
        """``mismatch`` (something wrong arrived), ``timeout`` (nothing arrived in
        time) or ``closed`` (the connection ended first)."""


class NotApplicable(Exception):
    """The case cannot run against this target; the message says why (SKIP)."""


class KitError(Exception):
    """The kit could not run the case (ERROR); not a verdict on the implementation."""
