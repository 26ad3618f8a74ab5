"""Wire schema: good and bad payloads, lifecycle and priority rules, conversions, and the docs."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from borderwatch.errors import DetectionRejectedError, InputError
from borderwatch.fusion.borders import BorderKind
from borderwatch.fusion.detections import DetectionBatch, FloatArray, MeasurementKind, TargetClass
from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.outputs import AlertEvent, AlertKind, BorderAlert, TrackTable
from borderwatch.schema import (
    SCHEMA_VERSION,
    Alert,
    AlertEndReason,
    AlertPriority,
    BorderKindName,
    Concealment,
    Detection,
    EnuOrigin,
    MessageError,
    NodeState,
    Publisher,
    TargetClassName,
    Track,
    TrackStatus,
    Velocity,
    alert_from_core,
    batch_to_detections,
    concealment_from_event,
    covariance_problem,
    default_priority,
    detections_to_batch,
    message_json_schema,
    msg_id_time,
    new_msg_id,
    parse_message,
    tracks_from_table,
)
from borderwatch.schema.common import small_covariance_problem
from borderwatch.schema.convert import sensors_from_mask
from borderwatch.schema.reference import TABLE_MODELS, examples, generated_blocks, render_docs
from borderwatch.sensors.co2session import ConcealmentEvent

FRAME = LocalFrame(42.2, 19.2, 8.0)
EPOCH = datetime(2025, 6, 14, tzinfo=UTC)
SENSORS = ["gps-1", "radar-1", "thermal-1"]
PUBLISHER = Publisher(
    frame=FRAME,
    node_id="boat-2",
    epoch=EPOCH,
    sensor_ids=SENSORS,
    software_version="0.1.0",
    simulated=False,
    exercise=False,
)
IN_EXERCISE = replace(PUBLISHER, exercise=True)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "schema.md"

EXAMPLES = examples()


def _payload(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(EXAMPLES[name].model_dump_json())
    return payload


def _set(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``payload`` with the dotted ``path`` set (or deleted for ``...``)."""
    out = copy.deepcopy(payload)
    node = out
    *parents, last = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def _alert_of(payload: dict[str, Any]) -> Alert:
    message = parse_message(json.dumps(payload))
    assert isinstance(message, Alert)
    return message


def _rejected(payload: dict[str, Any] | str) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    with pytest.raises(MessageError) as info:
        parse_message(text)
    return str(info.value)


# ------------------------------------------------------------------------- good payloads


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_parse_to_themselves(name: str) -> None:
    message = EXAMPLES[name]
    assert parse_message(message.model_dump_json()) == message
    assert type(message).model_validate_json(message.model_dump_json()) == message


def test_times_are_normalised_to_utc() -> None:
    payload = _set(_payload("track"), "time", "2025-06-14T03:12:31+02:00")
    track = parse_message(json.dumps(payload))
    assert track.time == datetime(2025, 6, 14, 1, 12, 31, tzinfo=UTC)
    assert track.time.tzinfo is UTC
    assert '"time":"2025-06-14T01:12:31Z"' in track.model_dump_json()


def test_lower_case_msg_id_is_normalised() -> None:
    payload = _payload("detection-position")
    lower = _set(payload, "msg_id", payload["msg_id"].lower())
    assert parse_message(json.dumps(lower)).msg_id == payload["msg_id"]


def test_integers_are_accepted_as_numbers() -> None:
    payload = _set(_payload("detection-range-bearing"), "measurement.range_m", 1250)
    assert parse_message(json.dumps(payload)) == EXAMPLES["detection-range-bearing"]


def test_python_construction_fills_version_and_type() -> None:
    d = EXAMPLES["detection-position"]
    assert d.schema_version == SCHEMA_VERSION == "1"
    assert d.type == "detection"


# -------------------------------------------------------------------------- bad payloads


def test_malformed_json_is_rejected() -> None:
    assert "json" in _rejected('{"schema_version": "1", "type": "detection",').lower()


def test_other_major_version_gets_one_clear_error() -> None:
    payload = _set(_payload("track"), "schema_version", "2")
    payload["velocity"] = "a field that version 2 might have changed"
    message = _rejected(payload)
    assert "unsupported schema_version '2'" in message
    assert "velocity" not in message
    # Even a version 2 that renamed the discriminator gets the version error, not a tag error.
    renamed = _set(payload, "type", ...)
    assert _rejected(renamed) == f"payload: Value error, {message.split('Value error, ')[1]}"


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_minor_version_on_the_wire_is_rejected(version: str) -> None:
    assert "major version only" in _rejected(_set(_payload("track"), "schema_version", version))


def test_integer_version_is_rejected() -> None:
    _rejected(_set(_payload("track"), "schema_version", 1))


