"""The terminal client as a person uses it: in a real (pseudo-)terminal.

Each client is ``python -m reference_client 127.0.0.1:PORT --nick NAME`` run
under a pseudo-terminal by pexpect, at a fixed size. Everything it writes is
fed to a pyte screen, which is what a person would see; the tests read that
screen and type with ``send()``. Every wait polls the screen while reading the
terminal's output, up to a deadline -- no fixed sleeps -- and every process is
ended at teardown, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pyte
import pytest
import trustme
from server_harness import HOST, ServerProcess

ROOT = Path(__file__).resolve().parent.parent
COLUMNS, ROWS = 120, 40
DEADLINE = 20.0
"""Seconds a screen gets to show what is expected (generous for slow CI machines)."""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


class Terminal:
    """One terminal client in a pseudo-terminal, and the screen a person would see."""

    def __init__(self, port: int, nick: str, *extra: str) -> None:
        self.nick = nick
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS),
                   PROMPT_TOOLKIT_NO_CPR="1", PYTHONUNBUFFERED="1")
        env.pop("CHATPROTO_DEBUG", None)
        self.child = pexpect.spawn(
            sys.executable, ["-m", "reference_client", f"{HOST}:{port}", "--nick", nick, *extra],
            cwd=str(ROOT), env=env, dimensions=(ROWS, COLUMNS), encoding="utf-8",
            codec_errors="replace", timeout=DEADLINE)
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.Stream(self.screen)
        self.transcript: list[str] = []
        """Everything the client ever wrote to its terminal."""
        self.eof = False

    def __repr__(self) -> str:
        return f"<Terminal {self.nick}>"

    # ------------------------------------------------------------- reading

    def _pump(self, timeout: float) -> None:
        """Feed the screen whatever the client writes within ``timeout`` seconds."""
        if self.eof:
            return
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.eof = True
            return
        self.transcript.append(data)
        self.stream.feed(data)

    def text(self) -> str:
        """The screen as text, one row per line."""
        return "\n".join(self.screen.display)

    def rows(self) -> list[str]:
        return list(self.screen.display)

    def pane(self) -> str:
        """The message pane: the rows between the title and the input, left of the panel."""
        return "\n".join(row.split("\u2502")[0].rstrip() for row in self.screen.display[1:-2])

    def panel(self) -> list[str]:
        """The side panel's rows (rooms, then the current room's members)."""
        return [row.split("\u2502", 1)[1].strip() for row in self.screen.display[1:-2]
                if "\u2502" in row]

    def title(self) -> str:
        return str(self.screen.display[0])

    def input_line(self) -> str:
        return str(self.screen.display[-1]).rstrip()

    def wait_for(self, check: str | re.Pattern[str] | Callable[[Terminal], bool],
                 timeout: float = DEADLINE, what: str = "") -> None:
        """Read output until the screen shows ``check`` (text, regex or predicate)."""
        check_fn: Callable[[Terminal], bool]
        if isinstance(check, str):
            needle = check
            check_fn = lambda terminal: needle in terminal.text()  # noqa: E731
        elif isinstance(check, re.Pattern):
            pattern = check
            check_fn = lambda terminal: pattern.search(terminal.text()) is not None  # noqa: E731
        else:
            check_fn = check
        deadline = time.monotonic() + timeout
        while True:
            if check_fn(self):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.eof:
                break
            self._pump(min(0.2, remaining))
        state = "exited" if self.eof else "running"
        raise AssertionError(
            f"{self.nick}'s screen never showed {what or check!r} within {timeout} s "
            f"(client {state}); screen:\n{self.text()}")

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        """Read until the client exits; its exit status."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._pump(min(0.2, deadline - time.monotonic()))
        if not self.eof:
            raise AssertionError(f"{self.nick} did not exit within {timeout} s; "
                                 f"screen:\n{self.text()}")
        self.child.wait()
        self.child.close()
        status = self.child.exitstatus
        assert status is not None, f"{self.nick} was killed by signal {self.child.signalstatus}"
        return int(status)

    # -------------------------------------------------------------- typing

    def type(self, text: str) -> None:
        self.child.send(text)

    def enter(self, line: str) -> None:
        """Type a line and press Enter."""
        self.child.send(line + "\r")

    def close(self) -> None:
        """End the process if it is still running (teardown)."""
        if self.child.isalive():
            with contextlib.suppress(Exception):
                self.child.terminate(force=True)
        with contextlib.suppress(Exception):
            self.child.close(force=True)


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server")
    server.data_dir.mkdir()
    try:
        asyncio.run(server.start())
        yield server
    finally:
        server.close()


