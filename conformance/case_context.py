"""What every case's context shares, in both suites: its case, its transcript, the verdicts.

``ServerContext`` and ``ClientContext`` add what their suite works with (the
target's connections, the launched client); how a case records that a
requirement held, broke or does not apply, and how it finds out that a
fundamental is broken, is the same for both and lives here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

from chatproto_spec.requirements import Level
from conformance.options import KitOptions
from conformance.outcomes import NotApplicable, Violation
from conformance.registry import Case, requirement
from conformance.transcript import Transcript


class CaseContext:
    """The context one case runs in; the runner builds one per case and closes it after."""

    one_warning_per_requirement = False
    """Keep only the first broken SHOULD of each requirement (a context whose frames
    are judged one by one would otherwise repeat a warning for every frame)."""

    def __init__(self, case: Case, options: KitOptions, broken: dict[str, str]) -> None:
        self.case = case
        self.options = options
        self.timeout = 3.0 * options.timeout_scale
        """Seconds any single wait may take before it counts as 'never'."""
        self.transcript = Transcript()
        self.warnings: list[Violation] = []
        self._broken = broken

    async def close_all(self) -> None:
        """Close every connection and process the case opened."""
        raise NotImplementedError

    # ------------------------------------------------------------ verdicts
    def check(self, condition: bool, req: str, message: str) -> None:
        """A requirement holds, or the case records it as broken.

        A broken MUST ends the case; a broken SHOULD or MAY is recorded as a
        warning and the case goes on.
        """
        if condition:
            return
        violation = Violation(req, message)
        if requirement(req).level is Level.MUST:
            raise violation
        self.warn(violation)

    def fail(self, req: str, message: str) -> None:
        self.check(False, req, message)

    def warn(self, violation: Violation) -> None:
        """Record a broken SHOULD or MAY; the case goes on."""
        if self.one_warning_per_requirement and any(
                w.requirement == violation.requirement for w in self.warnings):
            return
        self.warnings.append(violation)

    def skip(self, reason: str) -> NoReturn:
        raise NotApplicable(reason)

    @contextlib.contextmanager
    def attribute(self, req: str) -> Iterator[None]:
        """Inside this block, a wait that times out or ends in a close breaks ``req``.

        For cases where 'nothing arrived' is the very fault checked (a stalled
        room is CP-FLOW-4, not an unanswered request).
        """
        try:
            yield
        except Violation as exc:
            if exc.kind in ("timeout", "closed"):
                raise Violation(req, exc.message, exc.kind) from exc
            raise

    # ------------------------------------------------------------ fundamentals
    def mark_broken(self, fundamental: str, exc: Violation) -> None:
        """Record that something every case relies on is broken, so later cases skip."""
        self.block(fundamental, f"the {fundamental} does not work "
                                f"({self.case.id} failed on {exc.requirement})")

    def block(self, fundamental: str, reason: str) -> None:
        """Record that ``fundamental`` is broken; ``reason`` is a sentence saying so."""
        self._broken.setdefault(fundamental, reason)

    def require_working(self, fundamental: str) -> None:
        if fundamental in self._broken:
            raise NotApplicable(f"blocked: {self._broken[fundamental]}")
