"""Own-platform navigation from NMEA sentences built with pynmea2 and read by the real parser.

A simulated boat (straight, then a turn through north, then straight) is turned into GGA, RMC,
VTG, HDT and GST sentences with seeded noise; the estimate is scored against the truth.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pynmea2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.fusion.frames import LocalFrame
from borderwatch.sensors.base import Accepted
from borderwatch.sensors.navigation import NavigationEstimator, NavigationSettings, NavState
from borderwatch.sensors.nmea import NmeaParser

LAT0, LON0 = 42.05, 19.10
FRAME = LocalFrame(LAT0, LON0)
START_S = 9 * 3600.0  # 09:00:00 UTC
SIGMA_M = 3.0  # injected position noise per axis
SPEED_SIGMA = 0.2  # injected velocity noise per axis
HEADING_SIGMA = 0.5  # injected heading noise
CRAB_DEG = 3.0  # heading minus course: the estimate must follow HDT, not the course
KNOT = 1852.0 / 3600.0


@dataclass
class Truth:
    t: np.ndarray  # (n,) s
    xy: np.ndarray  # (n, 2) m in FRAME
    vel: np.ndarray  # (n, 2) m/s
    course: np.ndarray  # (n,) degrees


def boat_track(
    speed: float = 5.0, heading0: float = 300.0, rate_dps: float = 3.0, segments=(40, 40, 20)
) -> Truth:
    """1 Hz truth: straight on ``heading0``, a turn at ``rate_dps`` (through north), straight."""
    rates = np.concatenate(
        [np.zeros(segments[0]), np.full(segments[1], rate_dps), np.zeros(segments[2])]
    )
    course = (heading0 + np.concatenate([[0.0], np.cumsum(rates[:-1])])) % 360.0
    c = np.radians(course)
    vel = speed * np.column_stack([np.sin(c), np.cos(c)])
    xy = np.vstack([[0.0, 0.0], np.cumsum((vel[:-1] + vel[1:]) / 2.0, axis=0)])
    return Truth(np.arange(len(course), dtype=float), xy, vel, course)


def _ddmm(value: float, width: int) -> str:
    deg = int(abs(value))
    return f"{deg:0{width}d}{(abs(value) - deg) * 60.0:09.6f}"


def _hhmmss(t: float) -> str:
    s = START_S + t
    return f"{int(s // 3600):02d}{int(s % 3600 // 60):02d}{s % 60:05.2f}"


def _raw(body: str) -> str:
    """A sentence pynmea2 has no class for (THS), with pynmea2's checksum."""
    return f"${body}*{pynmea2.NMEASentence.checksum(body):02X}"


def gga(t: float, lat: float, lon: float, hdop: float = 1.06, quality: int = 2) -> str:
    fields = (_hhmmss(t), _ddmm(lat, 2), "N", _ddmm(lon, 3), "E", str(quality), "11",
              f"{hdop:.2f}", "3.0", "M", "41.2", "M", "", "")  # fmt: skip
    return str(pynmea2.GGA("GP", "GGA", fields))


def rmc(t: float, lat: float, lon: float, speed: float, course: float, status: str = "A") -> str:
    fields = (_hhmmss(t), status, _ddmm(lat, 2), "N", _ddmm(lon, 3), "E", f"{speed / KNOT:.3f}",
              f"{course:.2f}", "231126", "4.3", "E", "D")  # fmt: skip
    return str(pynmea2.RMC("GP", "RMC", fields))


def vtg(speed: float, course: float) -> str:
    fields = (f"{course:.2f}", "T", "", "M", f"{speed / KNOT:.3f}", "N",
              f"{speed * 3.6:.3f}", "K", "D")  # fmt: skip
    return str(pynmea2.VTG("GP", "VTG", fields))


def hdt(heading: float) -> str:
    return str(pynmea2.HDT("HE", "HDT", (f"{heading % 360.0:.2f}", "T")))


