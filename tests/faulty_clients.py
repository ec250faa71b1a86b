"""Deliberately faulty clients: the reference client with ONE rule broken.

    python tests/faulty_clients.py FAULT [reference client flags...]

run from the repository root, applies the patch of ``FAULTS[FAULT]`` and then
runs the reference client's own ``main`` with the flags (``--json``: the mode
the conformance kit starts it in). ``tests/test_conformance_client_faults.py``
runs the kit's client suite against each of them: the cases in ``Fault.cases``
must report exactly the requirements in ``Fault.breaks``, and every other case
must pass, which shows both that the kit catches the fault and that it blames
the right rule. Each fault swaps one function of the reference client for the
bug a student could plausibly write, the wrong line marked ``BUG``; faults
apply to this process only.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Fault:
    """One deliberate bug: what it does, the requirements it breaks, where it shows."""

    description: str
    breaks: frozenset[str]
    cases: str
    """The kit's ``-k`` selection that runs the cases it shows in, and some it must pass."""
    patch: Callable[[], None]


def _typed_ahead_text_dropped() -> None:
    """Lines typed while a /join waits for its answer are thrown away.

    After a JOIN the loop "flushes" the input queue, as a terminal client that
    discards keystrokes made during a slow command would: text typed right after
    /join never reaches the server. Nothing on the wire is malformed; what breaks
    is that the client does not send what it was asked to send.
    """
    import reference_client.__main__ as cli
    from reference_client.client import ChatClient
    from reference_client.commands import Command, CommandResult, execute

    queues: list[asyncio.Queue[str | None]] = []
    start_reader = cli._start_stdin_reader

    def start_stdin_reader(loop: asyncio.AbstractEventLoop,
                           queue: asyncio.Queue[str | None]) -> None:
        queues.append(queue)
        start_reader(loop, queue)

    async def execute_then_flush(client: ChatClient, command: Command) -> CommandResult:
        result = await execute(client, command)
        if command.name == "join":
            for queue in queues:
                while not queue.empty():  # BUG: what was typed while busy is dropped
                    if queue.get_nowait() is None:
                        queue.put_nowait(None)  # (the end of stdin still ends the session)
                        break
        return result

    cli._start_stdin_reader = start_stdin_reader
    cli.__dict__["execute"] = execute_then_flush  # the name run_json calls


def _quit_before_welcome() -> None:
    """A client that gives up before WELCOME still says goodbye with QUIT.

    Asked to quit while its HELLO is unanswered, or after a HELLO refused
    non-fatally, it writes a QUIT before closing, bypassing the core that would
    refuse it: before WELCOME a client leaves by closing the connection.
    """
    from chatproto import ERROR_REGISTRY, encode, known_error_code
    from chatproto.messages import Quit
    from reference_client.client import ChatClient, ChatError

    drop_connection = ChatClient._drop_connection

    async def polite_drop(self: ChatClient) -> None:
        task = asyncio.current_task()
        refused = sys.exc_info()[1]
        code = known_error_code(refused.code) if isinstance(refused, ChatError) else None
        leaving = (task is not None and task.cancelling() > 0) or (
            code is not None and not ERROR_REGISTRY[code].fatal)
        if self.welcome is None and self._writer is not None and leaving:
            # BUG: "always say goodbye", though no WELCOME came
            self._writer.write(encode(Quit(request_id=self._pending.next_id(), reason="")))
        await drop_connection(self)

    ChatClient._drop_connection = polite_drop  # type: ignore[method-assign]


def _no_client_msg_id() -> None:
    """Every message goes out with ``client_msg_id`` 0 ("none"), so a resend after a lost
    connection could be delivered twice: CP-MSG-12."""
    from reference_client.client import ChatClient

    def next_client_msg_id(self: ChatClient) -> int:
        return 0  # BUG: "the server numbers messages anyway"

    ChatClient._next_client_msg_id = next_client_msg_id  # type: ignore[method-assign]


def _rate_limit_not_waited_out() -> None:
    """RATE_LIMITED is reported but its retry_after_ms forgotten: a message asked for
    again goes out at once (CP-RATE-5)."""
    from reference_client.client import ChatClient

    class Forgetful(dict[type, float]):
        def __setitem__(self, key: type, value: float) -> None:
            pass  # BUG: the wait is never recorded

    init = ChatClient.__init__

    def patched_init(self: ChatClient, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        self._rate_limited_until = Forgetful()

    ChatClient.__init__ = patched_init  # type: ignore[method-assign]


def _error_echoes_request_id() -> None:
    """The ERROR a client sends before closing on a server's protocol violation carries
    the request_id of the frame it objects to (a second WELCOME's, say), where a client's
    ERROR answers no request and carries 0 (CP-ERR-9, its check CP-ERR-3; issue 14 C4)."""
    import reference_client.client as client_module
    from chatproto import ProtocolError
    from chatproto.messages import Error

    error_message = vars(client_module)["error_message"]

    class EchoingError(Error):
        def model_copy(self, *, update: Mapping[str, Any] | None = None,
                       deep: bool = False) -> Self:
            return self  # BUG: "answer the frame it is about": the request_id 0 is dropped

    def echoing(exc: ProtocolError) -> Error:
        plain = error_message(exc)
        return EchoingError(request_id=exc.request_id, code=plain.code, fatal=plain.fatal,
                            detail=plain.detail)

    vars(client_module)["error_message"] = echoing  # the name the read loop calls


def _faults() -> dict[str, Fault]:
    sys.path.insert(0, str(ROOT))
    from conformance.client_monitor import QUIT_BEFORE_WELCOME
    from conformance.suites.client.commands import TYPED_TEXT_SENT

    return {
        "typed_ahead_text_dropped": Fault(
            "text typed right after /join is dropped", frozenset({TYPED_TEXT_SENT}),
            "commands", _typed_ahead_text_dropped),
        "no_client_msg_id": Fault(
            "sends every message with client_msg_id 0", frozenset({"CP-MSG-12"}),
            "commands", _no_client_msg_id),
        "rate_limit_not_waited_out": Fault(
            "sends a message again at once after RATE_LIMITED", frozenset({"CP-RATE-5"}),
            "commands", _rate_limit_not_waited_out),
        "quit_before_welcome": Fault(
            "leaves with QUIT before WELCOME (asked to quit, or its HELLO refused)",
            frozenset({QUIT_BEFORE_WELCOME}), "commands or handshake", _quit_before_welcome),
        "error_echoes_request_id": Fault(
            "its ERROR before closing carries the offending frame's request_id, not 0",
            frozenset({"CP-ERR-3"}), "states", _error_echoes_request_id),
    }


FAULTS = _faults()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in FAULTS:
        print(f"usage: python tests/faulty_clients.py FAULT [client flags...]; FAULT is one "
              f"of {', '.join(FAULTS)}", file=sys.stderr)
        return 2
    fault = FAULTS[argv[0]]
    fault.patch()
    from reference_client.__main__ import main as client_main

    return client_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
