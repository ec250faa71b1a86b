"""Running cases: one at a time, each with fresh connections, bounded in time.

The runner turns what a case raised into an outcome (a broken MUST is FAIL, a
broken SHOULD is WARN), repeats the selection when asked and marks cases whose
verdict changed between runs as FLAKY (a case that ends the target runs once,
after the rounds), and summarises the run per requirement.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import conformance
from chatproto import PROTOCOL_VERSION
from chatproto_spec.requirements import Level, load_requirements
from conformance.case_context import CaseContext
from conformance.outcomes import SEVERITY, KitError, NotApplicable, Outcome, Violation
from conformance.registry import Case, requirement
from conformance.transcript import Transcript

CASE_TIME_LIMIT_S = 60.0
SLOW_CASE_TIME_LIMIT_S = 300.0


ContextFactory = Callable[[Case, dict[str, str]], CaseContext]
"""Builds a case's context; the dict holds the fundamentals found broken so far."""


@dataclass
class CaseResult:
    case: Case
    outcome: Outcome
    violations: list[Violation] = field(default_factory=list)
    """The broken requirements: the one that ended the case first, then warnings."""
    detail: str = ""
    """Why a case was skipped, or what went wrong in the kit."""
    duration_s: float = 0.0
    transcript: Transcript = field(default_factory=Transcript)
    runs: list[Outcome] = field(default_factory=list)
    """With --repeat: the outcome of each run."""

    @property
    def failed_requirements(self) -> list[str]:
        return [v.requirement for v in self.violations]


@dataclass
class RunReport:
    suite: str
    target: str
    results: list[CaseResult]
    started: datetime
    finished: datetime
    replay_command: list[str]
    """The command line that selects a single case, with ``{case}`` for its ID."""
    deselected: list[str] = field(default_factory=list)
    """IDs of the cases the selection left out without running them (--skip-slow)."""
    blocked: dict[str, str] = field(default_factory=dict)
    """What every case builds on (``launch``, ``handshake``, ``ping``) that was found
    broken, with why; the cases needing it were SKIP."""
    kit_version: str = conformance.__version__
    spec_version: int = PROTOCOL_VERSION

    def replay(self, case_id: str) -> str:
        import shlex
        return shlex.join(part.replace("{case}", case_id) for part in self.replay_command)

    def counts(self) -> dict[Outcome, int]:
        counts = {outcome: 0 for outcome in Outcome}
        for result in self.results:
            counts[result.outcome] += 1
        return counts

    def exit_status(self) -> int:
        """0: every MUST checked held; 1: a MUST failed (or flaked); 2: the kit hit an error."""
        counts = self.counts()
        if counts[Outcome.FAIL] or counts[Outcome.FLAKY]:
            return 1
        if counts[Outcome.ERROR]:
            return 2
        return 0

    def checked_requirements(self) -> list[str]:
        """The requirements some case checked: held (PASS), broken, or FLAKY; not the
        ones whose cases were all SKIP or ERROR."""
        return [req for req, (outcome, _) in self.by_requirement().items()
                if outcome not in (Outcome.SKIP, Outcome.ERROR)]

    def by_requirement(self) -> dict[str, tuple[Outcome, list[CaseResult]]]:
        """Each requirement the selected cases cite, its outcome, and the cases citing it.

        A requirement FAILs (or WARNs) when a case found it broken; it PASSes
        when a case citing it passed; otherwise it takes the outcome of its
        cases (SKIP when they were skipped or stopped on another requirement).
        """
        table: dict[str, tuple[Outcome, list[CaseResult]]] = {}
        order = list(load_requirements())
        # A case may find a rule broken that it does not cite (a helper's wait,
        # a bad frame); that rule is listed too.
        cited = sorted({r for result in self.results
                        for r in (*result.case.requirements, *result.failed_requirements)},
                       key=order.index)
        for req in cited:
            results = [r for r in self.results
                       if req in r.case.requirements or req in r.failed_requirements]
            broken = [r for r in results if req in r.failed_requirements]
            if any(r.outcome is Outcome.FLAKY for r in broken):
                outcome = Outcome.FLAKY
            elif broken:
                level = requirement(req).level
                outcome = Outcome.FAIL if level is Level.MUST else Outcome.WARN
            elif any(r.outcome in (Outcome.PASS, Outcome.WARN) for r in results):
                outcome = Outcome.PASS
            elif any(r.outcome is Outcome.ERROR for r in results):
                outcome = Outcome.ERROR
            else:
                outcome = Outcome.SKIP
            table[req] = (outcome, results)
        return table


