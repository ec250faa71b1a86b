"""The conformance kit's own machinery: selection, outcomes, exit status, reports,
requirement coverage, independence from the reference code, the CLI and the pytest plugin.

Whether the kit's cases judge implementations correctly is shown elsewhere:
against the reference server and client (test_conformance_reference.py) and
against deliberately faulty servers (test_conformance_faults.py).
"""

from __future__ import annotations

import ast
import functools
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeServerProcess

import conformance
from chatproto import (
    HEADER_SIZE,
    LENGTH_FIELD_SIZE,
    PROTOCOL_VERSION,
    ErrorCode,
    decode_frame,
    error_name,
)
from chatproto.messages import Error, Ping
from chatproto_spec.requirements import Level, load_requirements
from conformance.case_context import CaseContext
from conformance.coverage import NOT_CHECKABLE, cases_by_requirement, uncovered
from conformance.options import KitOptions
from conformance.outcomes import KitError, NotApplicable, Outcome, Violation
from conformance.registry import Case, all_cases, compile_keyword, select, variant
from conformance.reports import html_report, json_report, junit_report
from conformance.runner import CaseResult, RunReport, _merge, run_case
from conformance.transcript import Transcript, outcome
from conformance.wire import decode, frame_bytes, length_at

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "conformance"
SHOULD_ID = next(r.id for r in load_requirements().values() if r.level is Level.SHOULD)


# ---------------------------------------------------------------- selection
def _case(case_id: str = "server.area.name", *requirements: str, slow: bool = False,
          func: Any = None) -> Case:
    async def nothing(ctx: object) -> None:
        return None
    return Case(case_id, "server", requirements or ("CP-FRAME-3",), "a title",
                func or nothing, slow)


def test_keyword_expressions_work_like_pytest_k() -> None:
    haystack = "server.framing.one_byte_per_write cp-frame-8 split"
    assert compile_keyword("framing")(haystack)
    assert compile_keyword("framing and not rooms")(haystack)
    assert not compile_keyword("rooms or history")(haystack)
    assert compile_keyword("(rooms or framing) and cp-frame-8")(haystack)
    with pytest.raises(ValueError):
        compile_keyword("framing and")
    with pytest.raises(ValueError):
        compile_keyword("(framing")


def test_select_by_requirement_pattern_keyword_and_suite() -> None:
    cases = [_case("server.framing.a", "CP-FRAME-3"), _case("server.rooms.b", "CP-ROOM-1"),
             Case("client.framing.c", "client", ("CP-FRAME-6",), "t", _case().func)]
    assert [c.id for c in select(cases, requirement_patterns=["CP-FRAME-*"])] == [
        "server.framing.a", "client.framing.c"]
    assert [c.id for c in select(cases, suite="server", keyword="framing")] == [
        "server.framing.a"]
    assert [c.id for c in select(cases, keyword="not framing")] == ["server.rooms.b"]


def test_every_case_cites_existing_requirements_and_has_a_title() -> None:
    requirements = load_requirements()
    cases = all_cases()
    assert len({c.id for c in cases}) == len(cases)
    for case in cases:
        assert case.requirements, case.id
        assert all(r in requirements for r in case.requirements), case.id
        fallback = case.id.rsplit(".", 1)[-1].replace("_", " ")
        assert case.title and case.title != fallback, f"{case.id} has no docstring title"


def test_a_case_citing_an_unknown_requirement_is_refused() -> None:
    from conformance.registry import server_case
    unknown = "CP-NOPE-" + "1"  # spelled in two parts so the tree-wide ID check ignores it
    with pytest.raises(ValueError, match=unknown):
        server_case(unknown)
    with pytest.raises(ValueError, match=unknown):
        variant("a_case", "A title.", unknown)


