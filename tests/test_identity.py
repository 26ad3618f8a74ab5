"""Identities in the fusion core: AIS-named tracks, own boats, dark boats, one track per vessel."""

from __future__ import annotations

import math

import numpy as np
import pytest

from borderwatch.config.tracker import TrackerConfig
from borderwatch.fusion.borders import Border, BorderKind
from borderwatch.fusion.detections import DetectionBatch, MeasurementKind, TargetClass
from borderwatch.fusion.outputs import AlertEvent, AlertKind, TrackTable
from borderwatch.fusion.tracker import Tracker

RADAR, AIS = 1, 2
RADAR_XY = np.array([0.0, -2000.0])
MMSI_A, MMSI_B, OWN = 278000101, 278000202, 278999001


def ais(t: float, xy, mmsi: int, rng, sigma: float = 5.0, boat: bool = True) -> DetectionBatch:
    """One AIS report: the vessel's GNSS position (noise ``sigma``) under its MMSI, with the
    class hint boat unless ``boat`` is false."""
    z = np.asarray(xy, dtype=np.float64).reshape(1, 2) + rng.normal(0, sigma, (1, 2))
    batch = DetectionBatch.positions(
        np.array([t]), z, np.array([sigma]), np.array([AIS]), identity=np.array([mmsi])
    )
    if boat:
        batch.cls[:] = TargetClass.BOAT
        batch.cls_conf[:] = 1.0
    return batch


def radar(t: float, truth, rng, cls: TargetClass = TargetClass.UNKNOWN) -> DetectionBatch:
    """Range-bearing detections of ``truth`` (n, 2) from the fixed radar (3 m, 0.3°)."""
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
    n = len(truth)
    d = truth - RADAR_XY
    r = np.hypot(d[:, 0], d[:, 1]) + rng.normal(0, 3.0, n)
    b = np.arctan2(d[:, 0], d[:, 1]) + rng.normal(0, math.radians(0.3), n)
    return DetectionBatch(
        t=np.full(n, t),
        kind=np.full(n, MeasurementKind.RANGE_BEARING, dtype=np.int64),
        z=np.column_stack([r, b]),
        R=np.tile(np.diag([9.0, math.radians(0.3) ** 2]), (n, 1, 1)),
        sensor_xy=np.tile(RADAR_XY, (n, 1)),
        sensor=np.full(n, RADAR, dtype=np.int64),
        cls=np.full(n, cls, dtype=np.int64),
        cls_conf=np.full(n, 0.0 if cls == TargetClass.UNKNOWN else 0.6),
    )


def row(table: TrackTable, mmsi: int) -> int:
    (rows,) = np.nonzero(table.identity == mmsi)
    assert rows.size == 1, f"{rows.size} tracks carry {mmsi}"
    return int(rows[0])


def test_an_ais_vessel_is_an_identified_track_from_its_first_report_and_survives_gaps():
    rng = np.random.default_rng(1)
    results = {}
    for mmsi in (MMSI_A, 0):  # the same reports, named and anonymous
        tracker = Tracker()
        tables: list[TrackTable] = []
        ids: set[int] = set()
        times = [*range(0, 60, 10), *range(120, 200, 10)]  # a 60 s silence after t = 50
        for t in range(200):
            vessel = np.array([-500.0 + 2.0 * t, 300.0])
            batch = ais(float(t), vessel, mmsi, rng) if t in times else DetectionBatch.empty()
            result = tracker.step(batch, float(t))
            tables.append(result.tracks)
            ids |= set(result.tracks.track_id.tolist())
        results[mmsi] = (tables[0], ids, tables[-1])
    first, ids, last = results[MMSI_A]
    assert len(first) == 1, "not confirmed by its first report"
    assert first.identity.tolist() == [MMSI_A]
    assert len(ids) == 1, "the track was lost in the gap"
    assert last.identity.tolist() == [MMSI_A]
    assert abs(last.x[0, 0] - (-500.0 + 2.0 * 190)) < 25.0
    assert math.isclose(last.identity_t[0], 190.0)
    # The same reports without identity: tentative at first, and lost in the silence.
    anon_first, anon_ids, _ = results[0]
    assert len(anon_first) == 0
    assert len(anon_ids) > 1


