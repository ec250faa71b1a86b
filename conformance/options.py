"""What the user tells the kit, declared once for the command line and the pytest plugin.

``OPTIONS`` lists every option both front ends share, with its argparse
settings; ``conformance.cli`` adds them to its parsers and
``conformance.pytest_plugin`` to pytest's, so a flag, its default and its help
text are written here only. ``KitOptions.from_values`` turns what either
parsed into what the cases read.
"""

from __future__ import annotations

import shlex
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_FLOOD_BUDGET = 32 * 1024 * 1024

Group = Literal["selecting cases", "running", "the server"]


@dataclass(frozen=True)
class Option:
    """One option of the kit, in argparse's terms (pytest's ``addoption`` takes the same)."""

    flag: str
    help: str
    group: Group
    """Where ``--help`` lists it; "the server" options exist for the server suite only."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """argparse keywords: action, type, default, metavar."""

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def default(self) -> Any:
        if "default" in self.settings:
            return self.settings["default"]
        return False if self.settings.get("action") == "store_true" else None

    def add_to(self, add: Callable[..., object]) -> None:
        """Declare this option with ``add`` (``add_argument`` or pytest's ``addoption``)."""
        add(self.flag, help=self.help, **self.settings)


OPTIONS = (
    Option("--req", "only cases checking a requirement matching PATTERN, e.g. 'CP-FRAME-*' "
           "(repeatable)", "selecting cases",
           {"action": "append", "default": [], "metavar": "PATTERN"}),
    Option("--skip-slow", "leave out the slow cases, which --list marks (keepalive, idle "
           "timeout, history retention): not run, not reported, counted as deselected",
           "selecting cases", {"action": "store_true"}),
    Option("--timeout-scale", "multiply every wait by FACTOR, for slow implementations "
           "(default 1: 3 s per wait)", "running",
           {"type": float, "default": 1.0, "metavar": "FACTOR"}),
    Option("--oper", "operator credentials configured on the server; without them the "
           "operator cases are skipped", "the server", {"metavar": "NAME:PASSWORD"}),
    Option("--tls", "the server serves TLS; the TLS cases run only with this", "the server",
           {"action": "store_true"}),
    Option("--cafile", "verify the server's certificate with these CA certificates "
           "(implies --tls; without it any certificate is accepted)", "the server",
           {"metavar": "PEM"}),
    Option("--shutdown-command", "a shell-quoted command that shuts the server down in an "
           "orderly way, e.g. 'kill -TERM 1234'; the shutdown case (CP-CLOSE-7) runs it last, "
           "once even with --repeat, and is skipped without it", "the server", {"metavar": "CMD"}),
    Option("--flood-budget", "bytes the slow-reader case may queue to one client before "
           "deciding that the server does not bound its output queue (default 32 MiB)",
           "the server", {"type": int, "default": DEFAULT_FLOOD_BUDGET, "metavar": "BYTES"}),
)


@dataclass
class KitOptions:
    """What the user told the kit about the target."""

    timeout_scale: float = 1.0
    oper: tuple[str, str] | None = None
    """Operator credentials (name, password) configured on the target server."""
    flood_budget: int = DEFAULT_FLOOD_BUDGET
    """Bytes the slow-reader case may direct at one client before judging CP-FLOW-1."""
    tls: bool = False
    """The target serves TLS: every connection starts with the TLS handshake."""
    cafile: str | None = None
    """CA certificates to verify the target with; None accepts any certificate."""
    shutdown_command: list[str] | None = None
    """A command that shuts the target server down in an orderly way (CP-CLOSE-7);
    the case that runs it runs last."""

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> KitOptions:
        """The options from parsed ``OPTIONS`` values by ``dest`` (a missing one: its default).

        Raises ValueError, saying which option is wrong, for --oper without a colon.
        """
        value = {o.dest: values.get(o.dest, o.default) for o in OPTIONS}
        oper: tuple[str, str] | None = None
        if value["oper"]:
            name, sep, password = value["oper"].partition(":")
            if not sep or not name:
                raise ValueError("--oper wants NAME:PASSWORD")
            oper = (name, password)
        shutdown = value["shutdown_command"]
        return cls(timeout_scale=value["timeout_scale"], oper=oper,
                   flood_budget=value["flood_budget"],
                   tls=bool(value["tls"] or value["cafile"]), cafile=value["cafile"],
                   shutdown_command=shlex.split(shutdown) if shutdown else None)

    def tls_context(self) -> ssl.SSLContext:
        """The client TLS settings the kit uses (spec floor: TLS 1.2)."""
        context = ssl.create_default_context(cafile=self.cafile)
        if self.cafile is None:
            # The kit tests the protocol, not the deployment's certificates.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
