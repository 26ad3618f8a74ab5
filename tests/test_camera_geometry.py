"""Camera geometry: projections and back-projections agree, calibration files load or fail
clearly, and detections become fusion rows with honest noise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.errors import ConfigError
from borderwatch.fusion.detections import MeasurementKind, TargetClass
from borderwatch.fusion.models import innovation, measure
from borderwatch.sensors.camera.detect import PixelDetection
from borderwatch.sensors.camera.geometry import (
    CameraIntrinsics,
    CameraMount,
    PlatformPose,
    camera_detections,
    pixel_to_angles,
    project_enu,
)

DISTORTED = CameraIntrinsics(
    640,
    512,
    np.array([[800.0, 0.0, 322.0], [0.0, 805.0, 250.0], [0.0, 0.0, 1.0]]),
    np.array([-0.12, 0.03, 0.001, -0.0005, 0.0]),
)


def test_from_fov_focal_length():
    intr = CameraIntrinsics.from_fov(640, 512, 24.0)
    assert intr.fx == pytest.approx(320.0 / math.tan(math.radians(12.0)))
    # The image edges are at ±12°.
    az, el = pixel_to_angles(intr, CameraMount(), np.array([-0.5, 639.5]), np.array([255.5] * 2))
    assert az == pytest.approx([-12.0, 12.0], abs=1e-9)
    assert el == pytest.approx([0.0, 0.0], abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    yaw=st.floats(-180, 180),
    pitch=st.floats(-40, 20),
    roll=st.floats(-10, 10),
    heading=st.floats(0, 360),
    height=st.floats(0.5, 50),
    seed=st.integers(0, 2**32 - 1),
)
def test_project_then_back_project_round_trip(yaw, pitch, roll, heading, height, seed):
    """Random points in the field: project_enu then pixel_to_angles gives their true azimuth
    and elevation (with lens distortion on the way out and back)."""
    mount = CameraMount(yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll, height_m=height)
    pose = PlatformPose(120.0, -40.0, heading)
    rng = np.random.default_rng(seed)
    az_rel = rng.uniform(-15, 15, 20)
    el = pitch + rng.uniform(-10, 10, 20)
    r = rng.uniform(5, 3000, 20)
    bearing = np.radians(heading + yaw + az_rel)
    horizontal = r * np.cos(np.radians(el))
    pts = np.column_stack(
        [
            pose.e + horizontal * np.sin(bearing),
            pose.n + horizontal * np.cos(bearing),
            height + r * np.sin(np.radians(el)),
        ]
    )
    px, ok = project_enu(DISTORTED, mount, pose, pts)
    assert ok.any()
    az_back, el_back = pixel_to_angles(DISTORTED, mount, px[ok, 0], px[ok, 1])
    true_az = (np.degrees(bearing[ok]) - heading + 180.0) % 360.0 - 180.0
    diff = (az_back - true_az + 180.0) % 360.0 - 180.0
    assert np.abs(diff).max() < 1e-3
    true_el = np.degrees(np.arctan2(pts[ok, 2] - height, horizontal[ok]))
    assert np.abs(el_back - true_el).max() < 1e-3


def test_points_behind_or_outside_are_masked():
    intr = CameraIntrinsics.from_fov(640, 512, 24.0)
    pose = PlatformPose(0.0, 0.0, 90.0)  # looking east
    pts = np.array([[100.0, 0.0, 2.0], [-100.0, 0.0, 2.0], [100.0, 100.0, 2.0]])
    px, ok = project_enu(intr, CameraMount(), pose, pts)
    assert ok.tolist() == [True, False, False]
    assert px[0] == pytest.approx([319.5, 255.5])


@pytest.mark.parametrize("name", ["cam.yaml", "cam.xml"])
def test_calibration_file_round_trip(tmp_path: Path, name: str):
    path = tmp_path / name
    DISTORTED.to_opencv_file(path)
    loaded = CameraIntrinsics.from_opencv_file(path)
    assert (loaded.width, loaded.height) == (640, 512)
    np.testing.assert_allclose(loaded.K, DISTORTED.K)
    np.testing.assert_allclose(loaded.dist, DISTORTED.dist)


def test_calibration_file_written_by_hand(tmp_path: Path):
    """The layout OpenCV's calibration sample writes, typed in by an operator."""
    path = tmp_path / "boson.yml"
    path.write_text(
        "%YAML:1.0\n---\nimage_width: 640\nimage_height: 512\n"
        "camera_matrix: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n"
        "   data: [ 1500., 0., 320., 0., 1500., 256., 0., 0., 1. ]\n"
        "distortion_coefficients: !!opencv-matrix\n   rows: 1\n   cols: 5\n   dt: d\n"
        "   data: [ -0.1, 0.01, 0., 0., 0. ]\n"
    )
    intr = CameraIntrinsics.from_opencv_file(path)
    assert intr.fx == 1500.0
    assert intr.dist[0] == -0.1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "not found"),
        ("this is not a calibration file at all {{{", "calibration file"),
        ("%YAML:1.0\n---\nimage_width: 640\nimage_height: 512\n", "camera_matrix"),
        (
            "%YAML:1.0\n---\nimage_width: 640\nimage_height: 512\n"
            "camera_matrix: !!opencv-matrix\n   rows: 2\n   cols: 2\n   dt: d\n"
            "   data: [ 1., 0., 0., 1. ]\n"
            "distortion_coefficients: !!opencv-matrix\n   rows: 1\n   cols: 5\n   dt: d\n"
            "   data: [ 0., 0., 0., 0., 0. ]\n",
            "3×3",
        ),
        (
            "%YAML:1.0\n---\nimage_width: 640\n"
            "camera_matrix: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n"
            "   data: [ 1500., 0., 320., 0., 1500., 256., 0., 0., 1. ]\n"
            "distortion_coefficients: !!opencv-matrix\n   rows: 1\n   cols: 5\n   dt: d\n"
            "   data: [ 0., 0., 0., 0., 0. ]\n",
            "image_height",
        ),
    ],
)
def test_bad_calibration_file_is_a_config_error(tmp_path: Path, text, message):
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        CameraIntrinsics.from_opencv_file(path)
    assert err.value.path == str(path)


