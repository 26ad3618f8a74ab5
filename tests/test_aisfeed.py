"""AIS reports as identified detections: real parser output, bad values, time stamps, registry."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyais.encode import encode_dict

from borderwatch.fusion.detections import MeasurementKind, TargetClass
from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.tracker import Tracker
from borderwatch.sensors.ais import AisParser
from borderwatch.sensors.aisfeed import (
    HIGH_ACCURACY_SIGMA_M,
    LONG_RANGE_SIGMA_M,
    LOW_ACCURACY_SIGMA_M,
    AisRegistry,
    ais_detections,
    report_time,
)
from borderwatch.sensors.base import Accepted, feed_all

FRAME = LocalFrame(lat_deg=44.2, lon_deg=19.4, alt_m=0.0)


def parsed(*messages: dict[str, Any]) -> list[dict[str, Any]]:
    """Encode with pyais, parse with borderwatch's AisParser: the data dicts it accepts."""
    lines = [s for m in messages for s in encode_dict(m, talker_id="AI", sentence_type="VDM")]
    items = feed_all(AisParser(), "".join(f"{ln}\r\n" for ln in lines).encode("ascii"))
    assert all(isinstance(i, Accepted) for i in items), items
    return [i.data for i in items if isinstance(i, Accepted)]


def test_position_reports_of_every_type_become_identified_detections():
    data = parsed(
        {"type": 1, "mmsi": 278000101, "lat": 44.21, "lon": 19.41, "accuracy": 1, "second": 20},
        {"type": 3, "mmsi": 278000102, "lat": 44.19, "lon": 19.39, "accuracy": 0, "second": 19},
        {"type": 18, "mmsi": 278000103, "lat": 44.2, "lon": 19.42, "accuracy": 1, "second": 60},
        {"type": 19, "mmsi": 278000104, "lat": 44.205, "lon": 19.4, "second": 18},
        {"type": 27, "mmsi": 278000105, "lat": 44.22, "lon": 19.38, "accuracy": 1},
    )
    t_rx = 1_800_000_020.4  # UTC second 20
    batch, skipped = ais_detections([(t_rx, d) for d in data], FRAME, sensor_index=3)
    assert skipped == {}
    assert batch.identity.tolist() == [278000101, 278000102, 278000103, 278000104, 278000105]
    assert np.all(batch.kind == MeasurementKind.POSITION)
    assert batch.sensor.tolist() == [3] * 5
    assert np.all(batch.cls == TargetClass.BOAT)
    want = FRAME.to_enu(np.array([d["lat"] for d in data]), np.array([d["lon"] for d in data]))
    np.testing.assert_allclose(batch.z, want, atol=1e-6)
    assert batch.z[0, 0] == pytest.approx(0.01 * 111_320 * math.cos(math.radians(44.2)), rel=0.01)
    # Report times: the whole UTC second of the fix; 60 ("not available") and type 27 use t_rx.
    base = math.floor(t_rx)
    assert batch.t.tolist() == [base, base - 1, t_rx, base - 2, t_rx]
    sigma = np.sqrt(batch.R[:, 0, 0])
    np.testing.assert_allclose(
        sigma,
        [
            HIGH_ACCURACY_SIGMA_M,
            LOW_ACCURACY_SIGMA_M,
            HIGH_ACCURACY_SIGMA_M,
            LOW_ACCURACY_SIGMA_M,
            math.hypot(HIGH_ACCURACY_SIGMA_M, LONG_RANGE_SIGMA_M),
        ],
    )
    np.testing.assert_array_equal(batch.R[:, 0, 0], batch.R[:, 1, 1])
    assert np.all(batch.R[:, 0, 1] == 0.0)


