"""The world of the scale benchmarks (issue 26): a 10,000-person company's configuration.

`python benchmarks/scale_world.py DIR [--scale F] [--seed N]` writes into DIR the files `pdp up`
loads: `pdp.yaml`, `registry/` (one file per schema, `hive00.s0000.yaml`..., named as one
`policyFiles` entry: what object sync changes in one schema is one small file to parse again),
`policies.yaml`, `users.yaml`, `access-grant-mapping.yaml`, `cluster.properties` and
`sidecar.yaml`; with `--json`, the three big ones (`registry/*.json`, `policies.json`,
`users.json`) as JSON instead; with `--one-registry-file`, the registry as one file
(`registry.yaml`), the form a PDP without directory entries reads. YAML is the default: the
world as an operator writes it, and the figures of the earlier benchmarks; JSON is how an
export of 100,000 tables would be written, and the PDP reads it about 30 times faster
(docs/policy-format.md), so both are measured (benchmarks/RESULTS.md, "Scale world").
At `--scale 1`:

* 100,000 tables in 1,000 schemas (100 tables each) of 10 catalogs of one Trino connection,
  5 to 20 columns each (PII columns tagged `PII.Email`, `PII.Phone`...), tables tagged with
  topics (96 tags `Topic.<domain>.tNN`, each on 0.2 % of the tables) and 2 % `Certified`;
* 10,000 users in 200 groups (one to three groups each), with `department`, `region` and
  `costCenter` attributes;
* 1,000 subscription policies: by schema for groups (the bulk), by topic tag for groups, by
  attribute, `match: all` of a group and a department, by name (users and single tables), and
  staged ones on whole catalogs; some select nothing (see `_Policies`);
* every user sees at most 5 % of the tables (5,000 at scale 1), the widest user exactly that
  many, the median about 1,800.

`--scale F` multiplies users, groups, policies and the bound by F, schemas and tables per
schema each by its square root, so a small world has the same shape (0.05: 500 users, 224
schemas of 22 tables). Everything derives from the seed; the same (seed, scale) gives
byte-identical files. `build_world()` builds the world in memory (no I/O), `write_world()`
writes it, and the helpers at the end pick what a change touches: a group of about 1 % of the
users, a policy for it, 100 tables of one schema to add or drop.
`World.visible(user)` counts a user's tables from the world's own model of the policies (the
test checks it against the PDP's compiled snapshot).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402  (benchmarks/ is not a package; its Table, User and body builders)
from generate import COLUMN_NAMES, COLUMN_TYPES, Table  # noqa: E402

SEED = 20261207
CONNECTION = "trino-prod"
USERS, GROUPS, SCHEMAS, POLICIES = 10_000, 200, 1_000, 1_000
TABLES_PER_SCHEMA = 100
SCHEMAS_PER_CATALOG = 100
VISIBLE_SHARE = 0.05  # the most tables one user sees: 5,000 of 100,000
DOMAINS = ("finance", "sales", "marketing", "hr", "ops", "product", "risk", "legal")
REGIONS = ("emea", "amer", "apac")
ATTRIBUTES = {
    "department": DOMAINS,
    "region": REGIONS,
    "costCenter": tuple(f"cc{i:02d}" for i in range(40)),
}
TOPICS_PER_DOMAIN = 12
TOPIC_SHARE = 0.002  # of the tables carrying each topic tag
# The most a principal's policies may grant, as a share of the cap: 3 groups, one value of each
# attribute and the user's own policies add up to 0.96.
BUDGETS = {"group": 0.22, "department": 0.12, "region": 0.06, "costCenter": 0.08, "user": 0.02}
PII_COLUMNS = {"email": "PII.Email", "phone": "PII.Phone", "ip_address": "PII.Network"}
COLUMN_SETS = 256  # distinct column lists, shared by the tables (memory)
ADMIN = "trino-admin"


@dataclass(frozen=True)
class User(generate.User):
    """A directory user; `generate`'s body builders take it as they are."""

    attributes: tuple[tuple[str, str], ...] = ()  # (key, value), one value per key


