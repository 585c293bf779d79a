"""The project's policy-and-registry YAML (documented in docs/policy-format.md).

A file may hold any of three top-level sections: `connections` (the registry), `policies`
(subscription policies) and `users` (the directory). Several files are merged; a name defined
twice is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pdp.config.errors import Collector
from pdp.config.fields import Fields
from pdp.config.yamlsource import line_of, load_yaml
from pdp.core.model import Access, fold
from pdp.policy.model import (
    DataSource,
    DirectoryUser,
    GlobalPermission,
    ObjectType,
    Policy,
    PolicyStatus,
    Status,
    Technology,
)

SECTIONS = ("connections", "policies", "users")


@dataclass
class PolicyDocuments:
    """What the files define, merged; validated but not yet compiled."""

    sources: list[DataSource] = field(default_factory=list)
    retired: list[DataSource] = field(default_factory=list)  # inactive or deleted entries
    connections: dict[str, Technology] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    users: dict[str, DirectoryUser] = field(default_factory=dict)
    # connection -> (database, schema) -> schema monitoring on (the legacy model, spec §8.1):
    # what an upgrade to a connection makes of the schema's unregistered tables
    schema_monitoring: dict[str, dict[tuple[str, str], bool]] = field(default_factory=dict)


def parse_policy_file(text: str, file: str, into: PolicyDocuments) -> Collector:
    found = Collector(file)
    document = load_yaml(text, file)
    if document is None:
        return found
    top = Fields(document, file, found, SECTIONS)
    for index, item in enumerate(top.list("connections")):
        _connection(item, f"connections[{index}]", found, into)
    for index, item in enumerate(top.list("policies")):
        _policy(item, f"policies[{index}]", found, into)
    users = document.get("users", {}) if isinstance(document, dict) else {}
    if not isinstance(users, dict):
        found.error(line_of(document, "users"), "users: expected a mapping of user name to entry")
        users = {}
    for name, entry in users.items():
        _user(str(name), entry or {}, f"users.{name}", found, into, line_of(users, name))
    return found


def _connection(data: Any, where: str, found: Collector, into: PolicyDocuments) -> None:
    f = Fields(data, where, found, ("name", "technology", "status", "databases"))
    name = f.text("name", required=True)
    technology = f.enum("technology", Technology, Technology.TRINO)
    if "technology" not in f.data:
        found.error(f.line(), f"{where}: missing required key 'technology'")
    if fold(name) in {fold(n) for n in into.connections}:
        found.error(f.line("name"), f"{where}: connection {name!r} is defined twice")
    into.connections[name] = technology
    status = f.enum("status", Status, Status.INACTIVE)  # new objects start inactive
    for d_index, db_data in enumerate(f.list("databases")):
        d_where = f"{where}.databases[{d_index}]"
        db = Fields(db_data, d_where, found, ("name", "status", "trinoCatalog", "schemas"))
        db_name = db.text("name", required=True)
        db_status = db.enum("status", Status, status)
        catalog = db.text("trinoCatalog") or None
        if technology is Technology.TRINO:
            if catalog:
                found.error(
                    db.line("trinoCatalog"),
                    f"{d_where}.trinoCatalog: a Trino "
                    "connection's databases are its catalogs already",
                )
            catalog = db_name
        for s_index, schema_data in enumerate(db.list("schemas")):
            s_where = f"{d_where}.schemas[{s_index}]"
            schema = Fields(
                schema_data, s_where, found, ("name", "status", "tables", "schemaMonitoring")
            )
            schema_name = schema.text("name", required=True)
            if "schemaMonitoring" in schema.data:
                into.schema_monitoring.setdefault(name, {})[(db_name, schema_name)] = schema.flag(
                    "schemaMonitoring"
                )
            schema_status = schema.enum("status", Status, db_status)
            for t_index, table_data in enumerate(schema.list("tables")):
                t_where = f"{s_where}.tables[{t_index}]"
                if isinstance(table_data, str):  # shorthand: just the name
                    table_data = {"name": table_data}
                table = Fields(
                    table_data, t_where, found, ("name", "status", "type", "tags", "deleted")
                )
                table_name = table.text("name", required=True)
                active = table.enum("status", Status, schema_status) is Status.ACTIVE
                source = DataSource(
                    connection=name,
                    technology=technology,
                    database=db_name,
                    schema=schema_name,
                    name=table_name,
                    type=table.enum("type", ObjectType, ObjectType.TABLE),
                    tags=frozenset(fold(t) for t in table.strings("tags")),
                    trino_catalog=catalog,
                )
                if active and not table.flag("deleted"):
                    into.sources.append(source)
                else:
                    into.retired.append(source)


def _policy(data: Any, where: str, found: Collector, into: PolicyDocuments) -> None:
    f = Fields(data, where, found, ("name", "access", "status", "who", "what"))
    name = f.text("name", required=True)
    if name in into.policies:
        found.error(f.line("name"), f"{where}: policy {name!r} is defined twice")
    access = f.text("access", required=True).upper()
    if access and access not in ("READ", "WRITE"):
        found.error(
            f.line("access"),
            f"{where}.access: unknown policy access type "
            f"{f.data.get('access')!r} (expected READ or WRITE)",
        )
    who = Fields(
        f.data.get("who", {}),
        f"{where}.who",
        found,
        ("anyone", "users", "groups", "attributes", "match"),
    )
    match = who.text("match", default="any")
    if match not in ("any", "all"):
        found.error(who.line("match"), f"{where}.who.match: expected 'any' or 'all', got {match!r}")
    what = Fields(
        f.data.get("what", {}),
        f"{where}.what",
        found,
        ("dataSources", "connections", "databases", "schemas", "tags"),
    )
    targets = {
        key: _paths(what, key, depth)
        for key, depth in (("dataSources", 4), ("connections", 1), ("databases", 2), ("schemas", 3))
    }
    if not any(what.data.get(key) for key in (*targets, "tags")):
        found.warn(f.line(), f"{where}: policy {name!r} targets no data source")
    into.policies[name] = Policy(
        name=name,
        access=Access(access) if access in ("READ", "WRITE") else Access.READ,
        status=f.enum("status", PolicyStatus, PolicyStatus.ACTIVE),
        anyone=who.flag("anyone"),
        users=frozenset(who.strings("users")),
        groups=frozenset(who.strings("groups")),
        attributes=who.attributes("attributes"),
        match_all=match == "all",
        data_sources=targets["dataSources"],
        connections=targets["connections"],
        databases=targets["databases"],
        schemas=targets["schemas"],
        tags=frozenset(fold(t) for t in what.strings("tags")),
    )


def _paths(what: Fields, key: str, depth: int) -> frozenset[str]:
    result = set()
    for path in what.strings(key):
        if len(path.split(".")) != depth:
            example = ".".join(("connection", "database", "schema", "table")[:depth])
            what.found.error(
                what.line(key), f"{what.where}.{key}: {path!r} should look like {example!r}"
            )
        result.add(fold(path))
    return frozenset(result)


def _user(
    name: str, data: Any, where: str, found: Collector, into: PolicyDocuments, line: int | None
) -> None:
    f = Fields(data, where, found, ("groups", "attributes", "permissions"))
    if name in into.users:
        found.error(line, f"{where}: user {name!r} is defined twice")
    permissions = set()
    for value in f.strings("permissions"):
        try:
            permissions.add(GlobalPermission(value.upper()))
        except ValueError:
            known = ", ".join(p.value for p in GlobalPermission)
            found.error(
                f.line("permissions"),
                f"{where}.permissions: unknown permission {value!r} (expected {known})",
            )
    into.users[name] = DirectoryUser(
        name,
        frozenset(f.strings("groups")),
        f.attributes("attributes"),
        frozenset(permissions),
    )