def test_reports_without_position_and_other_messages_are_skipped_and_counted():
    data = parsed(
        {"type": 1, "mmsi": 278000101, "lat": 91.0, "lon": 181.0, "second": 3},
        {"type": 18, "mmsi": 278000102, "lat": 44.2, "lon": 181.0, "second": 3},
        {"type": 5, "mmsi": 278000103, "shipname": "DRINA", "callsign": "YT12"},
        {"type": 24, "mmsi": 278000104, "partno": 0, "shipname": "SKIFF"},
        {"type": 4, "mmsi": 2780001, "lat": 44.2, "lon": 19.4},  # a base station
        {"type": 1, "mmsi": 278000105, "lat": 44.2, "lon": 19.4, "second": 3},
    )
    batch, skipped = ais_detections([(3.5, d) for d in data], FRAME)
    assert skipped == {"no_position": 2, "not_position_report": 3}
    assert batch.identity.tolist() == [278000105]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"mmsi": 0}, "bad_mmsi"),
        ({"mmsi": 1_000_000_000}, "bad_mmsi"),
        ({"mmsi": "278000101"}, "bad_mmsi"),
        ({"mmsi": True}, "bad_mmsi"),
        ({"lat": math.nan}, "bad_value"),
        ({"lat": 95.0}, "bad_value"),
        ({"lon": -190.0}, "bad_value"),
        ({"lon": "19.4"}, "bad_value"),
        ({"lat": None}, "no_position"),
        ({"lat": 91}, "no_position"),
        ({"msg_type": 21}, "not_position_report"),
        ({"msg_type": "1"}, "not_position_report"),
        ({"kind": "fix"}, "not_position_report"),
        ({"second": 50}, "stale"),
    ],
)
def test_bad_values_are_skipped_with_their_reason(change, reason):
    good = {"kind": "ais", "msg_type": 1, "mmsi": 278000101, "lat": 44.2, "lon": 19.4}
    good |= {"second": 3, "accuracy": True}
    t_rx = 3.5
    batch, skipped = ais_detections([(t_rx, good)], FRAME)
    assert (len(batch), skipped) == (1, {})
    batch, skipped = ais_detections([(t_rx, good | change)], FRAME)
    assert (len(batch), skipped) == (0, {reason: 1})


def test_a_reception_time_that_is_not_finite_is_a_bad_value():
    data = {"kind": "ais", "msg_type": 1, "mmsi": 278000101, "lat": 44.2, "lon": 19.4}
    assert ais_detections([(math.nan, data)], FRAME)[1] == {"bad_value": 1}
    assert ais_detections([(3.0, "not a mapping")], FRAME)[1] == {"not_position_report": 1}  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("t_rx", "second", "expected"),
    [
        (1000.4, 40, 1000.0),  # 1000 is second 40 of its minute
        (1000.4, 39, 999.0),
        (1000.4, 0, 960.0),
        (1000.4, 41, 1001.0),  # a receiver clock 0.6 s behind GNSS time
        (1000.4, 42, 942.0),  # beyond the skew allowance: the previous minute
        (1000.4, None, 1000.4),
        (1000.4, 60, 1000.4),
        (1000.4, 62, 1000.4),
        (1000.4, -1, 1000.4),
        (1000.4, 3.0, 1000.4),
        (1000.4, True, 1000.4),
    ],
)
def test_report_time_from_the_utc_second(t_rx, second, expected):
    assert report_time(t_rx, second) == expected


def test_report_time_on_a_scenario_axis_uses_the_utc_offset():
    # t = 0 on the scenario axis is 1000.0 UTC (second 40 of its minute).
    assert report_time(0.4, 40, utc_offset_s=1000.0) == 0.0
    assert report_time(0.4, 39, utc_offset_s=1000.0) == -1.0
    data = {"kind": "ais", "msg_type": 1, "mmsi": 278000101, "lat": 44.2, "lon": 19.4}
    batch, _ = ais_detections([(0.4, data | {"second": 39})], FRAME, utc_offset_s=1000.0)
    assert batch.t.tolist() == [-1.0]
    batch, skipped = ais_detections([(0.4, data | {"second": 30})], FRAME, utc_offset_s=1000.0)
    assert skipped == {"stale": 1}
    batch, skipped = ais_detections(
        [(0.4, data | {"second": 30})], FRAME, utc_offset_s=1000.0, max_age_s=15.0
    )
    assert batch.t.tolist() == [-10.0]


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e9, 3e9), st.integers(0, 59), st.floats(0.0, 5.0))
def test_report_time_is_the_latest_matching_second(t_rx, second, skew):
    t = report_time(t_rx, second, max_skew_s=skew)
    assert t == math.floor(t)
    assert int(t) % 60 == second
    assert t <= t_rx + skew
    assert t >= t_rx + skew - 60.0  # > in exact arithmetic


_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)
_keys = st.sampled_from(["kind", "msg_type", "mmsi", "lat", "lon", "accuracy", "second"])


@st.composite
def reports(draw: st.DrawFn) -> tuple[float, dict[str, Any]]:
    base: dict[str, Any] = {
        "kind": "ais",
        "msg_type": draw(st.sampled_from([1, 2, 3, 5, 18, 19, 24, 27])),
        "mmsi": draw(st.integers(-5, 1_000_000_005)),
        "lat": draw(st.one_of(st.floats(-95, 95), st.just(91.0))),
        "lon": draw(st.one_of(st.floats(-185, 185), st.just(181.0))),
        "accuracy": draw(st.booleans()),
        "second": draw(st.integers(0, 63)),
    }
    base |= draw(st.dictionaries(_keys, _anything, max_size=3))
    t_rx = draw(st.one_of(st.floats(0, 1e6), st.just(math.nan)))
    return t_rx, base


