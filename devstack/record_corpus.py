"""Record the request bodies a real Trino 476 sends to its OPA access control, as test fixtures.

`python -m devstack.record_corpus` starts the real PDP and sidecar on the configuration below, a
recording HTTP server in front of the sidecar (it keeps every body, then answers with the
sidecar's answer, so that queries proceed as they would), and Trino pointed at that server: once
with the plugin's batch endpoints (the e2e tests' configuration), once without them (one request
per filtered item, one `columnMask` request per column). In each it runs STATEMENTS as several
users, then writes tests/fixtures/trino-opa/476/, one JSON Lines file per endpoint: each distinct
body once, with its operation, its endpoint and the first statement that sent it, sorted; plus
statements.jsonl, what ran and how it ended. Nothing volatile is kept: a `queryId` (Trino 477+)
is dropped, and statements that fail for other reasons than access are listed as such.

The replay (tests/sidecar/test_corpus_replay.py) serves the same configuration (imported from
here) and checks every recorded body against the pure core."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from trino.exceptions import TrinoQueryError

from devstack.configs import make_tree
from devstack.processes import free_port, start_pdp, start_sidecar
from devstack.trino import (
    REPO,
    VERSION,
    Opa,
    Trino,
    TrinoSpec,
    catalog_memory,
    catalog_postgresql,
)

FIXTURES = REPO / "tests" / "fixtures" / "trino-opa" / VERSION
PREFIX = "/v1/data/trino/"

# What the sidecar serves while recording, and again when the replay checks the bodies.
REGISTRY = """
connections:
  - name: rec
    technology: trino
    status: active
    databases:
      - name: memory
        schemas:
          - name: sales
            tables: [orders, customers, orders_view]
          - name: hr
            tables: [{name: salaries, tags: [Finance.Payroll]}]
          - name: sample_schema
            tables:
              - name: restricted_table
                columns: {user_name: [PII.Name], user_phone: [PII.Phone]}
"""
POLICIES = """
policies:
  - {name: orders-readers, access: READ, who: {groups: [analysts]},
     what: {dataSources: [rec.memory.sales.orders, rec.memory.sales.orders_view]}}
  - {name: orders-writers, access: WRITE, who: {users: [bob]},
     what: {dataSources: [rec.memory.sales.orders]}}
  - {name: payroll-readers, access: READ, who: {users: [carol]}, what: {tags: [Finance]}}
  - {name: sample-readers, access: READ, who: {anyone: true},
     what: {schemas: [rec.memory.sample_schema]}}
masks:
  - name: name-last-3
    columns: {tags: [PII.Name]}
    what: {dataSources: [rec.memory.sample_schema.restricted_table]}
    mask: {keepLast: 3}
  - name: phone-null
    columns: {names: [user_phone]}
    what: {dataSources: [rec.memory.sample_schema.restricted_table]}
    mask: null
rowFilters:
  - name: no-customers
    what: {dataSources: [rec.memory.sample_schema.restricted_table]}
    where: "user_type <> 'customer'"
    exceptFor: {users: [bob]}
"""
USERS = """
users:
  alice: {}
  bob: {}
  carol: {}