def test_payload_must_state_its_version() -> None:
    assert "schema_version" in _rejected(_set(_payload("track"), "schema_version", ...))


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(token: str) -> None:
    text = json.dumps(_payload("detection-position")).replace(
        '"confidence": 0.95', f'"confidence": {token}'
    )
    assert token in text
    assert "class_hint.confidence" in _rejected(text)


def test_nan_is_rejected_in_python_too() -> None:
    with pytest.raises(ValidationError, match="finite"):
        EnuOrigin(lat_deg=math.nan, lon_deg=19.0)


@pytest.mark.parametrize(
    "stamp", ["2025-06-14T01:12:30", "2025-06-14 01:12:30", 1749863550, 1749863550.5]
)
def test_naive_or_numeric_timestamps_are_rejected(stamp: Any) -> None:
    assert "time" in _rejected(_set(_payload("detection-position"), "time", stamp))


def test_naive_datetime_is_rejected_in_python() -> None:
    d = EXAMPLES["detection-position"]
    with pytest.raises(ValidationError, match="timezone"):
        Detection.model_validate({**d.model_dump(), "time": datetime(2025, 6, 14, 1, 12)})


BAD_FIELDS = [
    # case, field path, bad value, expected fragment of the error
    ("unknown top-level field", "colour", "red", "colour: Extra inputs"),
    ("unknown nested field", "provenance.operator", "x", "operator: Extra inputs"),
    ("unknown measurement field", "measurement.gain_db", 3.0, "gain_db: Extra inputs"),
    ("lat 95", "measurement.sensor_position.lat_deg", 95.0, "lat_deg: Input should be less"),
    ("lon -181", "measurement.sensor_position.lon_deg", -181.0, "lon_deg: Input should be"),
    ("negative sigma", "measurement.sigma_range_m", -1.0, "sigma_range_m: Input should be"),
    ("zero sigma", "measurement.sigma_bearing_deg", 0.0, "sigma_bearing_deg: Input should"),
    ("bearing 360", "measurement.bearing_deg", 360.0, "bearing_deg: Input should be less"),
    ("negative range", "measurement.range_m", -5.0, "range_m: Input should be greater"),
    ("number in a string", "measurement.range_m", "1250.0", "range_m: Input should be a valid"),
    ("boolean as number", "measurement.range_m", True, "range_m: Input should be a valid"),
    ("confidence 1.5", "class_hint.confidence", 1.5, "confidence: Input should be less"),
    ("unknown class", "class_hint.label", "dog", "label: Input should be"),
    ("unknown model", "measurement.model", "doppler", "'doppler'"),
    ("flag as string", "provenance.simulated", "false", "simulated: Input should be"),
    ("flag as integer", "provenance.exercise", 0, "exercise: Input should be"),
    ("two sensors", "provenance.sensor_ids", ["radar-1", "radar-2"], "exactly one sensor"),
    ("repeated sensor", "provenance.sensor_ids", ["radar-1", "radar-1"], "must be unique"),
    ("node id with colon", "provenance.node_id", "boat:2", "node_id: String should match"),
    ("empty software version", "provenance.software_version", "", "software_version"),
    ("short msg id", "msg_id", "01JXPQ7R3KDE8F5VNY2T6Q1W9", "msg_id"),
    ("msg id with U", "msg_id", "01JXPQ7R3KDE8F5VNY2T6Q1W9U", "msg_id"),
    ("msg id overflow", "msg_id", "81JXPQ7R3KDE8F5VNY2T6Q1W9G", "msg_id"),
    ("x without y", "measurement.sensor_position.y_m", None, "x_m and y_m must be given"),
    ("x from another origin", "enu_origin.lat_deg", 42.21, "disagree with lat/lon by 1110.8 m"),
    ("x without origin", "enu_origin", None, "need enu_origin"),
    ("unknown type", "type", "sighting", "'sighting'"),
    ("no type", "type", ..., "discriminator 'type'"),
]


@pytest.mark.parametrize(
    ("case", "path", "value", "expected"), BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS]
)
def test_bad_detection_fields_are_rejected(case: str, path: str, value: Any, expected: str) -> None:
    assert expected in _rejected(_set(_payload("detection-range-bearing"), path, value))


@pytest.mark.parametrize(
    ("case", "cov", "why"),
    [
        ("indefinite", [[1.0, 2.0], [2.0, 1.0]], "positive semi-definite"),
        ("asymmetric", [[4.0, 1.0], [0.5, 4.0]], "symmetric"),
        ("negative variance", [[-1.0, 0.0], [0.0, 1.0]], "non-negative"),
        ("wrong shape", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "cov_m2"),
    ],
)
def test_bad_covariances_are_rejected(case: str, cov: list[list[float]], why: str) -> None:
    assert why in _rejected(_set(_payload("detection-position"), "measurement.cov_m2", cov))