@dataclass(frozen=True)
class World:
    seed: int
    scale: float
    tables: tuple[Table, ...]
    users: tuple[User, ...]
    groups: tuple[str, ...]
    policies: tuple[dict[str, Any], ...]
    cap: int  # the most tables a user may see
    # the model of what policies grant: ("group", g) / ("attribute", k, v) / ("user", u) ->
    # a bit set of table indexes; `match: all` policies as (group, (key, value), bits)
    _grants: dict[tuple[str, ...], int] = field(repr=False, compare=False)
    _both: tuple[tuple[str, tuple[str, str], int], ...] = field(repr=False, compare=False)

    def schemas(self) -> list[tuple[str, str]]:
        """(catalog, schema) of every schema, in table order."""
        return list(dict.fromkeys((t.catalog, t.schema) for t in self.tables))

    def members(self, group: str) -> list[User]:
        return [u for u in self.users if group in u.groups]

    def seen(self, user: User) -> int:
        """The bit set (bit i: `tables[i]`) of the tables `user` reads."""
        bits = self._grants.get(("user", user.name), 0)
        for g in user.groups:
            bits |= self._grants.get(("group", g), 0)
        for key, value in user.attributes:
            bits |= self._grants.get(("attribute", key, value), 0)
        for group, attribute, granted in self._both:
            if group in user.groups and attribute in user.attributes:
                bits |= granted
        return bits

    def visible(self, user: User) -> int:
        """How many tables `user` reads."""
        return self.seen(user).bit_count()

    def path(self, t: Table) -> str:
        """The table's registry path."""
        return f"{CONNECTION}.{t.catalog}.{t.schema}.{t.name}"


# --- building ----------------------------------------------------------------------------


def sizes(scale: float) -> dict[str, int]:
    """The counts of a world of `scale`: users, groups and policies in proportion; schemas and
    their tables each by the square root (a small world keeps several schemas per group)."""

    def n(full: int, factor: float, least: int) -> int:
        return max(least, round(full * factor))

    root = math.sqrt(scale)
    schemas, per_schema = n(SCHEMAS, root, 10), n(TABLES_PER_SCHEMA, root, 5)
    return {
        "users": n(USERS, scale, 20),
        "groups": n(GROUPS, scale, 4),
        "schemas": schemas,
        "tables_per_schema": per_schema,
        "policies": n(POLICIES, scale, 20),
        "cap": round(schemas * per_schema * VISIBLE_SHARE),
    }