"""
# Unregistered objects: anyone may do anything (so that DDL checks get as far as they can).
PROPERTIES = """
immuta.allowed.immuta.datasource.operations=READ,WRITE,OWN
immuta.allowed.non.immuta.datasource.operations=READ,WRITE,CREATE,OWN
immuta.user.admin=admin
"""
TRINO_GROUPS = {"analysts": ["alice"], "auditors": ["carol"]}
CATALOGS = {
    "memory": catalog_memory(),
    "tpch": {"connector.name": "tpch"},
    # Never connected to (no statement reads it): it has session properties to set.
    "postgresql": catalog_postgresql("jdbc:postgresql://127.0.0.1:9/none", "none"),
}

ADMIN = "admin"
# Run as ADMIN before the others; the memory catalog starts empty with every Trino.
SETUP = [
    "CREATE SCHEMA memory.sales",
    "CREATE SCHEMA memory.hr",
    "CREATE SCHEMA memory.sample_schema",
    "CREATE TABLE memory.sales.orders AS SELECT * FROM (VALUES "
    "(1, 'emea', 100.0), (2, 'amer', 250.0)) AS t(id, region, amount)",
    "CREATE TABLE memory.sales.customers (id integer, name varchar, phone varchar)",
    "INSERT INTO memory.sales.customers VALUES (1, 'ann', '555-0100')",
    "CREATE VIEW memory.sales.orders_view AS SELECT id, region FROM memory.sales.orders",
    "CREATE TABLE memory.hr.salaries AS SELECT * FROM (VALUES ('ann', 5000)) AS t(name, salary)",
    "CREATE TABLE memory.sample_schema.restricted_table "
    "(user_type varchar, user_name varchar(20), user_phone integer)",
    "INSERT INTO memory.sample_schema.restricted_table VALUES "
    "('customer', 'customer_one', 101), ('partner', 'partner_one', 104)",
    "CREATE FUNCTION memory.sales.twice(x bigint) RETURNS bigint RETURN x * 2",
    "CREATE VIEW memory.sales.twice_view AS SELECT memory.sales.twice(id) AS d "
    "FROM memory.sales.orders",
]
# Run as each of USERS_RUN in turn; {u} is the user, for objects of their own.
STATEMENTS = [
    "SELECT 1",
    "SHOW CATALOGS",
    "SHOW SCHEMAS FROM memory",
    "SHOW TABLES FROM memory.sales",
    "SHOW COLUMNS FROM memory.sales.orders",
    "SHOW CREATE SCHEMA memory.sales",
    "SHOW CREATE TABLE memory.sales.orders",
    "SHOW CREATE VIEW memory.sales.orders_view",
    "SHOW FUNCTIONS FROM memory.sales",
    "SHOW CREATE FUNCTION memory.sales.twice",
    "SHOW SESSION",
    "SHOW STATS FOR memory.sales.orders",
    "SELECT table_schema, table_name FROM memory.information_schema.tables",
    "SELECT table_name, column_name FROM memory.information_schema.columns "
    "WHERE table_schema = 'sales'",
    "SELECT schema_name FROM memory.information_schema.schemata",
    "SELECT * FROM memory.sales.orders",
    "SELECT count(*) FROM memory.sales.orders WHERE region = 'emea'",
    "SELECT * FROM memory.sales.orders_view",
    "SELECT o.id, c.name FROM memory.sales.orders o JOIN memory.sales.customers c ON o.id = c.id",
    "SELECT * FROM memory.hr.salaries",
    "SELECT user_type, user_name, user_phone FROM memory.sample_schema.restricted_table",
    "SELECT count(*) FROM memory.sample_schema.restricted_table",
    "SELECT memory.sales.twice(21)",
    "SELECT * FROM memory.sales.twice_view",
    "SELECT * FROM tpch.tiny.nation WHERE nationkey < 3",
    "SELECT * FROM TABLE(system.builtin.sequence(start => 1, stop => 3))",
    "SELECT node_id FROM system.runtime.nodes",
    "SELECT count(*) FROM system.runtime.queries",
    "EXPLAIN SELECT * FROM memory.sales.orders",
    "SET SESSION query_max_run_time = '1h'",
    "SET SESSION postgresql.join_pushdown_enabled = false",
    "SET SESSION AUTHORIZATION alice",
    "INSERT INTO memory.sales.orders VALUES (9, 'emea', 1.0)",
    "UPDATE memory.sales.orders SET amount = 2.0 WHERE id = 9",
    "DELETE FROM memory.sales.orders WHERE id = 9",
    "MERGE INTO memory.sales.orders o USING memory.sales.customers c ON o.id = c.id "
    "WHEN MATCHED THEN UPDATE SET amount = 0",
    "TRUNCATE TABLE memory.sales.customers",
    "ALTER TABLE memory.sales.orders EXECUTE optimize",
    "CREATE SCHEMA memory.{u}_schema",
    "ALTER SCHEMA memory.{u}_schema RENAME TO {u}_renamed",
    "ALTER SCHEMA memory.{u}_renamed SET AUTHORIZATION alice",
    "DROP SCHEMA memory.{u}_renamed",
    "CREATE TABLE memory.sales.{u}_tmp (x integer)",
    "CREATE TABLE memory.sales.{u}_copy AS SELECT id, region FROM memory.sales.orders",
    "INSERT INTO memory.sales.{u}_copy SELECT id, region FROM memory.sales.orders",
    "ALTER TABLE memory.sales.{u}_tmp ADD COLUMN y integer",
    "ALTER TABLE memory.sales.{u}_tmp RENAME COLUMN y TO z",
    "ALTER TABLE memory.sales.{u}_tmp ALTER COLUMN z SET DATA TYPE bigint",
    "ALTER TABLE memory.sales.{u}_tmp DROP COLUMN z",
    "COMMENT ON TABLE memory.sales.{u}_tmp IS 'scratch'",
    "COMMENT ON COLUMN memory.sales.{u}_tmp.x IS 'a number'",
    "ALTER TABLE memory.sales.{u}_tmp SET AUTHORIZATION alice",
    "ALTER TABLE memory.sales.{u}_tmp RENAME TO memory.sales.{u}_tmp2",
    "DROP TABLE memory.sales.{u}_tmp2",
    "DROP TABLE memory.sales.{u}_copy",
    "CREATE VIEW memory.sales.{u}_view AS SELECT region FROM memory.sales.orders",
    "COMMENT ON VIEW memory.sales.{u}_view IS 'regions'",
    "ALTER VIEW memory.sales.{u}_view SET AUTHORIZATION alice",
    "ALTER VIEW memory.sales.{u}_view RENAME TO memory.sales.{u}_view2",
    "DROP VIEW memory.sales.{u}_view2",
    "CREATE MATERIALIZED VIEW memory.sales.{u}_mv AS SELECT 1 AS x",
    "CREATE FUNCTION memory.sales.{u}_f(x bigint) RETURNS bigint RETURN x + 1",
    "DROP FUNCTION memory.sales.{u}_f(bigint)",
    "DROP TABLE memory.sales.orders",
    "CALL system.runtime.kill_query(query_id => '{query}', message => 'x')",
    "CREATE CATALOG {u}_catalog USING memory",
    "DROP CATALOG tpch",
]
# Trino's REST API asks the access control too (the query list, another user's query, the
# nodes); {query} is a query ADMIN ran.
HTTP = ["GET /v1/node", "GET /v1/query", "GET /v1/query/{query}", "DELETE /v1/query/{query}"]
USERS_RUN = ["alice", "bob", "carol", ADMIN]


@dataclass(frozen=True)
class Mode:
    name: str
    batch: bool


MODES = [Mode("batch", True), Mode("single", False)]


@dataclass
class Recording:
    """Bodies by (endpoint, canonical body), first statement first; what each statement did."""

    bodies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    statements: list[dict[str, str]] = field(default_factory=list)
    current: dict[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, endpoint: str, body: dict[str, Any]) -> None:
        document = normalise(body)
        key = (endpoint, json.dumps(document, sort_keys=True))
        with self.lock:
            if key not in self.bodies and self.current is not None:
                self.bodies[key] = {
                    "operation": document["input"]["action"]["operation"],
                    "endpoint": endpoint,
                    "statement": self.current,
                    "request": document,
                }


def normalise(body: dict[str, Any]) -> dict[str, Any]:
    """The body without what changes from one run to the next: the query id, and the order of
    the query owners Trino lists (from a hash set; the answer is by index, so any order holds)."""
    body["input"]["context"].pop("queryId", None)
    action = body["input"]["action"]
    if action["operation"] == "FilterViewQueryOwnedBy" and "filterResources" in action:
        action["filterResources"].sort(key=lambda owner: json.dumps(owner, sort_keys=True))
    return body


class Recorder(ThreadingHTTPServer):
    """Keeps each body POSTed under /v1/data/trino/, answers what the sidecar answers."""

    daemon_threads = True

    def __init__(self, sidecar_url: str, recording: Recording) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.recording = recording
        self.client = httpx.Client(base_url=sidecar_url, timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the plugin's client expects
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith(PREFIX):
            self.server.recording.add(self.path.removeprefix(PREFIX), json.loads(body))
        answer = self.server.client.post(
            self.path, content=body, headers={"content-type": "application/json"}
        )
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the progress output


def run_statements(trino: Trino, recording: Recording, mode: Mode) -> None:
    for sql in SETUP:
        _run(recording, mode, ADMIN, "sql", sql, partial(_sql, trino, ADMIN, sql))
    with trino.connect(ADMIN) as conn:  # a query of someone else's for the others to look at
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
        query = cursor.query_id
    assert query is not None
    for user in USERS_RUN:
        for template in STATEMENTS:
            sql = template.format(u=user, query=query)
            shown = template.format(u=user, query="{query}")  # the id differs every run
            _run(recording, mode, user, "sql", shown, partial(_sql, trino, user, sql))
        for template in HTTP:
            method, path = template.format(query=query).split(" ", 1)
            call = partial(_http, trino, user, method, path)
            _run(recording, mode, user, "http", template, call)


def _run(
    recording: Recording, mode: Mode, user: str, kind: str, text: str, run: Callable[[], str]
) -> None:
    recording.current = {"mode": mode.name, "user": user, kind: text}
    outcome = run()
    recording.current = None
    recording.statements.append({"mode": mode.name, "user": user, kind: text, "outcome": outcome})
    print(f"  {mode.name:6} {user:6} {outcome:24} {text[:70]}", flush=True)


def _sql(trino: Trino, user: str, sql: str) -> str:
    try:
        trino.query(user, sql)
    except TrinoQueryError as error:
        return "denied" if error.error_name == "PERMISSION_DENIED" else str(error.error_name)
    return "ok"


def _http(trino: Trino, user: str, method: str, path: str) -> str:
    response = httpx.request(method, trino.url + path, headers={"X-Trino-User": user}, timeout=30)
    return f"HTTP {response.status_code}"


def record(root: Path) -> Recording:
    recording = Recording()
    (root / "config").mkdir()
    tree = make_tree(
        root / "config", registry=REGISTRY, policies=POLICIES, users=USERS, properties=PROPERTIES
    )
    pdp_port, sidecar_port = free_port(), free_port()
    pdp = start_pdp(tree.pdp_yaml(pdp_port), pdp_port)
    try:
        sidecar = start_sidecar(tree.sidecar_yaml(sidecar_port, pdp_port), sidecar_port)
        recorder = Recorder(f"http://127.0.0.1:{sidecar_port}", recording)
        serving = threading.Thread(target=recorder.serve_forever, daemon=True)
        serving.start()
        try:
            for mode in MODES:
                print(f"starting Trino {VERSION} ({mode.name} endpoints)", flush=True)
                trino = Trino(
                    TrinoSpec(
                        root=root / f"trino-{mode.name}",
                        port=free_port(),
                        access=Opa(recorder.url, batch=mode.batch),
                        groups=TRINO_GROUPS,
                        catalogs=CATALOGS,
                    )
                )
                try:
                    trino.wait_ready(ADMIN)
                    run_statements(trino, recording, mode)
                finally:
                    trino.stop()
        finally:
            recorder.shutdown()
            recorder.client.close()
            sidecar.stop()
    finally:
        pdp.stop()
    return recording


def write(recording: Recording, directory: Path) -> dict[str, int]:
    """One file per endpoint, records sorted by operation and body; returns the counts."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.jsonl"):
        old.unlink()
    by_endpoint: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for (endpoint, canonical), entry in recording.bodies.items():
        by_endpoint.setdefault(endpoint, []).append((entry["operation"], canonical, entry))
    for endpoint, entries in by_endpoint.items():
        lines = [json.dumps(entry) for _, _, entry in sorted(entries, key=lambda e: e[:2])]
        (directory / f"{endpoint}.jsonl").write_text("\n".join(lines) + "\n")
    lines = [json.dumps(s) for s in recording.statements]
    (directory / "statements.jsonl").write_text("\n".join(lines) + "\n")
    return {endpoint: len(entries) for endpoint, entries in sorted(by_endpoint.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.record_corpus", description=__doc__)
    parser.add_argument("--out", type=Path, default=FIXTURES, help="fixture directory to write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="record-corpus-") as root:
        recording = record(Path(root))
    counts = write(recording, args.out)
    operations = {entry["operation"] for entry in recording.bodies.values()}
    print(f"wrote {sum(counts.values())} bodies to {args.out}: {counts}")
    print(f"{len(operations)} operations: {', '.join(sorted(operations))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
