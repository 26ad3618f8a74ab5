"""The live picture as the console shows it: tracks with trails, own units and alerts with their
workflow status, as GeoJSON features (``docs/console.md``).

Pure and synchronous: the adapters (:mod:`.node`, :mod:`.centre`) feed it what the service
shows; it keeps bounded state and hands out JSON text. Track features are serialised once per
frame and kept as text, so a snapshot, ``GET /api/tracks`` and every WebSocket client share
them. Positions are WGS-84 degrees ``[lon, lat]``; angles are degrees clockwise from north.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from borderwatch.fusion.detections import FloatArray
from borderwatch.fusion.outputs import AlertEvent
from borderwatch.schema import Alert

#: Squared Mahalanobis radius of the 95 % region of a 2-D Gaussian (chi-square, 2 dof).
CHI2_95_2D: Final = 5.991464547107979
#: A closed alert stays in the current list this long, s (then only in the history).
CLOSED_SHOWN_S: Final = 600.0
#: Verbs of the operator actions, in workflow order.
VERBS: Final = ("acknowledge", "assign", "close")


def dumps(value: Any) -> str:
    """Compact JSON text."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def iso(t: datetime) -> str:
    """ISO 8601 UTC with a ``Z``, milliseconds."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------ maths


def error_ellipses(cov: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """95 % error ellipses of east/north position covariances ``(n, 2, 2)`` in m².

    Returns the semi-major and semi-minor axes (m) and the major axis' orientation (degrees
    clockwise from north, in [0, 180)). The eigenvalues of ``[[a, b], [b, c]]`` are
    ``(a+c)/2 ± sqrt(((a-c)/2)² + b²)``; the major axis lies at ``½·atan2(2b, a-c)`` from
    east, counter-clockwise. Axes are ``sqrt(χ²₀.₉₅ · λ)``.
    """
    cov = np.asarray(cov, dtype=np.float64).reshape(-1, 2, 2)
    a, c = cov[:, 0, 0], cov[:, 1, 1]
    b = 0.5 * (cov[:, 0, 1] + cov[:, 1, 0])
    mid = 0.5 * (a + c)
    rad = np.hypot(0.5 * (a - c), b)
    major = np.sqrt(CHI2_95_2D * np.maximum(mid + rad, 0.0))
    minor = np.sqrt(CHI2_95_2D * np.maximum(mid - rad, 0.0))
    from_east = 0.5 * np.degrees(np.arctan2(2.0 * b, a - c))
    return major, minor, np.mod(90.0 - from_east, 180.0)


def courses(vx: FloatArray, vy: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Speed (m/s) and course (degrees clockwise from north, [0, 360); 0 at rest) of east/north
    velocities."""
    vx = np.asarray(vx, dtype=np.float64)
    vy = np.asarray(vy, dtype=np.float64)
    speed = np.hypot(vx, vy)
    course = np.mod(np.degrees(np.arctan2(vx, vy)), 360.0)
    course = np.where(course >= 360.0, 0.0, course)  # -0.0 and rounding wrap to 360
    return speed, np.where(speed > 0.0, course, 0.0)


# ----------------------------------------------------------------------------------- tracks


@dataclass(frozen=True, slots=True)
class TrackRows:
    """One table of tracks to show, as parallel columns (length ``n``).

    ``lat``/``lon`` in degrees, ``vx``/``vy`` east/north m/s, ``cov`` ``(n, 2, 2)`` east/north
    m²; ``vessels`` are ``{"mmsi", "name", "callsign"}`` or None; ``members`` lists of
    ``{"node_id", "track_id"}`` (empty on a node).
    """

    time: datetime
    ids: Sequence[str]
    lat: FloatArray
    lon: FloatArray
    vx: FloatArray
    vy: FloatArray
    cov: FloatArray
    status: Sequence[str]
    cls: Sequence[str]
    cls_conf: FloatArray
    own: Sequence[bool]
    dark: Sequence[bool]
    vessels: Sequence[dict[str, Any] | None]
    members: Sequence[list[dict[str, str]]]


@dataclass(frozen=True, slots=True)
class TracksFrame:
    """What changed in one table: every track's feature (JSON text) and the ids that left."""

    time: datetime
    features: list[str]
    removed: list[str]

    def message(self, server_time: float) -> str:
        """The WebSocket ``tracks`` frame."""
        return (
            f'{{"type":"tracks","time":"{iso(self.time)}","server_time":{server_time:.3f},'
            f'"features":[{",".join(self.features)}],"removed":{dumps(self.removed)}}}'
        )


