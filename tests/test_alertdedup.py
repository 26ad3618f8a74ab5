"""Alerts of several nodes for one crossing become one centre alert; distinct crossings do not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.fusion.alertdedup import AlertDeduplicator, NodeAlert

BASE = NodeAlert(
    node_id="boat-1",
    alert_id="boat-1:7",
    kind="crossing",
    direction="left_to_right",
    border_segment=4,
    t=100.0,
    x_m=250.0,
    y_m=-40.0,
    centre_track_id=12,
)


def seen_by_boat_2(alert: NodeAlert, **changes) -> NodeAlert:
    """The same crossing as raised by boat-2: 2 s later, 8 m away, its own alert id."""
    fields: dict[str, Any] = {
        "node_id": "boat-2",
        "alert_id": "boat-2:31",
        "t": alert.t + 2.0,
        "x_m": alert.x_m + 6.0,
        "y_m": alert.y_m + 5.0,
    }
    fields.update(changes)
    return replace(alert, **fields)


def test_the_same_crossing_from_two_nodes_is_one_alert_that_ends_when_both_end():
    dedup = AlertDeduplicator()
    first = dedup.observe(BASE)
    second = dedup.observe(seen_by_boat_2(BASE))
    assert first.is_new
    assert not second.is_new
    assert second.centre_alert_id == first.centre_alert_id == "centre:1"
    assert second.members == (("boat-1", "boat-1:7"), ("boat-2", "boat-2:31"))

    update = dedup.observe(replace(BASE, t=104.0, x_m=260.0))
    assert (update.centre_alert_id, update.is_new) == ("centre:1", False)
    assert not dedup.observe(replace(BASE, t=110.0, ended=True)).all_ended
    assert dedup.observe(seen_by_boat_2(BASE, t=111.0, ended=True)).all_ended
    assert len(dedup) == 1


@pytest.mark.parametrize(
    ("why", "changes"),
    [
        ("200 m apart", {"x_m": BASE.x_m + 200.0}),
        ("opposite direction", {"direction": "right_to_left"}),
        ("ten minutes later", {"t": BASE.t + 600.0}),
        ("a segment far along the border", {"border_segment": 9}),
        ("an approach, not a crossing", {"kind": "approach"}),
        ("another centre track", {"centre_track_id": 13}),
        ("the same node's second alert", {"node_id": "boat-1", "alert_id": "boat-1:8"}),
    ],
)
def test_distinct_crossings_stay_distinct(why, changes):
    dedup = AlertDeduplicator()
    first = dedup.observe(BASE)
    second = dedup.observe(seen_by_boat_2(BASE, **changes))
    assert second.is_new, why
    assert second.centre_alert_id != first.centre_alert_id


def test_a_neighbouring_segment_and_an_unknown_centre_track_still_match():
    dedup = AlertDeduplicator()
    first = dedup.observe(BASE)
    near_vertex = seen_by_boat_2(BASE, border_segment=5, centre_track_id=None)
    assert dedup.observe(near_vertex).centre_alert_id == first.centre_alert_id


def test_the_shared_centre_track_then_the_nearest_candidate_wins():
    dedup = AlertDeduplicator(radius_m=100.0)
    # Two centre alerts 70 m apart, kept apart because fusion says they are two targets.
    far = dedup.observe(replace(BASE, x_m=BASE.x_m + 60.0, centre_track_id=1))
    near = dedup.observe(
        replace(BASE, node_id="boat-3", alert_id="boat-3:1", x_m=BASE.x_m - 10.0, centre_track_id=2)
    )
    assert near.is_new
    unknown_track = dedup.observe(
        seen_by_boat_2(BASE, x_m=BASE.x_m, y_m=BASE.y_m, centre_track_id=None)
    )
    assert unknown_track.centre_alert_id == near.centre_alert_id  # 10 m against 60 m
    same_track = replace(BASE, node_id="boat-4", alert_id="boat-4:1", centre_track_id=1)
    assert dedup.observe(same_track).centre_alert_id == far.centre_alert_id


def test_twenty_crossings_seen_by_two_nodes_make_twenty_alerts():
    rng = np.random.default_rng(4)
    alerts = []
    for k in range(20):
        t = 60.0 * k + rng.uniform(0.0, 5.0)
        x, y = 400.0 * k, rng.uniform(-20.0, 20.0)
        direction = "left_to_right" if k % 2 else "right_to_left"
        for node, delay in (("boat-1", 0.0), ("boat-2", rng.uniform(0.0, 8.0))):
            alerts.append(
                NodeAlert(
                    node_id=node,
                    alert_id=f"{node}:{k}",
                    kind="crossing",
                    direction=direction,
                    border_segment=k // 3,
                    t=t + delay,
                    x_m=x + rng.normal(0.0, 5.0),
                    y_m=y + rng.normal(0.0, 5.0),
                    centre_track_id=100 + k,
                )
            )
    alerts.sort(key=lambda a: a.t)
    dedup = AlertDeduplicator(retention_s=3600.0)
    results = [dedup.observe(a) for a in alerts]
    assert sum(r.is_new for r in results) == 20
    by_crossing: dict[str, set[str]] = {}
    for alert, result in zip(alerts, results, strict=True):
        by_crossing.setdefault(result.centre_alert_id, set()).add(alert.alert_id.split(":")[1])
    assert all(len(crossings) == 1 for crossings in by_crossing.values())


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(8)))
def test_arrival_order_does_not_change_which_alerts_are_merged(order):
    # Four crossings 500 m apart, each seen by two nodes.
    alerts = [
        replace(BASE, node_id=node, alert_id=f"{node}:{k}", x_m=500.0 * k, centre_track_id=k)
        for k in range(4)
        for node in ("boat-1", "boat-2")
    ]
    dedup = AlertDeduplicator()
    groups: dict[str, set[str]] = {}
    for i in order:
        result = dedup.observe(alerts[i])
        groups.setdefault(result.centre_alert_id, set()).add(alerts[i].alert_id)
    assert sorted(map(sorted, groups.values())) == [
        [f"boat-1:{k}", f"boat-2:{k}"] for k in range(4)
    ]


def test_old_alerts_are_forgotten_after_the_retention_time():
    dedup = AlertDeduplicator(retention_s=300.0)
    dedup.observe(BASE)
    dedup.observe(replace(BASE, alert_id="boat-1:8", t=BASE.t + 200.0, x_m=0.0))
    assert len(dedup) == 2
    late = dedup.observe(replace(BASE, alert_id="boat-1:9", t=BASE.t + 350.0, x_m=-900.0))
    assert len(dedup) == 2  # the first one, last seen 350 s ago, is gone
    assert late.centre_alert_id == "centre:3"


def test_bad_settings_and_non_finite_alerts_are_refused():
    with pytest.raises(ValueError, match="retention_s"):
        AlertDeduplicator(window_s=60.0, retention_s=30.0)
    with pytest.raises(ValueError, match="finite"):
        AlertDeduplicator().observe(replace(BASE, x_m=float("nan")))
