"""The console's JSON documents as pydantic models: the OpenAPI schema (``/openapi.json``) is
made from them, and tests validate the served JSON against them (``docs/console.md``).

The server builds the hot documents (tracks) as text for speed; these models describe them.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


P = TypeVar("P", bound=BaseModel)


class Point(_Doc):
    """A GeoJSON Point, ``[lon, lat]`` in degrees (WGS-84)."""

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float] = Field(description="[lon, lat], degrees.")


class Feature(_Doc, Generic[P]):
    """A GeoJSON Feature: a Point with an id and the properties of its kind."""

    type: Literal["Feature"] = "Feature"
    id: str = Field(description="The track, node or alert id.")
    geometry: Point
    properties: P


class FeatureCollection(_Doc, Generic[P]):
    """A GeoJSON FeatureCollection of one kind of feature."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Feature[P]]


class Ellipse(_Doc):
    """The 95 % error ellipse of a position."""

    semi_major_m: float = Field(description="Semi-major axis, m.")
    semi_minor_m: float = Field(description="Semi-minor axis, m.")
    orientation_deg: float = Field(
        description="Direction of the major axis, degrees clockwise from north, [0, 180)."
    )


class Vessel(_Doc):
    """An AIS identity."""

    mmsi: int = Field(description="Maritime Mobile Service Identity.")
    name: str | None = Field(description="Vessel name, when received.")
    callsign: str | None = Field(description="Call sign, when received.")


class Member(_Doc):
    """A node track fused into a centre track."""

    node_id: str = Field(description="The reporting node.")
    track_id: str = Field(description="The node's track id.")


class TrackProperties(_Doc):
    """One track at the table's time."""

    track_id: str = Field(description="Stable track id.")
    time: str = Field(description="Time of the estimate, ISO 8601 UTC.")
    status: Literal["tentative", "confirmed", "coasting"] = Field(description="Life stage.")
    class_: Literal["person", "group", "boat", "vehicle", "unknown"] = Field(
        alias="class", description="What the target is thought to be."
    )
    class_confidence: float = Field(description="Confidence of the class, [0, 1].")
    speed_mps: float = Field(description="Speed over ground, m/s.")
    course_deg: float = Field(description="Course over ground, degrees clockwise from north.")
    vx_mps: float = Field(description="East velocity, m/s.")
    vy_mps: float = Field(description="North velocity, m/s.")
    ellipse: Ellipse = Field(description="95 % position error ellipse.")
    trail: list[tuple[float, float]] = Field(
        description="Earlier positions [lon, lat], oldest first (about one a report)."
    )
    own: bool = Field(description="One of the deployment's own vessels.")
    dark: bool = Field(description="A boat that sends no AIS.")
    vessel: Vessel | None = Field(description="AIS identity, if any.")
    members: list[Member] = Field(description="Node tracks fused (centre); [] on a node.")
    alert_ids: list[str] = Field(description="Open alerts on this track.")


TrackFeature = Feature[TrackProperties]
"""A track as a GeoJSON Feature (id = track_id)."""
TrackCollection = FeatureCollection[TrackProperties]
"""Every track."""


class UnitProperties(_Doc):
    """An own unit (a node's platform)."""

    node_id: str = Field(description="The node.")
    time: str | None = Field(description="Time of the position, ISO 8601 UTC.")
    heading_deg: float | None = Field(description="Heading, degrees clockwise from north.")
    speed_mps: float | None = Field(description="Speed over ground, m/s.")
    status: Literal["online", "offline"] | None = Field(description="Latest node status.")
    self_: bool = Field(alias="self", description="This service's own platform (a node).")


UnitFeature = Feature[UnitProperties]
"""A unit as a GeoJSON Feature (id = node_id)."""
UnitCollection = FeatureCollection[UnitProperties]
"""Own units with a known position."""


class Action(_Doc):
    """One operator action on an alert."""

    verb: str = Field(description="acknowledge, assign or close.")
    operator: str = Field(description="Who acted.")
    time: str = Field(description="When, ISO 8601 UTC.")
    note: str = Field(description="Free text.")


class AlertMember(_Doc):
    """A node alert merged into a centre alert."""

    node_id: str
    alert_id: str


