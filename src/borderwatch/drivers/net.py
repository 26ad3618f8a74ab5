"""Network transports: a TCP client stream (``tcp://``) and a UDP listener (``udp://``).

Many marine devices and multiplexers send NMEA 0183 over UDP (often broadcast, one or more
sentences per datagram) or serve it on a TCP port. Both are plain asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Self

from borderwatch.config.devices import DeviceUrl
from borderwatch.drivers.transport import (
    READ_SIZE,
    Transport,
    TransportError,
    TransportSettings,
    read_stream,
)

log = logging.getLogger(__name__)

#: Datagrams held for the reader at most; more are dropped and counted (``overflow``).
UDP_QUEUE_SIZE = 1024


class TcpTransport(Transport):
    """A TCP connection to ``host:port``, read as a byte stream."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str
    ) -> None:
        super().__init__()
        self._reader = reader
        self._writer = writer
        self._url = url

    @classmethod
    async def open(cls, endpoint: DeviceUrl, settings: TransportSettings) -> Self:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(endpoint.host, endpoint.port), settings.open_timeout_s
            )
        except (OSError, TimeoutError) as exc:
            raise TransportError("open_failed", f"{endpoint.url}: {exc or 'timed out'}") from exc
        return cls(reader, writer, endpoint.url)

    async def read(self) -> bytes:
        return await read_stream(self._reader, READ_SIZE, self._url)

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise TransportError("write_failed", f"{self._url}: {exc}") from exc

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class _DatagramQueue(asyncio.DatagramProtocol):
    """Puts received datagrams into a bounded queue; counts what does not fit."""

    def __init__(self, owner: UdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if not data:
            return
        try:
            self._owner.queue.put_nowait(data)
        except asyncio.QueueFull:
            self._owner.dropped += 1

    def error_received(self, exc: Exception) -> None:
        # ICMP errors about earlier sends; a listener sends nothing, so this is only noise.
        log.debug("udp listener: %s", exc)


class UdpTransport(Transport):
    """A UDP socket bound to ``host:port``; each read returns one datagram. Receive only."""

    message_oriented = True

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=UDP_QUEUE_SIZE)
        self._transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, endpoint: DeviceUrl, settings: TransportSettings) -> Self:
        self = cls(endpoint.url)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _DatagramQueue(self), local_addr=(endpoint.host, endpoint.port)
            )
        except OSError as exc:
            raise TransportError("open_failed", f"{endpoint.url}: {exc}") from exc
        self._transport = transport
        return self

    async def read(self) -> bytes:
        return await self.queue.get()

    async def write(self, data: bytes) -> None:
        raise TransportError("write_failed", f"{self._url}: a UDP listener is receive-only")

    async def aclose(self) -> None:
        if self._transport is not None:
            self._transport.close()