OpenTerminal = Callable[[str], Terminal]


@pytest.fixture
def open_terminal(chat_server: ServerProcess) -> Iterator[OpenTerminal]:
    """``open_terminal("alice")``: a started client, its screen ready for typing."""
    terminals: list[Terminal] = []

    def open_(nick: str) -> Terminal:
        terminal = Terminal(chat_server.port, nick)
        terminals.append(terminal)
        return terminal

    try:
        yield open_
    finally:
        for terminal in terminals:
            terminal.close()


def started(*terminals: Terminal) -> None:
    """Wait until each client is connected and showing its input line."""
    for terminal in terminals:
        terminal.wait_for(lambda t: f"| {t.nick} |" in t.title()
                          and t.input_line().startswith("[(status)]"),
                          what="the connected screen")
        terminal.wait_for(f"as {terminal.nick}.")


def line(nick: str, text: str) -> re.Pattern[str]:
    """A message line as the pane shows it: ``HH:MM nick: text``."""
    return re.compile(rf"(?m)^\d\d:\d\d {re.escape(nick)}: {re.escape(text)}")


def flowed(text: str) -> str:
    """``text`` with its rows run together, as one reads a wrapped line."""
    return " ".join(text.split())


def join_all(room: str, *terminals: Terminal) -> None:
    """Each client joins ``room`` in turn; everyone already there sees each arrival."""
    for index, terminal in enumerate(terminals):
        terminal.enter(f"/join {room}")
        terminal.wait_for(lambda t: t.input_line().startswith(f"[{room}]"), what=f"[{room}]")
        for earlier in terminals[:index]:
            earlier.wait_for(f"{terminal.nick} joined {room}")


def test_two_clients_chat(open_terminal: OpenTerminal) -> None:
    alice, bob = open_terminal("alice"), open_terminal("bob")
    started(alice, bob)
    join_all("#tui", alice, bob)

    alice.enter("hello bob")
    bob.wait_for(line("alice", "hello bob"))
    alice.wait_for(line("alice", "hello bob"))  # our own line, as the server accepted it
    bob.enter("hi alice, how are you?")
    alice.wait_for(line("bob", "hi alice, how are you?"))

    # What else a person sees: the title, the room marked current, both members.
    assert "| alice | #tui | connected" in alice.title()
    panel = alice.panel()
    assert ">1 #tui" in panel
    assert panel[panel.index("Members (2)") + 1:][:2] == ["alice", "bob"]
    assert "Traceback" not in "".join(alice.transcript + bob.transcript)


def test_private_message_reaches_only_its_addressee(open_terminal: OpenTerminal) -> None:
    alice, bob, carol = open_terminal("alice"), open_terminal("bob"), open_terminal("carol")
    started(alice, bob, carol)
    join_all("#tui", alice, bob, carol)

    alice.enter("/msg bob the secret is 42")
    bob.wait_for(re.compile(r"\d\d:\d\d \[private\] alice: the secret is 42"))
    alice.wait_for("[private] -> bob: the secret is 42")
    # A later room message that carol does show proves she is up to date...
    alice.enter("nothing to see here")
    carol.wait_for(line("alice", "nothing to see here"))
    bob.wait_for(line("alice", "nothing to see here"))
    # ...and the private message never reached her terminal at all.
    assert "secret" not in "".join(carol.transcript)
    assert "secret" not in carol.text()


def test_nick_change_is_seen_by_others(open_terminal: OpenTerminal) -> None:
    alice, bob = open_terminal("alice"), open_terminal("bob")
    started(alice, bob)
    join_all("#tui", alice, bob)

    alice.enter("/nick alicia")
    bob.wait_for("alice is now known as alicia")
    alice.wait_for(lambda t: "| alicia | #tui |" in t.title(), what="alicia in the title")
    bob.wait_for(lambda t: "alicia" in t.panel() and "alice" not in t.panel(),
                 what="alicia in the member list")
    alice.enter("it is me")
    bob.wait_for(line("alicia", "it is me"))


