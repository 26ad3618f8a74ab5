"""Shared fixtures: a real Mosquitto broker on a free loopback port.

``mosquitto`` (session-scoped) yields the broker's URL ``mqtt://127.0.0.1:PORT``; tests that
stop and start a broker use ``mosquitto_broker`` (function-scoped), a :class:`MosquittoBroker`
of their own with :meth:`~MosquittoBroker.stop` and :meth:`~MosquittoBroker.start` on the same
port. Both are skipped, with the reason, only when the mosquitto binary is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from borderwatch.edge.broker import _free_port

MOSQUITTO = os.environ.get("BORDERWATCH_MOSQUITTO", "/usr/sbin/mosquitto")
#: Longest wait for a broker to accept connections, s.
START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral range:
    a client reconnecting to a stopped broker's port inside that range can connect to itself
    and keep the broker from listening again (``borderwatch.edge.broker._free_port``)."""
    return _free_port("127.0.0.1")


def _mosquitto_binary() -> str:
    path = MOSQUITTO if os.access(MOSQUITTO, os.X_OK) else shutil.which("mosquitto")
    if path is None:
        pytest.skip(f"mosquitto broker binary not found at {MOSQUITTO} or on PATH")
    return path


class MosquittoBroker:
    """A mosquitto process listening on ``127.0.0.1:port`` with a throw-away configuration."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._config = workdir / "mosquitto.conf"
        self._log = workdir / "mosquitto.log"
        self._config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the broker and wait until it accepts TCP connections."""
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self._config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self._log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port}")

    def stop(self) -> None:
        """Terminate the broker (killed if it does not exit within 5 s)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL ``mqtt://127.0.0.1:PORT`` of a Mosquitto broker shared by the test session."""
    broker = MosquittoBroker(_mosquitto_binary(), tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A Mosquitto broker of the test's own, started; the test may stop and restart it."""
    broker = MosquittoBroker(_mosquitto_binary(), tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
