"""Detection generation: what each simulated sensor reports at each of its scans.

A scan is one sensor update at time ``t``. Every live target inside the field of view is detected
with probability ``pd``; its measurement is the truth plus Gaussian noise in the sensor's own
coordinates (position, range-bearing or bearing-only, see
:mod:`borderwatch.fusion.detections`). False detections are Poisson-distributed in number
(mean ``clutter_rate`` per scan) and uniform over the field of view's area. The detections of a
scan are shuffled so their order does not reveal which target they came from.

Each sensor draws from its own random stream, so adding a sensor changes neither the targets'
trajectories nor any other sensor's detections. Frames: local ENU metres; bearings and azimuths
are radians clockwise from north.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from borderwatch.config.scenario import (
    FieldOfView,
    PlatformConfig,
    PositionSensorConfig,
    RadarSensorConfig,
    SensorConfig,
)
from borderwatch.fusion.detections import (
    DetectionBatch,
    FloatArray,
    IntArray,
    MeasurementKind,
    TargetClass,
)
from borderwatch.simulator.truth import Trajectory, TruthTable, follow_path, unit

TWO_PI = 2.0 * math.pi
#: Scan times within this many seconds past the scenario's end still count (rounding).
TIME_EPS_S = 1e-9


@dataclass(frozen=True, slots=True)
class Scan:
    """All detections of one sensor update.

    Attributes:
        t: scan time, s.
        sensor: index of the sensor in the scenario's sensor list.
        detections: the detections, in random order.
        truth_index: per detection, the index of the target that caused it, or -1 for clutter.
    """

    t: float
    sensor: int
    detections: DetectionBatch
    truth_index: IntArray


@dataclass(frozen=True, slots=True)
class SensorPose:
    """Sensor positions ``(n, 2)`` (m) and boresight reference headings (rad) at scan times."""

    xy: FloatArray
    heading_rad: FloatArray


def scan_times(cfg: SensorConfig, duration_s: float) -> FloatArray:
    """Times of a sensor's scans, s: ``phase_s + k · update_interval_s`` up to ``duration_s``."""
    if cfg.phase_s > duration_s + TIME_EPS_S:
        return np.zeros(0)
    n = math.floor((duration_s - cfg.phase_s) / cfg.update_interval_s + TIME_EPS_S) + 1
    return cfg.phase_s + np.arange(n, dtype=np.float64) * cfg.update_interval_s


def platform_trajectory(cfg: PlatformConfig, duration_s: float) -> Trajectory:
    """The path of a moving platform, from its first waypoint at t = 0."""
    points = np.array(cfg.points, dtype=np.float64)
    speeds = [cfg.speed_mps] * (len(points) - 1)
    trajectory, _ = follow_path(points, speeds, 0.0, duration_s, cfg.repeat)
    return trajectory


def sensor_pose(
    cfg: SensorConfig, platforms: dict[str, Trajectory], times: FloatArray
) -> SensorPose:
    """Where the sensor is and which way its boresight reference points at ``times``."""
    n = times.shape[0]
    if cfg.mount.platform is None:
        assert cfg.mount.xy is not None
        return SensorPose(np.tile(np.array(cfg.mount.xy, dtype=np.float64), (n, 1)), np.zeros(n))
    xy, _v, heading = platforms[cfg.mount.platform].evaluate(times)
    return SensorPose(xy, heading if cfg.fov.heading_relative else np.zeros(n))


def wrap_2pi(angle_rad: FloatArray) -> FloatArray:
    """Angles wrapped to [0, 2π)."""
    return np.asarray(np.mod(angle_rad, TWO_PI), dtype=np.float64)


