"""The wire messages: Detection, Track, Alert, NodeState and Concealment, and how to read one.

Receivers call :func:`parse_message` on a payload: it picks the model from ``type``, checks the
schema version first and raises :class:`~borderwatch.schema.common.MessageError` with the
offending fields named.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from borderwatch.fusion.outputs import AlertEvent, AlertKind
from borderwatch.schema.common import (
    BorderKindName,
    ClassHint,
    Count,
    Cov2,
    Cov4,
    Envelope,
    FiniteFloat,
    GeoPoint,
    MessageError,
    NodePrefixedId,
    Probability,
    SensorId,
    TargetClassName,
    UtcDatetime,
    Velocity,
    WireModel,
    check_schema_version,
)

Bearing = Annotated[FiniteFloat, Field(ge=0.0, lt=360.0)]
Sigma = Annotated[FiniteFloat, Field(gt=0.0)]
PositiveCount = Annotated[StrictInt, Field(ge=1)]

# ------------------------------------------------------------------------------ detection


class PositionMeasurement(WireModel):
    """The sensor measured a position (GPS, AIS, a geolocated camera blob)."""

    model: Literal["position"] = Field(default="position", description="Discriminator.")
    position: GeoPoint = Field(description="Measured position of the target.")
    cov_m2: Cov2 = Field(description="Position covariance, east/north, m².")


class RangeBearingMeasurement(WireModel):
    """The sensor measured range and bearing from its own position (radar, ranging camera)."""

    model: Literal["range_bearing"] = Field(default="range_bearing", description="Discriminator.")
    range_m: FiniteFloat = Field(ge=0.0, description="Range from the sensor, m.")
    bearing_deg: Bearing = Field(
        description="Bearing from the sensor, degrees clockwise from true north, in [0, 360)."
    )
    sigma_range_m: Sigma = Field(description="1-σ range error, m.")
    sigma_bearing_deg: Sigma = Field(description="1-σ bearing error, degrees.")
    sensor_position: GeoPoint = Field(description="Sensor position at the measurement time.")


class BearingOnlyMeasurement(WireModel):
    """The sensor measured a direction only (thermal or night-vision camera, direction finder)."""

    model: Literal["bearing_only"] = Field(default="bearing_only", description="Discriminator.")
    bearing_deg: Bearing = Field(
        description="Bearing from the sensor, degrees clockwise from true north, in [0, 360)."
    )
    sigma_bearing_deg: Sigma = Field(description="1-σ bearing error, degrees.")
    elevation_deg: FiniteFloat | None = Field(
        default=None,
        ge=-90.0,
        le=90.0,
        description="Elevation above the horizontal, degrees; null when not measured.",
    )
    sigma_elevation_deg: Sigma | None = Field(
        default=None, description="1-σ elevation error, degrees; given with elevation_deg."
    )
    sensor_position: GeoPoint = Field(description="Sensor position at the measurement time.")

    @model_validator(mode="after")
    def _elevation_with_sigma(self) -> Self:
        if (self.elevation_deg is None) != (self.sigma_elevation_deg is None):
            raise ValueError("elevation_deg and sigma_elevation_deg must be given together")
        return self


Measurement = Annotated[
    PositionMeasurement | RangeBearingMeasurement | BearingOnlyMeasurement,
    Field(discriminator="model"),
]
"""A detection's measurement model, keyed by ``model``."""


class Detection(Envelope):
    """One measurement of one target by one sensor, with its measurement model."""

    type: Literal["detection"] = Field(default="detection", description="Message type.")
    measurement: Measurement = Field(
        description="What was measured and with what noise, keyed by model: position, "
        "range_bearing or bearing_only."
    )
    class_hint: ClassHint = Field(description="What the sensor thinks the target is.")

    @model_validator(mode="after")
    def _one_sensor(self) -> Self:
        if len(self.provenance.sensor_ids) != 1:
            raise ValueError("a detection names exactly one sensor in provenance.sensor_ids")
        return self

    def geo_points(self) -> list[GeoPoint]:
        """The measured position or the sensor position."""
        m = self.measurement
        return [m.position if isinstance(m, PositionMeasurement) else m.sensor_position]


