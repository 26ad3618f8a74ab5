"""MQTT subscriptions (``mqtt://host:port/topic/filter``) as a transport, with aiomqtt.

Each read returns one message payload. The client speaks MQTT 5 with a clean start and a client
id made of the sensor id and a random suffix (two nodes reading the same sensor do not push
each other off the broker). A lost broker ends the iteration with an error, reported as
``disconnected``; the driver's reconnect loop subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Self

import aiomqtt

from borderwatch.config.devices import DeviceUrl
from borderwatch.drivers.transport import Transport, TransportError, TransportSettings

#: Messages aiomqtt holds for the reader at most; newer ones are dropped when it is full, and
#: counted in the driver's health (``overflow``). A networked sensor publishes a scan as one
#: message, so this is several seconds of any real sensor; it bounds memory at a few MiB.
MQTT_QUEUE_SIZE = 4096
#: Keep-alive interval, s: a silent broker connection is declared dead after 1.5 times this.
KEEPALIVE_S = 15


def _counting_queue(transport: list[Transport]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """A queue class for aiomqtt that counts, in ``transport[0].dropped``, what it refuses.

    aiomqtt logs each message it drops and counts none; this queue swallows the overflow (so
    nothing is logged once per message while the reader is behind) and counts it instead, for
    the driver's health.
    """

    class CountingQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            if self.full() and transport:
                transport[0].dropped += 1
                return
            super().put_nowait(item)

    return CountingQueue


class MqttTransport(Transport):
    """An MQTT 5 client subscribed to one topic filter."""

    message_oriented = True

    def __init__(
        self,
        client: aiomqtt.Client,
        stack: contextlib.AsyncExitStack,
        messages: AsyncIterator[aiomqtt.Message],
        url: str,
    ) -> None:
        super().__init__()
        self._client = client
        self._stack = stack
        self._messages = messages
        self._url = url

    @classmethod
    async def open(cls, endpoint: DeviceUrl, settings: TransportSettings) -> Self:
        # The transport is made after the client; the queue finds it here.
        made: list[Transport] = []
        client = aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=f"borderwatch-{settings.name}-{secrets.token_hex(4)}",
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=settings.open_timeout_s,
            keepalive=KEEPALIVE_S,
            max_queued_incoming_messages=MQTT_QUEUE_SIZE,
            queue_type=_counting_queue(made),
        )
        stack = contextlib.AsyncExitStack()

        async def connect_and_subscribe() -> None:
            await stack.enter_async_context(client)
            await client.subscribe(endpoint.topic, qos=0)

        try:
            # One deadline for both steps: a broker that accepts TCP but never answers.
            await asyncio.wait_for(connect_and_subscribe(), settings.open_timeout_s)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            await _close_quietly(stack)
            raise TransportError("open_failed", f"{endpoint.url}: {exc or 'timed out'}") from exc
        transport = cls(client, stack, aiter(client.messages), endpoint.url)
        made.append(transport)
        return transport

    async def read(self) -> bytes:
        try:
            message = await anext(self._messages)
        except (aiomqtt.MqttError, StopAsyncIteration) as exc:
            raise TransportError("disconnected", f"{self._url}: {exc or 'broker gone'}") from exc
        payload = message.payload
        if isinstance(payload, bytes | bytearray):
            return bytes(payload)
        # Received payloads are bytes; aiomqtt's type also allows what a publisher may pass.
        return b"" if payload is None else str(payload).encode()

    async def write(self, data: bytes) -> None:
        raise TransportError("write_failed", f"{self._url}: an MQTT subscription is receive-only")

    async def aclose(self) -> None:
        await _close_quietly(self._stack)


async def _close_quietly(stack: contextlib.AsyncExitStack) -> None:
    # Leaving the client after the broker went away raises; there is nothing left to release.
    with contextlib.suppress(aiomqtt.MqttError, OSError):
        await stack.aclose()
