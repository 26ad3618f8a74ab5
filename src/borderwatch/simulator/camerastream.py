"""Serve simulated camera frames the way a camera delivers them: a raw frame stream or files.

:class:`FrameStreamServer` listens on ``127.0.0.1`` (a free port unless one is given) and sends
every frame it is given to each connected client in the raw frame stream's framing
(:mod:`borderwatch.drivers.framestream`), as a thermal core's frame grabber does; a node reads
it with a camera device whose ``url`` is ``tcp://127.0.0.1:<port>``. A client that cannot keep
up (more than :data:`CLIENT_BACKLOG_BYTES` unsent) misses frames, counted, as a camera on a slow
link drops them. :meth:`FrameStreamServer.stop` closes the port and every client (the camera
goes away); :meth:`FrameStreamServer.start` again serves on the same port (it comes back).
:meth:`FrameStreamServer.send_raw` sends arbitrary bytes, for fault injection.

:func:`write_y16_file` writes 16-bit frames as a raw ``.y16`` file (a thermal core's raw
recording); :mod:`borderwatch.simulator.render` writes 16-bit PNG sequences and videos.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from borderwatch.drivers.framestream import Image, encode_frame

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
#: Bytes a client may have unsent before new frames skip it (three 640×512 Y16 frames).
CLIENT_BACKLOG_BYTES = 3 * 640 * 512 * 2


class FrameStreamServer:
    """A raw frame stream server on the loopback interface. See the module docstring.

    Use ``async with FrameStreamServer() as server:``; :attr:`url` is what a camera device
    reads.
    """

    def __init__(self, port: int = 0, host: str = LOOPBACK) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self.frames_sent = 0
        self.frames_skipped = 0
        self.connections = 0

    @property
    def url(self) -> str:
        """``tcp://127.0.0.1:<port>`` (the port is known once started)."""
        return f"tcp://{self.host}:{self.port}"

    @property
    def clients(self) -> int:
        """Clients connected now."""
        return len(self._clients)

    async def start(self) -> None:
        """Listen (again, on the same port after a :meth:`stop`)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._client, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._clients.add(writer)
        try:
            await reader.read()  # a camera client sends nothing; this returns when it leaves
        except OSError:
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def wait_for_clients(self, n: int = 1, timeout_s: float = 10.0) -> None:
        """Wait until ``n`` clients are connected; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while len(self._clients) < n:
                await asyncio.sleep(0.01)

    async def send(self, image: Image, seq: int, t_capture: float | None = None) -> int:
        """Send one frame to every client; returns how many took it."""
        return await self.send_raw(encode_frame(image, seq, t_capture))

    async def send_raw(self, data: bytes) -> int:
        """Send ``data`` as it is to every client that keeps up; returns how many took it."""
        sent = 0
        for writer in list(self._clients):
            transport = writer.transport
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > CLIENT_BACKLOG_BYTES:
                self.frames_skipped += 1
                continue
            writer.write(data)
            sent += 1
        self.frames_sent += sent
        await asyncio.sleep(0)
        return sent

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every client has been handed what was sent (bounded by ``timeout_s``)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                for writer in list(self._clients):
                    with contextlib.suppress(OSError):
                        await writer.drain()

    async def stop(self) -> None:
        """Close the port and every client connection."""
        server, self._server = self._server, None
        for writer in list(self._clients):
            writer.close()
        self._clients.clear()
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await server.wait_closed()

    async def __aenter__(self) -> FrameStreamServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def write_y16_file(path: Path, frames: Iterable[Image]) -> int:
    """Write 16-bit frames back to back, little-endian (a ``.y16`` file); returns the count."""
    n = 0
    with path.open("wb") as out:
        for image in frames:
            if image.dtype != np.uint16 or image.ndim != 2:
                raise ValueError("a .y16 file holds 2-D uint16 frames")
            out.write(np.ascontiguousarray(image, dtype="<u2").tobytes())
            n += 1
    return n
