"""Cameras end to end: truth → rendered frames → detections → tracks, scored; and a real node.

Frames are rendered by the simulator (:mod:`borderwatch.simulator.render`) from the targets'
true positions and the camera's pose, detected by the real detectors in the camera stage's
worker thread, and tracked by the fusion core. The node test serves the frames as a raw frame
stream on 127.0.0.1 and the boat's GNSS as NMEA over TCP, and runs a real :class:`Node`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from borderwatch.cli import main
from borderwatch.config.devices import DeviceConfig, ThermalCameraDevice
from borderwatch.config.node import NodeConfig, load_node_config
from borderwatch.config.tracker import TrackerConfig
from borderwatch.drivers.base import Reading
from borderwatch.drivers.camera import FrameCredits
from borderwatch.drivers.registry import make_driver
from borderwatch.edge.camera import (
    BearingPairer,
    CameraStage,
    camera_geometry,
    triangulate_bearings,
)
from borderwatch.edge.ingest import SensorStage
from borderwatch.edge.node import Node
from borderwatch.fusion.detections import DetectionBatch, MeasurementKind
from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.tracker import Tracker
from borderwatch.schema import Alert, NodeState, Track
from borderwatch.sensors.base import Accepted
from borderwatch.sensors.camera.geometry import CameraIntrinsics, PlatformPose
from borderwatch.sensors.navigation import NavState
from borderwatch.simulator.camerastream import FrameStreamServer
from borderwatch.simulator.devices import nmea_coordinate
from borderwatch.simulator.render import RenderTarget, render_nightvision, render_thermal
from borderwatch.simulator.scoring import gospa
from tests.test_node import Collector

DEVICES: TypeAdapter[Any] = TypeAdapter(DeviceConfig)
ROOT = Path(__file__).resolve().parents[1]
ORIGIN = {"lat_deg": 44.187, "lon_deg": 19.335, "alt_m": 180.0}
FRAME = LocalFrame(ORIGIN["lat_deg"], ORIGIN["lon_deg"], ORIGIN["alt_m"])
#: A truth-detection match: bearing within this, degrees.
MATCH_DEG = 1.0
#: GOSPA cut-off for the camera scenes, m.
GOSPA_C_M = 50.0
#: Unix time of a served scenario's t = 0 (the stream header's capture times).
EPOCH_S = 1.8e9


def camera(**fields: Any) -> Any:
    config: dict[str, Any] = {
        "type": "thermal_camera",
        "sensor_id": "cam",
        "url": "tcp://127.0.0.1:5600",
        "width": 640,
        "height": 512,
        "intrinsics": {"hfov_deg": 24.0},
        **fields,
    }
    return DEVICES.validate_python(config)


def site(e: float, n: float, heading_deg: float = 0.0) -> dict[str, float]:
    lat, lon = FRAME.to_wgs84(np.array([[e, n]]))[0]
    return {"lat_deg": float(lat), "lon_deg": float(lon), "heading_deg": heading_deg}


def nav_at(e: float, n: float, heading_deg: float, t: float = 0.0) -> NavState:
    """A boat's navigation state (GNSS position ±1 m, heading ±0.3°)."""
    lat, lon = FRAME.to_wgs84(np.array([[e, n]]))[0]
    return NavState(
        t=t,
        lat=float(lat),
        lon=float(lon),
        alt_m=180.0,
        xy=(e, n),
        velocity=(0.0, 0.0),
        cov=np.diag([1.0, 1.0, 0.01, 0.01]),
        heading_deg=heading_deg,
        heading_sigma_deg=0.3,
        speed_mps=0.0,
        course_deg=None,
        fix_quality=1,
        valid=True,
        age_s=0.0,
    )


def bearing_deg(frm: tuple[float, float], to: tuple[float, float]) -> float:
    return math.degrees(math.atan2(to[0] - frm[0], to[1] - frm[1])) % 360.0


def row_bearing_deg(batch: DetectionBatch, k: int) -> float:
    col = 1 if batch.kind[k] == MeasurementKind.RANGE_BEARING else 0
    return math.degrees(batch.z[k, col]) % 360.0


