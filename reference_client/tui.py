"""The full-screen terminal client: a prompt_toolkit application around a ``ChatView``.

``TerminalUI`` (started by ``run_tui``) lays out the title line, message pane,
side panel and input line around a ``reference_client.view.ChatView``, feeds
that view the client's events from a background task, and runs what the
person types, one line after the other: ``/commands`` through
``reference_client.commands``, plain text to the current room. What the screen
shows is decided in the view; this module only wires it to the terminal.

Keys: Enter sends; Tab completes commands, rooms and nicks; Up/Down recall
earlier lines; Ctrl-N/Ctrl-P switch windows (also ``/switch #room`` and
``/win N``, N as numbered in the side panel); PageUp/PageDown scroll; Ctrl-L
redraws; Ctrl-C (or Ctrl-D on an empty line, or ``/quit``) quits.

Nothing here ever shows a traceback: a refused or failed command becomes one
line from ``commands.describe_error``, and a refused message comes back to the
input line to be edited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import (
    BufferControl,
    Container,
    Float,
    FloatContainer,
    FormattedTextControl,
    HSplit,
    Layout,
    VSplit,
    Window,
)
from prompt_toolkit.layout.menus import CompletionsMenu
from prompt_toolkit.layout.processors import BeforeInput
from prompt_toolkit.styles import Style
from prompt_toolkit.utils import get_cwidth

from chatproto.messages import Ok, TopicChanged
from reference_client.client import ChatClient, ChatError, ConnectionLost, HistoryPage, JoinResult
from reference_client.commands import (
    COMMANDS,
    SAY,
    Command,
    CommandError,
    CommandResult,
    execute,
    parse_command,
)
from reference_client.events import Disconnected, HistoryGapDetected, Reconnected
from reference_client.view import (
    STYLE_RULES,
    ChatView,
    ConnectionState,
    input_scroll,
    pane_fragments,
    panel_fragments,
)
from reference_client.wording import describe_error

PANEL_WIDTH = 28
"""Columns of the side panel (rooms and members); the message pane takes the rest."""

LOCAL_COMMANDS: dict[str, tuple[str, ...]] = {"win": ("count",)}
"""Commands the terminal UI handles itself, besides ``commands.COMMANDS``."""

MESSAGE_COMMANDS = frozenset({SAY, "msg"})
"""Commands that carry a message: refused, the line typed comes back to the input."""


class _LogToView(logging.Handler):
    """Library log records (warnings) as error lines, never onto the terminal."""

    def __init__(self, view: ChatView) -> None:
        super().__init__(logging.WARNING)
        self.view = view

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.view.error(" ".join(record.getMessage().split()))


class _ViewCompleter(Completer):
    """Tab: the view's candidates for the word before the cursor."""

    def __init__(self, view: ChatView) -> None:
        self.view = view

    def get_completions(self, document: Document,
                        complete_event: CompleteEvent) -> Iterable[Completion]:
        before = document.text_before_cursor
        word = before.split(" ")[-1]
        for candidate in self.view.completions(before):
            yield Completion(candidate, start_position=-len(word))


def _greeted_view(client: ChatClient) -> ChatView:
    """A view of ``client``'s new connection, its status window saying where and how."""
    server = f"{client.host}:{client.port}"
    view = ChatView(
        nick=client.nick, server=server,
        commands={**{name: spec.args for name, spec in COMMANDS.items()}, **LOCAL_COMMANDS},
        aliases={alias: spec.name for spec in COMMANDS.values() for alias in spec.aliases})
    welcome = client.welcome
    software = f" ({welcome.server_name})" if welcome is not None else ""
    view.system(f"Connected to {server}{software} as {client.nick}. "
                "/join #room to start talking; /help lists the commands.")
    view.system("Keys: Tab completes, Up/Down recall, Ctrl-N/Ctrl-P switch windows, "
                "PageUp/PageDown scroll, Ctrl-C quits.")
    return view


