"""``chatproto`` (the summary command) prints what the schema declares."""

from __future__ import annotations

import subprocess
import sys

from chatproto import ERROR_REGISTRY, MESSAGE_TYPES


def test_summary_lists_every_message_type_and_error_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatproto"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for cls in MESSAGE_TYPES.values():
        assert f"{cls.TYPE:#06x}  {cls.NAME}" in result.stdout
    for info in ERROR_REGISTRY.values():
        assert info.name in result.stdout
