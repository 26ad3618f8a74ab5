"""Conversions between wire messages and the fusion core's arrays.

Pure functions: no I/O and no clock. Message times are ``epoch + t`` seconds of the core's time
axis; positions go through the deployment's :class:`~borderwatch.fusion.frames.LocalFrame`;
angles are degrees on the wire and radians in the core. The only source of variation is the
``msg_id`` generator, which a :class:`Publisher` may replace (``make_msg_id``) to reproduce ids
exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from borderwatch.errors import DetectionRejectedError
from borderwatch.fusion.detections import DetectionBatch, FloatArray, MeasurementKind
from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.outputs import AlertEvent, BorderAlert, TrackTable
from borderwatch.schema.common import (
    BorderKindName,
    ClassHint,
    EnuOrigin,
    GeoPoint,
    Provenance,
    TargetClassName,
    Velocity,
    compass_deg,
    matrix2,
    matrix4,
    new_msg_id,
)
from borderwatch.schema.messages import (
    Alert,
    AlertEndReason,
    AlertState,
    BearingOnlyMeasurement,
    BorderRelation,
    Concealment,
    ConcealmentVerdict,
    Detection,
    PositionMeasurement,
    RangeBearingMeasurement,
    Track,
    TrackStatus,
    VesselIdentity,
    default_priority,
    escalate,
)

if TYPE_CHECKING:
    from borderwatch.sensors.co2session import ConcealmentEvent

#: A track whose last detection is older than this is published as ``coasting``, s.
COAST_AFTER_S: Final = 3.0

#: Bit 62 of a core sensor mask stands for every sensor index from 62 on.
_LAST_MASK_BIT: Final = 62


# ----------------------------------------------------------------------------------- time


def _require_aware(epoch: datetime) -> None:
    if epoch.tzinfo is None or epoch.utcoffset() is None:
        raise ValueError("epoch must be a timezone-aware datetime")


def seconds_since(time: datetime, epoch: datetime) -> float:
    """``time`` as seconds on the core's time axis that starts at ``epoch``."""
    return (time - epoch).total_seconds()


def time_at(t: float, epoch: datetime) -> datetime:
    """The instant ``t`` seconds after ``epoch`` (rounded to the microsecond)."""
    return epoch + timedelta(seconds=float(t))


# ------------------------------------------------------------------------------ publisher


@dataclass(frozen=True, slots=True)
class Publisher:
    """Who publishes the messages made from the core's arrays, and the axes those arrays use.

    One value per node (or centre) and run, handed to :func:`batch_to_detections`,
    :func:`tracks_from_table` and :func:`alert_from_core`. Construction checks the fields as
    every message's :class:`~borderwatch.schema.common.Provenance` would, so a bad node id or
    version fails here rather than at the first message; ``epoch`` is normalised to UTC and
    ``sensor_ids`` to a tuple.

    Raises:
        ValueError: ``epoch`` is naive, or ``node_id``, ``sensor_ids`` (each, and unique) or
            ``software_version`` is not valid on the wire (pydantic's ``ValidationError``).
    """

    frame: LocalFrame
    """The deployment's local east-north-up plane: core positions are metres east/north of it."""

    node_id: str
    """Node id from configuration (no ``:``); prefixes track and alert ids, ``boat-2:417``."""

    epoch: datetime
    """The instant of ``t = 0`` on the core's time axis; core times are seconds after it (UTC)."""

    sensor_ids: Sequence[str]
    """Sensor ids by core sensor index: ``sensor_ids[k]`` is sensor ``k`` (and mask bit ``k``)."""

    software_version: str
    """Version of the software that makes the messages, e.g. ``0.3.1``."""

    simulated: bool
    """True when the data comes from a simulator, not from the real world."""

    exercise: bool
    """True when published during a declared exercise or joint operation."""

    make_msg_id: Callable[[], str] = field(default=new_msg_id)
    """Makes each message's ``msg_id``; replace it to reproduce ids exactly (replays, tests)."""

    def __post_init__(self) -> None:
        _require_aware(self.epoch)
        object.__setattr__(self, "epoch", self.epoch.astimezone(UTC))
        object.__setattr__(self, "sensor_ids", tuple(self.sensor_ids))
        self.provenance(tuple(self.sensor_ids))

    def provenance(self, sensor_ids: tuple[str, ...]) -> Provenance:
        """The provenance of a message to which the sensors ``sensor_ids`` contributed."""
        return Provenance(
            node_id=self.node_id,
            sensor_ids=sensor_ids,
            software_version=self.software_version,
            simulated=self.simulated,
            exercise=self.exercise,
        )