def wrap_deg(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


async def detect_frame(
    stage: CameraStage, t: float, image: np.ndarray[Any, Any], nav: NavState | None = None
) -> list[DetectionBatch]:
    """One frame through the stage's worker thread, as the node's sensor stage hands it on."""
    credits = FrameCredits(2)
    ticket = credits.take()
    assert ticket is not None
    reason = stage.submit(t, {"image": image, "ticket": ticket}, nav)
    assert reason is None, reason
    while not stage.idle():
        await asyncio.sleep(0.001)
    outcomes, _ = credits.take_outcomes()
    assert outcomes == {"done": 1}, outcomes
    return stage.take()


@dataclass
class FrameScore:
    """Detections scored against one target's truth bearing per frame."""

    frames: int = 0
    hits: int = 0
    false: int = 0
    errors_deg: list[float] | None = None

    def add(self, batch: DetectionBatch, truth_deg: float, sensor: int | None = None) -> None:
        self.frames += 1
        self.errors_deg = self.errors_deg or []
        rows = [k for k in range(len(batch)) if sensor is None or batch.sensor[k] == sensor]
        errs = sorted((abs(wrap_deg(row_bearing_deg(batch, k) - truth_deg)), k) for k in rows)
        if errs and errs[0][0] <= MATCH_DEG:
            self.hits += 1
            k = errs[0][1]
            self.errors_deg.append(wrap_deg(row_bearing_deg(batch, k) - truth_deg))
        self.false += len(rows) - (1 if errs and errs[0][0] <= MATCH_DEG else 0)

    @property
    def pd(self) -> float:
        return self.hits / self.frames

    @property
    def rms_deg(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.errors_deg or [np.nan]))))

    @property
    def false_per_frame(self) -> float:
        return self.false / self.frames


# ------------------------------------------------------------------------------- scenes


async def test_mast_camera_truth_to_tracks_scored() -> None:
    """A person walks across the view of a thermal camera on a 20 m mast, 280 m away."""
    device = camera(
        site=site(0.0, 0.0, heading_deg=10.0),
        mount={"height_m": 20.0, "pitch_deg": -4.0, "yaw_deg": 0.0},
    )
    stage = CameraStage(device, 0, FRAME)
    intr, mount = camera_geometry(device)
    pose = stage.pose(None)
    assert isinstance(pose, PlatformPose)
    tracker = Tracker(TrackerConfig())
    rng = np.random.default_rng(21)
    score = FrameScore()
    gospas: list[float] = []
    dt = 0.2
    for k in range(45):
        t = k * dt
        person = (30.0 + 1.4 * t, 275.0 + 0.3 * t)
        image = render_thermal([RenderTarget(*person, "person")], intr, mount, pose, rng)
        batches = await detect_frame(stage, t, image)
        batch = DetectionBatch.concat(batches)
        score.add(batch, bearing_deg((pose.e, pose.n), person))
        tracks = tracker.step(batch, t).tracks
        if k >= 22:
            gospas.append(gospa(np.array([person]), tracks.x[:, :2], c=GOSPA_C_M).distance_m)
    print(
        f"mast camera, person at 280 m: Pd {score.pd:.2f}, bearing RMS {score.rms_deg:.3f}°, "
        f"false/frame {score.false_per_frame:.2f}, GOSPA (2nd half) {np.mean(gospas):.1f} m, "
        f"detect {stage.stats()['detect_ms_mean']:.1f} ms/frame"
    )
    assert score.pd >= 0.9
    assert score.rms_deg <= 0.5
    assert score.false_per_frame <= 0.1
    assert len(tracks.track_id) == 1
    assert np.mean(gospas) < 15.0
    assert stage.stats()["processed"] == 45


