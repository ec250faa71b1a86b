"""The README's Python example really is a working client of the reference server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def _start_server(data_dir: Path) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "reference_server", "--port", "0", "--data-dir", str(data_dir)],
        stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:  # the server logs its bound port first thing
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            return process, int(match.group(1))
    process.kill()
    raise AssertionError("the server exited without listening")


@pytest.mark.timeout(60)
def test_the_connecting_example_chats_with_the_server(tmp_path: Path) -> None:
    example = next(block for block in _python_blocks() if "create_connection" in block)
    process, port = _start_server(tmp_path / "data")
    try:
        script = tmp_path / "client.py"
        script.write_text(example.replace("7878", str(port)), encoding="utf-8")
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                timeout=30)
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert result.returncode == 0, result.stderr
    # WELCOME, then the JOIN's ROOM_INFO and OK, then the SEND_ROOM's OK with seq 1.
    assert "casemapping='ascii'" in result.stdout
    assert "room='#general'" in result.stdout
    assert re.search(r"request_id=3 msg_id=\d+ seq=1 ", result.stdout)
    assert process.returncode == 0