def gst(t: float, sigma: float) -> str:
    fields = (_hhmmss(t), f"{sigma:.2f}", "", "", "", f"{sigma:.2f}", f"{sigma:.2f}", "2.0")
    return str(pynmea2.GST("GP", "GST", fields))


def gps_lines(
    truth: Truth,
    seed: int = 1,
    *,
    heading: bool = True,
    with_rmc: bool = True,
    with_gst: float | None = None,
) -> list[tuple[float, str]]:
    """The receiver's and heading sensor's sentences, each with its time on the node axis."""
    rng = np.random.default_rng(seed)
    lines: list[tuple[float, str]] = []
    for k, t in enumerate(truth.t):
        xy = truth.xy[k] + rng.normal(0.0, SIGMA_M, 2)
        lat, lon = FRAME.to_wgs84(xy)[0]
        v = truth.vel[k] + rng.normal(0.0, SPEED_SIGMA, 2)
        speed, course = math.hypot(*v), math.degrees(math.atan2(v[0], v[1])) % 360.0
        lines.append((t, gga(t, lat, lon)))
        if with_rmc:
            lines.append((t, rmc(t, lat, lon, speed, course)))
        lines.append((t, vtg(speed, course)))
        if heading:
            noise = rng.normal(0.0, HEADING_SIGMA)
            lines.append((t, hdt(truth.course[k] + CRAB_DEG + noise)))
        if with_gst is not None:
            lines.append((t, gst(t, with_gst)))
    return lines


def feed(est: NavigationEstimator, lines: Iterable[tuple[float, str]]) -> list[str | None]:
    """Every line through a real NmeaParser, each accepted item into the estimator."""
    parser = NmeaParser()
    results = []
    for t, line in lines:
        for item in parser.feed(f"{line}\r\n".encode()):
            assert isinstance(item, Accepted), item
            results.append(est.update(t, item.data))
    return results


def track_states(
    truth: Truth, lines: list[tuple[float, str]], est: NavigationEstimator | None = None
) -> list[NavState]:
    """The estimate at each truth time, after all sentences of that time."""
    est = est or NavigationEstimator(FRAME)
    states = []
    by_t: dict[float, list[tuple[float, str]]] = {}
    for t, line in lines:
        by_t.setdefault(t, []).append((t, line))
    for t in truth.t:
        feed(est, by_t.get(float(t), []))
        state = est.state(float(t))
        assert state is not None
        states.append(state)
    return states


def wrapped(a: np.ndarray) -> np.ndarray:
    return (a + 180.0) % 360.0 - 180.0


# ------------------------------------------------------------------------------ accuracy


def test_track_position_velocity_and_heading_beat_the_injected_noise():
    truth = boat_track()
    lines = gps_lines(truth)
    states = track_states(truth, lines)[5:]
    xy = np.array([s.xy for s in states])
    err = xy - truth.xy[5:]
    rmse = math.sqrt(float(np.mean(np.sum(err**2, axis=1))))
    fixes = np.array([FRAME.to_enu(*_fix_latlon(line))[0] for _t, line in lines[::4]])[5:]
    raw_rmse = math.sqrt(float(np.mean(np.sum((fixes - truth.xy[5:]) ** 2, axis=1))))
    assert rmse < SIGMA_M * math.sqrt(2.0), f"RMSE {rmse:.2f} m not below the injected noise"
    assert rmse < 0.75 * raw_rmse, f"filter {rmse:.2f} m vs raw fixes {raw_rmse:.2f} m"
    v_err = np.hypot(*(np.array([s.velocity for s in states]) - truth.vel[5:]).T)
    # Injected: 0.2 m/s per axis, a median 2-D error of 0.24 m/s.
    assert float(np.median(v_err)) < 0.24
    h_err = wrapped(np.array([s.heading_deg for s in states]) - truth.course[5:] - CRAB_DEG)
    assert np.all(np.abs(h_err) < 2.0), f"worst heading error {np.abs(h_err).max():.2f}°"
    # The turn goes through north: headings on both sides of 0° were estimated.
    headings = np.array([s.heading_deg for s in states])
    assert np.any(headings > 350.0)
    assert np.any(headings < 10.0)
    assert all(s.valid and (s.heading_sigma_deg or 99.0) < 1.0 for s in states)


