"""The world of the query-level benchmark (`trino_bench.py`), and the same grants written four
ways: PostgreSQL tables, the PDP's policy files, Trino's file-based rules and OPA's data.

`python -m benchmarks.trino_world DIR` writes everything into DIR without running anything.

* Data: one PostgreSQL database, exposed to Trino as the `postgresql` catalog: 20 schemas
  (`s00`..`s19`) x 100 tables (`t000`..`t099`) = 2,000 tables, 4 columns, 3 rows each.
* One more schema, `wide`: 2,000 empty tables (`w0000`..`w1999`, the same 4 columns), not
  registered, for listings of a wide schema (`trino_bench --kinds wide`).
* Registry: schemas `s00`..`s17`, tables `t000`..`t089` of each (1,620 data sources). The tables
  `t090`..`t099` of those schemas and the schemas `s18`, `s19` are not registered.
* Users and groups: 500 users `u000`..`u499`; 25 groups `g00`..`g24` (user i is in g{i % 25},
  and every third user in one more group). Groups live only in Trino's group file, as in
  production (the PDP's directory lists the users without groups).
* Policies (READ): each group reads two schemas of `s00`..`s15` (50 policies by schema); 200 user
  policies grant single tables, mostly in `s16`/`s17`, which no group reads (registered, granted
  to few), the rest anywhere among the data sources.
* Cluster: admin `admin`; READ,WRITE allowed on data sources; READ only on everything else (the
  unregistered tables are readable by everyone, as Immuta's default for non-Immuta objects).

So for a user a table is readable iff it is not registered, or one of the user's groups reads its
schema, or a user policy names it. `World.can_read` says the same in Python: the benchmark checks
every access control against it before measuring.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CATALOG = "postgresql"  # the Trino catalog of the database
CONNECTION = "bench"  # the registry's connection (technology trino, database = the catalog)
SCHEMAS = tuple(f"s{i:02d}" for i in range(20))
TABLES = tuple(f"t{i:03d}" for i in range(100))
WIDE_SCHEMA = "wide"
WIDE_TABLES = tuple(f"w{i:04d}" for i in range(2000))
REGISTERED_SCHEMAS = SCHEMAS[:18]
REGISTERED_TABLES = TABLES[:90]
GROUP_SCHEMAS = SCHEMAS[:16]  # schemas read by groups; s16, s17 only by user policies
USERS = tuple(f"u{i:03d}" for i in range(500))
GROUPS = tuple(f"g{i:02d}" for i in range(25))
USER_POLICIES = 200
ADMIN = "admin"
COLUMNS = ("id", "name", "amount", "region")
SEED = 20261129

Key = tuple[str, str, str]  # catalog, schema, table


@dataclass
class World:
    groups: dict[str, list[str]]  # group -> users (Trino's group file)
    group_schemas: dict[str, list[str]]  # group -> schemas it reads
    user_tables: dict[str, list[Key]]  # user -> tables granted by user policies
    user_groups: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for group, members in self.groups.items():
            for user in members:
                self.user_groups.setdefault(user, []).append(group)

    @staticmethod
    def registered(key: Key) -> bool:
        catalog, schema, table = key
        return catalog == CATALOG and schema in REGISTERED_SCHEMAS and table in REGISTERED_TABLES

    def can_read(self, user: str, key: Key) -> bool:
        if user == ADMIN or not self.registered(key):
            return True
        if key in self.user_tables.get(user, ()):
            return True
        return any(key[1] in self.group_schemas[g] for g in self.user_groups.get(user, ()))

    def readable(self, user: str, schema: str) -> list[str]:
        return [t for t in TABLES if self.can_read(user, (CATALOG, schema, t))]


def build() -> World:
    rng = random.Random(SEED)
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for i, user in enumerate(USERS):
        groups[GROUPS[i % len(GROUPS)]].append(user)
        if i % 3 == 0:
            extra = GROUPS[(i * 7 + 3) % len(GROUPS)]
            if user not in groups[extra]:
                groups[extra].append(user)
    group_schemas = {
        g: sorted({GROUP_SCHEMAS[k % 16], GROUP_SCHEMAS[(k + 5) % 16]})
        for k, g in enumerate(GROUPS)
    }
    user_tables: dict[str, list[Key]] = {}
    for j in range(USER_POLICIES):
        user = USERS[(j * 37) % len(USERS)]
        schema = ("s16", "s17")[j % 2] if j % 4 else rng.choice(REGISTERED_SCHEMAS)
        key = (CATALOG, schema, rng.choice(REGISTERED_TABLES))
        if key not in user_tables.setdefault(user, []):
            user_tables[user].append(key)
    return World(groups, group_schemas, user_tables)


# --- PostgreSQL ---------------------------------------------------------------------------


def postgres_sql() -> str:
    """One script: every schema and table with its 3 rows."""
    lines = []
    for schema in SCHEMAS:
        lines.append(f"CREATE SCHEMA {schema};")
        for table in TABLES:
            lines.append(
                f"CREATE TABLE {schema}.{table} (id int PRIMARY KEY, name text, "
                "amount numeric(12,2), region text);"
                f"INSERT INTO {schema}.{table} VALUES (1,'ann',10.50,'emea'),"
                "(2,'ben',20.00,'amer'),(3,'cy',0,'apac');"
            )
    lines.append(f"CREATE SCHEMA {WIDE_SCHEMA};")
    columns = "id int, name text, amount numeric(12,2), region text"
    lines += [f"CREATE TABLE {WIDE_SCHEMA}.{table} ({columns});" for table in WIDE_TABLES]
    return "\n".join(lines) + "\n"


# --- PDP ----------------------------------------------------------------------------------


def pdp_files(world: World, out: Path, pdp_port: int, sidecar_port: int) -> None:
    registry = {
        "connections": [
            {
                "name": CONNECTION,
                "technology": "trino",
                "status": "active",
                "databases": [
                    {
                        "name": CATALOG,
                        "schemas": [
                            {"name": s, "tables": list(REGISTERED_TABLES)}
                            for s in REGISTERED_SCHEMAS
                        ],
                    }
                ],
            }
        ]
    }
    policies = [
        {
            "name": f"{g}-reads-{s}",
            "access": "READ",
            "who": {"groups": [g]},
            "what": {"schemas": [f"{CONNECTION}.{CATALOG}.{s}"]},
        }
        for g, schemas in world.group_schemas.items()
        for s in schemas
    ]
    policies += [
        {
            "name": f"{user}-reads-{s}-{t}",
            "access": "READ",
            "who": {"users": [user]},
            "what": {"dataSources": [f"{CONNECTION}.{c}.{s}.{t}"]},
        }
        for user, keys in world.user_tables.items()
        for c, s, t in keys
    ]
    _write(out / "registry.yaml", registry)
    _write(out / "policies.yaml", {"policies": policies})
    _write(out / "users.yaml", {"users": {u: {} for u in USERS}})
    (out / "cluster.properties").write_text(
        "immuta.allowed.immuta.datasource.operations=READ,WRITE\n"
        "immuta.allowed.non.immuta.datasource.operations=READ\n"
        f"immuta.user.admin={ADMIN}\n"
    )
    _write(
        out / "pdp.yaml",
        {
            "listen": f"127.0.0.1:{pdp_port}",
            "policyFiles": ["registry.yaml", "policies.yaml", "users.yaml"],
            "reloadIntervalSeconds": 1,
            "auth": "none",
        },
    )
    _write(
        out / "sidecar.yaml",
        {
            "listen": f"127.0.0.1:{sidecar_port}",
            "workers": 2,  # the product's default
            "pdp": {"target": f"127.0.0.1:{pdp_port}", "timeoutSeconds": 2, "auth": "none"},
            "cluster": {"properties": "cluster.properties"},
            "reloadIntervalSeconds": 1,
        },
    )


# --- Trino file-based access control -------------------------------------------------------


def file_rules(world: World) -> dict[str, object]:
    """Rules equivalent to the policies. First match wins, but every rule here only grants
    (SELECT), so the order does not matter except for the admin. `information_schema` is outside
    the rules in Trino, as in the PDP's `metadata` rule."""
    registered_schemas = "|".join(REGISTERED_SCHEMAS)
    registered_tables = "t0[0-8][0-9]"
    assert [t for t in TABLES if _full_match(registered_tables, t)] == list(REGISTERED_TABLES)
    select = ["SELECT"]
    tables: list[dict[str, object]] = [
        {"user": ADMIN, "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"]}
    ]
    for user, keys in world.user_tables.items():
        for c, s, t in keys:
            tables.append(
                {"user": user, "catalog": c, "schema": s, "table": t, "privileges": select}
            )
    for group, schemas in world.group_schemas.items():
        tables.append(
            {
                "group": group,
                "catalog": CATALOG,
                "schema": "|".join(schemas),
                "table": registered_tables,
                "privileges": select,
            }
        )
    # not registered: readable by everyone
    tables += [
        {
            "catalog": CATALOG,
            "schema": registered_schemas,
            "table": f"(?!({registered_tables})$).*",
            "privileges": select,
        },
        {"catalog": CATALOG, "schema": f"(?!({registered_schemas})$).*", "privileges": select},
        {"catalog": f"(?!{CATALOG}$).*", "privileges": select},
    ]
    return {
        "catalogs": [{"user": ADMIN, "allow": "all"}, {"allow": "read-only"}],
        "schemas": [{"user": ADMIN, "owner": True}],
        "tables": tables,
    }


