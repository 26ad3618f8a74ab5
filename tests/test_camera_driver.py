"""Camera frame sources and the camera driver on real sockets, files and OpenCV.

The raw frame stream is served by the simulator's :class:`FrameStreamServer` on 127.0.0.1;
files are written with the simulator's writers and read back through the driver's threads
(raw ``.y16``, 16-bit PNG sequences, an FFV1 video through ``VideoCapture``).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from borderwatch.config.devices import DeviceConfig, parse_camera_url
from borderwatch.drivers.base import Reading
from borderwatch.drivers.camera import CameraDriver, FrameCredits, check_frame
from borderwatch.drivers.framestream import (
    HEADER_BYTES,
    FrameStreamDecoder,
    RawFrame,
    encode_frame,
)
from borderwatch.drivers.registry import make_driver
from borderwatch.sensors.base import Rejected
from borderwatch.simulator.camerastream import FrameStreamServer, write_y16_file
from borderwatch.simulator.render import write_video, write_y16_sequence
from tests.test_drivers_base import running, wait_until

DEVICES: TypeAdapter[Any] = TypeAdapter(DeviceConfig)
W, H = 64, 48


def thermal(rng: np.random.Generator, w: int = W, h: int = H) -> np.ndarray[Any, Any]:
    """A plausible Y16 frame: ~290 K background (0.01 K/count) with noise."""
    return rng.normal(29000, 40, (h, w)).clip(0, 65535).astype(np.uint16)


def camera(url: str = "tcp://127.0.0.1:5600", **fields: Any) -> Any:
    config = {
        "type": "thermal_camera",
        "sensor_id": "cam",
        "url": url,
        "width": W,
        "height": H,
        "intrinsics": {"hfov_deg": 24},
        "reconnect_initial_s": 0.02,
        "reconnect_max_s": 0.1,
        "stale_after_s": 0.4,
        **fields,
    }
    return DEVICES.validate_python(config)


class Frames:
    """A driver sink that keeps frame readings and returns their tickets (unless held)."""

    def __init__(self, hold: bool = False) -> None:
        self.readings: list[Reading] = []
        self.hold = hold

    def __call__(self, reading: Reading) -> None:
        self.readings.append(reading)
        if not self.hold:
            reading.item.data["ticket"].done()

    def images(self) -> list[np.ndarray[Any, Any]]:
        return [r.item.data["image"] for r in self.readings]


# ------------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("tcp://127.0.0.1:5600", "tcp"),
        ("rtsp://10.0.0.5:554/stream1", "capture"),
        ("http://10.0.0.5/video.mjpg", "capture"),
        ("/dev/video2", "v4l2"),
        ("/data/boson/run1.y16", "raw"),
        ("/data/frames/*.png", "images"),
        ("/data/frames/", "images"),
        ("/data/clip.mkv", "video"),
    ],
)
def test_camera_urls(url: str, scheme: str) -> None:
    assert parse_camera_url(url).scheme == scheme
    assert camera(url).endpoint.scheme == scheme


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"url": "udp://0.0.0.0:5000"}, "unknown camera scheme"),
        ({"url": "tcp://nohost"}, "host:port"),
        ({"intrinsics": {}}, "exactly one of hfov_deg and calibration_file"),
        ({"intrinsics": {"hfov_deg": 24, "calibration_file": "c.yaml"}}, "exactly one"),
        ({"width": 0}, "greater than 0"),
        ({"mount": {"pitch_deg": -120}}, "greater than or equal to -90"),
        ({"type": "nightvision_camera", "pixel_format": "y16"}, "'y8'"),
        ({"max_frames_in_flight": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_camera_settings_are_refused(fields: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(complaint)):
        camera(**{"url": "tcp://127.0.0.1:5600", **fields})


# ------------------------------------------------------------------------------- framing


def test_frames_survive_the_stream_in_any_chunking() -> None:
    rng = np.random.default_rng(1)
    images = [thermal(rng) for _ in range(3)] + [rng.integers(0, 255, (H, W), dtype=np.uint8)]
    stream = b"".join(encode_frame(im, i, 1000.0 + i) for i, im in enumerate(images))
    decoder = FrameStreamDecoder()
    items: list[Any] = []
    cuts = sorted(random.Random(2).sample(range(1, len(stream)), 40))
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        items.extend(decoder.feed(stream[a:b]))
    items.extend(decoder.close())
    assert [type(i) for i in items] == [RawFrame] * 4
    for i, (item, image) in enumerate(zip(items, images, strict=True)):
        assert item.seq == i
        assert item.t_capture == 1000.0 + i
        assert item.image.dtype == image.dtype
        np.testing.assert_array_equal(item.image, image)


def test_garbage_corruption_and_a_cut_off_frame_are_counted() -> None:
    rng = np.random.default_rng(3)
    good = [encode_frame(thermal(rng), i) for i in range(3)]
    flipped = bytearray(good[1])
    flipped[HEADER_BYTES + 100] ^= 0xFF  # a bit error in the payload
    stream = b"xx garbage BWF" + good[0] + bytes(flipped) + b"\x00" * 77 + good[2] + good[0][:500]
    decoder = FrameStreamDecoder()
    items = decoder.feed(stream) + decoder.close()
    kinds = [i.reason if isinstance(i, Rejected) else i.seq for i in items]
    assert kinds == ["malformed", 0, "corrupt", "malformed", 2, "truncated"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=20), st.integers(0, 3))
def test_random_bytes_never_break_the_decoder(chunks: list[bytes], good_at: int) -> None:
    good = encode_frame(np.full((4, 5), 7, dtype=np.uint16), 9)
    chunks.insert(min(good_at, len(chunks)), good)
    decoder = FrameStreamDecoder(max_payload_bytes=1 << 16)
    items = [item for chunk in chunks for item in decoder.feed(chunk)] + decoder.close()
    assert all(isinstance(i, RawFrame | Rejected) for i in items)
    assert len(decoder._buf) == 0
    # The good frame is found unless garbage before it looked like a header that swallowed it.
    frames = [i for i in items if isinstance(i, RawFrame)]
    assert all(f.image.ndim == 2 for f in frames)


# ------------------------------------------------------------------------------- frame checks


def test_frame_checks() -> None:
    rng = np.random.default_rng(4)
    ok = thermal(rng)
    assert check_frame(ok, W, H, "y16") is None
    reasons = {
        "wrong_size": thermal(rng, W + 1, H),
        "wrong_format": (ok >> 8).astype(np.uint8),
        "black": np.zeros((H, W), np.uint16),
        "saturated": np.full((H, W), 65535, np.uint16),
        "flat": np.full((H, W), 29000, np.uint16),
    }
    for reason, image in reasons.items():
        bad = check_frame(image, W, H, "y16")
        assert bad is not None
        assert bad.reason == reason
    # A few hot pixels do not make a frame saturated, nor a few dead ones black.
    spotty = ok.copy()
    spotty[:10] = 65535
    spotty[-10:] = 0
    assert check_frame(spotty, W, H, "y16") is None


def test_credits_bound_frames_in_flight_and_reclaim_lost_ones() -> None:
    now = [0.0]
    credits = FrameCredits(2, timeout_s=5.0, clock=lambda: now[0])
    a, b = credits.take(), credits.take()
    assert a is not None
    assert b is not None
    assert credits.take() is None
    a.done()
    a.done("detect_error")  # a second return is ignored
    c = credits.take()
    assert c is not None
    assert credits.take() is None
    c.done("no_position", "no GNSS fix")
    now[0] = 6.0  # b never came back
    assert credits.take() is not None
    outcomes, details = credits.take_outcomes()
    assert outcomes == {"done": 1, "no_position": 1, "frames_lost": 1}
    assert details == {"no_position": "no GNSS fix"}


# ------------------------------------------------------------------------------- TCP stream


async def test_stream_frames_stale_gone_and_back() -> None:
    rng = np.random.default_rng(5)
    frames = Frames()
    async with FrameStreamServer() as server:
        driver = make_driver(camera(server.url), frames)
        assert isinstance(driver, CameraDriver)
        async with running(driver):
            await server.wait_for_clients()
            sent = [thermal(rng) for _ in range(5)]
            for i, image in enumerate(sent):
                await server.send(image, i)
            await wait_until(lambda: len(frames.readings) == 5, "five frames arrived")
            for got, image in zip(frames.images(), sent, strict=True):
                np.testing.assert_array_equal(got, image)
            health = driver.health()
            assert (health.status, health.messages, health.accepted) == ("ok", 5, {"y16": 5})
            assert health.bytes_in == 5 * (HEADER_BYTES + W * H * 2)

            # Connected but silent: stale.
            await wait_until(lambda: driver.health().status == "stale", "the camera is stale")
            assert "no message accepted" in driver.health().detail

            # The camera goes away: fault, counted; it comes back on the same port.
            await server.stop()
            await wait_until(lambda: driver.health().status == "fault", "the camera is down")
            assert driver.health().rejected.get("disconnected") == 1
            await asyncio.sleep(0.3)  # a few failed reconnects
            await server.start()
            await server.wait_for_clients()
            await server.send(thermal(rng), 99)
            await wait_until(lambda: len(frames.readings) == 6, "a frame after the restart")
            health = driver.health()
            assert health.status == "ok"
            assert health.connects == 2
            assert health.disconnects == 1
            assert health.rejected.get("open_failed", 0) >= 1


async def test_bad_frames_on_the_stream_are_counted_and_good_ones_go_on() -> None:
    rng = np.random.default_rng(6)
    frames = Frames()
    async with FrameStreamServer() as server:
        driver = make_driver(camera(server.url), frames)
        async with running(driver):
            await server.wait_for_clients()
            await server.send(thermal(rng), 0)
            await server.send(thermal(rng, 80, 60), 1)  # wrong size
            await server.send(np.zeros((H, W), np.uint16), 2)
            await server.send(np.full((H, W), 65535, np.uint16), 3)
            await server.send(thermal(rng).astype(np.uint8), 4)  # 8-bit where Y16 is expected
            bad = bytearray(encode_frame(thermal(rng), 5))
            bad[-1] ^= 1
            await server.send_raw(bytes(bad))
            await server.send_raw(os.urandom(5000))
            await server.send(thermal(rng), 7)
            await wait_until(lambda: len(frames.readings) == 2, "the two good frames")
            await wait_until(lambda: driver.health().errors >= 6, "six rejections")
            health = driver.health()
            assert [r.item.data["seq"] for r in frames.readings] == [0, 7]
            for reason in ("wrong_size", "black", "saturated", "wrong_format", "corrupt"):
                assert health.rejected.get(reason) == 1, reason
            assert health.rejected.get("malformed") == 1

            # A stream cut in the middle of a frame: truncated, then reconnected.
            await server.send_raw(encode_frame(thermal(rng), 8)[:1000])
            await server.drain()
            await asyncio.sleep(0.05)
            await server.stop()
            await wait_until(lambda: "truncated" in driver.health().rejected, "truncated")
            await server.start()
            await server.wait_for_clients()
            await server.send(thermal(rng), 9)
            await wait_until(lambda: len(frames.readings) == 3, "a frame after the cut")


async def test_frames_beyond_the_credits_are_dropped_and_counted() -> None:
    rng = np.random.default_rng(7)
    frames = Frames(hold=True)  # detection never finishes
    async with FrameStreamServer() as server:
        driver = make_driver(camera(server.url, max_frames_in_flight=2), frames)
        async with running(driver):
            await server.wait_for_clients()
            for i in range(6):
                await server.send(thermal(rng), i)
            await wait_until(lambda: driver.health().rejected.get("frames_dropped") == 4, "drops")
            assert len(frames.readings) == 2
            # Finished frames free their credits, and the stage's outcomes reach health.
            frames.readings[0].item.data["ticket"].done()
            frames.readings[1].item.data["ticket"].done("bad_calibration", "no camera_matrix")
            frames.hold = False
            await server.send(thermal(rng), 6)
            await wait_until(lambda: len(frames.readings) == 3, "a frame after the credits")
            health = driver.health()
            assert health.rejected.get("bad_calibration") == 1
            assert health.status == "fault"
            assert "camera_matrix" in health.detail


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.binary(min_size=1, max_size=4000), min_size=1, max_size=8))
def test_random_bytes_on_the_socket_never_stop_the_driver(chunks: list[bytes]) -> None:
    async def main() -> None:
        rng = np.random.default_rng(8)
        frames = Frames()
        async with FrameStreamServer() as server:
            driver = make_driver(camera(server.url), frames)
            async with running(driver):
                await server.wait_for_clients()
                for chunk in chunks:
                    await server.send_raw(chunk)
                # A frame after the garbage arrives unless the garbage held a plausible
                # header that swallows it; a second one after a fresh connection always does.
                await server.send(thermal(rng), 1)
                await server.drain()
                await server.stop()
                await server.start()
                await server.wait_for_clients()
                await server.send(thermal(rng), 2)
                await wait_until(
                    lambda: any(r.item.data["seq"] == 2 for r in frames.readings), "frame 2"
                )

    asyncio.run(main())


# ------------------------------------------------------------------------------- files


async def test_raw_y16_file_plays_ends_and_is_read_again_when_rotated(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    path = tmp_path / "boson.y16"
    first = [thermal(rng) for _ in range(3)]
    write_y16_file(path, first)
    with path.open("ab") as f:
        f.write(b"\x01" * 100)  # a frame cut off at the end
    frames = Frames()
    driver = make_driver(camera(str(path), fps=100.0), frames)
    async with running(driver):
        await wait_until(lambda: len(frames.readings) >= 3, "the file's frames")
        await wait_until(lambda: "truncated" in driver.health().rejected, "the cut-off frame")
        second = [thermal(rng) for _ in range(2)]
        write_y16_file(path.with_suffix(".tmp"), second)
        os.replace(path.with_suffix(".tmp"), path)  # rotated: the next play reads the new file
        await wait_until(
            lambda: any(np.array_equal(im, second[1]) for im in frames.images()), "rotated file"
        )
        health = driver.health()
        assert health.connects >= 2
        assert health.rejected.get("disconnected", 0) >= 1
        np.testing.assert_array_equal(frames.images()[0], first[0])


async def test_png_sequence_with_a_corrupt_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    images = [thermal(rng) for _ in range(3)]
    write_y16_sequence(images, tmp_path)
    (tmp_path / "frame_000001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    frames = Frames()
    driver = make_driver(camera(str(tmp_path / "*.png"), fps=100.0), frames)
    async with running(driver):
        await wait_until(lambda: len(frames.readings) >= 2, "two frames")
        await wait_until(lambda: "corrupt" in driver.health().rejected, "the corrupt image")
        np.testing.assert_array_equal(frames.images()[0], images[0])
        np.testing.assert_array_equal(frames.images()[1], images[2])
        assert frames.images()[0].dtype == np.uint16


async def test_nightvision_video_file_through_videocapture(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    images = [rng.integers(20, 200, (H, W), dtype=np.uint8) for _ in range(4)]
    path = tmp_path / "nv.avi"
    write_video(images, path, fps=50.0)
    frames = Frames()
    config = camera(str(path), type="nightvision_camera", fps=200.0)
    driver = make_driver(config, frames)
    async with running(driver):
        await wait_until(lambda: len(frames.readings) >= 8, "the video twice")
        assert driver.health().connects >= 2
    got = frames.images()
    assert all(g.dtype == np.uint8 and g.shape == (H, W) for g in got)
    for g, image in zip(got[:4], images, strict=True):
        # MJPG is lossy on noise: the frames come back close, in order.
        assert np.abs(g.astype(int) - image).mean() < 12.0


async def test_a_missing_source_is_a_fault_retried_without_end(tmp_path: Path) -> None:
    frames = Frames()
    driver = make_driver(camera(str(tmp_path / "nothing.mkv")), frames)
    async with running(driver):
        await wait_until(
            lambda: driver.health().rejected.get("open_failed", 0) >= 3, "retried opens"
        )
        health = driver.health()
        assert health.status == "fault"
        assert "no such file" in health.detail
