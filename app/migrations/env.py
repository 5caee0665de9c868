"""Alembic's entry point: runs the migrations on the connection that
:meth:`app.storage.Store.create_schema` hands over (``config.attributes["connection"]``), or,
from the ``alembic`` command, on the database ``DATABASE_URL`` names (``app/settings.py``)."""

from __future__ import annotations

from alembic import context

from app.storage import Base, engine_for


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters a table by copying it (ALTER TABLE there cannot drop or change columns).
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main(config) -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from app.settings import Settings

    engine = engine_for(Settings.from_env().database_url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


# Alembic runs this module with a configured context; pytest's doctest collection imports it
# without one.
if getattr(context, "config", None) is not None:
    _main(context.config)