def _full_match(pattern: str, text: str) -> bool:
    import re

    return re.fullmatch(pattern, text) is not None


# --- OPA ------------------------------------------------------------------------------------


def opa_data(world: World) -> dict[str, object]:
    """The data document of `opa/trino.rego`: the registry and the grants, keyed by lower-case
    `catalog.schema[.table]`."""
    return {
        "bench": {
            "admins": [ADMIN],
            "registered": {
                f"{CATALOG}.{s}.{t}": True for s in REGISTERED_SCHEMAS for t in REGISTERED_TABLES
            },
            "group_schemas": {
                g: {f"{CATALOG}.{s}": True for s in schemas}
                for g, schemas in world.group_schemas.items()
            },
            "user_tables": {
                u: {".".join(k): True for k in keys} for u, keys in world.user_tables.items()
            },
        }
    }


# --- all of it ------------------------------------------------------------------------------


def write_all(world: World, out: Path, pdp_port: int = 50051, sidecar_port: int = 8181) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "postgres.sql").write_text(postgres_sql())
    pdp_files(world, out, pdp_port, sidecar_port)
    _write(out / "rules.json", file_rules(world))
    _write(out / "opa-data.json", opa_data(world))


def all_tables() -> Iterator[Key]:
    for s in SCHEMAS:
        for t in TABLES:
            yield (CATALOG, s, t)


def _write(path: Path, body: object) -> None:
    # JSON is YAML: the PDP reads these .yaml files as they are
    path.write_text(json.dumps(body, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    world = build()
    write_all(world, args.out)
    readable = [sum(world.can_read(u, k) for k in all_tables()) for u in USERS]
    readable.sort()
    print(
        f"wrote {args.out}: {len(list(all_tables()))} tables, {len(USERS)} users; readable "
        f"tables per user: min {readable[0]}, median {readable[len(readable) // 2]}, "
        f"max {readable[-1]}"
    )


if __name__ == "__main__":
    main()