async def test_two_boats_cameras_triangulate_one_target() -> None:
    """Two patrol boats 600 m apart see a dark boat ~800 m off only as bearings (cameras 3 m
    above the water); paired, the bearings start and keep one track on it. Each boat's
    navigation is off the truth as a real one is: a GNSS position bias (σ 1 m) and a compass
    bias (σ 0.3°), with 0.1° of heading jitter per frame; frames are rendered from the true
    pose, detections placed with the believed one."""
    boats = [(0.0, 0.0, 30.0), (600.0, 0.0, 330.0)]  # e, n, heading
    errors = np.random.default_rng(20).normal(0.0, [1.0, 1.0, 0.3], (2, 3))
    stages = [
        CameraStage(
            camera(sensor_id=f"boat{i}-thermal", mount={"height_m": 3.0, "pitch_deg": -0.5}),
            i,
            FRAME,
        )
        for i in range(2)
    ]
    intr, mount = camera_geometry(stages[0].device)
    tracker = Tracker(TrackerConfig())
    untriangulated = Tracker(TrackerConfig())
    rng = np.random.default_rng(22)
    scores = [FrameScore(), FrameScore()]
    gospas: list[float] = []
    kinds: set[int] = set()
    dt = 0.25
    for k in range(32):
        t = k * dt
        target = (300.0 + 4.0 * t, 750.0 - 1.0 * t)
        batches: list[DetectionBatch] = []
        for i, (stage, (e, n, heading)) in enumerate(zip(stages, boats, strict=True)):
            de, dn, dh = errors[i]
            nav = nav_at(e + de, n + dn, heading + dh + rng.normal(0.0, 0.1), t)
            assert isinstance(stage.pose(nav), PlatformPose)
            true_pose = PlatformPose(e, n, heading)
            image = render_thermal([RenderTarget(*target, "boat")], intr, mount, true_pose, rng)
            # The two boats' frames are 40 ms apart, as unsynchronised cameras are.
            batch = DetectionBatch.concat(await detect_frame(stage, t + 0.04 * i, image, nav))
            kinds.update(batch.kind.tolist())
            scores[i].add(batch, bearing_deg((e, n), target))
            batches.append(batch)
        both = DetectionBatch.concat(batches)
        untriangulated.step(both, t + 0.04)
        tracks = tracker.step(triangulate_bearings(both), t + 0.04).tracks
        if k >= 16:
            gospas.append(gospa(np.array([target]), tracks.x[:, :2], c=GOSPA_C_M).distance_m)
    for i, s in enumerate(scores):
        print(
            f"boat {i} camera, boat at ~800 m: Pd {s.pd:.2f}, bearing RMS {s.rms_deg:.3f}°, "
            f"false/frame {s.false_per_frame:.2f}"
        )
    print(f"triangulated track: GOSPA (2nd half) {np.mean(gospas):.1f} m")
    assert kinds == {MeasurementKind.BEARING_ONLY}
    # The bearing error is now mostly the compass bias (|0.3°| σ), on top of the image's own.
    assert all(s.pd >= 0.9 and s.rms_deg <= 1.0 and s.false_per_frame <= 0.1 for s in scores)
    assert len(tracks.track_id) == 1
    error = float(np.hypot(*(tracks.x[0, :2] - np.array(target))))
    assert error < 20.0, error
    assert np.mean(gospas) < 20.0
    # Without the pairing, bearings alone never start a track.
    assert len(untriangulated.step(DetectionBatch.empty(), 8.5).tracks.track_id) == 0