def test_covariance_check_is_scale_free() -> None:
    # Velocity variances of 1e-6 (m/s)² next to position variances of 1e6 m²: still fine.
    P = np.diag([1e6, 1e6, 1e-6, 1e-6])
    P[0, 2] = P[2, 0] = 0.99
    assert covariance_problem(P) is None
    P[0, 2] = P[2, 0] = 1.01  # correlation above 1
    assert covariance_problem(P) == "covariance must be positive semi-definite"
    assert covariance_problem(np.zeros((2, 2))) is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(-3.0, 3.0), min_size=16, max_size=16),
    st.lists(st.sampled_from([1e-4, 1.0, 1e4]), min_size=4, max_size=4),
    st.floats(-1.0, 1.0),
    st.sampled_from(["psd", "skewed", "bent", "negative"]),
)
def test_plain_python_covariance_check_agrees_with_numpy(
    entries: list[float], scales: list[float], bend: float, change: str
) -> None:
    a = np.array(entries).reshape(4, 4) * np.array(scales)[:, None]
    P = a @ a.T
    if change == "skewed":
        P[0, 1] += 0.5 * math.sqrt(P[0, 0] * P[1, 1]) + 1e-3
    elif change == "bent":  # a correlation pushed towards or past 1
        P[0, 1] = P[1, 0] = (1.0 + bend) * math.sqrt(P[0, 0] * P[1, 1])
    elif change == "negative":
        P[3, 3] = -P[3, 3] - 1e-3
    d = np.sqrt(np.where(np.diag(P) > 0, np.abs(np.diag(P)), 1.0))
    least = float(np.linalg.eigvalsh(((P + P.T) / 2) / np.outer(d, d)).min())
    if abs(least + 4e-9) < 1e-7:  # too close to the tolerance for rounding to agree
        return
    nested = tuple(tuple(float(x) for x in row) for row in P)
    assert small_covariance_problem(nested) == covariance_problem(P)


def test_bad_state_covariance_is_rejected() -> None:
    payload = _set(_payload("track"), "state_cov.2.2", -0.25)
    assert "state_cov" in _rejected(payload)


def test_track_position_covariance_must_match_state() -> None:
    assert "cov_m2 must equal" in _rejected(_set(_payload("track"), "cov_m2.0.0", 35.0))


def test_track_times_must_be_ordered() -> None:
    payload = _set(_payload("track"), "last_update_time", "2025-06-14T01:13:00Z")
    assert "first_time <= last_update_time <= time" in _rejected(payload)


def test_velocity_forms_must_agree() -> None:
    assert "disagree" in _rejected(_set(_payload("track"), "velocity.course_deg", 157.5))
    v = Velocity.from_enu(-1.0, 0.0)
    assert v.speed_mps == 1.0
    assert v.course_deg == pytest.approx(270.0)
    assert Velocity.from_enu(0.0, 0.0).course_deg == 0.0


def test_elevation_needs_its_sigma() -> None:
    payload = _set(_payload("detection-bearing-only"), "measurement.sigma_elevation_deg", None)
    assert "elevation_deg and sigma_elevation_deg" in _rejected(payload)


def test_bad_node_state_is_rejected() -> None:
    payload = _payload("node-state")
    assert "depth must not exceed" in _rejected(_set(payload, "queues.0.depth", 1001))
    duplicate = _set(payload, "sensors.1.sensor_id", "radar-1")
    assert "sensor ids must be unique" in _rejected(duplicate)
    assert "errors" in _rejected(_set(payload, "errors", -1))
    assert "error_counts" in _rejected(_set(payload, "error_counts.late", 1.5))


def test_rejection_is_an_input_error_with_location() -> None:
    with pytest.raises(InputError) as info:
        parse_message("{}", path="rec.jsonl", line=7)
    assert str(info.value).startswith("rec.jsonl:7: ")


# ---------------------------------------------------------------------- alert lifecycle


def test_alert_lifecycle_rules() -> None:
    new = _payload("alert-new")
    update = _payload("alert-update")
    assert "before must be null" in _rejected(_set(new, "before", update["before"]))
    assert "before must be null" in _rejected(_set(update, "before", None))
    end = _set(update, "event", "end")
    assert "end_reason" in _rejected(end)
    assert _alert_of(_set(end, "end_reason", "confirmed")).event is AlertEvent.END
    assert "end_reason" in _rejected(_set(update, "end_reason", "confirmed"))
    assert "after.time" in _rejected(_set(update, "time", "2025-06-14T01:12:45Z"))
    assert "time_to_cross_s" in _rejected(_set(new, "after.time_to_cross_s", 12.0))
    approach = _set(_set(new, "kind", "approach"), "after.time_to_cross_s", 12.0)
    assert _alert_of(approach).after.time_to_cross_s == 12.0


