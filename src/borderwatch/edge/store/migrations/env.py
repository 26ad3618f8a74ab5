"""Alembic environment of the borderwatch store.

:func:`borderwatch.edge.store.migrate.upgrade` passes an open connection in
``config.attributes["connection"]``. A developer running the ``alembic`` command (to write a
new revision, see ``docs/centre.md``) gives ``sqlalchemy.url`` in a small ini file instead.
Only online migrations are supported: the store always migrates a live database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from borderwatch.edge.store.tables import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; batch mode lets one script serve both backends.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url configured")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()
