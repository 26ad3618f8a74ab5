"""Dead-reckoning track reports: which tracks a node summarises, and the bound it keeps on the
picture a receiver holds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.fusion.outputs import TrackTable
from borderwatch.fusion.reporting import DeadReckoningReporter


def table(
    t: float,
    ids: list[int],
    x: np.ndarray,
    *,
    last_update: np.ndarray | None = None,
    cls: np.ndarray | None = None,
) -> TrackTable:
    n = len(ids)
    return TrackTable(
        t=t,
        track_id=np.array(ids, dtype=np.int64),
        x=np.asarray(x, dtype=np.float64).reshape(n, 4),
        P=np.tile(np.eye(4), (n, 1, 1)),
        mode_prob=np.ones((n, 1)),
        cls=np.ones(n, dtype=np.int64) if cls is None else cls,
        cls_conf=np.full(n, 0.8),
        hits=np.full(n, 5, dtype=np.int64),
        first_t=np.zeros(n),
        last_update_t=np.full(n, t) if last_update is None else last_update,
        sensor_mask=np.ones(n, dtype=np.int64),
        side=np.ones(n, dtype=np.int64),
        border_segment=np.zeros(n, dtype=np.int64),
        border_distance_m=np.full(n, 50.0),
    )


def walker(t: float, vx: float = 1.5) -> np.ndarray:
    return np.array([[vx * t, 0.0, vx, 0.0]])


def test_a_steady_walker_is_reported_when_new_then_at_the_heartbeat() -> None:
    reporter = DeadReckoningReporter(threshold_m=5.0, heartbeat_s=5.0, coast_after_s=3.0)
    reported = [t for t in range(16) if len(reporter.select(table(t, [7], walker(t))))]
    assert reported == [0, 5, 10, 15]


def test_a_turn_is_reported_once_the_prediction_drifts_past_the_threshold() -> None:
    reporter = DeadReckoningReporter(threshold_m=5.0, heartbeat_s=30.0, coast_after_s=3.0)
    reported = []
    for t in range(12):
        # East at 2 m/s until t = 4, then north at 2 m/s: the prediction keeps going east.
        x = np.array([[2.0 * min(t, 4), 2.0 * max(t - 4, 0), 0.0, 2.0]])
        if t < 4:
            x[0, 2:] = (2.0, 0.0)
        if len(reporter.select(table(t, [1], x))):
            reported.append(t)
    # At t = 6 the receiver predicts (12, 0), the track is at (8, 4): 5.7 m off.
    assert reported == [0, 6]


def test_status_and_class_changes_are_reported_at_once() -> None:
    reporter = DeadReckoningReporter(threshold_m=5.0, heartbeat_s=30.0, coast_after_s=3.0)
    assert list(reporter.select(table(0.0, [1, 2], np.vstack([walker(0), walker(0)])))) == [0, 1]
    quiet = table(1.0, [1, 2], np.vstack([walker(1), walker(1)]))
    assert len(reporter.select(quiet)) == 0
    coasting = table(
        5.0, [1, 2], np.vstack([walker(5), walker(5)]), last_update=np.array([5.0, 1.0])
    )
    assert list(reporter.select(coasting)) == [1]
    reclassed = table(
        6.0,
        [1, 2],
        np.vstack([walker(6), walker(6)]),
        cls=np.array([3, 1]),
        last_update=np.array([6.0, 1.0]),  # track 2 still coasting: already reported so
    )
    assert list(reporter.select(reclassed)) == [0]


def test_a_track_that_leaves_the_table_and_returns_is_new() -> None:
    reporter = DeadReckoningReporter(threshold_m=5.0, heartbeat_s=30.0, coast_after_s=3.0)
    reporter.select(table(0.0, [4, 9], np.vstack([walker(0), walker(0)])))
    assert len(reporter.select(table(1.0, [9], walker(1)))) == 0
    assert list(reporter.select(table(2.0, [4, 9], np.vstack([walker(2), walker(2)])))) == [0]


def test_threshold_zero_reports_every_track_every_time() -> None:
    reporter = DeadReckoningReporter(threshold_m=0.0, heartbeat_s=30.0, coast_after_s=3.0)
    for t in range(5):
        assert len(reporter.select(table(t, [1, 2, 3], np.zeros((3, 4))))) == 3


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="heartbeat_s"):
        DeadReckoningReporter(threshold_m=5.0, heartbeat_s=0.0, coast_after_s=3.0)
    with pytest.raises(ValueError, match="threshold_m"):
        DeadReckoningReporter(threshold_m=-1.0, heartbeat_s=1.0, coast_after_s=3.0)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    threshold=st.floats(0.5, 30.0),
    heartbeat=st.floats(1.0, 10.0),
)
def test_a_receiver_never_drifts_past_the_threshold_or_the_heartbeat(
    seed: int, threshold: float, heartbeat: float
) -> None:
    """Replaying what was reported, a receiver's prediction of every track at every table is
    within the threshold of the node's estimate, and no track goes unreported longer than
    the heartbeat."""
    rng = np.random.default_rng(seed)
    reporter = DeadReckoningReporter(threshold, heartbeat, coast_after_s=3.0)
    held: dict[int, tuple[float, np.ndarray]] = {}
    x = rng.normal(0.0, 100.0, (12, 4))
    alive = np.ones(12, dtype=bool)
    for step in range(40):
        t = 0.5 * step
        accel = rng.normal(0.0, 1.0, (12, 2))
        x[:, 2:] += accel * 0.5
        x[:, :2] += x[:, 2:] * 0.5
        alive ^= rng.random(12) < 0.05  # tracks end and new ones take their ids
        ids = np.flatnonzero(alive)
        tab = table(t, ids.tolist(), x[ids])
        chosen = reporter.select(tab)
        for row in chosen.tolist():
            held[int(ids[row])] = (t, x[ids[row]].copy())
        for k in set(held) - set(ids.tolist()):
            del held[k]
        for track_id in ids.tolist():
            t_sent, x_sent = held[track_id]
            predicted = x_sent[:2] + x_sent[2:] * (t - t_sent)
            assert np.hypot(*(predicted - x[track_id, :2])) <= threshold + 1e-9
            assert t - t_sent < heartbeat


def test_tracks_that_leave_the_table_are_named_as_ended_once() -> None:
    reporter = DeadReckoningReporter(threshold_m=5.0, heartbeat_s=30.0, coast_after_s=3.0)
    reporter.select(table(0.0, [4, 9, 12], np.vstack([walker(0)] * 3)))
    assert reporter.ended.tolist() == []
    reporter.select(table(1.0, [9], walker(1)))
    assert reporter.ended.tolist() == [4, 12]
    reporter.select(table(2.0, [9], walker(2)))
    assert reporter.ended.tolist() == []  # told once
    reporter.select(table(3.0, [], np.zeros((0, 4))))
    assert reporter.ended.tolist() == [9]