# ------------------------------------------------------------------------------ positions


def _plane_xy(frame: LocalFrame, points: Sequence[tuple[EnuOrigin | None, GeoPoint]]) -> FloatArray:
    """Local plane metres ``(n, 2)`` of points, each given with its message's origin.

    A point's own ``x_m``/``y_m`` is used when its origin is exactly ``frame``'s; otherwise the
    WGS-84 position is converted (in one call for all of them).
    """
    xy = np.empty((len(points), 2))
    convert: list[int] = []
    for i, (origin, p) in enumerate(points):
        if (
            p.x_m is not None
            and p.y_m is not None
            and origin is not None
            and origin.is_frame(frame)
        ):
            xy[i] = (p.x_m, p.y_m)
        else:
            convert.append(i)
    if convert:
        geo = [points[i][1] for i in convert]
        xy[convert] = frame.to_enu(
            np.array([p.lat_deg for p in geo]),
            np.array([p.lon_deg for p in geo]),
            np.array([frame.alt_m if p.alt_m is None else p.alt_m for p in geo]),
        )
    return xy


def _geo_points(frame: LocalFrame, xy: FloatArray) -> list[GeoPoint]:
    """Points with both WGS-84 and local metres from plane positions ``(n, 2)``."""
    if xy.shape[0] == 0:
        return []
    latlon = frame.to_wgs84(xy)
    return [
        GeoPoint(
            lat_deg=float(latlon[i, 0]),
            lon_deg=float(latlon[i, 1]),
            x_m=float(xy[i, 0]),
            y_m=float(xy[i, 1]),
        )
        for i in range(xy.shape[0])
    ]


def _symmetric(a: FloatArray) -> FloatArray:
    return (a + np.swapaxes(a, -1, -2)) / 2.0


# ----------------------------------------------------------------------------- detections


def detections_to_batch(
    detections: Sequence[Detection],
    frame: LocalFrame,
    sensor_index: Mapping[str, int],
    epoch: datetime,
) -> DetectionBatch:
    """Detection messages → the core's :class:`DetectionBatch`, in the given order.

    Times become seconds since ``epoch``; positions become metres in ``frame`` (a message's own
    ``x_m``/``y_m`` is used when its ``enu_origin`` is ``frame``'s origin, otherwise its WGS-84
    position is converted); degrees become radians and sigmas variances. Bearing-only rows get
    ``z = (bearing_rad, nan)`` and ``R = diag(σ_bearing², 0)``; elevation is not used by the core.

    Raises:
        DetectionRejectedError: a detection's sensor is not in ``sensor_index``
            (reason ``unknown_sensor``).
        ValueError: ``epoch`` is naive.
    """
    _require_aware(epoch)
    n = len(detections)
    t = np.array([seconds_since(d.time, epoch) for d in detections], dtype=np.float64)
    kind = np.empty(n, dtype=np.int64)
    z = np.full((n, 2), np.nan)
    R = np.zeros((n, 2, 2))
    sensor_xy = np.zeros((n, 2))
    sensor = np.empty(n, dtype=np.int64)
    cls = np.array([d.class_hint.label.to_core() for d in detections], dtype=np.int64)
    cls_conf = np.array([d.class_hint.confidence for d in detections], dtype=np.float64)
    xy = _plane_xy(frame, [(d.enu_origin, d.geo_points()[0]) for d in detections])
    for i, d in enumerate(detections):
        sensor_id = d.provenance.sensor_ids[0]
        if sensor_id not in sensor_index:
            raise DetectionRejectedError("unknown_sensor", f"{sensor_id!r} (detection {d.msg_id})")
        sensor[i] = sensor_index[sensor_id]
        m = d.measurement
        if isinstance(m, PositionMeasurement):
            kind[i] = MeasurementKind.POSITION
            z[i] = xy[i]
            R[i] = m.cov_m2
        elif isinstance(m, RangeBearingMeasurement):
            kind[i] = MeasurementKind.RANGE_BEARING
            z[i] = (m.range_m, math.radians(m.bearing_deg))
            R[i, 0, 0] = m.sigma_range_m**2
            R[i, 1, 1] = math.radians(m.sigma_bearing_deg) ** 2
            sensor_xy[i] = xy[i]
        else:
            kind[i] = MeasurementKind.BEARING_ONLY
            z[i, 0] = math.radians(m.bearing_deg)
            R[i, 0, 0] = math.radians(m.sigma_bearing_deg) ** 2
            sensor_xy[i] = xy[i]
    return DetectionBatch(
        t=t, kind=kind, z=z, R=R, sensor_xy=sensor_xy, sensor=sensor, cls=cls, cls_conf=cls_conf
    )


