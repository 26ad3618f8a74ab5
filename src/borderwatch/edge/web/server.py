"""uvicorn inside the service's own event loop: one more task beside the node's or centre's.

The service owns SIGINT and SIGTERM (``edge/signals.py``); this server installs no handler of
its own and stops when its task is cancelled or :meth:`ConsoleServer.stop` is called, closing
the WebSocket connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from borderwatch.config.web import parse_http
from borderwatch.edge.web.app import create_app
from borderwatch.edge.web.console import Console
from borderwatch.errors import InputError

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ConsoleServer:
    """Serves a console on ``HOST:PORT`` (port 0: a free one) while :meth:`run` runs.

    Args:
        console: the console to serve.
        http: ``HOST:PORT``.
        sock: a listening socket to serve on instead of opening one.
        static_dir: the page's bundle (default: the package's ``static/``).
    """

    def __init__(
        self,
        console: Console,
        http: str,
        *,
        sock: socket.socket | None = None,
        static_dir: Path | None = None,
    ) -> None:
        self.console = console
        try:
            self.host, self.port = parse_http(http)
        except ValueError as exc:
            raise InputError(f"--http {exc}") from None
        self.started = asyncio.Event()
        self._socket: socket.socket | None = sock
        if sock is not None:
            self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            create_app(console) if static_dir is None else create_app(console, static_dir),
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="websockets-sansio",
            ws_max_size=console.settings.max_message_bytes,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        self.server = _EmbeddedServer(config)

    @property
    def url(self) -> str:
        """``http://host:port/`` once started (the real port when 0 was asked)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def bind(self) -> None:
        """Open the listening socket now (so a bad or busy address fails at start-up)."""
        if self._socket is None:
            self._socket = listen(self.host, self.port)
            self.port = int(self._socket.getsockname()[1])

    async def run(self) -> None:
        """Serve until cancelled or stopped; the console's frame task runs alongside."""
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        log.info("console of %s %s at %s", self.console.role, self.console.id, self.url)
        async with asyncio.TaskGroup() as tasks:
            ticks = tasks.create_task(self.console.run(), name="console-ticks")
            serving = tasks.create_task(self._serve(), name="console-http")
            try:
                await serving
            finally:
                ticks.cancel()

    async def _serve(self) -> None:
        assert self._socket is not None
        task = asyncio.ensure_future(self.server.serve(sockets=[self._socket]))
        try:
            while not self.server.started and not task.done():
                await asyncio.sleep(0.01)
            self.started.set()
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await task
            raise
        finally:
            self._socket.close()

    def stop(self) -> None:
        """Ask the server to close its connections and end."""
        self.server.should_exit = True


def listen(host: str, port: int, *, tries: int = 1) -> socket.socket:
    """A listening TCP socket on ``host:port``, or on the next free port of ``tries``.

    Raises:
        InputError: the address is bad or every port tried is taken.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    error: OSError | None = None
    for candidate in range(port, port + max(1, tries)):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, candidate))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            error = exc
            if port == 0:
                break
            continue
        return sock
    raise InputError(f"console: cannot listen on {host}:{port}: {error}")


async def serve_alongside(
    server: ConsoleServer | None,
    service: Callable[[], Awaitable[None]] | Coroutine[Any, Any, None],
) -> None:
    """Run the service (``service()``, or the coroutine given) and the console server
    together; when the service ends the server stops (its connections closed) and this
    returns. The address is taken first, so a busy one fails before the service starts; a
    console that fails later is logged and the service goes on without it."""
    if server is not None:
        try:
            server.bind()
        except BaseException:
            if isinstance(service, Coroutine):
                service.close()  # never started
            raise
    work = service if isinstance(service, Coroutine) else service()
    if server is None:
        await work
        return
    async with asyncio.TaskGroup() as tasks:
        console = tasks.create_task(_guarded(server), name="console")
        try:
            await work
        finally:
            server.stop()
            try:
                async with asyncio.timeout(5.0):
                    await asyncio.shield(console)
            except TimeoutError:
                console.cancel()


async def _guarded(server: ConsoleServer) -> None:
    try:
        await server.run()
    except Exception:  # the service must not end with its console
        server.console.count("server_failed")
        log.exception("console of %s %s failed; not served", server.console.role, server.console.id)