def _det(u: float, v_foot: float, label: str = "person") -> PixelDetection:
    return PixelDetection(
        x=int(u) - 1,
        y=int(v_foot) - 6,
        w=3,
        h=6,
        score=0.9,
        label=label,
        cx=u,
        cy=v_foot - 3,
        label_conf=0.7,
    )


def _foot_pixel(intr, mount, pose, e, n):
    px, ok = project_enu(intr, mount, pose, np.array([[e, n, 0.0]]))
    assert ok[0]
    return px[0]


def test_detections_near_are_range_bearing_far_are_bearing_only():
    intr = CameraIntrinsics.from_fov(640, 512, 24.0)
    mount = CameraMount(height_m=3.0, pitch_deg=-2.0)
    pose = PlatformPose(10.0, 20.0, 30.0, sigma_pos_m=1.0, sigma_heading_deg=0.3)
    targets = [(80.0, 5.0), (2500.0, -3.0)]  # (range m, azimuth from heading, degrees)
    dets = []
    truth = []
    for r, a in targets:
        b = math.radians(pose.heading_deg + a)
        e, n = pose.e + r * math.sin(b), pose.n + r * math.cos(b)
        u, v = _foot_pixel(intr, mount, pose, e, n)
        dets.append(_det(u, v + 0.5))
        truth.append((r, b % (2 * math.pi), e, n))
    batch = camera_detections(dets, intr, mount, pose, t=12.5, sensor=3)
    assert batch.kind.tolist() == [MeasurementKind.RANGE_BEARING, MeasurementKind.BEARING_ONLY]
    assert batch.z[0, 0] == pytest.approx(truth[0][0], rel=0.01)  # integer box: ½ px
    assert batch.z[0, 1] == pytest.approx(truth[0][1], abs=1e-5)
    assert batch.z[1, 0] == pytest.approx(truth[1][1], abs=1e-5)
    np.testing.assert_allclose(batch.sensor_xy, [[10.0, 20.0]] * 2)
    assert batch.sensor.tolist() == [3, 3]
    assert batch.t.tolist() == [12.5, 12.5]
    assert batch.cls.tolist() == [TargetClass.PERSON] * 2
    # Range σ from a 0.2° pitch error at 80 m from 3 m: r²/H · σ ≈ 7.4 m, plus the rest.
    sigma_r = math.sqrt(batch.R[0, 0, 0])
    assert 6.0 < sigma_r < 15.0
    # Bearing σ: yaw 0.2°, heading 0.3°, pixels and position across 80 m, all in quadrature.
    assert math.degrees(math.sqrt(batch.R[0, 1, 1])) == pytest.approx(
        math.hypot(0.2, 0.3, math.degrees(1.0 / 80.0)), rel=0.1
    )
    assert np.all(np.linalg.eigvalsh(batch.R[0]) > 0)
    # The rows are consistent with the fusion core's measurement model at the true position.
    for row, (_r, _b, e, n) in enumerate(truth):
        x = np.array([e, n, 0.0, 0.0])
        zhat, _H = measure(x, batch.kind[row], batch.sensor_xy[row])
        y = innovation(batch.z[row], zhat, batch.kind[row])
        assert np.abs(y[0] if row else y).max() < 0.5


