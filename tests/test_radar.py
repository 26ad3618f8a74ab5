"""Radar TTM/TLL georeferencing from the boat's navigation estimate, and into the tracker."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pynmea2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.fusion.detections import MeasurementKind
from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.models import to_cartesian
from borderwatch.fusion.tracker import Tracker
from borderwatch.sensors.base import Accepted
from borderwatch.sensors.navigation import NavigationEstimator, NavState
from borderwatch.sensors.nmea import NmeaParser
from borderwatch.sensors.platform import sensor_pose
from borderwatch.sensors.radar import RadarSettings, radar_detections
from tests.test_navigation import FRAME, boat_track, feed, gga, gps_lines

DATA = Path(__file__).parent / "data" / "nmea"
BOAT_XY = (100.0, 200.0)


def nav_at(
    xy: tuple[float, float] = BOAT_XY,
    heading: float | None = 30.0,
    pos_sigma: float = 1.0,
    heading_sigma: float = 0.5,
    valid: bool = True,
) -> NavState:
    lat, lon = FRAME.to_wgs84(np.array(xy))[0]
    return NavState(
        t=0.0, lat=float(lat), lon=float(lon), alt_m=0.0, xy=xy, velocity=(0.0, 0.0),
        cov=np.diag([pos_sigma**2, pos_sigma**2, 0.01, 0.01]), heading_deg=heading,
        heading_sigma_deg=None if heading is None else heading_sigma, speed_mps=0.0,
        course_deg=None, fix_quality=2, valid=valid, age_s=0.0,
    )  # fmt: skip


def ttm(
    number: int, range_m: float, bearing: float, ref: str = "T", status: str = "T", ref_tgt=""
) -> str:
    fields = (f"{number:02d}", f"{range_m / 1000.0:.4f}", f"{bearing % 360.0:.2f}", ref, "", "",
              "T", "", "", "K", f"T{number}", status, ref_tgt, "090000.00", "A")  # fmt: skip
    return str(pynmea2.TTM("RA", "TTM", fields))


def tll(number: int, lat: float, lon: float, status: str = "T") -> str:
    def ddmm(v: float, w: int) -> str:
        return f"{int(v):0{w}d}{(v - int(v)) * 60.0:09.6f}"

    fields = (f"{number:02d}", ddmm(lat, 2), "N", ddmm(lon, 3), "E", "", "090000.00", status, "")
    return str(pynmea2.TLL("RA", "TLL", fields))


def parsed(*lines: str) -> list[dict[str, Any]]:
    items = NmeaParser().feed("".join(f"{ln}\r\n" for ln in lines).encode())
    assert all(isinstance(i, Accepted) for i in items), items
    return [i.data for i in items if isinstance(i, Accepted)]


def back_to_xy(batch) -> np.ndarray:
    xy, _cov = to_cartesian(batch.z, batch.R, batch.kind, batch.sensor_xy)
    return xy


def polar(target_xy: np.ndarray, origin: tuple[float, float]) -> tuple[float, float]:
    d = np.asarray(target_xy) - np.asarray(origin)
    return float(np.hypot(*d)), math.degrees(math.atan2(d[0], d[1])) % 360.0


TARGET = np.array([1300.0, -1400.0])


# ------------------------------------------------------------------------------ conversion


def test_true_bearing_converts_back_to_the_target():
    rng, brg = polar(TARGET, BOAT_XY)
    batch, skipped = radar_detections(
        parsed(ttm(1, rng, brg)), 5.0, nav_at(), RadarSettings(), FRAME
    )
    assert skipped == {}
    assert batch.kind.tolist() == [MeasurementKind.RANGE_BEARING]
    assert batch.t.tolist() == [5.0]
    assert batch.sensor_xy[0] == pytest.approx(BOAT_XY)
    assert np.hypot(*(back_to_xy(batch)[0] - TARGET)) < 0.5
    assert 0.0 <= batch.z[0, 1] < 2 * math.pi


@pytest.mark.parametrize(("heading", "yaw"), [(30.0, 0.0), (350.0, 15.0), (200.0, -5.0)])
def test_relative_bearing_uses_heading_and_mount_yaw(heading, yaw):
    rng, brg = polar(TARGET, BOAT_XY)
    rel = brg - heading - yaw
    batch, skipped = radar_detections(
        parsed(ttm(1, rng, rel, ref="R")), 0.0, nav_at(heading=heading),
        RadarSettings(mount_yaw_deg=yaw), FRAME,
    )  # fmt: skip
    assert skipped == {}
    assert np.hypot(*(back_to_xy(batch)[0] - TARGET)) < 0.5


def test_relative_bearing_without_heading_is_refused_true_bearing_is_not():
    rng, brg = polar(TARGET, BOAT_XY)
    items = parsed(ttm(1, rng, brg - 30.0, ref="R"), ttm(2, rng, brg))
    batch, skipped = radar_detections(items, 0.0, nav_at(heading=None), RadarSettings(), FRAME)
    assert skipped == {"no_heading": 1}
    assert len(batch) == 1
    assert np.hypot(*(back_to_xy(batch)[0] - TARGET)) < 0.5


@pytest.mark.parametrize("nav", [None, nav_at(valid=False)])
def test_without_a_valid_position_range_bearing_is_refused(nav):
    items = parsed(ttm(1, 1000.0, 10.0), ttm(2, 2000.0, 20.0, ref="R"))
    batch, skipped = radar_detections(items, 0.0, nav, RadarSettings(), FRAME)
    assert len(batch) == 0
    assert skipped == {"no_position": 2}


def test_noise_is_range_bearing_plus_the_platform_position_error():
    s = RadarSettings(range_sigma_m=10.0, range_sigma_frac=0.01, bearing_sigma_deg=0.5)
    rng, brg = polar(TARGET, BOAT_XY)
    rows = {}
    for sigma in (0.0, 1.0, 20.0):
        batch, _ = radar_detections(
            parsed(ttm(1, rng, brg)), 0.0, nav_at(pos_sigma=sigma), s, FRAME
        )
        rows[sigma] = batch.R[0]
    base_r = (10.0 + 0.01 * rng) ** 2
    base_b = math.radians(0.5) ** 2
    for sigma, R in rows.items():
        # An isotropic platform error adds σ² in range and σ²/r² in bearing, nothing across.
        assert R[0, 0] == pytest.approx(base_r + sigma**2, rel=1e-6)
        assert R[1, 1] == pytest.approx(base_b + sigma**2 / rng**2, rel=1e-6)
        assert R[0, 1] == pytest.approx(0.0, abs=1e-9)
    assert rows[20.0][0, 0] > rows[1.0][0, 0] > rows[0.0][0, 0]
    assert rows[20.0][1, 1] > rows[1.0][1, 1] > rows[0.0][1, 1]


def test_relative_bearing_adds_the_heading_variance():
    rng, brg = polar(TARGET, BOAT_XY)
    nav = nav_at(heading=0.0, heading_sigma=2.0)
    both = parsed(ttm(1, rng, brg), ttm(2, rng, brg, ref="R"))
    batch, _ = radar_detections(both, 0.0, nav, RadarSettings(), FRAME)
    assert batch.R[1, 1, 1] - batch.R[0, 1, 1] == pytest.approx(math.radians(2.0) ** 2)


def test_lost_query_and_reference_targets_are_skipped():
    items = parsed(
        ttm(1, 1000.0, 10.0, status="L"), ttm(2, 1000.0, 10.0, status="Q"),
        ttm(3, 1000.0, 10.0, ref_tgt="R"), ttm(4, 1000.0, 10.0),
    )  # fmt: skip
    batch, skipped = radar_detections(items, 0.0, nav_at(), RadarSettings(), FRAME, sensor_index=3)
    assert skipped == {"lost": 1, "query": 1, "reference": 1}
    assert batch.sensor.tolist() == [3]


def test_mount_offset_is_rotated_by_heading_and_widened_by_its_uncertainty():
    nav = nav_at(heading=90.0, heading_sigma=2.0, pos_sigma=0.0)
    pose = sensor_pose(nav, offset_m=(10.0, 2.0), yaw_deg=5.0)
    assert pose.xy == pytest.approx((BOAT_XY[0] + 10.0, BOAT_XY[1] - 2.0))
    assert pose.heading_deg == pytest.approx(95.0)
    # A heading error swings the 10 m lever arm north-south, 10 m · σ_h.
    assert math.sqrt(pose.xy_cov[1, 1]) == pytest.approx(10.0 * math.radians(2.0), rel=1e-6)
    unknown = sensor_pose(nav_at(heading=None, pos_sigma=0.0), offset_m=(10.0, 2.0))
    assert unknown.xy == pytest.approx(BOAT_XY)
    assert unknown.xy_cov[0, 0] == pytest.approx((10.0**2 + 2.0**2) / 2.0)
    rng, brg = polar(TARGET, pose.xy)
    s = RadarSettings(mount_offset_m=(10.0, 2.0))
    batch, _ = radar_detections(parsed(ttm(1, rng, brg)), 0.0, nav, s, FRAME)
    assert np.hypot(*(back_to_xy(batch)[0] - TARGET)) < 0.5


def test_tll_becomes_a_position_and_a_ttm_of_the_same_target_wins():
    lat, lon = FRAME.to_wgs84(TARGET)[0]
    rng, brg = polar(TARGET, BOAT_XY)
    alone, skipped = radar_detections(parsed(tll(7, lat, lon)), 0.0, None, RadarSettings(), FRAME)
    assert skipped == {}
    assert alone.kind.tolist() == [MeasurementKind.POSITION]
    assert np.hypot(*(alone.z[0] - TARGET)) < 0.1
    assert alone.R[0].tolist() == [[15.0**2, 0.0], [0.0, 15.0**2]]
    # With the platform known, the bearing noise at 2 km spreads the position across range.
    placed, _ = radar_detections(parsed(tll(7, lat, lon)), 0.0, nav_at(), RadarSettings(), FRAME)
    assert np.linalg.eigvalsh(placed.R[0])[-1] > (rng * math.radians(1.0)) ** 2
    both, skipped = radar_detections(
        parsed(tll(7, lat, lon), ttm(7, rng, brg)), 0.0, nav_at(), RadarSettings(), FRAME
    )
    assert skipped == {"duplicate": 1}
    assert both.kind.tolist() == [MeasurementKind.RANGE_BEARING]


def test_recorded_coastal_radar_ttm_agrees_with_its_tll():
    """The sample recording: a fixed site sends TTM (true bearings) and TLL for each target."""
    site = LocalFrame(41.87, 19.36)
    est = NavigationEstimator(site)
    assert feed(est, [(0.0, gga(0.0, 41.87, 19.36))]) == [None]
    nav = est.state(0.0)
    items = parsed(*(DATA / "radar_targets.nmea").read_text().splitlines())
    ttms = [d for d in items if d["sentence"] == "TTM"]
    tlls = [d for d in items if d["sentence"] == "TLL"]
    from_ttm, skipped = radar_detections(ttms, 0.0, nav, RadarSettings(), site)
    from_tll, tll_skipped = radar_detections(tlls, 0.0, nav, RadarSettings(), site)
    assert skipped == tll_skipped == {"lost": 1}
    assert len(from_ttm) == len(from_tll) == 59
    err = np.hypot(*(back_to_xy(from_ttm) - from_tll.z).T)
    # The recording placed its TLLs on a flat-earth approximation (~0.3 % off) and rounds
    # ranges to 1.9 m and bearings to 0.1°.
    assert np.all(err < 0.004 * from_ttm.z[:, 0] + 20.0), err.max()


# ------------------------------------------------------------------------------ properties

_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4),
    st.sampled_from(["TTM", "TLL", "radar_target", "true", "relative", "lost", "tracking"]),
)  # fmt: skip
_KEYS = st.sampled_from(
    ["kind", "sentence", "target", "range_m", "bearing_deg", "bearing_reference", "status",
     "reference_target", "lat", "lon"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(_KEYS, _VALUES, max_size=10), max_size=8), st.booleans())
def test_arbitrary_targets_never_raise(targets, with_nav):
    nav = nav_at() if with_nav else None
    batch, skipped = radar_detections(targets, 1.0, nav, RadarSettings(), FRAME)
    assert len(batch) + sum(skipped.values()) == len(targets)
    assert np.all(np.isfinite(batch.z))
    assert np.all(np.linalg.eigvalsh(batch.R) > 0) if len(batch) else True


# ------------------------------------------------------------------------------ integration


def test_radar_on_a_moving_boat_tracks_targets_near_the_truth():
    """GPS+HDT sentences → navigation; relative-bearing TTMs → detections → tracker."""
    truth = boat_track(segments=(60, 30, 30))  # 2 minutes, with a turn through north
    gps = gps_lines(truth, seed=7)
    targets0 = np.array([[1500.0, 900.0], [-800.0, 2200.0]])
    target_vel = np.array([[-2.0, 1.0], [3.0, 0.0]])
    rng = np.random.default_rng(8)
    est = NavigationEstimator(FRAME)
    tracker = Tracker()
    settings_ = RadarSettings(range_sigma_m=10.0, range_sigma_frac=0.0, bearing_sigma_deg=0.5)
    scan_t = 0.0
    last = None
    for k, t in enumerate(truth.t):
        feed(est, [(tt, line) for tt, line in gps if tt == t])
        while scan_t <= t:  # a radar scan every 2.5 s, at the latest navigation estimate
            nav = est.state(scan_t)
            boat = truth.xy[k] + truth.vel[k] * (scan_t - t)
            heading = truth.course[k] + 3.0  # the HDT's crab (see gps_lines)
            lines = []
            for n, xy in enumerate(targets0 + target_vel * scan_t, start=1):
                r, b = polar(xy, tuple(boat))
                r += rng.normal(0.0, 10.0)
                rel = b - heading + rng.normal(0.0, 0.5)
                lines.append(ttm(n, r, rel, ref="R"))
            batch, skipped = radar_detections(parsed(*lines), scan_t, nav, settings_, FRAME)
            assert skipped == {}
            last = tracker.step(batch, scan_t)
            scan_t += 2.5
    assert last is not None
    table = last.tracks
    final = targets0 + target_vel * table.t
    d = np.hypot(*(table.x[:, None, :2] - final[None]).transpose(2, 0, 1))
    assert len(table) == 2
    assert np.all(d.min(axis=0) < 25.0), f"track errors {d.min(axis=0)} m"
    v_err = np.hypot(*(table.x[d.argmin(axis=0), 2:] - target_vel).T)
    assert np.all(v_err < 1.0)
