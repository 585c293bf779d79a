"""One real Trino 476 at a time for the test run, with its access control pointed at the real
sidecar, which asks the real PDP; a memory, a tpch and a postgresql catalog (the throwaway
PostgreSQL of the run), and Trino's file group provider. The tests drive it with the `trino`
Python client as several users and assert what those users see.

Two access controls, the same sidecar and PDP behind them: Trino's stock OPA plugin (`opa`,
every file) and the product's own plugin (`plugin`, trino-plugin/, built by `make plugin`) for
the files in PLUGIN_FILES, those about what users see and are denied. Each of those tests runs
once per plugin (ids `[opa]` and `[plugin]`); the Trino of one is stopped before the other
starts. PDP_E2E_PLUGINS=opa runs the stock plugin alone."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from trino.exceptions import TrinoQueryError, TrinoUserError

from devstack.configs import ConfigTree, make_tree
from devstack.postgres import Postgres
from devstack.processes import Process, free_port, start_pdp, start_sidecar
from devstack.trino import (
    Opa,
    PdpPlugin,
    Trino,
    TrinoSpec,
    catalog_memory,
    catalog_postgresql,
)

# The files whose every test also runs through the product's plugin: decisions, listings,
# information_schema, writes and DDL, groups, policy and cluster-rule changes, row filters and
# masks, a 2,000-table listing, and the plugin's own cases. The others exercise the control
# plane, grant sync or the stock plugin's wiring through Trino and run once.
PLUGIN_FILES = {
    "test_trino_access.py",
    "test_trino_changes.py",
    "test_trino_data_policies.py",
    "test_trino_wide_schema.py",
}
ONLY_PLUGIN_FILES = {"test_trino_plugin.py"}  # the plugin's frozen backend and revocation
PLUGIN_MAX_STALE = 3.0  # pdp.max-stale-seconds: short, so the frozen-backend case is quick
ADMIN_USERS = "admin|svc_[a-z]+"
# Unregistered objects: anyone may read, create, write and own them (the demo's generous rules);
# registered ones: what a policy grants, up to OWN. Tests that need other rules edit the file.
PROPERTIES = f"""
immuta.allowed.immuta.datasource.operations=READ,WRITE,OWN
immuta.allowed.non.immuta.datasource.operations=READ,WRITE,CREATE,OWN
immuta.user.admin={ADMIN_USERS}
"""
# Groups live only in Trino's group file: a grant to `analysts` reaches alice only if Trino's
# groups reach the decision.
TRINO_GROUPS = {"analysts": ["alice"], "auditors": ["erin"]}
POLICIES = """
policies:
  - name: orders-readers
    access: READ
    who: {groups: [analysts]}
    what: {dataSources: [e2e.memory.sales.orders]}
  - name: orders-writers
    access: WRITE
    who: {users: [bob]}
    what: {dataSources: [e2e.memory.sales.orders]}
  - name: finance-by-attribute
    access: READ
    who: {attributes: {department: [finance]}}
    what: {tags: [Finance]}
  - name: accounts-readers
    access: READ
    who: {users: [alice]}
    what: {dataSources: [pg.{db}.public.accounts]}
  - name: payments-readers
    access: READ
    who: {users: [carol]}
    what: {dataSources: [pg.{db}.public.payments]}
  - name: accounts-writers
    access: WRITE
    who: {users: [bob]}
    what: {dataSources: [pg.{db}.public.accounts]}
"""
# alice's group is not here (it comes from Trino); grant sync needs every user it grants to.
USERS = """
users:
  alice: {}
  bob: {}
  carol: {}
  dana: {attributes: {department: [finance]}}
"""


def registry(db: str) -> str:
    return f"""
connections:
  - name: e2e
    technology: trino
    status: active
    databases:
      - name: memory
        schemas:
          - name: sales
            tables: [orders, customers]
          - name: hr
            tables: [{{name: salaries, tags: [Finance.Payroll]}}]
          - name: sample_schema  # test_trino_data_policies.py creates and drops these
            tables:
              - name: restricted_table
                columns: {{user_name: [PII.Name], user_phone: [PII.Phone]}}
              - unrestricted_table
              - typed_null
              - typed_hash
              - typed_constant
              - typed_reveal
              - typed_round
  - name: pg
    technology: postgresql
    status: active
    databases:
      - name: {db}
        trinoCatalog: postgresql
        schemas:
          - name: public
            tables: [accounts, payments]