# ---------------------------------------------------------------------------- priority

P = AlertPriority
PRIORITY_TABLE = [
    # class, border, crossing priority, approach priority
    (TargetClassName.PERSON, BorderKindName.BLUE, P.RESCUE, P.RESCUE),
    (TargetClassName.UNKNOWN, BorderKindName.BLUE, P.HIGH, P.HIGH),
    (TargetClassName.BOAT, BorderKindName.BLUE, P.HIGH, P.NORMAL),
    (TargetClassName.VEHICLE, BorderKindName.BLUE, P.HIGH, P.NORMAL),
    (TargetClassName.PERSON, BorderKindName.GREEN, P.HIGH, P.NORMAL),
    (TargetClassName.UNKNOWN, BorderKindName.GREEN, P.HIGH, P.NORMAL),
    (TargetClassName.BOAT, BorderKindName.GREEN, P.HIGH, P.NORMAL),
    (TargetClassName.VEHICLE, BorderKindName.GREEN, P.HIGH, P.NORMAL),
]


@pytest.mark.parametrize(("target", "border", "crossing", "approach"), PRIORITY_TABLE)
def test_default_priority(
    target: TargetClassName, border: BorderKindName, crossing: P, approach: P
) -> None:
    assert default_priority(AlertKind.CROSSING, border, target) is crossing
    assert default_priority(AlertKind.APPROACH, border, target) is approach


def test_priority_order() -> None:
    assert [p.rank for p in (P.NORMAL, P.HIGH, P.RESCUE)] == [0, 1, 2]


# ------------------------------------------------------------------ conversions: batches

coord = st.floats(-20_000.0, 20_000.0, allow_nan=False, allow_infinity=False)


@st.composite
def batches(draw: st.DrawFn, max_rows: int = 12) -> DetectionBatch:
    n = draw(st.integers(0, max_rows))
    kind = np.array(draw(st.lists(st.sampled_from(list(MeasurementKind)), min_size=n, max_size=n)))
    kind = kind.astype(np.int64).reshape(n)
    z = np.full((n, 2), np.nan)
    R = np.zeros((n, 2, 2))
    sensor_xy = np.zeros((n, 2))
    for i in range(n):
        k = MeasurementKind(int(kind[i]))
        if k is MeasurementKind.POSITION:
            z[i] = (draw(coord), draw(coord))
            sx, sy = draw(st.floats(0.1, 200.0)), draw(st.floats(0.1, 200.0))
            rho = draw(st.floats(-0.99, 0.99))
            R[i] = [[sx * sx, rho * sx * sy], [rho * sx * sy, sy * sy]]
        else:
            sensor_xy[i] = (draw(coord), draw(coord))
            bearing = draw(st.floats(-math.pi, 2 * math.pi, allow_nan=False, allow_infinity=False))
            if k is MeasurementKind.RANGE_BEARING:
                z[i] = (draw(st.floats(0.0, 20_000.0)), bearing)
                R[i, 0, 0] = draw(st.floats(0.1, 100.0)) ** 2
                R[i, 1, 1] = draw(st.floats(1e-4, 0.5)) ** 2
            else:
                z[i, 0] = bearing
                R[i, 0, 0] = draw(st.floats(1e-4, 0.5)) ** 2

    def column(strategy: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(strategy, min_size=n, max_size=n))

    return DetectionBatch(
        t=np.array(column(st.floats(0.0, 1e6)), dtype=np.float64).reshape(n),
        kind=kind,
        z=z,
        R=R,
        sensor_xy=sensor_xy,
        sensor=np.array(column(st.integers(0, len(SENSORS) - 1)), dtype=np.int64).reshape(n),
        cls=np.array(column(st.sampled_from(list(TargetClass))), dtype=np.int64).reshape(n),
        cls_conf=np.array(column(st.floats(0.0, 1.0)), dtype=np.float64).reshape(n),
    )


frames = st.builds(
    LocalFrame,
    st.floats(-70.0, 70.0),
    st.floats(-180.0, 180.0),
    st.floats(-100.0, 3000.0),
)


def _to_messages(batch: DetectionBatch, frame: LocalFrame = FRAME) -> list[Detection]:
    return batch_to_detections(batch, replace(IN_EXERCISE, frame=frame))


def _sensor_index() -> dict[str, int]:
    return {s: i for i, s in enumerate(SENSORS)}


def _wrapped(a: FloatArray, b: FloatArray) -> FloatArray:
    """|a - b| for angles in radians, wrapped to [0, π]."""
    d: FloatArray = np.abs(np.angle(np.exp(1j * (a - b))))
    return d