def _measurement(
    kind: MeasurementKind, z: FloatArray, R: FloatArray, point: GeoPoint, row: int
) -> PositionMeasurement | RangeBearingMeasurement | BearingOnlyMeasurement:
    if kind is MeasurementKind.POSITION:
        return PositionMeasurement(position=point, cov_m2=matrix2(R))
    if kind is MeasurementKind.RANGE_BEARING:
        if abs(R[0, 1]) + abs(R[1, 0]) > 1e-9 * math.sqrt(abs(R[0, 0] * R[1, 1])):
            raise ValueError(
                f"row {row}: correlated range-bearing noise has no wire form (sigmas only)"
            )
        return RangeBearingMeasurement(
            range_m=float(z[0]),
            bearing_deg=compass_deg(math.degrees(z[1])),
            sigma_range_m=math.sqrt(R[0, 0]),
            sigma_bearing_deg=math.degrees(math.sqrt(R[1, 1])),
            sensor_position=point,
        )
    return BearingOnlyMeasurement(
        bearing_deg=compass_deg(math.degrees(z[0])),
        sigma_bearing_deg=math.degrees(math.sqrt(R[0, 0])),
        sensor_position=point,
    )


def batch_to_detections(batch: DetectionBatch, publisher: Publisher) -> list[Detection]:
    """The core's :class:`DetectionBatch` → Detection messages, one per row, in order.

    ``publisher.sensor_ids[batch.sensor[i]]`` names row ``i``'s sensor. Positions carry both
    WGS-84 and ``publisher.frame`` metres (with ``enu_origin``); bearings are wrapped to
    [0, 360) degrees.

    Raises:
        ValueError: a sensor index has no id, a range-bearing row has correlated noise, or a
            row does not make a valid message (pydantic's ``ValidationError``, e.g. a NaN or a
            negative variance).
    """
    frame, sensor_ids = publisher.frame, publisher.sensor_ids
    origin = EnuOrigin.from_frame(frame)
    is_position = (batch.kind == MeasurementKind.POSITION)[:, None]
    points = _geo_points(frame, np.where(is_position, batch.z, batch.sensor_xy))
    R = _symmetric(batch.R)
    provenance: dict[int, Provenance] = {}
    out = []
    for i in range(len(batch)):
        k = int(batch.sensor[i])
        if k not in provenance:
            if not 0 <= k < len(sensor_ids):
                raise ValueError(f"row {i}: sensor index {k} has no id in sensor_ids")
            provenance[k] = publisher.provenance((sensor_ids[k],))
        out.append(
            Detection(
                msg_id=publisher.make_msg_id(),
                time=time_at(batch.t[i], publisher.epoch),
                measurement=_measurement(
                    MeasurementKind(int(batch.kind[i])), batch.z[i], R[i], points[i], i
                ),
                class_hint=ClassHint(
                    label=TargetClassName.from_core(int(batch.cls[i])),
                    confidence=float(batch.cls_conf[i]),
                ),
                provenance=provenance[k],
                enu_origin=origin,
            )
        )
    return out


