"""The own platform's navigation estimate from its GNSS receiver and heading sensor.

:class:`NavigationEstimator` consumes the items :class:`~borderwatch.sensors.nmea.NmeaParser`
accepts (GGA/RMC fixes, VTG velocity, GSA dilution, GST accuracy, HDT/THS heading) and keeps:

* a constant-velocity Kalman filter of ``[x_m, y_m, vx_mps, vy_mps]`` in a local ENU frame
  (filterpy's ``predict``/``update`` and ``Q_discrete_white_noise``, white acceleration of
  1-σ ``accel_sigma_mps2`` per axis). Positions come from GGA or RMC, once per receiver epoch
  (the two sentences of one epoch carry the same solution; fusing both would halve its
  variance dishonestly). Their noise is GST's per-axis sigmas when a GST is known (of the same
  epoch, else the freshest within ``max_fix_age_s``), else ``hdop·uere`` as the horizontal
  (2-D RMS) error, i.e. ``hdop·uere/√2`` per axis. Velocities come from RMC or VTG speed and
  course, once per epoch, with isotropic noise ``speed_sigma_mps``: a GNSS velocity error is
  about the same in every direction, which is why the course it reports grows noisy
  (``σ_course ≈ σ_v / speed``) as the boat slows.
* a ``[heading_deg, rate_dps]`` filter of HDT/THS true heading, with innovations wrapped to
  ±180° so that 359° → 1° is a 2° step.

Time comes only from the ``t`` argument (seconds on the node's time axis). Each input is either
used (``update`` returns None) or refused with a short reason that :attr:`counters` counts:
``invalid_time``, ``malformed``, ``unsupported``, ``invalid_fix``, ``invalid_heading``,
``out_of_order``, ``duplicate``, ``no_fix``, ``no_course``, ``outlier``. Outliers are gated on
the Mahalanobis distance of the innovation and leave the state untouched; when no fix has been
used for ``max_fix_age_s`` the state is invalid and the next valid fix restarts the filter, so a
real jump (or a diverged filter) cannot be gated out for ever. See ``docs/navigation.md``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import predict as kf_predict
from filterpy.kalman import update as kf_update

from borderwatch.fusion.detections import FloatArray
from borderwatch.fusion.frames import LocalFrame

__all__ = ["NavState", "NavigationEstimator", "NavigationSettings"]

log = logging.getLogger(__name__)

#: Fix qualities (GGA field 6) whose position is a measurement: GPS, DGPS, PPS, RTK fixed and
#: float, simulation. 6 (dead reckoning) and 7 (manual input) are not measurements.
_USABLE_QUALITY = frozenset({1, 2, 3, 4, 5, 8})
#: RMC/VTG mode indicator → the GGA fix quality it corresponds to.
_MODE_QUALITY = {"A": 1, "D": 2, "P": 3, "R": 4, "F": 5, "E": 6, "M": 7, "S": 8, "N": 0, "V": 0}
#: HDOP assumed for an RMC fix when neither a GGA nor a GSA has given one recently.
_UNKNOWN_HDOP = 2.0
#: No sigma is trusted below this (an RTK GST can report 0.00 m).
_MIN_SIGMA_M = 0.01
#: Prior 1-σ of the velocity when the filter starts from a position alone (fast boat), m/s.
_INIT_SPEED_SIGMA_MPS = 15.0
#: Prior 1-σ of the turn rate when the heading filter starts, degrees/s.
_INIT_RATE_SIGMA_DPS = 10.0
#: Bounds beyond which a value is not a reading (and would overflow the filter's arithmetic):
#: times (31 700 years either side of the axis' zero), speeds, sigmas and dilutions.
_MAX_ABS_T_S = 1e12
_MAX_SPEED_MPS = 1000.0
_MAX_SIGMA_M = 1e4
_MAX_HDOP = 100.0

_H_POSITION = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
_H_VELOCITY = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
_H_HEADING = np.array([[1.0, 0.0]])


@dataclass(frozen=True, slots=True)
class NavigationSettings:
    """Noise and validity settings of :class:`NavigationEstimator`.

    Attributes:
        uere_m: 1-σ user equivalent range error, m; without GST the horizontal (2-D RMS)
            position error is ``hdop·uere`` (``hdop·uere/√2`` per axis).
        accel_sigma_mps2: 1-σ white acceleration per axis of the constant-velocity model, m/s².
        heading_sigma_deg: 1-σ of an HDT/THS heading (the sentences carry none), degrees.
        max_fix_age_s: the state is invalid when the last used fix is older than this, s; the
            heading sensor is likewise dropped (course takes over) after this long.
        gate_chi2: squared Mahalanobis distance beyond which a measurement is an outlier
            (25 = 5 σ for one degree of freedom, ~1e-5 false rejections for two).
        speed_sigma_mps: 1-σ per axis of a GNSS velocity (RMC/VTG speed and course), m/s.
        heading_accel_sigma_dps2: 1-σ white angular acceleration of the heading filter, °/s².
        course_heading_sigma_deg: 1-σ of the difference between heading and course over ground
            (leeway, current set) when course stands in for a missing heading, degrees.
        course_min_speed_mps: below this speed the course is not reported and cannot stand in
            for the heading, m/s.
    """

    uere_m: float = 4.0
    accel_sigma_mps2: float = 0.5
    heading_sigma_deg: float = 0.5
    max_fix_age_s: float = 5.0
    gate_chi2: float = 25.0
    speed_sigma_mps: float = 0.2
    heading_accel_sigma_dps2: float = 5.0
    course_heading_sigma_deg: float = 10.0
    course_min_speed_mps: float = 1.0


@dataclass(frozen=True, slots=True, eq=False)
class NavState:
    """The platform's navigation state at time ``t``.

    Attributes:
        t: time of the state, seconds on the node's time axis.
        lat, lon: WGS-84 position, degrees.
        alt_m: height above the WGS-84 ellipsoid of the last GGA (altitude plus geoid
            separation; the altitude as sent when the separation is missing), m.
        xy: position in the estimator's local ENU frame, metres (east, north).
        velocity: (east, north) velocity, m/s.
        cov: 4×4 covariance of ``(x, y, vx, vy)`` in m², m²/s, m²/s².
        heading_deg: true heading, degrees clockwise from north, from HDT/THS; else course
            over ground when faster than ``course_min_speed_mps``; else None.
        heading_sigma_deg: 1-σ of ``heading_deg``, degrees (None with it).
        speed_mps: speed over ground, m/s.
        course_deg: course over ground, degrees clockwise from north, None when slower than
            ``course_min_speed_mps``.
        fix_quality: GGA fix quality of the last used fix (from the mode letter for RMC).
        valid: the last used fix is at most ``max_fix_age_s`` from ``t``.
        age_s: time since the last used fix, s (0 when ``t`` is before it).
    """

    t: float
    lat: float
    lon: float
    alt_m: float
    xy: tuple[float, float]
    velocity: tuple[float, float]
    cov: FloatArray
    heading_deg: float | None
    heading_sigma_deg: float | None
    speed_mps: float
    course_deg: float | None
    fix_quality: int
    valid: bool
    age_s: float

    def sigma_m(self) -> float:
        """1-σ horizontal position error along the worst axis (√ of the largest eigenvalue), m."""
        return math.sqrt(max(float(np.linalg.eigvalsh(self.cov[:2, :2])[-1]), 0.0))

    def to_pli_dict(self) -> dict[str, Any]:
        """The node's own position report as a JSON-ready dict (WGS-84, SI units)."""
        return {
            "lat": round(self.lat, 7),
            "lon": round(self.lon, 7),
            "alt_m": round(self.alt_m, 2),
            "speed_mps": round(self.speed_mps, 3),
            "course_deg": _round(self.course_deg, 2),
            "heading_deg": _round(self.heading_deg, 2),
            "sigma_m": round(self.sigma_m(), 2),
            "valid": self.valid,
        }


