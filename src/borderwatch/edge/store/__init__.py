"""The control centre's store: alerts, their lifecycle, operator actions and track histories.

SQLite is the embedded default, PostgreSQL the production backend; both are reached through a
URL and migrated by the Alembic scripts shipped in ``migrations/`` when the store opens.
``docs/centre.md`` describes the schema.
"""

from borderwatch.edge.store.errors import AlertActionError, StoreError, UnknownAlertError
from borderwatch.edge.store.store import (
    ActionRecord,
    AlertStatus,
    AlertStore,
    AlertView,
    AsyncAlertStore,
    OperatorAction,
    TrackPoint,
)

__all__ = [
    "ActionRecord",
    "AlertActionError",
    "AlertStatus",
    "AlertStore",
    "AlertView",
    "AsyncAlertStore",
    "OperatorAction",
    "StoreError",
    "TrackPoint",
    "UnknownAlertError",
]