def test_triangulation_leaves_ambiguous_and_lone_bearings_alone() -> None:
    def rows(t: Sequence[float], b_deg: Sequence[float], xy: Sequence[Any], s: Sequence[int]):
        n = len(t)
        z = np.column_stack([np.radians(b_deg), np.full(n, np.nan)])
        R = np.zeros((n, 2, 2))
        R[:, 0, 0] = math.radians(0.2) ** 2
        return DetectionBatch(
            t=np.array(t, float),
            kind=np.full(n, MeasurementKind.BEARING_ONLY),
            z=z,
            R=R,
            sensor_xy=np.array(xy, float),
            sensor=np.array(s),
        )

    # One target at (300, 800) seen from (0, 0) and (600, 0).
    b0, b1 = bearing_deg((0, 0), (300, 800)), bearing_deg((600, 0), (300, 800))
    one = triangulate_bearings(rows([1.0, 1.05], [b0, b1], [(0, 0), (600, 0)], [0, 1]))
    assert one.kind.tolist() == [MeasurementKind.POSITION]
    np.testing.assert_allclose(one.z[0], [300.0, 800.0], atol=1e-6)
    sigma = np.sqrt(np.linalg.eigvalsh(one.R[0]))
    assert 1.0 < sigma.max() < 10.0  # 0.2° at ~850 m, crossing at ~40°
    # Same sensor, too far apart in time, parallel rays, crossing behind: left as bearings.
    for t, b, xy, s in [
        ([1.0, 1.0], [b0, b1], [(0, 0), (600, 0)], [0, 0]),
        ([1.0, 2.0], [b0, b1], [(0, 0), (600, 0)], [0, 1]),
        ([1.0, 1.0], [0.0, 0.0], [(0, 0), (600, 0)], [0, 1]),
        ([1.0, 1.0], [(b0 + 180) % 360, (b1 + 180) % 360], [(0, 0), (600, 0)], [0, 1]),
    ]:
        kept = triangulate_bearings(rows(t, b, xy, s))
        assert kept.kind.tolist() == [MeasurementKind.BEARING_ONLY] * 2
    # Two targets seen by both: four crossings, two of them ghosts; ambiguous, left alone.
    c0, c1 = bearing_deg((0, 0), (500, 900)), bearing_deg((600, 0), (500, 900))
    two = rows([1.0] * 4, [b0, c0, b1, c1], [(0, 0), (0, 0), (600, 0), (600, 0)], [0, 0, 1, 1])
    assert triangulate_bearings(two).kind.tolist() == [MeasurementKind.BEARING_ONLY] * 4


async def test_a_node_pairs_two_cameras_bearings_finished_at_different_times() -> None:
    """Two masts' cameras in one node, their workers finishing at different moments: the sensor
    stage holds a bearing until its partner's arrives (≤ 0.2 s), pairs them, and the tracker,
    with a reorder window covering that hold, starts one track and rejects nothing as late."""
    sites = [(0.0, 0.0, 30.0), (600.0, 0.0, 330.0)]
    devices = [
        {
            "type": "thermal_camera",
            "sensor_id": f"mast{i}",
            "url": f"tcp://127.0.0.1:{5700 + i}",
            "width": 640,
            "height": 512,
            "intrinsics": {"hfov_deg": 24.0},
            "site": site(e, n, heading),
            "mount": {"height_m": 3.0, "pitch_deg": -0.5},
        }
        for i, (e, n, heading) in enumerate(sites)
    ]
    tracker_settings = {"reorder_lag_s": 0.3}
    config = NodeConfig.model_validate(
        {
            "node_id": "masts",
            "frame": ORIGIN,
            "devices": devices,
            "fusion": {"tracker": tracker_settings},
        }
    )
    epoch = datetime.fromtimestamp(1.8e9, UTC)
    stage = SensorStage(config, FRAME, epoch)
    tracker = Tracker(config.fusion.tracker)
    credits = FrameCredits(4)
    rng = np.random.default_rng(25)
    kinds: list[int] = []
    for k in range(16):
        t = k * 0.25
        target = (300.0 + 4.0 * t, 750.0)
        for i, (sensor_id, camera_stage) in enumerate(stage.cameras.items()):
            pose = camera_stage.pose(None)
            assert isinstance(pose, PlatformPose)
            assert camera_stage.intrinsics is not None
            image = render_thermal(
                [RenderTarget(*target, "boat")],
                camera_stage.intrinsics,
                camera_stage.mount,
                pose,
                rng,
            )
            data = {"kind": "frame", "image": image, "ticket": credits.take()}
            t_rx = epoch.timestamp() + t + 0.04 * i
            stage.handle(Reading(sensor_id, t_rx, Accepted("y16", data)))
            while not camera_stage.idle():
                await asyncio.sleep(0.001)
            # The node steps as soon as one camera's rows are ready.
            rows = stage.take_detections()
            kinds.extend(rows.kind.tolist())
            tracks = tracker.step(rows, t + 0.04 * i).tracks
    print(f"two masts in one node: rows to the tracker {Counter(kinds)}, tracks {len(tracks)}")
    assert kinds.count(MeasurementKind.POSITION) >= 12
    assert len(tracks.track_id) == 1
    assert tracker.stats.rejected.get("late", 0) == 0
    error = float(np.hypot(*(tracks.x[0, :2] - np.array(target))))
    assert error < 20.0, error