# --------------------------------------------------------------------------------- tracks


def sensors_from_mask(mask: int, sensor_ids: Sequence[str]) -> tuple[str, ...]:
    """Sensor ids whose bits are set in a core sensor mask, by index.

    The core saturates indices at bit 62, so that bit names every sensor from index 62 on.
    """
    out: list[str] = []
    for k in range(_LAST_MASK_BIT + 1):
        if not (mask >> k) & 1:
            continue
        if k >= len(sensor_ids):
            raise ValueError(f"sensor bit {k} is set but only {len(sensor_ids)} sensor ids given")
        out.extend(sensor_ids[k:] if k == _LAST_MASK_BIT else [sensor_ids[k]])
    return tuple(out)


def _border(segment: int, side: int, distance_m: float) -> BorderRelation | None:
    if segment < 0:
        return None
    if side == 0:
        raise ValueError("a track near a border segment must have a side (+1 or -1)")
    return BorderRelation(
        segment=segment, side="left" if side > 0 else "right", signed_distance_m=distance_m
    )


def _vessel(
    table: TrackTable,
    i: int,
    epoch: datetime,
    vessels: Callable[[int], Mapping[str, object] | None] | None,
) -> VesselIdentity | None:
    mmsi = int(table.identity[i]) if len(table.identity) else 0
    if mmsi <= 0:
        return None
    static = vessels(mmsi) if vessels is not None else None
    name = static.get("name") if static else None
    callsign = static.get("callsign") if static else None
    last = float(table.identity_t[i])
    return VesselIdentity(
        mmsi=mmsi,
        own=bool(table.own[i]),
        name=name[:64] if isinstance(name, str) and name else None,
        callsign=callsign[:16] if isinstance(callsign, str) and callsign else None,
        last_report_time=time_at(last, epoch) if math.isfinite(last) else None,
    )


def tracks_from_table(
    table: TrackTable,
    publisher: Publisher,
    *,
    coast_after_s: float = COAST_AFTER_S,
    vessels: Callable[[int], Mapping[str, object] | None] | None = None,
    rows: Sequence[int] | np.ndarray | None = None,
) -> list[Track]:
    """Confirmed tracks of a :class:`TrackTable` → Track messages, one per row (or per row of
    ``rows``), in order.

    Track ids become ``"{node_id}:{track_id}"``; a track is ``coasting`` when its last
    detection is more than ``coast_after_s`` seconds older than the table, else ``confirmed``;
    contributing sensors come from the sensor mask (:func:`sensors_from_mask`). An identified
    track (AIS) carries its vessel identity, named by ``vessels(mmsi)`` (static AIS data, e.g.
    :meth:`borderwatch.sensors.aisfeed.AisRegistry.lookup`) when given.
    """
    node_id, epoch = publisher.node_id, publisher.epoch
    origin = EnuOrigin.from_frame(publisher.frame)
    chosen = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.int64)
    points = dict(
        zip(chosen.tolist(), _geo_points(publisher.frame, table.x[chosen, :2]), strict=True)
    )
    P = _symmetric(table.P)
    time = time_at(table.t, epoch)
    out = []
    for i in chosen.tolist():
        coasting = table.t - float(table.last_update_t[i]) > coast_after_s
        out.append(
            Track(
                msg_id=publisher.make_msg_id(),
                time=time,
                track_id=f"{node_id}:{int(table.track_id[i])}",
                status=TrackStatus.COASTING if coasting else TrackStatus.CONFIRMED,
                position=points[i],
                velocity=Velocity.from_enu(float(table.x[i, 2]), float(table.x[i, 3])),
                cov_m2=matrix2(P[i, :2, :2]),
                state_cov=matrix4(P[i]),
                class_hint=ClassHint(
                    label=TargetClassName.from_core(int(table.cls[i])),
                    confidence=float(table.cls_conf[i]),
                ),
                hits=int(table.hits[i]),
                first_time=time_at(table.first_t[i], epoch),
                last_update_time=time_at(table.last_update_t[i], epoch),
                border=_border(
                    int(table.border_segment[i]),
                    int(table.side[i]),
                    float(table.border_distance_m[i]),
                ),
                provenance=publisher.provenance(
                    sensors_from_mask(int(table.sensor_mask[i]), publisher.sensor_ids)
                ),
                enu_origin=origin,
                vessel=_vessel(table, i, epoch, vessels),
                dark=bool(table.dark[i]) if len(table.dark) else False,
            )
        )
    return out


