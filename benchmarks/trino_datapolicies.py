"""Query-level overhead of masks and row filters in a real Trino 476 whose OPA access control asks
the real sidecar (as `make trino` and tests/e2e run it).

    PDP_TRINO_CACHE=... .venv/bin/python benchmarks/trino_datapolicies.py [--queries 30]

One memory table of 50 columns and 20,000 rows. The same queries run as three users, warm
(each user's view and answers cached in the sidecar), interleaved, and the wall time of each
query is measured at the client:

* `admin`: matches immuta.user.admin: no masks, no filters (the sidecar still answers every
  check, rowFilters and batchColumnMasks included);
* `plain`: READ through a policy, no data policy applies (empty answers);
* `masked`: READ, 10 columns masked (hash, NULL, partial reveal, rounding, constant) and two
  row filters (one with a user attribute) that keep about half of the rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from devstack.configs import make_tree  # noqa: E402
from devstack.processes import free_port, start_pdp, start_sidecar  # noqa: E402
from devstack.trino import Opa, Trino, TrinoSpec, catalog_memory  # noqa: E402

COLUMNS = 50
ROWS = 20_000
TYPES = ("bigint", "varchar", "double", "decimal(12,2)", "integer")
REGISTRY = """
connections:
  - name: b
    technology: trino
    status: active
    databases:
      - name: memory
        schemas:
          - name: bench
            tables:
              - name: wide
                columns: {c1: [PII], c6: [PII], c11: [PII]}
"""
POLICIES = """
policies:
  - {name: readers, access: READ, who: {users: [plain, masked]}, what: {schemas: [b.memory.bench]}}
masks:
  - {name: pii-hash, columns: {tags: [PII]}, mask: hash, onlyFor: {users: [masked]}}
  - {name: nulls, columns: {names: [c2, c7]}, mask: null, onlyFor: {users: [masked]}}
  - {name: reveal, columns: {names: [c16, c21]}, mask: {keepLast: 2}, onlyFor: {users: [masked]}}
  - {name: rounding, columns: {names: [c3, c8]}, mask: {round: -1}, onlyFor: {users: [masked]}}
  - {name: constant, columns: {names: [c4]}, mask: {constant: 0}, onlyFor: {users: [masked]}}
rowFilters:
  - {name: half, where: "c0 % 2 = 0", onlyFor: {users: [masked]}}
  - {name: by-attribute, where: "c26 IN @attribute(codes) OR c26 IS NULL",
     onlyFor: {users: [masked]}}
"""
USERS = """
users:
  masked: {attributes: {codes: ["a", "b", "c"]}}
"""
PROPERTIES = """
immuta.allowed.immuta.datasource.operations=READ,WRITE
immuta.allowed.non.immuta.datasource.operations=READ,WRITE,CREATE,OWN
immuta.user.admin=admin
"""
QUERIES = {
    "SELECT * (20k rows, 50 columns)": "SELECT * FROM memory.bench.wide",
    "count(*)": "SELECT count(*) FROM memory.bench.wide",
    "aggregate over masked columns": (
        "SELECT c1, sum(c3), max(c16) FROM memory.bench.wide GROUP BY c1 ORDER BY 2 DESC LIMIT 10"
    ),
}


def column_sql(i: int) -> str:
    kind = TYPES[i % len(TYPES)]
    expression = {
        "bigint": "CAST(x AS bigint)",
        "varchar": "CAST(x * 7 % 1000 AS varchar)",
        "double": "CAST(x AS double) / 3",
        "decimal(12,2)": "CAST(x AS decimal(12,2)) / 7",
        "integer": "CAST(x % 100000 AS integer)",
    }[kind]
    if i == 26:
        expression = "substr('abcdef', CAST(x % 6 AS integer) + 1, 1)"
    return f"{expression} AS c{i}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=30, help="runs per query and user")
    args = parser.parse_args()
    root = Path(f"/tmp/pdp-bench-trino-{free_port()}")
    (root / "config").mkdir(parents=True)
    tree = make_tree(
        root / "config", registry=REGISTRY, policies=POLICIES, users=USERS, properties=PROPERTIES
    )
    pdp_port, sidecar_port, trino_port = free_port(), free_port(), free_port()
    pdp = start_pdp(tree.pdp_yaml(pdp_port), pdp_port)
    sidecar = trino = None
    try:
        sidecar = start_sidecar(tree.sidecar_yaml(sidecar_port, pdp_port), sidecar_port)
        trino = Trino(
            TrinoSpec(
                root=root / "trino",
                port=trino_port,
                access=Opa(f"http://127.0.0.1:{sidecar_port}"),
                catalogs={"memory": catalog_memory()},
            )
        )
        trino.wait_ready("admin")
        trino.query("admin", "CREATE SCHEMA memory.bench")
        columns = ", ".join(column_sql(i) for i in range(COLUMNS))
        trino.query(
            "admin",
            f"CREATE TABLE memory.bench.wide AS SELECT {columns} "
            f"FROM UNNEST(sequence(1, {ROWS // 10})) AS a(y) "
            "CROSS JOIN UNNEST(sequence(0, 9)) AS b(z) CROSS JOIN LATERAL (SELECT y * 10 + z AS x)",
        )
        rows = {u: len(trino.query(u, QUERIES["SELECT * (20k rows, 50 columns)"])) for u in
                ("admin", "plain", "masked")}  # fmt: skip
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(3):  # warm-up: Trino's JIT and the sidecar's caches
            for sql in QUERIES.values():
                for user in ("admin", "plain", "masked"):
                    trino.query(user, sql)
        for _ in range(args.queries):
            for name, sql in QUERIES.items():
                for user in ("admin", "plain", "masked"):
                    start = time.perf_counter()
                    trino.query(user, sql)
                    times.setdefault((name, user), []).append(time.perf_counter() - start)
        print(f"rows returned by SELECT *: {rows}")
        print()
        print("| query | admin p50 ms | plain p50 ms | masked + filtered p50 ms | p90 ms "
              "(admin / plain / masked) |")  # fmt: skip
        print("|---|---:|---:|---:|---|")
        for name in QUERIES:
            p50 = [statistics.median(times[name, u]) * 1e3 for u in ("admin", "plain", "masked")]
            p90 = [
                statistics.quantiles(times[name, u], n=10)[-1] * 1e3
                for u in ("admin", "plain", "masked")
            ]
            print(f"| {name} | {p50[0]:.0f} | {p50[1]:.0f} | {p50[2]:.0f} | "
                  f"{' / '.join(f'{v:.0f}' for v in p90)} |")  # fmt: skip
    finally:
        if trino is not None:
            trino.stop()
        for process in (sidecar, pdp):
            if process is not None:
                process.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