class TerminalUI:
    """The prompt_toolkit application around a ``ChatView`` and a ``ChatClient``."""

    def __init__(self, client: ChatClient, *, reconnect: bool) -> None:
        self.client = client
        self.reconnect = reconnect
        self.view = _greeted_view(client)
        self.exit_status = 0
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._quitting = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.input = Buffer(multiline=False, history=InMemoryHistory(),
                            completer=_ViewCompleter(self.view), accept_handler=self._accept,
                            complete_while_typing=False)
        self.pane = Window(
            FormattedTextControl(lambda: pane_fragments(self.view, width=self._pane_width()),
                                 focusable=False, show_cursor=False),
            wrap_lines=True, always_hide_cursor=True)
        self.entry = Window(
            BufferControl(self.input, input_processors=[
                BeforeInput(lambda: [("class:prompt", self.view.prompt())])]),
            height=1, get_horizontal_scroll=self._entry_scroll)
        self.app: Application[int] = Application(
            layout=Layout(self._screen(), focused_element=self.entry),
            key_bindings=self._key_bindings(), style=Style.from_dict(STYLE_RULES),
            full_screen=True, mouse_support=False)
        self.view.changed = self.app.invalidate

    def _screen(self) -> Container:
        """Title line; message pane beside the side panel; a rule; the input line."""
        view = self.view
        panel = Window(FormattedTextControl(lambda: panel_fragments(view), focusable=False,
                                            show_cursor=False),
                       width=PANEL_WIDTH, wrap_lines=False)
        body = VSplit([self.pane, Window(width=1, char="\u2502", style="class:separator"),
                       panel])
        title = Window(FormattedTextControl(lambda: [("class:title", view.title())]),
                       height=1, style="class:title")
        return FloatContainer(
            HSplit([title, body, Window(height=1, char="\u2500", style="class:separator"),
                    self.entry]),
            floats=[Float(xcursor=True, ycursor=True,
                          content=CompletionsMenu(max_height=8, scroll_offset=1))],
        )

    def _key_bindings(self) -> KeyBindings:
        view = self.view
        keys: dict[str, Callable[[KeyPressEvent], None]] = {
            "c-n": lambda event: view.cycle(+1),
            "c-p": lambda event: view.cycle(-1),
            "pageup": lambda event: view.scroll_by(self._page(), keep=self._page()),
            "pagedown": lambda event: view.scroll_by(-self._page(), keep=self._page()),
            "c-c": lambda event: self._spawn(self.quit()),
            "c-d": self._end_of_input,
            "c-l": lambda event: event.app.renderer.clear(),
        }
        bindings = KeyBindings()
        for key, handler in keys.items():
            bindings.add(key)(handler)
        return bindings

    def _end_of_input(self, event: KeyPressEvent) -> None:
        """Ctrl-D: quit on an empty line, else delete under the cursor."""
        if not self.input.text:
            self._spawn(self.quit())
        else:
            self.input.delete()

    def _accept(self, buffer: Buffer) -> bool:
        text = buffer.text
        if text.strip():
            self._lines.put_nowait(text)
        return False  # clear the line (it is kept in the history)

    def _entry_scroll(self, window: Window) -> int:
        info = window.render_info
        if info is None:
            return 0
        return input_scroll(window.horizontal_scroll,
                            get_cwidth(self.view.prompt() + self.input.text), info.window_width)

    def _pane_width(self) -> int:
        """Columns of the message pane: the screen's, less the side panel and its rule."""
        return max(1, self.app.output.get_size().columns - PANEL_WIDTH - 1)

    def _page(self) -> int:
        info = self.pane.render_info
        return max(1, (info.window_height if info is not None else 20) - 2)

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ running

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        client_log = logging.getLogger("chatproto.client")
        handler = _LogToView(self.view)
        client_log.addHandler(handler)
        propagate, client_log.propagate = client_log.propagate, False
        self._spawn(self._pump_events())
        self._spawn(self._run_lines())
        try:
            result = await self.app.run_async(set_exception_handler=False)
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(BaseException):
                    await task
            with contextlib.suppress(Exception):
                await self.client.close()
            client_log.removeHandler(handler)
            client_log.propagate = propagate
            loop.set_exception_handler(previous_handler)
        return result if isinstance(result, int) else self.exit_status

    def _loop_exception(self, loop: asyncio.AbstractEventLoop,
                        context: dict[str, object]) -> None:
        exc = context.get("exception")
        line = (describe_error(exc) if isinstance(exc, BaseException)
                else str(context.get("message", "internal error")))
        with contextlib.suppress(Exception):
            self.view.error(line)

    async def _pump_events(self) -> None:
        try:
            async for event in self.client.events():
                self.view.on_event(event)
                if isinstance(event, Reconnected):
                    self.view.resync({state.name: state.members
                                      for state in self.client.rooms.values()})
                elif isinstance(event, Disconnected) and not self._quitting:
                    self.view.system("Press Ctrl-C to exit." if not self.reconnect else
                                     "Gave up reconnecting. Press Ctrl-C to exit.")
        except Exception as exc:  # never a traceback on screen
            self.view.error(describe_error(exc))

    async def _run_lines(self) -> None:
        """Carry out what was typed, one line after the other (so messages keep their order)."""
        while True:
            text = await self._lines.get()
            try:
                await self.handle_line(text)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ChatError, ConnectionLost, CommandError...
                self.view.error(describe_error(exc, me=self.view.nick))

    async def handle_line(self, text: str) -> None:
        view = self.view
        words = text.split()
        if words and words[0].lower() == "/win":
            if len(words) != 2 or not words[1].isdigit() or not view.switch_index(int(words[1])):
                view.error("usage: /win N (a window number from the side panel)")
            return
        command = parse_command(text, view.current_room)
        handled_here = _HANDLED_HERE.get(command.name)
        if handled_here is not None:
            await handled_here(self, command)
            return
        if command.name == SAY and view.state is ConnectionState.RECONNECTING:
            self._give_back(text, "not connected (reconnecting)")
            return
        try:
            result = await execute(self.client, command)
        except (ChatError, CommandError, ConnectionLost) as exc:
            if command.name not in MESSAGE_COMMANDS:
                raise
            self._give_back(text, describe_error(exc, me=view.nick))
            return
        self.show_result(command, result)

    async def _switch(self, command: Command) -> None:
        """/switch changes windows: the view knows them (the library only knows rooms)."""
        if not self.view.switch(command.room or ""):
            self.view.error(f"no window {command.room}: /join it first")

    async def _quit_command(self, command: Command) -> None:
        await self.quit(command.text or "")

    def _give_back(self, text: str, why: str) -> None:
        """A message was not sent: say why, and put the line typed back to edit.

        Back into the input line if that is empty; if the person has typed on
        meanwhile, their new text stays and Up recalls the refused line.
        """
        if self.input.text:
            self.view.error(f"{why} -- not sent; Up recalls it")
            return
        self.input.document = Document(text, len(text))
        self.view.error(f"{why} -- not sent; it is back in the input line")

    def show_result(self, command: Command, result: CommandResult) -> None:
        """Show what a command did: in the view's own terms where it has them, else its lines."""
        show = _SHOWN.get(command.name)
        if show is None or not show(self, command, result):
            for line in result.lines:
                self.view.info(line)

    def _show_said(self, command: Command, result: CommandResult) -> bool:
        if not isinstance(result.value, Ok):
            return False
        self.view.own_message(command.room or "", command.text or "", result.value.timestamp_ms)
        return True

    def _show_private(self, command: Command, result: CommandResult) -> bool:
        if not isinstance(result.value, Ok):
            return False
        self.view.own_private(command.nick or "", command.text or "", result.value.timestamp_ms)
        return True

    def _show_joined(self, command: Command, result: CommandResult) -> bool:
        joined = result.value
        if not isinstance(joined, JoinResult):
            return False
        info = joined.info
        self.view.joined(info.room, topic=info.topic,
                         members=[member.nick for member in joined.members],
                         history=joined.history)
        if joined.gap is not None:
            self.view.on_event(HistoryGapDetected(info.room, joined.gap.first_seq,
                                                  joined.gap.last_seq))
        return True

    def _show_parted(self, command: Command, result: CommandResult) -> bool:
        self.view.parted(command.room or "")
        return True

    def _show_nick(self, command: Command, result: CommandResult) -> bool:
        self.view.set_nick(self.client.nick)
        return True

    def _show_logged_in(self, command: Command, result: CommandResult) -> bool:
        self.view.set_nick(self.client.nick)
        return False  # and the line that says so

    def _show_topic(self, command: Command, result: CommandResult) -> bool:
        if command.text is None:
            return False  # the topic shown: its line
        self.view.on_event(TopicChanged(room=command.room or "", topic=command.text,
                                        by=self.view.nick))
        return True

    def _show_history(self, command: Command, result: CommandResult) -> bool:
        page = result.value
        if not isinstance(page, HistoryPage):
            return False
        room = command.room or ""
        if page.gap is not None:
            self.view.on_event(HistoryGapDetected(room, page.gap.first_seq, page.gap.last_seq))
        self.view.show_history(room, page.messages)
        return True

    async def quit(self, reason: str = "") -> None:
        """QUIT (wait for BYE, briefly), then leave the full screen."""
        if self._quitting:
            return
        self._quitting = True
        connected = self.view.state is not ConnectionState.DISCONNECTED
        self.view.system("Quitting...")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.client.quit(reason)
        self.exit_status = 0 if connected else 1
        if self.app.is_running and not self.app.is_done:
            self.app.exit(result=self.exit_status)