def test_a_parametrized_case_expands_to_one_case_per_variant() -> None:
    """Each variant is a case of its own: its ID, title and requirements, and the shared
    function called with its arguments (the rate and nick cases keep their IDs)."""
    from conformance.suites.server import nicks, rate
    cases = {c.id: c for c in all_cases()}
    expected = {
        "server.rate.message_bucket_full_at_welcome_then_limited": (
            rate.bucket_full_at_welcome_then_limited, {"filling": rate.MESSAGES}),
        "server.rate.command_bucket_full_at_welcome_then_limited": (
            rate.bucket_full_at_welcome_then_limited, {"filling": rate.COMMANDS}),
        "server.nicks.invalid_nick_syntax_refused_in_hello": (
            nicks.invalid_nicks_refused, {"via": "HELLO", "faults": nicks.SYNTAX_OR_EMPTY}),
        "server.nicks.non_ascii_nicks_refused_in_nick": (
            nicks.invalid_nicks_refused, {"via": "NICK", "faults": nicks.NON_ASCII}),
    }
    for case_id, (func, args) in expected.items():
        case = cases[case_id]
        assert isinstance(case.func, functools.partial), case_id
        assert (case.func.func, case.func.keywords) == (func, args), case_id
    assert cases["server.rate.command_bucket_full_at_welcome_then_limited"].requirements == (
        "CP-RATE-4", "CP-RATE-2", "CP-RATE-3", "CP-RATE-1")
    assert cases["server.nicks.non_ascii_nicks_refused_in_nick"].title.startswith(
        "NICK to non-ASCII nicks")
    assert not any(c.id.endswith((".bucket_full_at_welcome_then_limited",
                                  ".invalid_nicks_refused")) for c in cases.values())


# ---------------------------------------------------------------- coverage
def test_every_must_is_checked_by_a_case_or_declared_uncheckable() -> None:
    missing = uncovered(Level.MUST)
    assert not missing, "MUSTs no conformance case checks:\n" + "\n".join(
        f"{r.id}: {r.text}" for r in missing)


def test_uncheckable_list_is_small_exact_and_not_contradicted() -> None:
    requirements = load_requirements()
    table = cases_by_requirement()
    for req, reason in NOT_CHECKABLE.items():
        assert requirements[req].level is Level.MUST, req
        assert reason, req
        assert not table[req], f"{req} is declared uncheckable but cited by {table[req]}"
    assert len(NOT_CHECKABLE) <= 8


# ---------------------------------------------------------------- independence
def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def test_kit_imports_only_chatproto_schema_never_reference_code_or_state_machine() -> None:
    forbidden = re.compile(r"^(reference_server|reference_client)\b|^chatproto\._state\b"
                           r"|^chatproto\._connection\b|^chatproto\.(Connection|State)$")
    offenders = [(str(path.relative_to(ROOT)), name) for path in KIT.rglob("*.py")
                 for name in _imports(path) if forbidden.search(name)]
    assert offenders == []


def test_kit_takes_header_limits_and_error_names_from_chatproto() -> None:
    """The header layout, the frame-length bounds and error names are chatproto's exports:
    the kit types none of them again, and its raw frames agree with chatproto's decoder."""
    typed_again = re.compile(r"""[">]IHI|struct\.Struct\(|ErrorCode\("""
                             r"|^[A-Z_]*(FRAME|LIMIT)[A-Z_]* = (4096|65536)\b")
    offenders = [(str(path.relative_to(ROOT)), number, line.strip())
                 for path in KIT.rglob("*.py")
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if typed_again.search(line.split("#")[0])]
    assert offenders == []
    frame = frame_bytes(Ping.TYPE, 7, b"\x00")
    assert length_at(frame) + LENGTH_FIELD_SIZE == len(frame) == HEADER_SIZE + 1
    assert isinstance(decode_frame(frame), Ping)
    assert decode(frame_bytes(0x7ABC, 1)).fault_code is ErrorCode.UNKNOWN_TYPE
    unknown = Error.model_construct(request_id=1, code=60000, fatal=False, retry_after_ms=0,
                                    detail="")
    assert outcome(unknown) == f"ERROR {error_name(60000)}"


# ---------------------------------------------------------------- outcomes
class _FakeContext(CaseContext):
    def __init__(self, case: Case, broken: dict[str, str]) -> None:
        super().__init__(case, KitOptions(), broken)
        self.closed = False

    async def close_all(self) -> None:
        self.closed = True


async def _run(func: Any, requirements: tuple[str, ...] = ("CP-FRAME-3",)) -> CaseResult:
    contexts: list[_FakeContext] = []

    def factory(case: Case, broken: dict[str, str]) -> _FakeContext:
        contexts.append(_FakeContext(case, broken))
        return contexts[-1]
    result = await run_case(_case("server.x.y", *requirements, func=func), factory, {}, 1.0)
    assert contexts[0].closed, "the runner must close the case's connections"
    return result


