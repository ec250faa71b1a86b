"""The site's implementation guide: its client really chats, and its page shows all of it.

``spec/guides/minimal_client.py`` is the code of ``spec/guides/implement.md``, which
includes it section by section (pymdownx.snippets, ``--8<-- "guides/minimal_client.py:NAME"``).
These tests run that very file: two copies of it chat through the reference server
(a process), it encodes and decodes the spec's test vectors, its hand-written tables
agree with the schema, it passes the kit's client suite (the page says so), and the
page includes every section of it, so what readers see is what runs here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import MakeServerProcess
from server_harness import HOST

from chatproto import MESSAGE_TYPES, ErrorCode, Sender

ROOT = Path(__file__).resolve().parent.parent
GUIDES = ROOT / "spec" / "guides"
CLIENT = GUIDES / "minimal_client.py"
PAGE = GUIDES / "implement.md"
VECTORS = ROOT / "spec" / "vectors" / "messages.json"

ROOM = "#walkthrough"
TEXT = "hello from the walkthrough"
PROCESS_TIMEOUT_S = 30.0

SECTION_MARKER = re.compile(r"^# --8<-- \[(start|end):([a-z][-_0-9a-z]*)\]$")
PAGE_INCLUDE = re.compile(r'--8<-- "guides/minimal_client\.py(?::([a-z][-_0-9a-z]*))?"')


def _load_client() -> ModuleType:
    spec = importlib.util.spec_from_file_location("minimal_client", CLIENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


client = _load_client()


# ------------------------------------------------------- two clients, one server


class ClientProcess:
    """``minimal_client.py`` as a child process; threads collect its output lines."""

    def __init__(self, port: int, nick: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CLIENT), HOST, str(port), nick, ROOM, *args],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._collect, args=(self.proc.stdout, self.stdout),
                             daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stderr, self.stderr),
                             daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        stream.close()
        with self._changed:  # end of output: the process is exiting
            self._changed.notify_all()

    def output(self) -> str:
        return ("stdout:\n" + "\n".join(self.stdout) + "\nstderr:\n" + "\n".join(self.stderr))

    async def wait_for_line(self, prefix: str, timeout: float) -> str:
        """The first stdout line starting with ``prefix``; fails at the deadline or exit."""

        def find() -> str | None:
            return next((line for line in self.stdout if line.startswith(prefix)), None)

        def wait() -> str | None:
            deadline = time.monotonic() + timeout
            with self._changed:
                while (found := find()) is None and not self._output_ended():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                return found

        found = await asyncio.to_thread(wait)
        if found is None:
            pytest.fail(f"no line starting {prefix!r} within {timeout} s "
                        f"(exit status {self.proc.poll()}); {self.output()}")
        return found

    def _output_ended(self) -> bool:
        return not any(reader.is_alive() for reader in self._readers)

    async def wait(self, timeout: float) -> int:
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the client was still running after {timeout} s; {self.output()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for reader in self._readers:
            reader.join(5)


async def test_receiver_prints_the_message_the_sender_sends(
        make_server_process: MakeServerProcess) -> None:
    """Bob (started first) joins and waits for one message; Alice joins and sends one;
    Bob prints it with its room, seq and sender, and both leave with QUIT/BYE, status 0."""
    server = await make_server_process().start()
    receiver = ClientProcess(server.port, "bob", "--count", "1",
                             "--wait", str(PROCESS_TIMEOUT_S))
    sender: ClientProcess | None = None
    try:
        # After the JOIN's OK, every later message of the room reaches Bob (CP-HIST-6).
        await receiver.wait_for_line(f"joined {ROOM}:", timeout=PROCESS_TIMEOUT_S)
        sender = ClientProcess(server.port, "alice", TEXT, "--wait", "0")
        sender_status = await sender.wait(PROCESS_TIMEOUT_S)
        receiver_status = await receiver.wait(PROCESS_TIMEOUT_S)
    finally:
        receiver.close()
        if sender is not None:
            sender.close()

    assert sender_status == 0, sender.output()
    assert sender.stdout[1:] == [f"joined {ROOM}: member_count 2, last_seq 0",
                                 f"sent to {ROOM}: seq 1, msg_id 1", "bye: goodbye"], \
        sender.output()
    assert receiver_status == 0, receiver.output()
    assert f"{ROOM} [1] <alice> {TEXT}" in receiver.stdout, receiver.output()
    assert receiver.stdout[-1].startswith("bye: "), receiver.output()
    assert not sender.stderr and not receiver.stderr, sender.output() + receiver.output()


async def test_refused_join_still_quits_and_exits_1(
        make_server_process: MakeServerProcess) -> None:
    """A non-fatal ERROR (INVALID_ROOM_NAME) is printed; the client still QUITs, status 1."""
    server = await make_server_process().start()
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(CLIENT), HOST, str(server.port), "carol",
                         "no-hash", "--wait", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ERROR 300 INVALID_ROOM_NAME" in result.stderr
    assert result.stdout.splitlines()[-1] == "bye: goodbye"


# ---------------------------------------------------------- the page and the file


def _file_sections() -> list[str]:
    """The file's section names in order, checking that every line of code is in one."""
    names: list[str] = []
    current: str | None = None
    for number, line in enumerate(CLIENT.read_text(encoding="utf-8").splitlines(), 1):
        marker = SECTION_MARKER.match(line)
        if marker is None:
            assert current is not None or not line.strip(), \
                f"minimal_client.py:{number} is in no section, so the page cannot show it"
            assert "--8<--" not in line, f"minimal_client.py:{number}: a malformed marker"
            continue
        kind, name = marker.groups()
        if kind == "start":
            assert current is None, f"minimal_client.py:{number}: {name} starts inside {current}"
            assert name not in names, f"minimal_client.py:{number}: section {name} twice"
            names.append(name)
            current = name
        else:
            assert current == name, f"minimal_client.py:{number}: end of {name}, not {current}"
            current = None
    assert current is None, f"section {current} never ends"
    return names


