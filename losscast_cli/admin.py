"""``losscast db`` and ``losscast keys``: administer the service's database directly (the
database ``--database-url`` or ``$DATABASE_URL`` names, as the service does), not over HTTP.

Heavy modules are imported by the command that runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse


def add_admin_commands(commands) -> None:
    """Register ``db`` and ``keys`` on the CLI's subcommands."""
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database-url", help="default: $DATABASE_URL or the SQLite file in ./var"
    )

    db = commands.add_parser("db", help="the database schema (Alembic migrations)")
    db_actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = db_actions.add_parser(
        "upgrade", parents=[database], help="create or upgrade the schema to the newest revision"
    )
    upgrade.set_defaults(handler=_db_upgrade)
    current = db_actions.add_parser(
        "current", parents=[database], help="print the revision the database is at"
    )
    current.set_defaults(handler=_db_current)


def _store(args):
    from app.settings import Settings
    from app.storage import Store

    return Store(args.database_url or Settings.from_env().database_url)


def _db_upgrade(args) -> int:
    store = _store(args)
    try:
        before = store.schema_revision()
        store.create_schema()
        after = store.schema_revision()
    finally:
        store.close()
    print(f"schema at revision {after} (was {before or 'not created'})")
    return 0


def _db_current(args) -> int:
    store = _store(args)
    try:
        print(store.schema_revision() or "not created")
    finally:
        store.close()
    return 0