def _fixed(values: FloatArray, digits: int) -> list[str]:
    """Numbers as JSON text rounded to ``digits`` decimals (non-finite ones as 0)."""
    rounded = np.round(
        np.nan_to_num(np.asarray(values, dtype=np.float64), posinf=0, neginf=0), digits
    )
    return [repr(v) for v in rounded.tolist()]


_WORDS: dict[str, str] = {}


def _word(value: str) -> str:
    """A JSON string of a short vocabulary word (status, class), encoded once."""
    text = _WORDS.get(value)
    if text is None:
        text = dumps(value)
        if len(_WORDS) < 100:
            _WORDS[value] = text
    return text


# ----------------------------------------------------------------------------------- alerts


class ActionRefusedError(Exception):
    """An operator action the alert's status or the request does not allow (HTTP 409/422)."""


@dataclass(slots=True)
class AlertRecord:
    """One alert as the console shows it: the latest event and the operators' workflow."""

    alert_id: str
    alert: Alert
    raised_wall: float
    raised_at: datetime
    members: list[dict[str, str]] = field(default_factory=list)
    status: str = "open"
    acknowledged_by: str | None = None
    assignee: str | None = None
    closed_by: str | None = None
    closed_wall: float | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    pending: bool = False

    @property
    def track_open(self) -> bool:
        """Shown on its track: not ended by the raiser, not closed by an operator."""
        return self.status != "closed" and self.alert.event is not AlertEvent.END

    def properties(self) -> dict[str, Any]:
        """The alert's GeoJSON properties (the console contract's alert object)."""
        a, after = self.alert, self.alert.after
        return {
            "alert_id": self.alert_id,
            "kind": a.kind.value,
            "event": a.event.value,
            "priority": after.priority.value,
            "border_kind": a.border_kind.value,
            "direction": a.direction,
            "track_id": a.track_id,
            "class": after.class_hint.label.value,
            "p_cross": round(after.p_cross, 4),
            "confidence": round(after.confidence, 4),
            "time_to_cross_s": after.time_to_cross_s,
            "raised_at": iso(self.raised_at),
            "updated_at": iso(a.time),
            "raised_wall": round(self.raised_wall, 3),
            "status": self.status,
            "acknowledged_by": self.acknowledged_by,
            "assignee": self.assignee,
            "closed_by": self.closed_by,
            "members": self.members,
            "actions": self.actions,
            "pending": self.pending,
        }

    def feature(self) -> dict[str, Any]:
        """The alert as a GeoJSON Point feature at its latest position."""
        p = self.alert.after.position
        return {
            "type": "Feature",
            "id": self.alert_id,
            "geometry": {
                "type": "Point",
                "coordinates": [round(p.lon_deg, 6), round(p.lat_deg, 6)],
            },
            "properties": self.properties(),
        }

    def apply(
        self,
        verb: str,
        operator: str,
        at: datetime,
        *,
        assignee: str | None = None,
        note: str = "",
        wall: float,
    ) -> None:
        """Record an operator action as the centre's store does: ``acknowledge`` keeps the
        first acknowledgement; ``assign`` needs an assignee and acknowledges; ``close`` ends the
        workflow; nothing can be done to a closed alert.

        Raises:
            ActionRefusedError: unknown verb, missing or stray assignee, or the alert is closed.
        """
        if verb not in VERBS:
            raise ActionRefusedError(f"unknown action {verb!r}: use {', '.join(VERBS)}")
        if (assignee is None) == (verb == "assign"):
            raise ActionRefusedError("assignee is given with assign, and only with assign")
        if self.status == "closed":
            raise ActionRefusedError(f"alert {self.alert_id!r} was closed by {self.closed_by}")
        if self.acknowledged_by is None:
            self.acknowledged_by = operator
        if verb == "assign":
            self.assignee = assignee
            self.status = "assigned"
        elif verb == "close":
            self.closed_by = operator
            self.closed_wall = wall
            self.status = "closed"
        elif self.status == "open":
            self.status = "acknowledged"
        self.actions.append({"verb": verb, "operator": operator, "time": iso(at), "note": note})


# ------------------------------------------------------------------------------------ units