def test_the_page_includes_every_section_of_the_file() -> None:
    """implement.md shows each section of minimal_client.py once, in file order, then the
    whole file; it names no section the file lacks (mkdocs would fail on that too)."""
    sections = _file_sections()
    included = PAGE_INCLUDE.findall(PAGE.read_text(encoding="utf-8"))
    assert sections, "minimal_client.py has no sections"
    assert [name for name in included if name] == sections
    assert included.count("") == 1, "the page should also show the whole file once"


def test_each_listing_names_its_source_for_readers_of_the_markdown() -> None:
    """Read as Markdown, an include is a marker line: the text above it says where the
    code is, with a link that works in the repository (the file is beside the page)."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        include = PAGE_INCLUDE.search(line)
        if include is None:
            continue
        before = " ".join(lines[max(number - 5, 0):number])
        assert "[`minimal_client.py`](minimal_client.py)" in before, line
        if include.group(1):
            assert f"the `{include.group(1)}` section" in before, line
            assert f"`[start:{include.group(1)}]`" in before, line
    assert (PAGE.parent / "minimal_client.py").is_file()


# ------------------------------------------------ vectors, registries, framing


def _vector_cases(name: str) -> list[dict[str, Any]]:
    """The cases of message ``name``, with u64 values as ints (the file has them as strings)."""
    messages = json.loads(VECTORS.read_text(encoding="utf-8"))["messages"]
    entry = next(m for m in messages if m["name"] == name)
    u64 = {f["name"] for f in entry["fields"] if f["wire"] == "u64"}
    cases: list[dict[str, Any]] = [
        case | {"fields": {key: int(value) if key in u64 else value
                           for key, value in case["fields"].items()}}
        for case in entry["cases"]]
    return cases


ENCODERS: dict[str, Callable[..., bytes]] = {
    "HELLO": client.hello_body,
    "JOIN": client.join_body,
    "SEND_ROOM": client.send_room_body,
    "PONG": client.pong_body,
    "QUIT": client.quit_body,
    "ERROR": client.error_body,
}

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "WELCOME": client.decode_welcome,
    "OK": client.decode_ok,
    "ERROR": client.decode_error,
    "ROOM_INFO": client.decode_room_info,
    "HISTORY_GAP": client.decode_history_gap,
    "ROOM_MESSAGE": client.decode_room_message,
    "PING": client.decode_token,
    "PONG": client.decode_token,
    "NOTICE": client.decode_notice,
    "BYE": client.decode_reason,
}


def _plain(value: Any) -> Any:
    """A decoded value in the vectors' notation: dataclasses as dicts, bytes as hex."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: _plain(item) for key, item in dataclasses.asdict(value).items()}
    if isinstance(value, bytes):
        return value.hex()
    return value


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_requests_encode_to_the_vectors(name: str) -> None:
    for case in _vector_cases(name):
        fields = {key: bytes.fromhex(value) if key == "token" else value
                  for key, value in case["fields"].items()}
        wire = client.encode_frame(getattr(client, name), case["request_id"],
                                   ENCODERS[name](**fields))
        assert wire.hex() == case["hex"], f"{name} {case['case']}"


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_server_frames_decode_from_the_vectors_however_split(name: str) -> None:
    """CP-FRAME-8: all cases in one write, one byte per write, and split at every offset."""
    cases = _vector_cases(name)
    stream = b"".join(bytes.fromhex(case["hex"]) for case in cases)
    expected = [(getattr(client, name), case["request_id"], case["fields"]) for case in cases]

    def decoded(chunks: list[bytes]) -> list[tuple[int, int, Any]]:
        frames = client.FrameBuffer()
        out = []
        for chunk in chunks:
            frames.feed(chunk)
            while (frame := frames.next_frame()) is not None:
                value = _plain(DECODERS[name](frame.body))
                if not isinstance(value, dict):  # a one-field message
                    value = dict(zip(cases[0]["fields"], [value], strict=True))
                out.append((frame.type, frame.request_id, value))
        assert not frames.holds_partial_frame
        return out

    assert decoded([stream]) == expected
    assert decoded([stream[i:i + 1] for i in range(len(stream))]) == expected
    typical = bytes.fromhex(cases[0]["hex"])
    for offset in range(len(typical) + 1):
        assert decoded([typical[:offset], typical[offset:]]) == expected[:1]


