"""Node-side camera figures: the raw frame stream into the driver, and frames through the
camera stage's worker thread, measured on loopback.

* **Ingest**: 640×512 Y16 frames sent as fast as the loopback socket takes them by the
  simulator's :class:`~borderwatch.simulator.camerastream.FrameStreamServer` to a
  :class:`~borderwatch.drivers.camera.CameraDriver` (framing, CRC-32, size and blank checks,
  credits) whose sink returns each ticket at once: frames/s and MB/s accepted.
* **Live camera**: the same stream at a camera's rate (``fps``), through the driver into a
  :class:`~borderwatch.edge.camera.CameraStage` with the real thermal detector in its worker
  thread: frames accepted, detected, dropped (no credit: detection behind), detection time per
  frame and the delay from a frame's hand-over to the stage to its rows being ready.

Frames are rendered once (one person at 300 m) and re-sent, so rendering costs nothing here.
Nothing is asserted; ``python -m borderwatch.bench_camera_node`` prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from borderwatch.config.devices import DeviceConfig
from borderwatch.drivers.base import Reading
from borderwatch.drivers.camera import CameraDriver
from borderwatch.drivers.framestream import HEADER_BYTES
from borderwatch.edge.camera import CameraStage, camera_geometry
from borderwatch.fusion.frames import LocalFrame
from borderwatch.simulator.camerastream import FrameStreamServer
from borderwatch.simulator.render import RenderTarget, render_thermal

WIDTH, HEIGHT = 640, 512
FRAME = LocalFrame(44.187, 19.335, 180.0)


def _device(url: str, fps: float | None = None) -> Any:
    adapter: TypeAdapter[Any] = TypeAdapter(DeviceConfig)
    return adapter.validate_python(
        {
            "type": "thermal_camera",
            "sensor_id": "bench",
            "url": url,
            "width": WIDTH,
            "height": HEIGHT,
            "fps": fps,
            "intrinsics": {"hfov_deg": 24.0},
            "mount": {"height_m": 20.0, "pitch_deg": -4.0},
            "site": {"lat_deg": 44.187, "lon_deg": 19.335},
        }
    )


def _frames(seed: int, n: int = 8) -> list[np.ndarray[Any, Any]]:
    device = _device("tcp://127.0.0.1:1")
    intr, mount = camera_geometry(device)
    stage = CameraStage(device, 0, FRAME)
    pose = stage.pose(None)
    assert not isinstance(pose, str)
    rng = np.random.default_rng(seed)
    return [
        render_thermal([RenderTarget(20.0 + k, 300.0, "person")], intr, mount, pose, rng)
        for k in range(n)
    ]


async def _ingest(frames: list[np.ndarray[Any, Any]], seconds: float) -> dict[str, float]:
    count = 0

    def sink(reading: Reading) -> None:
        nonlocal count
        count += 1
        reading.item.data["ticket"].done()

    async with FrameStreamServer() as server:
        driver = CameraDriver(_device(server.url), sink)
        task = asyncio.create_task(driver.run())
        await server.wait_for_clients()
        started = time.perf_counter()
        seq = 0
        while time.perf_counter() - started < seconds:
            await server.send(frames[seq % len(frames)], seq)
            await server.drain()
            seq += 1
        await server.drain()
        await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    frame_bytes = HEADER_BYTES + WIDTH * HEIGHT * 2
    return {
        "frames_sent": seq,
        "frames_accepted": count,
        "frames_per_s": round(count / elapsed, 1),
        "mb_per_s": round(count * frame_bytes / elapsed / 1e6, 1),
    }


async def _live(frames: list[np.ndarray[Any, Any]], fps: float, seconds: float) -> dict[str, Any]:
    async with FrameStreamServer() as server:
        device = _device(server.url)
        stage = CameraStage(device, 0, FRAME)
        loop = asyncio.get_running_loop()

        def sink(reading: Reading) -> None:
            stage.submit(reading.t_rx, reading.item.data, None)

        driver = CameraDriver(device, sink)
        task = asyncio.create_task(driver.run())
        await server.wait_for_clients()
        started = time.perf_counter()
        seq = 0
        next_at = loop.time()
        while time.perf_counter() - started < seconds:
            await server.send(frames[seq % len(frames)], seq)
            seq += 1
            next_at += 1.0 / fps
            stage.take()
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        await asyncio.sleep(0.5)
        health = driver.health()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    stats = stage.stats()
    return {
        "fps_sent": fps,
        "frames_sent": seq,
        "frames_accepted": health.messages,
        "frames_detected": int(stats["processed"]),
        "frames_dropped": health.rejected.get("frames_dropped", 0),
        "detect_ms_mean": round(stats["detect_ms_mean"], 2),
        "detect_ms_p95": round(stats["detect_ms_p95"], 2),
        "delay_ms_mean": round(stats["delay_ms_mean"], 2),
        "delay_ms_p95": round(stats["delay_ms_p95"], 2),
    }


def run_camera_node_bench(seconds: float = 5.0, seed: int = 7) -> dict[str, Any]:
    """Measure and return the figures (JSON-ready, with a ``text`` summary)."""
    frames = _frames(seed)

    async def main() -> dict[str, Any]:
        ingest = await _ingest(frames, seconds)
        live = [await _live(frames, fps, seconds) for fps in (10.0, 30.0, 60.0)]
        return {"ingest": ingest, "live": live}

    result = asyncio.run(main())
    ing = result["ingest"]
    lines = [
        f"raw frame stream → driver (640×512 Y16, loopback): {ing['frames_per_s']} frames/s, "
        f"{ing['mb_per_s']} MB/s ({ing['frames_accepted']} of {ing['frames_sent']} frames)",
        "live camera → driver → camera stage (thermal detector in its worker thread):",
    ]
    for live in result["live"]:
        lines.append(
            f"  {live['fps_sent']:>4.0f} fps: {live['frames_accepted']} accepted, "
            f"{live['frames_detected']} detected, {live['frames_dropped']} dropped; detection "
            f"{live['detect_ms_mean']} ms/frame (p95 {live['detect_ms_p95']}), frame to rows "
            f"{live['delay_ms_mean']} ms (p95 {live['delay_ms_p95']})"
        )
    result["text"] = "\n".join(lines)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement, s")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run_camera_node_bench(args.seconds, args.seed)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "text"}, indent=2))
    else:
        print(result["text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