def test_bearing_pairer_releases_a_lone_bearing_after_its_hold() -> None:
    pairer = BearingPairer(max_dt_s=0.2)
    lone = DetectionBatch(
        t=np.array([10.0]),
        kind=np.array([MeasurementKind.BEARING_ONLY]),
        z=np.array([[0.5, np.nan]]),
        R=np.diag([1e-5, 0.0])[None],
        sensor_xy=np.zeros((1, 2)),
        sensor=np.array([0]),
    )
    position = DetectionBatch.positions(np.array([10.05]), np.array([[5.0, 5.0]]), np.ones(1))
    out = pairer.take(DetectionBatch.concat([lone, position]), now=10.05)
    assert out.kind.tolist() == [MeasurementKind.POSITION]
    assert pairer.holding()
    assert len(pairer.take(DetectionBatch.empty(), now=10.15)) == 0
    out = pairer.take(DetectionBatch.empty(), now=10.25)
    assert out.kind.tolist() == [MeasurementKind.BEARING_ONLY]
    assert not pairer.holding()


async def test_nightvision_camera_frames_go_through_motion_detection() -> None:
    """A low-light camera on an 8 m mast: its frames go to the night-vision (motion) detector
    in the worker thread, which finds a person walking 150 m away."""
    from borderwatch.sensors.camera.nightvision import NightVisionDetector

    device = camera(
        type="nightvision_camera",
        site=site(0.0, 0.0),
        mount={"height_m": 8.0, "pitch_deg": -3.0},
        intrinsics={"hfov_deg": 30.0},
    )
    stage = CameraStage(device, 0, FRAME)
    assert isinstance(stage.detector, NightVisionDetector)
    intr, mount = camera_geometry(device)
    pose = stage.pose(None)
    assert isinstance(pose, PlatformPose)
    rng = np.random.default_rng(23)
    score = FrameScore()
    for k in range(40):
        t = k * 0.2
        person = (-20.0 + 1.5 * t, 150.0)
        image = render_nightvision([RenderTarget(*person, "person")], intr, mount, pose, rng)
        batch = DetectionBatch.concat(await detect_frame(stage, t, image))
        if k >= 10:  # the background model learns the scene first
            score.add(batch, bearing_deg((0.0, 0.0), person))
    print(
        f"night vision, person at 150 m: Pd {score.pd:.2f}, bearing RMS {score.rms_deg:.3f}°, "
        f"false/frame {score.false_per_frame:.2f}"
    )
    assert stage.stats()["processed"] == 40
    assert score.pd >= 0.8
    assert score.rms_deg <= 0.5
    assert score.false_per_frame <= 0.2


def test_bad_calibration_file_faults_the_camera_only(tmp_path: Path) -> None:
    bad = tmp_path / "cal.yaml"
    bad.write_text("%YAML:1.0\ncamera_matrix: [1, 2\n", encoding="utf-8")
    stage = CameraStage(camera(intrinsics={"calibration_file": str(bad)}), 0, FRAME)
    assert stage.fault is not None
    assert stage.fault[0] == "bad_calibration"
    assert str(bad) in stage.fault[1]
    credits = FrameCredits(2)
    ticket = credits.take()
    image = np.full((512, 640), 29000, np.uint16)
    assert stage.submit(0.0, {"image": image, "ticket": ticket}, None) == "bad_calibration"
    outcomes, details = credits.take_outcomes()
    assert outcomes == {"bad_calibration": 1}
    assert str(bad) in details["bad_calibration"]
    # Without a pose source a frame has no position; a boat without a heading none either.
    stage = CameraStage(camera(), 0, FRAME)
    assert stage.submit(0.0, {"image": image, "ticket": credits.take()}, None) == "no_position"
    headless = replace(nav_at(0.0, 0.0, 0.0), heading_deg=None, heading_sigma_deg=None)
    assert stage.submit(0.0, {"image": image, "ticket": credits.take()}, headless) == "no_heading"


