"""Alembic, configured in code: `upgrade(engine)` brings a database to the newest schema."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade to `revision`. On PostgreSQL an advisory lock keeps replicas that start
    together from running the same migration twice."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7362512400151)")
        command.upgrade(alembic_config(connection), revision)


def head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True)
class SchemaStatus:
    """What `pdp check` says of a store: its schema revision against the newest migration,
    and how many connections it holds (None before the first migration)."""

    current: str | None  # None: an empty database (the first start migrates it)
    head: str
    pending: int  # migrations `upgrade head` would run
    connections: int | None

    @property
    def up_to_date(self) -> bool:
        return self.pending == 0


def status(engine: Engine) -> SchemaStatus:
    """Connect (raises the driver's error if the store does not answer) and read the schema
    revision Alembic recorded; nothing is written."""
    script = ScriptDirectory.from_config(alembic_config())
    newest = head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        count = None
        if current is not None and inspect(connection).has_table("connections"):
            count = connection.execute(text("SELECT count(*) FROM connections")).scalar_one()
        connection.rollback()
    pending = sum(1 for _ in script.iterate_revisions(newest, current))
    return SchemaStatus(current, newest, pending, count)