@pytest.mark.parametrize(("length", "code"), [(65537, 101), (0xFFFFFFFF, 101), (5, 100), (0, 100)])
def test_bad_lengths_are_refused_from_the_four_length_bytes_alone(length: int, code: int) -> None:
    """CP-FRAME-3, CP-FRAME-6, CP-FRAME-7: judged before any body byte has arrived."""
    frames = client.FrameBuffer()
    frames.feed(length.to_bytes(4, "big"))
    with pytest.raises(client.ProtocolViolation) as refused:
        frames.next_frame()
    assert refused.value.code == code


def test_a_frame_of_length_65536_is_accepted() -> None:
    frames = client.FrameBuffer()
    frames.feed((65536).to_bytes(4, "big") + bytes(65536))
    frame = frames.next_frame()
    assert frame is not None and len(frame.body) == 65536 - 6


@pytest.mark.parametrize(("decoder", "body"), [
    ("decode_error", b""),  # too short
    ("decode_error", b"\x00\x01\x02\x00\x00\x00\x00\x00"),  # fatal is a bool of 2
    ("decode_token", b"\x00\x01\x02"),  # bytes left over after the last field
    ("decode_reason", b"\x02\xff\xfe"),  # not UTF-8
])
def test_malformed_bodies_are_refused(decoder: str, body: bytes) -> None:
    """CP-FRAME-10: the client can tell a malformed body, to skip it."""
    with pytest.raises(client.MalformedBody):
        getattr(client, decoder)(body)


def test_hand_written_tables_agree_with_the_schema() -> None:
    """The client's type codes, state-table sets and error names are those of the spec."""
    for cls in MESSAGE_TYPES.values():
        if hasattr(client, cls.NAME):
            assert getattr(client, cls.NAME) == cls.TYPE, cls.NAME
    from_server = {cls.TYPE for cls in MESSAGE_TYPES.values()
                   if cls.SENDER in (Sender.SERVER, Sender.BOTH)}
    only_clients = {cls.TYPE for cls in MESSAGE_TYPES.values() if cls.SENDER == Sender.CLIENT}
    assert client.SERVER_MESSAGES == from_server - {client.WELCOME, client.BYE}
    assert client.CLIENT_MESSAGES == only_clients
    assert client.KNOWN_TYPES == set(MESSAGE_TYPES)
    assert client.ERROR_NAMES == {int(code): code.name for code in ErrorCode}


def test_control_characters_are_escaped_for_the_terminal() -> None:
    """CP-FIELD-6: what the client prints holds no control character."""
    shown = client.printable("red \x1b[31m\r\n\x9b\u202e end")
    assert shown == "red \\x1b[31m\\r\\n\\x9b\\u202e end"
    assert not client.is_safe_text("a\x1bb") and client.is_safe_text("tab\tand\nnewline")


# ------------------------------------------------------------- the conformance kit


@pytest.mark.timeout(300)
def test_the_client_passes_the_kits_client_suite(tmp_path: Path) -> None:
    """The guide says so: no MUST broken, no SHOULD either (the cases that close the
    client's stdin to ask it to quit are SKIP: this client does not read stdin)."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "client", "-q", "--json", str(report), "--",
         sys.executable, str(CLIENT), "{host}", "{port}", "kit", "#kit", "--wait", "30"],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts = json.loads(report.read_text(encoding="utf-8"))["counts"]
    assert counts["PASS"] > 0
    assert counts["FAIL"] == counts["WARN"] == counts["ERROR"] == counts["FLAKY"] == 0, counts
