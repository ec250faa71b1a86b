"""Unit tests of ``ChatView``: the terminal client's screen state, without a terminal."""

from __future__ import annotations

import ast
import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from conftest import AsyncResources, RunningServer
from prompt_toolkit.application import create_app_session
from prompt_toolkit.formatted_text import StyleAndTextTuples, fragment_list_to_text
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from server_harness import HOST

import reference_client.view
from chatproto.messages import (
    LeaveKind,
    MemberJoined,
    MemberLeft,
    MuteChanged,
    NickChanged,
    Notice,
    Presence,
    PrivateMessage,
    RoomMessage,
    TopicChanged,
)
from reference_client.client import ChatClient
from reference_client.commands import COMMANDS
from reference_client.events import (
    Disconnected,
    HistoryGapDetected,
    Reconnected,
    Reconnecting,
)
from reference_client.tui import TerminalUI
from reference_client.view import (
    NICK_PALETTE,
    STATUS_WINDOW,
    ChatView,
    ConnectionState,
    LineKind,
    clock_hhmm,
    input_scroll,
    nick_colour,
    pane_fragments,
    panel_fragments,
    render_line,
    wrap_fragments,
)
from reference_client.wording import describe_error

# 2024-05-06 13:45:30 local time, whatever the machine's time zone.
STAMP_MS = int(datetime(2024, 5, 6, 13, 45, 30).timestamp() * 1000)


def message(room: str, seq: int, sender: str, text: str, *, history: bool = False) -> RoomMessage:
    return RoomMessage(room=room, seq=seq, msg_id=1000 + seq, timestamp_ms=STAMP_MS,
                       sender=sender, text=text, history=history)


def state(view: ChatView) -> ConnectionState:
    return view.state


def texts(view: ChatView, room: str) -> list[str]:
    window = view.window(room)
    assert window is not None, room
    return [line.plain() for line in window.lines]


@pytest.fixture
def view() -> ChatView:
    view = ChatView(nick="alice", server="127.0.0.1:7878",
                    commands={name: spec.args for name, spec in COMMANDS.items()},
                    aliases={alias: spec.name for spec in COMMANDS.values()
                             for alias in spec.aliases},
                    clock=lambda: STAMP_MS / 1000)
    view.joined("#general", topic="hello", members=["alice", "bob", "Carol"])
    view.joined("#dev", members=["alice", "dave"])
    return view


