"""Schema migrations, run by the store at start-up.

The migration scripts ship inside the package (``migrations/versions``); :func:`upgrade` brings
a database from empty, or from any earlier revision, to the newest one, and does nothing on a
database that is already there. A database written by a newer borderwatch (a revision this code
does not know) is refused instead of being used with the wrong schema.
"""

from __future__ import annotations

import logging
from importlib.resources import files

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from borderwatch.edge.store.errors import StoreError

log = logging.getLogger(__name__)

#: Key of the PostgreSQL advisory lock held while migrating, so that two centre processes
#: starting together do not both create the tables. (An arbitrary constant: "bwstore".)
_PG_MIGRATION_LOCK = 0x6277_7374_6F72_65


def alembic_config() -> Config:
    """Alembic configuration pointing at the migration scripts shipped in the package."""
    config = Config()
    config.set_main_option("script_location", str(files("borderwatch.edge.store") / "migrations"))
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships a revision
        raise StoreError("no migration scripts found")
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: sa.Connection) -> None:
    """Migrate the database on ``connection`` to :func:`head_revision`, inside its transaction.

    Raises:
        StoreError: the database is at a revision this code does not know.
    """
    config = alembic_config()
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
    before = current_revision(connection)
    scripts = ScriptDirectory.from_config(config)
    if before is not None:
        try:
            scripts.get_revision(before)
        except CommandError as exc:
            raise StoreError(
                f"database schema revision {before!r} is unknown to this borderwatch "
                f"(newest known: {head_revision()!r}); was it written by a newer version?"
            ) from exc
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    after = current_revision(connection)
    if after != before:
        log.info("store schema migrated", extra={"from_revision": before, "to_revision": after})