class NavigationEstimator:
    """Own-platform position, velocity and heading from NMEA items. See the module docstring."""

    def __init__(
        self,
        frame: LocalFrame | None = None,
        settings: NavigationSettings = NavigationSettings(),
    ) -> None:
        self._frame = frame
        self.settings = settings
        #: Refused inputs by reason.
        self.counters: dict[str, int] = {}
        #: Times the position filter restarted on a fix after it had gone stale.
        self.resets = 0
        self._x: FloatArray | None = None
        self._P = np.zeros((4, 4))
        self._t = 0.0  # time of _x, _P
        self._fix_t = 0.0  # time of the last used position
        self._quality = 0
        self._alt_m = 0.0
        # Receiver epoch: key of the last fix's time of day, and what it has contributed.
        self._epoch: str | None = None
        self._epoch_used: set[str] = set()
        self._hdop: tuple[float, float] | None = None  # (hdop, t)
        self._gst: tuple[str | None, float, float, float] | None = None  # key, t, σe, σn
        self._h: FloatArray | None = None  # [heading_deg, rate_dps]
        self._hP = np.zeros((2, 2))
        self._h_t = 0.0

    @property
    def frame(self) -> LocalFrame | None:
        """The local ENU frame of ``xy``; set by the first valid fix if not given."""
        return self._frame

    # ----------------------------------------------------------------------------- input
    def update(self, t: float, data: Mapping[str, Any]) -> str | None:
        """Use one parsed NMEA item (an ``Accepted.data`` dict) measured at time ``t`` (s).

        Returns None when the item was used, else the reason it was refused (also counted in
        :attr:`counters`). Never raises on bad values.
        """
        reason = self._dispatch(t, data)
        if reason is not None:
            self.counters[reason] = self.counters.get(reason, 0) + 1
        return reason

    def _dispatch(self, t: float, data: Mapping[str, Any]) -> str | None:
        if not _usable_time(t):
            return "invalid_time"
        if not isinstance(data, Mapping):
            return "malformed"
        kind = data.get("kind")
        if kind == "fix":
            return self._on_fix(float(t), data)
        if kind == "velocity":
            return self._on_velocity(float(t), data)
        if kind == "heading":
            return self._on_heading(float(t), data)
        if kind == "dop":
            return self._on_dop(float(t), data)
        if kind == "accuracy":
            return self._on_accuracy(float(t), data)
        return "unsupported"

    def _on_fix(self, t: float, data: Mapping[str, Any]) -> str | None:
        if self._x is not None and t < self._t:
            return "out_of_order"
        lat, lon = finite_number(data, "lat"), finite_number(data, "lon")
        quality = _fix_quality(data)
        if (
            data.get("valid") is not True
            or lat is None
            or lon is None
            or abs(lat) > 90.0
            or abs(lon) > 180.0
            or quality not in _USABLE_QUALITY
        ):
            return "invalid_fix"
        key = _epoch_key(data.get("time"), t)
        if key != self._epoch:
            self._epoch, self._epoch_used = key, set()
        hdop = _hdop(data)
        if hdop is not None:
            self._hdop = (hdop, t)
        if "position" in self._epoch_used:
            reason: str | None = "duplicate"
        else:
            # Tried once per epoch whatever the outcome: the epoch's other sentence carries
            # the same solution and would be refused for the same reason.
            self._epoch_used.add("position")
            reason = self._use_position(t, lat, lon, quality, hdop, key, data)
        if "speed_mps" not in data:
            return reason
        v_reason = self._use_velocity(t, data)
        return None if reason is None or v_reason is None else reason

    def _on_velocity(self, t: float, data: Mapping[str, Any]) -> str | None:
        if _MODE_QUALITY.get(str(data.get("mode")), 1) not in _USABLE_QUALITY:
            return "invalid_fix"
        if self._x is not None and t < self._t:
            return "out_of_order"
        return self._use_velocity(t, data)

    def _on_dop(self, t: float, data: Mapping[str, Any]) -> str | None:
        hdop = _hdop(data)
        if data.get("fix_type") == 1 or hdop is None:
            return "invalid_fix"
        self._hdop = (hdop, t)
        return None

    def _on_accuracy(self, t: float, data: Mapping[str, Any]) -> str | None:
        sigma_n, sigma_e = finite_number(data, "sigma_lat_m"), finite_number(data, "sigma_lon_m")
        if sigma_n is None or sigma_e is None:
            return "malformed"
        if min(sigma_n, sigma_e) < 0 or max(sigma_n, sigma_e) > _MAX_SIGMA_M:
            return "malformed"
        self._gst = (_epoch_key(data.get("time"), t), t, sigma_e, sigma_n)
        return None

    def _on_heading(self, t: float, data: Mapping[str, Any]) -> str | None:
        heading = finite_number(data, "heading_deg")
        if heading is None or not 0.0 <= heading <= 360.0 or data.get("mode") == "V":
            return "invalid_heading"
        if self._h is not None and t < self._h_t:
            return "out_of_order"
        sigma = self.settings.heading_sigma_deg
        R = np.array([[sigma * sigma]])
        if self._h is None or t - self._h_t > self.settings.max_fix_age_s:
            self._h = np.array([heading % 360.0, 0.0])
            self._hP = np.diag([sigma * sigma, _INIT_RATE_SIGMA_DPS**2])
            self._h_t = t
            return None
        h, P = self._predict_heading(t)
        # Measure the heading as the angle nearest the prediction, so 359° → 1° is +2°.
        z = np.array([h[0] + _wrap_deg(heading - h[0])])
        updated = _gated_update(h, P, z, R, _H_HEADING, self.settings.gate_chi2)
        if updated is None:
            return "outlier"
        self._h, self._hP = updated
        self._h[0] %= 360.0
        self._h_t = t
        return None

    # ----------------------------------------------------------------------------- filter
    def _use_position(
        self,
        t: float,
        lat: float,
        lon: float,
        quality: int,
        hdop: float | None,
        key: str,
        data: Mapping[str, Any],
    ) -> str | None:
        if self._frame is None:
            self._frame = LocalFrame(lat, lon, _height(data) or 0.0)
            log.info("navigation frame origin set by the first fix: %.7f, %.7f", lat, lon)
        z = self._frame.to_enu(np.array([lat]), np.array([lon]))[0]
        R = self._position_noise(t, key, hdop)
        if self._x is None or t - self._fix_t > self.settings.max_fix_age_s:
            if self._x is not None:
                self.resets += 1
                log.info("navigation filter restarted: no fix used for %.1f s", t - self._fix_t)
            self._x = np.array([z[0], z[1], 0.0, 0.0])
            self._P = np.zeros((4, 4))
            self._P[:2, :2] = R
            self._P[2:, 2:] = np.eye(2) * _INIT_SPEED_SIGMA_MPS**2
        else:
            x, P = self._predict(t)
            updated = _gated_update(x, P, z, R, _H_POSITION, self.settings.gate_chi2)
            if updated is None:
                return "outlier"
            self._x, self._P = updated
        self._t = self._fix_t = t
        self._quality = quality
        height = _height(data)
        if height is not None:
            self._alt_m = height
        return None

    def _use_velocity(self, t: float, data: Mapping[str, Any]) -> str | None:
        speed, course = finite_number(data, "speed_mps"), finite_number(data, "course_deg")
        if speed is None or not 0 <= speed <= _MAX_SPEED_MPS:
            return "malformed"
        if course is None and speed > 0:
            return "no_course"
        if self._x is None:
            return "no_fix"
        if "velocity" in self._epoch_used:
            return "duplicate"
        c = math.radians(course or 0.0)
        z = np.array([speed * math.sin(c), speed * math.cos(c)])
        R = np.eye(2) * self.settings.speed_sigma_mps**2
        x, P = self._predict(t)
        updated = _gated_update(x, P, z, R, _H_VELOCITY, self.settings.gate_chi2)
        self._epoch_used.add("velocity")
        if updated is None:
            return "outlier"
        self._x, self._P = updated
        self._t = t
        return None

    def _position_noise(self, t: float, key: str, hdop: float | None) -> FloatArray:
        """Per-axis position covariance (east, north) of a fix at ``t``, m²."""
        max_age = self.settings.max_fix_age_s
        # Receivers send GST after the epoch's fixes: the freshest GST is the best estimate.
        if self._gst is not None and (self._gst[0] == key or 0.0 <= t - self._gst[1] <= max_age):
            sigma_e, sigma_n = (max(s, _MIN_SIGMA_M) for s in self._gst[2:])
            return np.diag([sigma_e * sigma_e, sigma_n * sigma_n])
        if hdop is None and self._hdop is not None and 0.0 <= t - self._hdop[1] <= max_age:
            hdop = self._hdop[0]
        drms = (hdop if hdop is not None and hdop > 0 else _UNKNOWN_HDOP) * self.settings.uere_m
        sigma = max(drms / math.sqrt(2.0), _MIN_SIGMA_M)
        return np.eye(2) * sigma * sigma

    def _predict(self, t: float) -> tuple[FloatArray, FloatArray]:
        """The position filter's state predicted (forwards or backwards) to ``t``."""
        assert self._x is not None
        dt = t - self._t
        F = np.eye(4)
        F[0, 2] = F[1, 3] = dt
        Q = Q_discrete_white_noise(
            dim=2,
            dt=abs(dt),
            var=self.settings.accel_sigma_mps2**2,
            block_size=2,
            order_by_dim=False,
        )
        x, P = kf_predict(self._x, self._P, F, Q)
        return np.asarray(x, dtype=np.float64), np.asarray(P, dtype=np.float64)

    def _predict_heading(self, t: float) -> tuple[FloatArray, FloatArray]:
        assert self._h is not None
        dt = t - self._h_t
        F = np.array([[1.0, dt], [0.0, 1.0]])
        Q = Q_discrete_white_noise(dim=2, dt=abs(dt), var=self.settings.heading_accel_sigma_dps2**2)
        h, P = kf_predict(self._h, self._hP, F, Q)
        return np.asarray(h, dtype=np.float64), np.asarray(P, dtype=np.float64)

    # ----------------------------------------------------------------------------- output
    def state(self, t: float) -> NavState | None:
        """The navigation state predicted to ``t`` (s); None before the first valid fix.

        ``t`` may be before the last update (a radar scan older than the last fix): the
        constant-velocity model is run backwards with the process noise of ``|dt|``.
        """
        if self._x is None or self._frame is None or not _usable_time(t):
            return None
        s = self.settings
        x, P = self._predict(t)
        lat, lon = (float(v) for v in self._frame.to_wgs84(x[:2])[0])
        vx, vy = float(x[2]), float(x[3])
        speed = math.hypot(vx, vy)
        course = (
            math.degrees(math.atan2(vx, vy)) % 360.0 if speed >= s.course_min_speed_mps else None
        )
        heading, heading_sigma = self._heading_at(t, x, P)
        age = t - self._fix_t
        return NavState(
            t=t,
            lat=lat,
            lon=lon,
            alt_m=self._alt_m,
            xy=(float(x[0]), float(x[1])),
            velocity=(vx, vy),
            cov=P,
            heading_deg=heading,
            heading_sigma_deg=heading_sigma,
            speed_mps=speed,
            course_deg=course,
            fix_quality=self._quality,
            valid=abs(age) <= s.max_fix_age_s,
            age_s=max(age, 0.0),
        )

    def _heading_at(
        self, t: float, x: FloatArray, P: FloatArray
    ) -> tuple[float | None, float | None]:
        """Heading from the heading sensor while it is fresh, else from course over ground."""
        s = self.settings
        if self._h is not None and abs(t - self._h_t) <= s.max_fix_age_s:
            h, hP = self._predict_heading(t)
            return float(h[0] % 360.0), math.sqrt(max(float(hP[0, 0]), 0.0))
        vx, vy = float(x[2]), float(x[3])
        speed = math.hypot(vx, vy)
        if speed <= s.course_min_speed_mps:
            return None, None
        # Variance of the velocity across the track, turned into a course angle.
        across = np.array([vy, -vx]) / speed
        var_across = float(across @ P[2:, 2:] @ across)
        sigma_course = math.degrees(math.atan2(math.sqrt(max(var_across, 0.0)), speed))
        sigma = math.hypot(sigma_course, s.course_heading_sigma_deg)
        return math.degrees(math.atan2(vx, vy)) % 360.0, sigma


