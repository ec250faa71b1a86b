"""Which requirements the kit checks, and the few it cannot check over the network.

Every MUST of the spec is either cited by at least one case or listed in
``NOT_CHECKABLE`` with the reason a network test cannot observe it; a project
test fails otherwise. The list is short on purpose: a requirement belongs here
only when no client or server on the other end of a socket could tell.
"""

from __future__ import annotations

from chatproto_spec.requirements import Level, Requirement, load_requirements
from conformance.registry import Case, all_cases

NOT_CHECKABLE: dict[str, str] = {
    "CP-SEC-3": "certificate verification by a client needs the client launched with TLS "
                "against a kit certificate authority; the client suite speaks plain TCP",
    "CP-SEC-5": "how a server stores passwords cannot be seen from the network",
    "CP-SEC-9": "what a server writes to its logs cannot be seen from the network",
    "CP-ERR-8": "needs an internal failure, and a kit cannot make an unknown target fail "
                "on purpose (tests/test_server_resource_limits.py breaks the reference's)",
}
"""MUSTs no network test can check, with the reason."""


def cases_by_requirement(cases: list[Case] | None = None) -> dict[str, list[Case]]:
    """Every requirement of the spec, with the cases citing it (possibly none)."""
    table: dict[str, list[Case]] = {req: [] for req in load_requirements()}
    for case in all_cases() if cases is None else cases:
        for req in case.requirements:
            table[req].append(case)
    return table


def uncovered(level: Level = Level.MUST) -> list[Requirement]:
    """Requirements of ``level`` that no case cites and that are not listed as uncheckable."""
    requirements = load_requirements()
    return [requirements[req] for req, cases in cases_by_requirement().items()
            if not cases and req not in NOT_CHECKABLE
            and requirements[req].level is level and not requirements[req].retired]