# ---------------------------------------------------------------------------------- track


class TrackStatus(StrEnum):
    """Life stage of a track."""

    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    COASTING = "coasting"
    ENDED = "ended"


class BorderRelation(WireModel):
    """Where a target stands relative to the sender's configured border."""

    segment: Count = Field(description="Index of the nearest border segment in the sender's map.")
    side: Literal["left", "right"] = Field(
        description="Side the target is established on, relative to the line's orientation."
    )
    signed_distance_m: FiniteFloat = Field(
        description="Distance to the border, m; positive on the left side. Near the line its "
        "sign may differ from side, which changes only once the side is clear."
    )


class VesselIdentity(WireModel):
    """Who a cooperative vessel says it is (AIS), attached to the track it was fused into."""

    mmsi: StrictInt = Field(ge=1, le=999_999_999, description="Maritime Mobile Service Identity.")
    own: bool = Field(
        default=False, description="One of the deployment's own vessels (a patrol boat)."
    )
    name: Annotated[str, StringConstraints(strict=True, max_length=64)] | None = Field(
        default=None, description="Vessel name from AIS static data, when received."
    )
    callsign: Annotated[str, StringConstraints(strict=True, max_length=16)] | None = Field(
        default=None, description="Radio call sign from AIS static data, when received."
    )
    last_report_time: UtcDatetime | None = Field(
        default=None, description="Time of the vessel's last AIS report fused into the track."
    )