def assert_batches_equal(a: DetectionBatch, b: DetectionBatch, xy_atol: float = 1e-9) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(b.t, a.t, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(b.kind, a.kind)
    np.testing.assert_array_equal(b.sensor, a.sensor)
    np.testing.assert_array_equal(b.cls, a.cls)
    np.testing.assert_array_equal(b.cls_conf, a.cls_conf)
    pos = a.kind == MeasurementKind.POSITION
    rb = a.kind == MeasurementKind.RANGE_BEARING
    bo = a.kind == MeasurementKind.BEARING_ONLY
    np.testing.assert_allclose(b.z[pos], a.z[pos], rtol=0, atol=xy_atol)
    np.testing.assert_allclose(b.z[rb, 0], a.z[rb, 0], rtol=1e-12)
    assert np.all(_wrapped(b.z[rb, 1], a.z[rb, 1]) < 1e-12)
    assert np.all(_wrapped(b.z[bo, 0], a.z[bo, 0]) < 1e-12)
    assert np.all(np.isnan(b.z[bo, 1]))
    np.testing.assert_allclose(b.sensor_xy, a.sensor_xy, rtol=0, atol=xy_atol)
    np.testing.assert_allclose(b.R[~bo], a.R[~bo], rtol=1e-9, atol=0)
    np.testing.assert_allclose(b.R[bo, 0, 0], a.R[bo, 0, 0], rtol=1e-9)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), frame=frames)
def test_batch_round_trip(batch: DetectionBatch, frame: LocalFrame) -> None:
    messages = _to_messages(batch, frame)
    assert_batches_equal(batch, detections_to_batch(messages, frame, _sensor_index(), EPOCH))


@settings(max_examples=40, deadline=None)
@given(batch=batches())
def test_detection_json_round_trip(batch: DetectionBatch) -> None:
    for d in _to_messages(batch):
        assert Detection.model_validate_json(d.model_dump_json()) == d
        assert parse_message(d.model_dump_json()) == d


def _without_local(d: Detection) -> Detection:
    payload = json.loads(d.model_dump_json())
    payload["enu_origin"] = None
    m = payload["measurement"]
    point = m["position"] if m["model"] == "position" else m["sensor_position"]
    point["x_m"] = point["y_m"] = None
    return Detection.model_validate(payload)


@settings(max_examples=40, deadline=None)
@given(batch=batches())
def test_batch_round_trip_through_wgs84_only(batch: DetectionBatch) -> None:
    # Within ±20 km the plane and the ellipsoid part by centimetres at most.
    messages = [_without_local(d) for d in _to_messages(batch)]
    assert all(d.enu_origin is None for d in messages)
    back = detections_to_batch(messages, FRAME, _sensor_index(), EPOCH)
    assert_batches_equal(batch, back, xy_atol=0.2)


def test_local_metres_of_another_origin_are_not_trusted() -> None:
    batch = DetectionBatch.positions(np.array([1.0]), np.array([[800.0, -300.0]]), np.array([5.0]))
    other = LocalFrame(42.21, 19.19, 8.0)
    (d,) = _to_messages(batch, other)
    back = detections_to_batch([d], FRAME, _sensor_index(), EPOCH)
    expected = FRAME.to_enu(*other.to_wgs84(np.array([[800.0, -300.0]])).T)
    np.testing.assert_allclose(back.z, expected, atol=0.01)
    assert np.linalg.norm(back.z - [[800.0, -300.0]]) > 1000.0


def test_detection_of_unknown_sensor_is_rejected() -> None:
    batch = DetectionBatch.positions(np.array([1.0]), np.array([[0.0, 0.0]]), np.array([5.0]))
    messages = _to_messages(batch)
    with pytest.raises(DetectionRejectedError, match="unknown_sensor"):
        detections_to_batch(messages, FRAME, {"radar-1": 0}, EPOCH)