# --------------------------------------------------------------------------------- alerts


def _direction(value: str) -> Literal["left_to_right", "right_to_left"]:
    if value == "left_to_right":
        return "left_to_right"
    if value == "right_to_left":
        return "right_to_left"
    raise ValueError(f"unknown crossing direction {value!r}")


def alert_from_core(
    alert: BorderAlert, publisher: Publisher, *, previous: Alert | None = None
) -> Alert:
    """A core :class:`BorderAlert` event → an Alert message.

    ``previous`` is the message published for the same alert's previous event: its ``after``
    becomes this message's ``before`` (required for ``update`` and ``end``, refused for
    ``new``). The priority is :func:`default_priority`, never lowered below ``previous``'s
    during an alert's life: once a rescue, the alert stays a rescue.
    """
    node_id = publisher.node_id
    alert_id = f"{node_id}:{alert.alert_id}"
    if (previous is None) != (alert.event is AlertEvent.NEW):
        raise ValueError(f"alert {alert_id}: previous message is needed exactly for update/end")
    if previous is not None and previous.alert_id != alert_id:
        raise ValueError(f"previous message is of alert {previous.alert_id}, not {alert_id}")
    border_kind = BorderKindName.from_core(alert.border_kind)
    label = TargetClassName.from_core(alert.cls)
    priority = escalate(
        default_priority(alert.kind, border_kind, label),
        None if previous is None else previous.after.priority,
    )
    time = time_at(alert.t, publisher.epoch)
    (point,) = _geo_points(publisher.frame, np.array([[alert.x, alert.y]]))
    after = AlertState(
        time=time,
        priority=priority,
        p_cross=alert.p_cross,
        confidence=alert.confidence,
        time_to_cross_s=alert.time_to_cross_s,
        position=point,
        cov_m2=matrix2(_symmetric(np.asarray(alert.cov_xy, dtype=np.float64))),
        velocity=Velocity.from_enu(alert.vx, alert.vy),
        class_hint=ClassHint(label=label, confidence=alert.cls_conf),
    )
    return Alert(
        msg_id=publisher.make_msg_id(),
        time=time,
        alert_id=alert_id,
        kind=alert.kind,
        event=alert.event,
        track_id=f"{node_id}:{alert.track_id}",
        border_kind=border_kind,
        border_segment=alert.segment,
        direction=_direction(alert.direction),
        end_reason=AlertEndReason(alert.reason) if alert.event is AlertEvent.END else None,
        before=None if previous is None else previous.after,
        after=after,
        provenance=publisher.provenance(sensors_from_mask(alert.sensor_mask, publisher.sensor_ids)),
        enu_origin=EnuOrigin.from_frame(publisher.frame),
    )


# ---------------------------------------------------------------------------- concealment


def concealment_from_event(
    event: ConcealmentEvent, publisher: Publisher, *, position: GeoPoint | None = None
) -> Concealment:
    """A CO2 session's :class:`~borderwatch.sensors.co2session.ConcealmentEvent` → a
    Concealment message; ``position`` is where the node was (its GPS), when known."""
    return Concealment(
        msg_id=publisher.make_msg_id(),
        time=time_at(event.t, publisher.epoch),
        provenance=publisher.provenance((event.sensor_id,)),
        session_id=event.session_id,
        vehicle_id=event.vehicle_id,
        officer=event.officer,
        verdict=ConcealmentVerdict(event.verdict),
        confidence=event.confidence,
        baseline_ppm=event.baseline_ppm,
        baseline_sigma_ppm=event.baseline_sigma_ppm,
        peak_ppm=event.peak_ppm,
        rise_ppm=event.rise_ppm,
        persisted_s=event.persisted_s,
        samples=event.samples,
        reason=event.reason[:200],
        position=position,
    )
