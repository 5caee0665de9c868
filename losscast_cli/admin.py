"""``losscast db``, ``losscast keys`` and ``losscast worker``: work on the service's database
directly (the one ``--database-url`` or ``$DATABASE_URL`` names, as the service does), not over
HTTP.

Heavy modules are imported by the command that runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_admin_commands(commands) -> None:
    """Register ``db``, ``keys`` and ``worker`` on the CLI's subcommands."""
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

    worker = commands.add_parser(
        "worker",
        parents=[database],
        help="run fit jobs (POST /v1/fits with Prefer: respond-async) from the database",
    )
    worker.add_argument("--name", help="this worker's name in the jobs (default host:pid:random)")
    worker.add_argument(
        "--lease", type=float, help="seconds a job is held without renewal (default 30)"
    )
    worker.add_argument("--poll", type=float, help="seconds between polls of an empty queue")
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit")
    worker.add_argument(
        "--threads",
        type=int,
        help="threads each fit may use (default $LOSSCAST_WORKER_THREADS, 1; 0: the libraries' "
        "own defaults, every core)",
    )
    worker.set_defaults(handler=_worker)

    keys = commands.add_parser("keys", help="API keys (scopes read, write, admin)")
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_actions.add_parser(
        "create",
        parents=[database],
        help="make a key and print its token (once: only its hash is stored)",
    )
    create.add_argument("--name", required=True, help="who or what uses it (shown by list)")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=["read", "write", "admin"],
        help="repeatable; write implies read, admin implies write",
    )
    create.set_defaults(handler=_keys_create)
    listing = key_actions.add_parser("list", parents=[database], help="the keys (no tokens)")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    listing.set_defaults(handler=_keys_list)
    revoke = key_actions.add_parser("revoke", parents=[database], help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_keys_revoke)


def _store(args, *, upgrade: bool = False):
    from app.settings import Settings
    from app.storage import Store

    store = Store(args.database_url or Settings.from_env().database_url)
    if upgrade:
        store.create_schema()  # keys live in the schema's newest tables
    return store


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


def _key_fields(key) -> dict:
    return {
        "id": key.id,
        "name": key.name,
        "scopes": key.scopes,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def _keys_create(args) -> int:
    from app.auth import create_key

    store = _store(args, upgrade=True)
    try:
        key, token = create_key(store, args.name, args.scope)
    finally:
        store.close()
    print(token)
    print(
        f"key {key.id} ({key.name!r}, scopes {','.join(key.scopes)}): the line above is its "
        "token, shown this once (only its SHA-256 is stored)",
        file=sys.stderr,
    )
    return 0


def _keys_list(args) -> int:
    store = _store(args, upgrade=True)
    try:
        keys = [_key_fields(key) for key in store.list_api_keys()]
    finally:
        store.close()
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    for key in keys:
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        scopes = ",".join(key["scopes"])
        print(f"{key['id']}  {scopes:<16} {state:<40} {key['created_at']}  {key['name']}")
    if not keys:
        print("no API keys: the service is open to whoever reaches it (loopback by default)")
    return 0


def _keys_revoke(args) -> int:
    from app.errors import NotFound
    from losscast_cli.main import UsageError

    store = _store(args, upgrade=True)
    try:
        key = store.revoke_api_key(args.key_id)
    except NotFound as error:
        raise UsageError(f"{error}; `losscast keys list` shows the ids") from None
    finally:
        store.close()
    print(f"key {key.id} ({key.name!r}) revoked at {key.revoked_at.isoformat()}")
    return 0


#: The variables that size the thread pools a fit uses, read once when each library starts:
#: XLA's CPU client (``NPROC``; ``XLA_FLAGS`` such as ``intra_op_parallelism_threads`` do not
#: bound it in JAX 0.10) and the BLAS/OpenMP behind numpy and scipy.
THREAD_VARIABLES = ("NPROC", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_threads(threads: int) -> dict[str, str]:
    """Set :data:`THREAD_VARIABLES` to ``threads`` (those not set already) before JAX or numpy
    starts in this process, so that several workers on one machine share its cores instead of
    each running a pool as large as the machine; 0 leaves them alone. The variables set."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0: the libraries' defaults), got {threads}")
    if threads == 0:
        return {}
    started = [name for name in ("jax", "numpy") if name in sys.modules]
    if started:
        print(
            f"warning: {', '.join(started)} already imported: the thread limit needs a new process",
            file=sys.stderr,
        )
    chosen = {name: str(threads) for name in THREAD_VARIABLES if name not in os.environ}
    os.environ.update(chosen)
    return chosen


def _worker(args) -> int:
    import signal
    import threading

    from app.settings import Settings

    settings = Settings.from_env()
    # Before anything imports JAX or numpy: their thread pools are sized when they start.
    limit_threads(settings.worker_threads if args.threads is None else args.threads)

    from app.jobs import Worker
    from app.logs import configure_logging
    from app.warmup import configure_jax_cache

    configure_logging(settings.log_level, settings.log_format)
    configure_jax_cache(settings.jax_cache_dir)
    store = _store(args, upgrade=True)
    worker = Worker(store, args.name, lease=args.lease or settings.job_lease)
    try:
        if args.once:
            job = worker.run_one()
            print(f"{job.id} {job.status}" if job else "no job queued")
            return 0
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):  # finish the fit in hand, then stop
            signal.signal(signum, lambda *_: stop.set())
        worker.run_forever(poll=args.poll or settings.job_poll, stop=stop)
    finally:
        store.close()
    return 0
