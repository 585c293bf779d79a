"""The job lock: one runner per connection across every process that shares the store.

PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection held for the
job's duration, keyed by a 64-bit hash of the folded connection key. The server releases it when
the holder's session ends, so a crashed replica never leaves it behind.

SQLite: a row in `job_locks` with a lease. One SQLite file is one host, usually one process;
the lease (two minutes) frees the lock of a process that died holding it, and a thread of the
holder renews it every quarter lease while the body runs, however long the job takes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select, text, update

from pdp.objects.errors import LockHeld
from pdp.objects.keys import key_identity
from pdp.store.engine import WRITE
from pdp.store.model import utcnow
from pdp.store.schema import job_locks

if TYPE_CHECKING:
    from pdp.store.store import Store

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)


def lock_id(connection_key: str) -> int:
    """A signed 64-bit advisory lock key for a connection, stable across processes."""
    digest = hashlib.blake2b(f"pdp-job:{key_identity(connection_key)}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


@contextmanager
def job_lock(
    store: Store, connection_key: str, holder: str, lease: timedelta = LEASE
) -> Iterator[None]:
    """Hold the job lock of `connection_key` for the body, or raise `LockHeld` at once."""
    if store.dialect == "postgresql":
        with _advisory(store, connection_key):
            yield
    else:
        with _row_lock(store, connection_key, holder, lease):
            yield


@contextmanager
def _advisory(store: Store, connection_key: str) -> Iterator[None]:
    key = lock_id(connection_key)
    with store.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        if not got:
            raise LockHeld(
                "connectionKey", connection_key, "a job of this connection runs elsewhere"
            )
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


@contextmanager
def _row_lock(store: Store, connection_key: str, holder: str, lease: timedelta) -> Iterator[None]:
    name = f"job:{key_identity(connection_key)}"
    with store.engine.connect() as connection:
        connection.info[WRITE] = True
        try:
            with connection.begin():  # BEGIN IMMEDIATE: test and set under the write lock
                now = utcnow()
                row = connection.execute(select(job_locks).where(job_locks.c.name == name)).first()
                if row is not None and row.expires_at > now and row.holder != holder:
                    raise LockHeld(
                        "connectionKey",
                        connection_key,
                        f"a job of this connection runs ({row.holder})",
                        holder=row.holder,
                    )
                values = {"holder": holder, "acquired_at": now, "expires_at": now + lease}
                if row is None:
                    connection.execute(insert(job_locks).values(name=name, **values))
                else:
                    connection.execute(
                        update(job_locks).where(job_locks.c.name == name).values(**values)
                    )
        finally:
            connection.info.pop(WRITE, None)
    held = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(store, name, holder, lease, held), name=f"pdp-lease-{name}"
    )
    if lease > timedelta(0):
        renewer.start()
    try:
        yield
    finally:
        held.set()
        if renewer.is_alive():
            renewer.join()
        with store.engine.connect() as connection:
            connection.info[WRITE] = True
            try:
                with connection.begin():
                    connection.execute(
                        delete(job_locks).where(
                            job_locks.c.name == name, job_locks.c.holder == holder
                        )
                    )
            finally:
                connection.info.pop(WRITE, None)


def _renew(store: Store, name: str, holder: str, lease: timedelta, done: threading.Event) -> None:
    """Push the lease of `holder` forward every quarter lease until `done`. A renewal that
    fails (the file busy for long) is tried again at the next one; the lease has room for it."""
    while not done.wait(lease.total_seconds() / 4):
        try:
            with store.engine.connect() as connection:
                connection.info[WRITE] = True
                try:
                    with connection.begin():
                        connection.execute(
                            update(job_locks)
                            .where(job_locks.c.name == name, job_locks.c.holder == holder)
                            .values(expires_at=utcnow() + lease)
                        )
                finally:
                    connection.info.pop(WRITE, None)
        except Exception as error:
            log.warning("cannot renew the job lock %s of %s: %s", name, holder, error)