class Track(Envelope):
    """The estimate of one moving object at one time."""

    type: Literal["track"] = Field(default="track", description="Message type.")
    track_id: NodePrefixedId = Field(
        description="Stable id, prefixed with the id of the node that keeps the track."
    )
    status: TrackStatus = Field(
        description="tentative, confirmed, coasting (no recent detection) or ended."
    )
    position: GeoPoint = Field(description="Estimated position at time.")
    velocity: Velocity = Field(description="Estimated velocity at time.")
    cov_m2: Cov2 = Field(description="Position covariance, east/north, m².")
    state_cov: Cov4 = Field(
        description="Full state covariance over [x_m, y_m, vx_mps, vy_mps]: m², m²/s, m²/s²."
    )
    class_hint: ClassHint = Field(description="What the target is thought to be.")
    hits: PositiveCount = Field(description="Detections assigned to the track so far.")
    first_time: UtcDatetime = Field(description="Time of the track's first detection, UTC.")
    last_update_time: UtcDatetime = Field(
        description="Time of the last detection assigned to the track, UTC."
    )
    border: BorderRelation | None = Field(
        default=None, description="Position relative to the border; null when none is set up."
    )
    vessel: VesselIdentity | None = Field(
        default=None,
        description="The vessel's AIS identity when an AIS report was fused into the track; "
        "null for an anonymous track.",
    )
    dark: bool = Field(
        default=False,
        description="A boat seen by radar or camera that sends no AIS (or whose AIS fell "
        "silent): worth a look.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.first_time <= self.last_update_time <= self.time:
            raise ValueError("need first_time <= last_update_time <= time")
        for i in range(2):
            for j in range(2):
                a, b = self.cov_m2[i][j], self.state_cov[i][j]
                if abs(a - b) > 1e-9 * max(abs(a), abs(b), 1e-300):
                    raise ValueError("cov_m2 must equal the position block of state_cov")
        return self

    def geo_points(self) -> list[GeoPoint]:
        """The estimated position."""
        return [self.position]

    @property
    def age_s(self) -> float:
        """Seconds from the first detection to ``time``."""
        return (self.time - self.first_time).total_seconds()

    @property
    def time_since_update_s(self) -> float:
        """Seconds from the last assigned detection to ``time``."""
        return (self.time - self.last_update_time).total_seconds()


# ---------------------------------------------------------------------------------- alert


class AlertPriority(StrEnum):
    """How urgently operators must act; ``rescue`` outranks ``high`` outranks ``normal``."""

    NORMAL = "normal"
    HIGH = "high"
    RESCUE = "rescue"

    @property
    def rank(self) -> int:
        """0 for normal, 1 for high, 2 for rescue."""
        return _PRIORITY_ORDER.index(self)


_PRIORITY_ORDER: Final = (AlertPriority.NORMAL, AlertPriority.HIGH, AlertPriority.RESCUE)


def default_priority(
    kind: AlertKind, border_kind: BorderKindName, target: TargetClassName
) -> AlertPriority:
    """The priority an alert starts with, from what it is about.

    ========================  ==========================  ==========================
    target                    blue border (river, lake)   green border (land)
    ========================  ==========================  ==========================
    person                    rescue                      high crossing / normal approach
    unknown                   high                        high crossing / normal approach
    boat, vehicle             high crossing / normal      high crossing / normal approach
                              approach
    ========================  ==========================  ==========================

    A person in or near the water is a rescue first, whatever the class confidence: erring
    towards rescue is the safe side. An unknown target at a blue border may be a swimmer, so
    it is never left at normal. Otherwise a crossing is high and an approach normal.
    """
    if border_kind is BorderKindName.BLUE:
        if target is TargetClassName.PERSON:
            return AlertPriority.RESCUE
        if target is TargetClassName.UNKNOWN:
            return AlertPriority.HIGH
    return AlertPriority.HIGH if kind is AlertKind.CROSSING else AlertPriority.NORMAL


def escalate(a: AlertPriority, b: AlertPriority | None) -> AlertPriority:
    """The higher of two priorities (``b`` may be None)."""
    return a if b is None or a.rank >= b.rank else b


class AlertEndReason(StrEnum):
    """Why an alert ended."""

    CONFIRMED = "confirmed"
    RETRACTED = "retracted"
    TRACK_LOST = "track_lost"
    CROSSED = "crossed"
    TURNED_AWAY = "turned_away"


class AlertState(WireModel):
    """What an alert says at one event: the ``before`` and ``after`` of an alert message."""

    time: UtcDatetime = Field(description="Time of the event that produced this state, UTC.")
    priority: AlertPriority = Field(description="rescue, high or normal.")
    p_cross: Probability = Field(
        description="Probability that the target is on the far side of the border."
    )
    confidence: Probability = Field(
        description="Probability that the crossing (or, for approach, a crossing within the "
        "horizon) is real."
    )
    time_to_cross_s: FiniteFloat | None = Field(
        default=None,
        ge=0.0,
        description="Predicted time until the crossing, s; approach alerts only, else null.",
    )
    position: GeoPoint = Field(description="Target position.")
    cov_m2: Cov2 = Field(description="Position covariance, east/north, m².")
    velocity: Velocity = Field(description="Target velocity.")
    class_hint: ClassHint = Field(description="What the target is thought to be.")


class Alert(Envelope):
    """One lifecycle event (new, update, end) of a border crossing or approach alert.

    Following the MQTT event convention, ``after`` is the alert's state once this event is
    applied (for ``end``, its final state) and ``before`` the state published with the
    previous event of the same alert (absent exactly for ``new``). A consumer that missed
    events can still tell what changed.
    """

    type: Literal["alert"] = Field(default="alert", description="Message type.")
    alert_id: NodePrefixedId = Field(
        description="Stable id across the alert's events, prefixed with the raising node's id."
    )
    kind: AlertKind = Field(description="crossing (it crossed) or approach (it is about to).")
    event: AlertEvent = Field(description="new, update or end.")
    track_id: NodePrefixedId = Field(description="The track that raised the alert.")
    border_kind: BorderKindName = Field(description="green (land) or blue (river or lake).")
    border_segment: Count = Field(
        description="Index of the border segment concerned, in the sender's border map."
    )
    direction: Literal["left_to_right", "right_to_left"] = Field(
        description="Direction of the (predicted) crossing relative to the line's orientation."
    )
    end_reason: AlertEndReason | None = Field(
        default=None,
        description="Why the alert ended (end events only): confirmed, retracted, track_lost, "
        "crossed, turned_away.",
    )
    before: AlertState | None = Field(
        default=None, description="State published with the previous event; null for new."
    )
    after: AlertState = Field(description="State after this event.")

    @model_validator(mode="after")
    def _lifecycle(self) -> Self:
        if (self.before is None) != (self.event is AlertEvent.NEW):
            raise ValueError("before must be null for a new event and given otherwise")
        if (self.end_reason is None) == (self.event is AlertEvent.END):
            raise ValueError("end_reason must be given for an end event and only then")
        if self.after.time != self.time:
            raise ValueError("after.time must equal time")
        if self.before is not None and self.before.time > self.time:
            raise ValueError("before.time must not be later than time")
        for state in (self.before, self.after):
            if (
                state is not None
                and state.time_to_cross_s is not None
                and self.kind is not AlertKind.APPROACH
            ):
                raise ValueError("time_to_cross_s is for approach alerts only")
        return self

    def geo_points(self) -> list[GeoPoint]:
        """The target positions of ``before`` and ``after``."""
        states = [self.after] if self.before is None else [self.before, self.after]
        return [s.position for s in states]

    @property
    def priority(self) -> AlertPriority:
        """The current priority (``after.priority``)."""
        return self.after.priority


# ------------------------------------------------------------------------------ node state


class NodeStatus(StrEnum):
    """Availability of a node (``offline`` is also its broker last will)."""

    ONLINE = "online"
    OFFLINE = "offline"


class SensorStatus(StrEnum):
    """Health of one sensor: ``ok``; ``stale`` (no data for too long); ``fault`` (errors)."""

    OK = "ok"
    STALE = "stale"
    FAULT = "fault"


class SensorState(WireModel):
    """Health and counters of one sensor of a node; counters run from the node's start."""

    sensor_id: SensorId = Field(description="Sensor id from configuration.")
    status: SensorStatus = Field(description="ok, stale or fault.")
    last_data_time: UtcDatetime | None = Field(
        default=None, description="Time of the last data received from the sensor, UTC."
    )
    messages: Count = Field(description="Raw messages or frames received from the sensor.")
    detections: Count = Field(description="Detections produced from them.")
    errors: Count = Field(description="Parse or device errors.")
    detail: Annotated[str, StringConstraints(strict=True, max_length=200)] = Field(
        default="", description="Short human-readable reason for stale or fault; else empty."
    )


class QueueState(WireModel):
    """Fill level of one bounded queue between pipeline stages."""

    name: Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z0-9_.-]{1,64}$")] = Field(
        description="Queue name, e.g. detections or outbound."
    )
    depth: Count = Field(description="Items waiting now.")
    capacity: PositiveCount = Field(description="Bound of the queue.")
    dropped: Count = Field(description="Items dropped because the queue was full, since start.")

    @model_validator(mode="after")
    def _depth_within_capacity(self) -> Self:
        if self.depth > self.capacity:
            raise ValueError("depth must not exceed capacity")
        return self


