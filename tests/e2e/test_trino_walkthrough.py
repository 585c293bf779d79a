"""The README's control-plane walk-through, step by step with the CLI, against the run's real
Trino, PostgreSQL and sidecar (the run's PDP is swapped for one with a store, the admin API, the
real crawlers, the cluster's properties and Trino's catalog files, then put back):

1. register the PostgreSQL database (its Trino catalog is proposed from Trino's catalog files),
   see its whole tree, activate its schema: an analyst reads a table through Trino, carol is
   refused; a table created afterwards comes in with a sync of the connection, governed alike;
2. upgrade a legacy Trino integration declared in the registry YAML: list, start, validate (a
   user name alone on this cluster without authentication, checked against the PDP's
   clusterProperties), run, resolve the table dropped since it was registered, finalize, sync;
   the analyst still reads, carol is still refused."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import httpx

from devstack.configs import make_tree
from devstack.processes import free_port, start_pdp
from tests.e2e.conftest import E2E, PROPERTIES, eventually

ROOT = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "pdp.cli", "connections")
REGISTRY = """
connections:
  - name: legacy
    technology: trino
    status: active
    databases:
      - name: memory
        schemas:
          - name: sales
            tables: [orders, customers, gone]   # `gone` was dropped since
"""
POLICIES = """
policies:
  - name: orders-readers
    access: READ
    who: {users: [alice]}
    what: {dataSources: [legacy.memory.sales.orders]}
  - name: postgres-readers
    access: READ
    who: {users: [alice]}
    what: {tags: [Connections.PostgreSQL.pg]}
"""
USERS = """
users:
  alice: {}
  carol: {}
  gwen: {permissions: [GOVERNANCE, APPLICATION_ADMIN, CREATE_DATA_SOURCE]}
"""


def reads(e2e: E2E, user: str, sql: str) -> bool:
    try:
        e2e.query(user, sql)
    except Exception:
        return False
    return True


def sidecar_connected(e2e: E2E) -> bool:
    try:
        health = httpx.get(f"http://127.0.0.1:{e2e.sidecar_port}/health", timeout=2).json()
    except httpx.HTTPError:
        return False
    return bool(health.get("pdp") == "connected")


def test_the_readme_walk_through_against_the_real_trino(e2e: E2E, tmp_path, monkeypatch):
    (tmp_path / "config").mkdir()
    tree = make_tree(
        tmp_path / "config",
        registry=REGISTRY,
        policies=POLICIES,
        users=USERS,
        properties=PROPERTIES,
    )
    admin_port = free_port()
    config = tree.pdp_yaml(e2e.pdp_port)
    config.write_text(
        config.read_text()
        + f"clusterProperties: {tree.properties.name}\n"  # type: ignore[union-attr]
        + f"store: sqlite:///{tmp_path}/store.db\n"
        + f"admin: {{listen: '127.0.0.1:{admin_port}', trustUserHeader: true}}\n"
        + f"control: {{trinoCatalogFiles: '{e2e.trino.etc / 'catalog'}', "
        # the demo's PostgreSQL and Trino listen on loopback, which the default policy denies
        + "network: {allow: [127.0.0.0/8]}}\n"
    )
    credentials = ["--credential", f"user={e2e.pg.user}"]
    if e2e.pg.password:  # an external server (PDP_TEST_POSTGRES); the devstack one trusts
        monkeypatch.setenv("PDP_E2E_PG_PASSWORD", e2e.pg.password)
        credentials += ["--credential", "passwordEnv=PDP_E2E_PG_PASSWORD"]
    fresh = f"walk_{secrets.token_hex(3)}"
    url = f"http://127.0.0.1:{admin_port}"

    def pdp(*args: str) -> str:
        done = subprocess.run(
            [*CLI, "--url", url, "--as-user", "gwen", *args],
            text=True,
            capture_output=True,
            timeout=300,
            cwd=ROOT,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    e2e.pdp.stop()
    pdp_process = start_pdp(config, e2e.pdp_port)
    try:
        # 1. register, see the tree, activate, query, a new table, sync
        db = e2e.database
        registered = pdp(
            "register", "pg", "--technology", "postgresql", "--endpoint", f"host={e2e.pg.host}",
            "--endpoint", f"port={e2e.pg.port}", "--endpoint", f"database={db}", *credentials,
        )  # fmt: skip
        assert f"Trino catalogs: {db} -> postgresql" in registered
        assert "completed" in registered
        shown = pdp("tree", "pg", "--depth", "3")
        for name in (db, "public", "accounts", "payments", "notes"):
            assert name in shown, shown
        pdp("settings", f"pg/{db}/public", "--active", "true", "--activate-new", "true")
        accounts = "SELECT count(*) FROM postgresql.public.accounts"
        eventually(lambda: reads(e2e, "alice", accounts), 30)
        eventually(lambda: not reads(e2e, "carol", accounts), 30)
        e2e.denied("carol", accounts)
        assert "WARNING" not in pdp("status", "pg")  # governed in Trino: the catalog is mapped

        e2e.query("admin", f"CREATE TABLE postgresql.public.{fresh} AS SELECT 1 AS id")
        synced = pdp("sync", "pg")  # the connection: it descends into the active schema
        assert "completed" in synced and "table.added=1" in synced, synced
        created = f"SELECT id FROM postgresql.public.{fresh}"
        eventually(lambda: reads(e2e, "alice", created), 30)
        e2e.denied("carol", created)

        # 2. upgrade the legacy integration to the end
        orders = "SELECT count(*) FROM memory.sales.orders"
        eventually(lambda: reads(e2e, "alice", orders), 30)
        e2e.denied("carol", orders)
        listed = pdp("upgrade", "list")
        assert "legacy  (trino, 3 data sources)  not_started; next: start" in listed, listed
        pdp("upgrade", "start", "legacy", "tp")
        validated = pdp(
            "upgrade", "validate", "legacy", "--endpoint", "host=127.0.0.1",
            "--endpoint", f"port={e2e.trino.spec.port}", "--endpoint", "httpScheme=http",
            "--credential", "username=admin",
        )  # fmt: skip
        assert "ok   systemUser: the system user 'admin' matches" in validated, validated
        assert "legacy: validated" in validated
        ran = pdp("upgrade", "run", "legacy", "--yes")
        assert "legacy -> tp: partial" in ran, ran
        assert "memory.sales.gone: not_found" in ran
        assert reads(e2e, "alice", orders)  # no policy downtime
        resolved = pdp("upgrade", "resolve", "legacy", "memory.sales.gone", "--delete")
        assert "legacy: upgraded, 0 unresolved" in resolved, resolved
        finalized = pdp("upgrade", "finalize", "legacy")
        assert "finalized as connection tp" in finalized
        synced = pdp("sync", "tp")
        assert "completed" in synced, synced
        status = pdp("status", "tp/memory/sales/orders")
        assert "isActive: true" in status, status
        eventually(lambda: reads(e2e, "alice", orders), 30)
        e2e.denied("carol", orders)
    finally:
        pdp_process.stop()
        e2e.query("admin", f"DROP TABLE IF EXISTS postgresql.public.{fresh}")
        eventually(lambda: not sidecar_connected(e2e), 30)  # it noticed: no stale "connected"
        e2e.restart_pdp()
        eventually(lambda: sidecar_connected(e2e), 60)  # the next test's decisions need it