def _fix_latlon(line: str) -> tuple[np.ndarray, np.ndarray]:
    msg = pynmea2.parse(line)
    return np.array([msg.latitude]), np.array([msg.longitude])


def test_reported_uncertainty_matches_the_errors():
    """Normalised squared position errors average about 2 (two degrees of freedom)."""
    truth = boat_track()
    nees = []
    for seed in range(5):
        states = track_states(truth, gps_lines(truth, seed=seed))[5:]
        for s, true_xy in zip(states, truth.xy[5:], strict=True):
            e = np.array(s.xy) - true_xy
            nees.append(float(e @ np.linalg.solve(s.cov[:2, :2], e)))
    mean = float(np.mean(nees))
    assert 1.0 < mean < 3.5, f"mean NEES {mean:.2f}"
    assert np.mean(np.array(nees) < 5.99) > 0.85  # the 95 % ellipse holds most errors


def test_gst_sigmas_replace_hdop_times_uere():
    truth = boat_track(segments=(20, 0, 0))
    plain = track_states(truth, gps_lines(truth))[-1]
    precise = track_states(truth, gps_lines(truth, with_gst=0.3))[-1]
    assert precise.sigma_m() < 0.5 * plain.sigma_m()


def test_the_same_epoch_in_gga_and_rmc_is_used_once():
    """GGA+RMC+VTG give exactly the state GGA+VTG give: nothing is counted twice."""
    truth = boat_track(segments=(20, 10, 0))
    both = track_states(truth, gps_lines(truth, with_rmc=True))[-1]
    gga_only = track_states(truth, gps_lines(truth, with_rmc=False))[-1]
    assert both.xy == gga_only.xy
    assert np.array_equal(both.cov, gga_only.cov)


def test_same_input_gives_bit_identical_output():
    truth = boat_track()
    runs = [track_states(truth, gps_lines(truth, seed=4)) for _ in range(2)]
    for a, b in zip(*runs, strict=True):
        assert a.xy == b.xy
        assert a.velocity == b.velocity
        assert a.heading_deg == b.heading_deg
        assert a.cov.tobytes() == b.cov.tobytes()


# ------------------------------------------------------------------------------ bad input


def test_outlier_fixes_are_rejected_without_touching_the_state():
    truth = boat_track(segments=(30, 20, 0))
    lines = gps_lines(truth, seed=2)
    jumps = []
    for k in (20, 35):  # a 500 m jump between epochs k and k+1
        lat, lon = FRAME.to_wgs84(truth.xy[k] + [0.0, 500.0])[0]
        jumps.append((k, (k + 0.5, gga(k + 0.5, lat, lon))))
    with_jumps = list(lines)
    for k, entry in sorted(jumps, reverse=True):
        at = next(i for i, (t, _l) in enumerate(with_jumps) if t > k)
        with_jumps.insert(at, entry)
    clean = NavigationEstimator(FRAME)
    dirty = NavigationEstimator(FRAME)
    feed(clean, lines)
    feed(dirty, with_jumps)
    assert dirty.counters.get("outlier") == 2
    a, b = clean.state(truth.t[-1]), dirty.state(truth.t[-1])
    assert a is not None
    assert b is not None
    assert a.xy == b.xy
    assert np.array_equal(a.cov, b.cov)


def test_a_jump_inside_an_epoch_is_an_outlier_and_the_track_holds():
    truth = boat_track(segments=(30, 0, 0))
    lines = gps_lines(truth, seed=3)
    lat, lon = FRAME.to_wgs84(truth.xy[25] + [500.0, 0.0])[0]
    lines = [
        (t, gga(t, lat, lon) if t == 25 and line.startswith("$GPGGA") else line)
        for t, line in lines
    ]
    lines = [(t, line) for t, line in lines if not (t == 25 and line.startswith("$GPRMC"))]
    states = track_states(truth, lines)
    assert np.hypot(*(np.array(states[25].xy) - truth.xy[25])) < 4 * SIGMA_M


