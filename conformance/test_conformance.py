"""Every conformance case as one pytest test (see ``conformance/pytest_plugin.py``)."""

from __future__ import annotations

import asyncio
import shlex
import warnings

import pytest

from conformance.case_context import CaseContext
from conformance.cli import _target
from conformance.options import OPTIONS, KitOptions
from conformance.outcomes import Outcome
from conformance.registry import Case
from conformance.runner import run_case
from conformance.server_side import ServerContext


class ConformanceWarning(UserWarning):
    """A SHOULD of the spec was broken."""


@pytest.fixture(scope="session")
def broken_fundamentals() -> dict[str, str]:
    """Fundamentals (handshake, PING) found broken so far; later cases then skip."""
    return {}


def _options(config: pytest.Config) -> KitOptions:
    try:
        return KitOptions.from_values({o.dest: config.getoption(o.dest) for o in OPTIONS})
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def test_conformance(conformance_case: Case, request: pytest.FixtureRequest,
                     broken_fundamentals: dict[str, str]) -> None:
    config = request.config
    options = _options(config)
    if conformance_case.suite == "server":
        host, port = _target(config.getoption("--target"))

        def factory(case: Case, broken: dict[str, str]) -> CaseContext:
            return ServerContext(case, host, port, options, broken)
    else:
        from conformance.client_side import ClientContext

        command = shlex.split(config.getoption("--client-command"))

        def factory(case: Case, broken: dict[str, str]) -> CaseContext:
            return ClientContext(case, command, options, broken)

    result = asyncio.run(run_case(conformance_case, factory, broken_fundamentals,
                                  options.timeout_scale))
    messages = "\n".join(f"{v.requirement}: {v.message}" for v in result.violations)
    if result.outcome is Outcome.FAIL:
        pytest.fail(messages, pytrace=False)
    if result.outcome is Outcome.ERROR:
        pytest.fail(f"kit error: {result.detail}", pytrace=False)
    if result.outcome is Outcome.SKIP:
        pytest.skip(result.detail)
    if result.outcome is Outcome.WARN:
        warnings.warn(ConformanceWarning(messages), stacklevel=1)
