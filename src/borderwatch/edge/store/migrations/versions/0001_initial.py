"""Alerts, their events, operator actions and track histories.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_ID = 84
_NODE = 64
_MSG = 26
_NAME = 64
_TEXT = 500


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(_ID), nullable=False),
        sa.Column("node_id", sa.String(_NODE), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("border_kind", sa.String(16), nullable=False),
        sa.Column("border_segment", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("track_id", sa.String(_ID), nullable=False),
        sa.Column("current_msg_id", sa.String(_MSG), nullable=True),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("end_reason", sa.String(16), nullable=True),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("first_time", _utc(), nullable=False),
        sa.Column("last_time", _utc(), nullable=False),
        sa.Column("first_received_at", _utc(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("acknowledged_by", sa.String(_NAME), nullable=True),
        sa.Column("acknowledged_at", _utc(), nullable=True),
        sa.Column("assignee", sa.String(_NAME), nullable=True),
        sa.Column("assigned_by", sa.String(_NAME), nullable=True),
        sa.Column("assigned_at", _utc(), nullable=True),
        sa.Column("closed_by", sa.String(_NAME), nullable=True),
        sa.Column("closed_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_status_last_time", "alerts", ["status", "last_time"])
    op.create_index("ix_alerts_last_time", "alerts", ["last_time"])

    op.create_table(
        "alert_events",
        sa.Column("msg_id", sa.String(_MSG), nullable=False),
        sa.Column("alert_id", sa.String(_ID), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("time", _utc(), nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("node_id", sa.String(_NODE), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("msg_id", name="pk_alert_events"),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.alert_id"],
            name="fk_alert_events_alert_id_alerts",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_alert_events_alert_time", "alert_events", ["alert_id", "time"])

    op.create_table(
        "alert_actions",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(_ID), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("operator", sa.String(_NAME), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("assignee", sa.String(_NAME), nullable=True),
        sa.Column("note", sa.String(_TEXT), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_actions"),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.alert_id"],
            name="fk_alert_actions_alert_id_alerts",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_alert_actions_alert", "alert_actions", ["alert_id", "id"])

    op.create_table(
        "track_points",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("msg_id", sa.String(_MSG), nullable=False),
        sa.Column("track_id", sa.String(_ID), nullable=False),
        sa.Column("node_id", sa.String(_NODE), nullable=False),
        sa.Column("time", _utc(), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_track_points"),
        sa.UniqueConstraint("msg_id", name="uq_track_points_msg_id"),
    )
    op.create_index("ix_track_points_track_time", "track_points", ["track_id", "time"])
    op.create_index("ix_track_points_time", "track_points", ["time"])


def downgrade() -> None:
    op.drop_table("track_points")
    op.drop_table("alert_actions")
    op.drop_table("alert_events")
    op.drop_table("alerts")