def test_invalid_fixes_are_counted_and_ignored():
    truth = boat_track(segments=(20, 0, 0))
    lines = gps_lines(truth, seed=5)
    bad_lat, bad_lon = FRAME.to_wgs84(np.array([3000.0, 3000.0]))[0]
    noisy = list(lines)
    noisy.insert(8, (2.0, gga(2.0, bad_lat, bad_lon, quality=0)))
    noisy.insert(8, (2.0, rmc(2.0, bad_lat, bad_lon, 9.0, 45.0, status="V")))
    clean, dirty = NavigationEstimator(FRAME), NavigationEstimator(FRAME)
    feed(clean, lines)
    feed(dirty, noisy)
    assert dirty.counters.get("invalid_fix") == 2
    assert clean.state(19.0).xy == dirty.state(19.0).xy  # type: ignore[union-attr]


def test_out_of_order_times_are_rejected():
    truth = boat_track(segments=(5, 0, 0))
    est = NavigationEstimator(FRAME)
    feed(est, gps_lines(truth, heading=False))
    lat, lon = FRAME.to_wgs84(truth.xy[1])[0]
    assert feed(est, [(1.0, gga(1.5, lat, lon))]) == ["out_of_order"]
    assert feed(est, [(2.0, hdt(10.0)), (1.0, hdt(11.0))]) == [None, "out_of_order"]


def test_frame_origin_is_the_first_valid_fix():
    est = NavigationEstimator()
    assert est.state(0.0) is None
    feed(est, [(0.0, gga(0.0, 41.0, 20.0, quality=0)), (1.0, gga(1.0, 42.3, 19.2))])
    assert est.frame is not None
    assert (est.frame.lat_deg, est.frame.lon_deg) == pytest.approx((42.3, 19.2), abs=1e-7)
    state = est.state(1.0)
    assert state is not None
    assert state.xy == pytest.approx((0.0, 0.0), abs=1e-6)


def test_stale_fix_makes_the_state_invalid_and_a_later_fix_restarts_the_filter():
    truth = boat_track(segments=(10, 0, 0))
    est = NavigationEstimator(FRAME)
    feed(est, gps_lines(truth))
    stale = est.state(9.0 + 6.0)
    assert stale is not None
    assert not stale.valid
    assert stale.age_s == pytest.approx(6.0)
    far = truth.xy[-1] + [2000.0, 0.0]
    lat, lon = FRAME.to_wgs84(far)[0]
    assert feed(est, [(20.0, gga(20.0, lat, lon))]) == [None]
    state = est.state(20.0)
    assert state is not None
    assert state.valid
    assert est.resets == 1
    assert np.hypot(*(np.array(state.xy) - far)) < 1.0


# ------------------------------------------------------------------------------ heading


def test_heading_is_smoothed_across_north():
    est = NavigationEstimator(FRAME)
    feed(est, [(0.0, gga(0.0, LAT0, LON0))])
    lines = [(0.1 * k, hdt(359.5 if k % 2 else 0.5)) for k in range(1, 40)]
    assert all(r is None for r in feed(est, lines))
    state = est.state(3.9)
    assert state is not None
    assert state.heading_deg is not None
    assert abs(wrapped(np.array(state.heading_deg))) < 0.5


def test_ths_invalid_mode_is_refused():
    est = NavigationEstimator(FRAME)
    assert feed(est, [(0.0, _raw("HETHS,123.4,V"))]) == ["invalid_heading"]
    assert feed(est, [(0.0, _raw("HETHS,123.4,A"))]) == [None]
    feed(est, [(0.0, gga(0.0, LAT0, LON0))])
    state = est.state(0.0)
    assert state is not None
    assert state.heading_deg == pytest.approx(123.4)


