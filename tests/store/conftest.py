"""A fresh store per test on each backend: an SQLite file, and a PostgreSQL database copied
from a migrated template (so each test starts empty without re-running migrations)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from pdp.store import Store

TEMPLATE = "pdp_store_template"


@pytest.fixture(scope="session")
def pg_template(pg) -> str:
    with pg.connect() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        admin.execute(f"CREATE DATABASE {TEMPLATE}")
    Store.open(pg.store_url(TEMPLATE)).close()
    return TEMPLATE


@pytest.fixture
def new_database(request, tmp_path) -> Iterator[Callable[[str], str]]:
    """`new_database(backend)` -> the URL of an empty, migrated database."""
    made: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path}/store{len(made)}_{uuid.uuid4().hex[:6]}.db"
        pg = request.getfixturevalue("pg")
        template = request.getfixturevalue("pg_template")
        name = f"store_{uuid.uuid4().hex[:16]}"
        with pg.connect() as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        made.append(name)
        return pg.store_url(name)

    yield make
    if made:
        pg = request.getfixturevalue("pg")
        with pg.connect() as admin:
            for name in made:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def store(backend, new_database) -> Iterator[Store]:
    opened = Store.open(new_database(backend))
    yield opened
    opened.close()