async def test_a_scenario_served_as_a_camera_stream_is_tracked_and_scored() -> None:
    """The shipped green-night-patrol scenario, seen by a thermal camera on a 25 m mast near the
    'turner' walker, served at 10× as a raw frame stream (capture time = scenario time) and
    read by the camera driver: detections → tracks, scored against the scenario's truth of
    the targets in view."""
    from borderwatch.config.scenario import load_scenario
    from borderwatch.scenarios import resolve_scenario
    from borderwatch.simulator.camerastream import CameraView, serve_scenario_camera, targets_at
    from borderwatch.simulator.render import target_boxes
    from borderwatch.simulator.run import simulate

    scenario = load_scenario(resolve_scenario("green-night-patrol"))
    sim = simulate(scenario)
    frame = sim.frame
    lat, lon = frame.to_wgs84(np.array([[-2150.0, -900.0]]))[0]
    device = camera(
        site={"lat_deg": float(lat), "lon_deg": float(lon)},
        mount={"height_m": 25.0, "pitch_deg": -5.0},
    )
    stage = CameraStage(device, 0, frame)
    intr, mount = camera_geometry(device)
    pose = stage.pose(None)
    assert isinstance(pose, PlatformPose)
    readings: asyncio.Queue[Reading] = asyncio.Queue()
    tracker = Tracker(TrackerConfig())
    gospas: list[float] = []
    in_view: list[int] = []
    tracked: list[int] = []

    async def consume() -> None:
        while True:
            data = (await readings.get()).item.data
            t = data["t_capture"] - EPOCH_S
            assert stage.submit(t, data, None) is None
            while not stage.idle():
                await asyncio.sleep(0.001)
            tracks = tracker.step(DetectionBatch.concat(stage.take()), t).tracks
            seen = targets_at(sim.targets, t)
            _boxes, visible, _r = target_boxes(seen, intr, mount, pose)
            truth = np.array([[g.e, g.n] for g, v in zip(seen, visible, strict=True) if v])
            if t >= 8.0:
                step = gospa(truth.reshape(-1, 2), tracks.x[:, :2], c=GOSPA_C_M)
                gospas.append(step.distance_m)
                in_view.append(len(truth))
                tracked.append(len(truth) - step.n_missed)

    async with FrameStreamServer() as server:
        driver = make_driver(camera(url=server.url), readings.put_nowait)
        tasks = [asyncio.create_task(driver.run()), asyncio.create_task(consume())]
        await server.wait_for_clients()
        view = CameraView(intr, mount, pose)
        sent = await serve_scenario_camera(
            server,
            sim.targets,
            view,
            fps=2.0,
            until_s=30.0,
            speed=10.0,
            seed=sim.seed,
            epoch_s=EPOCH_S,
        )
        await server.drain()
        await asyncio.sleep(0.5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(
        f"green-night-patrol from a 25 m mast at 10x: {sent} frames served, "
        f"{stage.stats()['processed']} detected, targets in view {max(in_view)}, "
        f"tracked {sum(tracked)}/{sum(in_view)} target-frames, mean GOSPA {np.mean(gospas):.1f} m"
    )
    assert max(in_view) >= 1
    assert sum(tracked) >= 0.8 * sum(in_view)
    assert np.mean(gospas) < 20.0


# ------------------------------------------------------------------------------- the node


def nmea(body: str) -> bytes:
    checksum = functools.reduce(lambda a, c: a ^ ord(c), body, 0)
    return f"${body}*{checksum:02X}\r\n".encode("ascii")


def gps_lines(e: float, n: float, heading_deg: float, utc: float) -> bytes:
    lat, lon = FRAME.to_wgs84(np.array([[e, n]]))[0]
    la, ns = nmea_coordinate(float(lat), "lat")
    lo, ew = nmea_coordinate(float(lon), "lon")
    hms = time.strftime("%H%M%S", time.gmtime(utc)) + f".{int(utc * 100) % 100:02d}"
    return nmea(f"GPGGA,{hms},{la},{ns},{lo},{ew},1,10,0.8,180.0,M,0.0,M,,") + nmea(
        f"HEHDT,{heading_deg:.1f},T"
    )


async def serve_gps(
    port_ready: asyncio.Future[int], position: Callable[[], tuple[float, float, float]]
) -> None:
    """NMEA GGA + HDT at 5 Hz to every client of a TCP port on 127.0.0.1."""
    clients: set[asyncio.StreamWriter] = set()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        clients.add(writer)
        with contextlib.suppress(OSError):
            await reader.read()
        clients.discard(writer)

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    port_ready.set_result(server.sockets[0].getsockname()[1])
    try:
        while True:
            lines = gps_lines(*position(), time.time())
            for writer in list(clients):
                writer.write(lines)
            await asyncio.sleep(0.2)
    finally:
        for writer in clients:
            writer.close()
        server.close()


async def test_node_tracks_a_camera_target_across_the_border(tmp_path: Path) -> None:
    """A real node: a boat's GNSS over TCP, its thermal camera as a raw frame stream (with
    corrupt and wrong-size frames mixed in), and a second camera whose calibration file is
    broken. A person runs across the border in the camera's view: one track, one alert."""
    boat = (0.0, -150.0, 10.0)  # e, n, heading: looking north-north-east over the bank
    border = tmp_path / "border.geojson"
    border.write_text(json.dumps({"type": "LineString", "coordinates": [[60, -500], [60, 800]]}))
    bad_cal = tmp_path / "broken.yaml"
    bad_cal.write_text("not a calibration\n", encoding="utf-8")
    loop = asyncio.get_running_loop()
    gps_port: asyncio.Future[int] = loop.create_future()
    gps_task = asyncio.create_task(serve_gps(gps_port, lambda: boat))
    collector = Collector()
    async with FrameStreamServer() as stream:
        cam = {
            "type": "thermal_camera",
            "url": stream.url,
            "width": 640,
            "height": 512,
            "mount": {"height_m": 6.0, "pitch_deg": -2.0, "offset_m": [2.0, 0.0]},
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.2,
        }
        document = {
            "node_id": "boat-cam",
            "simulated": True,
            "frame": ORIGIN,
            "border": str(border),
            "devices": [
                {"type": "gps", "sensor_id": "gps", "url": f"tcp://127.0.0.1:{await gps_port}"},
                {**cam, "sensor_id": "thermal", "intrinsics": {"hfov_deg": 24.0}},
                {**cam, "sensor_id": "broken", "intrinsics": {"calibration_file": str(bad_cal)}},
            ],
            "fusion": {"scan_interval_s": 0.2},
            "health": {"interval_s": 0.5},
        }
        config = NodeConfig.model_validate(document)
        node = Node(config, [collector])
        stage = node.stage.cameras["thermal"]
        assert stage.intrinsics is not None
        intr, mount = stage.intrinsics, stage.mount
        node_task = asyncio.create_task(node.run())
        try:
            await stream.wait_for_clients(2)
            rng = np.random.default_rng(24)
            start = time.time()
            seq = 0
            while time.time() - start < 8.0:
                t = time.time() - start
                person = (48.0 + 3.0 * max(0.0, t - 1.0), 100.0)  # crosses e = 60 at t = 5 s
                nav = node.stage.nav_state(node.stage.time_of(time.time()))
                if nav is not None and nav.valid:
                    pose = stage.pose(nav)
                    assert isinstance(pose, PlatformPose)
                    target = RenderTarget(*person, "person")
                    await stream.send(render_thermal([target], intr, mount, pose, rng), seq)
                    if seq % 10 == 5:
                        await stream.send(np.full((256, 320), 29000, np.uint16), seq)
                        await stream.send_raw(b"BWF1" + bytes(200))
                    seq += 1
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            state = node.state()
        finally:
            node.stop()
            await asyncio.wait_for(node_task, 10.0)
            gps_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gps_task

    sensors = {s.sensor_id: s for s in state.sensors}
    print(
        f"node: {seq} frames sent; thermal {sensors['thermal'].messages} accepted, "
        f"{sensors['thermal'].detections} detections; errors {state.error_counts}; "
        f"tracks {len({t.track_id for t in collector.of(Track)})}, "
        f"alerts {[(a.kind.value, a.event.value) for a in collector.of(Alert)]}"
    )
    assert sensors["gps"].status.value == "ok"
    assert sensors["thermal"].status.value == "ok"
    # Every good frame is accounted for: accepted, or dropped while detection was behind.
    dropped = state.error_counts.get("thermal.frames_dropped", 0)
    assert sensors["thermal"].messages + dropped == seq
    # Each camera's frames in detection are a queue of the health report, with its drops.
    queues = {q.name: q for q in state.queues}
    assert set(queues) == {"readings", "thermal.frames", "broken.frames"}
    assert queues["thermal.frames"].dropped == dropped
    assert queues["thermal.frames"].depth <= queues["thermal.frames"].capacity
    assert sensors["thermal"].detections >= 0.8 * sensors["thermal"].messages
    assert sensors["broken"].status.value == "fault"
    assert "bad_calibration" in sensors["broken"].detail
    assert state.error_counts.get("thermal.wrong_size", 0) >= 3
    assert state.error_counts.get("broken.wrong_size", 0) >= 3
    assert state.error_counts.get("broken.bad_calibration", 0) >= 10
    track_ids = {t.track_id for t in collector.of(Track)}
    assert len(track_ids) == 1
    last = collector.of(Track)[-1]
    lat, lon = last.position.lat_deg, last.position.lon_deg
    e, n = FRAME.to_enu(np.array([lat]), np.array([lon]))[0]
    assert abs(n - 100.0) < 15.0
    assert abs(e - (48.0 + 3.0 * 7.0)) < 15.0
    alerts = collector.of(Alert)
    assert any(a.kind.value == "crossing" for a in alerts)
    assert isinstance(collector.of(NodeState)[-1], NodeState)


# ------------------------------------------------------------------------------- configuration


def test_example_camera_node_config_validates(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "config" / "nodes" / "patrol-boat-camera.yaml"
    config = load_node_config(path)
    types = {d.type for d in config.devices}
    assert {"gps", "thermal_camera", "nightvision_camera"} <= types
    assert main(["validate-config", str(path)]) == 0
    assert "boat-thermal (thermal_camera)" in capsys.readouterr().out


def test_relative_camera_files_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    CameraIntrinsics.from_fov(640, 512, 24.0).to_opencv_file(folder / "thermal.yaml")
    (folder / "node.yaml").write_text(
        "node_id: n1\n"
        "frame: {lat_deg: 44.187, lon_deg: 19.335}\n"
        "devices:\n"
        "  - {type: thermal_camera, sensor_id: cam, url: rec/run1.y16, width: 640, height: 512,\n"
        "     intrinsics: {calibration_file: thermal.yaml}}\n",
        encoding="utf-8",
    )
    device = load_node_config(folder / "node.yaml").devices[0]
    assert isinstance(device, ThermalCameraDevice)
    assert device.url == str(folder / "rec" / "run1.y16")
    assert device.intrinsics.calibration_file == folder / "thermal.yaml"
    stage = CameraStage(device, 0, FRAME)
    assert stage.fault is None
    assert stage.intrinsics is not None
    assert stage.intrinsics.width == 640


def test_camera_doc_examples_validate() -> None:
    import re

    import yaml

    text = (ROOT / "docs" / "camera-node.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert blocks
    for block in blocks:
        document = yaml.safe_load(block)
        if "node_id" in document:
            NodeConfig.model_validate(document)
        else:
            for device in document["devices"]:
                DEVICES.validate_python(device)