def test_quit_exits_zero_and_others_see_the_user_leave(open_terminal: OpenTerminal) -> None:
    alice, bob = open_terminal("alice"), open_terminal("bob")
    started(alice, bob)
    join_all("#tui", alice, bob)

    alice.enter("/quit see you")
    assert alice.wait_exit() == 0
    bob.wait_for("alice quit (see you)")
    bob.wait_for(lambda t: "alice" not in t.panel() and "Members (1)" in t.panel(),
                 what="alice gone from the member list")
    # Ctrl-C quits cleanly too.
    bob.type("\x03")
    assert bob.wait_exit() == 0


def test_keys_completion_history_and_room_switching(open_terminal: OpenTerminal) -> None:
    alice, bob = open_terminal("alice"), open_terminal("bob")
    started(alice, bob)
    join_all("#one", alice, bob)
    alice.enter("/join #two")
    alice.wait_for(lambda t: t.input_line().startswith("[#two]"), what="[#two]")

    # Tab completes a command, then a member of the current room... (#two: alice only)
    alice.type("/jo\t")
    alice.wait_for(lambda t: t.input_line() == "[#two] /join", what="/join completed")
    alice.type("\x15")  # Ctrl-U: clear the line
    alice.wait_for(lambda t: t.input_line() == "[#two]", what="an empty input line")
    alice.type("\x10")  # Ctrl-P: back to #one, where bob is
    alice.wait_for(lambda t: t.input_line().startswith("[#one]"), what="[#one]")
    alice.type("hey b\t")
    alice.wait_for(lambda t: t.input_line() == "[#one] hey bob", what="bob completed")
    alice.type("\r")
    bob.wait_for(line("alice", "hey bob"))

    # Unread counts: a message to the room alice is not looking at.
    alice.type("\x0e")  # Ctrl-N: to #two
    alice.wait_for(lambda t: t.input_line().startswith("[#two]"), what="[#two]")
    bob.enter("are you there?")
    alice.wait_for(lambda t: "1 #one [1]" in t.panel(), what="one unread message in #one")
    alice.enter("/switch #one")
    alice.wait_for(line("bob", "are you there?"))
    alice.wait_for(lambda t: ">1 #one" in t.panel(), what="#one current, nothing unread")

    # The pane follows the newest line when it overflows; PageUp/PageDown scroll it.
    alice.enter("/help")
    alice.enter("/help")
    bob.enter("still visible")
    alice.wait_for(lambda t: line("bob", "still visible").search(t.pane()) is not None
                   and "You joined #one" not in t.pane(), what="the newest line at the bottom")
    alice.type("\x1b[5~")  # PageUp
    alice.wait_for(lambda t: "You joined #one" in t.pane(), what="the first lines again")
    alice.type("\x1b[6~")  # PageDown
    alice.wait_for(lambda t: line("bob", "still visible").search(t.pane()) is not None,
                   what="back at the bottom")

    # Up recalls what was typed before.
    alice.type("\x1b[A")
    alice.wait_for(lambda t: t.input_line() == "[#one] /help", what="history recall")
    alice.type("\x1b[A")  # the /help typed twice is kept once
    alice.wait_for(lambda t: t.input_line() == "[#one] /switch #one", what="older history")
    alice.type("\x15")

    # A refused command is one line, never a traceback.
    alice.enter("/frobnicate")
    alice.wait_for("unknown command /frobnicate")
    alice.enter("/msg nobody-here hello")
    alice.wait_for("no user nobody-here -- not sent; it is back in the input line")
    alice.wait_for(lambda t: t.input_line() == "[#one] /msg nobody-here hello",
                   what="the refused message, back to edit")
    alice.type("\x15")
    assert "Traceback" not in "".join(alice.transcript)
    alice.enter("/quit")
    assert alice.wait_exit() == 0


