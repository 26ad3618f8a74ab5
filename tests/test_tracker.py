"""The tracker on synthetic data with known truth: accuracy, management, robustness, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.config.tracker import TrackerConfig
from borderwatch.fusion.borders import Border, BorderKind
from borderwatch.fusion.detections import DetectionBatch, MeasurementKind
from borderwatch.fusion.outputs import AlertEvent, AlertKind
from borderwatch.fusion.tracker import Tracker

SIGMA = 5.0


def straight_targets(n: int, seed: int, area: float = 5000.0):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-area, area, (n, 2))
    vel = rng.normal(0, 2.0, (n, 2))
    return pos, vel


def scan(rng, truth, t, pd=0.9, clutter=2.0, area=5000.0, sensor=0):
    seen = rng.random(len(truth)) < pd
    z = truth[seen] + rng.normal(0, SIGMA, (int(seen.sum()), 2))
    c = rng.uniform(-area, area, (rng.poisson(clutter), 2))
    z = np.vstack([z, c])
    z = z[rng.permutation(len(z))]
    return DetectionBatch.positions(
        np.full(len(z), t), z, np.full(len(z), SIGMA), np.full(len(z), sensor)
    )


def run(tracker, n=50, steps=60, seed=0):
    pos, vel = straight_targets(n, seed)
    rng = np.random.default_rng(seed + 1)
    results = []
    for k in range(steps):
        t = float(k)
        results.append(tracker.step(scan(rng, pos + vel * t, t), t))
    return pos + vel * float(steps - 1), results


def nearest_errors(truth, tracks_xy):
    d = np.hypot(*(tracks_xy[:, None, :] - truth[None, :, :]).transpose(2, 0, 1))
    return d.min(axis=1), d.min(axis=0)


def test_tracks_every_target_once_with_error_below_the_sensor_noise():
    tracker = Tracker()
    truth, results = run(tracker)
    table = results[-1].tracks
    trk_err, truth_err = nearest_errors(truth, table.x[:, :2])
    assert np.all(truth_err < 4 * SIGMA), "a target has no track"
    assert len(table) <= 52, "more than a couple of spurious tracks"
    rmse = math.sqrt(float(np.mean(np.sort(trk_err)[:50] ** 2)))
    assert rmse < SIGMA, f"localisation RMSE {rmse:.2f} m is not below σ"
    assert len(set(table.track_id.tolist())) == len(table)


def test_velocity_is_estimated():
    tracker = Tracker()
    pos, vel = straight_targets(20, 3)
    rng = np.random.default_rng(4)
    for k in range(40):
        result = tracker.step(scan(rng, pos + vel * k, float(k), clutter=0), float(k))
    table = result.tracks
    truth = pos + vel * 39.0
    idx = np.argmin(np.hypot(*(table.x[:, None, :2] - truth[None]).transpose(2, 0, 1)), axis=1)
    v_err = np.hypot(*(table.x[:, 2:] - vel[idx]).T)
    assert np.median(v_err) < 0.6


def test_same_input_gives_bit_identical_output():
    a = run(Tracker(), n=30, steps=30, seed=9)[1]
    b = run(Tracker(), n=30, steps=30, seed=9)[1]
    for ra, rb in zip(a, b, strict=True):
        assert ra.tracks.track_id.tobytes() == rb.tracks.track_id.tobytes()
        assert ra.tracks.x.tobytes() == rb.tracks.x.tobytes()
        assert ra.tracks.P.tobytes() == rb.tracks.P.tobytes()


def test_confirmation_needs_m_of_n_and_lonely_clutter_never_confirms():
    tracker = Tracker(TrackerConfig(confirm_hits=3, confirm_window_s=3.5))
    rng = np.random.default_rng(0)
    confirmed_at = None
    for k in range(6):
        z = np.array([[100.0 + 1.0 * k, 50.0]]) + rng.normal(0, 1.0, (1, 2))
        # Clutter far away, never twice in the same place.
        c = rng.uniform(2000, 9000, (3, 2))
        batch = DetectionBatch.positions(np.full(4, float(k)), np.vstack([z, c]), np.full(4, 1.0))
        result = tracker.step(batch, float(k))
        if len(result.tracks) and confirmed_at is None:
            confirmed_at = k
        assert len(result.tracks) <= 1
    assert confirmed_at == 2  # third hit
    assert tracker.stats.tracks_created >= 1 + 3 * 6 - 3


def test_track_is_deleted_after_missing_for_the_coast_time_and_its_id_is_never_reused():
    tracker = Tracker(TrackerConfig(coast_s=2.5))
    ids = set()
    for k in range(10):
        batch = DetectionBatch.positions(
            np.array([float(k)]), np.array([[10.0 * k, 0.0]]), np.array([2.0])
        )
        ids |= set(tracker.step(batch, float(k)).tracks.track_id.tolist())
    assert len(ids) == 1
    alive = []
    for k in range(10, 14):
        # Scans go on, seeing only something far away: last update at t = 9.
        far = DetectionBatch.positions(
            np.array([float(k)]), np.array([[5000.0, 5000.0 * k]]), np.array([2.0])
        )
        alive.append(len(tracker.step(far, float(k)).tracks))
    assert alive == [1, 1, 0, 0]
    batch = DetectionBatch.positions(np.array([20.0]), np.array([[0.0, 0.0]]), np.array([2.0]))
    tracker.step(batch, 20.0)
    assert not set(tracker.store.track_id.tolist()) & ids


def test_interleaved_sensors_with_partial_coverage_keep_their_tracks():
    """Three sensors at staggered times, each seeing only its own sector, on one time axis
    (as in a detections.csv without sensor ids): no track may be lost between its sensor's
    scans."""
    tracker = Tracker()
    rng = np.random.default_rng(8)
    pos = np.array([[-3000.0, 0.0], [0.0, 0.0], [3000.0, 0.0]])
    vel = np.array([[1.0, 0.5], [-1.0, 1.0], [0.5, -1.0]])
    seen_ids: set[int] = set()
    for k in range(60):
        for sensor in range(3):
            t = k + sensor / 3.0
            truth = (pos + vel * t)[sensor : sensor + 1]
            result = tracker.step(scan(rng, truth, t, clutter=0.3, area=4000), t)
            seen_ids |= set(result.tracks.track_id.tolist())
    assert len(result.tracks) == 3
    assert len(seen_ids) == 3, "a track was dropped and restarted"


def test_bad_detections_are_rejected_counted_and_tracking_goes_on():
    tracker = Tracker()
    for k in range(5):
        good = DetectionBatch.positions(
            np.array([float(k)]), np.array([[5.0 * k, 0.0]]), np.array([3.0])
        )
        bad = DetectionBatch.positions(
            np.full(4, float(k)),
            np.array([[np.nan, 0.0], [0.0, np.inf], [1.0, 1.0], [2.0, 2.0]]),
            np.array([3.0, 3.0, -1.0, 3.0]),
        )
        bad.R[3] = np.array([[1.0, 5.0], [5.0, 1.0]])  # not positive definite
        result = tracker.step(DetectionBatch.concat([good, bad]), float(k))
    assert tracker.stats.rejected == {"non_finite": 10, "bad_covariance": 10}
    assert len(result.tracks) == 1
    assert result.tracks.x[0, 0] == pytest.approx(20.0, abs=3.0)


def test_late_detections_beyond_the_reorder_window_are_rejected_and_counted():
    tracker = Tracker(TrackerConfig(reorder_lag_s=0.0))
    one = DetectionBatch.positions(np.array([5.0]), np.array([[0.0, 0.0]]), np.array([1.0]))
    tracker.step(one, 5.0)
    old = DetectionBatch.positions(np.array([4.0]), np.array([[0.0, 0.0]]), np.array([1.0]))
    tracker.step(old, 6.0)
    assert tracker.stats.rejected["late"] == 1


def _shuffled_arrivals(seed: int, lag: float):
    """Scans of 5 targets delivered out of order, each at most ``lag`` late."""
    rng = np.random.default_rng(seed)
    pos, vel = straight_targets(5, seed, area=500)
    scans = [scan(rng, pos + vel * k, float(k), clutter=0.5, area=500) for k in range(40)]
    rows = DetectionBatch.concat(scans)
    arrival = rows.t + rng.uniform(0, lag, len(rows))
    return rows, arrival


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 1000))
def test_out_of_order_arrivals_within_the_lag_give_the_in_order_result(seed):
    lag = 2.5
    rows, arrival = _shuffled_arrivals(seed, lag)
    in_order = Tracker(TrackerConfig(reorder_lag_s=lag))
    shuffled = Tracker(TrackerConfig(reorder_lag_s=lag))
    order = np.argsort(arrival, kind="stable")
    for now in np.arange(0.0, 45.0, 0.5):
        in_order.step(rows.take(rows.t == now - lag), float(now))
        batch = rows.take(order[(arrival[order] > now - 0.5) & (arrival[order] <= now)])
        shuffled.step(batch, float(now))
    a, b = in_order.flush().tracks, shuffled.flush().tracks
    assert shuffled.stats.rejected.get("late", 0) == 0
    np.testing.assert_array_equal(a.track_id, b.track_id)
    np.testing.assert_allclose(a.x, b.x, rtol=0, atol=1e-9)


def test_two_sensors_at_the_same_time_do_not_make_twin_tracks():
    tracker = Tracker()
    rng = np.random.default_rng(2)
    pos, vel = straight_targets(30, 2)
    for k in range(30):
        truth = pos + vel * k
        both = DetectionBatch.concat(
            [scan(rng, truth, float(k), sensor=0), scan(rng, truth, float(k), sensor=1)]
        )
        result = tracker.step(both, float(k))
    assert len(result.tracks) <= 31
    assert set(np.unique(result.tracks.sensor_mask).tolist()) <= {1, 2, 3}
    assert np.count_nonzero(result.tracks.sensor_mask == 3) >= 25


def _polar_scan(truth, t, sensor_xy, kind, rng, sensor_index):
    d = truth - sensor_xy
    r = np.hypot(d[:, 0], d[:, 1]) + rng.normal(0, 3.0, len(truth))
    b = np.arctan2(d[:, 0], d[:, 1]) + rng.normal(0, math.radians(0.3), len(truth))
    n = len(truth)
    if kind == MeasurementKind.RANGE_BEARING:
        z = np.column_stack([r, b])
        R = np.tile(np.diag([9.0, math.radians(0.3) ** 2]), (n, 1, 1))
    else:
        z = np.column_stack([b, np.full(n, np.nan)])
        R = np.tile(np.diag([math.radians(0.3) ** 2, 0.0]), (n, 1, 1))
    return DetectionBatch(
        t=np.full(n, t),
        kind=np.full(n, kind, dtype=np.int64),
        z=z,
        R=R,
        sensor_xy=np.tile(sensor_xy, (n, 1)),
        sensor=np.full(n, sensor_index, dtype=np.int64),
    )


def test_radar_on_a_moving_boat_and_a_bearing_only_camera_fuse_into_the_same_tracks():
    """Range-bearing from a moving platform starts tracks; camera bearings sharpen them."""
    rng = np.random.default_rng(11)
    targets = np.array([[800.0, 1200.0], [-600.0, 900.0], [200.0, -1500.0]])
    vel = np.array([[1.5, 0.0], [0.0, -1.2], [2.0, 2.0]])
    errors = {}
    for use_camera in (False, True):
        tracker = Tracker()
        for k in range(80):
            t = float(k)
            truth = targets + vel * t
            boat = np.array([3.0 * t - 100.0, 20.0])  # the boat moves east along the river
            batches = [_polar_scan(truth, t, boat, MeasurementKind.RANGE_BEARING, rng, 0)]
            if use_camera:
                cam = np.array([0.0, -300.0])
                batches.append(
                    _polar_scan(truth, t + 0.5, cam, MeasurementKind.BEARING_ONLY, rng, 1)
                )
            for b in batches:
                result = tracker.step(b, float(b.t[0]))
        final = targets + vel * 79.5 if use_camera else targets + vel * 79.0
        _trk_err, truth_err = nearest_errors(final, result.tracks.x[:, :2])
        assert len(result.tracks) == 3
        assert np.all(truth_err < 15.0)
        errors[use_camera] = float(np.mean(truth_err))
        if use_camera:
            assert np.all(result.tracks.sensor_mask == 3)
    assert errors[True] < errors[False]


def _walkers(tracker, offsets, speed_x, steps=200, seed=0):
    rng = np.random.default_rng(seed)
    alerts = []
    for k in range(steps):
        t = float(k)
        truth = np.array(
            [
                [o + sx * t, -400.0 + 1.3 * t * (sx == 0)]
                for o, sx in zip(offsets, speed_x, strict=True)
            ]
        )
        alerts += tracker.step(scan(rng, truth, t, clutter=0.5, area=800), t).alerts
    return alerts


@pytest.fixture
def border() -> Border:
    # Oriented south → north along x = 0: the left side is the west (x < 0).
    return Border([np.array([[0.0, -5000.0], [0.0, 5000.0]])], [BorderKind.BLUE], ["drina"])


def test_a_crossing_raises_new_then_confirm_then_end_and_parallel_walkers_stay_quiet(border):
    tracker = Tracker(border=border)
    # One walker crosses west→east at t ≈ 100 s; two patrol 15 m either side of the line.
    alerts = _walkers(tracker, offsets=[-140.0, -15.0, 15.0], speed_x=[1.4, 0.0, 0.0], steps=260)
    crossing = [a for a in alerts if a.kind is AlertKind.CROSSING]
    new = [a for a in crossing if a.event is AlertEvent.NEW]
    assert len(new) == 1
    first = new[0]
    assert first.direction == "left_to_right"
    assert first.border_kind is BorderKind.BLUE
    assert 100.0 - 1.0 <= first.t <= 100.0 + 4.0
    events = [a.event for a in crossing if a.alert_id == first.alert_id]
    assert events[0] is AlertEvent.NEW
    assert AlertEvent.UPDATE in events
    assert events[-1] is AlertEvent.END
    end = next(a for a in crossing if a.event is AlertEvent.END)
    assert end.reason == "confirmed"
    approach = [a for a in alerts if a.kind is AlertKind.APPROACH]
    assert any(a.event is AlertEvent.NEW and a.track_id == first.track_id for a in approach)
    ends = [a for a in approach if a.track_id == first.track_id and a.event is AlertEvent.END]
    assert ends[-1].reason == "crossed"


def test_a_lost_track_ends_its_open_alert(border):
    tracker = Tracker(border=border)
    rng = np.random.default_rng(1)
    alerts = []
    for k in range(130):
        t = float(k)
        if k < 105:  # the walker crosses at t = 100 s and then hides in the forest
            alerts += tracker.step(scan(rng, np.array([[-100.0 + t, 0.0]]), t, clutter=0), t).alerts
        else:
            alerts += tracker.step(DetectionBatch.empty(), t).alerts
    crossing = [a for a in alerts if a.kind is AlertKind.CROSSING]
    assert next(a.event for a in crossing) is AlertEvent.NEW
    assert crossing[-1].event is AlertEvent.END
    assert crossing[-1].reason == "track_lost"


def test_tracker_without_border_raises_no_alerts():
    tracker = Tracker()
    _, results = run(tracker, n=10, steps=20)
    assert all(not r.alerts for r in results)
    assert np.all(results[-1].tracks.border_segment == -1)


# --- Property tests: the tracker's invariants on arbitrary (including hostile) input ---------

_value = st.one_of(
    st.floats(-2000, 2000),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e300]),
)


@st.composite
def detection_streams(draw):
    """Scans at non-decreasing (sometimes repeated, sometimes backwards) times, each with a few
    detections of any kind, values and covariances that may be garbage."""
    scans = []
    t = 0.0
    for _ in range(draw(st.integers(1, 12))):
        t += draw(st.sampled_from([0.0, 0.3, 1.0, 2.5, -0.7]))
        n = draw(st.integers(0, 6))
        kind = np.array(draw(st.lists(st.sampled_from([0, 0, 0, 1, 2, 7]), min_size=n, max_size=n)))
        z = np.array(draw(st.lists(st.tuples(_value, _value), min_size=n, max_size=n))).reshape(
            n, 2
        )
        sig = np.array(
            draw(st.lists(st.sampled_from([3.0, 5.0, 0.0, -2.0, np.nan]), min_size=n, max_size=n))
        )
        R = np.zeros((n, 2, 2))
        R[:, 0, 0] = sig * np.abs(sig)
        R[:, 1, 1] = np.where(kind == 0, sig * np.abs(sig), 1e-4)
        batch = DetectionBatch(
            t=np.full(n, t),
            kind=kind.astype(np.int64).reshape(n),
            z=np.where(kind[:, None] == 1, np.abs(z), z) if n else z,
            R=R,
            sensor_xy=np.zeros((n, 2)),
            sensor=np.zeros(n, dtype=np.int64),
        )
        scans.append((t, batch))
    return scans


def _run_stream(scans, border=None):
    tracker = Tracker(border=border)
    outputs = []
    for t, batch in scans:
        result = tracker.step(batch, t)
        outputs.append(
            (result.tracks.track_id.tobytes(), result.tracks.x.tobytes(), len(result.alerts))
        )
    return tracker, outputs


@settings(max_examples=60, deadline=None)
@given(detection_streams())
def test_any_detection_stream_leaves_the_tracker_consistent_and_deterministic(scans):
    border = Border([np.array([[0.0, -3000.0], [0.0, 3000.0]])], [BorderKind.GREEN], ["line"])
    tracker, first = _run_stream(scans, border)
    _, second = _run_stream(scans, border)
    assert first == second  # same input, same output, bit for bit
    s = tracker.store
    received = sum(len(b) for _, b in scans)
    rejected = sum(tracker.stats.rejected.values())
    assert tracker.stats.detections_processed + rejected == received
    assert np.all(np.isfinite(s.x))
    assert np.all(np.isfinite(s.P))
    np.testing.assert_allclose(s.mu.sum(axis=1), 1.0)
    P = s.P.reshape(-1, 4, 4)
    np.testing.assert_allclose(P, np.swapaxes(P, -1, -2), atol=1e-9)
    assert np.all(np.linalg.eigvalsh(P) > 0), "a covariance lost positive definiteness"


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_covariances_stay_positive_definite_on_long_noisy_runs(seed, n_targets):
    rng = np.random.default_rng(seed)
    pos, vel = rng.uniform(-800, 800, (n_targets, 2)), rng.normal(0, 3, (n_targets, 2))
    tracker = Tracker()
    t = 0.0
    for _ in range(40):
        t += float(rng.choice([0.2, 1.0, 3.0]))
        tracker.step(scan(rng, pos + vel * t, t, clutter=3.0, area=1500), t)
    P = tracker.store.P.reshape(-1, 4, 4)
    assert np.all(np.linalg.eigvalsh(P) > 0)
    np.testing.assert_allclose(P, np.swapaxes(P, -1, -2), atol=1e-9)


def test_implausible_values_are_rejected_as_out_of_range():
    n = 4
    batch = DetectionBatch(
        t=np.zeros(n),
        kind=np.array([0, 1, 1, 2], dtype=np.int64),
        # a position 10^300 m away, a radar range of 0.5 m, a bearing of 100 rad twice
        z=np.array([[1e300, 0.0], [0.5, 0.1], [500.0, 100.0], [100.0, np.nan]]),
        R=np.tile(np.diag([4.0, 1e-4]), (n, 1, 1)),
        sensor_xy=np.zeros((n, 2)),
        sensor=np.zeros(n, dtype=np.int64),
    )
    tracker = Tracker()
    tracker.step(batch, 0.0)
    assert tracker.stats.rejected == {"out_of_range": 4}
    assert len(tracker.store) == 0


@pytest.mark.parametrize(
    "times",
    [
        [5.0 * k for k in range(30)],  # a slow sensor: one scan every 5 s
        [0, 0.7, 2.1, 2.2, 5.0, 5.5, 9.0, 9.2, 12.6, 13.0, 16.9, 17.1, 20.5, 24.0, 24.1, 28.0],
    ],
    ids=["every-5s", "irregular"],
)
def test_slow_or_irregular_scans_still_confirm_and_keep_tracks(times):
    rng = np.random.default_rng(12)
    pos, vel = straight_targets(5, 12, area=2000)
    tracker = Tracker()
    ids: set[int] = set()
    for t in times:
        result = tracker.step(scan(rng, pos + vel * t, float(t), pd=1.0, clutter=0, area=2000), t)
        ids |= set(result.tracks.track_id.tolist())
    assert len(result.tracks) == 5
    assert len(ids) == 5, "a track was lost and restarted"
    _trk_err, truth_err = nearest_errors(pos + vel * times[-1], result.tracks.x[:, :2])
    assert np.all(truth_err < 15.0)


def test_time_thresholds_stretch_only_for_slower_than_nominal_sensors():
    tracker = Tracker()
    for k, t in enumerate([0.0, 0.5, 1.0, 1.5]):
        tracker.step(DetectionBatch.positions(np.array([t]), np.array([[k, 0.0]]), np.ones(1)), t)
    assert tracker.time_scale() == 1.0
    for t in (10.0, 20.0, 30.0, 40.0):
        tracker.step(DetectionBatch.positions(np.array([t]), np.array([[0.0, 0.0]]), np.ones(1)), t)
    assert tracker.time_scale() > 5.0


def test_bearings_alone_never_confirm_a_track():
    """A clutter detection starts a tentative track; a camera then sees a real target further
    along the same bearing every second. Those bearings must not confirm the clutter track."""
    camera = np.array([0.0, 0.0])
    tracker = Tracker()
    clutter = DetectionBatch.positions(np.array([0.0]), np.array([[0.0, 300.0]]), np.array([5.0]))
    tracker.step(clutter, 0.0)
    for k in range(1, 6):
        t = float(k) * 0.5
        bearing = DetectionBatch(
            t=np.array([t]),
            kind=np.array([MeasurementKind.BEARING_ONLY], dtype=np.int64),
            z=np.array([[0.001, np.nan]]),  # due north, where the clutter was, 2 km away
            R=np.array([[[math.radians(0.5) ** 2, 0.0], [0.0, 0.0]]]),
            sensor_xy=camera[None],
            sensor=np.array([1]),
        )
        result = tracker.step(bearing, t)
    assert len(result.tracks) == 0
    assert tracker.stats.tracks_confirmed == 0
