"""The terminal report: one line per case as it finishes, then a summary."""

from __future__ import annotations

from typing import TextIO

import conformance
from chatproto import PROTOCOL_VERSION
from conformance.outcomes import Outcome
from conformance.runner import CaseResult, RunReport

_SHOWN = (Outcome.FAIL, Outcome.WARN, Outcome.ERROR, Outcome.FLAKY)


class TerminalReporter:
    def __init__(self, out: TextIO, *, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet

    def header(self, suite: str, target: str, count: int, deselected: int = 0) -> None:
        print(f"chatproto-conformance {conformance.__version__}, spec v{PROTOCOL_VERSION}: "
              f"{suite} suite, {cases_phrase(count, deselected)}, target {target}",
              file=self.out, flush=True)

    def progress(self, result: CaseResult, done: int, total: int) -> None:
        if self.quiet and result.outcome not in _SHOWN:
            return
        width = len(str(total))
        line = (f"[{done:>{width}}/{total}] {result.outcome.value:<5} {result.case.id} "
                f"({', '.join(result.case.requirements)}) {result.duration_s * 1000:.0f} ms")
        if result.outcome is Outcome.SKIP and result.detail:
            line += f": {result.detail.splitlines()[0]}"
        print(line, file=self.out, flush=True)
        if result.outcome in _SHOWN:
            for violation in result.violations:
                print(f"        {violation.requirement}: {violation.message}", file=self.out)
            if result.detail:
                for detail_line in result.detail.splitlines()[-12:]:
                    print(f"        {detail_line}", file=self.out)

    def summary(self, report: RunReport) -> None:
        print(file=self.out)
        problems = [r for r in report.results if r.outcome in _SHOWN]
        if problems:
            print("Cases that need attention (replay one with the command shown):",
                  file=self.out)
            for result in problems:
                broken = ", ".join(dict.fromkeys(result.failed_requirements)) or "-"
                print(f"  {result.outcome.value:<5} {result.case.id}  [{broken}]", file=self.out)
                print(f"        {report.replay(result.case.id)}", file=self.out)
            print(file=self.out)
        table = report.by_requirement()
        broken_reqs = [req for req, (outcome, _) in table.items()
                       if outcome in (Outcome.FAIL, Outcome.FLAKY)]
        warned_reqs = [req for req, (outcome, _) in table.items() if outcome is Outcome.WARN]
        if broken_reqs:
            print(f"MUST requirements broken: {', '.join(broken_reqs)}", file=self.out)
        if warned_reqs:
            print(f"SHOULD requirements broken: {', '.join(warned_reqs)}", file=self.out)
        for reason in report.blocked.values():
            print(f"Blocked: {reason}; the cases that build on it were SKIP", file=self.out)
        print(summary_line(report), file=self.out, flush=True)


def cases_phrase(count: int, deselected: int) -> str:
    """``203 case(s)``, and how many --skip-slow left out."""
    left_out = f" ({deselected} slow case(s) deselected by --skip-slow)" if deselected else ""
    return f"{count} case(s){left_out}"


def summary_line(report: RunReport) -> str:
    """The last line of a run: cases, outcomes, requirements checked, exit status."""
    counts = report.counts()
    tally = ", ".join(f"{counts[o]} {o.value}" for o in Outcome if counts[o])
    seconds = (report.finished - report.started).total_seconds()
    return (f"{cases_phrase(len(report.results), len(report.deselected))} in {seconds:.1f} s: "
            f"{tally}; {len(report.checked_requirements())} requirement(s) checked; "
            f"exit status {report.exit_status()}")