class NodeState(Envelope):
    """Health report of a node; its id and software version are in ``provenance``."""

    type: Literal["node_state"] = Field(default="node_state", description="Message type.")
    status: NodeStatus = Field(description="online or offline.")
    uptime_s: FiniteFloat = Field(ge=0.0, description="Seconds since the node process started.")
    position: GeoPoint | None = Field(
        default=None, description="The node's own position (GPS); null for a fixed or unknown one."
    )
    sensors: tuple[SensorState, ...] = Field(default=(), description="One entry per sensor.")
    messages_received: Count = Field(description="Messages received since start.")
    messages_published: Count = Field(description="Messages published since start.")
    errors: Count = Field(description="Errors since start, all causes.")
    error_counts: dict[
        Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z0-9_.-]{1,64}$")], Count
    ] = Field(default_factory=dict, description="Errors since start by reason, e.g. late.")
    queues: tuple[QueueState, ...] = Field(default=(), description="Bounded queues.")
    outbox_backlog: Count = Field(description="Messages stored, waiting for a link to send.")
    outbox_oldest_time: UtcDatetime | None = Field(
        default=None, description="Time of the oldest message in the outbox; null when empty."
    )
    clock_offset_s: FiniteFloat | None = Field(
        default=None,
        description="Node clock minus reference time (GPS or NTP), s; null when unknown.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        ids = [s.sensor_id for s in self.sensors]
        if len(set(ids)) != len(ids):
            raise ValueError("sensor ids must be unique")
        names = [q.name for q in self.queues]
        if len(set(names)) != len(names):
            raise ValueError("queue names must be unique")
        return self

    def geo_points(self) -> list[GeoPoint]:
        """The node's own position, if given."""
        return [] if self.position is None else [self.position]

    @property
    def node_id(self) -> str:
        """The reporting node (``provenance.node_id``)."""
        return self.provenance.node_id

    @property
    def software_version(self) -> str:
        """Its software version (``provenance.software_version``)."""
        return self.provenance.software_version


# ------------------------------------------------------------------------------ concealment


class ConcealmentVerdict(StrEnum):
    """Outcome of a CO2 inspection session."""

    PERSONS_LIKELY = "persons_likely"
    CLEAR = "clear"
    INCONCLUSIVE = "inconclusive"


ShortText = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]