async def test_outcome_follows_the_level_of_the_requirement_broken() -> None:
    async def broken_must(ctx: object) -> None:
        raise Violation("CP-FRAME-3", "no FRAME_TOO_LARGE")

    async def broken_should(ctx: object) -> None:
        raise Violation(SHOULD_ID, "not done")

    async def not_applicable(ctx: object) -> None:
        raise NotApplicable("needs --oper")

    async def kit_error(ctx: object) -> None:
        raise KitError("cannot connect")

    async def kit_bug(ctx: object) -> None:
        raise ZeroDivisionError

    async def passes(ctx: object) -> None:
        return None

    must = await _run(broken_must)
    assert must.outcome is Outcome.FAIL and must.failed_requirements == ["CP-FRAME-3"]
    assert (await _run(broken_should, (SHOULD_ID,))).outcome is Outcome.WARN
    skipped = await _run(not_applicable)
    assert skipped.outcome is Outcome.SKIP and "--oper" in skipped.detail
    assert (await _run(kit_error)).outcome is Outcome.ERROR
    bug = await _run(kit_bug)
    assert bug.outcome is Outcome.ERROR and "ZeroDivisionError" in bug.detail
    assert (await _run(passes)).outcome is Outcome.PASS


def _result(outcome: Outcome, *violations: Violation) -> CaseResult:
    return CaseResult(_case(), outcome, list(violations), runs=[outcome])


def test_a_case_whose_outcome_varies_between_runs_is_flaky() -> None:
    merged = _merge([_result(Outcome.PASS), _result(Outcome.FAIL, Violation("CP-FRAME-3", "x")),
                     _result(Outcome.PASS)])
    assert merged.outcome is Outcome.FLAKY
    assert merged.runs == [Outcome.PASS, Outcome.FAIL, Outcome.PASS]
    assert "PASS 2x" in merged.detail and "FAIL 1x" in merged.detail
    steady = _merge([_result(Outcome.PASS), _result(Outcome.PASS)])
    assert steady.outcome is Outcome.PASS


def _report(*results: CaseResult) -> RunReport:
    now = datetime.now(UTC)
    return RunReport("server", "127.0.0.1:9", list(results), now, now,
                     ["chatproto-conformance", "server", "127.0.0.1:9", "--case", "{case}"])


@pytest.mark.parametrize(("outcomes", "status"), [
    ([Outcome.PASS, Outcome.SKIP, Outcome.WARN], 0),
    ([Outcome.PASS, Outcome.FAIL], 1),
    ([Outcome.PASS, Outcome.FLAKY], 1),
    ([Outcome.PASS, Outcome.ERROR], 2),
    ([Outcome.FAIL, Outcome.ERROR], 1),
])
def test_exit_status(outcomes: list[Outcome], status: int) -> None:
    assert _report(*(_result(o) for o in outcomes)).exit_status() == status


def test_requirement_view_fails_only_the_requirement_broken() -> None:
    both = CaseResult(_case("server.a.b", "CP-FRAME-3", "CP-FRAME-4"), Outcome.FAIL,
                      [Violation("CP-FRAME-4", "x")], runs=[Outcome.FAIL])
    other = _result(Outcome.PASS)  # cites CP-FRAME-3
    uncited = CaseResult(_case("server.a.c", "CP-FRAME-7"), Outcome.FAIL,
                         [Violation("CP-KEEP-1", "no PONG")], runs=[Outcome.FAIL])
    table = _report(both, other, uncited).by_requirement()
    assert table["CP-FRAME-4"][0] is Outcome.FAIL
    assert table["CP-FRAME-3"][0] is Outcome.PASS
    assert table["CP-KEEP-1"][0] is Outcome.FAIL, "a broken rule the case does not cite"
    assert table["CP-FRAME-7"][0] is Outcome.SKIP, "not verified: its case stopped earlier"


def test_only_requirements_a_case_got_to_check_count_as_checked() -> None:
    """A requirement whose cases were all SKIP or ERROR was not checked, whatever they cite."""
    passed = _result(Outcome.PASS)  # cites CP-FRAME-3
    failed = CaseResult(_case("server.a.f", "CP-FRAME-4"), Outcome.FAIL,
                        [Violation("CP-FRAME-4", "x")], runs=[Outcome.FAIL])
    skipped = CaseResult(_case("server.a.s", "CP-FRAME-7"), Outcome.SKIP, runs=[Outcome.SKIP])
    errored = CaseResult(_case("server.a.e", "CP-FRAME-8"), Outcome.ERROR, runs=[Outcome.ERROR])
    report = _report(passed, failed, skipped, errored)
    assert report.checked_requirements() == ["CP-FRAME-3", "CP-FRAME-4"]
    assert _report(skipped, errored).checked_requirements() == []


