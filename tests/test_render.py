"""Synthetic camera frames: deterministic under a seed, targets where the geometry puts them and
of the right apparent size, sensor effects present, written and read back with OpenCV."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from borderwatch.sensors.camera.geometry import CameraIntrinsics, CameraMount, PlatformPose
from borderwatch.simulator.render import (
    HotSpot,
    RenderTarget,
    ThermalScene,
    render_nightvision,
    render_thermal,
    target_boxes,
    write_video,
    write_y16_sequence,
)

INTR = CameraIntrinsics.from_fov(320, 256, 24.0)
MOUNT = CameraMount(height_m=3.0)
POSE = PlatformPose(100.0, 50.0, 45.0)


def _person(r: float, az_deg: float) -> RenderTarget:
    b = math.radians(POSE.heading_deg + az_deg)
    return RenderTarget(POSE.e + r * math.sin(b), POSE.n + r * math.cos(b), "person")


def test_same_seed_same_frames_bit_for_bit():
    targets = [_person(200, -3), _person(400, 4)]
    a = render_thermal(targets, INTR, MOUNT, POSE, np.random.default_rng(5))
    b = render_thermal(targets, INTR, MOUNT, POSE, np.random.default_rng(5))
    c = render_thermal(targets, INTR, MOUNT, POSE, np.random.default_rng(6))
    assert a.dtype == np.uint16
    assert a.shape == (256, 320)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    nv1 = render_nightvision(targets, INTR, MOUNT, POSE, np.random.default_rng(5))
    nv2 = render_nightvision(targets, INTR, MOUNT, POSE, np.random.default_rng(5))
    assert nv1.dtype == np.uint8
    assert np.array_equal(nv1, nv2)


def test_warm_body_where_the_geometry_puts_it_and_its_size_scales_with_range():
    scene = ThermalScene(texture_k=0.0, netd_k=0.0, fpn_k=0.0, column_fpn_k=0.0)
    heights = []
    for r in (100.0, 200.0):
        target = _person(r, 2.0)
        frame = render_thermal([target], INTR, MOUNT, POSE, np.random.default_rng(1), scene)
        empty = render_thermal([], INTR, MOUNT, POSE, np.random.default_rng(1), scene)
        warm = (frame.astype(np.int64) - empty) > 300  # 3 K above the empty scene
        ys, xs = np.nonzero(warm)
        box, visible, rng = target_boxes([target], INTR, MOUNT, POSE)
        assert visible[0]
        assert abs(rng[0] - r) < 1e-9
        u0, v0, u1, v1 = box[0]
        assert u0 - 1.5 <= xs.min()
        assert xs.max() <= u1 + 1.5
        assert v0 - 1.5 <= ys.min()
        assert ys.max() <= v1 + 1.5
        heights.append(v1 - v0)
        # Apparent height: 1.8 m at r metres through fy pixels.
        assert abs((v1 - v0) - 1.8 * INTR.fy / math.hypot(r, 3.0)) < 0.2
    assert abs(heights[0] / heights[1] - 2.0) < 0.05


def test_sky_colder_than_water_vignetting_and_fixed_pattern():
    scene = ThermalScene(texture_k=0.0, netd_k=0.0)
    a = render_thermal([], INTR, MOUNT, POSE, np.random.default_rng(1), scene)
    b = render_thermal([], INTR, MOUNT, POSE, np.random.default_rng(2), scene)
    # Without temporal noise or texture, two frames differ by nothing: the pattern is fixed.
    assert np.array_equal(a, b)
    k = a.astype(np.float64) * scene.gain_k
    assert k[:20].mean() < k[-20:].mean() - 10  # sky above, water below
    centre = k[120:136, 150:170].mean()
    row = k[120:136]
    assert row[:, :8].mean() < centre  # vignetting: the edges are cooler
    # Fixed-pattern noise: columns differ by more than the (zero) temporal noise.
    assert np.std(np.diff(k[200, 100:220])) > 0.02


def test_hot_spot_drawn_at_its_pixel():
    spot = HotSpot(40.0, 200.0, 2.0, 400.0)
    frame = render_thermal(
        [], INTR, MOUNT, POSE, np.random.default_rng(3), ThermalScene(hot_spots=(spot,))
    )
    v, u = np.unravel_index(np.argmax(frame), frame.shape)
    assert abs(u - 40) <= 1
    assert abs(v - 200) <= 1
    assert frame.max() * 0.01 > 330


def test_y16_sequence_and_video_round_trip(tmp_path: Path):
    rng = np.random.default_rng(4)
    y16 = [render_thermal([_person(150, -2 + k)], INTR, MOUNT, POSE, rng) for k in range(3)]
    paths = write_y16_sequence(y16, tmp_path / "y16")
    assert [p.name for p in paths] == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    back = cv2.imread(str(paths[1]), cv2.IMREAD_UNCHANGED)
    assert back is not None
    assert back.dtype == np.uint16
    assert np.array_equal(back, y16[1])
    nv = [render_nightvision([_person(80, k)], INTR, MOUNT, POSE, rng) for k in range(5)]
    video = tmp_path / "nv.avi"
    assert write_video(nv, video, fps=10.0) == 5
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 5
    assert frames[0].shape[:2] == (256, 320)
    # MJPG is lossy: close, not equal.
    assert np.abs(frames[2][:, :, 0].astype(int) - nv[2]).mean() < 4


def test_render_command_then_detect_finds_the_scenario_targets(tmp_path: Path):
    """``borderwatch render`` of the river scenario from the south-bank tower, then
    ``borderwatch detect`` on its frames: the waders and the boat in view are found."""
    import csv

    from borderwatch.cli import main

    args = ["render", "river-crossing", "--at", "300", "-150", "60", "--start", "150"]
    args += ["--duration", "6", "--fps", "1"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    frames = sorted((tmp_path / "a").glob("frame_*.png"))
    assert len(frames) == 7
    for f in frames:  # deterministic: the same arguments write the same frames
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()
    with (tmp_path / "a" / "truth_pixels.csv").open() as fh:
        truth = [r for r in csv.DictReader(fh) if r["visible"] == "1"]
    assert {r["truth_id"] for r in truth} >= {"wader-1", "wader-2", "boat-3"}
    out = tmp_path / "d.csv"
    assert main(["detect", *map(str, frames), "--out", str(out)]) == 0
    with out.open() as fh:
        dets = list(csv.DictReader(fh))
    found = 0
    for r in truth:
        name = str(frames[int(r["frame"])])
        u0, v0, u1, v1 = (float(r[k]) for k in ("u0", "v0", "u1", "v1"))
        found += any(
            d["file"] == name
            and u0 - 2 <= int(d["x"]) + int(d["w"]) / 2 <= u1 + 2
            and v0 - 2 <= int(d["y"]) + int(d["h"]) / 2 <= v1 + 2
            for d in dets
        )
    assert found >= 0.9 * len(truth)
    assert len(dets) <= len(truth) + 1
