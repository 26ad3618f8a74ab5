"""The transports a driver reads through, behind one small interface, found by URL scheme.

A :class:`Transport` is an open connection to a device: :meth:`~Transport.read` returns the next
chunk of bytes (a stream transport) or the next whole message (a datagram or an MQTT payload,
``message_oriented``), :meth:`~Transport.write` sends bytes to the device. Every failure is a
:class:`TransportError` whose ``reason`` is the counter key health reports (``open_failed``,
``disconnected``, ``write_failed``). Transport modules are imported on first use, so aiomqtt is
loaded only by a node that subscribes to MQTT.
"""

from __future__ import annotations

import asyncio
import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Self

from borderwatch.config.devices import DeviceUrl
from borderwatch.errors import BorderwatchError

#: Largest chunk read from a stream at once, bytes.
READ_SIZE = 4096
#: Time allowed to open a transport (connect, subscribe), s.
OPEN_TIMEOUT_S = 10.0

#: URL scheme -> ``module:Class`` of its transport.
TRANSPORT_PATHS: dict[str, str] = {
    "serial": "borderwatch.drivers.serialport:SerialTransport",
    "socket": "borderwatch.drivers.serialport:SerialTransport",
    "rfc2217": "borderwatch.drivers.serialport:SerialTransport",
    "loop": "borderwatch.drivers.serialport:SerialTransport",
    "tcp": "borderwatch.drivers.net:TcpTransport",
    "udp": "borderwatch.drivers.net:UdpTransport",
    "mqtt": "borderwatch.drivers.mqtt:MqttTransport",
}


class TransportError(BorderwatchError):
    """A transport could not be opened, failed, or was closed by the device.

    ``reason`` is the health counter key: ``open_failed``, ``disconnected``, ``write_failed``
    or ``not_connected``; the message says what happened, for the log.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


async def read_stream(reader: asyncio.StreamReader, size: int, url: str) -> bytes:
    """Up to ``size`` bytes from a stream connection; a closed or failed connection is a
    :class:`TransportError` (``disconnected``), never an empty read."""
    try:
        data = await reader.read(size)
    except OSError as exc:
        raise TransportError("disconnected", f"{url}: {exc}") from exc
    if not data:
        raise TransportError("disconnected", f"{url}: connection closed by the peer")
    return data


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """What a transport needs besides its URL.

    Attributes:
        baudrate: serial line speed, bit/s (serial transports only).
        name: the sensor id, used to name the connection (e.g. the MQTT client id).
        open_timeout_s: time allowed to connect, s.
    """

    baudrate: int
    name: str
    open_timeout_s: float = OPEN_TIMEOUT_S


class Transport(ABC):
    """An open connection to one device."""

    #: True when each read returns one whole message (UDP datagram, MQTT payload).
    message_oriented: bool = False

    def __init__(self) -> None:
        #: Messages the transport had to drop because its bounded queue was full.
        self.dropped = 0

    @classmethod
    @abstractmethod
    async def open(cls, endpoint: DeviceUrl, settings: TransportSettings) -> Self:
        """Open the connection; raise :class:`TransportError` (``open_failed``)."""

    @abstractmethod
    async def read(self) -> bytes:
        """The next non-empty chunk or message; :class:`TransportError` when the link is lost
        (``disconnected``, also for an orderly end of stream)."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Send ``data`` to the device; :class:`TransportError` (``write_failed``)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the connection; never raises."""


def transport_class(scheme: str) -> type[Transport]:
    """The transport class of a URL scheme (``serial`` for device paths), imported now."""
    path = TRANSPORT_PATHS.get(scheme)
    if path is None:
        raise TransportError("open_failed", f"no transport for scheme {scheme!r}")
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise TypeError(f"{path} is not a Transport")
    return cls


@asynccontextmanager
async def open_transport(
    endpoint: DeviceUrl, settings: TransportSettings
) -> AsyncIterator[Transport]:
    """``async with open_transport(...) as transport:`` opens it and closes it on every path."""
    transport = await transport_class(endpoint.scheme).open(endpoint, settings)
    try:
        yield transport
    finally:
        await transport.aclose()
