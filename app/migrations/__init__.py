"""The schema's Alembic migrations, shipped inside the package (``script_location`` is
``app:migrations``): :meth:`app.storage.Store.create_schema` runs them at start and
``losscast db upgrade`` on demand.

A change of schema is one new file in ``versions/`` (the next number; ``down_revision`` the
previous one), written by hand with ``alembic.op``, and the same table or column in
``app/storage.py`` in the same commit: ``tests/test_migrations.py`` fails while the two differ.
"""