def range_bearing(sensor_xy: FloatArray, xy: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Range (m) and bearing (rad clockwise from north, in [0, 2π)) from a sensor to points."""
    d = xy - sensor_xy
    return np.hypot(d[:, 0], d[:, 1]), wrap_2pi(np.arctan2(d[:, 0], d[:, 1]))


def in_view(
    fov: FieldOfView, sensor_xy: FloatArray, heading_rad: float, xy: FloatArray
) -> NDArray[np.bool_]:
    """Boolean mask of the points ``(n, 2)`` inside the field of view."""
    r, b = range_bearing(sensor_xy, xy)
    inside: NDArray[np.bool_] = r <= fov.max_range_m
    if fov.width_deg < 360.0:
        centre = heading_rad + math.radians(fov.centre_azimuth_deg)
        off = np.abs((b - centre + math.pi) % TWO_PI - math.pi)
        inside &= off <= math.radians(fov.width_deg) / 2.0
    return inside


def clutter_points(
    fov: FieldOfView, sensor_xy: FloatArray, heading_rad: float, n: int, rng: np.random.Generator
) -> FloatArray:
    """``n`` points ``(n, 2)`` uniform over the area of the field of view."""
    r = fov.max_range_m * np.sqrt(rng.random(n))
    centre = heading_rad + math.radians(fov.centre_azimuth_deg)
    b = centre + (rng.random(n) - 0.5) * math.radians(fov.width_deg)
    return sensor_xy + r[:, None] * unit(b)


def measure(
    cfg: SensorConfig,
    t: float,
    sensor_xy: FloatArray,
    xy: FloatArray,
    noisy: bool,
    rng: np.random.Generator,
) -> DetectionBatch:
    """Detections of points ``xy`` (m), with measurement noise when ``noisy`` (else exact)."""
    n = xy.shape[0]
    times = np.full(n, t)
    if isinstance(cfg, PositionSensorConfig):
        z = xy + (rng.normal(0.0, cfg.sigma_m, (n, 2)) if noisy else 0.0)
        return DetectionBatch.positions(times, z, np.full(n, cfg.sigma_m))
    r, b = range_bearing(sensor_xy, xy)
    s_b = math.radians(cfg.sigma_bearing_deg)
    R = np.zeros((n, 2, 2))
    if isinstance(cfg, RadarSensorConfig):
        if noisy:
            r = np.abs(r + rng.normal(0.0, cfg.sigma_range_m, n))
            b = wrap_2pi(b + rng.normal(0.0, s_b, n))
        z = np.column_stack([r, b])
        R[:, 0, 0], R[:, 1, 1] = cfg.sigma_range_m**2, s_b**2
        kind = MeasurementKind.RANGE_BEARING
    else:
        if noisy:
            b = wrap_2pi(b + rng.normal(0.0, s_b, n))
        z = np.column_stack([b, np.full(n, np.nan)])
        R[:, 0, 0] = s_b**2
        kind = MeasurementKind.BEARING_ONLY
    return DetectionBatch(
        t=times,
        kind=np.full(n, kind, dtype=np.int64),
        z=z,
        R=R,
        sensor_xy=np.tile(sensor_xy, (n, 1)),
        sensor=np.zeros(n, dtype=np.int64),
    )


def simulate_sensor(
    index: int,
    cfg: SensorConfig,
    times: FloatArray,
    pose: SensorPose,
    truth: TruthTable,
    rng: np.random.Generator,
) -> list[Scan]:
    """Every scan of one sensor (index ``index`` in the scenario) at ``times`` (s)."""
    return [
        _scan(index, cfg, float(t), pose.xy[j], float(pose.heading_rad[j]), truth, rng)
        for j, t in enumerate(times)
    ]


def _scan(
    index: int,
    cfg: SensorConfig,
    t: float,
    sensor_xy: FloatArray,
    heading_rad: float,
    truth: TruthTable,
    rng: np.random.Generator,
) -> Scan:
    rows = truth.rows_at(t)
    xy, ids, cls = truth.xy[rows], truth.truth_id[rows], truth.cls[rows]
    seen = in_view(cfg.fov, sensor_xy, heading_rad, xy)
    seen &= rng.random(xy.shape[0]) < cfg.pd
    targets = measure(cfg, t, sensor_xy, xy[seen], True, rng)
    n_clutter = int(rng.poisson(cfg.clutter_rate))
    fake = clutter_points(cfg.fov, sensor_xy, heading_rad, n_clutter, rng)
    clutter = measure(cfg, t, sensor_xy, fake, False, rng)
    batch = DetectionBatch.concat([targets, clutter])
    origin = np.concatenate([ids[seen], np.full(n_clutter, -1, dtype=np.int64)])
    hint = np.concatenate([cls[seen], np.full(n_clutter, TargetClass.UNKNOWN, dtype=np.int64)])
    confidence = np.concatenate(
        [np.full(int(seen.sum()), cfg.class_confidence), np.zeros(n_clutter)]
    )
    order = rng.permutation(len(batch))
    batch = DetectionBatch(
        t=batch.t,
        kind=batch.kind,
        z=batch.z,
        R=batch.R,
        sensor_xy=batch.sensor_xy,
        sensor=np.full(len(batch), index, dtype=np.int64),
        cls=hint,
        cls_conf=confidence,
    ).take(order)
    return Scan(t, index, batch, origin[order])
