"""One centre alert per crossing, however many nodes raised it.

Two boats watching the same stretch of river both raise an alert when a skiff crosses it. The
centre shows operators one alert for that crossing, with both nodes' alerts as its members.

**Rule.** A node alert that the centre has not seen before joins an existing centre alert when
all of these hold:

* same kind (``crossing`` or ``approach``) and same direction (``left_to_right`` /
  ``right_to_left``);
* same border segment, or one within ``segment_slack`` of it (a crossing near a vertex of the
  border line may be put on either neighbouring segment by two nodes);
* no alert of the same node is already a member: a node that raised two alerts saw two targets;
* close in time: ``t`` is within ``window_s`` of the interval spanned by the centre alert's
  member observations;
* close in space: within ``radius_m`` of a member's latest position (local ENU metres);
* the same target as far as track-to-track fusion knows: when both the node alert's track and
  the centre alert's members have a centre track id, one of them must be it. Two boats 30 m
  apart that the fusion keeps as two tracks therefore make two alerts even when they cross
  together.

Among several centre alerts that qualify, the one sharing the centre track wins, then the
nearest, then the closest in time, then the oldest. A node alert seen before (same node and
alert id: its ``update`` and ``end`` events) maps to the centre alert it joined first. A centre
alert ends when every member has ended; it is forgotten ``retention_s`` (up to
:data:`SWEEP_S` more: memory is swept at most once per ``SWEEP_S`` of alert time) after its last
observation, which bounds memory.

Pure and deterministic: no clock, time is the alerts' own ``t`` (seconds on the deployment's
time axis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

#: Memory of old centre alerts is swept at most once per this many seconds of alert time: a
#: sweep looks at every remembered alert, which at tens of alerts a second cost more than the
#: rest of the deduplication.
SWEEP_S: Final = 1.0
#: Default prefix of centre alert ids: ``centre:17``.
CENTRE_NODE_ID: Final = "centre"


@dataclass(frozen=True, slots=True)
class NodeAlert:
    """What the deduplicator needs to know of one node alert event.

    Attributes:
        node_id: the raising node.
        alert_id: the node's alert id (stable across the alert's events).
        kind: ``crossing`` or ``approach``.
        direction: ``left_to_right`` or ``right_to_left`` of the border line's orientation.
        border_segment: index of the border segment in the deployment's border map.
        t: event time, seconds on the deployment's time axis.
        x_m, y_m: target position, local ENU metres.
        centre_track_id: the centre track its node track is fused into; None when unknown.
        ended: True for the alert's ``end`` event.
    """

    node_id: str
    alert_id: str
    kind: str
    direction: str
    border_segment: int
    t: float
    x_m: float
    y_m: float
    centre_track_id: int | None = None
    ended: bool = False


@dataclass(frozen=True, slots=True)
class DedupResult:
    """Where a node alert event went.

    Attributes:
        centre_alert_id: the centre alert it belongs to.
        is_new: True when this event created the centre alert.
        members: ``(node_id, alert_id)`` of the node alerts merged into it, in joining order.
        all_ended: True when every member has ended (the centre alert ends too).
    """

    centre_alert_id: str
    is_new: bool
    members: tuple[tuple[str, str], ...]
    all_ended: bool


@dataclass(slots=True)
class _Member:
    t: float
    x_m: float
    y_m: float
    centre_track_id: int | None
    ended: bool


@dataclass(slots=True)
class _CentreAlert:
    centre_alert_id: str
    serial: int
    kind: str
    direction: str
    segments: set[int]
    first_t: float
    last_t: float
    members: dict[tuple[str, str], _Member] = field(default_factory=dict)

    def nodes(self) -> set[str]:
        return {node for node, _ in self.members}

    def tracks(self) -> set[int]:
        return {m.centre_track_id for m in self.members.values() if m.centre_track_id is not None}

    def time_gap(self, t: float) -> float:
        return max(0.0, self.first_t - t, t - self.last_t)

    def distance(self, x_m: float, y_m: float) -> float:
        return min(math.hypot(m.x_m - x_m, m.y_m - y_m) for m in self.members.values())

    def result(self, is_new: bool) -> DedupResult:
        return DedupResult(
            centre_alert_id=self.centre_alert_id,
            is_new=is_new,
            members=tuple(self.members),
            all_ended=all(m.ended for m in self.members.values()),
        )


class AlertDeduplicator:
    """Maps node alerts to centre alerts, one per crossing (see the module docstring).

    Args:
        node_id: prefix of the centre alert ids, ``{node_id}:{serial}``.
        window_s: largest time gap (s) between alerts of one crossing.
        radius_m: largest distance (m) between alerts of one crossing.
        segment_slack: how many segments apart two alerts of one crossing may be.
        retention_s: a centre alert is forgotten this long (s) after its last observation.
    """

    def __init__(
        self,
        node_id: str = CENTRE_NODE_ID,
        *,
        window_s: float = 30.0,
        radius_m: float = 50.0,
        segment_slack: int = 1,
        retention_s: float = 600.0,
    ):
        if window_s < 0 or radius_m < 0 or segment_slack < 0 or retention_s < window_s:
            raise ValueError("need window_s, radius_m, segment_slack >= 0, retention_s >= window_s")
        self.node_id = node_id
        self.window_s = window_s
        self.radius_m = radius_m
        self.segment_slack = segment_slack
        self.retention_s = retention_s
        self._swept_t = -math.inf
        self._alerts: dict[str, _CentreAlert] = {}
        self._by_member: dict[tuple[str, str], str] = {}
        self._serial = 0

    def __len__(self) -> int:
        """Centre alerts currently remembered."""
        return len(self._alerts)

    def observe(self, alert: NodeAlert) -> DedupResult:
        """Place one node alert event; creates a centre alert when none matches."""
        if not all(math.isfinite(v) for v in (alert.t, alert.x_m, alert.y_m)):
            raise ValueError(f"alert {alert.alert_id}: t, x_m, y_m must be finite")
        if alert.t - self._swept_t >= SWEEP_S or alert.t < self._swept_t:
            self._swept_t = alert.t
            self._forget_before(alert.t - self.retention_s)
        key = (alert.node_id, alert.alert_id)
        known = self._by_member.get(key)
        if known is not None:
            joined = self._alerts[known]
            self._record(joined, key, alert)
            return joined.result(is_new=False)
        match = self._best_match(alert)
        is_new = match is None
        if match is None:
            self._serial += 1
            match = _CentreAlert(
                centre_alert_id=f"{self.node_id}:{self._serial}",
                serial=self._serial,
                kind=alert.kind,
                direction=alert.direction,
                segments=set(),
                first_t=alert.t,
                last_t=alert.t,
            )
            self._alerts[match.centre_alert_id] = match
        self._by_member[key] = match.centre_alert_id
        self._record(match, key, alert)
        return match.result(is_new=is_new)

    def _record(self, centre: _CentreAlert, key: tuple[str, str], alert: NodeAlert) -> None:
        held = centre.members.get(key)
        ended = alert.ended or (held is not None and held.ended)
        if held is None or alert.t >= held.t:
            centre.members[key] = _Member(
                alert.t, alert.x_m, alert.y_m, alert.centre_track_id, ended
            )
        else:  # an older event arriving late: keep the newer state, remember an end
            held.ended = ended
        centre.segments.add(alert.border_segment)
        centre.first_t = min(centre.first_t, alert.t)
        centre.last_t = max(centre.last_t, alert.t)

    def _matches(self, centre: _CentreAlert, alert: NodeAlert) -> bool:
        if centre.kind != alert.kind or centre.direction != alert.direction:
            return False
        if alert.node_id in centre.nodes():
            return False
        if min(abs(s - alert.border_segment) for s in centre.segments) > self.segment_slack:
            return False
        if centre.time_gap(alert.t) > self.window_s:
            return False
        tracks = centre.tracks()
        if alert.centre_track_id is not None and tracks and alert.centre_track_id not in tracks:
            return False
        return centre.distance(alert.x_m, alert.y_m) <= self.radius_m

    def _best_match(self, alert: NodeAlert) -> _CentreAlert | None:
        candidates = [c for c in self._alerts.values() if self._matches(c, alert)]
        if not candidates:
            return None
        return min(
            candidates,
            key=lambda c: (
                alert.centre_track_id is None or alert.centre_track_id not in c.tracks(),
                c.distance(alert.x_m, alert.y_m),
                c.time_gap(alert.t),
                c.serial,
            ),
        )

    def _forget_before(self, t: float) -> None:
        old = [cid for cid, c in self._alerts.items() if c.last_t < t]
        for cid in old:
            for key in self._alerts.pop(cid).members:
                del self._by_member[key]