# --------------------------------------------------------------------------------- helpers


def finite_number(data: Mapping[str, Any], key: str) -> float | None:
    """A finite real number at ``data[key]``, else None (booleans are not numbers here)."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def _usable_time(t: Any) -> bool:
    return isinstance(t, int | float) and math.isfinite(t) and abs(t) <= _MAX_ABS_T_S


def _hdop(data: Mapping[str, Any]) -> float | None:
    """A usable horizontal dilution of precision (receivers send 99.99 without a fix)."""
    hdop = finite_number(data, "hdop")
    return hdop if hdop is not None and 0 < hdop < _MAX_HDOP else None


def _fix_quality(data: Mapping[str, Any]) -> int:
    """GGA's fix quality, or the one an RMC mode letter stands for (1 when it has none)."""
    quality = data.get("fix_quality")
    if isinstance(quality, int) and not isinstance(quality, bool):
        return quality
    return _MODE_QUALITY.get(str(data.get("mode")), 1)


def _epoch_key(time: Any, t: float) -> str:
    """Key of a receiver epoch: the sentence's UTC time of day, or ``t`` when it has none.

    GGA sends ``hh:mm:ss.sss`` and RMC ``yyyy-mm-ddThh:mm:ss.sssZ`` for the same epoch.
    """
    if isinstance(time, str) and time:
        return time.rsplit("T", 1)[-1].rstrip("Z")
    return f"t={t!r}"


def _height(data: Mapping[str, Any]) -> float | None:
    alt = finite_number(data, "alt_m")
    if alt is None:
        return None
    return alt + (finite_number(data, "geoid_sep_m") or 0.0)


def _wrap_deg(a: float) -> float:
    """An angle difference wrapped to [-180, 180) degrees."""
    return (a + 180.0) % 360.0 - 180.0


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


def _gated_update(
    x: FloatArray, P: FloatArray, z: FloatArray, R: FloatArray, H: FloatArray, gate: float
) -> tuple[FloatArray, FloatArray] | None:
    """filterpy's Kalman update, or None when ``z`` is further than ``gate`` (squared
    Mahalanobis distance of the innovation) from the prediction."""
    S = H @ P @ H.T + R
    y = z - H @ x
    try:
        d2 = float(y @ np.linalg.solve(S, y))
    except np.linalg.LinAlgError:
        return None
    if not math.isfinite(d2) or d2 > gate:
        return None
    x_new, P_new = kf_update(x, P, z, R, H)
    P_new = np.asarray(P_new, dtype=np.float64)
    return np.asarray(x_new, dtype=np.float64), (P_new + P_new.T) / 2.0
