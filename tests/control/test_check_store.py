"""`pdp check` with `store:` in pdp.yaml: it reaches the store without changing it, says where
its schema stands against the newest migration and how many connections it holds, and fails
naming the `store` setting when the store does not answer."""

from __future__ import annotations

import re
import time
import uuid

from alembic.script import ScriptDirectory

from devstack.configs import make_tree
from devstack.processes import free_port
from devstack.replica import REGISTER, STORE_KEY, Replica, write_world
from pdp.store import Store, migrate
from pdp.store.engine import create_store_engine
from tests.test_cli import pdp as run_pdp


def config_with_store(tmp_path, url: str) -> str:
    tree = make_tree(tmp_path)
    yaml = tree.pdp_yaml(50051)
    yaml.write_text(yaml.read_text() + f"store: {url}\n")
    return str(yaml)


def test_check_reports_a_migrated_store_and_its_connections(tmp_path, new_database):
    url = new_database("sqlite")
    store = Store.open(url)
    with store.write() as writer:
        writer.register_connection("hc", "trino")
        writer.register_connection("pg", "postgresql")
    store.close()
    result = run_pdp("check", "--config", config_with_store(tmp_path, url))
    assert result.returncode == 0, result.stderr
    assert f"reachable, schema {migrate.head()}, up to date, 2 connections" in result.stdout
    assert "ok: revision" in result.stdout


def test_check_says_how_many_migrations_a_postgresql_store_needs(tmp_path, pg):
    name = f"check_{uuid.uuid4().hex[:12]}"
    with pg.connect() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        url = pg.store_url(name)
        result = run_pdp("check", "--config", config_with_store(tmp_path, url))
        assert result.returncode == 0, result.stderr
        migrations = sum(
            1 for _ in ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions()
        )
        assert f"reachable, empty, {migrations} migrations to run" in result.stdout
        engine = create_store_engine(url)
        migrate.upgrade(engine, "0001")
        engine.dispose()
        result = run_pdp("check", "--config", config_with_store(tmp_path, url))
        assert result.returncode == 0, result.stderr
        behind = f"schema 0001, {migrations - 1} migrations behind {migrate.head()}"
        assert behind in result.stdout
        assert "0 connections" in result.stdout
        # nothing was migrated by the check itself
        engine = create_store_engine(url)
        assert migrate.status(engine).current == "0001"
        engine.dispose()
    finally:
        with pg.connect() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_check_fails_naming_the_store_setting_when_it_does_not_answer(tmp_path):
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://pdp:secret@127.0.0.1:{port}/pdp"
    config = config_with_store(tmp_path, url)
    result = run_pdp("check", "--config", config)
    assert result.returncode == 2
    assert re.search(r"pdp\.yaml:\d+: store: cannot reach", result.stderr), result.stderr
    assert f"postgresql+psycopg://pdp:***@127.0.0.1:{port}/pdp" in result.stderr
    assert "secret" not in result.stderr and "ok: revision" not in result.stdout


def test_check_of_a_store_file_not_created_yet(tmp_path):
    result = run_pdp("check", "--config", config_with_store(tmp_path, f"sqlite:///{tmp_path}/s.db"))
    assert result.returncode == 0, result.stderr
    assert "no database file yet" in result.stdout
    assert not (tmp_path / "s.db").exists()


def test_check_reports_what_the_running_pdp_serves(tmp_path, monkeypatch):
    """On the same files and store, `pdp check` prints the revision the PDP serves and counts
    the store's data sources with the files' (the worked registry: 1 active table); the
    admin API's /health lists the snapshot's warnings."""
    world = tmp_path / "world.json"
    write_world(world, {"cat": {"sales": {"invoices": [["id", "bigint"]]}}})
    pdp = Replica(tmp_path, f"sqlite:///{tmp_path}/store.db", world, "check")
    try:
        registered = pdp.api.post("/data/connection", json=REGISTER)
        assert registered.status_code == 201, registered.text
        pdp.wait_job(registered.json()["jobId"])
        pdp.sync("hc")
        before = pdp.revision()
        # the policy on the connection's tag selects nothing until a table is active
        nothing = "policy 'hc-readers' selects no data source (none of its `what` is registered)"
        assert pdp.api.get("/health").json()["warnings"] == [nothing]
        answer = pdp.api.put("/data/settings/hc/cat/sales/invoices", json={"isActive": True})
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 10
        while pdp.revision() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setenv("PDP_TEST_STORE_KEY", STORE_KEY)  # pdp.yaml names it, as the PDP has
        result = run_pdp("check", "--config", str(pdp.tree.root / "pdp.yaml"))
        assert result.returncode == 0, result.stderr
        assert "INFO" not in result.stderr, result.stderr  # no Alembic lines
        assert "up to date, 1 connection, 1 active data source" in result.stdout
        assert f"ok: revision {pdp.revision()}, 2 data sources, 3 policies" in result.stdout
        assert "warning:" not in result.stdout
        assert pdp.api.get("/health").json()["warnings"] == []
    finally:
        pdp.stop()
