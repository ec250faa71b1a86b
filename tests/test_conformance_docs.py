"""The numbers the documentation gives about the kit are the kit's own.

The test guide's summary of a run is a block rendered from the case registry
(``conformance/guide_blocks.py``): the committed page must hold the fresh
rendering, and the site build renders it again. That a real run prints exactly
that summary is checked by tests/test_conformance_reference.py, on the run it
makes anyway. The README's count of faulty servers is that of
tests/faulty_servers.py.
"""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType, SimpleNamespace

import pytest
from faulty_servers import FAULTS
from server_harness import ROOT

from conformance.client_side import CONTRACT_LINES
from conformance.guide_blocks import conforming_run, fill, render_summary
from conformance.outcomes import Outcome
from conformance.registry import all_cases, in_run_order, select

GUIDE = ROOT / "spec" / "guides" / "test-your-implementation.md"
GUIDE_BLOCK = "<!-- generated:kit-summary oper -->"
CLOSE = "<!-- /generated:kit-summary -->"


def _load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("spec_hooks", ROOT / "spec" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_guides_run_summary_is_the_rendered_one() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert text.count(GUIDE_BLOCK) == 1, "the guide shows the run summary as a generated block"
    assert fill(text) == text, ("the guide's kit summary is stale; run python -m "
                                f"conformance.guide_blocks {GUIDE.relative_to(ROOT)}")


def test_the_rendered_summary_counts_the_registry() -> None:
    """Every server case but those needing an option not given; the 'requirements
    checked' are those cited by the cases that run."""
    server_cases = select(all_cases(), suite="server")
    runs = [c for c in server_cases if set(c.needs) <= {"oper"}]
    skipped = len(server_cases) - len(runs)
    cited = {req for case in runs for req in case.requirements}
    block = render_summary(["oper"])
    assert (f"\n{len(server_cases)} case(s) in " in block
            and f": {len(runs)} PASS, {skipped} SKIP; {len(cited)} requirement(s) checked; "
                "exit status 0\n" in block), block
    assert f"The {skipped} SKIP cases need an option" in block
    report = conforming_run("server", ["oper", "tls", "shutdown"])
    assert {r.outcome for r in report.results} == {Outcome.PASS}


def test_the_guides_client_run_example_counts_the_client_suite() -> None:
    """The example of a client run shows each case at its place in the run order, of the
    client suite's number of cases (typed by hand: a run of a faulty client)."""
    text = GUIDE.read_text(encoding="utf-8")
    order = [case.id for case in in_run_order(select(all_cases(), suite="client"))]
    shown = re.findall(r"^\[\s*(\d+)/(\d+)\] \w+\s+(client\.\S+)", text, re.MULTILINE)
    assert shown, "the guide shows no line of a client run"
    for position, total, case_id in shown:
        assert (int(position), int(total)) == (order.index(case_id) + 1, len(order)), case_id
    totals = re.findall(r"^(\d+) case\(s\) in [\d.]+ s: .*exit status 1$", text, re.MULTILINE)
    assert totals == [str(len(order))], totals


def test_the_guide_states_the_stdin_lines_the_kit_types() -> None:
    """The guide's table of the client contract lists exactly the lines the kit types."""
    text = GUIDE.read_text(encoding="utf-8")
    listed = re.findall(r"^\| `(/[a-z]+[^`]*)` \|", text, re.MULTILINE)
    assert listed == list(CONTRACT_LINES), listed


def test_an_unknown_option_in_a_block_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown option 'root'"):
        fill(f"<!-- generated:kit-summary oper,root -->\n{CLOSE}\n")


def test_the_site_build_renders_the_guides_block_again() -> None:
    """A stale block in the guide's source is replaced when the site is built."""
    stale = f"before\n{GUIDE_BLOCK}\n\n```text\n201 case(s) in 1.0 s\n```\n\n{CLOSE}\nafter\n"
    page = SimpleNamespace(file=SimpleNamespace(src_uri="guides/test-your-implementation.md"))
    built = _load_hooks().on_page_markdown(stale, page, {}, None)
    assert built == fill(stale)
    assert "201 case(s)" not in built and render_summary(["oper"]) in built


def test_readme_counts_the_faulty_servers() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    counts = re.findall(r"(\d+)\s+deliberately\s+faulty\s+servers", readme)
    assert counts == [str(len(FAULTS))], counts

