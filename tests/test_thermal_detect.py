"""The camera detectors on real rendered frames: small warm people in single frames, static hot
spots suppressed in video, false alarms on empty scenes, class hints, night-vision motion,
the ONNX hook, and bad frames refused clearly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from borderwatch.config.camera import DetectorSettings, IntrinsicsSettings, MountSettings
from borderwatch.errors import ConfigError
from borderwatch.sensors.camera.classify import classify_boxes
from borderwatch.sensors.camera.detect import FrameError, check_frame, make_detector
from borderwatch.sensors.camera.geometry import CameraIntrinsics, CameraMount, PlatformPose
from borderwatch.simulator.render import (
    HotSpot,
    NightVisionScene,
    RenderTarget,
    ThermalScene,
    render_nightvision,
    render_thermal,
    target_boxes,
)

INTR = CameraIntrinsics.from_fov(640, 512, 24.0)
LEVEL = CameraMount(height_m=3.0)
POSE = PlatformPose(0.0, 0.0, 0.0)


def _at(r: float, az_deg: float, cls: str = "person") -> RenderTarget:
    a = math.radians(az_deg)
    return RenderTarget(r * math.sin(a), r * math.cos(a), cls)


def _found(dets, boxes, visible, margin=2.0):
    """Per visible target: is there a detection whose centroid lies in its (widened) box?"""
    out = []
    for j in np.flatnonzero(visible):
        u0, v0, u1, v1 = boxes[j]
        out.append(
            any(
                u0 - margin <= d.cx <= u1 + margin and v0 - margin <= d.cy <= v1 + margin
                for d in dets
            )
        )
    return out


def _inside(dets, shape):
    h, w = shape
    return all(
        d.x >= 0 and d.y >= 0 and d.w >= 1 and d.h >= 1 and d.x + d.w <= w and d.y + d.h <= h
        for d in dets
    )


def test_small_people_found_in_single_frames():
    """People 10-40 px tall (and one of 5.5 px at 500 m) on water, one still frame each."""
    rng = np.random.default_rng(11)
    # 1.8 m tall: 40 px at 68 m, 10 px at 270 m with this lens (fx ≈ 1505 px).
    targets = [_at(r, az) for r, az in ((70, -9), (110, -4.5), (180, 0), (270, 4.5), (500, 9))]
    frame = render_thermal(targets, INTR, LEVEL, POSE, rng)
    boxes, visible, _ = target_boxes(targets, INTR, LEVEL, POSE)
    heights = boxes[:, 3] - boxes[:, 1]
    assert heights.max() > 35
    assert 9 < sorted(heights)[1] < 12
    assert heights.min() < 6
    dets = make_detector(DetectorSettings()).detect(frame)
    assert _found(dets, boxes, visible) == [True] * 5
    assert len(dets) == 5
    assert _inside(dets, frame.shape)
    assert all(0.5 <= d.score <= 1.0 for d in dets)


def test_people_seen_from_above():
    """A camera 25 m up a tower looking 8° down at people 5-25 px tall on the ground."""
    rng = np.random.default_rng(12)
    mount = CameraMount(height_m=25.0, pitch_deg=-8.0)
    targets = [_at(r, az) for r, az in ((110, -8), (180, -2), (300, 4), (500, 9))]
    frame = render_thermal(targets, INTR, mount, POSE, rng, ThermalScene(surface_k=288.0))
    boxes, visible, _ = target_boxes(targets, INTR, mount, POSE)
    assert visible.all()
    dets = make_detector(DetectorSettings(surface="ground")).detect(frame)
    assert _found(dets, boxes, visible) == [True] * 4
    assert len(dets) == 4


def test_empty_scenes_have_few_false_alarms():
    """Textured water, sky, vignetting, fixed-pattern noise and lamps (hotter than a body):
    ≤ 0.1 false detections per frame over 40 frames."""
    rng = np.random.default_rng(13)
    lamps = (HotSpot(100.0, 250.0, 1.2, 420.0), HotSpot(500.0, 248.0, 1.0, 380.0))
    detector = make_detector(DetectorSettings())
    false = 0
    for k in range(40):
        pose = PlatformPose(0.0, 0.0, 9.0 * k)
        frame = render_thermal([], INTR, LEVEL, pose, rng, ThermalScene(hot_spots=lamps))
        false += len(make_detector(DetectorSettings()).detect(frame))
        detector.detect(frame)
    assert false / 40 <= 0.1
    assert detector.suppressed_hot >= 40  # type: ignore[attr-defined]


def test_static_hot_spot_suppressed_in_video_walker_kept():
    """An engine cover fixed in the image (hotter than a body and too big to be a lamp) is
    detected in the first frames, then suppressed once static; a walker never is."""
    rng = np.random.default_rng(14)
    engine = HotSpot(80.0, 460.0, 14.0, 330.0)
    detector = make_detector(DetectorSettings(static_frames=12))
    engine_seen = []
    walker_seen = []
    for k in range(30):
        walker = _at(150.0, -3.0 + 0.08 * k)  # ~1 px per frame across the field
        frame = render_thermal([walker], INTR, LEVEL, POSE, rng, ThermalScene(hot_spots=(engine,)))
        dets = detector.detect(frame)
        engine_seen.append(any(abs(d.cx - 80) < 8 and abs(d.cy - 460) < 8 for d in dets))
        boxes, visible, _ = target_boxes([walker], INTR, LEVEL, POSE)
        walker_seen.append(_found(dets, boxes, visible)[0])
    assert all(engine_seen[:10])
    assert not any(engine_seen[13:])
    assert all(walker_seen)
    # A still of the same frame (fresh detector, no history) cannot tell: it reports it.
    assert any(abs(d.cx - 80) < 8 for d in make_detector(DetectorSettings()).detect(frame))


def test_class_hints_from_size_at_range():
    rng = np.random.default_rng(15)
    geometry = {
        "intrinsics": IntrinsicsSettings(width=640, height=512, hfov_deg=24.0),
        "mount": MountSettings(height_m=3.0),
    }
    scenes = {
        "water": ([_at(150, -6, "person"), _at(400, 5, "boat")], ["person", "boat"]),
        "ground": (
            [_at(150, -7, "person"), _at(200, 0, "group"), _at(300, 7, "vehicle")],
            ["person", "group", "vehicle"],
        ),
    }
    for surface, (targets, expected) in scenes.items():
        frame = render_thermal(targets, INTR, LEVEL, POSE, rng)
        detector = make_detector(DetectorSettings(surface=surface, **geometry))
        dets = sorted(detector.detect(frame), key=lambda d: d.cx)
        assert [d.label for d in dets] == expected, surface
        assert all(d.label_conf >= 0.5 for d in dets)


def test_classify_boxes_without_range_uses_shape():
    labels, conf = classify_boxes(
        np.array([3.0, 30.0, 12.0, 2.0]),
        np.array([12.0, 8.0, 12.0, 2.0]),
        np.full(4, np.nan),
        1500.0,
        1500.0,
        "ground",
    )
    assert labels == ["person", "vehicle", "group", "unknown"]
    assert conf[3] < conf[0]


def test_nightvision_finds_a_mover_in_noise():
    rng = np.random.default_rng(16)
    mount = CameraMount(height_m=3.0, pitch_deg=-1.0)
    detector = make_detector(DetectorSettings(kind="nightvision"))
    lights = (HotSpot(600.0, 200.0, 2.0),)
    hits = 0
    false = 0
    frames = 25
    for k in range(frames):
        walker = _at(60.0, -6.0 + 0.25 * k)
        frame = render_nightvision(
            [walker], INTR, mount, POSE, rng, NightVisionScene(lights=lights)
        )
        dets = detector.detect(frame)
        boxes, visible, _ = target_boxes([walker], INTR, mount, POSE)
        found = _found(dets, boxes, visible, margin=4.0)[0]
        if k >= 5:
            hits += found
            false += len(dets) - int(found)
        assert _inside(dets, frame.shape)
    assert hits / (frames - 5) >= 0.9
    assert false / (frames - 5) <= 0.2


def _onnx_blob_model(path: Path, threshold: float) -> None:
    """A fixed network: 3×3 mean, minus a threshold, times a gain, sigmoid. Objectness is high
    where the local mean of the [0, 1] input exceeds ``threshold``."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    gain = 200.0
    w = np.full((1, 1, 3, 3), gain / 9.0, dtype=np.float32)
    b = np.array([-gain * threshold], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["c"], ["y"]),
        ],
        "blobs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 128, 160])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 128, 160])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def test_dnn_detector_runs_an_onnx_model(tmp_path: Path):
    model = tmp_path / "blobs.onnx"
    _onnx_blob_model(model, threshold=0.5)
    frame = np.full((256, 320), 60, dtype=np.uint8)
    frame[100:120, 40:50] = 220
    frame[30:50, 250:290] = 230
    detector = make_detector(DetectorSettings(dnn_model=model, dnn_input_size=(160, 128)))
    dets = sorted(detector.detect(frame), key=lambda d: d.x)
    assert len(dets) == 2
    assert abs(dets[0].cx - 44.5) < 3
    assert abs(dets[0].cy - 109.5) < 3
    assert abs(dets[1].cx - 269.5) < 3
    assert abs(dets[1].cy - 39.5) < 3
    assert all(d.score > 0.9 for d in dets)
    assert (
        detector.detect(np.full((256, 320), 61, dtype=np.uint8) + np.eye(256, 320, dtype=np.uint8))
        == []
    )


