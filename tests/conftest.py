"""Fixtures for the reference server's integration tests.

``async def`` tests run in a fresh event loop of their own (see
``pytest_pyfunc_call`` below: no pytest plugin is needed): asyncio's, or
uvloop's with ``--event-loop uvloop``. Fixtures that
own asyncio objects register their async setup and teardown with
``AsyncResources``; the hook runs the setups before the test and the
teardowns after it, inside the test's loop, whether the test passed or not.

* ``server``: an in-process ``ChatServer`` on 127.0.0.1, port 0, its data in
  ``tmp_path``. Configure it per test with
  ``@pytest.mark.server_config(motd="hi", history_depth=5, limits={...})``.
* ``make_server``: ``await make_server(**config)`` starts another one.
* ``client_factory``: ``await client_factory("alice")`` gives a connected
  client that has done HELLO as alice (``None`` for no HELLO; ``server=`` to
  pick another server). Every client is closed at teardown.
* ``make_server_process``: ``ServerProcess`` objects (``python -m
  reference_server``); every process is stopped at teardown.
* ``pki``: a throw-away CA and a certificate for 127.0.0.1 (``Pki``), one per module.
* ``clients``: ``await clients("alice", port, **options)`` gives a watched,
  connected ``reference_client.ChatClient`` (``ClientMaker``); all closed at teardown.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from client_tools import ClientMaker
from server_harness import HOST, SERVER_ENTRY, ChatTestClient, HarnessError, Pki, ServerProcess

from chatproto import Limits

ASYNC_TEST_TIMEOUT = 100.0
"""Upper bound for one async test inside its loop (pytest-timeout's 120 s is the outer one)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--event-loop", choices=("asyncio", "uvloop"), default="asyncio",
        help="the event loop that runs async tests and so the in-process servers "
        "(tests/test_event_loops.py runs the server suite under uvloop this way)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "server_config(**config): ServerConfig fields for the `server` fixture "
        "(limits may be a dict of Limits fields)")
    config.addinivalue_line("markers", "slow: a test that waits for real timers (seconds)")


# ---------------------------------------------------------------- async tests


class AsyncResources:
    """Async setups and teardowns of one test, run in that test's loop."""

    def __init__(self) -> None:
        self._setups: list[Callable[[], Awaitable[None]]] = []
        self._teardowns: list[tuple[int, int, Callable[[], Awaitable[None]]]] = []

    def on_setup(self, setup: Callable[[], Awaitable[None]]) -> None:
        self._setups.append(setup)

    def on_teardown(self, teardown: Callable[[], Awaitable[None]], *, order: int = 0) -> None:
        """Lower ``order`` runs first; equal orders run last-registered first."""
        self._teardowns.append((order, -len(self._teardowns), teardown))

    async def setup(self) -> None:
        setups, self._setups = self._setups, []
        for setup in setups:
            await setup()

    async def teardown(self) -> None:
        errors: list[BaseException] = []
        teardowns, self._teardowns = sorted(self._teardowns, key=lambda t: t[:2]), []
        for _, _, teardown in teardowns:
            try:
                async with asyncio.timeout(30):
                    await teardown()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def async_resources() -> AsyncResources:
    return AsyncResources()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    resources = pyfuncitem.funcargs.get("async_resources")
    test = pyfuncitem.obj

    async def run() -> None:
        try:
            if isinstance(resources, AsyncResources):
                await resources.setup()
            async with asyncio.timeout(ASYNC_TEST_TIMEOUT):
                await test(**kwargs)
        finally:
            if isinstance(resources, AsyncResources):
                await resources.teardown()

    with asyncio.Runner(loop_factory=_loop_factory(pyfuncitem.config)) as runner:
        runner.run(run())
    return True


def _loop_factory(config: pytest.Config) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if config.getoption("--event-loop") == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


# --------------------------------------------------------- in-process servers


def server_config(data_dir: Path, **config: Any) -> Any:
    """A ServerConfig for 127.0.0.1 port 0, ``limits`` given as a dict or Limits."""
    from reference_server.config import ServerConfig

    limits = config.pop("limits", None)
    if isinstance(limits, dict):
        limits = Limits(**limits)
    if limits is not None:
        config["limits"] = limits
    config.setdefault("host", HOST)
    config.setdefault("port", 0)
    config.setdefault("data_dir", data_dir)
    config.setdefault("shutdown_grace_s", 1.0)
    return ServerConfig(**config)