@settings(max_examples=300, deadline=None)
@given(st.lists(reports(), max_size=8))
def test_random_reports_never_raise_and_every_report_is_counted(messages):
    batch, skipped = ais_detections(messages, FRAME)
    assert len(batch) + sum(skipped.values()) == len(messages)
    assert set(skipped) <= {"not_position_report", "bad_mmsi", "no_position", "bad_value", "stale"}
    assert np.all(np.isfinite(batch.z))
    assert np.all(np.isfinite(batch.t))
    assert np.all((batch.identity > 0) & (batch.identity <= 999_999_999))
    assert np.all(batch.R[:, 0, 0] >= HIGH_ACCURACY_SIGMA_M**2)
    # The tracker takes every one of them.
    tracker = Tracker()
    tracker.step(batch.take(np.argsort(batch.t, kind="stable")), float(np.max(batch.t, initial=0)))
    assert sum(tracker.stats.rejected.values()) == 0


def test_reports_feed_the_tracker_as_one_named_confirmed_track():
    messages = []
    for k in range(6):
        lat = 44.2 + k * 10 * 3.0 / 111_320  # 3 m/s northwards, a report every 10 s
        (data,) = parsed(
            {"type": 1, "mmsi": 278000101, "lat": lat, "lon": 19.4, "accuracy": 1, "second": 10 * k}
        )
        messages.append((10.0 * k + 0.7, data))
    # t = 0 on this axis is 1_800_000_000 UTC, second 0 of its minute.
    batch, skipped = ais_detections(messages, FRAME, utc_offset_s=1_800_000_000.0)
    assert skipped == {}
    assert batch.t.tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    tracker = Tracker()
    first = tracker.step(batch.take(np.array([0])), 0.0).tracks
    assert first.identity.tolist() == [278000101]
    table = tracker.step(batch.take(np.arange(1, 6)), 50.0).tracks
    assert table.identity.tolist() == [278000101]
    assert table.x[0, 3] == pytest.approx(3.0, abs=0.5)


def test_registry_keeps_static_data_by_mmsi_and_merges_type_24_parts():
    registry = AisRegistry()
    for data in parsed(
        {
            "type": 5,
            "mmsi": 278000101,
            "shipname": "KONTROLA",
            "callsign": "YT1234",
            "ship_type": 55,
        },
        {"type": 24, "mmsi": 278000102, "partno": 0, "shipname": "SKIFF"},
        {"type": 24, "mmsi": 278000102, "partno": 1, "callsign": "YU99", "ship_type": 36},
        {"type": 1, "mmsi": 278000103, "lat": 44.2, "lon": 19.4},
        {"type": 19, "mmsi": 278000104, "lat": 44.2, "lon": 19.4, "shipname": "DRINA 2"},
    ):
        registry.update(data)
    assert registry.lookup(278000101) == {
        "name": "KONTROLA",
        "callsign": "YT1234",
        "ship_type": 55,
        "ship_type_name": "LawEnforcement",
    }
    assert registry.lookup(278000102) == {
        "name": "SKIFF",
        "callsign": "YU99",
        "ship_type": 36,
        "ship_type_name": "Sailing",
    }
    assert registry.lookup(278000104) == {"name": "DRINA 2"}
    assert registry.lookup(278000103) is None
    assert len(registry) == 3
    # A lookup is a copy; an empty name never overwrites a known one.
    registry.lookup(278000101)["name"] = "X"  # type: ignore[index]
    assert registry.update({"msg_type": 24, "mmsi": 278000101, "name": "  "}) is False
    assert registry.lookup(278000101)["name"] == "KONTROLA"  # type: ignore[index]


def test_registry_forgets_the_least_recently_updated_vessel_beyond_its_bound():
    registry = AisRegistry(max_vessels=2)
    changed = [
        registry.update({"msg_type": 5, "mmsi": mmsi, "name": f"V{mmsi}"}) for mmsi in (1, 2, 1, 3)
    ]
    assert changed == [True, True, False, True]  # the second report of 1 repeats its name
    assert registry.lookup(2) is None
    assert registry.lookup(1) == {"name": "V1"}
    assert registry.lookup(3) == {"name": "V3"}
    with pytest.raises(ValueError, match="max_vessels"):
        AisRegistry(max_vessels=0)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*AisRegistry.FIELDS, "msg_type", "mmsi"]), _anything))
def test_registry_takes_any_dict_without_raising(data):
    registry = AisRegistry()
    registry.update(data)
    assert len(registry) <= 1
