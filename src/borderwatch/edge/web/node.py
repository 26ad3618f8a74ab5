"""The console of a node (a boat or mobile unit): an output of the node that also takes its full
track table (:class:`~borderwatch.edge.node.TrackView`).

Operator actions are recorded here at once (a boat has no store) and forwarded durably through
the node's MQTT outbox to the centre's command topic, which stores them; until the node's broker
has taken the command the alert shows ``"pending": true``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from borderwatch.config.devices import CameraDevice, RadarDevice
from borderwatch.config.web import WebSettings
from borderwatch.edge.web.console import ActOutcome, Console, border_lines
from borderwatch.edge.web.models import ActBody
from borderwatch.edge.web.picture import ActionRefusedError, TrackRows
from borderwatch.fusion.outputs import TrackTable
from borderwatch.schema import (
    Alert,
    Detection,
    Envelope,
    NodeState,
    PositionMeasurement,
    TargetClassName,
    Track,
    new_msg_id,
)
from borderwatch.schema.convert import COAST_AFTER_S, time_at

if TYPE_CHECKING:
    from borderwatch.edge.node import Node

log = logging.getLogger(__name__)

#: Points of a field-of-view arc.
ARC_POINTS = 16


class NodeConsole(Console):
    """The console of ``node`` (append it to ``node.outputs`` before the node runs)."""

    name = "console"

    def __init__(self, node: Node, settings: WebSettings) -> None:
        super().__init__("node", node.config.node_id, settings, node.frame, clock=node.clock)
        self.node = node
        self.state: NodeState | None = None
        self._table: TrackTable | None = None
        self._forwarded: dict[int, str] = {}  # outbox seq -> alert id

    # ------------------------------------------------------------------ the node's output

    async def publish(self, message: Envelope) -> None:
        """Take a message the node publishes (alerts, health, own position)."""
        if isinstance(message, Alert):
            record = self.picture.alert_event(message, self.wall())
            self.alert_changed(record)
        elif isinstance(message, NodeState):
            self.state = message
            unit = self.picture.unit(self.id)
            unit.status = message.status.value
            unit.self_ = True
        elif isinstance(message, Detection) and isinstance(
            message.measurement, PositionMeasurement
        ):
            self._own_position(message)

    async def publish_batch(self, messages: Sequence[Alert | Track]) -> None:
        """A tracker step's alerts (its track summaries are not needed: the full table comes
        through :meth:`show_tracks`)."""
        for message in messages:
            if isinstance(message, Alert):
                self.alert_changed(self.picture.alert_event(message, self.wall()))

    def show_tracks(self, table: TrackTable) -> None:
        """Keep the latest confirmed track table (converted at the next frame tick)."""
        self._table = table
        self.mark_tracks()

    def _own_position(self, message: Detection) -> None:
        assert isinstance(message.measurement, PositionMeasurement)
        p = message.measurement.position
        unit = self.picture.unit(self.id)
        unit.self_ = True
        unit.lon, unit.lat, unit.time = p.lon_deg, p.lat_deg, message.time
        unit.status = unit.status or "online"
        nav = self.node.stage.nav_state(self.node.stage.time_of(self.clock()))
        if nav is not None:
            unit.heading_deg = nav.heading_deg
            unit.speed_mps = nav.speed_mps
        self.mark_units()

    # ------------------------------------------------------------------ tracks

    def track_rows(self) -> TrackRows | None:
        table, self._table = self._table, None
        if table is None:
            return None
        n = len(table)
        latlon = self.frame.to_wgs84(table.x[:, :2]) if n else np.zeros((0, 2))
        lookup = self.node.stage.ais.lookup
        vessels: list[dict[str, Any] | None] = []
        for mmsi in table.identity.tolist():
            if mmsi <= 0:
                vessels.append(None)
                continue
            known = lookup(int(mmsi)) or {}
            name, callsign = known.get("name"), known.get("callsign")
            vessels.append(
                {
                    "mmsi": int(mmsi),
                    "name": name if isinstance(name, str) else None,
                    "callsign": callsign if isinstance(callsign, str) else None,
                }
            )
        coasting = (table.t - table.last_update_t) > COAST_AFTER_S
        names = [c.value for c in TargetClassName]
        cls = [
            TargetClassName.from_core(int(c)).value if 0 <= int(c) < len(names) else "unknown"
            for c in table.cls.tolist()
        ]
        return TrackRows(
            time=time_at(table.t, self.node.epoch),
            ids=[f"{self.id}:{int(i)}" for i in table.track_id.tolist()],
            lat=latlon[:, 0],
            lon=latlon[:, 1],
            vx=table.x[:, 2],
            vy=table.x[:, 3],
            cov=table.P[:, :2, :2],
            status=["coasting" if c else "confirmed" for c in coasting.tolist()],
            cls=cls,
            cls_conf=table.cls_conf,
            own=table.own.tolist(),
            dark=table.dark.tolist(),
            vessels=vessels,
            members=[[] for _ in range(n)],
        )

    # ------------------------------------------------------------------ documents

    def broker(self) -> dict[str, Any]:
        mqtt = self.node.config.mqtt
        connected = self.node.mqtt is not None and self.node.mqtt.connected
        return {"url": None if mqtt is None else mqtt.url, "connected": connected}

    def node_states(self) -> list[dict[str, Any]]:
        return [] if self.state is None else [self.state.model_dump(mode="json")]

    def flags(self) -> tuple[bool, bool]:
        return self.node.config.exercise, self.node.config.simulated

    def border_geojson(self) -> dict[str, Any]:
        if self.node.config.border is not None:
            return border_lines(self.node.config.border, self.frame)
        return super().border_geojson()

    def extra_health(self) -> dict[str, int]:
        return {"forwarded_pending": len(self._forwarded)}

    def sensors_geojson(self) -> dict[str, Any]:
        """Camera wedges (horizontal field of view out to max_range_m) and radar discs around
        the platform's latest position and heading (a fixed camera at its site)."""
        unit = self.picture.units.get(self.id)
        features = []
        for device in self.node.config.devices:
            polygon = None
            if isinstance(device, CameraDevice) and device.intrinsics.hfov_deg is not None:
                if device.site is not None:
                    origin = (device.site.lat_deg, device.site.lon_deg)
                    heading: float | None = device.site.heading_deg
                elif unit is not None and unit.lat is not None and unit.lon is not None:
                    origin, heading = (unit.lat, unit.lon), unit.heading_deg
                else:
                    continue
                if heading is None:
                    continue
                polygon = self._wedge(
                    origin,
                    heading + device.mount.yaw_deg,
                    device.intrinsics.hfov_deg,
                    device.max_range_m,
                )
            elif isinstance(device, RadarDevice):
                if unit is None or unit.lat is None or unit.lon is None:
                    continue
                polygon = self._wedge((unit.lat, unit.lon), 0.0, 360.0, self.settings.radar_range_m)
            if polygon is not None:
                features.append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [polygon]},
                        "properties": {
                            "sensor_id": device.sensor_id,
                            "type": device.type,
                            "node_id": self.id,
                        },
                    }
                )
        return {"type": "FeatureCollection", "features": features}

    def _wedge(
        self, origin: tuple[float, float], bearing_deg: float, width_deg: float, range_m: float
    ) -> list[list[float]]:
        """A closed ring [lon, lat]: a sector (or a disc when ``width_deg`` is 360)."""
        centre = self.frame.to_enu(np.array([origin[0]]), np.array([origin[1]]))[0]
        full = width_deg >= 360.0
        angles = np.radians(
            bearing_deg
            + np.linspace(-width_deg / 2, width_deg / 2, ARC_POINTS * (4 if full else 1))
        )
        arc = centre + range_m * np.column_stack([np.sin(angles), np.cos(angles)])
        # A disc's arc runs from -180° to +180°: its ends meet, the ring is closed.
        ring = arc if full else np.vstack([centre, arc, centre])
        latlon = self.frame.to_wgs84(ring)
        ring_lonlat: list[list[float]] = np.round(latlon[:, ::-1], 7).tolist()
        return ring_lonlat

    # ------------------------------------------------------------------ actions

    async def act(self, verb: str, alert_id: str, body: ActBody) -> ActOutcome:
        """Record the action at once; forward it through the outbox to the centre."""
        if (body.assignee is None) == (verb == "assign"):
            return ActOutcome(422, None, "assignee is given with assign, and only with assign")
        if alert_id not in self.picture.alerts:
            return ActOutcome(404, None, f"unknown alert {alert_id!r}")
        at = datetime.fromtimestamp(self.clock(), UTC)
        try:
            record = self.picture.act(
                alert_id,
                verb,
                body.operator,
                at,
                wall=self.wall(),
                assignee=body.assignee,
                note=body.note,
            )
        except ActionRefusedError as exc:
            return ActOutcome(409, self.picture.alerts[alert_id].properties(), str(exc))
        mqtt = self.node.mqtt
        if mqtt is not None:
            from borderwatch.edge.centre import CentreTopics, OperatorRequest

            assert self.node.config.mqtt is not None
            request = OperatorRequest(
                alert_id=alert_id, operator=body.operator, assignee=body.assignee, note=body.note
            )
            topic = CentreTopics(self.node.config.mqtt.centre_id).command(verb)
            seq = mqtt.forward(
                topic, request.model_dump_json().encode(), msg_id=new_msg_id(), at=at
            )
            self._forwarded[seq] = alert_id
            record.pending = True
        log.info("console: %s %s by %s", verb, alert_id, body.operator)
        self.alert_changed(record)
        return ActOutcome(200, record.properties(), None)

    def tick(self) -> None:
        super().tick()
        self._check_forwarded()

    def _check_forwarded(self) -> None:
        """Alerts whose forwarded actions the broker has all taken are no longer pending."""
        mqtt = self.node.mqtt
        if not self._forwarded or mqtt is None:
            return
        done = [seq for seq in self._forwarded if mqtt.delivered(seq)]
        waiting = {self._forwarded[s] for s in self._forwarded if s not in done}
        for seq in done:
            alert_id = self._forwarded.pop(seq)
            record = self.picture.alerts.get(alert_id)
            if record is not None and record.pending and alert_id not in waiting:
                record.pending = False
                self.alert_changed(record)