def test_without_heading_sensor_course_stands_in_when_moving_and_none_when_stopped():
    truth = boat_track(segments=(30, 0, 0), heading0=350.0)
    states = track_states(truth, gps_lines(truth, heading=False))
    s = states[-1]
    assert s.heading_deg is not None
    assert s.heading_sigma_deg is not None
    assert abs(wrapped(np.array(s.heading_deg - 350.0))) < 3.0
    assert s.heading_sigma_deg >= NavigationSettings().course_heading_sigma_deg
    stopped = boat_track(speed=0.0, segments=(30, 0, 0))
    s = track_states(stopped, gps_lines(stopped, heading=False))[-1]
    assert s.heading_deg is None
    assert s.heading_sigma_deg is None
    assert s.course_deg is None


def test_stale_heading_sensor_hands_over_to_course():
    truth = boat_track(segments=(30, 0, 0), heading0=90.0)
    lines = gps_lines(truth)
    lines = [(t, line) for t, line in lines if not (t > 10 and "HDT" in line)]
    states = track_states(truth, lines)
    # Predicted from the sensor for max_fix_age_s (its sigma growing), then from course.
    assert states[11].heading_sigma_deg < 5.0  # type: ignore[operator]
    course_sigma = NavigationSettings().course_heading_sigma_deg
    assert course_sigma <= states[-1].heading_sigma_deg < course_sigma + 2.0  # type: ignore[operator]
    assert abs(wrapped(np.array(states[-1].heading_deg - 90.0))) < 4.0  # type: ignore[operator]


# ------------------------------------------------------------------------------ output


def test_pli_dict_is_json_ready():
    truth = boat_track(segments=(10, 0, 0))
    state = track_states(truth, gps_lines(truth))[-1]
    pli = json.loads(json.dumps(state.to_pli_dict()))
    assert set(pli) == {
        "lat", "lon", "alt_m", "speed_mps", "course_deg", "heading_deg", "sigma_m", "valid"
    }  # fmt: skip
    assert pli["valid"] is True
    assert pli["sigma_m"] == pytest.approx(state.sigma_m(), abs=0.01)
    assert pli["alt_m"] == pytest.approx(3.0 + 41.2)
    lat, lon = FRAME.to_wgs84(np.array(state.xy))[0]
    assert (pli["lat"], pli["lon"]) == pytest.approx((lat, lon), abs=1e-7)


def test_settings_are_a_plain_frozen_dataclass():
    s = replace(NavigationSettings(), uere_m=2.0)
    assert s.uere_m == 2.0
    assert NavigationSettings().uere_m == 4.0


# ------------------------------------------------------------------------------ properties

_KEYS = ["kind", "sentence", "time", "lat", "lon", "valid", "fix_quality", "hdop", "alt_m",
         "geoid_sep_m", "speed_mps", "course_deg", "mode", "status", "heading_deg", "fix_type",
         "sigma_lat_m", "sigma_lon_m"]  # fmt: skip
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from(["fix", "velocity", "heading", "dop", "accuracy", "radar_target", "A", "V"]),
    st.lists(st.integers(), max_size=2),
)
_ITEMS = st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=3), _VALUES, max_size=12)
_TIMES = st.floats() | st.floats(-100.0, 100.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_TIMES, _ITEMS), max_size=20), _TIMES)
def test_arbitrary_items_never_raise(items, t_query):
    est = NavigationEstimator()
    # Start from a working state half of the time, so bad items also meet a live filter.
    if len(items) % 2:
        feed(est, [(-200.0, gga(0.0, LAT0, LON0))])
    for t, data in items:
        reason = est.update(t, data)
        assert reason is None or isinstance(reason, str)
    state = est.state(t_query)
    if state is not None:
        state.to_pli_dict()
    assert sum(est.counters.values()) <= len(items)
