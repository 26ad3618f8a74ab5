"""The control centre's alert and track store (SQLAlchemy Core; SQLite or PostgreSQL).

What it keeps:

* every alert event (``new`` / ``update`` / ``end``) exactly once, keyed by the message's
  ``msg_id``, with the full message;
* per alert id, the current state: the event with the greatest ``(time, event rank, msg_id)``
  (``new`` < ``update`` < ``end`` at equal times). It depends only on *which* events were
  received, never on the order they arrived in;
* operator actions (acknowledge, assign, close): who, when, to whom, with a note; and the
  resulting workflow status ``open`` → ``acknowledged`` → ``assigned`` → ``closed``;
* track histories: one row per received track message, idempotent on ``msg_id``.

The methods are synchronous, one short transaction each, and safe to call from several threads.
The centre's event loop calls them through :class:`AsyncAlertStore`, which runs each call in a
worker thread or in a process of its own (``store.process``): Alembic is synchronous anyway,
the synchronous drivers (``sqlite3``, ``psycopg``) are the most used ones, and each call is a
single short transaction, so one code path serves both the loop and the tools that use the
store outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from multiprocessing.context import BaseContext
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool

from borderwatch.closing import Closing
from borderwatch.edge.store import migrate
from borderwatch.edge.store.errors import AlertActionError, StoreError, UnknownAlertError
from borderwatch.edge.store.tables import (
    NAME_LEN,
    TEXT_LEN,
    alert_actions,
    alert_events,
    alerts,
    track_points,
)
from borderwatch.fusion.outputs import AlertEvent
from borderwatch.schema.messages import Alert, Track

log = logging.getLogger(__name__)

#: Order of events at the same time: an ``end`` is the last word on an alert.
_EVENT_RANK: Final = {AlertEvent.NEW: 0, AlertEvent.UPDATE: 1, AlertEvent.END: 2}

#: How long a SQLite writer waits for another one to finish, ms.
_SQLITE_BUSY_TIMEOUT_MS: Final = 10_000


class OperatorAction(StrEnum):
    """What an operator does to an alert."""

    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    CLOSE = "close"


class AlertStatus(StrEnum):
    """Where an alert stands in the operators' workflow."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert as the store knows it now.

    Attributes:
        alert_id: the alert's id (prefixed by the raising node or the centre).
        latest: the current event: the one with the greatest (time, event rank, msg_id).
        first_time: time of the earliest event received, UTC.
        first_received_at: when the store received the earliest-received event, UTC.
        event_count: distinct events received.
        status: operator workflow status.
        acknowledged_by, acknowledged_at: the first acknowledgement (assigning acknowledges).
        assignee, assigned_by, assigned_at: the latest assignment.
        closed_by, closed_at: the closure.
    """

    alert_id: str
    latest: Alert
    first_time: datetime
    first_received_at: datetime
    event_count: int
    status: AlertStatus
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    assignee: str | None
    assigned_by: str | None
    assigned_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None

    @property
    def ended(self) -> bool:
        """True when the raising node has ended the alert."""
        return self.latest.event is AlertEvent.END


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One operator action, as recorded."""

    alert_id: str
    action: OperatorAction
    operator: str
    at: datetime
    assignee: str | None
    note: str


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One stored track estimate: WGS-84 position, ENU velocity (m/s), state covariance.

    ``state_cov`` is over ``[x_m, y_m, vx_mps, vy_mps]`` in m², m²/s, m²/s².
    """

    track_id: str
    node_id: str
    time: datetime
    status: str
    lat_deg: float
    lon_deg: float
    alt_m: float | None
    vx_mps: float
    vy_mps: float
    state_cov: tuple[tuple[float, ...], ...]
    class_label: str
    class_confidence: float
    hits: int
    msg_id: str


#: Fields of the views that are read straight from the column of the same name.
_VIEW_COLUMNS: Final = tuple(
    f.name for f in fields(AlertView) if f.name not in ("latest", "status")
)
_POINT_COLUMNS: Final = tuple(f.name for f in fields(TrackPoint) if f.name != "state_cov")


def _columns(row: sa.Row[Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: row._mapping[name] for name in names}


# ------------------------------------------------------------------------------- engine


def engine_url(url: str) -> sa.URL:
    """The SQLAlchemy URL for a store URL: ``sqlite:///path.db``, ``sqlite://`` (memory) or
    ``postgresql://user@host/db`` (driven by psycopg 3)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(f"unsupported store backend {backend!r}: use sqlite:/// or postgresql://")


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    memory = url.database in (None, "", ":memory:")
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000},
        # One shared connection keeps an in-memory database alive across calls.
        poolclass=StaticPool if memory else None,
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, open transactions (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        if not memory:
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Take the write lock at BEGIN: a read-then-write transaction that upgrades its lock
        # later can fail with "database is locked" instead of waiting its turn.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _create_engine(url: str) -> sa.Engine:
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(parsed, pool_pre_ping=True)


def _utc(at: datetime, what: str) -> datetime:
    if at.tzinfo is None:
        raise AlertActionError(f"{what} must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(UTC)


def _name(value: str, what: str) -> str:
    name = value.strip()
    if not name or len(name) > NAME_LEN:
        raise AlertActionError(f"{what} must be 1 to {NAME_LEN} characters, got {value!r}")
    return name


def _order_key(time: datetime, event: str, msg_id: str) -> tuple[datetime, int, str]:
    return (time, _EVENT_RANK[AlertEvent(event)], msg_id)


# -------------------------------------------------------------------------------- store


@dataclass(frozen=True, slots=True)
class _AlertStatements:
    """The statements of recording an alert event, built once: SQLAlchemy then reuses their
    compiled form instead of building and keying a new statement for every event."""

    placeholder: sa.Executable
    lock: sa.Executable
    event: sa.Executable
    update: sa.Executable

    @classmethod
    def build(cls, insert: Any) -> _AlertStatements:
        return cls(
            placeholder=insert(alerts).on_conflict_do_nothing(index_elements=["alert_id"]),
            lock=sa.select(alerts)
            .where(alerts.c.alert_id == sa.bindparam("key"))
            .with_for_update(),
            event=insert(alert_events)
            .on_conflict_do_nothing(index_elements=["msg_id"])
            .returning(alert_events.c.msg_id),
            update=alerts.update().where(alerts.c.alert_id == sa.bindparam("key")),
        )


class AlertStore(Closing):
    """Alerts, their lifecycle, operator actions and track histories in one database.

    Open with :meth:`open`, which migrates the schema; close with :meth:`close` (or use it as a
    context manager).
    """

    def __init__(self, engine: sa.Engine):
        """Wrap an engine whose database is already migrated; use :meth:`open` instead."""
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._statements = _AlertStatements.build(self._insert)

    @classmethod
    def open(cls, url: str) -> AlertStore:
        """Connect to ``url`` and migrate its schema to the newest revision.

        Args:
            url: ``sqlite:///path.db`` (embedded), ``sqlite://`` (in memory) or
                ``postgresql://user:password@host:port/database`` (production).

        Raises:
            StoreError: bad URL, unreachable database, or a schema newer than this code.
        """
        engine = _create_engine(url)
        try:
            with engine.begin() as conn:
                migrate.upgrade(conn)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            raise StoreError(f"cannot open store {engine.url!r}: {exc.orig}") from exc
        except BaseException:
            engine.dispose()
            raise
        log.info("store opened", extra={"url": repr(engine.url)})
        return cls(engine)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreError(f"store unavailable: {exc.orig}") from exc

    # ------------------------------------------------------------------------ alerts

    def record_alert(self, alert: Alert, received_at: datetime) -> bool:
        """Record one alert event; False (and nothing changed) when its msg_id was seen before.

        Events may arrive in any order: the alert's current state is always its event with the
        greatest (time, event rank, msg_id), and ``first_time`` the earliest event time.

        Args:
            alert: the alert message, as received.
            received_at: when the centre received it (timezone-aware).
        """
        return self.record_alerts([(alert, received_at)])[0]

    def record_alerts(self, items: Sequence[tuple[Alert, datetime]]) -> list[bool]:
        """Record alert events in order, in one transaction (one commit, one disk sync);
        for each, what :meth:`record_alert` returns. A repeat is undone on its own (a
        savepoint), not with the others."""
        with self._transaction() as conn:
            return [self._record(conn, alert, _utc(r, "received_at")) for alert, r in items]

    def _record(self, conn: sa.Connection, alert: Alert, received: datetime) -> bool:
        st = self._statements
        with conn.begin_nested() as savepoint:
            conn.execute(
                st.placeholder,
                {
                    "alert_id": alert.alert_id,
                    "node_id": alert.provenance.node_id,
                    "kind": alert.kind.value,
                    "border_kind": alert.border_kind.value,
                    "border_segment": alert.border_segment,
                    "direction": alert.direction,
                    "track_id": alert.track_id,
                    "current_msg_id": None,
                    "lifecycle": alert.event.value,
                    "end_reason": None,
                    "priority": alert.priority.value,
                    "first_time": alert.time,
                    "last_time": alert.time,
                    "first_received_at": received,
                    "event_count": 0,
                    "status": AlertStatus.OPEN.value,
                },
            )
            # Row lock (PostgreSQL): concurrent events of one alert update it one at a time.
            row = conn.execute(st.lock, {"key": alert.alert_id}).one()
            inserted = conn.execute(
                st.event,
                {
                    "msg_id": alert.msg_id,
                    "alert_id": alert.alert_id,
                    "event": alert.event.value,
                    "time": alert.time,
                    "received_at": received,
                    "node_id": alert.provenance.node_id,
                    "payload": alert.model_dump(mode="json"),
                },
            ).first()
            if inserted is None:
                # Seen before: undo the placeholder row a first duplicate may have created.
                savepoint.rollback()
                log.debug("duplicate alert message", extra={"msg_id": alert.msg_id})
                return False
            newer = row.current_msg_id is None or _order_key(
                alert.time, alert.event, alert.msg_id
            ) > _order_key(row.last_time, row.lifecycle, row.current_msg_id)
            latest = alert if newer else None
            conn.execute(
                st.update,
                {
                    "key": alert.alert_id,
                    "event_count": row.event_count + 1,
                    "first_time": min(row.first_time, alert.time),
                    "current_msg_id": alert.msg_id if latest else row.current_msg_id,
                    "lifecycle": alert.event.value if latest else row.lifecycle,
                    "end_reason": (
                        (None if alert.end_reason is None else alert.end_reason.value)
                        if latest
                        else row.end_reason
                    ),
                    "priority": alert.priority.value if latest else row.priority,
                    "track_id": alert.track_id if latest else row.track_id,
                    "last_time": alert.time if latest else row.last_time,
                },
            )
        return True

    def act(
        self,
        alert_id: str,
        action: OperatorAction | str,
        operator: str,
        at: datetime,
        *,
        assignee: str | None = None,
        note: str = "",
    ) -> AlertView:
        """Record an operator's action on an alert and return the alert as it is then.

        ``acknowledge`` keeps the first acknowledgement (later ones are only logged as
        actions); ``assign`` needs ``assignee`` and also acknowledges an unacknowledged alert;
        ``close`` ends the workflow. Nothing can be done to a closed alert.

        Raises:
            UnknownAlertError: no alert with this id was ever recorded (nothing changed).
            AlertActionError: bad action, names or time, or the alert is closed.
        """
        try:
            what = OperatorAction(action)
        except ValueError as exc:
            choices = ", ".join(a.value for a in OperatorAction)
            raise AlertActionError(f"unknown action {action!r}: use {choices}") from exc
        who = _name(operator, "operator")
        when = _utc(at, "at")
        to = None if assignee is None else _name(assignee, "assignee")
        if (to is None) == (what is OperatorAction.ASSIGN):
            raise AlertActionError("assignee is given with assign, and only with assign")
        if len(note) > TEXT_LEN:
            raise AlertActionError(f"note is longer than {TEXT_LEN} characters")
        with self._transaction() as conn:
            row = conn.execute(
                sa.select(alerts).where(alerts.c.alert_id == alert_id).with_for_update()
            ).first()
            if row is None:
                raise UnknownAlertError(alert_id)
            if row.status == AlertStatus.CLOSED:
                raise AlertActionError(
                    f"alert {alert_id!r} was closed by {row.closed_by} at "
                    f"{row.closed_at.isoformat()}"
                )
            changes: dict[str, Any] = {}
            if row.acknowledged_at is None:
                changes.update(acknowledged_by=who, acknowledged_at=when)
            if what is OperatorAction.ASSIGN:
                changes.update(assignee=to, assigned_by=who, assigned_at=when)
            if what is OperatorAction.CLOSE:
                changes.update(closed_by=who, closed_at=when, status=AlertStatus.CLOSED.value)
            elif what is OperatorAction.ASSIGN:
                changes["status"] = AlertStatus.ASSIGNED.value
            elif row.status == AlertStatus.OPEN:
                changes["status"] = AlertStatus.ACKNOWLEDGED.value
            if changes:  # a repeated acknowledgement changes nothing but the action log
                conn.execute(alerts.update().where(alerts.c.alert_id == alert_id).values(**changes))
            conn.execute(
                alert_actions.insert().values(
                    alert_id=alert_id,
                    action=what.value,
                    operator=who,
                    at=when,
                    assignee=to,
                    note=note,
                )
            )
            view = self._views(conn, alerts.c.alert_id == alert_id, limit=1)[0]
        log.info(
            "operator action",
            extra={"alert_id": alert_id, "action": what.value, "operator": who},
        )
        return view

    def alert(self, alert_id: str) -> AlertView | None:
        """The alert with this id, or None."""
        with self._transaction() as conn:
            views = self._views(conn, alerts.c.alert_id == alert_id, limit=1)
        return views[0] if views else None

    def alerts(self, *, open_only: bool = False, limit: int = 100) -> list[AlertView]:
        """Alerts, most recent event first (ties by id); ``open_only`` leaves out closed ones.

        An alert that its node has ended stays open until an operator closes it.
        """
        if limit < 1:
            raise StoreError(f"limit must be at least 1, got {limit}")
        where = alerts.c.status != AlertStatus.CLOSED.value if open_only else sa.true()
        with self._transaction() as conn:
            return self._views(conn, where, limit=limit)

    def alert_events(self, alert_id: str) -> list[Alert]:
        """Every event received for an alert, in lifecycle order (time, event rank, msg_id)."""
        with self._transaction() as conn:
            rows = conn.execute(
                sa.select(alert_events.c.payload).where(alert_events.c.alert_id == alert_id)
            ).all()
        events = [Alert.model_validate(r.payload) for r in rows]
        return sorted(events, key=lambda a: _order_key(a.time, a.event, a.msg_id))

    def actions(self, alert_id: str) -> list[ActionRecord]:
        """Operator actions on an alert, in the order they were recorded."""
        with self._transaction() as conn:
            rows = conn.execute(
                sa.select(alert_actions)
                .where(alert_actions.c.alert_id == alert_id)
                .order_by(alert_actions.c.id)
            ).all()
        return [
            ActionRecord(
                alert_id=r.alert_id,
                action=OperatorAction(r.action),
                operator=r.operator,
                at=r.at,
                assignee=r.assignee,
                note=r.note,
            )
            for r in rows
        ]

    def _views(
        self, conn: sa.Connection, where: sa.ColumnElement[bool], *, limit: int
    ) -> list[AlertView]:
        query = (
            sa.select(alerts, alert_events.c.payload)
            .join(alert_events, alert_events.c.msg_id == alerts.c.current_msg_id)
            .where(where)
            .order_by(alerts.c.last_time.desc(), alerts.c.alert_id)
            .limit(limit)
        )
        return [
            AlertView(
                latest=Alert.model_validate(r.payload),
                status=AlertStatus(r.status),
                **_columns(r, _VIEW_COLUMNS),
            )
            for r in conn.execute(query)
        ]

    # ------------------------------------------------------------------------ tracks

    def record_tracks(self, tracks: Sequence[Track]) -> int:
        """Append track estimates to the histories; returns the rows added.

        A message already stored (same msg_id) is skipped, so a re-delivered batch adds nothing.
        """
        if not tracks:
            return 0
        rows = [
            {
                "msg_id": t.msg_id,
                "track_id": t.track_id,
                "node_id": t.provenance.node_id,
                "time": t.time,
                "status": t.status.value,
                "lat_deg": t.position.lat_deg,
                "lon_deg": t.position.lon_deg,
                "alt_m": t.position.alt_m,
                "vx_mps": t.velocity.vx_mps,
                "vy_mps": t.velocity.vy_mps,
                "state_cov": [list(r) for r in t.state_cov],
                "class_label": t.class_hint.label.value,
                "class_confidence": t.class_hint.confidence,
                "hits": t.hits,
            }
            for t in tracks
        ]
        statement = (
            self._insert(track_points)
            .on_conflict_do_nothing(index_elements=["msg_id"])
            .returning(track_points.c.id)
        )
        with self._transaction() as conn:
            return len(conn.execute(statement, rows).all())

    def track_history(self, track_id: str, since: datetime | None = None) -> list[TrackPoint]:
        """The stored estimates of one track in time order, from ``since`` on (inclusive)."""
        query = sa.select(track_points).where(track_points.c.track_id == track_id)
        if since is not None:
            query = query.where(track_points.c.time >= _utc(since, "since"))
        query = query.order_by(track_points.c.time, track_points.c.id)
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [
            TrackPoint(
                state_cov=tuple(tuple(float(v) for v in row) for row in r.state_cov),
                **_columns(r, _POINT_COLUMNS),
            )
            for r in rows
        ]

    def prune_tracks(self, before: datetime) -> int:
        """Delete track history older than ``before``; returns the rows deleted."""
        cutoff = _utc(before, "before")
        with self._transaction() as conn:
            result = conn.execute(track_points.delete().where(track_points.c.time < cutoff))
        return int(result.rowcount)


class AsyncAlertStore:
    """:class:`AlertStore` for the asyncio centre.

    Each call runs either in a worker thread of this process (``process=False``) or in a
    process of its own that holds the store (``process=True``). The process keeps the
    database driver's and SQLAlchemy's work off this interpreter: in a busy centre that work
    would otherwise hold the interpreter lock while the event loop is waiting to hand an alert
    on. Calls are carried out one at a time in the order they were made, as the centre's
    writers expect. Should the store's process die, the next call starts a new one (and
    reopens the database); the call that found it dead raises :class:`StoreError`.
    """

    def __init__(self, store: AlertStore | None, *, worker: _StoreWorker | None = None):
        if (store is None) == (worker is None):
            raise ValueError("give a store or a worker, not both")
        self._store = store
        self._worker = worker

    @classmethod
    async def open(cls, url: str, *, process: bool = False) -> AsyncAlertStore:
        """Open (and migrate) the store at ``url`` without blocking the event loop; with
        ``process``, in a process of its own."""
        if process:
            return cls(None, worker=await _StoreWorker.start(url))
        return cls(await asyncio.to_thread(AlertStore.open, url))

    @property
    def in_process(self) -> bool:
        """True when the store runs in a process of its own."""
        return self._worker is not None

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._worker is not None:
            return await self._worker.call(method, *args, **kwargs)
        assert self._store is not None
        return await asyncio.to_thread(getattr(self._store, method), *args, **kwargs)

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.stop()
        else:
            assert self._store is not None
            await asyncio.to_thread(self._store.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def record_alert(self, alert: Alert, received_at: datetime) -> bool:
        """See :meth:`AlertStore.record_alert`."""
        return bool(await self._call("record_alert", alert, received_at))

    async def record_alerts(self, items: Sequence[tuple[Alert, datetime]]) -> list[bool]:
        """See :meth:`AlertStore.record_alerts`."""
        stored: list[bool] = await self._call("record_alerts", list(items))
        return stored

    async def record_tracks(self, tracks: Sequence[Track]) -> int:
        """See :meth:`AlertStore.record_tracks`."""
        return int(await self._call("record_tracks", list(tracks)))

    async def act(
        self,
        alert_id: str,
        action: OperatorAction | str,
        operator: str,
        at: datetime,
        *,
        assignee: str | None = None,
        note: str = "",
    ) -> AlertView:
        """See :meth:`AlertStore.act`."""
        view: AlertView = await self._call(
            "act", alert_id, action, operator, at, assignee=assignee, note=note
        )
        return view

    async def alert(self, alert_id: str) -> AlertView | None:
        """See :meth:`AlertStore.alert`."""
        view: AlertView | None = await self._call("alert", alert_id)
        return view

    async def alerts(self, *, open_only: bool = False, limit: int = 100) -> list[AlertView]:
        """See :meth:`AlertStore.alerts`."""
        views: list[AlertView] = await self._call("alerts", open_only=open_only, limit=limit)
        return views

    async def track_history(self, track_id: str, since: datetime | None = None) -> list[TrackPoint]:
        """See :meth:`AlertStore.track_history`."""
        points: list[TrackPoint] = await self._call("track_history", track_id, since)
        return points

    async def alert_events(self, alert_id: str) -> list[Alert]:
        """See :meth:`AlertStore.alert_events`."""
        events: list[Alert] = await self._call("alert_events", alert_id)
        return events

    async def actions(self, alert_id: str) -> list[ActionRecord]:
        """See :meth:`AlertStore.actions`."""
        records: list[ActionRecord] = await self._call("actions", alert_id)
        return records


# ------------------------------------------------------------------- the store's process

#: How often a store process checks that the centre is still there, s.
_ORPHAN_CHECK_S: Final = 1.0

#: The store held by a store process, under "store" (set by :func:`_worker_open`).
_WORKER: dict[str, AlertStore] = {}


def _worker_open(url: str, centre_pid: int) -> None:
    """In the store's process: leave stopping to the centre (a Ctrl-C or a service manager's
    SIGTERM reaches the whole process group, and the centre still stores its last alerts
    before it closes the store), then open the store."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Ignoring SIGTERM, it must not outlive a centre that was killed outright. Its parent may
    # be a fork server that itself waits for it, so it watches the centre, not its parent.
    threading.Thread(
        target=_end_with_centre, args=(centre_pid,), name="store-orphan-watch", daemon=True
    ).start()
    _WORKER["store"] = AlertStore.open(url)


def _end_with_centre(pid: int) -> None:
    while _running(pid):
        time.sleep(_ORPHAN_CHECK_S)
    log.error("store process: the centre (pid %d) is gone; ending", pid)
    os._exit(1)


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: existence is all that can be told
    return not stat.rsplit(") ", 1)[-1].startswith("Z")


def _worker_call(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    store = _WORKER.get("store")
    if store is None:
        raise StoreError("the store process has no open store")
    return getattr(store, method)(*args, **kwargs)


def _worker_close() -> None:
    store = _WORKER.pop("store", None)
    if store is not None:
        store.close()


class _StoreWorker:
    """One process holding an :class:`AlertStore`; calls go through a one-worker pool, so
    they run in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    async def start(cls, url: str) -> _StoreWorker:
        worker = cls(url)
        await worker._open()
        return worker

    async def _open(self) -> None:
        # forkserver: the process is forked from a clean server, not from this one with its
        # event loop and threads; spawn where there is no forkserver.
        methods = multiprocessing.get_all_start_methods()
        context: BaseContext
        if "forkserver" in methods:
            server = multiprocessing.get_context("forkserver")
            # Forked with the store's modules already imported: a new store process is ready
            # at once (takes effect when the server starts, the first time).
            server.set_forkserver_preload([__name__])
            context = server
        else:
            context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._pool, _worker_open, self.url, os.getpid())
        except BaseException:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._pool is None:
            await self._open()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, _worker_call, method, args, kwargs)
        except BrokenProcessPool as exc:
            # Its work in flight is lost with it; the caller counts the error. The next call
            # starts a new process.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            log.error("store process died; a new one starts with the next call")
            raise StoreError(f"store process died during {method}") from exc

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        loop = asyncio.get_running_loop()
        with contextlib.suppress(BrokenProcessPool):
            await loop.run_in_executor(pool, _worker_close)
        await asyncio.to_thread(pool.shutdown, True)