# ---------------------------------------------------------------- reports
def _failed_report() -> RunReport:
    transcript = Transcript()
    transcript.add("alice", "sent", b"\x00\x00\x00\x06\x00\x05\x00\x00\x00\x01", "PING (request 1)")
    transcript.add("alice", "received", b"\x00\x00\x00\x06", "bad stream")
    failed = CaseResult(_case("server.framing.oversize", "CP-FRAME-3"), Outcome.FAIL,
                        [Violation("CP-FRAME-3", "no FRAME_TOO_LARGE <b>")], "",
                        0.01, transcript, [Outcome.FAIL])
    return _report(failed, _result(Outcome.PASS))


def test_json_report_names_versions_target_and_keeps_failed_frames(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    json_report.write(_failed_report(), path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["kit_version"] == conformance.__version__
    assert data["spec_version"] == PROTOCOL_VERSION
    assert data["target"] == "127.0.0.1:9"
    assert data["exit_status"] == 1
    assert data["requirements"]["CP-FRAME-3"]["outcome"] == "FAIL"
    case = data["cases"][0]
    assert case["replay"].endswith("--case server.framing.oversize")
    assert case["transcript"][0]["hex"] == "0000000600050000" "0001"
    assert case["transcript"][0]["decoded"] == "PING (request 1)"


def test_junit_report_is_valid_xml_with_failures_and_properties(tmp_path: Path) -> None:
    path = tmp_path / "r.xml"
    junit_report.write(_failed_report(), path)
    suite = ET.parse(path).getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "2"
    assert suite.get("failures") == "1"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties == {"kit_version": conformance.__version__,
                          "spec_version": str(PROTOCOL_VERSION), "target": "127.0.0.1:9"}
    failure = next(suite.iter("failure"))
    assert (failure.get("message") or "").startswith("CP-FRAME-3")
    assert "--case server.framing.oversize" in (failure.text or "")


def test_html_report_is_self_contained_and_escapes_what_it_shows(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    html_report.write(_failed_report(), path)
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "fetches a resource"
    assert "<script" not in text
    assert "127.0.0.1:9" in text and conformance.__version__ in text
    assert f"chatproto v{PROTOCOL_VERSION}" in text
    assert "no FRAME_TOO_LARGE &lt;b&gt;" in text
    assert "00 00 00 06 00 05 00 00 00 01" in text  # the frame in hex
    assert "chatproto-conformance server 127.0.0.1:9 --case server.framing.oversize" in text


# ---------------------------------------------------------------- command line
def _kit(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_list_selects_by_requirement_and_keyword() -> None:
    listed = _kit("server", "--list", "--req", "CP-KEEP-1")
    assert listed.returncode == 0
    ids = [line for line in listed.stdout.splitlines() if line.startswith("server.")]
    assert ids and all("CP-KEEP-1" in listed.stdout for _ in ids)
    expected = {c.id for c in select(all_cases(), suite="server",
                                     requirement_patterns=["CP-KEEP-1"])}
    assert {line.split()[0] for line in ids} == expected
    keyword = _kit("server", "--list", "-k", "ping and not pong_before")
    assert keyword.returncode == 0 and "ping" in keyword.stdout.lower()


def test_unreachable_target_is_a_kit_error_with_exit_status_2() -> None:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on a port we bound but never listened on.
    result = _kit("server", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert "cannot connect" in result.stderr and "Traceback" not in result.stderr


def test_requirements_subcommand_lists_cases_and_uncheckable_reasons() -> None:
    result = _kit("requirements")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == len(load_requirements())
    for req, reason in NOT_CHECKABLE.items():
        assert any(line.startswith(req) and reason in line for line in lines)


async def test_pytest_plugin_runs_the_kit_against_a_server(
        make_server_process: MakeServerProcess, tmp_path: Path) -> None:
    server = await make_server_process().start()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "conformance", "-p", "no:cacheprovider",
         "--target", f"127.0.0.1:{server.port}", "--req", "CP-KEEP-1", "-q",
         f"--junitxml={tmp_path / 'junit.xml'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b\d+ passed\b", result.stdout), result.stdout
    names = [c.get("name") or "" for c in ET.parse(tmp_path / "junit.xml").iter("testcase")]
    assert any("server.basics.ping_answered" in name for name in names)