def _outcome_of(violation: Violation) -> Outcome:
    level = requirement(violation.requirement).level
    return Outcome.FAIL if level is Level.MUST else Outcome.WARN


async def run_case(case: Case, make_context: ContextFactory, broken: dict[str, str],
                   timeout_scale: float) -> CaseResult:
    started = time.monotonic()
    ctx = make_context(case, broken)
    result = CaseResult(case, Outcome.PASS, transcript=ctx.transcript)
    limit = (SLOW_CASE_TIME_LIMIT_S if case.slow else CASE_TIME_LIMIT_S) * timeout_scale
    try:
        await asyncio.wait_for(case.func(ctx), limit)
    except Violation as exc:
        result.violations.append(exc)
        result.outcome = _outcome_of(exc)
    except NotApplicable as exc:
        result.outcome = Outcome.SKIP
        result.detail = str(exc)
    except KitError as exc:
        result.outcome = Outcome.ERROR
        result.detail = str(exc)
    except TimeoutError:
        result.outcome = Outcome.ERROR
        result.detail = f"the case did not finish within its time limit of {limit:.0f} s"
    except Exception:
        result.outcome = Outcome.ERROR
        result.detail = "the kit raised an exception:\n" + traceback.format_exc()
    finally:
        await ctx.close_all()
    result.violations.extend(ctx.warnings)
    if result.outcome is Outcome.PASS and ctx.warnings:
        result.outcome = Outcome.WARN
    result.duration_s = time.monotonic() - started
    result.runs = [result.outcome]
    return result


def _merge(runs: list[CaseResult]) -> CaseResult:
    """One result for a case run several times.

    FLAKY says the implementation answered differently, so only the runs that
    reached a verdict count for it: a run in ERROR (the kit could not run it,
    as when the target is gone) decides nothing, and makes the case ERROR
    unless another run found a MUST broken.
    """
    outcomes = [r.outcome for r in runs]
    worst = max(runs, key=lambda r: SEVERITY[r.outcome])
    merged = CaseResult(worst.case, worst.outcome, worst.violations, worst.detail,
                        sum(r.duration_s for r in runs) / len(runs), worst.transcript, outcomes)
    if len(set(outcomes)) == 1:
        return merged
    verdicts = {o for o in outcomes if o is not Outcome.ERROR}
    if len(verdicts) > 1:
        merged.outcome = Outcome.FLAKY
    elif verdicts != {Outcome.FAIL}:
        errored = next(r for r in runs if r.outcome is Outcome.ERROR)
        merged = CaseResult(errored.case, Outcome.ERROR, [], errored.detail,
                            merged.duration_s, errored.transcript, outcomes)
    tally = ", ".join(f"{o.value} {outcomes.count(o)}x" for o in Outcome if o in outcomes)
    merged.detail = (f"outcome varied over {len(runs)} runs: {tally}"
                     + (f"\n{merged.detail}" if merged.detail else ""))
    return merged


def runs_once_after_the_rounds(case: Case) -> bool:
    """A case that ends the target (the shutdown case) runs once, after every round."""
    return "shutdown" in case.needs


async def run_cases(
    cases: list[Case],
    make_context: ContextFactory,
    *,
    suite: str,
    target: str,
    replay_command: list[str],
    repeat: int = 1,
    timeout_scale: float = 1.0,
    deselected: list[str] | None = None,
    progress: Callable[[CaseResult, int, int], None] | None = None,
) -> RunReport:
    started = datetime.now(UTC)
    runs: dict[str, list[CaseResult]] = {case.id: [] for case in cases}
    last = [case for case in cases if runs_once_after_the_rounds(case)]
    repeated = [case for case in cases if case not in last]
    rounds = [repeated] * repeat
    if last:
        # The last round keeps what the earlier rounds found broken: a shutdown
        # case on a server without a working handshake is blocked like any other.
        rounds.append(last)
    total = len(repeated) * repeat + len(last)
    done = 0
    blocked: dict[str, str] = {}
    broken: dict[str, str] = {}
    for selection in rounds:
        if selection is not last:
            broken = {}
        for case in selection:
            result = await run_case(case, make_context, broken, timeout_scale)
            runs[case.id].append(result)
            done += 1
            if progress is not None:
                progress(result, done, total)
        for fundamental, reason in broken.items():
            blocked.setdefault(fundamental, reason)
    results = [_merge(runs[case.id]) for case in cases]
    return RunReport(suite, target, results, started, datetime.now(UTC), replay_command,
                     deselected=list(deselected or []), blocked=blocked)
