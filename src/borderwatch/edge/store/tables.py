"""The store's tables, as SQLAlchemy Core metadata.

This module describes the schema the code reads and writes; the database gets it only through
the Alembic migrations in ``migrations/versions`` (a test checks that the two agree). Every
time column holds UTC; positions are WGS-84 degrees.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

#: Length bounds of the ids, from the wire schema (64-character node id, ``:``, 19 digits).
ID_LEN = 84
NODE_LEN = 64
MSG_ID_LEN = 26
NAME_LEN = 64
TEXT_LEN = 500


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC instant on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so the value is stored as naive
    UTC text (which sorts chronologically) and read back with ``tzinfo=UTC``. Naive datetimes
    are refused rather than guessed.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store times must be timezone-aware")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: SQLite gives auto-increment only to an ``INTEGER PRIMARY KEY``; PostgreSQL gets a bigint.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: Constraint names fixed by convention, so migrations can name what they later alter or drop.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.String(ID_LEN), primary_key=True),
    sa.Column("node_id", sa.String(NODE_LEN), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("border_kind", sa.String(16), nullable=False),
    sa.Column("border_segment", sa.Integer(), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("track_id", sa.String(ID_LEN), nullable=False),
    # The current state is the event with the greatest (time, event rank, msg_id).
    sa.Column("current_msg_id", sa.String(MSG_ID_LEN), nullable=True),
    sa.Column("lifecycle", sa.String(16), nullable=False),
    sa.Column("end_reason", sa.String(16), nullable=True),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("first_time", UtcDateTime(), nullable=False),
    sa.Column("last_time", UtcDateTime(), nullable=False),
    sa.Column("first_received_at", UtcDateTime(), nullable=False),
    sa.Column("event_count", sa.Integer(), nullable=False),
    # Operator workflow: open -> acknowledged -> assigned -> closed.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("acknowledged_by", sa.String(NAME_LEN), nullable=True),
    sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
    sa.Column("assignee", sa.String(NAME_LEN), nullable=True),
    sa.Column("assigned_by", sa.String(NAME_LEN), nullable=True),
    sa.Column("assigned_at", UtcDateTime(), nullable=True),
    sa.Column("closed_by", sa.String(NAME_LEN), nullable=True),
    sa.Column("closed_at", UtcDateTime(), nullable=True),
    sa.Index("ix_alerts_status_last_time", "status", "last_time"),
    sa.Index("ix_alerts_last_time", "last_time"),
)

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("msg_id", sa.String(MSG_ID_LEN), primary_key=True),
    sa.Column(
        "alert_id",
        sa.String(ID_LEN),
        sa.ForeignKey("alerts.alert_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("time", UtcDateTime(), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("node_id", sa.String(NODE_LEN), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Index("ix_alert_events_alert_time", "alert_id", "time"),
)

alert_actions = sa.Table(
    "alert_actions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "alert_id",
        sa.String(ID_LEN),
        sa.ForeignKey("alerts.alert_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("operator", sa.String(NAME_LEN), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("assignee", sa.String(NAME_LEN), nullable=True),
    sa.Column("note", sa.String(TEXT_LEN), nullable=False),
    sa.Index("ix_alert_actions_alert", "alert_id", "id"),
)

track_points = sa.Table(
    "track_points",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("msg_id", sa.String(MSG_ID_LEN), nullable=False, unique=True),
    sa.Column("track_id", sa.String(ID_LEN), nullable=False),
    sa.Column("node_id", sa.String(NODE_LEN), nullable=False),
    sa.Column("time", UtcDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("lat_deg", sa.Float(), nullable=False),
    sa.Column("lon_deg", sa.Float(), nullable=False),
    sa.Column("alt_m", sa.Float(), nullable=True),
    sa.Column("vx_mps", sa.Float(), nullable=False),
    sa.Column("vy_mps", sa.Float(), nullable=False),
    sa.Column("state_cov", sa.JSON(), nullable=False),
    sa.Column("class_label", sa.String(16), nullable=False),
    sa.Column("class_confidence", sa.Float(), nullable=False),
    sa.Column("hits", sa.Integer(), nullable=False),
    sa.Index("ix_track_points_track_time", "track_id", "time"),
    sa.Index("ix_track_points_time", "time"),
)