class RunningServer:
    """An in-process ChatServer; ``port`` is valid once started."""

    def __init__(self, config: Any) -> None:
        from reference_server.server import ChatServer

        self.config = config
        self.server = ChatServer(config)
        self.started = False
        self.stopped = False

    @property
    def port(self) -> int:
        if not self.started:
            raise HarnessError("the server is not started")
        return int(self.server.port)

    @property
    def limits(self) -> Limits:
        limits = self.config.limits
        assert isinstance(limits, Limits)
        return limits

    async def start(self) -> RunningServer:
        if not self.started:
            await self.server.start()
            self.started = True
        return self

    async def shutdown(self) -> None:
        if self.started and not self.stopped:
            self.stopped = True
            await self.server.shutdown()


MakeServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
def make_server(tmp_path: Path, async_resources: AsyncResources) -> MakeServer:
    count = 0

    async def make(**config: Any) -> RunningServer:
        nonlocal count
        count += 1
        data_dir = config.pop("data_dir", None) or tmp_path / f"server{count}"
        data_dir.mkdir(parents=True, exist_ok=True)
        running = RunningServer(server_config(data_dir, **config))
        async_resources.on_teardown(running.shutdown, order=10)
        return await running.start()

    return make


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path,
           async_resources: AsyncResources) -> RunningServer:
    marker = request.node.get_closest_marker("server_config")
    config = dict(marker.kwargs) if marker else {}
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    running = RunningServer(server_config(data_dir, **config))

    async def start() -> None:
        await running.start()

    async_resources.on_setup(start)
    async_resources.on_teardown(running.shutdown, order=10)
    return running


# -------------------------------------------------------------------- clients


class ClientFactory:
    """Makes connected clients; closes every one of them at teardown."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self.clients: list[ChatTestClient] = []

    async def __call__(
        self,
        nick: str | None = None,
        password: str = "",
        *,
        server: RunningServer | ServerProcess | int | None = None,
        **client_options: Any,
    ) -> ChatTestClient:
        """A client connected to ``server`` (default: the ``server`` fixture).

        With a ``nick`` it has also done HELLO (raising HelloRefused if refused).
        """
        if server is None:
            server = self._request.getfixturevalue("server")
        if isinstance(server, RunningServer):
            await server.start()
            port = server.port
        elif isinstance(server, ServerProcess):
            port = server.port
        else:
            port = server
        client = ChatTestClient(port, name=nick or "", **client_options)
        self.clients.append(client)
        await client.connect()
        if nick is not None:
            await client.hello(nick, password)
        return client

    async def close_all(self) -> None:
        clients, self.clients = self.clients, []
        await asyncio.gather(*(client.close() for client in clients))
        faults = [f"{client!r}: {fault}" for client in clients for fault in client.protocol_faults]
        if faults:
            raise HarnessError("the server broke the protocol:\n" + "\n".join(faults))


@pytest.fixture
def client_factory(request: pytest.FixtureRequest,
                   async_resources: AsyncResources) -> ClientFactory:
    factory = ClientFactory(request)
    async_resources.on_teardown(factory.close_all, order=0)
    return factory


# ------------------------------------------------------------- server processes


MakeServerProcess = Callable[..., ServerProcess]


@pytest.fixture
def make_server_process(tmp_path: Path) -> Iterator[MakeServerProcess]:
    """``make_server_process(*cli_args, data_dir=None, entry=...)``: a ServerProcess, not
    started yet (``entry`` replaces ``-m reference_server``)."""
    processes: list[ServerProcess] = []

    def make(*args: str, data_dir: Path | None = None,
             entry: Sequence[str] = SERVER_ENTRY) -> ServerProcess:
        if data_dir is None:
            data_dir = tmp_path / f"process{len(processes) + 1}"
        data_dir.mkdir(parents=True, exist_ok=True)
        process = ServerProcess(data_dir, *args, entry=entry)
        processes.append(process)
        return process

    yield make
    for process in processes:
        process.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.issue(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def clients(async_resources: AsyncResources) -> ClientMaker:
    maker = ClientMaker()
    async_resources.on_teardown(maker.close_all, order=0)
    return maker