def test_a_refused_long_line_comes_back_and_the_prompt_stays(
        open_terminal: OpenTerminal) -> None:
    """A line over max_message_length is refused: the text returns to the input line to
    be edited, and once it is erased the prompt shows again (it used to stay scrolled
    out of sight for good)."""
    alice = open_terminal("alice")
    started(alice)
    join_all("#tui", alice)

    alice.enter("x" * 5000)  # the default max_message_length is 4096 bytes
    alice.wait_for(lambda t: "message too long" in flowed(t.pane())
                   and "not sent; it is back in the input line" in flowed(t.pane()),
                   what="the refusal, saying where the text went")
    alice.wait_for(lambda t: t.input_line().endswith("x" * 60), what="the text, back")
    alice.type("\x15")  # Ctrl-U: erase it
    alice.wait_for(lambda t: t.input_line() == "[#tui]", what="the prompt, visible again")
    alice.enter("short enough")
    alice.wait_for(line("alice", "short enough"))
    alice.wait_for(lambda t: t.input_line() == "[#tui]", what="the prompt after sending")
    assert "Traceback" not in "".join(alice.transcript)


def test_history_of_another_room_opens_that_rooms_window(open_terminal: OpenTerminal) -> None:
    """/history #two typed in #one: the messages appear in #two's window, under a heading,
    and #two becomes the current window; #one's window gets none of them."""
    alice, bob = open_terminal("alice"), open_terminal("bob")
    started(alice, bob)
    join_all("#two", alice, bob)
    bob.enter("said in two")
    alice.wait_for(line("bob", "said in two"))
    alice.enter("/join #one")
    alice.wait_for(lambda t: t.input_line().startswith("[#one]"), what="[#one]")

    alice.enter("/history #two 5")
    alice.wait_for(lambda t: t.input_line().startswith("[#two]"), what="#two made current")
    heading = re.compile(r"(?m)^History of #two: 1 message\n\d\d:\d\d bob: said in two$")
    alice.wait_for(lambda t: heading.search(t.pane()) is not None, what="the heading")
    alice.type("\x0e")  # Ctrl-N: wraps around to the status window, then #two's neighbour
    alice.wait_for(lambda t: not t.input_line().startswith("[#two]"), what="another window")
    alice.enter("/switch #one")
    alice.wait_for(lambda t: t.input_line().startswith("[#one]"), what="[#one]")
    alice.wait_for("You joined #one")
    assert "said in two" not in alice.pane() and "History of" not in alice.pane()


def test_long_messages_wrap_at_word_boundaries(open_terminal: OpenTerminal) -> None:
    alice, bob = open_terminal("alice"), open_terminal("bob")
    started(alice, bob)
    join_all("#tui", alice, bob)
    words = [f"word{n:02d}" for n in range(30)]  # 7 columns each with its space
    alice.enter(" ".join(words))
    bob.wait_for(words[-1])
    rows = [row for row in bob.pane().splitlines() if "word" in row]
    assert len(rows) >= 3, rows
    assert rows[0].startswith(tuple(f"{h:02d}:" for h in range(24))) and "alice: word00" in rows[0]
    # Every word whole on one row; the rows after the first line up under the text.
    assert [word for row in rows for word in row.split() if word.startswith("word")] == words
    assert all(row.startswith("      word") for row in rows[1:]), rows
    pane_width = COLUMNS - 28 - 1
    assert all(len(row) <= pane_width for row in rows), rows


def test_tls_mismatches_end_the_terminal_client_with_one_line(
        chat_server: ServerProcess, tmp_path: Path) -> None:
    """The terminal client, started with --tls against a plain server or without --cafile
    against a self-signed one: one line saying what happened and what to do, exit 1."""
    ca = trustme.CA()
    issued = ca.issue_cert(HOST)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    (tmp_path / "tls-server").mkdir()
    tls_server = ServerProcess(tmp_path / "tls-server", "--tls-cert", str(cert),
                               "--tls-key", str(key))
    terminals: list[Terminal] = []
    try:
        asyncio.run(tls_server.start())
        for port, expected in [
            (chat_server.port, "the server does not speak TLS: drop --tls"),
            (tls_server.port, "the server's certificate is not trusted (self-signed, or from "
                              "an unknown CA): pass --cafile CA.pem"),
        ]:
            terminal = Terminal(port, "alice", "--tls")
            terminals.append(terminal)
            assert terminal.wait_exit() == 1
            output = flowed("".join(terminal.transcript))
            assert f"chatproto-client: cannot connect to {HOST}:{port}: {expected}" in output
            assert "Traceback" not in output and "VERIFY_FAILED" not in output
            assert "WRONG_VERSION_NUMBER" not in output
    finally:
        for terminal in terminals:
            terminal.close()
        tls_server.close()
