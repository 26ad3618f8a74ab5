"""The generated parts of ``docs/schema.md``: one example per message form and field tables.

Both are produced from the models, so the reference cannot drift from the code: the test suite
checks that the document equals :func:`render_docs` of itself, and

    python -m borderwatch.schema.reference docs/schema.md

rewrites the generated blocks in place. A generated block sits between
``<!-- generated: example NAME -->`` (or ``fields MODEL``) and ``<!-- end generated -->``.
"""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import annotated_types
import numpy as np
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.outputs import AlertEvent, AlertKind
from borderwatch.schema.common import (
    BorderKindName,
    ClassHint,
    EnuOrigin,
    Envelope,
    GeoPoint,
    Provenance,
    TargetClassName,
    Velocity,
)
from borderwatch.schema.messages import (
    Alert,
    AlertState,
    BearingOnlyMeasurement,
    BorderRelation,
    Concealment,
    ConcealmentVerdict,
    Detection,
    NodeState,
    NodeStatus,
    PositionMeasurement,
    QueueState,
    RangeBearingMeasurement,
    SensorState,
    SensorStatus,
    Track,
    TrackStatus,
    VesselIdentity,
    default_priority,
)

# ------------------------------------------------------------------------------- examples

#: Origin of the examples' local plane: the Montenegrin shore of Lake Skadar.
_ORIGIN: Final = EnuOrigin(lat_deg=42.2, lon_deg=19.2, alt_m=8.0)
_FRAME: Final = _ORIGIN.to_frame()
_T0: Final = datetime(2025, 6, 14, 1, 12, 30, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return _T0 + timedelta(seconds=seconds)


def _point(x_m: float, y_m: float, frame: LocalFrame = _FRAME) -> GeoPoint:
    ((lat, lon),) = frame.to_wgs84(np.array([[x_m, y_m]]))
    return GeoPoint(lat_deg=round(float(lat), 7), lon_deg=round(float(lon), 7), x_m=x_m, y_m=y_m)


def _velocity(vx_mps: float, vy_mps: float) -> Velocity:
    v = Velocity.from_enu(vx_mps, vy_mps)
    return Velocity(
        vx_mps=vx_mps,
        vy_mps=vy_mps,
        speed_mps=round(v.speed_mps, 4),
        course_deg=round(v.course_deg, 3),
    )


def _provenance(*sensor_ids: str) -> Provenance:
    return Provenance(
        node_id="boat-2",
        sensor_ids=sensor_ids,
        software_version="0.4.0",
        simulated=False,
        exercise=True,
    )


def _detection_position() -> Detection:
    return Detection(
        msg_id="01JXPQ7R0AS7H2X6W4M9ZB3C5D",
        time=_at(0.0),
        received_at=_at(0.35),
        measurement=PositionMeasurement(
            position=_point(1520.0, -860.0), cov_m2=((25.0, 3.0), (3.0, 16.0))
        ),
        class_hint=ClassHint(label=TargetClassName.BOAT, confidence=0.95),
        provenance=_provenance("ais-1"),
        enu_origin=_ORIGIN,
    )


def _detection_range_bearing() -> Detection:
    return Detection(
        msg_id="01JXPQ7R3KDE8F5VNY2T6Q1W9G",
        time=_at(0.5),
        measurement=RangeBearingMeasurement(
            range_m=1250.0,
            bearing_deg=212.5,
            sigma_range_m=7.5,
            sigma_bearing_deg=0.8,
            sensor_position=_point(2400.0, 180.0),
        ),
        class_hint=ClassHint(label=TargetClassName.UNKNOWN, confidence=0.0),
        provenance=_provenance("radar-1"),
        enu_origin=_ORIGIN,
    )


def _detection_bearing_only() -> Detection:
    return Detection(
        msg_id="01JXPQ7R6PGH3J4K5M6N7P8Q9R",
        time=_at(0.8),
        measurement=BearingOnlyMeasurement(
            bearing_deg=47.3,
            sigma_bearing_deg=0.35,
            elevation_deg=-1.2,
            sigma_elevation_deg=0.5,
            sensor_position=GeoPoint(lat_deg=42.2041, lon_deg=19.2215, alt_m=14.0),
        ),
        class_hint=ClassHint(label=TargetClassName.PERSON, confidence=0.72),
        provenance=_provenance("thermal-1"),
    )


def _track() -> Track:
    return Track(
        msg_id="01JXPQ7S1B2C3D4E5F6G7H8J9K",
        time=_at(1.0),
        track_id="boat-2:417",
        status=TrackStatus.CONFIRMED,
        position=_point(1532.4, -871.9),
        velocity=_velocity(-1.2, 2.9),
        cov_m2=((36.0, 4.0), (4.0, 49.0)),
        state_cov=(
            (36.0, 4.0, 1.5, 0.2),
            (4.0, 49.0, 0.3, 1.8),
            (1.5, 0.3, 0.25, 0.01),
            (0.2, 1.8, 0.01, 0.36),
        ),
        class_hint=ClassHint(label=TargetClassName.BOAT, confidence=0.88),
        hits=42,
        first_time=_at(-95.0),
        last_update_time=_at(0.5),
        border=BorderRelation(segment=3, side="right", signed_distance_m=-42.5),
        provenance=_provenance("ais-1", "radar-1", "thermal-1"),
        enu_origin=_ORIGIN,
    )


def _alert_state(seconds: float, p_cross: float, x_m: float, y_m: float) -> AlertState:
    return AlertState(
        time=_at(seconds),
        priority=default_priority(AlertKind.CROSSING, BorderKindName.BLUE, TargetClassName.PERSON),
        p_cross=p_cross,
        confidence=p_cross,
        position=_point(x_m, y_m),
        cov_m2=((12.0, 1.0), (1.0, 14.0)),
        velocity=_velocity(0.2, 0.9),
        class_hint=ClassHint(label=TargetClassName.PERSON, confidence=0.81),
    )


def _alert(event: AlertEvent) -> Alert:
    first = _alert_state(2.0, 0.74, 640.0, 312.0)
    new = event is AlertEvent.NEW
    return Alert(
        msg_id="01JXPQ7T5V6W7X8Y9Z0A1B2C3D" if new else "01JXPQ7WQ4R5S6T7V8W9X0Y1Z2",
        time=first.time if new else _at(14.0),
        alert_id="boat-2:12",
        kind=AlertKind.CROSSING,
        event=event,
        track_id="boat-2:431",
        border_kind=BorderKindName.BLUE,
        border_segment=5,
        direction="right_to_left",
        before=None if new else first,
        after=first if new else _alert_state(14.0, 0.98, 642.5, 323.0),
        provenance=_provenance("radar-1", "thermal-1"),
        enu_origin=_ORIGIN,
    )


def _node_state() -> NodeState:
    return NodeState(
        msg_id="01JXPQ7X8A9B0C1D2E3F4G5H6J",
        time=_at(5.0),
        status=NodeStatus.ONLINE,
        uptime_s=18231.5,
        position=_point(2400.0, 180.0),
        sensors=(
            SensorState(
                sensor_id="radar-1",
                status=SensorStatus.OK,
                last_data_time=_at(4.5),
                messages=18210,
                detections=40213,
                errors=2,
            ),
            SensorState(
                sensor_id="thermal-1",
                status=SensorStatus.STALE,
                last_data_time=_at(-41.0),
                messages=91022,
                detections=3120,
                errors=0,
                detail="no frame for 46 s",
            ),
        ),
        messages_received=131232,
        messages_published=44107,
        errors=3,
        error_counts={"late": 1, "parse": 2},
        queues=(
            QueueState(name="detections", depth=3, capacity=1000, dropped=0),
            QueueState(name="outbound", depth=120, capacity=5000, dropped=0),
        ),
        outbox_backlog=1840,
        outbox_oldest_time=_at(-1260.0),
        clock_offset_s=0.012,
        provenance=_provenance("radar-1", "thermal-1"),
        enu_origin=_ORIGIN,
    )


def _concealment() -> Concealment:
    return Concealment(
        msg_id="01JXPQ8C2V3W4X5Y6Z7A8B9C0D",
        time=_at(96.0),
        provenance=_provenance("co2-1"),
        session_id="co2-1-0007",
        vehicle_id="PG 123 AB / MSCU 4471025",
        officer="officer-17",
        verdict=ConcealmentVerdict.PERSONS_LIKELY,
        confidence=0.97,
        baseline_ppm=421.4,
        baseline_sigma_ppm=2.1,
        peak_ppm=2488.0,
        rise_ppm=2031.5,
        persisted_s=30.0,
        samples=36,
        reason="rise of 2032 ppm above outside air held for 30 s",
        position=_point(2400.0, 180.0),
        enu_origin=_ORIGIN,
    )


def examples() -> dict[str, Envelope]:
    """One valid message for each form, by the name its docs block uses."""
    return {
        "detection-position": _detection_position(),
        "detection-range-bearing": _detection_range_bearing(),
        "detection-bearing-only": _detection_bearing_only(),
        "track": _track(),
        "alert-new": _alert(AlertEvent.NEW),
        "alert-update": _alert(AlertEvent.UPDATE),
        "node-state": _node_state(),
        "concealment": _concealment(),
    }


# --------------------------------------------------------------------------- field tables

#: Models that get a field table, by the name used in ``fields NAME`` markers.
TABLE_MODELS: Final[dict[str, type[BaseModel]]] = {
    m.__name__: m
    for m in (
        Envelope,
        Provenance,
        EnuOrigin,
        GeoPoint,
        Velocity,
        ClassHint,
        Detection,
        PositionMeasurement,
        RangeBearingMeasurement,
        BearingOnlyMeasurement,
        Track,
        BorderRelation,
        VesselIdentity,
        Alert,
        AlertState,
        NodeState,
        SensorState,
        QueueState,
        Concealment,
    )
}

_UNIT_SUFFIXES: Final = (
    ("_m2", "m²"),
    ("_ppm", "ppm"),
    ("_mps", "m/s"),
    ("_deg", "degrees"),
    ("_m", "m"),
    ("_s", "s"),
)
_UNITS: Final = {
    "state_cov": "m², m²/s, m²/s²",
    "time": "UTC",
    "received_at": "UTC",
}

_BOUNDS: Final[tuple[tuple[type[Any], str, str], ...]] = (
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.Lt, "lt", "<"),
)


