"""The console of the control centre: a :class:`~borderwatch.edge.centre.CentreView` of the
fused picture, centre alerts, node states and positions, and operator actions.

Operator actions go through :meth:`Centre.act` (stored with who and when); the store's
answer comes back to every view as an :class:`AlertAction`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import datetime
from typing import Any

import numpy as np

from borderwatch.config.web import WebSettings
from borderwatch.edge.centre import (
    AlertAction,
    Centre,
    CentreAlertEvent,
    OperatorRequest,
    Picture,
    ViewItem,
)
from borderwatch.edge.store import ActionRecord, AlertView
from borderwatch.edge.web.console import ActOutcome, Console
from borderwatch.edge.web.models import ActBody
from borderwatch.edge.web.picture import AlertRecord, TrackRows, iso
from borderwatch.schema import Detection, NodeState, PositionMeasurement
from borderwatch.schema.convert import COAST_AFTER_S

log = logging.getLogger(__name__)


class CentreConsole(Console):
    """The console of ``centre`` (it appends itself to ``centre.views``)."""

    name = "console"

    def __init__(self, centre: Centre, settings: WebSettings) -> None:
        super().__init__("centre", centre.centre_id, settings, centre.frame, clock=centre.clock)
        self.centre = centre
        self._picture: Picture | None = None
        self._member_of: dict[str, str] = {}  # node alert id -> centre alert id
        self.loaded = asyncio.Event()  # the open alerts of the store are shown
        centre.views.append(self)

    # ------------------------------------------------------------------ the centre's view

    def show(self, item: ViewItem) -> None:
        """Take one new item of the centre's picture (returns at once)."""
        if isinstance(item, Picture):
            self._picture = item
            self.mark_tracks()
        elif isinstance(item, CentreAlertEvent):
            members = [{"node_id": m.node_id, "alert_id": m.alert_id} for m in item.members]
            record = self.picture.alert_event(item.alert, self.wall(), members)
            for m in item.members:
                self._member_of[m.alert_id] = item.alert.alert_id
            excess = len(self._member_of) - 10 * self.settings.history
            for old in list(itertools.islice(self._member_of, max(0, excess))):
                del self._member_of[old]  # the oldest, as the picture forgets its alerts
            self.alert_changed(record)
        elif isinstance(item, AlertAction):
            self._action(item)
        elif isinstance(item, NodeState):
            unit = self.picture.unit(item.node_id)
            unit.status = item.status.value
            self.mark_units()
        elif isinstance(item, Detection) and isinstance(item.measurement, PositionMeasurement):
            p = item.measurement.position
            unit = self.picture.unit(item.provenance.node_id)
            unit.lon, unit.lat, unit.time = p.lon_deg, p.lat_deg, item.time
            self.mark_units()

    def _action(self, action: AlertAction) -> None:
        entry = {
            "verb": action.verb,
            "operator": action.operator,
            "time": iso(action.time),
            "note": "",
        }
        record = self.picture.set_status(
            action.alert_id,
            status=action.status,
            acknowledged_by=action.acknowledged_by,
            assignee=action.assignee,
            closed_by=action.closed_by,
            action=entry,
            wall=self.wall(),
        )
        if record is None:
            # An action on a node alert (forwarded from a boat's console): shown in the
            # centre alert it was merged into; the centre alert's own status is unchanged.
            centre_alert = self._member_of.get(action.alert_id)
            record = None if centre_alert is None else self.picture.alerts.get(centre_alert)
            if record is None:
                return
            record.actions.append({**entry, "note": f"{action.alert_id} ({action.status})"})
        self.alert_changed(record)

    # ------------------------------------------------------------------ tracks

    def track_rows(self) -> TrackRows | None:
        picture, self._picture = self._picture, None
        if picture is None:
            return None
        tracks = picture.tracks
        n = len(tracks)
        cov = np.array([t.cov_m2 for t in tracks], dtype=np.float64).reshape(n, 2, 2)
        late = [(picture.time - t.last_report_time).total_seconds() for t in tracks]
        return TrackRows(
            time=picture.time,
            ids=[t.track_id for t in tracks],
            lat=np.array([t.position.lat_deg for t in tracks], dtype=np.float64),
            lon=np.array([t.position.lon_deg for t in tracks], dtype=np.float64),
            vx=np.array([t.velocity.vx_mps for t in tracks], dtype=np.float64),
            vy=np.array([t.velocity.vy_mps for t in tracks], dtype=np.float64),
            cov=cov,
            status=["coasting" if s > COAST_AFTER_S else "confirmed" for s in late],
            cls=["unknown" if t.class_hint is None else t.class_hint.label.value for t in tracks],
            cls_conf=np.array(
                [0.0 if t.class_hint is None else t.class_hint.confidence for t in tracks]
            ),
            own=[False] * n,
            dark=[False] * n,
            vessels=[None] * n,
            members=[
                [{"node_id": m.node_id, "track_id": m.track_id} for m in t.members] for t in tracks
            ],
        )

    # ------------------------------------------------------------------ documents

    def broker(self) -> dict[str, Any]:
        return {"url": self.centre.config.mqtt.url, "connected": self.centre.connected}

    def node_states(self) -> list[dict[str, Any]]:
        return [s.model_dump(mode="json") for _, s in sorted(self.centre.node_states.items())]

    def flags(self) -> tuple[bool, bool]:
        states = list(self.centre.node_states.values())
        return (
            any(s.provenance.exercise for s in states),
            any(s.provenance.simulated for s in states),
        )

    async def history(self, limit: int, before: datetime | None) -> list[dict[str, Any]]:
        """Alerts from the store, newest first (centre alerts and node alerts)."""
        store = self.centre.store
        if store is None:
            return await super().history(limit, before)
        views = await store.alerts(limit=limit if before is None else min(10 * limit, 10_000))
        if before is not None:
            views = [v for v in views if v.latest.time < before]
        views = views[:limit]
        out = []
        for view in views:
            record = self._record_of(view)
            record.actions = _entries(await store.actions(view.alert_id))
            out.append(record.properties())
        return out

    def _record_of(self, view: AlertView) -> AlertRecord:
        held = self.picture.alerts.get(view.alert_id)
        return AlertRecord(
            view.alert_id,
            view.latest,
            raised_wall=view.first_received_at.timestamp(),
            raised_at=view.first_time,
            members=[] if held is None else list(held.members),
            actions=[] if held is None else list(held.actions),
            status=view.status.value,
            acknowledged_by=view.acknowledged_by,
            assignee=view.assignee,
            closed_by=view.closed_by,
        )

    # ------------------------------------------------------------------ actions

    async def act(self, verb: str, alert_id: str, body: ActBody) -> ActOutcome:
        """Carry the action out through :meth:`Centre.act` (the store records it)."""
        if (body.assignee is None) == (verb == "assign"):
            return ActOutcome(422, None, "assignee is given with assign, and only with assign")
        store = self.centre.store
        if store is None:
            return ActOutcome(503, None, "the centre's store is not open yet")
        if alert_id not in self.picture.alerts and await store.alert(alert_id) is None:
            return ActOutcome(404, None, f"unknown alert {alert_id!r}")
        reply = await self.centre.act(
            verb,
            OperatorRequest(
                alert_id=alert_id, operator=body.operator, assignee=body.assignee, note=body.note
            ),
        )
        record = self.picture.alerts.get(alert_id)
        if record is None:
            view = await store.alert(alert_id)
            record = None if view is None else self._record_of(view)
        alert = None if record is None else record.properties()
        if not reply.ok:
            return ActOutcome(409, alert, reply.error)
        if record is not None and body.note:
            record.actions[-1:] = [{**a, "note": body.note} for a in record.actions[-1:]]
            alert = record.properties()
        return ActOutcome(200, alert, None)

    async def run(self) -> None:
        """Send frames until cancelled; meanwhile load the open centre alerts from the store
        once it is open (a restarted centre's console shows them)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._load_open_alerts(), name="console-open-alerts")
            await super().run()

    async def _load_open_alerts(self) -> None:
        while (store := self.centre.store) is None:  # it opens as the centre starts
            await asyncio.sleep(0.05)
        try:
            views = await store.alerts(open_only=True, limit=self.settings.history)
            prefix = f"{self.id}:"
            for view in reversed(views):
                if not view.alert_id.startswith(prefix) or view.alert_id in self.picture.alerts:
                    continue
                record = self.picture.alert_event(view.latest, view.first_received_at.timestamp())
                record.raised_at = view.first_time
                record.status = view.status.value
                record.acknowledged_by = view.acknowledged_by
                record.assignee = view.assignee
                record.closed_by = view.closed_by
                record.actions = _entries(await store.actions(view.alert_id))
        except Exception as exc:  # the console goes on without them
            self.count("store")
            log.error("console: open alerts not loaded from the store: %s", exc)
        finally:
            self.loaded.set()


def _entries(actions: list[ActionRecord]) -> list[dict[str, Any]]:
    """Stored operator actions as the console shows them."""
    return [
        {"verb": a.action.value, "operator": a.operator, "time": iso(a.at), "note": a.note}
        for a in actions
    ]
