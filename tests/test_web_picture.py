"""The console's live picture, pure: error ellipses, courses, bounded trails, alert workflow,
and the client message parser (hypothesis)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.edge.web.hub import ActMessage, PingMessage, parse_client_message
from borderwatch.edge.web.models import TrackCollection
from borderwatch.edge.web.picture import (
    CHI2_95_2D,
    ActionRefusedError,
    LivePicture,
    TrackRows,
    courses,
    error_ellipses,
)
from borderwatch.fusion.frames import LocalFrame
from tests.test_centre import alert

T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
FRAME = LocalFrame(44.87, 19.42)


def rotated(major_var: float, minor_var: float, orientation_deg: float) -> np.ndarray:
    """A covariance whose major axis points ``orientation_deg`` clockwise from north."""
    a = math.radians(orientation_deg)
    axis = np.array([math.sin(a), math.cos(a)])  # east, north
    normal = np.array([axis[1], -axis[0]])
    return major_var * np.outer(axis, axis) + minor_var * np.outer(normal, normal)


# ------------------------------------------------------------------------------------ maths


def test_ellipse_of_a_diagonal_covariance() -> None:
    major, minor, orient = error_ellipses(np.array([[[100.0, 0.0], [0.0, 25.0]]]))
    assert major[0] == pytest.approx(math.sqrt(CHI2_95_2D * 100.0))
    assert minor[0] == pytest.approx(math.sqrt(CHI2_95_2D * 25.0))
    assert orient[0] == pytest.approx(90.0)  # east-west major axis
    _, _, north = error_ellipses(np.array([[[4.0, 0.0], [0.0, 49.0]]]))
    assert north[0] == pytest.approx(0.0)


@pytest.mark.parametrize("orientation", [0.0, 30.0, 45.0, 89.0, 120.0, 179.0])
def test_ellipse_orientation_is_clockwise_from_north(orientation: float) -> None:
    major, minor, orient = error_ellipses(rotated(400.0, 16.0, orientation)[None])
    assert major[0] == pytest.approx(math.sqrt(CHI2_95_2D * 400.0))
    assert minor[0] == pytest.approx(math.sqrt(CHI2_95_2D * 16.0))
    assert orient[0] == pytest.approx(orientation, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.01, 1e6),
    st.floats(0.01, 1e6),
    st.floats(-0.99, 0.99),
)
def test_ellipse_axes_are_the_scaled_eigenvalues(sx2: float, sy2: float, rho: float) -> None:
    c = rho * math.sqrt(sx2 * sy2)
    cov = np.array([[sx2, c], [c, sy2]])
    major, minor, orient = error_ellipses(cov[None])
    values, vectors = np.linalg.eigh(cov)
    assert major[0] ** 2 == pytest.approx(CHI2_95_2D * values[1], rel=1e-6)
    assert minor[0] ** 2 == pytest.approx(CHI2_95_2D * max(values[0], 0.0), rel=1e-6, abs=1e-9)
    assert 0.0 <= orient[0] < 180.0
    if values[1] - values[0] > 1e-6 * values[1]:
        a = math.radians(float(orient[0]))
        axis = np.array([math.sin(a), math.cos(a)])
        assert abs(float(axis @ vectors[:, 1])) == pytest.approx(1.0, abs=1e-6)


def test_courses_are_compass_bearings() -> None:
    speed, course = courses(
        np.array([0.0, 1.0, 0.0, -1.0, 0.0, 3.0, -1e-12]),
        np.array([1.0, 0.0, -1.0, 0.0, 0.0, 4.0, 1.0]),
    )
    np.testing.assert_allclose(speed[:6], [1.0, 1.0, 1.0, 1.0, 0.0, 5.0])
    np.testing.assert_allclose(course[:6], [0.0, 90.0, 180.0, 270.0, 0.0, 36.8698976], atol=1e-6)
    assert 0.0 <= course[6] < 360.0


# ------------------------------------------------------------------------------------ tracks


def rows(ids: list[str], xy: np.ndarray, at: datetime) -> TrackRows:
    latlon = FRAME.to_wgs84(xy)
    n = len(ids)
    return TrackRows(
        time=at,
        ids=ids,
        lat=latlon[:, 0],
        lon=latlon[:, 1],
        vx=np.full(n, 1.0),
        vy=np.zeros(n),
        cov=np.tile(np.diag([25.0, 9.0]), (n, 1, 1)),
        status=["confirmed"] * n,
        cls=["boat"] * n,
        cls_conf=np.full(n, 0.9),
        own=[False] * n,
        dark=[True] * n,
        vessels=[None] * n,
        members=[[] for _ in range(n)],
    )


def test_trails_are_bounded_oldest_first_and_dropped_with_their_track() -> None:
    picture = LivePicture(trail_points=5)
    for k in range(12):
        frame = picture.set_tracks(
            rows(["b:1", "b:2"], np.array([[10.0 * k, 0.0], [0.0, 10.0 * k]]), T0 + k * SECOND)
        )
        assert frame.removed == []
    doc = TrackCollection.model_validate_json(picture.tracks_collection())
    trails = {f.id: f.properties.trail for f in doc.features}
    assert [len(t) for t in trails.values()] == [5, 5]
    east = [lon for lon, _ in trails["b:1"]]
    assert east == sorted(east)  # oldest first: the track moves east
    assert trails["b:1"][-1] == pytest.approx(doc.features[0].geometry.coordinates)
    feature = doc.features[0].properties
    assert (feature.course_deg, feature.speed_mps, feature.class_, feature.dark) == (
        90.0,
        1.0,
        "boat",
        True,
    )
    assert feature.ellipse.orientation_deg == 90.0

    frame = picture.set_tracks(rows(["b:2"], np.array([[0.0, 200.0]]), T0 + 13 * SECOND))
    assert frame.removed == ["b:1"]
    message = json.loads(frame.message(1.0))
    assert (message["type"], len(message["features"]), message["removed"]) == (
        "tracks",
        1,
        ["b:1"],
    )
    # A track id that comes back starts a new trail.
    picture.set_tracks(rows(["b:1", "b:2"], np.array([[0.0, 0.0], [0.0, 210.0]]), T0))
    doc = TrackCollection.model_validate_json(picture.tracks_collection())
    assert len(doc.features[0].properties.trail) == 1


def test_a_track_shows_its_open_alerts_only() -> None:
    picture = LivePicture()
    a = alert("boat-1", 1, (5.0, 5.0), T0, FRAME)
    picture.alert_event(a, wall=100.0)
    picture.set_tracks(rows([a.track_id], np.array([[5.0, 5.0]]), T0))
    doc = TrackCollection.model_validate_json(picture.tracks_collection())
    assert doc.features[0].properties.alert_ids == ["boat-1:1"]
    picture.act("boat-1:1", "close", "ana", T0, wall=101.0)
    picture.set_tracks(rows([a.track_id], np.array([[5.0, 5.0]]), T0))
    doc = TrackCollection.model_validate_json(picture.tracks_collection())
    assert doc.features[0].properties.alert_ids == []


SECOND = timedelta(seconds=1)


# ------------------------------------------------------------------------------------ alerts


def test_alert_workflow_follows_the_store_rules() -> None:
    picture = LivePicture()
    new = alert("boat-1", 7, (0.0, 0.0), T0, FRAME)
    record = picture.alert_event(new, wall=50.0)
    assert (record.status, record.raised_wall) == ("open", 50.0)
    with pytest.raises(ActionRefusedError, match="assignee"):
        picture.act("boat-1:7", "assign", "ana", T0, wall=51.0)
    with pytest.raises(ActionRefusedError, match="unknown action"):
        picture.act("boat-1:7", "delete", "ana", T0, wall=51.0)
    with pytest.raises(KeyError):
        picture.act("boat-1:8", "acknowledge", "ana", T0, wall=51.0)
    picture.act("boat-1:7", "acknowledge", "ana", T0, wall=51.0)
    picture.act("boat-1:7", "acknowledge", "bo", T0, wall=52.0)
    assert (record.status, record.acknowledged_by) == ("acknowledged", "ana")
    picture.act("boat-1:7", "assign", "bo", T0, wall=53.0, assignee="team-2", note="go")
    assert (record.status, record.assignee) == ("assigned", "team-2")
    picture.act("boat-1:7", "close", "cy", T0 + SECOND, wall=54.0)
    assert (record.status, record.closed_by) == ("closed", "cy")
    with pytest.raises(ActionRefusedError, match="closed"):
        picture.act("boat-1:7", "acknowledge", "ana", T0, wall=55.0)
    props = record.properties()
    assert [a["verb"] for a in props["actions"]] == [
        "acknowledge",
        "acknowledge",
        "assign",
        "close",
    ]
    assert props["actions"][2]["note"] == "go"
    # Shown for ten minutes after closing, then only in the history.
    assert picture.current_alerts(54.0 + 599.0) == [record]
    assert picture.current_alerts(54.0 + 601.0) == []
    assert picture.history_page(10, None) == [record]


def test_late_events_do_not_overwrite_later_ones_and_history_is_bounded() -> None:
    picture = LivePicture(history=10)
    first = alert("boat-1", 1, (0.0, 0.0), T0, FRAME)
    update = alert("boat-1", 1, (1.0, 0.0), T0 + 5 * SECOND, FRAME, previous=first)
    picture.alert_event(update, wall=10.0)
    record = picture.alert_event(first, wall=11.0)
    assert record.alert is update
    assert record.raised_at == T0
    assert record.raised_wall == 10.0
    for k in range(2, 30):
        picture.alert_event(alert("boat-1", k, (0.0, 0.0), T0 + k * SECOND, FRAME), wall=k)
    assert len(picture.alerts) == 10
    assert "boat-1:29" in picture.alerts
    assert [r.alert_id for r in picture.history_page(2, T0 + 28 * SECOND)] == [
        "boat-1:27",
        "boat-1:26",
    ]


# ------------------------------------------------------------------------------------ parser


def test_client_messages_are_parsed_or_refused_with_a_reason() -> None:
    act = parse_client_message(
        json.dumps(
            {
                "type": "act",
                "request_id": "r1",
                "verb": "assign",
                "alert_id": "centre-1:3",
                "operator": " ana ",
                "assignee": "team-2",
            }
        )
    )
    assert isinstance(act, ActMessage)
    assert (act.operator, act.assignee, act.note) == ("ana", "team-2", "")
    assert isinstance(parse_client_message(b'{"type": "ping"}'), PingMessage)
    cases: list[tuple[str | bytes, str]] = [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "shout"}', "unknown message type"),
        (
            '{"type": "act", "request_id": "r", "verb": "delete", "alert_id": "a", '
            '"operator": "x"}',
            "verb",
        ),
        (
            '{"type": "act", "request_id": "r", "verb": "close", "alert_id": "a", '
            '"operator": "  "}',
            "operator",
        ),
        ('{"type": "ping", "extra": 1}', "extra"),
        (b"\xff\xfe", "not JSON"),
        ("[" * 100_000, "not JSON"),
    ]
    for bad, reason in cases:
        refused = parse_client_message(bad)
        assert isinstance(refused, str)
        assert reason in refused


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        ["type", "verb", "alert_id", "operator", "request_id", "note", "assignee"]
                    ),
                    inner,
                    max_size=6,
                )
            ),
            max_leaves=12,
        ).map(json.dumps),
        st.fixed_dictionaries(
            {
                "type": st.just("act"),
                "request_id": st.text(max_size=10),
                "verb": st.sampled_from(["acknowledge", "assign", "close", "x"]),
                "alert_id": st.text(max_size=10),
                "operator": st.text(max_size=10),
            }
        ).map(json.dumps),
    )
)
def test_the_client_message_parser_never_raises(data: Any) -> None:
    result = parse_client_message(data)
    assert isinstance(result, ActMessage | PingMessage | str)


def test_the_history_bound_forgets_closed_and_ended_alerts_first() -> None:
    picture = LivePicture(history=10)
    for k in range(1, 11):
        picture.alert_event(alert("boat-1", k, (0.0, 0.0), T0 + k * SECOND, FRAME), wall=k)
    picture.act("boat-1:5", "close", "ana", T0, wall=20.0)
    first = picture.alerts["boat-1:7"].alert
    ended = alert("boat-1", 7, (0.0, 0.0), T0 + 20 * SECOND, FRAME, previous=first, end=True)
    picture.alert_event(ended, wall=21.0)
    for k in (11, 12, 13):
        picture.alert_event(alert("boat-1", k, (0.0, 0.0), T0 + k * SECOND, FRAME), wall=k)
    kept = set(picture.alerts)
    assert len(kept) == 10
    # The closed and the ended alert went first, then the oldest open one.
    assert kept == {f"boat-1:{k}" for k in (2, 3, 4, 6, 8, 9, 10, 11, 12, 13)}
