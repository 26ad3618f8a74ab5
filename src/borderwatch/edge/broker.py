"""An MQTT broker started for a demo or a test, so that nothing has to be installed first.

``async with EmbeddedBroker() as url:`` starts a broker bound to 127.0.0.1 on a free port and
yields ``mqtt://127.0.0.1:PORT``; leaving the block stops it and frees the port. In the field a
node or centre uses a real broker instead; :func:`mqtt_broker` picks: the configured URL when
there is one, else an embedded broker.

The node and centre rely on MQTT 5 (QoS 1, retained messages, last wills, request/response
with response topic and correlation data, persistent sessions with an expiry). No pure-Python
broker forwards all of that (``docs/mqtt.md``, "Embedded broker"), so the embedded broker is
one of two real brokers, each run as a child process with a generated configuration:

* ``mosquitto``, the field broker, when its binary is found (:func:`find_broker_binary`):
  MQTT 5, 3.1.1 and 3.1 on the one port;
* otherwise rumqttd, compiled into the ``iotcore`` wheel: MQTT 5 only on the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, get_args

from borderwatch.errors import BorderwatchError

log = logging.getLogger(__name__)

BrokerBackend = Literal["auto", "mosquitto", "iotcore"]
"""Which broker to run: ``auto`` takes mosquitto when found, else iotcore."""

#: Environment variable naming the mosquitto binary (checked first).
MOSQUITTO_ENV: Final = "BORDERWATCH_MOSQUITTO"
#: Where distributions install mosquitto outside the usual PATH of a user (sbin).
_MOSQUITTO_PLACES: Final = (
    "/usr/sbin/mosquitto",
    "/usr/local/sbin/mosquitto",
    "/opt/homebrew/sbin/mosquitto",
)
#: Ports tried when the free port found was taken before the broker could bind it.
_PORT_ATTEMPTS: Final = 3
#: Seconds between checks that the broker accepts connections while it starts.
_POLL_S: Final = 0.02
#: Lines of the broker's log quoted in an error.
_LOG_TAIL_LINES: Final = 20


class BrokerError(BorderwatchError):
    """No embedded broker could be started (none installed, or it failed to start)."""


def find_broker_binary() -> str | None:
    """Path of the mosquitto binary: ``$BORDERWATCH_MOSQUITTO``, then PATH, then the sbin
    folders where packages install it; None when there is none."""
    candidates = [os.environ.get(MOSQUITTO_ENV), shutil.which("mosquitto"), *_MOSQUITTO_PLACES]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _iotcore_installed() -> bool:
    return importlib.util.find_spec("iotcore") is not None


#: Ports the embedded broker listens on: below the kernel's ephemeral range (see _free_port).
_PORT_RANGE: Final = (20000, 32000)


def _free_port(host: str) -> int:
    """A TCP port on ``host`` that was free a moment ago (the broker may still lose it).

    Chosen below the kernel's ephemeral range (Linux: 32768-60999), not by binding port 0:
    while the broker is down (an outage, a restart), a client that keeps reconnecting to a
    port inside that range can be given the same port as its own source port, and TCP then
    connects the client to itself; it holds the port, and the broker cannot listen on it
    again.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(*_PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise BrokerError(f"no free port on {host} in {_PORT_RANGE[0]}-{_PORT_RANGE[1] - 1}")


def _mosquitto_config(host: str, port: int) -> str:
    return (
        f"listener {port} {host}\n"
        "allow_anonymous true\n"
        # A demo broker keeps nothing across runs; the node's outbox is what survives.
        "persistence false\n"
        "set_tcp_nodelay true\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
        "log_type notice\n"
    )


def _rumqttd_config(host: str, port: int) -> str:
    # rumqttd's defaults (20 kB payloads, 100 in flight) are below what a node may send: a
    # health report of many sensors, or an outbox drained with max_inflight up to 1000.
    return f"""\
id = 0

[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 1000
max_segment_size = 104857600
max_segment_count = 10

[v5.1]
name = "v5-1"
listen = "{host}:{port}"
next_connection_delay_ms = 1

[v5.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 1000
"""


class EmbeddedBroker:
    """A broker child process on ``host`` and a free port, for the block's duration.

    Args:
        backend: ``auto`` (mosquitto when :func:`find_broker_binary` finds it, else iotcore),
            or one of them by name.
        host: address to listen on; loopback unless other machines must reach it.
        start_timeout_s: longest wait for the broker to accept connections, s.

    After entering, ``url``, ``port``, ``backend`` (the one running) and ``pid`` are set.
    """

    def __init__(
        self,
        backend: BrokerBackend = "auto",
        *,
        host: str = "127.0.0.1",
        start_timeout_s: float = 10.0,
        persistent: bool = False,
    ) -> None:
        if backend not in get_args(BrokerBackend):
            raise ValueError(f"unknown broker backend {backend!r}")
        if persistent and backend == "iotcore":
            raise ValueError("only the mosquitto backend keeps sessions across a restart")
        self.requested: BrokerBackend = backend
        self.persistent = persistent
        self.host = host
        self.start_timeout_s = start_timeout_s
        self.backend: BrokerBackend | None = None
        self.port: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``mqtt://HOST:PORT`` of the running broker."""
        if self.port is None:
            raise BrokerError("the embedded broker is not running")
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the broker while it runs."""
        return None if self._process is None else self._process.pid

    async def __aenter__(self) -> str:
        backend = self._choose()
        self._workdir = tempfile.TemporaryDirectory(prefix="borderwatch-broker-")
        try:
            await self._start(backend, Path(self._workdir.name))
        except BaseException:
            await self._stop()
            raise
        self.backend = backend
        log.info("embedded MQTT broker (%s) listening on %s", backend, self.url)
        return self.url

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stop()

    def _choose(self) -> Literal["mosquitto", "iotcore"]:
        if self.requested == "mosquitto":
            if find_broker_binary() is None:
                raise BrokerError(_NO_MOSQUITTO)
            return "mosquitto"
        if self.requested == "iotcore":
            if not _iotcore_installed():
                raise BrokerError("the iotcore package (rumqttd) is not installed")
            return "iotcore"
        if find_broker_binary() is not None:
            return "mosquitto"
        if self.persistent:
            raise BrokerError(f"{_NO_MOSQUITTO}; only mosquitto keeps sessions across a restart")
        if _iotcore_installed():
            log.info(
                "%s; the embedded broker is rumqttd (iotcore), which speaks MQTT 5 only",
                _NO_MOSQUITTO,
            )
            return "iotcore"
        raise BrokerError(
            f"no MQTT broker to embed: {_NO_MOSQUITTO}, and the iotcore package is not "
            "installed. Install mosquitto (e.g. apt install mosquitto) or configure the URL "
            "of a running broker."
        )

    async def interrupt(self, seconds: float) -> None:
        """Stop the broker for ``seconds``, then start it again on the same port: an outage
        as its clients see it (every connection drops, none is accepted meanwhile; sessions
        and retained messages are lost, as with a broker that restarts without persistence).

        Raises:
            BrokerError: the broker is not running, or did not come back.
        """
        if self.port is None or self.backend is None or self._workdir is None:
            raise BrokerError("the embedded broker is not running")
        backend: Literal["mosquitto", "iotcore"] = (
            "mosquitto" if self.backend == "mosquitto" else "iotcore"
        )
        port, workdir = self.port, Path(self._workdir.name)
        await self._stop_process()
        log.info("embedded MQTT broker stopped for %g s", seconds)
        await asyncio.sleep(seconds)
        if not await self._spawn(backend, port, workdir):
            await self._stop_process()
            tail = _tail(workdir / f"{backend}-{port}.log")
            raise BrokerError(f"{backend} did not restart on port {port}: {tail}")
        log.info("embedded MQTT broker back on %s", self.url)

    async def _start(self, backend: Literal["mosquitto", "iotcore"], workdir: Path) -> None:
        failures: list[str] = []
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port(self.host)
            if await self._spawn(backend, port, workdir):
                self.port = port
                return
            await self._stop_process()
            failures.append(f"port {port}: {_tail(workdir / f'{backend}-{port}.log')}")
        raise BrokerError(f"{backend} did not start: " + " | ".join(failures))

    async def _spawn(
        self, backend: Literal["mosquitto", "iotcore"], port: int, workdir: Path
    ) -> bool:
        """Start the broker process on ``port``; True once it accepts connections."""
        argv = _command(backend, self.host, port, workdir, persistent=self.persistent)
        with (workdir / f"{backend}-{port}.log").open("ab") as err:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                # rumqttd's child stops when this pipe closes: it follows a parent that
                # died without stopping it.
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
            )
        return await self._listening(port)

    async def _listening(self, port: int) -> bool:
        """True once the broker accepts connections; False when it exits or takes too long."""
        process = self._process
        assert process is not None
        try:
            async with asyncio.timeout(self.start_timeout_s):
                while process.returncode is None:
                    try:
                        _, writer = await asyncio.open_connection(self.host, port)
                    except OSError:
                        await asyncio.sleep(_POLL_S)
                        continue
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                    # Another program may have taken the port first: only ours is alive.
                    return process.returncode is None
        except TimeoutError:
            log.warning("broker on port %d not listening after %.1f s", port, self.start_timeout_s)
        return False

    async def _stop(self) -> None:
        await self._stop_process()
        self.port = None
        self.backend = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    async def _stop_process(self) -> None:
        """Terminate the broker; killed when it does not exit within 5 s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is not None:
            log.warning("embedded MQTT broker had exited with code %d", process.returncode)
        else:
            process.terminate()
            try:
                async with asyncio.timeout(5.0):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if process.stdin is not None:
            process.stdin.close()


_NO_MOSQUITTO: Final = (
    f"no mosquitto binary (${MOSQUITTO_ENV}, PATH, {', '.join(_MOSQUITTO_PLACES)})"
)


def _command(
    backend: Literal["mosquitto", "iotcore"],
    host: str,
    port: int,
    workdir: Path,
    *,
    persistent: bool = False,
) -> list[str]:
    """The command line of a broker on ``host:port``, its configuration written to workdir."""
    if backend == "mosquitto":
        binary = find_broker_binary()
        if binary is None:
            raise BrokerError(_NO_MOSQUITTO)
        config = workdir / f"mosquitto-{port}.conf"
        text = _mosquitto_config(host, port)
        if persistent:
            # As a centre's broker runs (config/mosquitto/centre.conf): sessions, their
            # subscriptions and queued QoS 1 messages survive a restart, and a persistent
            # session may hold many messages while its client is away.
            text = text.replace(
                "persistence false\n",
                f"persistence true\npersistence_location {workdir}/\nmax_queued_messages 100000\n",
            )
            if os.geteuid() == 0:
                # Started by root, mosquitto runs as user "mosquitto", which cannot write its
                # database into this process's private working folder.
                text += "user root\n"
        config.write_text(text)
        return [binary, "-c", str(config)]
    config = workdir / f"rumqttd-{port}.toml"
    config.write_text(_rumqttd_config(host, port))
    return [sys.executable, "-m", __name__, str(config)]


def _tail(logfile: Path) -> str:
    try:
        lines = logfile.read_text(errors="replace").strip().splitlines()
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return " / ".join(lines[-_LOG_TAIL_LINES:]) or "(no output)"


@contextlib.asynccontextmanager
async def mqtt_broker(url: str | None = None) -> AsyncIterator[str]:
    """The broker to use: ``url`` when one is configured (nothing is started), else an
    :class:`EmbeddedBroker` for the block's duration."""
    if url:
        yield url
        return
    async with EmbeddedBroker() as embedded_url:
        yield embedded_url


# ------------------------------------------------------------------ rumqttd child process


def _exit_when_parent_leaves() -> None:
    try:
        sys.stdin.buffer.read()  # returns when the parent's end of the pipe closes
    finally:
        os._exit(0)


def _serve_rumqttd(config_path: str) -> None:
    """Run rumqttd (iotcore) on a configuration file until terminated or orphaned."""
    from iotcore.iotcore import IotCoreBroker

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # rumqttd reports every routed packet as an error-level tracing span; keep the log readable.
    logging.getLogger("rumqttd").setLevel(logging.CRITICAL)
    threading.Thread(target=_exit_when_parent_leaves, daemon=True).start()
    IotCoreBroker(config_path=config_path).run_forever()


if __name__ == "__main__":
    _serve_rumqttd(sys.argv[1])