class Concealment(Envelope):
    """The result of a CO2 inspection of a vehicle or container: people likely hidden inside,
    clear, or inconclusive. ``time`` is when the verdict was reached; ``persons_likely`` is sent
    as soon as the evidence holds, the others when the officer ends the session.
    """

    type: Literal["concealment"] = Field(default="concealment", description="Message type.")
    session_id: ShortText = Field(description="Id of the inspection session.")
    vehicle_id: ShortText = Field(
        description="Vehicle or container id the officer entered (plate, container number)."
    )
    officer: ShortText | None = Field(default=None, description="Officer who ran the session.")
    verdict: ConcealmentVerdict = Field(description="persons_likely, clear or inconclusive.")
    confidence: Probability = Field(
        description="Strength of the evidence for the verdict in [0, 1]: a score that ranks "
        "sessions (0.5 at the rise threshold, 0.9 at twice it), not a calibrated probability."
    )
    baseline_ppm: FiniteFloat = Field(ge=0.0, description="Mean outside-air reading, ppm.")
    baseline_sigma_ppm: FiniteFloat = Field(
        ge=0.0, description="Standard deviation of the baseline readings, ppm."
    )
    peak_ppm: FiniteFloat = Field(ge=0.0, description="Highest reading with the probe in, ppm.")
    rise_ppm: FiniteFloat = Field(
        description="Sustained rise above the baseline the verdict rests on, ppm."
    )
    persisted_s: FiniteFloat = Field(ge=0.0, description="How long the rise held, s.")
    samples: Count = Field(description="Readings taken with the probe in.")
    reason: Annotated[str, StringConstraints(strict=True, max_length=200)] = Field(
        description="Short explanation for the officer."
    )
    position: GeoPoint | None = Field(
        default=None, description="Where the inspection took place (the node's position)."
    )

    def geo_points(self) -> list[GeoPoint]:
        """The inspection position, if known."""
        return [] if self.position is None else [self.position]


# --------------------------------------------------------------------------------- reading

Message = Annotated[
    Detection | Track | Alert | NodeState | Concealment,
    Field(discriminator="type"),
    BeforeValidator(check_schema_version),
]
"""Any message, keyed by ``type``: detection, track, alert, node_state or concealment."""

AnyMessage = Detection | Track | Alert | NodeState | Concealment

MESSAGE_ADAPTER: Final[TypeAdapter[AnyMessage]] = TypeAdapter(Message)


def _describe(error: ValidationError) -> str:
    parts = []
    for e in error.errors(include_url=False):
        where = ".".join(str(x) for x in e["loc"]) or "payload"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def parse_message(
    payload: str | bytes, *, path: str | Path | None = None, line: int | None = None
) -> AnyMessage:
    """Validate a JSON payload as a message of this schema.

    Raises :class:`MessageError` naming every bad field (and ``path``/``line`` when given,
    for recordings); a payload of another major version gets that one error. Unlike building a
    model in Python, a payload must state its ``schema_version``.
    """
    try:
        message = MESSAGE_ADAPTER.validate_json(payload)
    except ValidationError as exc:
        raise MessageError(_describe(exc), path=path, line=line) from exc
    if "schema_version" not in message.model_fields_set:
        raise MessageError("schema_version: Field required", path=path, line=line)
    return message


def message_json_schema() -> dict[str, Any]:
    """JSON Schema of the message union, for partners that do not use these models."""
    return MESSAGE_ADAPTER.json_schema()