def _unit(name: str) -> str:
    if name in _UNITS or name.endswith("_time"):
        return _UNITS.get(name, "UTC")
    return next((unit for suffix, unit in _UNIT_SUFFIXES if name.endswith(suffix)), "")


def _bounds(metadata: Sequence[Any]) -> str:
    parts = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            parts.append(_bounds(item.metadata))
            continue
        for kind, attr, symbol in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{symbol} {getattr(item, attr):g}")
    return ", ".join(p for p in parts if p)


def _type_text(tp: Any) -> str:
    """A short, JSON-oriented description of a type annotation."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *metadata = get_args(tp)
        bounds = _bounds(metadata)
        return _type_text(base) + (f", {bounds}" if bounds else "")
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        text = " or ".join(_type_text(a) for a in options)
        return text + " or null" if len(options) < len(get_args(tp)) else text
    if origin is Literal:
        return " or ".join(f"`{json.dumps(a)}`" for a in get_args(tp))
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"array of {_type_text(args[0])}"
        if all(get_origin(a) is tuple for a in args):
            return f"{len(args)}×{len(args)} array of numbers"
        return f"array of {len(args)}"
    if origin is dict:
        return f"object of {_type_text(get_args(tp)[1])}"
    return _plain_type_text(tp)


def _plain_type_text(tp: Any) -> str:
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return " or ".join(f"`{json.dumps(m.value)}`" for m in tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    names: dict[Any, str] = {
        AwareDatetime: "string (RFC 3339)",
        datetime: "string (RFC 3339)",
        float: "number",
        int: "integer",
        bool: "boolean",
        str: "string",
    }
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _field_row(name: str, field: FieldInfo) -> str:
    text = _type_text(field.annotation)
    bounds = _bounds(field.metadata)
    if bounds:
        text += f", {bounds}"
    if field.is_required():
        needed = "yes"
    elif field.default_factory is not None:
        needed = "no"
    else:
        needed = f"no (`{json.dumps(field.default, default=str)}`)"
    description = (field.description or "").replace("|", "\\|")
    return f"| `{name}` | {text} | {_unit(name)} | {needed} | {description} |"


def field_table(model: type[BaseModel]) -> str:
    """Markdown table of a model's fields; envelope fields are left to the Envelope table."""
    inherited = set()
    if issubclass(model, Envelope) and model is not Envelope:
        inherited = set(Envelope.model_fields) - {"type"}
    rows = [
        "| field | type | unit | required | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows += [
        _field_row(name, field)
        for name, field in model.model_fields.items()
        if name not in inherited
    ]
    return "\n".join(rows)


