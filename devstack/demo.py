"""`make trino`: the demo stack of `pdp up` (PDP and sidecar on config/) plus a real Trino whose
OPA access control asks that sidecar (`make trino ACCESS=plugin`: the product's own plugin,
installed beside Trino's stock plugins, asks it instead). The demo registry names catalogs
`hive` and `iceberg`: here they are memory catalogs holding those tables; `tpch` and
`postgresql` (a local PostgreSQL kept in .cache/demo) are unregistered. Ctrl-C stops everything
it started."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg

from devstack.postgres import Postgres, throwaway
from devstack.trino import (
    REPO,
    Opa,
    PdpPlugin,
    Trino,
    TrinoSpec,
    catalog_memory,
    catalog_postgresql,
)

STATE = REPO / ".cache" / "demo"
PG_DETAILS = STATE / "postgresql.env"  # the demo PostgreSQL's connection, for `. ` or `cat`
SIDECAR = "http://127.0.0.1:8181"
ADMIN = "trino-admin"  # matches immuta.user.admin in config/cluster/
TABLES = (
    "CREATE SCHEMA IF NOT EXISTS {c}.{s}",
    "CREATE TABLE IF NOT EXISTS {c}.{s}.{t} AS SELECT * FROM (VALUES "
    "(1, 'emea', 120.0), (2, 'amer', 80.5), (3, 'apac', 42.0)) AS v(id, region, amount)",
)
# The registry's tables, but `hive.staging.raw_orders` (inactive there): a table registered by
# hand and dropped since, which the README's upgrade walk-through resolves.
DEMO_TABLES = [
    ("hive", "sales", "orders"),
    ("hive", "sales", "customers"),
    ("hive", "sales", "orders_summary"),
    ("hive", "sales", "scratch"),
    ("iceberg", "marketing", "campaigns"),
    ("iceberg", "marketing", "clicks"),
]
EXAMPLES = """
Trino {url} asks the sidecar {sidecar} on every check. Try, as different users:

  scripts/trino-cli --server {server} --user alice --execute 'SELECT * FROM hive.sales.orders'
      alice is in group analysts: policy orders-readers grants READ
  scripts/trino-cli --server {server} --user carol --execute 'SELECT * FROM hive.sales.orders'
      Query failed: Access Denied: Cannot select from columns ... (no policy for carol)
  scripts/trino-cli --server {server} --user carol --execute 'SHOW TABLES FROM hive.sales'
      only `scratch` (inactive, so unregistered): registered tables carol may not read are hidden
  scripts/trino-cli --server {server} --user bob --execute \\
      "INSERT INTO hive.sales.orders VALUES (4, 'emea', 1.0)"      bob holds WRITE
  scripts/trino-cli --server {server} --user {admin} --execute 'SELECT * FROM hive.sales.customers'
      {admin} matches immuta.user.admin and bypasses policies

  .venv/bin/python -c "import trino; c = trino.dbapi.connect(host='127.0.0.1', \\
      port={port}, user='dana').cursor(); \\
      c.execute('SELECT count(*) FROM hive.sales.orders'); print(c.fetchall())"

{postgres}
Trino reads it as the catalog `postgresql`. Register it with the control plane (README,
"Connections and object sync"):

  export PDP_TOKEN=$(.venv/bin/pdp token --user gwen)
  .venv/bin/pdp connections register pg --technology postgresql --endpoint host={pg_host} \\
      --endpoint port={pg_port} --endpoint database=demo --credential user={pg_user}

Edit config/policies.yaml while it runs: the next query sees the change within a second.
Ctrl-C stops Trino, the sidecar, the PDP and PostgreSQL.
"""


def _wait_sidecar(pdp: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pdp.poll() is not None:
            raise SystemExit(f"`pdp up` exited with {pdp.returncode}; see its output above")
        try:
            if httpx.get(f"{SIDECAR}/health", timeout=1).json().get("pdp") == "connected":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"the sidecar at {SIDECAR} did not connect to the PDP in {timeout:.0f}s")


def _seed_postgres(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'demo'").fetchone():
            conn.execute("CREATE DATABASE demo")
    with psycopg.connect(conninfo.replace("dbname=postgres", "dbname=demo")) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS invoices (id int, amount numeric(10,2))")
        if not conn.execute("SELECT 1 FROM invoices LIMIT 1").fetchone():
            conn.execute("INSERT INTO invoices VALUES (1, 9.99), (2, 120.00)")


def write_pg_details(pg: Postgres, path: Path = PG_DETAILS) -> str:
    """Keep the demo PostgreSQL's connection details in `path` (libpq's variables: `set -a;
    . .cache/demo/postgresql.env` points psql at it) and return them as one line to print."""
    path.write_text(
        "# The demo PostgreSQL of `make trino`, while it runs (local connections: no password)\n"
        f"PGHOST={pg.host}\nPGPORT={pg.port}\nPGUSER={pg.user}\nPGDATABASE=demo\n"
    )
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return f"PostgreSQL: {pg.conninfo('demo')}, no password (also in {shown})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make trino", description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="Trino's HTTP port")
    parser.add_argument("--pg-port", type=int, default=54329, help="PostgreSQL's port")
    parser.add_argument(
        "--access",
        choices=("opa", "plugin"),
        default="opa",
        help="Trino's stock OPA plugin, or the product's plugin (trino-plugin/, `make plugin`)",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    STATE.mkdir(parents=True, exist_ok=True)
    print(f"starting PostgreSQL on 127.0.0.1:{args.pg_port} (data in {STATE / 'postgres'})")
    with throwaway(STATE / "postgres", args.pg_port) as pg:
        _seed_postgres(pg.conninfo())
        details = write_pg_details(pg)
        print(details)
        print("starting the PDP and the sidecar (pdp up)")
        pdp = subprocess.Popen([sys.executable, "-m", "pdp.cli", "up"], cwd=REPO)
        trino = None
        try:
            _wait_sidecar(pdp)
            print(f"starting Trino on 127.0.0.1:{args.port} (takes about half a minute)")
            trino = Trino(
                TrinoSpec(
                    root=STATE / "trino",
                    port=args.port,
                    access=PdpPlugin(SIDECAR) if args.access == "plugin" else Opa(SIDECAR),
                    groups={"analysts": ["alice"], "marketing": ["mia"]},
                    catalogs={
                        "hive": catalog_memory(),
                        "iceberg": catalog_memory(),
                        "tpch": {"connector.name": "tpch"},
                        "postgresql": catalog_postgresql(pg.jdbc_url("demo"), pg.user),
                    },
                )
            )
            trino.wait_ready(ADMIN)
            for catalog, schema, table in DEMO_TABLES:
                for sql in TABLES:
                    trino.query(ADMIN, sql.format(c=catalog, s=schema, t=table))
            print(
                EXAMPLES.format(
                    url=trino.url,
                    sidecar=SIDECAR,
                    server=f"127.0.0.1:{args.port}",
                    port=args.port,
                    admin=ADMIN,
                    postgres=details,
                    pg_host=pg.host,
                    pg_port=pg.port,
                    pg_user=pg.user,
                )
            )
            while not stop.is_set() and pdp.poll() is None and trino.popen.poll() is None:
                stop.wait(1)
        finally:
            print("stopping")
            if trino is not None:
                trino.stop()
            if pdp.poll() is None:
                pdp.send_signal(signal.SIGTERM)
                pdp.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
