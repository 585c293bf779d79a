"""The order in which a real Trino 476 calls the access-control SPI, per query.

A real Trino with the product's plugin (trino-plugin/, `make plugin`) is pointed at a recording
stand-in for the sidecar's compact endpoint: it allows everything, masks alice's columns named
`secret`, and answers without a revision, so that the plugin caches nothing and every SPI call
of every query reaches it as one request. Each query's requests are printed in the order they
came, one line each (the asks of one request joined by `+`).

    .venv/bin/python -m benchmarks.plugin_spi_order [--coalesced]

Without `--coalesced` it shows Trino's own order (docs/trino-plugin.md, "The order of Trino's
calls"); with it, the stand-in answers under a revision, so the plugin caches, and each query
is run twice: cold (the revision moved just before, so the plugin's cache is empty, as after a
policy change; `ExecuteQuery` is then asked again too) and warm.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.processes import free_port
from devstack.trino import PdpPlugin, Trino, TrinoSpec, catalog_memory

ADMIN, USER = "admin", "alice"
SETUP = [
    "CREATE SCHEMA memory.s",
    "CREATE TABLE memory.s.t1 (id bigint, name varchar, secret varchar)",
    "INSERT INTO memory.s.t1 VALUES (1, 'a', 'x'), (2, 'b', 'y')",
    "CREATE TABLE memory.s.t2 (id bigint, city varchar)",
    "INSERT INTO memory.s.t2 VALUES (1, 'Oslo')",
    "CREATE VIEW memory.s.v_definer SECURITY DEFINER AS SELECT id, secret FROM memory.s.t1",
    "CREATE VIEW memory.s.v_invoker SECURITY INVOKER AS SELECT id, secret FROM memory.s.t1",
]
QUERIES = [
    ("point SELECT of some columns", "SELECT name FROM memory.s.t1 WHERE id = 1"),
    ("SELECT *", "SELECT * FROM memory.s.t1"),
    ("no column", "SELECT count(*) FROM memory.s.t1"),
    ("join", "SELECT t1.name, t2.city FROM memory.s.t1 JOIN memory.s.t2 ON t1.id = t2.id"),
    ("view, SECURITY DEFINER (owner admin)", "SELECT * FROM memory.s.v_definer"),
    ("view, SECURITY INVOKER", "SELECT * FROM memory.s.v_invoker"),
    ("SHOW TABLES", "SHOW TABLES FROM memory.s"),
    (
        "information_schema.columns",
        "SELECT table_name, column_name FROM memory.information_schema.columns "
        "WHERE table_schema = 's'",
    ),
]


class Recorder:
    """The compact endpoint's stand-in: records each request's asks, answers them all."""

    def __init__(self, revision: str | None) -> None:
        self.requests: list[tuple[str, list[str]]] = []
        self.revision = revision
        self.known: str | None = None  # the revision the plugin's last watch said it holds
        lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.endswith("/watch"):
                    wait = min(float(body.get("waitSeconds", 1)), 2.0)
                    recorder.known = body.get("revision")
                    if recorder.known == recorder.revision:
                        time.sleep(wait)
                    answer: dict[str, Any] = {"revision": recorder.revision}
                else:
                    asks = body["asks"]
                    with lock:
                        recorder.requests.append(
                            (body["identity"]["user"], [describe(ask) for ask in asks])
                        )
                    user = body["identity"]["user"]
                    answer = {
                        "revision": recorder.revision,
                        "answers": [respond(user, a) for a in asks],
                    }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def move(self, revision: str) -> None:
        """A policy change: the plugin drops its cache once its watch hears of it (within the
        watch's wait of at most 2 s here); returns when its next watch says it holds it."""
        self.revision = revision
        deadline = time.monotonic() + 10
        while self.known != revision:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the plugin did not take revision {revision} within 10 s")
            time.sleep(0.05)

    def take(self) -> list[tuple[str, list[str]]]:
        taken, self.requests = self.requests, []
        return taken

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def respond(user: str, ask: dict[str, Any]) -> dict[str, Any]:
    operation, items = ask["operation"], ask.get("filterResources")
    if operation == "GetColumnMask":  # USER's `secret` columns only (admin writes to them)
        masked = [user == USER and c["column"]["columnName"] == "secret" for c in items]
        return {"masks": ["'***'" if m else None for m in masked]}
    if operation == "GetRowFilters":
        return {"rowFilters": []}
    if items is not None:
        return {"indices": list(range(len(items)))}
    return {"allowed": True}


def describe(ask: dict[str, Any]) -> str:
    operation = ask["operation"]
    if "filterResources" in ask:
        items = ask["filterResources"]
        if operation == "GetColumnMask":
            table = _name(items[0]["column"], "tableName") if items else "?"
            columns = ",".join(item["column"]["columnName"] for item in items)
            return f"{operation}({table}: {columns})"
        shown = ", ".join(_resource(item) for item in items[:3])
        more = f", ... {len(items)} in all" if len(items) > 3 else ""
        return f"{operation}({shown}{more})"
    return f"{operation}({_resource(ask.get('resource'))})"


def _resource(resource: dict[str, Any] | None) -> str:
    if not resource:
        return ""
    if "table" in resource:
        table = resource["table"]
        columns = table.get("columns")
        name = _name(table, "tableName")
        return name if columns is None else f"{name} [{','.join(columns)}]"
    if "schema" in resource:
        return f"{resource['schema']['catalogName']}.{resource['schema']['schemaName']}"
    if "catalog" in resource:
        return str(resource["catalog"]["name"])
    return json.dumps(resource, sort_keys=True)


def _name(table: dict[str, Any], key: str) -> str:
    return f"{table['catalogName']}.{table['schemaName']}.{table[key]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--coalesced", action="store_true", help="answer under a revision; run each query twice"
    )
    args = parser.parse_args()
    recorder = Recorder("r1" if args.coalesced else None)
    with tempfile.TemporaryDirectory(prefix="pdp-spi-order-") as root:
        trino = Trino(
            TrinoSpec(
                root=Path(root),
                port=free_port(),
                access=PdpPlugin(recorder.url),
                catalogs={"memory": catalog_memory()},
            )
        )
        try:
            trino.wait_ready(ADMIN)
            for sql in SETUP:
                trino.query(ADMIN, sql)
            trino.query(USER, "SELECT 1")  # the user's own asks (ExecuteQuery) out of the way
            recorder.take()
            for n, (title, sql) in enumerate(QUERIES, 2):
                if args.coalesced:
                    recorder.move(f"r{n}")
                    recorder.take()
                for run in ("cold", "warm") if args.coalesced else ("",):
                    trino.query(USER, sql)
                    time.sleep(0.2)
                    requests = recorder.take()
                    print(f"\n## {title}{f' ({run})' if run else ''}: {len(requests)} requests")
                    print(f"   {sql}")
                    for i, (user, asks) in enumerate(requests, 1):
                        print(f"{i:3}. [{user}] {' + '.join(asks)}")
        finally:
            trino.stop()
            recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
