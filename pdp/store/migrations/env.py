"""Alembic environment: run against the connection `pdp.store.migrate` hands over.

No alembic.ini: the store configures Alembic in code (see `pdp/store/migrate.py`), so that
opening a store upgrades it and nothing depends on the working directory."""

from __future__ import annotations

from alembic import context

from pdp.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
