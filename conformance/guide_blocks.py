"""What the test guide shows of a kit run, rendered from the case registry.

The guide (``spec/guides/test-your-implementation.md``) shows the summary a
run against the reference server ends with. Typed by hand, its numbers went
stale whenever a case was added, so the page marks the summary as a block::

    <!-- generated:kit-summary oper -->
    ...rendered here...
    <!-- /generated:kit-summary -->

The argument names the options the run gave the kit (``oper``, ``tls``,
``shutdown``, comma-separated). The site build fills the block again
(``spec/hooks.py``), a project test fails when the committed page differs
(``python -m conformance.guide_blocks PAGE`` rewrites it), and the run against
the reference server (``tests/test_conformance_reference.py``) checks that the
rendered summary is what a real run prints.

The rendering relies on what the kit promises of an implementation that breaks
no rule: every case passes, except those that need an option the kit was not
given, which are SKIP.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conformance.outcomes import Outcome
from conformance.registry import Case, Need, Suite, all_cases, in_run_order, select
from conformance.reports.terminal import summary_line
from conformance.runner import CaseResult, RunReport

OPTION_OF_NEED: dict[Need, str] = {
    "oper": "--oper",
    "tls": "--tls",
    "shutdown": "--shutdown-command",
}
"""The kit option that gives what a case needs."""

EXAMPLE_RUN_S = 33.1
"""The run time the example shows: a real run of the server suite on two busy cores.
Only the time is not rendered from the registry; the guide says it varies."""

_BLOCK = re.compile(r"(<!-- generated:kit-summary(?: ([a-z,]+))? -->\n)(.*?)"
                    r"(^<!-- /generated:kit-summary -->)", re.DOTALL | re.MULTILINE)


def _missing_option(case: Case, given: set[Need]) -> str | None:
    """The option a case needs that the kit was not given, if any."""
    return next((OPTION_OF_NEED[need] for need in case.needs if need not in given), None)


def conforming_run(suite: Suite, given: Iterable[Need]) -> RunReport:
    """The report of a run of the whole ``suite`` against an implementation that
    breaks no rule, the kit given the options for ``given``."""
    options = set(given)
    results = []
    for case in in_run_order(select(all_cases(), suite=suite)):
        option = _missing_option(case, options)
        results.append(CaseResult(case, Outcome.PASS) if option is None
                       else CaseResult(case, Outcome.SKIP, detail=f"needs {option}"))
    finished = datetime(2000, 1, 1, tzinfo=UTC)
    return RunReport(suite, "example", results, finished - timedelta(seconds=EXAMPLE_RUN_S),
                     finished, [])


def render_summary(given: Iterable[Need]) -> str:
    """The block: the summary line of a server-suite run, and what its SKIPs need."""
    options = set(given)
    lines = ["```text", summary_line(conforming_run("server", options)), "```"]
    missing = [option for case in select(all_cases(), suite="server")
               if (option := _missing_option(case, options)) is not None]
    if missing:
        parts = [f"{missing.count(option)} `{option}`" for option in OPTION_OF_NEED.values()
                 if option in missing]
        listing = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        lines += ["", f"The {len(missing)} SKIP cases need an option that run did not give "
                      f"the kit: {listing}."]
    return "\n".join(lines)


def _needs(arg: str | None) -> list[Need]:
    words = {word for word in (arg or "").split(",") if word}
    unknown = sorted(words - set(OPTION_OF_NEED))
    if unknown:
        raise ValueError(f"kit-summary: unknown option {unknown[0]!r}; "
                         f"the options are {', '.join(OPTION_OF_NEED)}")
    return [need for need in OPTION_OF_NEED if need in words]


def fill(text: str) -> str:
    """``text`` with every kit-summary block rendered again (the markers are kept)."""
    def block(match: re.Match[str]) -> str:
        return f"{match[1]}\n{render_summary(_needs(match[2]))}\n\n{match[4]}"
    return _BLOCK.sub(block, text)


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the kit-summary blocks of the pages given."""
    for name in sys.argv[1:] if argv is None else argv:
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        if fill(text) != text:
            path.write_text(fill(text), encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