"""


@dataclass
class E2E:
    plugin: str  # "opa" (the stock OPA plugin) or "plugin" (the product's own)
    tree: ConfigTree
    pg: Postgres
    database: str
    trino: Trino
    pdp: Process
    sidecar: Process
    pdp_port: int
    sidecar_port: int
    pg_users: dict[str, str]  # Trino user -> PostgreSQL login role

    def query(self, user: str, sql: str) -> list[list[object]]:
        return self.trino.query(user, sql)

    def column(self, user: str, sql: str) -> set[object]:
        return {row[0] for row in self.query(user, sql)}

    def denied(self, user: str, sql: str) -> TrinoUserError:
        """The query is refused as access denied (not failed for another reason)."""
        with pytest.raises(TrinoUserError) as refused:
            self.query(user, sql)
        error = refused.value
        assert error.error_name == "PERMISSION_DENIED", error
        assert "Access Denied" in error.message, error
        return error

    def fails(self, user: str, sql: str) -> TrinoQueryError:
        with pytest.raises(TrinoQueryError) as failed:
            self.query(user, sql)
        return failed.value

    def write_policies(self, text: str) -> None:
        self.tree.write("policies.yaml", text.replace("{db}", self.database))

    def write_properties(self, text: str) -> None:
        assert self.tree.properties is not None
        self.tree.write(self.tree.properties.name, text)

    def restart_pdp(self) -> None:
        self.pdp = start_pdp(self.tree.root / "pdp.yaml", self.pdp_port)

    def restart_sidecar(self) -> None:
        self.sidecar = start_sidecar(self.tree.root / "sidecar.yaml", self.sidecar_port)


def eventually(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check()` held; fails after `timeout`."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.05)


def _create_postgres_data(pg: Postgres, database: str, roles: dict[str, str]) -> None:
    with pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
        for role in roles.values():
            admin.execute(f'CREATE ROLE "{role}" LOGIN')
    with pg.connect(database) as conn:
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        conn.execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(12,2));"
            "INSERT INTO accounts VALUES (1, 'ann', 10.50), (2, 'ben', 20.00), (3, 'cy', 0);"
            "CREATE TABLE payments (id int, account int, amount numeric(12,2));"
            "INSERT INTO payments VALUES (1, 1, 5), (2, 2, 7);"
            "CREATE TABLE notes (id int, body text);"  # never registered
            "INSERT INTO notes VALUES (1, 'hello');"
        )


def _drop_postgres_data(pg: Postgres, database: str, roles: dict[str, str]) -> None:
    with pg.connect() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        managed = admin.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"{database}%",)
        ).fetchall()
        for role in [*(r for (r,) in managed), *roles.values()]:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def _create_memory_data(trino: Trino) -> None:
    for sql in (
        "CREATE SCHEMA memory.sales",
        "CREATE SCHEMA memory.hr",
        "CREATE TABLE memory.sales.orders AS SELECT * FROM (VALUES "
        "(1, 'emea', 100.0), (2, 'amer', 250.0), (3, 'apac', 75.5)) AS t(id, region, amount)",
        "CREATE TABLE memory.sales.customers AS SELECT * FROM (VALUES "
        "(1, 'ann', '555-0100'), (2, 'ben', '555-0101')) AS t(id, name, phone)",
        "CREATE TABLE memory.sales.scratch AS SELECT * FROM (VALUES (1)) AS t(x)",
        "CREATE TABLE memory.hr.salaries AS SELECT * FROM (VALUES "
        "('ann', 5000), ('ben', 6000)) AS t(name, salary)",
    ):
        trino.query("admin", sql)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "e2e" not in metafunc.fixturenames:
        return
    name = Path(str(metafunc.definition.fspath)).name
    wanted = os.environ.get("PDP_E2E_PLUGINS", "opa,plugin").split(",")
    if name in ONLY_PLUGIN_FILES:
        plugins = ["plugin"]
    elif name in PLUGIN_FILES:
        plugins = ["opa", "plugin"]
    else:
        plugins = ["opa"]
    plugins = [p for p in plugins if p in wanted]
    metafunc.parametrize("e2e", plugins, indirect=True, scope="session", ids=plugins)


@pytest.fixture(scope="session")
def e2e(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg: Postgres
) -> Iterator[E2E]:
    plugin = getattr(request, "param", "opa")
    root = tmp_path_factory.mktemp(f"e2e-{plugin}")
    suffix = secrets.token_hex(3)
    database = f"e2e_{suffix}"
    pg_users = {
        "alice": f"{database}_alice",
        "bob": f"{database}_bob",
        "carol": f"{database}_carol",
    }
    _create_postgres_data(pg, database, pg_users)
    (root / "config").mkdir()
    tree = make_tree(
        root / "config",
        registry=registry(database),
        policies=POLICIES.replace("{db}", database),
        users=USERS,
        properties=PROPERTIES,
    )
    pdp_port, sidecar_port, trino_port = free_port(), free_port(), free_port()
    pdp = start_pdp(tree.pdp_yaml(pdp_port), pdp_port)
    sidecar = None
    trino = None
    try:
        sidecar = start_sidecar(tree.sidecar_yaml(sidecar_port, pdp_port), sidecar_port)
        url = f"http://127.0.0.1:{sidecar_port}"
        trino = Trino(
            TrinoSpec(
                root=root / "trino",
                port=trino_port,
                access=PdpPlugin(url, PLUGIN_MAX_STALE) if plugin == "plugin" else Opa(url),
                groups=TRINO_GROUPS,
                catalogs={
                    "memory": catalog_memory(),
                    "tpch": {"connector.name": "tpch"},
                    "postgresql": catalog_postgresql(pg.jdbc_url(database), pg.user, pg.password),
                },
            )
        )
        trino.wait_ready("admin")
        _create_memory_data(trino)
        state = E2E(
            plugin, tree, pg, database, trino, pdp, sidecar, pdp_port, sidecar_port, pg_users
        )
        yield state
    finally:
        if trino is not None:
            trino.stop()
        # the tests may have restarted them: stop the current ones, and the first ones
        current = [state.sidecar, state.pdp] if "state" in locals() else []
        for process in (*current, sidecar, pdp):
            if process is not None:
                process.stop()
        _drop_postgres_data(pg, database, pg_users)


def targets_file(path: Path, e2e: E2E) -> Path:
    """Grant sync's targets: the run's PostgreSQL, managing the `pg` connection, with each
    Trino user logging in to PostgreSQL as the role in `e2e.pg_users`."""
    body = {
        "targets": [
            {
                "name": "local-pg",
                "platform": "postgresql",
                "connections": ["pg"],
                "rolePrefix": e2e.database,
                "dsn": e2e.pg.conninfo(),
                "users": e2e.pg_users,
            }
        ]
    }
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The first e2e test also waits for Trino to start: tens of seconds on 2 idle cores, minutes
    # on a loaded machine. Bounded all the same, above the suite's default.
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(600))
