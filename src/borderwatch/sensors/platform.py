"""Where a sensor mounted on the own platform (the boat) is, in the fusion frame.

A sensor sits at an offset from the platform's reference point (the GNSS antenna, whose position
the navigation estimate gives) and may be turned on its mount. Its position in the local ENU
frame is the platform position plus the offset rotated by the platform's true heading, and its
uncertainty is the platform's position covariance plus the part of the heading uncertainty
that the lever arm turns into position (``∂offset/∂heading · σ_h``). Radars use this now;
cameras will reuse it.

Angles: headings are true, in degrees clockwise from north; offsets are (forward, right) in
metres in the platform's body frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from borderwatch.fusion.detections import FloatArray
from borderwatch.fusion.frames import LocalFrame

if TYPE_CHECKING:
    from borderwatch.sensors.navigation import NavState

__all__ = ["SensorPose", "sensor_pose"]


@dataclass(frozen=True, slots=True, eq=False)
class SensorPose:
    """A sensor's position and pointing in the fusion frame.

    Attributes:
        xy: sensor position, local ENU metres (east, north).
        xy_cov: 2×2 covariance of ``xy``, m².
        heading_deg: true heading of the sensor's zero direction (platform heading plus mount
            yaw), degrees clockwise from north in [0, 360), or None when the platform heading
            is unknown.
        heading_sigma_deg: 1-σ of ``heading_deg``, degrees, or None with it.
    """

    xy: tuple[float, float]
    xy_cov: FloatArray
    heading_deg: float | None
    heading_sigma_deg: float | None


def sensor_pose(
    nav: NavState,
    offset_m: tuple[float, float] = (0.0, 0.0),
    yaw_deg: float = 0.0,
    frame: LocalFrame | None = None,
) -> SensorPose:
    """The pose of a sensor mounted ``offset_m`` = (forward, right) metres from the platform
    reference point and turned ``yaw_deg`` clockwise on its mount.

    Args:
        nav: the platform's navigation state at the time of interest.
        offset_m: lever arm in the body frame, metres (forward, right).
        yaw_deg: mount yaw, degrees clockwise from the bow.
        frame: the fusion frame; None uses the navigation estimator's own frame (``nav.xy``).
            When given, the platform position is converted from ``nav.lat``/``nav.lon``; the
            covariance is kept as it is (the two tangent planes differ by a rotation far
            below the heading noise within the tens of kilometres a node covers).

    Without a heading the lever arm's direction is unknown: the sensor is placed at the
    reference point and the offset's length enters the covariance as a direction uniform on a
    circle (variance ``|offset|²/2`` per axis).
    """
    if frame is None:
        base = np.array(nav.xy, dtype=np.float64)
    else:
        base = frame.to_enu(np.array([nav.lat]), np.array([nav.lon]))[0]
    cov = np.array(nav.cov, dtype=np.float64)[:2, :2].copy()
    forward, right = float(offset_m[0]), float(offset_m[1])
    if nav.heading_deg is None:
        cov += np.eye(2) * (forward * forward + right * right) / 2.0
        return SensorPose((float(base[0]), float(base[1])), cov, None, None)
    h = math.radians(nav.heading_deg)
    sh, ch = math.sin(h), math.cos(h)
    # Body (forward, right) to ENU (east, north) for a heading h clockwise from north.
    lever = np.array([forward * sh + right * ch, forward * ch - right * sh])
    d_lever = np.array([forward * ch - right * sh, -forward * sh - right * ch])
    sigma_h = math.radians(nav.heading_sigma_deg or 0.0)
    cov += np.outer(d_lever, d_lever) * sigma_h * sigma_h
    xy = base + lever
    return SensorPose(
        (float(xy[0]), float(xy[1])),
        cov,
        (nav.heading_deg + yaw_deg) % 360.0,
        nav.heading_sigma_deg,
    )