def test_two_ais_vessels_passing_close_never_swap_identities():
    rng = np.random.default_rng(7)
    tracker = Tracker()
    for k in range(180):
        t = 0.5 * k
        # A heads east, B heads west, 6 m apart; their transponders take turns (AIS slots are
        # not shared), so each report is alone in its scan and could fit either track. B's
        # first report comes as they pass: right on A's track, yet it must start B's own.
        a = np.array([-300.0 + 6.0 * t, 0.0])
        b = np.array([300.0 - 6.0 * t, 6.0])
        if k % 2 == 0:
            report = ais(t, a, MMSI_A, rng, 15.0)
        else:
            report = ais(t, b, MMSI_B, rng, 15.0) if t >= 49.5 else DetectionBatch.empty()
        table = tracker.step(report, t).tracks
        if t < 49.5:
            assert table.identity.tolist() == [MMSI_A]
            continue
        assert len(table) == 2
        ia, ib = row(table, MMSI_A), row(table, MMSI_B)
        # Each named track stays on its own vessel (the vessels are 6 m apart only while they
        # pass; away from each other a swap would show as an error of hundreds of metres).
        assert np.hypot(*(table.x[ia, :2] - a)) < 45.0, t
        assert np.hypot(*(table.x[ib, :2] - b)) < 45.0, t
    assert table.x[ia, 2] > 3.0 > -3.0 > table.x[ib, 2]
    assert tracker.stats.tracks_created == 2


@pytest.mark.parametrize("ais_start", [0.0, 7.0], ids=["ais-first", "radar-first"])
def test_a_vessel_seen_by_ais_and_radar_is_one_track_with_its_mmsi(ais_start):
    rng = np.random.default_rng(3)
    tracker = Tracker()
    counts = []
    named = []
    for k in range(0, 121):
        t = float(k)
        vessel = np.array([400.0 + 3.0 * t, 1000.0 - 1.0 * t])
        batches = []
        if k % 2 == 0:
            batches.append(radar(t, vessel, rng))
        if t >= ais_start and (t - ais_start) % 10 == 0:
            batches.append(ais(t, vessel, MMSI_A, rng))
        result = tracker.step(DetectionBatch.concat(batches), t)
        if t >= ais_start:
            counts.append(len(result.tracks))
            named.append(int(np.count_nonzero(result.tracks.identity == MMSI_A)))
    table = result.tracks
    assert set(named) == {1}
    # A radar track may be too far from the first report to take it (here a 3-σ AIS error),
    # but the next report finds both tracks and merges them: one AIS period at most.
    assert set(counts[11:]) == {1}, "AIS and radar made twin tracks"
    assert tracker.stats.tracks_merged <= 1
    assert table.identity.tolist() == [MMSI_A]
    assert table.sensor_mask.tolist() == [(1 << RADAR) | (1 << AIS)]
    assert table.last_update_t[0] == 120.0  # radar updates the identified track
    assert not table.dark[0]
    assert np.hypot(*(table.x[0, :2] - vessel)) < 10.0


def test_a_radar_only_boat_becomes_dark_after_dark_after_s_and_not_before():
    rng = np.random.default_rng(5)
    config = TrackerConfig(dark_after_s=30.0)
    tracker = Tracker(config)
    seen_dark = []
    for k in range(0, 80, 2):
        t = float(k)
        boat = np.array([-200.0 + 4.0 * t, 800.0])
        walker = np.array([600.0, 200.0 + 1.2 * t])
        dets = [radar(t, boat, rng, TargetClass.BOAT), radar(t, walker, rng, TargetClass.PERSON)]
        table = tracker.step(DetectionBatch.concat(dets), t).tracks
        if len(table) == 2:
            boat_row = int(np.argmin(np.hypot(*(table.x[:, :2] - boat).T)))
            first = float(
                tracker.store.anon_first_t[tracker.store.track_id == table.track_id[boat_row]][0]
            )
            seen_dark.append((t - first, bool(table.dark[boat_row])))
            assert not table.dark[1 - boat_row], "a walker is never a dark boat"
    assert seen_dark, "the boat was never confirmed"
    for age, dark in seen_dark:
        assert dark == (age >= 30.0), (age, dark)
    assert seen_dark[-1][1]