def test_above_horizon_is_bearing_only_and_labels_map_to_classes():
    intr = CameraIntrinsics.from_fov(640, 512, 24.0)
    pose = PlatformPose(0.0, 0.0, 0.0)
    dets = [_det(320.0, 100.0, label) for label in ("boat", "vehicle", "group", "unknown")]
    batch = camera_detections(dets, intr, CameraMount(), pose, 0.0, 0)
    assert set(batch.kind.tolist()) == {MeasurementKind.BEARING_ONLY}
    assert batch.cls.tolist() == [
        TargetClass.BOAT,
        TargetClass.VEHICLE,
        TargetClass.PERSON,
        TargetClass.UNKNOWN,
    ]
    assert np.all(batch.R[:, 0, 0] > 0)
    assert len(camera_detections([], intr, CameraMount(), pose, 0.0, 0)) == 0


def test_two_cameras_triangulate_one_target():
    """Bearing-only rows from two boats cross at the target."""
    intr = CameraIntrinsics.from_fov(640, 512, 24.0)
    mount = CameraMount(height_m=2.0)
    target = np.array([1500.0, 4000.0])
    rows = []
    for pose in (PlatformPose(0.0, 0.0, 20.0), PlatformPose(3000.0, 0.0, -25.0)):
        u, v = _foot_pixel(intr, mount, pose, *target)
        batch = camera_detections([_det(u, v + 0.5)], intr, mount, pose, 0.0, 0)
        assert batch.kind[0] == MeasurementKind.BEARING_ONLY
        rows.append((batch.sensor_xy[0], batch.z[0, 0]))
    (p1, b1), (p2, b2) = rows
    d1 = np.array([math.sin(b1), math.cos(b1)])
    d2 = np.array([math.sin(b2), math.cos(b2)])
    s = np.linalg.solve(np.column_stack([d1, -d2]), p2 - p1)
    np.testing.assert_allclose(p1 + s[0] * d1, target, atol=2.0)


@settings(max_examples=80, deadline=None)
@given(
    boxes=st.lists(
        st.tuples(st.floats(-50, 700), st.floats(-50, 560), st.integers(1, 80), st.integers(1, 80)),
        min_size=1,
        max_size=8,
    ),
    pitch=st.floats(-60, 30),
    height=st.floats(0.1, 100),
    heading=st.floats(-720, 720),
    sigmas=st.tuples(st.floats(0, 2), st.floats(0, 2), st.floats(0, 5), st.floats(0, 3)),
)
def test_any_boxes_give_valid_rows(boxes, pitch, height, heading, sigmas):
    """Whatever the boxes (even outside the image) and mount, rows are finite where used,
    bearings in [0, 2π), and R symmetric positive semi-definite."""
    s_yaw, s_pitch, s_pos, s_head = sigmas
    mount = CameraMount(
        pitch_deg=pitch, height_m=height, sigma_yaw_deg=s_yaw, sigma_pitch_deg=s_pitch
    )
    pose = PlatformPose(0.0, 0.0, heading, sigma_pos_m=s_pos, sigma_heading_deg=s_head)
    dets = [
        PixelDetection(int(x), int(y), w, h, 0.8, "person", x + w / 2, y + h / 2)
        for x, y, w, h in boxes
    ]
    batch = camera_detections(dets, DISTORTED, mount, pose, 1.0, 0)
    assert len(batch) == len(dets)
    rb = batch.kind == MeasurementKind.RANGE_BEARING
    assert np.all(np.isfinite(batch.z[:, 0]))
    assert np.all(np.isfinite(batch.z[rb, 1]))
    bearing = np.where(rb, batch.z[:, 1], batch.z[:, 0])
    assert np.all((bearing >= 0) & (bearing < 2 * math.pi))
    assert np.all(batch.z[rb, 0] > 0)
    assert np.all(np.isfinite(batch.R))
    np.testing.assert_allclose(batch.R, np.swapaxes(batch.R, 1, 2))
    assert np.all(np.linalg.eigvalsh(batch.R[rb]) >= -1e-12)
    assert np.all(batch.R[~rb, 0, 0] >= 0)