def test_the_view_module_wires_no_application() -> None:
    """``reference_client.view`` is plain data and rendering decisions: of prompt_toolkit it
    uses only the cell width of text and the fragment type, never an application, a
    layout or key bindings (those are ``reference_client.tui``'s)."""
    tree = ast.parse(Path(reference_client.view.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    toolkit = {name for name in imported if name.split(".")[0] == "prompt_toolkit"}
    assert toolkit == {"prompt_toolkit.utils", "prompt_toolkit.formatted_text"}
    assert "reference_client.tui" not in imported


def test_starts_in_the_status_window() -> None:
    view = ChatView(nick="alice")
    assert view.current.name == STATUS_WINDOW
    assert view.current_room is None
    assert view.rooms() == []
    assert view.state is ConnectionState.CONNECTED


def test_join_opens_and_switches_to_the_room(view: ChatView) -> None:
    assert view.rooms() == ["#general", "#dev"]
    assert view.current_room == "#dev"
    assert view.window("#GENERAL") is view.window("#general")
    general = view.window("#general")
    assert general is not None and general.topic == "hello"
    assert general.member_nicks() == ["alice", "bob", "Carol"]
    assert texts(view, "#general")[-1] == "13:45 -- You joined #general -- topic: hello"


def test_room_message_line_format(view: ChatView) -> None:
    view.on_event(message("#dev", 1, "dave", "hi there"))
    assert texts(view, "#dev")[-1] == "13:45 dave: hi there"
    assert clock_hhmm(STAMP_MS) == "13:45"


def test_unread_counts_only_for_other_windows_and_reset_on_switch(view: ChatView) -> None:
    view.on_event(message("#general", 1, "bob", "one"))
    view.on_event(message("#general", 2, "bob", "two"))
    view.on_event(message("#dev", 1, "dave", "seen at once"))
    general, dev = view.window("#general"), view.window("#dev")
    assert general is not None and dev is not None
    assert (general.unread, dev.unread) == (2, 0)
    # System lines (joins, topics) are not unread messages.
    view.on_event(MemberJoined(room="#general", nick="erin"))
    assert general.unread == 2
    assert any("[2]" in text for _, text in view.panel())
    assert view.switch("#general")
    assert general.unread == 0
    view.on_event(message("#dev", 2, "dave", "now unseen"))
    assert dev.unread == 1


def test_switching_rooms(view: ChatView) -> None:
    assert not view.switch("#nowhere")
    assert view.switch("#GENERAL") and view.current_room == "#general"
    view.cycle(+1)
    assert view.current_room == "#dev"
    view.cycle(+1)
    assert view.current.name == STATUS_WINDOW  # wraps around to the status window
    view.cycle(-1)
    assert view.current_room == "#dev"
    assert view.switch_index(1) and view.current_room == "#general"
    assert not view.switch_index(7)
    assert view.prompt() == "[#general] "
    assert "#general" in view.title() and "alice" in view.title()


def test_current_window_is_marked_in_the_panel(view: ChatView) -> None:
    view.switch("#general")
    rows = [text for _, text in view.panel()]
    assert ">1 #general" in rows
    assert " 2 #dev" in rows
    # The members of the current room follow the rooms.
    assert rows[rows.index("Members (3)") + 1:] == [" alice", " bob", " Carol"]


def test_part_closes_the_window(view: ChatView) -> None:
    view.parted("#dev")
    assert view.rooms() == ["#general"]
    assert view.current_room == "#general"
    view.parted("#general")
    assert view.current.name == STATUS_WINDOW


def test_nick_colours_are_stable_and_case_insensitive() -> None:
    assert nick_colour("Alice") == nick_colour("alice") == nick_colour("ALICE")
    assert nick_colour("bob") in NICK_PALETTE
    # Deterministic across runs (not Python's randomised hash()): a known value.
    assert nick_colour("alice") == nick_colour("alice")
    colours = {nick_colour(f"user{i}") for i in range(200)}
    assert len(colours) == len(NICK_PALETTE)  # the whole palette is in use


def test_history_on_join_is_marked(view: ChatView) -> None:
    history = [message("#old", 1, "bob", "first"), message("#old", 2, "carol", "second")]
    view.joined("#old", members=["alice", "bob"], history=history)
    window = view.window("#old")
    assert window is not None
    replayed = [line for line in window.lines if line.kind is LineKind.MESSAGE]
    assert [line.plain() for line in replayed] == ["13:45 bob: first", "13:45 carol: second"]
    assert all(line.history for line in replayed)
    assert window.unread == 0
    view.on_event(message("#old", 3, "bob", "live"))
    assert window.lines[-1].history is False


def test_history_goes_before_live_events_that_raced_the_join() -> None:
    view = ChatView(nick="alice")
    # A live message arrives (events task) before the JOIN answer is shown.
    view.on_event(message("#r", 5, "bob", "live"))
    view.joined("#r", history=[message("#r", 4, "bob", "old")])
    assert texts(view, "#r") == ["13:45 bob: old", "13:45 bob: live",
                                  texts(view, "#r")[-1]]
    assert texts(view, "#r")[-1].endswith("You joined #r")


def test_replayed_messages_after_reconnect_are_dim_but_unread(view: ChatView) -> None:
    view.on_event(message("#general", 3, "bob", "missed", history=True))
    general = view.window("#general")
    assert general is not None
    assert general.lines[-1].history and general.unread == 1


def test_own_messages(view: ChatView) -> None:
    view.own_message("#dev", "mine", STAMP_MS)
    line = view.current.lines[-1]
    assert line.own and line.plain() == "13:45 alice: mine"
    view.own_private("bob", "psst", STAMP_MS)
    assert view.current.lines[-1].plain() == "13:45 [private] -> bob: psst"


def test_private_message_shown_in_current_window(view: ChatView) -> None:
    view.on_event(PrivateMessage(msg_id=1, timestamp_ms=STAMP_MS, sender="bob", text="secret"))
    assert texts(view, "#dev")[-1] == "13:45 [private] bob: secret"
    assert texts(view, STATUS_WINDOW)[-1] == "13:45 [private] bob: secret"
    assert texts(view, "#general")[-1].endswith("You joined #general -- topic: hello")


def test_members_follow_join_part_nick_presence_mute(view: ChatView) -> None:
    view.switch("#general")
    view.on_event(MemberJoined(room="#general", nick="erin"))
    assert "erin" in view.current.member_nicks()
    assert texts(view, "#general")[-1] == "13:45 -- erin joined #general"
    view.on_event(NickChanged(old_nick="bob", new_nick="robert"))
    assert "robert" in view.current.member_nicks() and "bob" not in view.current.member_nicks()
    assert texts(view, "#general")[-1] == "13:45 -- bob is now known as robert"
    view.on_event(Presence(nick="robert", away=True, away_message="lunch"))
    assert texts(view, "#general")[-1] == "13:45 -- robert is away: lunch"
    assert " robert (away)" in [text for _, text in view.panel()]
    view.on_event(MuteChanged(room="#general", nick="Carol", muted=True, by="op"))
    assert texts(view, "#general")[-1] == "13:45 -- Carol was muted by op"
    view.on_event(MemberLeft(room="#general", nick="erin", kind=LeaveKind.PART, reason="bye"))
    assert texts(view, "#general")[-1] == "13:45 -- erin left #general (bye)"
    view.on_event(MemberLeft(room="#general", nick="robert", kind=LeaveKind.QUIT))
    assert texts(view, "#general")[-1] == "13:45 -- robert quit"
    view.on_event(MemberLeft(room="#general", nick="carol", kind=LeaveKind.KICK,
                             by="op", reason="spam"))
    assert texts(view, "#general")[-1] == "13:45 -- carol was kicked from #general by op (spam)"
    assert view.current.member_nicks() == ["alice"]


def test_topic_changes(view: ChatView) -> None:
    view.on_event(TopicChanged(room="#dev", topic="release day", by="dave"))
    assert view.current.topic == "release day"
    assert texts(view, "#dev")[-1] == "13:45 -- dave changed the topic of #dev to: release day"
    assert "release day" in view.title()
    view.on_event(TopicChanged(room="#dev", topic=""))
    assert texts(view, "#dev")[-1] == "13:45 -- The server cleared the topic of #dev"


@pytest.mark.parametrize(("kind", "word"), [(LeaveKind.KICK, "kicked"), (LeaveKind.BAN, "banned")])
def test_kicked_or_banned_self(view: ChatView, kind: LeaveKind, word: str) -> None:
    view.switch("#dev")
    view.on_event(MemberLeft(room="#general", nick="ALICE", kind=kind, by="op", reason="bye"))
    general = view.window("#general")
    assert general is not None
    expected = f"13:45 !! You were {word} from #general by op (bye)"
    # Shown in the room itself and where the user is looking.
    assert texts(view, "#general")[-1] == expected
    assert texts(view, "#dev")[-1] == expected
    assert general.lines[-1].kind is LineKind.ERROR
    assert not general.joined and general.members == {}
    assert "(#general)" in " ".join(text for _, text in view.panel())
    view.switch("#general")
    assert view.current_room is None  # plain text has nowhere to go
    # Joining again makes it a room again.
    view.joined("#general", members=["alice"])
    assert view.current_room == "#general"


def test_muted_self_is_an_error_line(view: ChatView) -> None:
    view.on_event(MuteChanged(room="#dev", nick="alice", muted=True, by="op"))
    assert view.current.lines[-1].kind is LineKind.ERROR
    assert texts(view, "#dev")[-1] == "13:45 !! You were muted in #dev by op"


def test_own_nick_change(view: ChatView) -> None:
    view.set_nick("alicia")
    assert view.nick == "alicia"
    assert "alicia" in view.current.member_nicks() and "alice" not in view.current.member_nicks()
    assert texts(view, "#dev")[-1] == "13:45 -- You are now known as alicia"
    view.on_event(message("#dev", 1, "alicia", "me"))
    assert view.current.lines[-1].own


def test_notice_and_connection_events(view: ChatView) -> None:
    view.on_event(Notice(text="line one\nline two"))
    assert texts(view, "#dev")[-2:] == ["13:45 -!- line one", "13:45 -!- line two"]
    view.on_event(Reconnecting(attempt=2, delay_s=1.5, reason="connection lost: reset"))
    assert state(view) is ConnectionState.RECONNECTING
    assert "reconnecting" in view.title()
    assert texts(view, "#dev")[-1] == ("13:45 !! connection lost (connection lost: reset); "
                                       "reconnecting in 1.5 s (attempt 2)")
    view.on_event(HistoryGapDetected(room="#general", first_seq=4, last_seq=6))
    assert texts(view, "#general")[-1] == ("13:45 -- 3 messages of #general could not be "
                                           "recovered (seq 4-6)")
    view.on_event(Reconnected(nick="alice", rooms=("#general", "#dev")))
    assert state(view) is ConnectionState.CONNECTED
    assert texts(view, "#dev")[-1] == "13:45 -- reconnected as alice, back in #general, #dev"
    view.on_event(Disconnected(reason="server closed the connection: SERVER_SHUTDOWN: bye"))
    assert state(view) is ConnectionState.DISCONNECTED
    view.on_event(Disconnected(reason="server closed the connection: SERVER_SHUTDOWN: bye",
                               code=502))
    assert texts(view, "#dev")[-1] == "13:45 !! disconnected: the server is shutting down"
    # Connection news is also kept in the status window.
    assert texts(view, STATUS_WINDOW)[-1] == texts(view, "#dev")[-1]


def test_completion_of_commands(view: ChatView) -> None:
    assert view.completions("/j") == ["/join"]
    assert view.completions("/m") == ["/members", "/msg", "/mute"]
    assert view.completions("/") == view.commands == sorted(f"/{name}" for name in COMMANDS)
    assert view.completions("/J") == ["/join"]
    assert view.completions("/zzz") == []
    assert view.completions("/help jo") == ["join"]


def test_completion_of_nicks_and_rooms(view: ChatView) -> None:
    view.switch("#general")
    assert view.completions("b") == ["bob"]
    assert view.completions("hello c") == ["Carol"]  # by fold
    assert view.completions("/msg BO") == ["bob"]
    assert view.completions("/mute #general ") == ["alice", "bob", "Carol"]
    assert view.completions("/join #g") == ["#general"]
    assert view.completions("/part ") == ["#general", "#dev"]
    assert view.completions("/kick #dev ca") == ["Carol"]
    assert view.completions("/query b") == ["bob"]  # an alias of /msg
    assert view.completions("/kick #dev bob so") == []  # the reason: no member starts so
    assert view.completions("/oper adm") == []  # names and passwords: nothing
    assert view.completions("/login bob ") == []
    # Nicks come from the current room only.
    assert view.completions("da") == []
    view.switch("#dev")
    assert view.completions("da") == ["dave"]


def test_scroll_back_and_forward(view: ChatView) -> None:
    for seq in range(1, 11):
        view.on_event(message("#dev", seq, "dave", str(seq)))
    view.scroll_by(3)
    assert view.scroll == 3
    view.scroll_by(100)
    assert view.scroll == len(view.current.lines) - 1
    view.scroll_by(-1000)
    assert view.scroll == 0
    # A window that fits on the screen does not scroll.
    view.scroll_by(5, keep=len(view.current.lines))
    assert view.scroll == 0
    view.scroll_by(5, keep=len(view.current.lines) - 2)
    assert view.scroll == 2
    view.scroll_by(2)
    view.switch("#general")
    assert view.scroll == 0


def test_changed_callback_fires(view: ChatView) -> None:
    calls: list[int] = []
    view.changed = lambda: calls.append(1)
    view.on_event(message("#dev", 1, "dave", "x"))
    assert calls


def test_resync_after_reconnect(view: ChatView) -> None:
    view.resync({"#GENERAL": ["alice", "bob"]})
    general, dev = view.window("#general"), view.window("#dev")
    assert general is not None and dev is not None
    assert general.member_nicks() == ["alice", "bob"]
    assert not dev.joined and texts(view, "#dev")[-1] == "13:45 !! Could not rejoin #dev"


def test_show_history_and_closed_disconnect(view: ChatView) -> None:
    view.show_history("#dev", [message("#dev", 1, "dave", "older")])
    assert view.current.lines[-1].history
    assert texts(view, "#dev")[-2:] == ["History of #dev: 1 message", "13:45 dave: older"]
    view.show_history("#dev", [])
    assert texts(view, "#dev")[-1] == "History of #dev: no messages"
    count = len(view.current.lines)
    view.on_event(Disconnected(reason="closed"))  # our own close: nothing to say
    assert len(view.current.lines) == count
    assert state(view) is ConnectionState.DISCONNECTED


def test_history_of_another_room_goes_to_its_window(view: ChatView) -> None:
    """/history #general typed in #dev: the messages go to #general's window, under a
    heading, and #general becomes current (a reply then goes to the room being read)."""
    assert view.current_room == "#dev"
    dev_before = texts(view, "#dev")
    view.show_history("#GENERAL", [message("#general", 1, "bob", "one"),
                                   message("#general", 2, "bob", "two")])
    assert texts(view, "#dev") == dev_before
    assert texts(view, "#general")[-3:] == ["History of #general: 2 messages",
                                            "13:45 bob: one", "13:45 bob: two"]
    assert view.current_room == "#general"
    general = view.window("#general")
    assert general is not None and general.unread == 0


def test_history_of_a_room_without_a_window_is_headed_in_the_current_one(
        view: ChatView) -> None:
    view.show_history("#elsewhere", [message("#elsewhere", 1, "erin", "far away")])
    assert view.current_room == "#dev"
    assert texts(view, "#dev")[-2:] == ["History of #elsewhere: 1 message",
                                        "13:45 erin: far away"]
    assert view.window("#elsewhere") is None


@pytest.mark.parametrize("event", [
    Disconnected(reason="server closed the connection: SERVER_SHUTDOWN: bye", code=502),
    Disconnected(reason="connection lost: Connection reset by peer"),
    Disconnected(reason="server closed the connection: RATE_LIMITED: flood", code=402),
], ids=["shutdown", "reset", "other code"])
def test_title_says_disconnected_once(view: ChatView, event: Disconnected) -> None:
    view.on_event(event)
    title = view.title()
    assert title.count("disconnected") == 1, title
    assert f"| disconnected: {view.state_detail}" in title and view.state_detail
    # The line in the pane is the full sentence, said once as well.
    assert texts(view, "#dev")[-1] == f"13:45 !! {describe_error(event)}"
    assert describe_error(event).count("disconnected") <= 1


def test_title_after_our_own_close_is_just_disconnected(view: ChatView) -> None:
    view.on_event(Disconnected(reason="closed"))
    assert view.title().endswith("| #dev | disconnected")


def rows_of(fragments: StyleAndTextTuples) -> list[str]:
    return fragment_list_to_text(fragments).split("\n")


def test_wrap_breaks_at_spaces_and_indents_the_rows_after_the_first() -> None:
    text = "13:45 dave: the quick brown fox jumps over the lazy dog"
    rows = rows_of(wrap_fragments([("", text)], 20))
    assert rows == ["13:45 dave: the", "      quick brown", "      fox jumps over",
                    "      the lazy dog"]
    assert all(len(row) <= 20 for row in rows)
    # A row filled exactly to the width needs no break; a line that fits is untouched.
    assert rows_of(wrap_fragments([("", "12345 67890")], 11)) == ["12345 67890"]
    assert wrap_fragments([("", "short")], 80) == [("", "short")]


def test_wrap_breaks_inside_only_the_words_longer_than_a_row() -> None:
    rows = rows_of(wrap_fragments([("", "see " + "x" * 30 + " ok")], 12))
    assert rows == ["see xxxxxxxx", "      xxxxxx", "      xxxxxx", "      xxxxxx",
                    "      xxxx", "      ok"]
    # Where an indent would leave no room, rows start at the left edge.
    assert rows_of(wrap_fragments([("", "abcdefgh ij")], 4)) == ["abcd", "efgh", "ij"]


def test_wrap_keeps_styles_newlines_and_wide_characters() -> None:
    fragments = render_line(ChatView(nick="x")._message_line(
        message("#r", 1, "dave", "hello wonderful\nworld"), history=False))
    wrapped = wrap_fragments(fragments, 18)
    assert rows_of(wrapped) == ["13:45 dave: hello", "      wonderful", "      world"]
    # The nick keeps its colour, and "dave:" (two fragments) counts as one word.
    assert (nick_colour("dave"), "dave") in wrapped
    assert fragment_list_to_text(wrapped).replace("\n      ", " ") == \
        "13:45 dave: hello wonderful world"
    # Wide characters take two cells each: three of them do not fit after "ab ".
    assert rows_of(wrap_fragments([("", "ab \u6f22\u5b57\u6f22")], 7)) == \
        ["ab", "\u6f22\u5b57\u6f22"]


def test_pane_wraps_every_line_to_the_given_width(view: ChatView) -> None:
    view.on_event(message("#dev", 1, "dave", "alpha beta gamma delta epsilon"))
    rows = fragment_list_to_text(pane_fragments(view, width=24)).split("\n")
    assert rows[-3:] == ["13:45 dave: alpha beta", "      gamma delta", "      epsilon"]
    assert pane_fragments(view, width=24)[-1] == ("[SetCursorPosition]", "")


@pytest.mark.parametrize(("scroll", "line_width", "window_width", "expected"), [
    (0, 10, 80, 0),        # fits: never scrolled
    (4920, 7, 80, 0),      # a 5000-column line was sent: the empty prompt shows again
    (4920, 5005, 80, 4920),  # still long: keep the scroll (the cursor decides)
    (100, 150, 80, 71),    # shortened: scroll back just enough to show its end
])
def test_input_scroll_never_hides_a_line_that_fits(scroll: int, line_width: int,
                                                   window_width: int, expected: int) -> None:
    assert input_scroll(scroll, line_width, window_width) == expected


def test_rendering_colours_nicks_and_dims_history(view: ChatView) -> None:
    live = view._message_line(message("#dev", 1, "dave", "hi"), history=False)
    fragments = render_line(live)
    assert fragment_list_to_text(fragments) == "13:45 dave: hi"
    assert (nick_colour("dave"), "dave") in fragments
    replayed = render_line(view._message_line(message("#dev", 1, "dave", "hi"), history=True))
    assert replayed == [("class:history", "13:45 dave: hi")]
    multi = render_line(view._message_line(message("#dev", 2, "dave", "a\tb\nc"),
                                           history=False))
    assert fragment_list_to_text(multi) == "13:45 dave: a   b\n      c"


def test_pane_shows_the_end_of_the_window_with_the_cursor_last(view: ChatView) -> None:
    for seq in range(1, 6):
        view.on_event(message("#dev", seq, "dave", f"m{seq}"))
    fragments = pane_fragments(view)
    assert fragments[-1] == ("[SetCursorPosition]", "")
    assert "m5" in fragment_list_to_text(fragments)
    view.scroll_by(2)
    text = fragment_list_to_text(pane_fragments(view))
    assert "m3" in text and "m4" not in text and "m5" not in text
    rows = panel_fragments(view)
    assert (nick_colour("dave"), " dave") in rows


# ------------------------------------------ the terminal UI's commands, no terminal


async def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``check`` (the UI updates from a background task) up to ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def last(ui: TerminalUI, room: str | None = None) -> str:
    window = ui.view.window(room) if room else ui.view.current
    assert window is not None
    return window.lines[-1].plain() if window.lines else ""


@pytest.mark.server_config(operators={"boss": "hunter2"})
async def test_terminal_ui_commands(server: RunningServer,
                                    async_resources: AsyncResources) -> None:
    bob = await ChatClient.connect(HOST, server.port, nick="bob")
    async_resources.on_teardown(bob.close)
    await bob.join("#r")
    await bob.send_room("#r", "before alice came")
    alice = await ChatClient.connect(HOST, server.port, nick="alice")
    async_resources.on_teardown(alice.close)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        ui = TerminalUI(alice, reconnect=False)
        pump = asyncio.get_running_loop().create_task(ui._pump_events())
        try:
            view = ui.view
            await ui.handle_line("/join #r")
            window = view.window("#r")
            assert window is not None and view.current_room == "#r"
            replayed = [line for line in window.lines if line.kind is LineKind.MESSAGE]
            assert [line.plain()[6:] for line in replayed] == ["bob: before alice came"]
            assert replayed[0].history
            assert window.member_nicks() == ["alice", "bob"]

            await ui.handle_line("hello")
            assert last(ui).endswith("alice: hello") and window.lines[-1].own
            await ui.handle_line("/topic #r fresh topic")
            assert window.topic == "fresh topic"
            assert last(ui).endswith("alice changed the topic of #r to: fresh topic")
            await ui.handle_line("/history 5")
            assert window.lines[-1].history and last(ui).endswith("alice: hello")
            await ui.handle_line("/users")
            assert last(ui).startswith("users: 2: ") and "alice" in last(ui)

            # Refused or mistyped commands: one line each.
            for typed, expected in [
                ("/join nohash", "invalid room name"),
                ("/msg ghost hi", "no user ghost -- not sent; it is back in the input line"),
                ("/kick #r bob", "only server operators can do that"),
                ("/switch #elsewhere", "no window #elsewhere"),
                ("/win 9", "usage: /win N"),
            ]:
                try:
                    await ui.handle_line(typed)
                except Exception as exc:  # what _run_lines shows
                    view.error(describe_error(exc, me=view.nick))
                assert expected in last(ui), (typed, last(ui))
                assert view.current.lines[-1].kind is LineKind.ERROR
                # A refused message comes back to the input line; nothing else does.
                assert ui.input.text == (typed if typed.startswith("/msg") else ""), typed
                ui.input.reset()

            # Typed on meanwhile: the new text stays, and Up recalls the refused line.
            ui.input.text = "half a thought"
            await ui.handle_line("/msg ghost again")
            assert last(ui).endswith("no user ghost -- not sent; Up recalls it")
            assert ui.input.text == "half a thought"
            ui.input.reset()

            await ui.handle_line("/win 0")
            assert view.current.name == STATUS_WINDOW
            await ui.handle_line("/switch #r")
            assert view.current_room == "#r"

            # bob speaks, is renamed, and as an operator kicks alice.
            await bob.send_room("#r", "welcome")
            await wait_until(lambda: last(ui, "#r").endswith("bob: welcome"))
            await bob.change_nick("robert")
            await wait_until(lambda: last(ui, "#r").endswith("bob is now known as robert"))
            await bob.oper("boss", "hunter2")
            await bob.kick("#r", "alice", "enough")
            await wait_until(lambda: "You were kicked" in last(ui, "#r"))
            assert last(ui, "#r").endswith("!! You were kicked from #r by robert (enough)")
            assert view.current_room is None and not window.joined
            try:
                await ui.handle_line("still here?")
            except Exception as exc:
                view.error(describe_error(exc))
            assert "no current room" in last(ui)

            # Joining again, then /part closes the window.
            await ui.handle_line("/join #r")
            assert view.current_room == "#r"
            await ui.handle_line("/part")
            assert view.window("#r") is None and view.current.name == STATUS_WINDOW

            await ui.handle_line("/nick alicia")
            assert view.nick == "alicia" and "alicia" in ui.view.title()
            await ui.quit("bye")
            assert ui.exit_status == 0
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