def build_world(seed: int = SEED, scale: float = 1.0) -> World:
    """The world of `scale` (1: the issue's), derived from `seed` alone."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], not {scale}")
    rnd = random.Random(seed)
    size = sizes(scale)
    tables = _tables(rnd, size["schemas"], size["tables_per_schema"])
    groups = tuple(f"g{i:03d}" for i in range(size["groups"]))
    users = _users(rnd, size["users"], groups)
    return _Policies(rnd, tables, users, groups, size).build(seed, scale)


def _tables(rnd: random.Random, schemas: int, per_schema: int) -> tuple[Table, ...]:
    column_sets = []
    for _ in range(COLUMN_SETS):
        names = rnd.sample(COLUMN_NAMES[1:], rnd.randint(4, 19))
        column_sets.append((("id", "bigint"), *((c, rnd.choice(COLUMN_TYPES)) for c in names)))
    count = schemas * per_schema
    tags: dict[int, list[str]] = {}
    for d in DOMAINS:
        for i in range(TOPICS_PER_DOMAIN):
            for t in rnd.sample(range(count), max(1, round(count * TOPIC_SHARE))):
                tags.setdefault(t, []).append(f"Topic.{d}.t{i:02d}")
    for t in rnd.sample(range(count), round(count * 0.02)):
        tags.setdefault(t, []).append("Certified")
    tables = []
    for s in range(schemas):
        catalog = f"cat{s // SCHEMAS_PER_CATALOG:02d}"
        schema = f"{DOMAINS[s % len(DOMAINS)]}_{s:04d}"
        for t in range(per_schema):
            index = s * per_schema + t
            columns = rnd.choice(column_sets)
            tables.append(Table(catalog, schema, f"t{t:03d}", columns, tuple(tags.get(index, ()))))
    return tuple(tables)


def _users(rnd: random.Random, count: int, groups: tuple[str, ...]) -> tuple[User, ...]:
    users = []
    for u in range(count):
        k = rnd.choices((1, 2, 3), (50, 35, 15))[0]
        attributes = tuple((key, rnd.choice(values)) for key, values in ATTRIBUTES.items())
        users.append(
            User(f"user{u:05d}", tuple(sorted(rnd.sample(groups, k))), attributes=attributes)
        )
    return tuple(users)


class _Policies:
    """Draws the policies while keeping every user under the cap: each group, attribute value
    and named user has a budget (a share of the cap; a user is in at most 3 groups and has one
    value per attribute, and the shares add up to less than 1), a grant that would overrun it
    names something not registered instead (a policy selecting nothing, as real ones do), and
    the widest user is then topped up to the cap exactly."""

    def __init__(
        self,
        rnd: random.Random,
        tables: tuple[Table, ...],
        users: tuple[User, ...],
        groups: tuple[str, ...],
        size: dict[str, int],
    ) -> None:
        self.rnd, self.tables, self.users, self.groups = rnd, tables, users, groups
        self.count, self.cap = size["policies"], size["cap"]
        self.per_schema = size["tables_per_schema"]
        self.schema_names = list(dict.fromkeys((t.catalog, t.schema) for t in tables))
        self.by_tag: dict[str, int] = {}
        for i, t in enumerate(tables):
            for tag in t.tags:
                self.by_tag[tag] = self.by_tag.get(tag, 0) | (1 << i)
        self.topics = sorted(tag for tag in self.by_tag if tag.startswith("Topic."))
        self.grants: dict[tuple[str, ...], int] = {}  # the model: what each principal gets
        self.spent: dict[tuple[str, ...], int] = {}  # the budgets (`match: all` counts too)
        self.both: list[tuple[str, tuple[str, str], int]] = []
        self.policies: list[dict[str, Any]] = []

    def schema_bits(self, index: int) -> int:
        return ((1 << self.per_schema) - 1) << (index * self.per_schema)

    def schema_path(self, index: int) -> str:
        catalog, schema = self.schema_names[index]
        return f"{CONNECTION}.{catalog}.{schema}"

    def table_path(self, index: int) -> str:
        t = self.tables[index]
        return f"{CONNECTION}.{t.catalog}.{t.schema}.{t.name}"

    def fits(self, key: tuple[str, ...], bits: int) -> bool:
        """Whether `key` may get `bits` more; if so they are spent."""
        now = self.spent.get(key, 0) | bits
        if now.bit_count() > self.cap * BUDGETS[key[0] if key[0] != "attribute" else key[1]]:
            return False
        self.spent[key] = now
        return True

    def grant(self, key: tuple[str, ...], bits: int) -> bool:
        if not self.fits(key, bits):
            return False
        self.grants[key] = self.grants.get(key, 0) | bits
        return True

    def build(self, seed: int, scale: float) -> World:
        n = self.count
        shares = {"schema": 0.5, "tag": 0.15, "attribute": 0.1, "both": 0.05, "named": 0.18}
        quota = {kind: round(n * share) for kind, share in shares.items()}
        self.by_schema(quota["schema"])
        self.by_tag_policies(quota["tag"])
        self.by_attribute(quota["attribute"])
        self.by_group_and_attribute(quota["both"])
        self.by_name(quota["named"])
        self.staged(max(0, n - len(self.policies) - 1))  # and the top-up policy
        world = World(
            seed,
            scale,
            self.tables,
            self.users,
            self.groups,
            (),
            self.cap,
            self.grants,
            tuple(self.both),
        )
        self.top_up(world)
        return dataclasses.replace(world, policies=tuple(self.policies), _grants=self.grants)

    def by_schema(self, count: int) -> None:
        for i in range(count):
            group = self.rnd.choice(self.groups)
            picked = self.rnd.sample(range(len(self.schema_names)), self.rnd.choice((1, 1, 2)))
            bits = 0
            for s in picked:
                bits |= self.schema_bits(s)
            paths = [self.schema_path(s) for s in picked]
            if not self.grant(("group", group), bits):
                paths = [f"{CONNECTION}.retired.{self.schema_names[s][1]}" for s in picked]
            self.policies.append(
                {
                    "name": f"schema-readers-{i:04d}",
                    "access": "WRITE" if i % 10 == 0 else "READ",
                    "who": {"groups": [group]},
                    "what": {"schemas": paths},
                }
            )

    def by_tag_policies(self, count: int) -> None:
        for i in range(count):
            group, tag = self.rnd.choice(self.groups), self.rnd.choice(self.topics)
            if not self.grant(("group", group), self.by_tag[tag]):
                tag = "Retired"  # a tag no table carries
            self.policies.append(
                {
                    "name": f"tag-readers-{i:04d}",
                    "access": "READ",
                    "who": {"groups": [group]},
                    "what": {"tags": [tag]},
                }
            )

    def by_attribute(self, count: int) -> None:
        choices = [(key, value) for key, values in ATTRIBUTES.items() for value in values]
        for i in range(count):
            tag = self.rnd.choice(self.topics)
            for _ in range(5):  # a value whose budget still has room, if one comes up
                key, value = self.rnd.choice(choices)
                if self.grant(("attribute", key, value), self.by_tag[tag]):
                    break
            else:
                tag = "Retired"
            self.policies.append(
                {
                    "name": f"{key}-{value}-{i:04d}",
                    "access": "READ",
                    "who": {"attributes": {key: [value]}},
                    "what": {"tags": [tag]},
                }
            )

    def by_group_and_attribute(self, count: int) -> None:
        for i in range(count):  # a schema for the members of a group in one department
            group, department = self.rnd.choice(self.groups), self.rnd.choice(DOMAINS)
            schema = self.rnd.randrange(len(self.schema_names))
            path = self.schema_path(schema)
            if self.fits(("group", group), self.schema_bits(schema)):
                self.both.append((group, ("department", department), self.schema_bits(schema)))
            else:
                path = f"{CONNECTION}.retired.team_{i:04d}"
            self.policies.append(
                {
                    "name": f"team-{group}-{department}-{i:04d}",
                    "access": "READ",
                    "who": {
                        "groups": [group],
                        "attributes": {"department": [department]},
                        "match": "all",
                    },
                    "what": {"schemas": [path]},
                }
            )

    def by_name(self, count: int) -> None:
        most = max(1, min(10, int(self.cap * BUDGETS["user"])))
        for i in range(count):
            named = self.rnd.sample(self.users, self.rnd.randint(1, 3))
            picked = self.rnd.sample(range(len(self.tables)), self.rnd.randint(1, most))
            bits = 0
            for t in picked:
                bits |= 1 << t
            # a user whose budget is spent is left out (nobody at all: a user not in the directory)
            names = [u.name for u in named if self.grant(("user", u.name), bits)]
            self.policies.append(
                {
                    "name": f"table-writers-{i:04d}",
                    "access": "WRITE",
                    "who": {"users": names or ["departed-user"]},
                    "what": {"dataSources": [self.table_path(t) for t in picked]},
                }
            )

    def staged(self, count: int) -> None:
        catalogs = sorted({t.catalog for t in self.tables})
        for i in range(count):  # staged: parsed and resolved, granting nothing
            self.policies.append(
                {
                    "name": f"staged-catalog-{i:04d}",
                    "access": "READ",
                    "status": "staged",
                    "who": {"groups": [self.rnd.choice(self.groups)]},
                    "what": {"databases": [f"{CONNECTION}.{self.rnd.choice(catalogs)}"]},
                }
            )

    def top_up(self, world: World) -> None:
        """One named policy bringing the widest user to the cap exactly: whole schemas while
        they fit, then single tables."""
        widest = max(world.users, key=world.visible)
        seen = world.seen(widest)
        missing = self.cap - seen.bit_count()
        schemas, tables = [], []
        for s in range(len(self.schema_names)):
            if missing < self.per_schema:
                break
            if not seen & self.schema_bits(s):
                schemas.append(self.schema_path(s))
                seen |= self.schema_bits(s)
                missing -= self.per_schema
        for i in range(len(self.tables)):
            if missing <= 0:
                break
            if not seen >> i & 1:
                tables.append(self.table_path(i))
                seen |= 1 << i
                missing -= 1
        self.grants[("user", widest.name)] = self.grants.get(("user", widest.name), 0) | seen
        self.policies.append(
            {
                "name": "widest-reader",
                "access": "READ",
                "who": {"users": [widest.name]},
                "what": {"schemas": schemas, "dataSources": tables},
            }
        )


# --- writing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldFiles:
    directory: Path
    pdp: Path  # pdp.yaml: `pdp up --config`, `pdp serve --config`
    sidecar: Path  # sidecar.yaml: `pdp up --sidecar-config`
    registry: Path  # the directory registry/ (one file per schema), or the one registry file
    policies: Path
    users: Path
    mapping: Path
    properties: Path

    @property
    def policy_files(self) -> list[Path]:
        """`policyFiles` of pdp.yaml, in order (the registry's directory as one entry)."""
        return [self.registry, self.policies, self.users]


def write_world(
    world: World,
    out: Path,
    sidecar_port: int = 8181,
    pdp_port: int = 50051,
    *,
    as_json: bool = False,
    one_registry_file: bool = False,
) -> WorldFiles:
    """The world's configuration files in `out` (created if needed), block-style YAML as an
    operator writes them; the registry, policies and users as JSON if `as_json`. The registry
    is split by schema into registry/ (named as one `policyFiles` entry), or written as one
    file if `one_registry_file` (the form a PDP without directory entries reads)."""
    out.mkdir(parents=True, exist_ok=True)
    big = ".json" if as_json else ".yaml"
    files = WorldFiles(
        out,
        out / "pdp.yaml",
        out / "sidecar.yaml",
        out / (f"registry{big}" if one_registry_file else "registry"),
        out / f"policies{big}",
        out / f"users{big}",
        out / "access-grant-mapping.yaml",
        out / "cluster.properties",
    )
    users = {
        u.name: {"groups": list(u.groups), "attributes": dict(u.attributes)} for u in world.users
    }
    write_registry(world, files.registry, as_json=as_json)
    if as_json:
        files.policies.write_bytes(orjson.dumps({"policies": world.policies}, option=_INDENT))
        files.users.write_bytes(orjson.dumps({"users": users}, option=_INDENT))
    else:
        write_policies(world.policies, files.policies)
        _dump(files.users, {"users": users})
    _dump(files.mapping, {"accessGrantMapping": {"WRITE": ["READ", "WRITE"], "READ": ["READ"]}})
    files.properties.write_text(
        "immuta.allowed.immuta.datasource.operations=READ,WRITE\n"
        "immuta.allowed.non.immuta.datasource.operations=READ,WRITE,CREATE,OWN\n"
        f"immuta.user.admin={ADMIN}\n"
    )
    _dump(
        files.pdp,
        {
            "listen": f"127.0.0.1:{pdp_port}",
            "policyFiles": [p.name for p in files.policy_files],
            "accessGrantMapping": files.mapping.name,
            "reloadIntervalSeconds": 1,
            "auth": "none",  # loopback only
        },
    )
    _dump(
        files.sidecar,
        {
            "listen": f"127.0.0.1:{sidecar_port}",
            "workers": 2,
            "pdp": {"target": f"127.0.0.1:{pdp_port}", "timeoutSeconds": 5, "auth": "none"},
            "cluster": {"properties": files.properties.name},
            "cache": {"users": 10_000, "decisions": 200_000, "maxStaleSeconds": 300},
        },
    )
    return files


def write_registry(
    world: World,
    registry: Path,
    *,
    as_json: bool = False,
    only: tuple[str, str] | None = None,
) -> None:
    """The registry: into the directory `registry` one file per schema (`catalog.schema.yaml`,
    or `.json`), or the one file `registry` when its name has a suffix. `only` (a catalog and a
    schema) writes only that schema's file, as object sync changing one schema would: the file
    is removed if the schema has no table left. The one file is always written whole."""
    grouped: dict[tuple[str, str], list[Table]] = {}
    for t in world.tables:  # added tables may come last: group them with their schema
        grouped.setdefault((t.catalog, t.schema), []).append(t)
    if registry.suffix:
        _write_registry_file(world.tables, registry, as_json)
        return
    registry.mkdir(exist_ok=True)
    suffix = ".json" if as_json else ".yaml"
    wanted = [only] if only else list(grouped)
    for catalog, schema in wanted:
        path = registry / f"{catalog}.{schema}{suffix}"
        if tables := grouped.get((catalog, schema)):
            _write_registry_file(tables, path, as_json)
        else:
            path.unlink(missing_ok=True)
    if only is None:  # a directory written before: its schemas gone since are removed
        for stale in set(registry.glob(f"*{suffix}")) - {
            registry / f"{c}.{s}{suffix}" for c, s in grouped
        }:
            stale.unlink()


def _write_registry_file(tables: Iterable[Table], path: Path, as_json: bool) -> None:
    if as_json:
        path.write_bytes(orjson.dumps(registry_document(tables), option=_INDENT))
    else:
        path.write_text(_registry_yaml(tables))


_INDENT = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE


def registry_document(tables: Iterable[Table]) -> dict[str, Any]:
    """The registry of `tables` as a document (what a registry file holds), for JSON."""
    databases: dict[str, dict[str, list[Any]]] = {}
    for t in tables:
        entry: dict[str, Any] = {"name": t.name}
        if t.tags:
            entry["tags"] = list(t.tags)
        if columns := {c: [PII_COLUMNS[c]] for c, _ in t.columns if c in PII_COLUMNS}:
            entry["columns"] = columns
        databases.setdefault(t.catalog, {}).setdefault(t.schema, []).append(
            entry if len(entry) > 1 else t.name
        )
    connection = {
        "name": CONNECTION,
        "technology": "trino",
        "status": "active",
        "databases": [
            {
                "name": catalog,
                "schemas": [{"name": s, "tables": tables} for s, tables in schemas.items()],
            }
            for catalog, schemas in databases.items()
        ],
    }
    return {"connections": [connection]}


def _registry_yaml(tables: Iterable[Table]) -> str:
    """A registry file's YAML, written line by line (PyYAML's representer takes seconds for
    100,000 tables; every name here is a plain identifier, safe unquoted)."""
    lines = [
        "connections:",
        f"  - name: {CONNECTION}",
        "    technology: trino",
        "    status: active",
        "    databases:",
    ]
    grouped: dict[str, dict[str, list[Table]]] = {}
    for t in tables:  # added tables may come last: group them with their schema
        grouped.setdefault(t.catalog, {}).setdefault(t.schema, []).append(t)
    for catalog, schemas in grouped.items():
        lines += [f"      - name: {catalog}", "        schemas:"]
        for schema, in_schema in schemas.items():
            lines += [f"          - name: {schema}", "            tables:"]
            lines += [line for t in in_schema for line in _table_lines(t)]
    return "\n".join(lines) + "\n"


def _table_lines(t: Table) -> list[str]:
    columns = [f"{c}: [{PII_COLUMNS[c]}]" for c, _ in t.columns if c in PII_COLUMNS]
    if not t.tags and not columns:
        return [f"              - {t.name}"]
    lines = [f"              - name: {t.name}"]
    if t.tags:
        lines.append(f"                tags: [{', '.join(t.tags)}]")
    if columns:
        lines.append(f"                columns: {{{', '.join(columns)}}}")
    return lines


def write_policies(policies: Iterable[dict[str, Any]], path: Path) -> None:
    _dump(path, {"policies": list(policies)})


def _dump(path: Path, document: dict[str, Any]) -> None:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.write_text(
        yaml.dump(document, Dumper=dumper, sort_keys=False, width=100, default_flow_style=None)
    )


# --- what a change touches (the delta benchmarks) -------------------------------------------


def group_of_share(world: World, share: float = 0.01) -> str:
    """The group whose membership is closest to `share` of the users (1 %: 100 at scale 1)."""
    target = share * len(world.users)
    counts = {g: 0 for g in world.groups}
    for u in world.users:
        for g in u.groups:
            counts[g] += 1
    return min(world.groups, key=lambda g: (abs(counts[g] - target), g))


def user_group(world: World, user: User, rnd: random.Random) -> str:
    """One of `user`'s groups."""
    return rnd.choice(user.groups)


def policy_for_group(world: World, group: str, name: str = "delta-grant") -> dict[str, Any]:
    """A new policy granting `group` one more schema (one its members' policies do not name
    yet): adding or removing it changes only that group's members' views."""
    named = {p for policy in world.policies for p in policy["what"].get("schemas", ())}
    for catalog, schema in world.schemas():
        path = f"{CONNECTION}.{catalog}.{schema}"
        if path not in named:
            return {
                "name": name,
                "access": "READ",
                "who": {"groups": [group]},
                "what": {"schemas": [path]},
            }
    raise ValueError("every schema is named by a policy")


def with_policy(world: World, policy: dict[str, Any]) -> World:
    """`world` with `policy` added (the in-memory model of what users see is not updated)."""
    return dataclasses.replace(world, policies=(*world.policies, policy))


def schema_tables(world: World, rnd: random.Random, count: int = 100) -> list[Table]:
    """`count` tables of one schema (drawn by `rnd`), to drop."""
    catalog, schema = rnd.choice(world.schemas())
    return [t for t in world.tables if t.catalog == catalog and t.schema == schema][:count]


def new_tables(world: World, rnd: random.Random, count: int = 100) -> list[Table]:
    """`count` tables not in `world`, all in one existing schema (drawn by `rnd`), to add:
    object sync finding new tables."""
    catalog, schema = rnd.choice(world.schemas())
    columns = world.tables[0].columns
    return [Table(catalog, schema, f"new{i:04d}", columns) for i in range(count)]


def with_tables(world: World, added: Iterable[Table] = (), dropped: Iterable[Table] = ()) -> World:
    """`world` with tables added and dropped (the model of what users see is not updated)."""
    gone = set(dropped)
    return dataclasses.replace(world, tables=(*(t for t in world.tables if t not in gone), *added))


@dataclass(frozen=True)
class Changes:
    """The delta benchmarks' three changes, one after the other: a policy for the group of 1 %
    of the users (`changed`), 100 tables added to one schema (`grown`), then 100 tables of one
    schema dropped (`shrunk`)."""

    group: str
    changed: World
    added: list[Table]
    grown: World
    dropped: list[Table]
    shrunk: World


def changes(world: World, rnd: random.Random) -> Changes:
    group = group_of_share(world)
    changed = with_policy(world, policy_for_group(world, group))
    added = new_tables(changed, rnd)
    grown = with_tables(changed, added=added)
    dropped = schema_tables(grown, rnd)
    return Changes(group, changed, added, grown, dropped, with_tables(grown, dropped=dropped))


@dataclass(frozen=True)
class Staged:
    """A change to the world's files, rendered ahead into a directory of its own and put in
    place by renames, as a configuration tool or object sync writes (no reader meets half a
    file). Making the change then costs its maker no CPU worth naming: a benchmark whose load
    runs in the same process is not held by the rendering (1,000 policies as YAML take about
    0.2 s of the interpreter). It can be made again (each time a copy renamed into place)."""

    files: tuple[tuple[Path, Path], ...] = ()  # (rendered, in place)
    removed: tuple[Path, ...] = ()

    def __call__(self) -> None:
        for rendered, live in self.files:
            incoming = live.with_name(f".{live.name}.incoming")
            shutil.copyfile(rendered, incoming)
            os.replace(incoming, live)
        for path in self.removed:
            path.unlink(missing_ok=True)

    def __add__(self, other: Staged) -> Staged:
        return Staged(self.files + other.files, self.removed + other.removed)


def staged_policies(world: World, files: WorldFiles, stage: Path) -> Staged:
    stage.mkdir(parents=True)
    write_policies(world.policies, stage / files.policies.name)
    return Staged(((stage / files.policies.name, files.policies),))


def staged_schemas(world: World, files: WorldFiles, stage: Path, tables: Iterable[Table]) -> Staged:
    """The registry files of the schemas of `tables` as `world` has them (a schema left with
    no table: its file removed), or the one registry file whole."""
    stage.mkdir(parents=True)
    if files.registry.suffix:
        write_registry(world, stage / files.registry.name)
        return Staged(((stage / files.registry.name, files.registry),))
    staged = Staged()
    for catalog, schema in dict.fromkeys((t.catalog, t.schema) for t in tables):
        write_registry(world, stage, only=(catalog, schema))
        name = f"{catalog}.{schema}.yaml"
        if (stage / name).exists():
            staged += Staged(files=((stage / name, files.registry / name),))
        else:
            staged += Staged(removed=(files.registry / name,))
    return staged


def staged_changes(
    world: World, files: WorldFiles, rnd: random.Random, stage: Path, restore: bool = False
) -> list[tuple[str, Staged]]:
    """`changes` rendered into `stage` (beside the world's files: renames stay on one file
    system), labelled; with `restore`, a fourth putting back what they changed as `world`
    has it."""
    c = changes(world, rnd)
    staged = [
        (
            f"policy for group {c.group} ({len(c.changed.members(c.group))} users)",
            staged_policies(c.changed, files, stage / "policy"),
        ),
        (
            f"{len(c.added)} tables added to one schema",
            staged_schemas(c.grown, files, stage / "added", c.added),
        ),
        (
            f"{len(c.dropped)} tables of one schema dropped",
            staged_schemas(c.shrunk, files, stage / "dropped", c.dropped),
        ),
    ]
    if restore:
        back = staged_policies(world, files, stage / "restored-policies")
        back += staged_schemas(world, files, stage / "restored", [*c.added, *c.dropped])
        staged.append(("restored", back))
    return staged


def stats(world: World) -> dict[str, int]:
    counts = sorted(world.visible(u) for u in world.users)
    return {
        "users": len(world.users),
        "groups": len(world.groups),
        "tables": len(world.tables),
        "schemas": len(world.schemas()),
        "policies": len(world.policies),
        "visible_min": counts[0],
        "visible_median": counts[len(counts) // 2],
        "visible_max": counts[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write into")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full world")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--sidecar-port", type=int, default=8181)
    parser.add_argument("--pdp-port", type=int, default=50051)
    parser.add_argument("--json", action="store_true", help="registry, policies, users as JSON")
    parser.add_argument(
        "--one-registry-file", action="store_true", help="the registry as one file, not split"
    )
    args = parser.parse_args()
    world = build_world(args.seed, args.scale)
    write_world(
        world,
        args.out,
        args.sidecar_port,
        args.pdp_port,
        as_json=args.json,
        one_registry_file=args.one_registry_file,
    )
    print(f"wrote {args.out}: {stats(world)}")


if __name__ == "__main__":
    main()
