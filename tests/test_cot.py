"""CoT events built from tracks, own units and alerts: XML, types, error circles, flags."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erfinv

from borderwatch.config.tak import TakSettings
from borderwatch.edge.centre import AlertAction
from borderwatch.edge.cot import (
    CE_PROBABILITY,
    UNKNOWN,
    CotTrack,
    alert_event,
    ce_ratio,
    circular_error_m,
    to_xml,
    track_event,
    track_type,
    unit_event,
    xml_text,
)
from borderwatch.edge.tak import CotPicture
from borderwatch.fusion.outputs import AlertKind
from borderwatch.schema import Alert, TargetClassName
from borderwatch.schema.reference import examples

NOW = datetime(2025, 6, 14, 1, 12, 33, 250_000, tzinfo=UTC)


def tak(**overrides: Any) -> TakSettings:
    return TakSettings.model_validate(
        {"outputs": [{"name": "t", "url": "udp://127.0.0.1:9"}]} | overrides
    )


def view(**overrides: Any) -> CotTrack:
    base: dict[str, Any] = {
        "track_id": "boat-2:417",
        "time": NOW - timedelta(seconds=0.25),
        "lat": 44.18,
        "lon": 19.33,
        "alt_m": None,
        "cov": ((9.0, 0.0), (0.0, 9.0)),
        "speed_mps": 1.5,
        "course_deg": 270.0,
        "label": TargetClassName.PERSON,
        "confidence": 0.8,
    }
    return CotTrack(**(base | overrides))


def parse(data: bytes) -> ET.Element:
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(data)


def iso(t: str) -> datetime:
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def alert(name: str = "alert-new", **changes: Any) -> Alert:
    data = examples()[name].model_dump(mode="json")
    for key, value in changes.items():
        if key.startswith("after."):
            data["after"][key[6:]] = value
        else:
            data[key] = value
    return Alert.model_validate(data)


# --------------------------------------------------------------------------- tracks


def test_track_event_round_trips_through_xml() -> None:
    event = track_event(
        view(), tak(callsign_prefix="BW "), now=NOW, simulated=False, exercise=False
    )
    root = parse(to_xml(event))
    assert root.tag == "event"
    assert root.attrib["version"] == "2.0"
    assert root.attrib["uid"] == "borderwatch.boat-2:417"
    assert root.attrib["type"] == "a-u-G-U-C-I"
    assert root.attrib["how"] == "m-f"
    assert "opex" not in root.attrib
    assert iso(root.attrib["time"]) == NOW.replace(microsecond=250_000)
    assert iso(root.attrib["start"]) == NOW - timedelta(seconds=0.25)
    assert iso(root.attrib["stale"]) == NOW + timedelta(seconds=5)
    point = root.find("point")
    assert point is not None
    assert float(point.attrib["lat"]) == pytest.approx(44.18)
    assert float(point.attrib["lon"]) == pytest.approx(19.33)
    assert float(point.attrib["hae"]) == UNKNOWN
    assert float(point.attrib["ce"]) == pytest.approx(3.0, abs=0.05)
    assert float(point.attrib["le"]) == UNKNOWN
    detail = root.find("detail")
    assert detail is not None
    contact = detail.find("contact")
    assert contact is not None
    assert contact.attrib["callsign"] == "BW boat-2:417 person"
    track = detail.find("track")
    assert track is not None
    assert (float(track.attrib["course"]), float(track.attrib["speed"])) == (270.0, 1.5)
    remarks = detail.findtext("remarks")
    assert remarks is not None
    assert "class person (0.80)" in remarks


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (TargetClassName.PERSON, "a-u-G-U-C-I"),
        (TargetClassName.VEHICLE, "a-u-G-E-V-C"),
        (TargetClassName.BOAT, "a-u-S-X"),
        (TargetClassName.UNKNOWN, "a-u-G"),
    ],
)
def test_type_by_class_with_the_default_policy(label: TargetClassName, expected: str) -> None:
    assert track_type(view(label=label), tak()) == expected


def test_type_follows_the_affiliation_policy() -> None:
    policy = tak(affiliation={"crossing": "h", "approach": "s", "identified": "n", "dark": "s"})
    boat = view(label=TargetClassName.BOAT)
    assert track_type(boat, policy, AlertKind.CROSSING) == "a-h-S-X"
    assert track_type(boat, policy, AlertKind.APPROACH) == "a-s-S-X"
    assert track_type(view(label=TargetClassName.BOAT, mmsi=279000001), policy) == "a-n-S-X"
    assert track_type(view(label=TargetClassName.BOAT, dark=True), policy) == "a-s-S-X"
    assert track_type(boat, policy) == "a-u-S-X"
    # An own patrol boat (AIS listed as own) is a friend whatever happens.
    own = view(label=TargetClassName.BOAT, mmsi=279000007, own=True)
    assert track_type(own, policy, AlertKind.CROSSING) == "a-f-S-X-L"
    # The defaults leave every track unknown, alerts or not.
    assert track_type(boat, tak(), AlertKind.CROSSING) == "a-u-S-X"


def test_own_units_are_friendly_law_enforcement_with_gps_how() -> None:
    common: dict[str, Any] = {
        "time": NOW,
        "lat": 44.0,
        "lon": 19.0,
        "alt_m": 180.0,
        "cov": ((4.0, 0.0), (0.0, 4.0)),
        "settings": tak(),
        "now": NOW,
        "simulated": False,
        "exercise": False,
    }
    boat = parse(to_xml(unit_event("boat-2", kind="boat", **common)))
    car = parse(to_xml(unit_event("mobile-1", kind="ground", **common)))
    assert (boat.attrib["uid"], boat.attrib["type"], boat.attrib["how"]) == (
        "borderwatch.unit.boat-2",
        "a-f-S-X-L",
        "m-g",
    )
    assert (car.attrib["uid"], car.attrib["type"]) == ("borderwatch.unit.mobile-1", "a-f-G-U-U-L-C")
    point = boat.find("point")
    assert point is not None
    assert float(point.attrib["hae"]) == 180.0
    assert iso(boat.attrib["stale"]) - NOW == timedelta(seconds=30)


def test_coasting_is_predicted_and_simulation_and_exercise_are_flagged() -> None:
    settings_ = tak()
    coasting = track_event(view(coasting=True), settings_, now=NOW, simulated=False, exercise=False)
    assert coasting.how == "m-p"
    sim = parse(to_xml(track_event(view(), settings_, now=NOW, simulated=True, exercise=False)))
    assert (sim.attrib["how"], sim.attrib["opex"]) == ("m-s", "s")
    ex = parse(to_xml(track_event(view(), settings_, now=NOW, simulated=False, exercise=True)))
    assert (ex.attrib["how"], ex.attrib["opex"]) == ("m-f", "e")
    contact = ex.find("detail/contact")
    assert contact is not None
    assert contact.attrib["callsign"].startswith("[EX] ")
    both = track_event(view(), settings_, now=NOW, simulated=True, exercise=True)
    assert (both.how, both.opex) == ("m-s", "e")
    assert both.callsign is not None
    assert both.callsign.startswith("[EX] [SIM] ")


# ------------------------------------------------------------------------ ce and le


def test_ce_of_a_circular_error_is_sigma() -> None:
    assert circular_error_m([[25.0, 0.0], [0.0, 25.0]]) == pytest.approx(5.0, rel=1e-9)
    assert ce_ratio(1.0) == pytest.approx(1.0, abs=1e-9)


def test_ce_of_a_one_dimensional_error() -> None:
    # All the error along one axis: P(|x| <= r) = erf(r / (σ√2)).
    expected = math.sqrt(2.0) * float(erfinv(CE_PROBABILITY))
    assert ce_ratio(0.0) == pytest.approx(expected, rel=1e-9)
    assert circular_error_m([[100.0, 0.0], [0.0, 0.0]]) == pytest.approx(10 * expected, rel=1e-6)


@pytest.mark.parametrize(
    "cov",
    [
        [[289.0, 20.0], [20.0, 4.0]],  # a radar's cross-range error, rotated a little
        [[30.0, -10.0], [-10.0, 12.0]],
        [[1.0, 0.0], [0.0, 0.09]],
    ],
)
def test_ce_holds_the_one_sigma_share_of_samples(cov: list[list[float]]) -> None:
    rng = np.random.default_rng(7)
    samples = rng.multivariate_normal([0.0, 0.0], cov, size=400_000)
    ce = circular_error_m(cov)
    inside = float(np.mean(np.hypot(samples[:, 0], samples[:, 1]) <= ce))
    # 400,000 samples: the standard error of the share is 0.0008.
    assert inside == pytest.approx(CE_PROBABILITY, abs=0.004)
    # Never more than the long axis' σ, never less than half of it.
    long_sigma = math.sqrt(float(np.linalg.eigvalsh(np.array(cov))[1]))
    assert 0.5 * long_sigma < ce <= long_sigma + 1e-9


@given(st.floats(0.0, 1.0))
@settings(max_examples=40, deadline=None)
def test_the_ce_table_matches_the_direct_solution(k: float) -> None:
    cov = [[1.0, 0.0], [0.0, k * k]]
    assert circular_error_m(cov) == pytest.approx(ce_ratio(k), rel=1e-5)


def test_ce_of_a_covariance_that_is_not_finite_is_unknown() -> None:
    assert circular_error_m([[math.nan, 0.0], [0.0, 1.0]]) == UNKNOWN
    assert circular_error_m([[0.0, 0.0], [0.0, 0.0]]) == 0.0


# ------------------------------------------------------------------------ alerts


def test_alert_event_links_its_track_and_says_what_happened() -> None:
    a = alert(
        "alert-new",
        kind="approach",
        **{"after.time_to_cross_s": 42.0, "after.priority": "high"},
    )
    event = alert_event(a, tak(), now=NOW, track_type_code="a-u-G-U-C-I")
    root = parse(to_xml(event))
    assert root.attrib["uid"] == "borderwatch.alert.boat-2:12"
    assert root.attrib["type"] == "b-a-g"
    assert root.attrib["opex"] == "e"  # the example alert is an exercise's
    assert iso(root.attrib["stale"]) - NOW == timedelta(seconds=900)
    link = root.find("detail/link")
    assert link is not None
    assert link.attrib == {
        "uid": "borderwatch.boat-2:431",
        "type": "a-u-G-U-C-I",
        "relation": "p-p",
    }
    emergency = root.find("detail/emergency")
    assert emergency is not None
    assert emergency.attrib == {"type": "Border approach (blue)"}
    assert emergency.text == "BW-boat-2-12"
    remarks = root.findtext("detail/remarks")
    assert remarks is not None
    for fragment in (
        "APPROACH blue border (river/lake), segment 5, right to left",
        "priority HIGH",
        "p_cross 0.74",
        "time to cross 42 s",
        "target person (0.81)",
        "track boat-2:431",
    ):
        assert fragment in remarks


def test_a_rescue_says_so_and_an_ended_alert_is_stale_and_cancelled() -> None:
    new = alert_event(alert("alert-new"), tak(), now=NOW, track_type_code="a-u-G")
    assert new.emergency_type == "Border crossing (blue) RESCUE"
    assert new.callsign is not None
    assert "RESCUE" in new.callsign
    end = alert(
        "alert-update",
        event="end",
        end_reason="crossed",
    )
    root = parse(to_xml(alert_event(end, tak(), now=NOW, track_type_code="a-u-G")))
    assert root.attrib["time"] == root.attrib["start"] == root.attrib["stale"]
    emergency = root.find("detail/emergency")
    assert emergency is not None
    assert emergency.attrib["cancel"] == "true"
    assert "ended: crossed" in (root.findtext("detail/remarks") or "")


def test_ended_and_delete_events() -> None:
    event = track_event(view(), tak(), now=NOW, simulated=False, exercise=False)
    later = NOW + timedelta(seconds=3)
    gone = parse(to_xml(event.ended(later)))
    assert gone.attrib["uid"] == event.uid
    assert iso(gone.attrib["stale"]) == later.replace(microsecond=250_000)
    delete = parse(to_xml(event.delete(later)))
    assert delete.attrib["type"] == "t-x-d-d"
    link = delete.find("detail/link")
    assert link is not None
    assert link.attrib["uid"] == event.uid
    assert delete.find("detail/__forcedelete") is not None


# ---------------------------------------------------------------------- escaping


HOSTILE = '<event uid="x">&amp;\'"]]></detail>\x00\x07\x1b\ud800\ufffe tail'


def test_hostile_strings_stay_text() -> None:
    settings_ = tak(callsign_prefix="<&>\"'")
    event = track_event(
        view(vessel_name=HOSTILE), settings_, now=NOW, simulated=False, exercise=False
    )
    root = parse(to_xml(event))
    assert len(root.findall(".//event")) == 0  # no element was injected
    callsign = root.find("detail/contact")
    assert callsign is not None
    assert callsign.attrib["callsign"].startswith('<&>"\'<event uid="x">&amp;\'"]]></detail>')
    assert "\x00" not in callsign.attrib["callsign"]
    assert xml_text(HOSTILE, 100).count("\ufffd") == 5


def test_an_operator_note_with_markup_is_text_in_the_remarks() -> None:
    sent: list[Any] = []
    picture = CotPicture(tak(), sent.append, NOW.timestamp)
    a = alert("alert-new")
    picture.alert(a)
    picture.action(
        AlertAction(
            verb="assign",
            alert_id=a.alert_id,
            operator="op",
            time=NOW,
            status="assigned",
            acknowledged_by="<b>op</b>",
            assignee="boat-1 & crew\x01",
            closed_by=None,
        )
    )
    remarks = parse(to_xml(sent[-1])).findtext("detail/remarks")
    assert remarks is not None
    assert "status assigned; acknowledged by <b>op</b>; assigned to boat-1 & crew\ufffd" in remarks


# ------------------------------------------------------------------------- property


finite = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text(min_size=0, max_size=80)


@st.composite
def tracks(draw: st.DrawFn) -> CotTrack:
    a, b, c = draw(st.floats(0.0, 1e4)), draw(st.floats(-1e4, 1e4)), draw(st.floats(0.0, 1e4))
    cov = ((a * a + b * b, b * c), (b * c, c * c))  # L Lᵀ: positive semi-definite
    return view(
        track_id=draw(texts),
        lat=draw(st.floats(-90.0, 90.0)),
        lon=draw(st.floats(-180.0, 180.0)),
        alt_m=draw(st.none() | st.floats(-500.0, 9000.0)),
        cov=cov,
        speed_mps=draw(st.floats(0.0, 100.0)),
        course_deg=draw(st.floats(0.0, 359.99)),
        label=draw(st.sampled_from(list(TargetClassName))),
        confidence=draw(st.floats(0.0, 1.0)),
        coasting=draw(st.booleans()),
        vessel_name=draw(st.none() | texts),
        mmsi=draw(st.none() | st.integers(1, 999_999_999)),
        own=draw(st.booleans()),
        dark=draw(st.booleans()),
    )


def check_well_formed(data: bytes) -> ET.Element:
    root = parse(data)
    point = root.find("point")
    assert point is not None
    for name in ("lat", "lon", "hae", "ce", "le"):
        assert math.isfinite(float(point.attrib[name]))
    assert -90.0 <= float(point.attrib["lat"]) <= 90.0
    assert -180.0 <= float(point.attrib["lon"]) <= 180.0
    assert float(point.attrib["ce"]) >= 0.0
    for t in ("time", "start", "stale"):
        iso(root.attrib[t])
    assert iso(root.attrib["stale"]) >= iso(root.attrib["time"])
    return root


@given(tracks(), st.booleans(), st.booleans(), texts)
@settings(max_examples=150, deadline=None)
def test_any_track_gives_well_formed_xml(
    track: CotTrack, simulated: bool, exercise: bool, prefix: str
) -> None:
    settings_ = tak(callsign_prefix=prefix[:16])
    root = check_well_formed(
        to_xml(track_event(track, settings_, now=NOW, simulated=simulated, exercise=exercise))
    )
    track_el = root.find("detail/track")
    assert track_el is not None
    assert math.isfinite(float(track_el.attrib["speed"]))


@given(
    kind=st.sampled_from(["crossing", "approach"]),
    event=st.sampled_from(["new", "update", "end"]),
    p=st.floats(0.0, 1.0),
    ttc=st.floats(0.0, 1e6),
    vx=st.floats(-50.0, 50.0),
    vy=st.floats(-50.0, 50.0),
    note=texts,
    label=st.sampled_from(["unknown", "person", "boat", "vehicle"]),
)
@settings(max_examples=100, deadline=None)
def test_any_alert_gives_well_formed_xml(
    kind: str, event: str, p: float, ttc: float, vx: float, vy: float, note: str, label: str
) -> None:
    from borderwatch.schema import Velocity

    base = "alert-new" if event == "new" else "alert-update"
    changes: dict[str, Any] = {
        "kind": kind,
        "event": event,
        "after.p_cross": p,
        "after.velocity": Velocity.from_enu(vx, vy).model_dump(),
        "after.class_hint": {"label": label, "confidence": p},
        "after.time_to_cross_s": ttc if kind == "approach" else None,
    }
    if event == "end":
        changes["end_reason"] = "track_lost"
    a = alert(base, **changes)
    if a.before is not None and a.before.time_to_cross_s is not None and kind == "crossing":
        return  # the example's earlier state was an approach's: not a valid crossing
    root = check_well_formed(
        to_xml(alert_event(a, tak(), now=NOW, track_type_code="a-u-G", status=note))
    )
    assert root.attrib["uid"] == f"borderwatch.alert.{a.alert_id}"


# ------------------------------------------------------------------------- picture


def test_the_picture_rate_limits_tracks_and_ends_those_that_leave() -> None:
    sent: list[Any] = []
    clock = [NOW.timestamp()]
    picture = CotPicture(tak(affiliation={"crossing": "s"}), sent.append, lambda: clock[0])

    def step(dt: float, *views: CotTrack) -> list[tuple[str, str, bool]]:
        clock[0] += dt
        sent.clear()
        picture.tracks(views, lambda _v: (False, False))
        return [(e.uid, e.type, e.stale <= e.time) for e in sent]

    walker, car = (
        view(track_id="boat-2:1"),
        view(track_id="boat-2:2", label=TargetClassName.VEHICLE),
    )
    assert step(0.0, walker, car) == [
        ("borderwatch.boat-2:1", "a-u-G-U-C-I", False),
        ("borderwatch.boat-2:2", "a-u-G-E-V-C", False),
    ]
    assert step(0.5, walker, car) == []  # not due yet
    # A crossing alert on the car makes it suspect: sent at once, though not due.
    picture.alert(alert("alert-new", track_id="boat-2:2"))
    assert step(0.1, walker, car) == [("borderwatch.boat-2:2", "a-s-G-E-V-C", False)]
    assert step(0.4, walker, car) == [("borderwatch.boat-2:1", "a-u-G-U-C-I", False)]
    # The walker leaves the table: its final event (stale now) and a delete.
    assert step(0.7, car) == [
        ("borderwatch.boat-2:2", "a-s-G-E-V-C", False),
        ("borderwatch.boat-2:1", "a-u-G-U-C-I", True),
        ("borderwatch.boat-2:1.delete", "t-x-d-d", False),
    ]


def test_an_alert_links_the_type_its_track_is_shown_with() -> None:
    sent: list[Any] = []
    picture = CotPicture(tak(affiliation={"crossing": "h"}), sent.append, NOW.timestamp)
    picture.tracks([view(track_id="boat-2:431")], lambda _v: (False, False))
    picture.alert(alert("alert-new"))  # on track boat-2:431, a crossing
    link = sent[-1].link
    assert link.uid == "borderwatch.boat-2:431"
    assert link.type == "a-u-G-U-C-I"  # as shown until the next table makes it hostile
    picture.tracks([view(track_id="boat-2:431")], lambda _v: (False, False))
    assert sent[-1].type == "a-h-G-U-C-I"
    end = alert("alert-update", event="end", end_reason="confirmed")
    picture.alert(end)
    assert [e.type for e in sent[-2:]] == ["b-a-g", "t-x-d-d"]
    assert sent[-2].emergency_cancel
