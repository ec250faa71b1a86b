"""``python -m conformance``: the same as ``chatproto-conformance``."""

from conformance.cli import main

raise SystemExit(main())
