"""Marine radar target reports (NMEA TTM/TLL) as detections for the fusion core.

A TTM gives a target's range and bearing from the radar; it becomes a ``RANGE_BEARING`` row
measured from the radar's position in the fusion frame (the boat's navigation estimate moved
by the radar's lever arm, :func:`borderwatch.sensors.platform.sensor_pose`). Bearings are
clockwise from north: "true" bearings as sent, "relative" ones (from the bow) plus the radar's
heading (platform heading plus mount yaw), which therefore needs a heading.

The noise ``R`` states everything the row does not carry:

* range: ``(range_sigma_m + range_sigma_frac·range)²``;
* bearing: ``bearing_sigma²``, plus the heading variance for relative bearings;
* the platform position error, which the tracker cannot see because ``sensor_xy`` is a point:
  ``G·C·Gᵀ`` with ``C`` the sensor position covariance and ``G = ∂(range, bearing)/∂sensor``,
  i.e. the position variance along the line of sight in range and across it divided by
  range² in bearing.

A TLL gives the target's latitude/longitude; it becomes a ``POSITION`` row with 1-σ
``range_sigma_m`` per axis, and, when the platform state is known, the cross-range spread of
the bearing noise at the target's distance and the platform position covariance as well. A
target sent both ways in one batch is used once, from its TTM (the raw measurement).

Skipped targets are counted by reason: ``lost``, ``query``, ``reference``, ``no_position`` (no
valid navigation state), ``no_heading`` (relative bearing without a heading), ``duplicate``,
``malformed``, ``unsupported``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from borderwatch.fusion.detections import DetectionBatch, FloatArray, MeasurementKind
from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.models import measure, to_cartesian
from borderwatch.sensors.navigation import NavState, finite_number
from borderwatch.sensors.platform import SensorPose, sensor_pose

__all__ = ["RadarSettings", "radar_detections"]

#: Ranges are floored here before dividing by them (a target on the antenna has no bearing), m.
_MIN_RANGE_M = 1.0
_SKIP_STATUS = {"lost": "lost", "query": "query"}
#: A detection row: measurement kind, z, R and sensor position.
_Row = tuple[int, FloatArray, FloatArray, FloatArray]


@dataclass(frozen=True, slots=True)
class RadarSettings:
    """Noise and mounting of one radar.

    Attributes:
        range_sigma_m: 1-σ range error independent of range, m (also the TLL position σ).
        range_sigma_frac: 1-σ range error proportional to range (0.005 = 0.5 %).
        bearing_sigma_deg: 1-σ bearing error of the radar itself, degrees.
        mount_offset_m: antenna position from the platform reference point (the GNSS antenna),
            (forward, right) metres.
        mount_yaw_deg: angle of the radar's zero bearing from the bow, clockwise, degrees;
            applied to relative bearings (a radar sending true bearings has already applied it).
    """

    range_sigma_m: float = 15.0
    range_sigma_frac: float = 0.005
    bearing_sigma_deg: float = 1.0
    mount_offset_m: tuple[float, float] = (0.0, 0.0)
    mount_yaw_deg: float = 0.0


def radar_detections(
    targets: Sequence[Mapping[str, Any]],
    t: float,
    nav: NavState | None,
    settings: RadarSettings,
    frame: LocalFrame,
    sensor_index: int = 0,
) -> tuple[DetectionBatch, dict[str, int]]:
    """One radar scan's ``radar_target`` items as a detection batch at time ``t`` (s).

    Args:
        targets: ``Accepted.data`` dicts of TTM and TLL sentences.
        t: time of the scan on the node's time axis, s.
        nav: the platform state at ``t`` (``NavigationEstimator.state(t)``), or None.
        settings: the radar's noise and mounting.
        frame: the fusion frame the rows are expressed in.
        sensor_index: the radar's index in the caller's sensor table.

    Returns:
        The detections (TTM → ``RANGE_BEARING``, TLL → ``POSITION``, in input order) and the
        number of skipped targets by reason.
    """
    skipped: dict[str, int] = {}
    pose = None
    if nav is not None and nav.valid:
        pose = sensor_pose(nav, settings.mount_offset_m, settings.mount_yaw_deg, frame)
    rows: dict[int, _Row | str] = {i: _skip_reason(tg) for i, tg in enumerate(targets)}
    # TTMs first: a TLL is a duplicate only of a TTM that was used.
    used: set[Any] = set()
    for i, target in enumerate(targets):
        if rows[i] == "" and target.get("sentence") == "TTM":
            rows[i] = _ttm_row(target, pose, settings)
            if not isinstance(rows[i], str):
                used.add(target.get("target"))
    for i, target in enumerate(targets):
        if rows[i] == "":
            dup = target.get("target") in used
            rows[i] = "duplicate" if dup else _tll_row(target, pose, settings, frame)
    kinds: list[int] = []
    zs: list[FloatArray] = []
    Rs: list[FloatArray] = []
    origins: list[FloatArray] = []
    for row in rows.values():
        if isinstance(row, str):
            skipped[row] = skipped.get(row, 0) + 1
            continue
        kinds.append(row[0])
        zs.append(row[1])
        Rs.append(row[2])
        origins.append(row[3])
    n = len(kinds)
    if n == 0:
        return DetectionBatch.empty(), skipped
    batch = DetectionBatch(
        t=np.full(n, float(t)),
        kind=np.array(kinds, dtype=np.int64),
        z=np.array(zs),
        R=np.array(Rs),
        sensor_xy=np.array(origins),
        sensor=np.full(n, sensor_index, dtype=np.int64),
    )
    return batch, skipped


def _skip_reason(target: Any) -> str:
    """Why a target is not a measurement of a real contact ("" when it is one)."""
    if not isinstance(target, Mapping):
        return "malformed"
    if target.get("kind") != "radar_target" or target.get("sentence") not in ("TTM", "TLL"):
        return "unsupported"
    status = target.get("status")
    if isinstance(status, str) and status in _SKIP_STATUS:
        return _SKIP_STATUS[status]
    if target.get("reference_target") is True:
        return "reference"
    return ""


def _ttm_row(
    target: Mapping[str, Any], pose: SensorPose | None, settings: RadarSettings
) -> _Row | str:
    rng, bearing_deg = finite_number(target, "range_m"), finite_number(target, "bearing_deg")
    reference = target.get("bearing_reference")
    if rng is None or bearing_deg is None or rng < 0 or reference not in ("true", "relative"):
        return "malformed"
    if pose is None:
        return "no_position"
    var_b = math.radians(settings.bearing_sigma_deg) ** 2
    if reference == "relative":
        if pose.heading_deg is None:
            return "no_heading"
        bearing_deg += pose.heading_deg
        var_b += math.radians(pose.heading_sigma_deg or 0.0) ** 2
    bearing = math.radians(bearing_deg) % (2.0 * math.pi)
    sigma_r = settings.range_sigma_m + settings.range_sigma_frac * rng
    R = np.diag([sigma_r * sigma_r, var_b])
    origin = np.array(pose.xy)
    # The platform's position error seen in range and bearing, through the measurement's
    # Jacobian with respect to the target (equal but opposite to the one for the sensor).
    r = max(rng, _MIN_RANGE_M)
    target_x = np.array([origin[0] + r * math.sin(bearing), origin[1] + r * math.cos(bearing)])
    _zhat, H = measure(
        np.array([target_x[0], target_x[1], 0.0, 0.0]),
        np.array(MeasurementKind.RANGE_BEARING),
        origin,
    )
    G = H[:, :2]
    R = R + G @ pose.xy_cov @ G.T
    return MeasurementKind.RANGE_BEARING, np.array([rng, bearing]), _symmetric(R), origin


def _tll_row(
    target: Mapping[str, Any],
    pose: SensorPose | None,
    settings: RadarSettings,
    frame: LocalFrame,
) -> _Row | str:
    lat, lon = finite_number(target, "lat"), finite_number(target, "lon")
    if lat is None or lon is None or abs(lat) > 90.0 or abs(lon) > 180.0:
        return "malformed"
    xy = frame.to_enu(np.array([lat]), np.array([lon]))[0]
    R = np.eye(2) * settings.range_sigma_m**2
    if pose is not None:
        # The radar placed the target from its own range and bearing: the same errors as a
        # TTM's, carried into position, plus the platform's position error.
        d = xy - np.array(pose.xy)
        rng = max(math.hypot(d[0], d[1]), _MIN_RANGE_M)
        sigma_r = settings.range_sigma_m + settings.range_sigma_frac * rng
        var_b = math.radians(settings.bearing_sigma_deg) ** 2
        var_b += math.radians(pose.heading_sigma_deg or 0.0) ** 2
        z = np.array([[rng, math.atan2(d[0], d[1])]])
        polar = np.diag([sigma_r * sigma_r, var_b])[None]
        kind = np.array([MeasurementKind.RANGE_BEARING])
        _xy, C = to_cartesian(z, polar, kind, np.array([pose.xy]))
        R = C[0] + pose.xy_cov
    return MeasurementKind.POSITION, xy, _symmetric(R), np.zeros(2)


def _symmetric(R: FloatArray) -> FloatArray:
    return np.asarray((R + R.T) / 2.0, dtype=np.float64)
