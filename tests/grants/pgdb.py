"""A throwaway PostgreSQL database for the grant sync tests that run for real: two login users
(alice and bob, suffixed), a role prefix for the managed roles, and everything dropped after."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg

from devstack.postgres import Postgres


@dataclass
class Database:
    server: Postgres
    database: str
    alice: str
    bob: str
    prefix: str  # the managed roles' rolePrefix
    tmp: Path

    def connect(self, user: str = "postgres") -> psycopg.Connection:
        return self.server.connect(self.database, user)


D = TypeVar("D", bound=Database)


@contextmanager
def throwaway(
    kind: type[D], pg: Postgres, name: str, tmp: Path, setup: Sequence[str]
) -> Iterator[D]:
    """A database `name_<suffix>` with the users, set up by the `setup` statements (as the
    superuser); dropped afterwards with the users and every role of its prefix."""
    suffix = secrets.token_hex(3)
    d = kind(pg, f"{name}_{suffix}", f"alice_{suffix}", f"bob_{suffix}", f"{name[0]}{suffix}", tmp)
    with pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{d.database}"')
        for user in (d.alice, d.bob):
            admin.execute(f'CREATE ROLE "{user}" LOGIN')
    try:
        with d.connect() as conn:
            for statement in setup:
                conn.execute(statement)
        yield d
    finally:
        with pg.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{d.database}" WITH (FORCE)')
            managed = admin.execute(
                "SELECT rolname FROM pg_roles WHERE left(rolname, %s) = %s",
                (len(d.prefix) + 1, f"{d.prefix}_"),
            ).fetchall()
            for (role,) in [*managed, (d.alice,), (d.bob,)]:
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')
