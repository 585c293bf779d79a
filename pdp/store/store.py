"""The store: connections, the object tree, columns, tags, permissions, jobs and requests.

`Store` opens a database (SQLite file by default, PostgreSQL for replicas), migrates it, and
hands out transactions: `store.read()` gives a `Reader`, `store.write()` a `Writer`. Every
write transaction increments the store version exactly once, at its start, and commits or rolls
back as a whole; the version feeds the PDP revision, so one write (a cascade, a whole sync) is
one revision.

Writers are serialised: on SQLite by `BEGIN IMMEDIATE`, on PostgreSQL by the row lock that
the version increment takes on the single `store_version` row (held until commit). A
read-modify-write inside one `write()` therefore never loses an update, whatever the number of
threads or replicas. Reads do not block and are not blocked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, update

from pdp.store import migrate
from pdp.store.base import version_of
from pdp.store.connections import Connections, ConnectionWrites
from pdp.store.engine import WRITE, create_store_engine
from pdp.store.jobs import Jobs, JobWrites
from pdp.store.legacy import Integrations, IntegrationWrites
from pdp.store.locks import job_lock
from pdp.store.model import JobState
from pdp.store.notify import NOTIFY_CHANNEL
from pdp.store.requests import Requests, RequestWrites
from pdp.store.schema import jobs, store_version
from pdp.store.secrets import Secrets
from pdp.store.tree import ObjectTree, TreeWrites
from pdp.store.treesync import SyncOutcome as SyncOutcome


class Store:
    """One store over one engine. Thread-safe: every transaction takes its own connection."""

    def __init__(self, engine: Engine, secrets: Secrets | None = None) -> None:
        self.engine = engine
        self.secrets = secrets or Secrets()
        # called with the new version once a write through this object has committed, in the
        # writer's thread (SQLite's only notification: the snapshot feed in the same process)
        self.committed: list[Callable[[int], None]] = []

    @classmethod
    def open(
        cls,
        url: str = "sqlite:///pdp-store.db",
        *,
        secret_key: str | bytes | None = None,
        upgrade: bool = True,
        **engine_options: Any,
    ) -> Store:
        """Open `url` (`sqlite:///path` or `postgresql+psycopg://...`) and bring its schema to
        the newest migration. `secret_key` is the operator's Fernet key for credentials."""
        engine = create_store_engine(url, **engine_options)
        if upgrade:
            migrate.upgrade(engine)
        return cls(engine, Secrets(secret_key))

    def close(self) -> None:
        self.engine.dispose()

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (what `open` does unless `upgrade=False`;
        the PDP calls it when a store it could not reach at start answers)."""
        migrate.upgrade(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def name(self) -> str:
        """The store's URL without its password (what the saved snapshot names as its store)."""
        return self.engine.url.render_as_string(hide_password=True)

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Reader]:
        """A read-only transaction over one consistent state of the store."""
        with self.engine.connect() as connection:
            if self.dialect == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            connection.info[WRITE] = False
            try:
                with connection.begin():
                    yield Reader(connection, self)
            finally:
                connection.info.pop(WRITE, None)

    @contextmanager
    def write(self) -> Iterator[Writer]:
        """A unit of work: all of it commits, with one version increment, or none of it."""
        with self.engine.connect() as connection:
            connection.info[WRITE] = True
            try:
                with connection.begin():
                    version = connection.execute(
                        update(store_version)
                        .where(store_version.c.id == 1)
                        .values(version=store_version.c.version + 1)
                        .returning(store_version.c.version)
                    ).scalar_one()
                    if self.dialect == "postgresql":  # delivered at commit, to LISTENers
                        connection.exec_driver_sql(
                            f"SELECT pg_notify('{NOTIFY_CHANNEL}', %(v)s)", {"v": str(version)}
                        )
                    yield Writer(connection, self, version)
            finally:
                connection.info.pop(WRITE, None)
        for listener in self.committed:
            listener(version)

    # --- version -----------------------------------------------------------------------------

    def version(self) -> int:
        """The store version: one indexed row, cheap enough to poll every second."""
        with self.engine.connect() as connection:
            connection.info[WRITE] = False
            try:
                with connection.begin():
                    return version_of(connection)
            finally:
                connection.info.pop(WRITE, None)

    def wait_for_version(self, after: int, timeout: float, interval: float = 0.2) -> int:
        """Poll until the version passes `after` or `timeout` seconds pass; the version."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.version()
            if current > after or time.monotonic() >= deadline:
                return current
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    def record_progress(self, job_id: str, stats: Mapping[str, Any], errors: Sequence[Any]) -> bool:
        """Record a running job's counts and errors so far, if it is still active; whether it
        was. Outside `write()` on purpose: progress is no registry content, and a version
        increment per tick would make every replica re-read the whole registry while a sync
        runs. The job's end is a `write()` as before."""
        with self.engine.connect() as connection:
            connection.info[WRITE] = True
            try:
                with connection.begin():
                    done = connection.execute(
                        update(jobs)
                        .where(jobs.c.id == job_id, jobs.c.state == JobState.ACTIVE.value)
                        .values(stats=dict(stats), errors=list(errors))
                    )
                    return bool(done.rowcount)
            finally:
                connection.info.pop(WRITE, None)

    # --- the job lock ------------------------------------------------------------------------

    def job_lock(self, connection_key: str, holder: str) -> AbstractContextManager[None]:
        """`with store.job_lock(key, job_id):` runs the body only in the one process that holds
        the lock of this connection; others get `LockHeld` at once. See `pdp.store.locks`."""
        return job_lock(self, connection_key, holder)


class Reader(Connections, ObjectTree, Jobs, Requests, Integrations):
    """Queries over one transaction. Obtain it from `Store.read()` (or as part of a `Writer`)."""


class Writer(TreeWrites, ConnectionWrites, JobWrites, RequestWrites, IntegrationWrites, Reader):
    """A `Reader` that also writes; obtain it from `Store.write()`. `version` is the store
    version this transaction publishes when it commits."""

    def __init__(self, connection: Connection, store: Store, version: int) -> None:
        super().__init__(connection, store)
        self.published_version = version