@dataclass(slots=True)
class Unit:
    """An own unit (a node's platform) as last heard of."""

    node_id: str
    lon: float | None = None
    lat: float | None = None
    time: datetime | None = None
    heading_deg: float | None = None
    speed_mps: float | None = None
    status: str | None = None
    self_: bool = False

    def feature(self) -> dict[str, Any] | None:
        """A GeoJSON Point feature, or None before a position is known."""
        if self.lon is None or self.lat is None:
            return None
        return {
            "type": "Feature",
            "id": self.node_id,
            "geometry": {"type": "Point", "coordinates": [round(self.lon, 6), round(self.lat, 6)]},
            "properties": {
                "node_id": self.node_id,
                "time": None if self.time is None else iso(self.time),
                "heading_deg": _rounded(self.heading_deg, 1),
                "speed_mps": _rounded(self.speed_mps, 2),
                "status": self.status,
                "self": self.self_,
            },
        }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def feature_collection(features: Iterable[str]) -> str:
    """A FeatureCollection of features given as JSON text."""
    return f'{{"type":"FeatureCollection","features":[{",".join(features)}]}}'


# ---------------------------------------------------------------------------------- picture


class LivePicture:
    """Tracks (with bounded trails), own units and alerts (at most ``history`` kept).

    Args:
        trail_points: positions kept per track (oldest dropped).
        history: alerts kept in memory; beyond it the oldest not open ones go first.
    """

    def __init__(self, *, trail_points: int = 60, history: int = 1000) -> None:
        self.trail_points = trail_points
        self.history = history
        self.time: datetime | None = None
        self.track_json: dict[str, str] = {}
        self._trails: dict[str, deque[str]] = {}
        self.units: dict[str, Unit] = {}
        self.alerts: OrderedDict[str, AlertRecord] = OrderedDict()
        self._track_alerts: dict[str, set[str]] = {}

    # ---------------------------------------------------------------------------- tracks

    def set_tracks(self, rows: TrackRows) -> TracksFrame:
        """Replace the tracks by ``rows`` (a full table); returns the frame to send.

        Vectorised where it counts: ellipses, speeds, courses and rounding for all rows at
        once; each feature is then one string template (no per-track ``json.dumps`` unless it
        carries a vessel, members or alerts) plus its trail's kept text.
        """
        major, minor, orient = error_ellipses(rows.cov)
        speed, course = courses(rows.vx, rows.vy)
        numbers = zip(
            _fixed(rows.lon, 6),
            _fixed(rows.lat, 6),
            _fixed(rows.cls_conf, 3),
            _fixed(speed, 2),
            _fixed(course, 1),
            _fixed(rows.vx, 2),
            _fixed(rows.vy, 2),
            _fixed(major, 1),
            _fixed(minor, 1),
            _fixed(orient, 1),
            strict=True,
        )
        time_text = iso(rows.time)
        seen: dict[str, str] = {}
        features = []
        for i, (lon, lat, conf, spd, crs, vx, vy, a, b, o) in enumerate(numbers):
            tid = rows.ids[i]
            point = f"[{lon},{lat}]"
            trail = self._trails.get(tid)
            if trail is None:
                trail = self._trails[tid] = deque(maxlen=self.trail_points)
            if self.trail_points and (not trail or trail[-1] != point):
                trail.append(point)
            jid = dumps(tid)
            vessel, members = rows.vessels[i], rows.members[i]
            alerts = self._track_alerts.get(tid)
            text = (
                f'{{"type":"Feature","id":{jid},"geometry":{{"type":"Point","coordinates":'
                f'{point}}},"properties":{{"track_id":{jid},"time":"{time_text}",'
                f'"status":{_word(rows.status[i])},"class":{_word(rows.cls[i])},'
                f'"class_confidence":{conf},"speed_mps":{spd},"course_deg":{crs},'
                f'"vx_mps":{vx},"vy_mps":{vy},"ellipse":{{"semi_major_m":{a},'
                f'"semi_minor_m":{b},"orientation_deg":{o}}},'
                f'"own":{"true" if rows.own[i] else "false"},'
                f'"dark":{"true" if rows.dark[i] else "false"},'
                f'"vessel":{"null" if vessel is None else dumps(vessel)},'
                f'"members":{dumps(members) if members else "[]"},'
                f'"alert_ids":{dumps(sorted(alerts)) if alerts else "[]"},'
                f'"trail":[{",".join(trail)}]}}}}'
            )
            seen[tid] = text
            features.append(text)
        removed = sorted(self.track_json.keys() - seen.keys())
        for tid in removed:
            self._trails.pop(tid, None)
        self.track_json = seen
        self.time = rows.time
        return TracksFrame(rows.time, features, removed)

    def tracks_collection(self) -> str:
        """Every track as a FeatureCollection (JSON text)."""
        return feature_collection(self.track_json.values())

    # ----------------------------------------------------------------------------- units

    def unit(self, node_id: str) -> Unit:
        """The unit of ``node_id`` (made on first use)."""
        unit = self.units.get(node_id)
        if unit is None:
            unit = self.units[node_id] = Unit(node_id)
        return unit

    def unit_features(self) -> list[dict[str, Any]]:
        """Own units with a known position, by id."""
        return [f for _, u in sorted(self.units.items()) if (f := u.feature()) is not None]

    # ---------------------------------------------------------------------------- alerts

    def alert_event(
        self, alert: Alert, wall: float, members: list[dict[str, str]] | None = None
    ) -> AlertRecord:
        """Take an alert event (new, update or end); returns its record (made on first sight,
        stamped with ``wall``, the Unix time it reached this service)."""
        record = self.alerts.get(alert.alert_id)
        if record is None:
            raised = alert.time if alert.before is None else alert.before.time
            record = AlertRecord(alert.alert_id, alert, raised_wall=wall, raised_at=raised)
            self.alerts[alert.alert_id] = record
            self._bound()
        elif (alert.time, _RANK[alert.event]) >= (record.alert.time, _RANK[record.alert.event]):
            record.alert = alert  # a late event of a crossing does not overwrite a later one
        if members is not None:
            record.members = members
        self._index(record)
        return record

    def act(
        self,
        alert_id: str,
        verb: str,
        operator: str,
        at: datetime,
        *,
        wall: float,
        assignee: str | None = None,
        note: str = "",
    ) -> AlertRecord:
        """Record an operator action on a held alert (see :meth:`AlertRecord.apply`).

        Raises:
            KeyError: no alert with this id is held.
            ActionRefusedError: the action is not allowed.
        """
        record = self.alerts[alert_id]
        record.apply(verb, operator, at, assignee=assignee, note=note, wall=wall)
        self._index(record)
        return record

    def set_status(
        self,
        alert_id: str,
        *,
        status: str,
        acknowledged_by: str | None,
        assignee: str | None,
        closed_by: str | None,
        action: dict[str, Any] | None,
        wall: float,
    ) -> AlertRecord | None:
        """Set a held alert's workflow as a store reported it (None when not held)."""
        record = self.alerts.get(alert_id)
        if record is None:
            return None
        record.status = status
        record.acknowledged_by = acknowledged_by
        record.assignee = assignee
        record.closed_by = closed_by
        if status == "closed" and record.closed_wall is None:
            record.closed_wall = wall
        record.pending = False
        if action is not None:
            record.actions.append(action)
        self._index(record)
        return record

    def current_alerts(self, wall: float) -> list[AlertRecord]:
        """Alerts not closed, or closed less than :data:`CLOSED_SHOWN_S` ago; newest first."""
        return [
            r
            for r in reversed(self.alerts.values())
            if r.closed_wall is None or wall - r.closed_wall < CLOSED_SHOWN_S
        ]

    def history_page(self, limit: int, before: datetime | None) -> list[AlertRecord]:
        """Held alerts, newest event first, older than ``before`` if given."""
        records = sorted(self.alerts.values(), key=lambda r: r.alert.time, reverse=True)
        if before is not None:
            records = [r for r in records if r.alert.time < before]
        return records[:limit]

    def _index(self, record: AlertRecord) -> None:
        track = record.alert.track_id
        ids = self._track_alerts.setdefault(track, set())
        if record.track_open:
            ids.add(record.alert_id)
        else:
            ids.discard(record.alert_id)
            if not ids:
                del self._track_alerts[track]

    def _bound(self) -> None:
        """Forget the oldest alerts beyond ``history``: ended or closed ones first."""
        excess = len(self.alerts) - self.history
        if excess <= 0:
            return
        done = [aid for aid, r in self.alerts.items() if not r.track_open][:excess]
        if len(done) < excess:
            chosen = set(done)
            done += [aid for aid in self.alerts if aid not in chosen][: excess - len(done)]
        for aid in done:
            record = self.alerts.pop(aid)
            ids = self._track_alerts.get(record.alert.track_id)
            if ids is not None:
                ids.discard(aid)
                if not ids:
                    del self._track_alerts[record.alert.track_id]


_RANK: Final = {AlertEvent.NEW: 0, AlertEvent.UPDATE: 1, AlertEvent.END: 2}