_HANDLED_HERE: Mapping[str, Callable[[TerminalUI, Command], Awaitable[None]]] = {
    "switch": TerminalUI._switch,
    "quit": TerminalUI._quit_command,
}
"""Commands the terminal carries out itself instead of through ``commands.execute``."""

_SHOWN: Mapping[str, Callable[[TerminalUI, Command, CommandResult], bool]] = {
    SAY: TerminalUI._show_said,
    "msg": TerminalUI._show_private,
    "join": TerminalUI._show_joined,
    "part": TerminalUI._show_parted,
    "nick": TerminalUI._show_nick,
    "login": TerminalUI._show_logged_in,
    "topic": TerminalUI._show_topic,
    "history": TerminalUI._show_history,
}
"""Results the view shows in its own terms; False from one: show the result's lines too.
Every other command's result is its lines."""


async def run_tui(client: ChatClient, *, reconnect: bool) -> int:
    """Run the full-screen client on ``client`` until the user quits; return the exit status.

    0 after a clean /quit (or Ctrl-C); 1 when the connection had already ended,
    in which case the reason is printed (one line) on stderr once the screen
    is restored.
    """
    ui = TerminalUI(client, reconnect=reconnect)
    status = await ui.run()
    if status != 0 and ui.view.state is ConnectionState.DISCONNECTED:
        print(f"chatproto-client: {ui.view.state_text()}", file=sys.stderr)
    return status