# ---------------------------------------------------------------------------- rendering

_BLOCK: Final = re.compile(
    r"(<!-- generated: (?P<what>example|fields) (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(<!-- end generated -->)",
    re.DOTALL,
)


def _generated(what: str, name: str, example: Callable[[], dict[str, Envelope]]) -> str:
    if what == "example":
        messages = example()
        if name not in messages:
            raise KeyError(f"no example named {name!r}")
        return f"```json\n{pretty_json(messages[name])}\n```\n"
    if name not in TABLE_MODELS:
        raise KeyError(f"no field table for model {name!r}")
    return field_table(TABLE_MODELS[name]) + "\n"


_SCALAR_ARRAY: Final = re.compile(r"\[\s*([^\[\]{}\n]*(?:\n[^\[\]{}\n]*)*?)\s*\]")


def pretty_json(message: BaseModel) -> str:
    """Indented JSON of a message, with arrays of scalars (matrix rows, id lists) on one line."""
    text = json.dumps(message.model_dump(mode="json"), indent=2, ensure_ascii=False)
    return _SCALAR_ARRAY.sub(
        lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",") if x.strip()) + "]",
        text,
    )


def render_docs(text: str) -> str:
    """``text`` with every generated block replaced by what the models produce now."""
    cache: dict[str, dict[str, Envelope]] = {}

    def example() -> dict[str, Envelope]:
        if "all" not in cache:
            cache["all"] = examples()
        return cache["all"]

    def replace(m: re.Match[str]) -> str:
        return m.group(1) + _generated(m["what"], m["name"], example) + m.group(5)

    return _BLOCK.sub(replace, text)


def generated_blocks(text: str) -> list[tuple[str, str, str]]:
    """``(kind, name, body)`` of every generated block in ``text``."""
    return [(m["what"], m["name"], m["body"]) for m in _BLOCK.finditer(text)]


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the generated blocks of the markdown files named in ``argv``."""
    for name in sys.argv[1:] if argv is None else argv:
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        path.write_text(render_docs(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
