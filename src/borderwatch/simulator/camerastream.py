"""Serve simulated camera frames the way a camera delivers them: a raw frame stream or files.

:class:`FrameStreamServer` listens on ``127.0.0.1`` (a free port unless one is given) and sends
every frame it is given to each connected client in the raw frame stream's framing
(:mod:`borderwatch.drivers.framestream`), as a thermal core's frame grabber does; a node reads
it with a camera device whose ``url`` is ``tcp://127.0.0.1:<port>``. A client that cannot keep
up (more than :data:`CLIENT_BACKLOG_BYTES` unsent) misses frames, counted, as a camera on a slow
link drops them. :meth:`FrameStreamServer.stop` closes the port and every client (the camera
goes away); :meth:`FrameStreamServer.start` again serves on the same port (it comes back).
:meth:`FrameStreamServer.send_raw` sends arbitrary bytes, for fault injection.

:func:`serve_scenario_camera` renders a scenario's targets, as a fixed camera sees them, in real
time (or faster) and serves them; ``python -m borderwatch.simulator.camerastream`` does it for
a camera of a node configuration (see :func:`main`), so that ``borderwatch node`` reads a
simulated thermal camera through its real driver.

:func:`write_y16_file` writes 16-bit frames as a raw ``.y16`` file (a thermal core's raw
recording); :mod:`borderwatch.simulator.render` writes 16-bit PNG sequences and videos.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from borderwatch.drivers.framestream import Image, encode_frame
from borderwatch.fusion.detections import TargetClass
from borderwatch.sensors.camera.geometry import CameraIntrinsics, CameraMount, PlatformPose
from borderwatch.simulator.render import RenderTarget, render_nightvision, render_thermal
from borderwatch.simulator.truth import SimTarget

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


# ------------------------------------------------------------------------------- scenarios

#: What each target class looks like to a camera.
RENDER_CLASS = {
    TargetClass.PERSON: "person",
    TargetClass.BOAT: "boat",
    TargetClass.VEHICLE: "vehicle",
    TargetClass.UNKNOWN: "person",
}


@dataclass(frozen=True, slots=True)
class CameraView:
    """A simulated fixed camera: optics, mount, pose and what it renders.

    Attributes:
        intrinsics: the camera's optics.
        mount: its mount (height, pointing).
        pose: where it stands and its reference heading, local ENU metres.
        thermal: Y16 thermal frames (True) or 8-bit night-vision frames.
    """

    intrinsics: CameraIntrinsics
    mount: CameraMount
    pose: PlatformPose
    thermal: bool = True


def targets_at(targets: Sequence[SimTarget], t: float) -> list[RenderTarget]:
    """The targets alive at scenario time ``t`` (s), where they are then."""
    out = []
    for target in targets:
        if target.start_s <= t <= target.end_s:
            xy, _v, _h = target.trajectory.evaluate(np.array([t]))
            cls = RENDER_CLASS.get(target.cls, "person")
            out.append(RenderTarget(float(xy[0, 0]), float(xy[0, 1]), cls))
    return out


def render_view(
    view: CameraView, targets: Sequence[RenderTarget], rng: np.random.Generator
) -> Image:
    """One frame of ``targets`` as ``view`` sees them."""
    render = render_thermal if view.thermal else render_nightvision
    return render(targets, view.intrinsics, view.mount, view.pose, rng)


async def serve_scenario_camera(
    server: FrameStreamServer,
    targets: Sequence[SimTarget],
    view: CameraView,
    *,
    fps: float,
    until_s: float,
    speed: float = 1.0,
    seed: int = 0,
    epoch_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Serve frames of the scenario's targets from ``t = 0`` to ``until_s`` (scenario s) at
    ``fps`` frames per scenario second, scenario time running ``speed`` times as fast as
    ``clock``; returns the frames rendered. Each frame's capture time in the stream header is
    ``epoch_s`` (Unix s; default: now) plus its scenario time. A frame whose time has passed
    while the previous one was rendered is skipped (as a camera that cannot keep up drops
    frames), so the served time never lags."""
    rng = np.random.default_rng(seed)
    epoch = time.time() if epoch_s is None else epoch_s
    start = clock()
    frames = 0
    k = 0
    while (t := k / fps) <= until_s:
        delay = start + t / speed - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay * speed > 1.0 / fps:
            k += 1
            continue
        image = render_view(view, targets_at(targets, t), rng)
        await server.send(image, k, epoch + t)
        frames += 1
        k += 1
    return frames


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m borderwatch.simulator.camerastream SCENARIO NODE_YAML SENSOR_ID``: serve the
    scenario as that camera of the node configuration sees it (it needs a fixed ``site``), on
    the port of its ``tcp://127.0.0.1:PORT`` url."""
    from borderwatch.config.devices import NightVisionCameraDevice, ThermalCameraDevice
    from borderwatch.config.node import load_node_config
    from borderwatch.config.scenario import load_scenario
    from borderwatch.edge.camera import camera_geometry, site_pose
    from borderwatch.scenarios import resolve_scenario
    from borderwatch.simulator.run import simulate

    parser = argparse.ArgumentParser(description="serve a scenario as a camera's frame stream")
    parser.add_argument("scenario", help="scenario YAML file, or the name of a shipped scenario")
    parser.add_argument("node_config", type=Path, help="node configuration with the camera")
    parser.add_argument("sensor_id", help="the camera's sensor_id (a camera with a site)")
    parser.add_argument("--fps", type=float, default=10.0, help="frames per scenario second")
    parser.add_argument("--speed", type=float, default=1.0, help="scenario seconds per second")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    scenario = load_scenario(resolve_scenario(args.scenario))
    config = load_node_config(args.node_config)
    device = next((d for d in config.devices if d.sensor_id == args.sensor_id), None)
    if not isinstance(device, ThermalCameraDevice | NightVisionCameraDevice):
        parser.error(f"{args.sensor_id!r} is not a camera of {args.node_config}")
    endpoint = device.endpoint
    if endpoint.scheme != "tcp" or device.site is None:
        parser.error("the camera needs a tcp://127.0.0.1:PORT url and a site")
    intr, mount = camera_geometry(device)
    pose = site_pose(device.site, config.frame.local_frame())
    view = CameraView(intr, mount, pose, thermal=isinstance(device, ThermalCameraDevice))
    sim = simulate(scenario)

    async def serve() -> int:
        async with FrameStreamServer(endpoint.port, endpoint.host) as server:
            log.info("serving %s as %s on %s", scenario.name, device.sensor_id, server.url)
            return await serve_scenario_camera(
                server,
                sim.targets,
                view,
                fps=args.fps,
                until_s=scenario.duration_s,
                speed=args.speed,
                seed=sim.seed,
            )

    log.info("%d frames served", asyncio.run(serve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
