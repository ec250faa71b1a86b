"""The kit as a pytest plugin: ``pytest --pyargs conformance --target HOST:PORT``.

Installed with the package through the ``pytest11`` entry point, so the options
exist before pytest parses the command line; it adds nothing to other test
suites but the option group.

For implementers who already run pytest: every case becomes a pytest test
named by its case ID, so ``-k``, ``-x``, ``--junitxml`` and the rest work as
usual. A broken MUST fails the test, a broken SHOULD passes it with a
``ConformanceWarning``, and a case that cannot run here is skipped.
"""

from __future__ import annotations

import shlex

import pytest

from conformance.options import OPTIONS
from conformance.registry import Case, all_cases, in_run_order, select


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chatproto-conformance")
    group.addoption("--target", metavar="HOST:PORT",
                    help="run the server suite against the chatproto server at HOST:PORT")
    group.addoption("--client-command", metavar="COMMAND",
                    help="run the client suite against this client command (one shell-quoted "
                         "string; {host} and {port} are replaced)")
    for option in OPTIONS:
        option.add_to(group.addoption)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a slow conformance case (keepalive, idle timeout, "
                            "history retention)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    suites = []
    if config.getoption("--target"):
        suites.append("server")
    if config.getoption("--client-command"):
        suites.append("client")
    if config.getoption("--client-command") is not None:
        shlex.split(config.getoption("--client-command"))  # fail early on bad quoting
    cases = [c for suite in suites
             for c in select(all_cases(), suite=suite,  # type: ignore[arg-type]
                             requirement_patterns=config.getoption("--req"))]
    cases = in_run_order(cases)
    params = [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else [])
              for c in cases]
    if not params:
        params = [pytest.param(None, id="no-target", marks=pytest.mark.skip(
            reason="give --target HOST:PORT (server suite) or --client-command CMD "
                   "(client suite)"))]
    metafunc.parametrize("conformance_case", params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--skip-slow deselects the slow cases, so pytest leaves them out and counts them."""
    if not config.getoption("--skip-slow"):
        return
    slow: list[pytest.Item] = []
    kept: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("conformance_case") if callspec is not None else None
        (slow if isinstance(case, Case) and case.slow else kept).append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = kept
