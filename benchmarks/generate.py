"""A realistic large deployment for the benchmarks: configuration files and Trino request bodies.

`python benchmarks/generate.py DIR` writes into DIR:

* `pdp.yaml`, `registry.yaml`, `policies.yaml`, `users.yaml`, `access-grant-mapping.yaml`,
  `cluster.properties`, `sidecar.yaml`: 4 catalogs x 10 schemas x 50 tables = 2,000 tables (5 %
  inactive, tagged), 500 users in 50 groups, 300 policies by group, tag, schema and user;
* `single.txt`: `/v1/data/trino/allow` bodies, three per simulated query (ExecuteQuery,
  AccessCatalog, SelectFromColumns with a few columns), over many users and tables, including
  tables of catalogs that are not in the registry;
* `batch.txt`: FilterTables bodies with 100 tables each, for `/v1/data/trino/batch`.

Bodies are shaped like the plugin's (Trino 480 context, contract section 3 and the corpus'
query-trace.jsonl), one compact JSON document per line. Where a body carries a `queryId`, its
value is the placeholder `@QID@`, which the load generators replace with a fresh id per request:
Trino's queryId is unique per query, so a cache keyed on it would never hit.

Everything is derived from a fixed seed, so runs are comparable, and the locust scenario builds
the same world in memory with `build_world()`.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SEED = 20261122
CONNECTION = "trino-prod"
CATALOGS = ("hive", "iceberg", "delta", "lake")
UNREGISTERED_CATALOGS = ("system", "tpch")  # Trino catalogs no policy governs
SCHEMAS_PER_CATALOG = 10
TABLES_PER_SCHEMA = 50
USERS, GROUPS = 500, 50
TAGS = ("Finance", "Finance.Orders", "PII", "Marketing", "Sales", "HR", "Ops", "Public")
COLUMN_NAMES = (
    "id", "created_at", "updated_at", "customer_id", "order_id", "amount", "currency", "status",
    "region", "country", "email", "phone", "name", "product_id", "quantity", "price", "discount",
    "channel", "campaign", "score", "department", "manager_id", "notes", "payload", "event_type",
    "session_id", "device", "ip_address", "latitude", "longitude",
)  # fmt: skip
COLUMN_TYPES = ("bigint", "varchar", "timestamp(3)", "decimal(12,2)", "double", "boolean")
QID = "@QID@"
TRINO_VERSION = "480"
BATCH_SIZE = 100


@dataclass(frozen=True)
class Table:
    catalog: str
    schema: str
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, Trino type)
    tags: tuple[str, ...] = ()
    active: bool = True


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    department: str | None = None


@dataclass(frozen=True)
class World:
    tables: tuple[Table, ...]  # registered ones first, then those of unregistered catalogs
    users: tuple[User, ...]
    policies: tuple[dict[str, Any], ...]

    def catalogs(self) -> list[str]:
        return sorted({t.catalog for t in self.tables})

    def schemas(self, catalog: str) -> list[str]:
        return sorted({t.schema for t in self.tables if t.catalog == catalog})


def build_world(seed: int = SEED) -> World:
    rnd = random.Random(seed)
    tables = []
    for catalog in (*CATALOGS, *UNREGISTERED_CATALOGS):
        registered = catalog in CATALOGS
        schemas = SCHEMAS_PER_CATALOG if registered else 2
        for s in range(schemas):
            for t in range(TABLES_PER_SCHEMA if registered else 10):
                names = rnd.sample(COLUMN_NAMES, rnd.randint(5, 25))
                tables.append(
                    Table(
                        catalog,
                        f"sch{s:02d}",
                        f"tbl{t:03d}",
                        tuple((n, rnd.choice(COLUMN_TYPES)) for n in ["id", *names[1:]]),
                        tuple(rnd.sample(TAGS, rnd.choice((0, 0, 1, 1, 2)))),
                        active=not registered or rnd.random() > 0.05,
                    )
                )
    groups = [f"grp{g:02d}" for g in range(GROUPS)]
    users = tuple(
        User(
            f"user{u:03d}",
            tuple(sorted(rnd.sample(groups, rnd.randint(1, 3)))),
            rnd.choice(("finance", "sales")) if rnd.random() < 0.1 else None,
        )
        for u in range(USERS)
    )
    return World(tuple(tables), users, _policies(rnd, groups, tables, users))


def _policies(
    rnd: random.Random, groups: list[str], tables: list[Table], users: tuple[User, ...]
) -> tuple[dict[str, Any], ...]:
    schema_paths = sorted(
        {f"{CONNECTION}.{t.catalog}.{t.schema}" for t in tables if t.catalog in CATALOGS}
    )
    registered = [t for t in tables if t.catalog in CATALOGS]
    policies: list[dict[str, Any]] = []
    for i in range(200):  # the bulk: a group reads a few schemas
        policies.append(
            {
                "name": f"schema-readers-{i:03d}",
                "access": "WRITE" if i % 10 == 0 else "READ",
                "who": {"groups": rnd.sample(groups, rnd.randint(1, 2))},
                "what": {"schemas": rnd.sample(schema_paths, rnd.randint(1, 3))},
            }
        )
    for i in range(60):  # a group reads everything carrying a tag
        policies.append(
            {
                "name": f"tag-readers-{i:03d}",
                "access": "READ",
                "who": {"groups": rnd.sample(groups, rnd.randint(1, 3))},
                "what": {"tags": [rnd.choice(TAGS)]},
            }
        )
    for i in range(35):  # named users write a handful of tables
        policies.append(
            {
                "name": f"table-writers-{i:03d}",
                "access": "WRITE",
                "who": {"users": [u.name for u in rnd.sample(users, rnd.randint(1, 4))]},
                "what": {
                    "dataSources": [
                        f"{CONNECTION}.{t.catalog}.{t.schema}.{t.name}"
                        for t in rnd.sample(registered, rnd.randint(2, 8))
                    ]
                },
            }
        )
    for i, department in enumerate(("finance", "sales")):
        policies.append(
            {
                "name": f"department-{department}",
                "access": "READ",
                "who": {"attributes": {"department": [department]}},
                "what": {"tags": [("Finance", "Sales")[i]]},
            }
        )
    for i in range(3):
        policies.append(
            {
                "name": f"staged-{i}",
                "access": "READ",
                "status": "staged",
                "who": {"anyone": True},
                "what": {"tags": ["PII"]},
            }
        )
    return tuple(policies)


# --- configuration files ------------------------------------------------------------------


def write_config(world: World, out: Path, sidecar_port: int, pdp_port: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "registry.yaml", {"connections": [_connection(world)]})
    _write_json(out / "policies.yaml", {"policies": list(world.policies)})
    users = {}
    for u in world.users:
        entry: dict[str, Any] = {"groups": list(u.groups)}
        if u.department:
            entry["attributes"] = {"department": [u.department]}
        users[u.name] = entry
    _write_json(out / "users.yaml", {"users": users})
    _write_json(
        out / "access-grant-mapping.yaml",
        {"accessGrantMapping": {"WRITE": ["READ", "WRITE"], "READ": ["READ"]}},
    )
    # As in config/cluster: reads of non-data-sources (the unregistered catalogs) are allowed.
    (out / "cluster.properties").write_text(
        "immuta.allowed.immuta.datasource.operations=READ,WRITE\n"
        "immuta.allowed.non.immuta.datasource.operations=READ,WRITE,CREATE,OWN\n"
        "immuta.user.admin=trino-admin|svc_[a-z]+\n"
    )
    _write_json(
        out / "pdp.yaml",
        {
            "listen": f"127.0.0.1:{pdp_port}",
            "policyFiles": ["registry.yaml", "policies.yaml", "users.yaml"],
            "accessGrantMapping": "access-grant-mapping.yaml",
            "reloadIntervalSeconds": 1,
            # Loopback only, and tokens would ride on cache misses alone: the hot path measured
            # here never calls the PDP.
            "auth": "none",
        },
    )
    _write_json(
        out / "sidecar.yaml",
        {
            "listen": f"127.0.0.1:{sidecar_port}",
            "workers": 2,
            "pdp": {"target": f"127.0.0.1:{pdp_port}", "timeoutSeconds": 2, "auth": "none"},
            "cluster": {"properties": "cluster.properties"},
            "cache": {"users": 10_000, "decisions": 200_000, "maxStaleSeconds": 300},
        },
    )


def _connection(world: World) -> dict[str, Any]:
    catalogs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for t in world.tables:
        if t.catalog not in CATALOGS:
            continue
        entry: dict[str, Any] = {"name": t.name}
        if t.tags:
            entry["tags"] = list(t.tags)
        if not t.active:
            entry["status"] = "inactive"
        catalogs.setdefault(t.catalog, {}).setdefault(t.schema, []).append(entry)
    return {
        "name": CONNECTION,
        "technology": "trino",
        "status": "active",
        "databases": [
            {"name": c, "schemas": [{"name": s, "tables": ts} for s, ts in schemas.items()]}
            for c, schemas in catalogs.items()
        ],
    }


def _write_json(path: Path, document: dict[str, Any]) -> None:
    # JSON is YAML, and it is much faster to load for 2,000 tables than block-style YAML.
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


# --- request bodies -----------------------------------------------------------------------


def body(user: User, action: dict[str, Any], query_id: str | None = QID) -> bytes:
    context: dict[str, Any] = {
        "identity": {"user": user.name, "groups": list(user.groups)},
        "softwareStack": {"trinoVersion": TRINO_VERSION},
        "properties": {},
    }
    if query_id is not None:  # identity-only checks such as ExecuteQuery carry no queryId
        context["queryId"] = query_id
    return orjson.dumps({"input": {"context": context, "action": action}})


def table_ref(t: Table, columns: list[str] | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"catalogName": t.catalog, "schemaName": t.schema, "tableName": t.name}
    if columns is not None:
        ref["columns"] = columns
    return {"table": ref}


def execute_query(user: User) -> bytes:
    return body(user, {"operation": "ExecuteQuery"}, query_id=None)


def access_catalog(user: User, catalog: str, query_id: str = QID) -> bytes:
    action = {"operation": "AccessCatalog", "resource": {"catalog": {"name": catalog}}}
    return body(user, action, query_id)


def select(user: User, t: Table, columns: list[str], query_id: str = QID) -> bytes:
    action = {"operation": "SelectFromColumns", "resource": table_ref(t, columns)}
    return body(user, action, query_id)


def filter_tables(user: User, tables: list[Table], query_id: str = QID) -> bytes:
    action = {"operation": "FilterTables", "filterResources": [table_ref(t) for t in tables]}
    return body(user, action, query_id)


def filter_columns(user: User, t: Table, query_id: str = QID) -> bytes:
    resources = [table_ref(t, [c for c, _ in t.columns])]
    return body(user, {"operation": "FilterColumns", "filterResources": resources}, query_id)


def filter_catalogs(user: User, catalogs: list[str], query_id: str = QID) -> bytes:
    resources = [{"catalog": {"name": c}} for c in catalogs]
    return body(user, {"operation": "FilterCatalogs", "filterResources": resources}, query_id)


def filter_schemas(user: User, catalog: str, schemas: list[str], query_id: str = QID) -> bytes:
    resources = [{"schema": {"catalogName": catalog, "schemaName": s}} for s in schemas]
    return body(user, {"operation": "FilterSchemas", "filterResources": resources}, query_id)


def row_filters(user: User, t: Table, query_id: str = QID) -> bytes:
    return body(user, {"operation": "GetRowFilters", "resource": table_ref(t)}, query_id)


def column_masks(user: User, t: Table, query_id: str = QID) -> bytes:
    resources = [
        {
            "column": {
                "catalogName": t.catalog,
                "schemaName": t.schema,
                "tableName": t.name,
                "columnName": c,
                "columnType": kind,
            }
        }
        for c, kind in t.columns
    ]
    return body(user, {"operation": "GetColumnMask", "filterResources": resources}, query_id)


def pick_table(rnd: random.Random, world: World) -> Table:
    # Skewed like real workloads: a tenth of the tables get most of the queries.
    hot = len(world.tables) // 10
    return world.tables[rnd.randrange(hot)] if rnd.random() < 0.6 else rnd.choice(world.tables)


def pick_columns(rnd: random.Random, t: Table) -> list[str]:
    return [c for c, _ in rnd.sample(t.columns, min(len(t.columns), rnd.randint(1, 5)))]


def single_bodies(world: World, queries: int, rnd: random.Random) -> list[bytes]:
    """The `/allow` calls of `queries` simulated SELECTs on one table each."""
    bodies = []
    for _ in range(queries):
        user, t = rnd.choice(world.users), pick_table(rnd, world)
        bodies += [
            execute_query(user),
            access_catalog(user, t.catalog),
            select(user, t, pick_columns(rnd, t)),
        ]
    return bodies


def batch_bodies(world: World, count: int, rnd: random.Random) -> list[bytes]:
    """FilterTables batches as a listing sends them: 100 consecutive tables of one catalog."""
    bodies = []
    for _ in range(count):
        catalog = rnd.choice(CATALOGS)
        tables = [t for t in world.tables if t.catalog == catalog]
        start = rnd.randrange(len(tables) - BATCH_SIZE)
        bodies.append(filter_tables(rnd.choice(world.users), tables[start : start + BATCH_SIZE]))
    return bodies


def generate(
    out: Path, sidecar_port: int = 8181, pdp_port: int = 50051, queries: int = 2000
) -> World:
    world = build_world()
    write_config(world, out, sidecar_port, pdp_port)
    rnd = random.Random(SEED + 1)
    (out / "single.txt").write_bytes(b"\n".join(single_bodies(world, queries, rnd)) + b"\n")
    (out / "batch.txt").write_bytes(b"\n".join(batch_bodies(world, 500, rnd)) + b"\n")
    return world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write into")
    parser.add_argument("--sidecar-port", type=int, default=8181)
    parser.add_argument("--pdp-port", type=int, default=50051)
    parser.add_argument("--queries", type=int, default=2000, help="simulated queries in single.txt")
    args = parser.parse_args()
    generate(args.out, args.sidecar_port, args.pdp_port, args.queries)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