def test_conversions_need_an_aware_epoch() -> None:
    naive = datetime(2025, 6, 14)
    with pytest.raises(ValueError, match="timezone-aware"):
        detections_to_batch([], FRAME, {}, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(PUBLISHER, epoch=naive)


def test_publisher_is_checked_like_provenance() -> None:
    cest = EPOCH.astimezone(timezone(timedelta(hours=2)))
    publisher = replace(PUBLISHER, epoch=cest)
    assert publisher.epoch == EPOCH
    assert publisher.epoch.tzinfo is UTC
    assert publisher.sensor_ids == tuple(SENSORS)
    for bad in ("", "boat:2"):
        with pytest.raises(ValidationError, match="node_id"):
            replace(PUBLISHER, node_id=bad)
    with pytest.raises(ValidationError, match="software_version"):
        replace(PUBLISHER, software_version="")
    with pytest.raises(ValidationError, match="must be unique"):
        replace(PUBLISHER, sensor_ids=["radar-1", "radar-1"])


def test_epoch_in_another_zone_is_the_same_instant() -> None:
    batch = DetectionBatch.positions(np.array([90.0]), np.array([[0.0, 0.0]]), np.array([5.0]))
    (d,) = _to_messages(batch)
    assert d.time == datetime(2025, 6, 14, 0, 1, 30, tzinfo=UTC)
    cest = EPOCH.astimezone(timezone(timedelta(hours=2)))
    np.testing.assert_allclose(detections_to_batch([d], FRAME, _sensor_index(), cest).t, [90.0])


def test_correlated_range_bearing_noise_is_refused() -> None:
    batch = DetectionBatch(
        t=np.array([0.0]),
        kind=np.array([MeasurementKind.RANGE_BEARING], dtype=np.int64),
        z=np.array([[100.0, 1.0]]),
        R=np.array([[[4.0, 0.01], [0.01, 1e-4]]]),
        sensor_xy=np.zeros((1, 2)),
        sensor=np.zeros(1, dtype=np.int64),
    )
    with pytest.raises(ValueError, match="correlated range-bearing"):
        _to_messages(batch)


def test_detections_carry_provenance_and_wire_units() -> None:
    batch = DetectionBatch(
        t=np.array([2.5]),
        kind=np.array([MeasurementKind.BEARING_ONLY], dtype=np.int64),
        z=np.array([[-math.pi / 2, np.nan]]),
        R=np.array([[[math.radians(0.5) ** 2, 0.0], [0.0, 0.0]]]),
        sensor_xy=np.array([[100.0, 50.0]]),
        sensor=np.array([2], dtype=np.int64),
        cls=np.array([TargetClass.PERSON], dtype=np.int64),
        cls_conf=np.array([0.7]),
    )
    (d,) = batch_to_detections(batch, replace(PUBLISHER, simulated=True, software_version="0.2.0"))
    m = d.measurement
    assert m.model == "bearing_only"
    assert m.bearing_deg == pytest.approx(270.0)
    assert m.sigma_bearing_deg == pytest.approx(0.5)
    assert d.provenance.sensor_ids == ("thermal-1",)
    assert d.provenance.node_id == "boat-2"
    assert (d.provenance.simulated, d.provenance.exercise) == (True, False)
    assert d.provenance.software_version == "0.2.0"
    assert d.class_hint.label is TargetClassName.PERSON
    assert d.enu_origin == EnuOrigin(lat_deg=42.2, lon_deg=19.2, alt_m=8.0)


def test_msg_ids_are_ulids_and_replaceable() -> None:
    a, b = new_msg_id(), new_msg_id()
    assert a != b
    assert len(a) == 26
    assert abs((msg_id_time(a) - datetime.now(UTC)).total_seconds()) < 5
    ids = iter(["01JXPQ7R0AS7H2X6W4M9ZB3C5D", "01JXPQ7R0AS7H2X6W4M9ZB3C5E"])
    batch = DetectionBatch.positions(np.zeros(2), np.zeros((2, 2)), np.ones(2))
    messages = batch_to_detections(batch, replace(PUBLISHER, make_msg_id=lambda: next(ids)))
    assert [d.msg_id for d in messages] == [
        "01JXPQ7R0AS7H2X6W4M9ZB3C5D",
        "01JXPQ7R0AS7H2X6W4M9ZB3C5E",
    ]


# ------------------------------------------------------------------- conversions: tracks


def _table(
    x: np.ndarray, P: np.ndarray, t: float = 100.0, last_update_t: float = 99.5
) -> TrackTable:
    n = x.shape[0]
    return TrackTable(
        t=t,
        track_id=np.arange(417, 417 + n, dtype=np.int64),
        x=x,
        P=P,
        mode_prob=np.full((n, 2), 0.5),
        cls=np.full(n, TargetClass.BOAT, dtype=np.int64),
        cls_conf=np.full(n, 0.8),
        hits=np.full(n, 12, dtype=np.int64),
        first_t=np.full(n, 40.0),
        last_update_t=np.full(n, last_update_t),
        sensor_mask=np.full(n, 0b101, dtype=np.int64),
        side=np.full(n, -1, dtype=np.int64),
        border_segment=np.full(n, 3, dtype=np.int64),
        border_distance_m=np.full(n, -12.5),
    )


def _tracks(table: TrackTable, **kwargs: Any) -> list[Track]:
    return tracks_from_table(table, PUBLISHER, **kwargs)


@st.composite
def tables(draw: st.DrawFn) -> TrackTable:
    n = draw(st.integers(0, 6))
    x = np.array(
        [
            [draw(coord), draw(coord), draw(st.floats(-15, 15)), draw(st.floats(-15, 15))]
            for _ in range(n)
        ]
    ).reshape(n, 4)
    A = np.array(draw(st.lists(st.floats(-10, 10), min_size=16 * n, max_size=16 * n)))
    A = A.reshape(n, 4, 4)
    P = A @ np.swapaxes(A, 1, 2) + 1e-3 * np.eye(4)
    return _table(x, P)


@settings(max_examples=40, deadline=None)
@given(table=tables())
def test_tracks_from_table(table: TrackTable) -> None:
    tracks = _tracks(table)
    assert len(tracks) == len(table)
    for i, trk in enumerate(tracks):
        assert Track.model_validate_json(trk.model_dump_json()) == trk
        assert trk.track_id == f"boat-2:{417 + i}"
        assert (trk.position.x_m, trk.position.y_m) == tuple(table.x[i, :2])
        assert trk.velocity.vx_mps == table.x[i, 2]
        assert trk.velocity.speed_mps == pytest.approx(np.hypot(*table.x[i, 2:]))
        np.testing.assert_allclose(trk.state_cov, table.P[i], rtol=1e-12, atol=1e-12)
        assert trk.time == EPOCH + timedelta(seconds=100)
        assert trk.age_s == pytest.approx(60.0)
        assert trk.time_since_update_s == pytest.approx(0.5)
        assert trk.status is TrackStatus.CONFIRMED
        assert trk.provenance.sensor_ids == ("gps-1", "thermal-1")
        assert trk.border is not None
        assert trk.border.side == "right"
        assert trk.border.signed_distance_m == -12.5


def test_stale_tracks_are_coasting_and_borderless_tracks_have_no_relation() -> None:
    table = _table(np.array([[0.0, 0.0, 1.0, 0.0]]), np.eye(4)[None], last_update_t=90.0)
    table = TrackTable(
        **{
            **{f: getattr(table, f) for f in table.__dataclass_fields__},
            "side": np.zeros(1, dtype=np.int64),
            "border_segment": np.full(1, -1, dtype=np.int64),
            "border_distance_m": np.full(1, np.nan),
        }
    )
    (trk,) = _tracks(table)
    assert trk.status is TrackStatus.COASTING
    assert trk.border is None
    (trk,) = _tracks(table, coast_after_s=20.0)
    assert trk.status is TrackStatus.CONFIRMED


def test_identified_and_dark_tracks_carry_their_vessel_and_flag() -> None:
    table = _table(np.zeros((3, 4)), np.broadcast_to(np.eye(4), (3, 4, 4)).copy())
    fields = {f: getattr(table, f) for f in table.__dataclass_fields__}
    table = TrackTable(
        **{
            **fields,
            "identity": np.array([279000101, 0, 279000007], dtype=np.int64),
            "own": np.array([False, False, True]),
            "dark": np.array([False, True, False]),
            "identity_t": np.array([98.0, np.nan, 97.0]),
        }
    )
    names = {279000101: {"name": "DRINA STAR", "callsign": "YT2DS"}}
    vessel, anonymous, own = _tracks(table, vessels=names.get)
    assert vessel.vessel is not None
    assert (vessel.vessel.mmsi, vessel.vessel.name, vessel.vessel.callsign) == (
        279000101,
        "DRINA STAR",
        "YT2DS",
    )
    assert vessel.vessel.last_report_time == EPOCH + timedelta(seconds=98)
    assert not vessel.vessel.own
    assert not vessel.dark
    assert anonymous.vessel is None
    assert anonymous.dark
    assert own.vessel is not None
    assert own.vessel.own
    assert own.vessel.name is None
    assert Track.model_validate_json(own.model_dump_json()) == own


def test_sensors_from_mask() -> None:
    ids = [f"s{k}" for k in range(65)]
    assert sensors_from_mask(0b1010, ids) == ("s1", "s3")
    assert sensors_from_mask(1 << 62, ids) == ("s62", "s63", "s64")
    with pytest.raises(ValueError, match="bit 3"):
        sensors_from_mask(0b1000, ids[:3])


# ------------------------------------------------------------------- conversions: alerts


def _core_alert(
    event: AlertEvent, cls: TargetClass = TargetClass.PERSON, reason: str = ""
) -> BorderAlert:
    return BorderAlert(
        t=30.0 if event is AlertEvent.NEW else 42.0,
        alert_id=12,
        track_id=431,
        kind=AlertKind.CROSSING,
        event=event,
        direction="right_to_left",
        border_kind=BorderKind.BLUE,
        segment=5,
        x=640.0,
        y=312.0,
        vx=0.2,
        vy=0.9,
        cov_xy=np.array([[12.0, 1.0], [1.0, 14.0]]),
        p_cross=0.74,
        confidence=0.74,
        cls=int(cls),
        cls_conf=0.8,
        reason=reason,
        sensor_mask=0b110,
    )


def _alert(core: BorderAlert, previous: Alert | None = None) -> Alert:
    return alert_from_core(core, IN_EXERCISE, previous=previous)


def test_alert_lifecycle_from_core() -> None:
    new = _alert(_core_alert(AlertEvent.NEW))
    assert new.before is None
    assert new.alert_id == "boat-2:12"
    assert new.track_id == "boat-2:431"
    assert new.priority is AlertPriority.RESCUE
    assert new.border_kind is BorderKindName.BLUE
    assert new.provenance.sensor_ids == ("radar-1", "thermal-1")
    assert (new.after.position.x_m, new.after.position.y_m) == (640.0, 312.0)
    assert Alert.model_validate_json(new.model_dump_json()) == new

    # The class hint fades to unknown: a rescue stays a rescue for the alert's life.
    update = _alert(_core_alert(AlertEvent.UPDATE, TargetClass.UNKNOWN), previous=new)
    assert update.before == new.after
    assert update.after.class_hint.label is TargetClassName.UNKNOWN
    assert update.priority is AlertPriority.RESCUE

    end = _alert(_core_alert(AlertEvent.END, reason="confirmed"), previous=update)
    assert end.end_reason is AlertEndReason.CONFIRMED
    assert end.before == update.after
    assert parse_message(end.model_dump_json()) == end


def test_alert_from_core_checks_previous() -> None:
    new = _alert(_core_alert(AlertEvent.NEW))
    with pytest.raises(ValueError, match="previous message"):
        _alert(_core_alert(AlertEvent.UPDATE))
    with pytest.raises(ValueError, match="previous message"):
        _alert(_core_alert(AlertEvent.NEW), previous=new)
    other = new.model_copy(update={"alert_id": "boat-2:13"})
    with pytest.raises(ValueError, match="not boat-2:12"):
        _alert(_core_alert(AlertEvent.UPDATE), previous=other)


def test_alert_priority_from_green_border() -> None:
    core = _core_alert(AlertEvent.NEW)
    green = BorderAlert(**{**{f: getattr(core, f) for f in core.__dataclass_fields__}})
    object.__setattr__(green, "border_kind", BorderKind.GREEN)
    assert _alert(green).priority is AlertPriority.HIGH


# -------------------------------------------------------------------------------- docs


def test_docs_are_generated_from_the_models() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert render_docs(text) == text, (
        "docs/schema.md is out of date: run "
        "`.venv/bin/python -m borderwatch.schema.reference docs/schema.md`"
    )


def test_docs_show_every_example_and_table() -> None:
    blocks = generated_blocks(DOCS.read_text(encoding="utf-8"))
    assert sorted(name for kind, name, _ in blocks if kind == "example") == sorted(EXAMPLES)
    assert sorted(name for kind, name, _ in blocks if kind == "fields") == sorted(TABLE_MODELS)


def test_docs_examples_validate() -> None:
    for kind, name, body in generated_blocks(DOCS.read_text(encoding="utf-8")):
        if kind == "example":
            payload = body.removeprefix("```json\n").removesuffix("```\n")
            message = parse_message(payload)
            assert message == EXAMPLES[name]
            assert isinstance(message, Detection | Track | Alert | NodeState | Concealment)


def test_json_schema_covers_every_message() -> None:
    schema = message_json_schema()
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == {"detection", "track", "alert", "node_state", "concealment"}
    assert NodeState.model_json_schema()["additionalProperties"] is False


def _concealment_event(**changes: Any) -> ConcealmentEvent:
    fields: dict[str, Any] = {
        "session_id": "co2-1-0001",
        "vehicle_id": "MSCU 4471025",
        "sensor_id": "co2-1",
        "officer": None,
        "t": 96.5,
        "verdict": "persons_likely",
        "confidence": 0.97,
        "baseline_ppm": 421.0,
        "baseline_sigma_ppm": 2.0,
        "peak_ppm": 2400.0,
        "rise_ppm": 1900.0,
        "persisted_s": 30.0,
        "samples": 40,
        "reason": "rise held",
    }
    fields.update(changes)
    return ConcealmentEvent(**fields)


def test_concealment_from_event_round_trips() -> None:
    publisher = PUBLISHER
    message = concealment_from_event(_concealment_event(), publisher)
    assert message.time == publisher.epoch + timedelta(seconds=96.5)
    assert message.provenance.sensor_ids == ("co2-1",)
    assert message.verdict.value == "persons_likely"
    assert parse_message(message.model_dump_json()) == message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"confidence": 1.5}, "confidence"),
        ({"verdict": "maybe"}, "verdict"),
        ({"vehicle_id": ""}, "vehicle_id"),
        ({"baseline_ppm": float("nan")}, "baseline_ppm"),
    ],
)
def test_concealment_refuses_bad_values(change, field) -> None:
    # Out-of-range numbers fail validation; an unknown verdict fails its enum (both ValueError).
    with pytest.raises(ValueError, match=f"(?i){field}"):
        concealment_from_event(_concealment_event(**change), PUBLISHER)