def test_an_unclassified_radar_track_on_a_blue_border_is_dark_but_not_far_from_it():
    rng = np.random.default_rng(9)
    river = Border([np.array([[0.0, -5000.0], [0.0, 5000.0]])], [BorderKind.BLUE], ["drina"])
    tracker = Tracker(TrackerConfig(dark_water_distance_m=500.0), border=river)
    for k in range(0, 60, 2):
        t = float(k)
        near, far = np.array([-100.0, 50.0 + 3.0 * t]), np.array([-1500.0, 50.0 + 3.0 * t])
        result = tracker.step(DetectionBatch.concat([radar(t, near, rng), radar(t, far, rng)]), t)
    table = result.tracks
    assert len(table) == 2
    near_row = int(np.argmax(table.x[:, 0]))
    assert table.dark.tolist()[near_row] is True
    assert table.dark.tolist()[1 - near_row] is False


def test_a_vessel_that_switches_its_ais_off_becomes_dark_once_its_identity_is_silent():
    rng = np.random.default_rng(11)
    config = TrackerConfig(identified_coast_s=60.0, dark_after_s=30.0)
    tracker = Tracker(config)
    dark_at = None
    for k in range(0, 200, 2):
        t = float(k)
        vessel = np.array([-200.0 + 3.0 * t, 700.0])
        batches = [radar(t, vessel, rng)]
        if k < 80 and k % 10 == 0:  # the transponder goes quiet after t = 70
            # No class hint from either sensor: having had an identity makes it a vessel.
            batches.append(ais(t, vessel, MMSI_A, rng, boat=False))
        table = tracker.step(DetectionBatch.concat(batches), t).tracks
        assert table.identity.tolist() == [MMSI_A] or t == 0.0
        if dark_at is None and len(table) and table.dark[0]:
            dark_at = t
    assert dark_at == 70.0 + 60.0


def _crossing_boat(config: TrackerConfig, ais_from: float = 0.0, radar_too: bool = False):
    """A boat crossing the river border (x = 0) eastwards at t = 100 s."""
    border = Border([np.array([[0.0, -5000.0], [0.0, 5000.0]])], [BorderKind.BLUE], ["drina"])
    tracker = Tracker(config, border=border)
    rng = np.random.default_rng(13)
    alerts = []
    tables = []
    for k in range(0, 220):
        t = float(k)
        boat = np.array([-300.0 + 3.0 * t, 500.0])
        batches = []
        if radar_too:
            batches.append(radar(t, boat, rng, TargetClass.BOAT))
        if t >= ais_from and k % 2 == 0:
            batches.append(ais(t, boat, OWN, rng))
        result = tracker.step(DetectionBatch.concat(batches), t)
        alerts += result.alerts
        tables.append(result.tracks)
    return alerts, tables


def test_an_own_boat_crossing_the_border_raises_no_alert_and_a_stranger_does():
    own_alerts, tables = _crossing_boat(TrackerConfig(own_identities=frozenset({OWN})))
    assert all(tb.own.tolist() == [True] for tb in tables if len(tb))
    assert own_alerts == []
    assert tables[-1].side.tolist() == [-1], "the own boat's side must follow it across"
    # The same boat with an MMSI that is not ours raises its crossing alert.
    alerts, tables = _crossing_boat(TrackerConfig())
    assert not tables[-1].own[0]
    assert any(a.kind is AlertKind.CROSSING and a.event is AlertEvent.NEW for a in alerts)
    # And with the suppression switched off, so does our own boat.
    config = TrackerConfig.model_validate(
        {"own_identities": [OWN], "crossing": {"suppress_own_alerts": False}}
    )
    alerts, _ = _crossing_boat(config)
    assert any(a.kind is AlertKind.CROSSING and a.event is AlertEvent.NEW for a in alerts)


def test_an_alert_raised_before_an_own_boat_is_recognised_is_retracted():
    config = TrackerConfig(own_identities=frozenset({OWN}))
    alerts, tables = _crossing_boat(config, ais_from=110.0, radar_too=True)
    crossing = [a for a in alerts if a.kind is AlertKind.CROSSING]
    assert [a.event for a in crossing][:1] == [AlertEvent.NEW]
    assert crossing[-1].event is AlertEvent.END
    assert crossing[-1].reason == "retracted"
    assert 110.0 <= crossing[-1].t <= 112.0
    assert len({a.alert_id for a in crossing}) == 1
    assert tables[-1].own.tolist() == [True]
    assert tables[-1].identity.tolist() == [OWN]


