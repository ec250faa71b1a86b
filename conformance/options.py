"""What the user told the kit about the implementation under test."""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass
class KitOptions:
    """What the user told the kit about the target."""

    timeout_scale: float = 1.0
    oper: tuple[str, str] | None = None
    """Operator credentials (name, password) configured on the target server."""
    flood_budget: int = 32 * 1024 * 1024
    """Bytes the slow-reader case may direct at one client before judging CP-FLOW-1."""
    tls: bool = False
    """The target serves TLS: every connection starts with the TLS handshake."""
    cafile: str | None = None
    """CA certificates to verify the target with; None accepts any certificate."""
    shutdown_command: list[str] | None = None
    """A command that shuts the target server down in an orderly way (CP-CLOSE-7);
    the case that runs it runs last."""

    def tls_context(self) -> ssl.SSLContext:
        """The client TLS settings the kit uses (spec floor: TLS 1.2)."""
        context = ssl.create_default_context(cafile=self.cafile)
        if self.cafile is None:
            # The kit tests the protocol, not the deployment's certificates.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