@pytest.mark.parametrize("content", [None, b"", b"\x08\x01garbage that is not a protobuf"])
def test_dnn_bad_model_is_a_config_error(tmp_path: Path, content):
    model = tmp_path / "bad.onnx"
    if content is not None:
        model.write_bytes(content)
    with pytest.raises(ConfigError, match="model"):
        make_detector(DetectorSettings(dnn_model=model))


@pytest.mark.parametrize(
    ("frame", "key"),
    [
        (np.zeros((64, 64), dtype=np.float32), "dtype"),
        (np.zeros((64, 64), dtype=np.int16), "dtype"),
        ("not a frame", "dtype"),
        (np.ones((64, 64, 3), dtype=np.uint16), "shape"),
        (np.ones((64, 64, 2), dtype=np.uint8), "shape"),
        (np.ones((4, 64), dtype=np.uint8), "empty"),
        (np.zeros((0, 0), dtype=np.uint8), "empty"),
        (np.zeros((64, 64), dtype=np.uint16), "black"),
        (np.full((64, 64), 255, dtype=np.uint8), "saturated"),
        (np.full((64, 64), 65535, dtype=np.uint16), "saturated"),
        (np.full((64, 64), 1234, dtype=np.uint16), "flat"),
    ],
)
def test_bad_frames_are_refused_with_a_reason(frame, key):
    with pytest.raises(FrameError) as err:
        check_frame(frame)
    assert err.value.key == key
    for kind in ("thermal", "nightvision"):
        with pytest.raises(FrameError):
            make_detector(DetectorSettings(kind=kind)).detect(frame)