class AlertProperties(_Doc):
    """An alert and its workflow."""

    alert_id: str = Field(description="Stable alert id.")
    kind: Literal["crossing", "approach"]
    event: Literal["new", "update", "end"] = Field(description="Latest event.")
    priority: Literal["rescue", "high", "normal"]
    border_kind: Literal["green", "blue"]
    direction: str = Field(description="left_to_right or right_to_left of the border line.")
    track_id: str
    class_: str = Field(alias="class", description="Target class.")
    p_cross: float
    confidence: float
    time_to_cross_s: float | None = Field(description="Approach alerts only.")
    raised_at: str = Field(description="Time of the first event, ISO 8601 UTC.")
    updated_at: str = Field(description="Time of the latest event, ISO 8601 UTC.")
    raised_wall: float = Field(description="Unix time this service first received the alert.")
    status: Literal["open", "acknowledged", "assigned", "closed"]
    acknowledged_by: str | None
    assignee: str | None
    closed_by: str | None
    members: list[AlertMember] = Field(description="Node alerts merged (centre); [] on a node.")
    actions: list[Action] = Field(description="Operator actions, oldest first.")
    pending: bool = Field(
        default=False,
        description="A node's own action not yet handed to its broker for the centre.",
    )


AlertFeature = Feature[AlertProperties]
"""An alert as a GeoJSON Feature at its latest position (id = alert_id)."""
AlertCollection = FeatureCollection[AlertProperties]
"""Current alerts: not closed, or closed less than ten minutes ago; newest first."""


class AlertHistory(_Doc):
    """Alerts, newest first."""

    alerts: list[AlertProperties]


class Broker(_Doc):
    """The service's MQTT broker link."""

    url: str | None = Field(description="Broker URL (no credentials); null without MQTT.")
    connected: bool


class ConsoleHealth(_Doc):
    """The console's own counters."""

    clients: int = Field(description="WebSocket clients connected.")
    ws_errors: int = Field(description="Client errors so far (all kinds).")
    errors: dict[str, int] = Field(description="Client errors by kind.")
    frames_sent: int
    track_frames_dropped: int = Field(description="Track frames a slow client skipped.")
    clients_overflowed: int = Field(description="Clients disconnected for an alert backlog.")
    tracks: int = Field(description="Tracks in the latest frame.")
    frame_ms: float = Field(
        description="Event-loop time the latest tracks frame took (conversion, features, text)."
    )
    frame_ms_max: float = Field(description="The longest such time since the start, ms.")
    forwarded_pending: int = Field(default=0, description="Node actions not yet handed over.")


class Health(_Doc):
    """The service's health."""

    role: Literal["node", "centre"]
    id: str
    time: str = Field(description="Now, ISO 8601 UTC.")
    uptime_s: float
    broker: Broker
    nodes: list[dict[str, Any]] = Field(description="NodeState messages as on MQTT.")
    console: ConsoleHealth


class Tiles(_Doc):
    """Raster tiles from the local MBTiles file."""

    url: str
    minzoom: int
    maxzoom: int
    format: Literal["png", "jpg"]
    attribution: str


class GeoCollection(_Doc):
    """A GeoJSON FeatureCollection (border, basemap, sensors)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[dict[str, Any]]


class ConsoleConfig(_Doc):
    """What the page needs to start."""

    role: Literal["node", "centre"]
    id: str
    exercise: bool
    simulated: bool
    center: tuple[float, float] = Field(description="[lon, lat] to centre the map on.")
    language: str
    languages: list[str]
    operator: str | None
    border: GeoCollection = Field(description="LineStrings, properties kind and name.")
    basemap: GeoCollection = Field(description="Local basemap features, properties layer, name.")
    tiles: Tiles | None
    sensors: GeoCollection = Field(
        description="Fields of view: Polygons, properties sensor_id, type, node_id."
    )


class ActBody(_Doc):
    """An operator's action."""

    operator: Name = Field(description="Who acts.")
    assignee: Name | None = Field(default=None, description="Who is sent (assign only).")
    note: Annotated[str, StringConstraints(max_length=500)] = Field(
        default="", description="Free text, at most 500 characters."
    )


class ActResult(_Doc):
    """What became of an action."""

    ok: bool
    alert: AlertProperties | None = None
    error: str | None = None
