"""Serial ports and pyserial URLs (``socket://``, ``rfc2217://``, ``loop://``) for asyncio.

pyserial opens everything (``serial.serial_for_url``); reading must not block the event loop:

* A port that is a selectable file descriptor and whose ``read`` selects on it itself (a POSIX
  serial device or pseudo-terminal, ``socket://``) is read on the event loop: ``add_reader``
  waits for readiness, then a non-blocking ``read`` (timeout 0) takes what is there.
* Other ports (``loop://`` has no descriptor; ``rfc2217://`` has one, but its own reader thread
  consumes the socket, so its readiness says nothing) are read in a worker thread with a short
  timeout.

Closing goes through the reader's worker thread, so a port is closed only once a read in flight
has returned; writes run in a thread of their own. An unplugged USB adaptor shows as a read
error (or readiness with no data), which is reported as ``disconnected``.
"""

from __future__ import annotations

import asyncio
import queue
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import serial
from serial.urlhandler import protocol_socket

from borderwatch.config.devices import DeviceUrl
from borderwatch.drivers.transport import READ_SIZE, Transport, TransportError, TransportSettings

#: Read timeout of ports read in the worker thread, s: the latency of noticing a close.
THREAD_READ_TIMEOUT_S = 0.1
#: Longest a write may block, s (a serial line with flow control held off).
WRITE_TIMEOUT_S = 2.0

_SELECTABLE: tuple[type[Any], ...] = (protocol_socket.Serial,)
if sys.platform != "win32":
    from serial import serialposix

    _SELECTABLE = (*_SELECTABLE, serialposix.Serial)

# pyserial raises SerialException for its own errors, OSError from the system and ValueError
# for bad settings or URLs.
_ERRORS = (serial.SerialException, OSError, ValueError)


class SerialTransport(Transport):
    """A serial port or pyserial URL, opened with ``serial.serial_for_url``."""

    def __init__(self, port: Any, executor: ThreadPoolExecutor, url: str) -> None:
        super().__init__()
        self._port = port
        self._executor = executor
        self._url = url
        self._selectable = isinstance(port, _SELECTABLE)

    @classmethod
    async def open(cls, endpoint: DeviceUrl, settings: TransportSettings) -> Self:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"serial-{settings.name}")

        def open_port() -> Any:
            return serial.serial_for_url(
                endpoint.url,
                baudrate=settings.baudrate,
                timeout=THREAD_READ_TIMEOUT_S,
                write_timeout=WRITE_TIMEOUT_S,
            )

        try:
            port = await asyncio.wait_for(
                loop.run_in_executor(executor, open_port), settings.open_timeout_s
            )
        except (*_ERRORS, TimeoutError) as exc:
            executor.shutdown(wait=False)
            raise TransportError("open_failed", f"{endpoint.url}: {exc or 'timed out'}") from exc
        transport = cls(port, executor, endpoint.url)
        if transport._selectable:
            port.timeout = 0  # reads on the event loop never wait
        return transport

    async def read(self) -> bytes:
        try:
            if self._selectable:
                return await self._read_selectable()
            return await self._read_in_thread()
        except _ERRORS as exc:
            raise TransportError("disconnected", f"{self._url}: {exc}") from exc

    async def _read_selectable(self) -> bytes:
        loop = asyncio.get_running_loop()
        fd = self._port.fileno()
        while True:
            data: bytes = self._port.read(READ_SIZE)
            if data:
                return data
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _set_done, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)

    async def _read_in_thread(self) -> bytes:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.run_in_executor(self._executor, self._read_blocking)
            if data:
                return data

    def _read_blocking(self) -> bytes:
        # One byte (or the timeout), then whatever else is waiting: low latency, few calls.
        data: bytes = self._port.read(1)
        if data:
            waiting = self._port.in_waiting
            if waiting:
                data += self._port.read(min(waiting, READ_SIZE))
        return data

    async def write(self, data: bytes) -> None:
        try:
            # Not in the reader's thread: a write that waits for buffer space (loop://) must
            # not wait for the read that would make the space.
            await asyncio.to_thread(self._port.write, data)
        except (*_ERRORS, queue.Full) as exc:  # loop:// reports a write timeout as queue.Full
            raise TransportError("write_failed", f"{self._url}: {exc}") from exc
        except (TypeError, AttributeError) as exc:
            # pyserial's URL handlers fail this way when the reader closed the port (the peer
            # hung up) while the write was on its way: the link is gone, as above.
            raise TransportError("write_failed", f"{self._url}: port closed") from exc

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # Queued behind any read in flight, which returns within its timeout.
            await loop.run_in_executor(self._executor, self._port.close)
        except _ERRORS:
            pass  # closing a port that is already gone: nothing left to release
        finally:
            self._executor.shutdown(wait=False)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
