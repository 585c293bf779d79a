"""Engines for the two backends, set up for the store's transaction discipline.

SQLite: the driver's own transaction handling is turned off so that the store says how each
transaction begins: `BEGIN IMMEDIATE` for writes (the write lock is taken at the start, so two
writers queue instead of one failing at commit), plain `BEGIN` for reads. WAL lets readers run
beside the writer; foreign keys are switched on (SQLite leaves them off).

PostgreSQL (psycopg 3): READ COMMITTED for writes (they serialise on the store version row,
see `Store.write`), REPEATABLE READ for reads so that a compile sees one consistent state.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

CONNECT_TIMEOUT = 10  # seconds (PostgreSQL)
WRITE = "pdp_store_write"  # Connection.info flag: the transaction about to begin writes


def create_store_engine(url: str, **options: Any) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite(url, **options)
    options.setdefault("pool_pre_ping", True)
    connect_args = options.pop("connect_args", {})
    connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT)  # a dead host: fail, not hang
    return create_engine(url, connect_args=connect_args, **options)


def _sqlite(url: str, **options: Any) -> Engine:
    connect_args = options.pop("connect_args", {})
    connect_args.setdefault("timeout", 60)
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(url, connect_args=connect_args, **options)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the "begin" hook below emits BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        write = connection.info.get(WRITE, True)  # unmarked (migrations): take the write lock
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def safe_url(url: str) -> str:
    """The store URL without its password, for logs and messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
