"""Migrations: `upgrade head` on an empty database gives exactly the schema the code uses."""

import itertools

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from pdp.store import Store
from pdp.store.migrate import alembic_config, head
from pdp.store.schema import metadata


def test_history_is_one_line_to_one_head():
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [head()]
    revisions = list(scripts.walk_revisions())
    assert revisions[-1].down_revision is None
    for newer, older in itertools.pairwise(revisions):
        assert newer.down_revision == older.revision


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_head_on_an_empty_database(backend, new_database, request):
    url = new_database("sqlite") if backend == "sqlite" else _empty_pg(request)
    store = Store.open(url)
    try:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert context.get_current_revision() == head()
            assert compare_metadata(context, metadata) == []
            assert set(inspect(connection).get_table_names()) >= set(metadata.tables)
        assert store.version() == 0
        Store.open(url).close()  # opening again is a no-op
        assert store.version() == 0
    finally:
        store.close()


def _empty_pg(request):
    import uuid

    pg = request.getfixturevalue("pg")
    name = f"empty_{uuid.uuid4().hex[:12]}"
    with pg.connect() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    request.addfinalizer(lambda: _drop(pg, name))
    return pg.store_url(name)


def _drop(pg, name):
    with pg.connect() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