def test_colour_frames_are_converted_to_grey():
    frame = np.zeros((64, 64, 3), dtype=np.uint8)
    frame[20:30, 20:24] = 200
    frame[0, 0] = 1
    assert check_frame(frame).shape == (64, 64)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.uint16]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=96),
    ),
    kind=st.sampled_from(["thermal", "nightvision"]),
)
def test_random_frames_never_crash(frame, kind):
    detector = make_detector(DetectorSettings(kind=kind, background_px=16))
    for _ in range(2):  # the second frame exercises the video path
        try:
            dets = detector.detect(frame)
        except FrameError:
            return
        assert _inside(dets, frame.shape)
        assert all(0.0 <= d.score <= 1.0 for d in dets)


def test_black_hot_8_bit_frames():
    """A camera's 8-bit black-hot video (warm is dark) finds the same people as white-hot."""
    rng = np.random.default_rng(17)
    targets = [_at(120.0, -5.0), _at(300.0, 4.0)]
    y16 = render_thermal(targets, INTR, LEVEL, POSE, rng).astype(np.float64)
    white = np.rint((y16 - y16.min()) * 255.0 / (y16.max() - y16.min())).astype(np.uint8)
    black = 255 - white
    boxes, visible, _ = target_boxes(targets, INTR, LEVEL, POSE)
    found = make_detector(DetectorSettings(polarity="black_hot")).detect(black)
    assert _found(found, boxes, visible) == [True, True]
    assert len(found) == 2
    assert [(d.x, d.y) for d in found] == [
        (d.x, d.y) for d in make_detector(DetectorSettings()).detect(white)
    ]