def test_a_radar_twin_of_an_anchored_vessel_merges_into_it_at_its_next_report():
    """The vessel sails, then anchors: its identified track coasts on far beyond where it
    stopped; radar starts a second track on the real vessel; the next report (3 min after the
    last, as at anchor) merges them."""
    rng = np.random.default_rng(17)
    tracker = Tracker()
    tables = {}
    for k in range(0, 260):
        t = float(k)
        vessel = np.array([-300.0 + 5.0 * min(t, 60.0), 500.0])  # anchored from t = 60
        batches = []
        if (t <= 60.0 and k % 10 == 0) or t == 240.0:
            batches.append(ais(t, vessel, MMSI_A, rng))
        if t >= 200 and k % 2 == 0:
            batches.append(radar(t, vessel, rng, TargetClass.BOAT))
        tables[k] = tracker.step(DetectionBatch.concat(batches), t).tracks
    table = tracker.step(DetectionBatch.empty(), 260.0).tracks
    assert len(tables[230]) == 2  # the twin
    assert all(len(tables[k]) == 1 for k in range(240, 260))
    # The merged track goes on from the twin's state (the vessel at rest), not from the
    # identified track's coasting one (sailing at 2 m/s 650 m away), so it keeps still.
    speeds = [float(np.hypot(*tables[k].x[0, 2:])) for k in range(240, 256)]
    assert max(speeds) < 1.5, speeds
    assert np.hypot(*(tables[240].x[0, :2] - vessel)) < 10.0
    assert tracker.stats.tracks_merged == 1
    assert table.identity.tolist() == [MMSI_A]
    assert table.sensor_mask.tolist() == [(1 << RADAR) | (1 << AIS)]
    assert table.last_update_t.tolist() == [258.0]
    assert np.hypot(*(table.x[0, :2] - vessel)) < 30.0  # radar cross-range σ is 13 m here


def test_ais_reports_do_not_stretch_the_coasting_time_of_anonymous_tracks():
    """The tracker stretches its time thresholds for slow scanning sensors; an AIS receiver is
    not one (a vessel reporting every 10 s says nothing about the radar's revisit)."""
    rng = np.random.default_rng(19)
    tracker = Tracker()
    for k in range(60):
        t = float(k)
        batches = [radar(t, np.array([500.0 + t, 800.0]), rng)]
        if k % 10 == 0:
            batches.append(ais(t, np.array([-900.0, 400.0]), MMSI_A, rng))
        tracker.step(DetectionBatch.concat(batches), t)
    assert tracker.time_scale() == 1.0


def _mixed_run(seed: int, shuffle: bool):
    rng = np.random.default_rng(seed)
    order_rng = np.random.default_rng(seed + 100)
    config = TrackerConfig(own_identities=frozenset({OWN}))
    border = Border([np.array([[0.0, -5000.0], [0.0, 5000.0]])], [BorderKind.BLUE], ["drina"])
    tracker = Tracker(config, border=border)
    out = []
    for k in range(60):
        t = float(k)
        vessels = np.array([[-100.0 + 3.0 * t, 0.0], [200.0, 50.0 + 2.0 * t], [-50.0, -300.0]])
        batches = [radar(t, vessels, rng, TargetClass.BOAT)]
        if k % 5 == 0:
            batches.append(ais(t, vessels[0], OWN, rng))
            batches.append(ais(t, vessels[1], MMSI_A, rng))
        batch = DetectionBatch.concat(batches)
        if shuffle:
            batch = batch.take(order_rng.permutation(len(batch)))
        result = tracker.step(batch, t)
        tb = result.tracks
        arrays = (tb.track_id, tb.x, tb.P, tb.identity, tb.own, tb.dark, tb.identity_t)
        out.append((*(a.tobytes() for a in arrays), len(result.alerts)))
    return out


def test_same_input_gives_identical_identity_arrays_whatever_the_delivery_order():
    first = _mixed_run(21, shuffle=False)
    assert first == _mixed_run(21, shuffle=False)
    assert first == _mixed_run(21, shuffle=True)


def test_detection_batches_without_identity_default_to_anonymous():
    batch = DetectionBatch.positions(np.zeros(3), np.zeros((3, 2)), np.ones(3))
    assert batch.identity.tolist() == [0, 0, 0]
    named = DetectionBatch.positions(
        np.zeros(2), np.zeros((2, 2)), np.ones(2), identity=np.array([5, 0])
    )
    both = DetectionBatch.concat([batch, named])
    assert both.identity.tolist() == [0, 0, 0, 5, 0]
    assert both.take(np.array([3])).identity.tolist() == [5]
