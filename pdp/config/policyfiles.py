"""The project's policy-and-registry YAML (documented in docs/policy-format.md).

A file may hold any of these top-level sections: `connections` (the registry), `policies`
(subscription policies), `masks` and `rowFilters` (data policies), `builtins` (the state of the
policies the product ships) and `users` (the directory).
Several files are merged; a name defined twice is an error.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from pdp.config.errors import Collector
from pdp.config.fields import Fields
from pdp.config.yamlsource import line_of, load_yaml
from pdp.core.datapolicy import PLACEHOLDERS, TemplateError, parse_template
from pdp.core.model import Access, MaskKind, fold
from pdp.policy.builtin import BUILTIN_MASKS, is_builtin
from pdp.policy.model import (
    EVERYONE,
    Audience,
    DataSource,
    DirectoryUser,
    GlobalPermission,
    MaskingPolicy,
    ObjectType,
    Policy,
    PolicyStatus,
    RowFilterPolicy,
    Status,
    Targets,
    Technology,
)

SECTIONS = ("connections", "policies", "masks", "rowFilters", "builtins", "users")
TARGET_KEYS = ("dataSources", "connections", "databases", "schemas", "tags")


@dataclass
class PolicyDocuments:
    """What the files define, merged; validated but not yet compiled."""

    sources: list[DataSource] = field(default_factory=list)
    retired: list[DataSource] = field(default_factory=list)  # inactive or deleted entries
    connections: dict[str, Technology] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    users: dict[str, DirectoryUser] = field(default_factory=dict)
    masks: dict[str, MaskingPolicy] = field(default_factory=dict)
    row_filters: dict[str, RowFilterPolicy] = field(default_factory=dict)
    # folded built-in policy name -> the state the files give it (absent: staged)
    builtins: dict[str, PolicyStatus] = field(default_factory=dict)
    # connection -> (database, schema) -> schema monitoring on (the legacy model, spec §8.1):
    # what an upgrade to a connection makes of the schema's unregistered tables
    schema_monitoring: dict[str, dict[tuple[str, str], bool]] = field(default_factory=dict)


def parse_policy_file(text: str, file: str, into: PolicyDocuments) -> Collector:
    found = Collector(file)
    document = load_yaml(text, file)
    if document is None:
        return found
    top = Fields(document, file, found, SECTIONS)
    here: set[str] = set()  # the connections of this file (folded)
    for index, item in enumerate(top.list("connections")):
        _connection(item, f"connections[{index}]", found, into, here)
    for index, item in enumerate(top.list("policies")):
        _policy(item, f"policies[{index}]", found, into)
    for index, item in enumerate(top.list("masks")):
        _mask(item, f"masks[{index}]", found, into)
    for index, item in enumerate(top.list("rowFilters")):
        _row_filter(item, f"rowFilters[{index}]", found, into)
    if isinstance(document, dict) and document.get("builtins") is not None:
        _builtins(document, found, into)
    users = document.get("users", {}) if isinstance(document, dict) else {}
    if not isinstance(users, dict):
        found.error(line_of(document, "users"), "users: expected a mapping of user name to entry")
        users = {}
    for name, entry in users.items():
        _user(str(name), entry or {}, f"users.{name}", found, into, users)
    return found


def _connection(
    data: Any, where: str, found: Collector, into: PolicyDocuments, here: set[str]
) -> None:
    """A connection, or (in another file) more of one: a registry of many tables may be split
    over files, by database or schema, so that a change re-parses only the file it is in."""
    f = Fields(data, where, found, ("name", "technology", "status", "databases"))
    name = f.text("name", required=True)
    technology = f.enum("technology", Technology, Technology.TRINO)
    if "technology" not in f.data:
        found.error(f.line(), f"{where}: missing required key 'technology'")
    held = {fold(n): t for n, t in into.connections.items()}
    if fold(name) in here:
        found.error(f.line("name"), f"{where}: connection {name!r} is defined twice")
    elif fold(name) in held and held[fold(name)] is not technology:
        found.error(
            f.line("technology"),
            f"{where}: connection {name!r} is {held[fold(name)].value} in another file",
        )
    here.add(fold(name))
    if fold(name) not in held:
        into.connections[name] = technology
    status = f.enum("status", Status, Status.INACTIVE)  # new objects start inactive
    for d_index, db_data in enumerate(f.list("databases")):
        d_where = f"{where}.databases[{d_index}]"
        _database(db_data, d_where, (name, technology), status, found, into)


@dataclass(frozen=True, slots=True)
class _Schema:
    """Where a table of a connection's file sits, as its `DataSource` names it."""

    connection: str
    technology: Technology
    database: str
    schema: str
    trino_catalog: str | None


def _database(
    data: Any,
    where: str,
    connection: tuple[str, Technology],
    status: Status,
    found: Collector,
    into: PolicyDocuments,
) -> None:
    name, technology = connection
    db = Fields(data, where, found, ("name", "status", "trinoCatalog", "schemas"))
    db_name = db.text("name", required=True)
    db_status = db.enum("status", Status, status)
    catalog = db.text("trinoCatalog") or None
    if technology is Technology.TRINO:
        if catalog:
            found.error(
                db.line("trinoCatalog"),
                f"{where}.trinoCatalog: a Trino connection's databases are its catalogs already",
            )
        catalog = db_name
    for s_index, schema_data in enumerate(db.list("schemas")):
        s_where = f"{where}.schemas[{s_index}]"
        schema = Fields(
            schema_data, s_where, found, ("name", "status", "tables", "schemaMonitoring")
        )
        schema_name = schema.text("name", required=True)
        if "schemaMonitoring" in schema.data:
            into.schema_monitoring.setdefault(name, {})[(db_name, schema_name)] = schema.flag(
                "schemaMonitoring"
            )
        schema_status = schema.enum("status", Status, db_status)
        place = _Schema(name, technology, db_name, schema_name, catalog)
        for t_index, table_data in enumerate(schema.list("tables")):
            t_where = f"{s_where}.tables[{t_index}]"
            _table(table_data, t_where, place, schema_status, found, into)


def _table(
    data: Any, where: str, place: _Schema, status: Status, found: Collector, into: PolicyDocuments
) -> None:
    if isinstance(data, str):  # shorthand: just the name
        data = {"name": data}
    table = Fields(data, where, found, ("name", "status", "type", "tags", "deleted", "columns"))
    table_name = table.text("name", required=True)
    active = table.enum("status", Status, status) is Status.ACTIVE
    source = DataSource(
        connection=place.connection,
        technology=place.technology,
        database=place.database,
        schema=place.schema,
        name=table_name,
        type=table.enum("type", ObjectType, ObjectType.TABLE),
        tags=_folded(tuple(table.strings("tags"))) or frozenset(),
        trino_catalog=place.trino_catalog,
        columns=_column_tags(table),
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
    name: str, data: Any, where: str, found: Collector, into: PolicyDocuments, users: Any
) -> None:
    f = Fields(data, where, found, ("groups", "attributes", "permissions"))
    if name in into.users:  # (the line looked up only now: a JSON file's lines are lazy)
        found.error(line_of(users, name), f"{where}: user {name!r} is defined twice")
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


def _column_tags(table: Fields) -> tuple[tuple[str, frozenset[str]], ...]:
    """`columns: {email: [PII.Email], ssn: [PII]}` under a table."""
    raw = table.data.get("columns")
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        table.error("columns", "expected a mapping of column name to a list of tags")
        return ()
    result = []
    for name, tags in raw.items():
        if isinstance(tags, str):
            tags = [tags]
        try:
            folded = _folded(tuple(tags)) if isinstance(tags, list) else None
        except TypeError:  # an entry that is a list or a mapping
            folded = None
        if folded is None:
            table.found.error(
                line_of(raw, name), f"{table.path('columns')}.{name}: expected a list of tags"
            )
            continue
        result.append((fold(str(name)), folded))
    return tuple(result)


@functools.lru_cache(maxsize=4096)  # a registry repeats few tag lists over 100,000 tables
def _folded(tags: tuple[Any, ...]) -> frozenset[str] | None:
    """The tags folded, None unless all are non-empty strings."""
    if not all(isinstance(t, str) and t for t in tags):
        return None
    return frozenset(fold(t) for t in tags)


DATA_POLICY_KEYS = ("name", "status", "what", "exceptFor", "onlyFor")
MASK_FORMS = "null, hash, {constant: value}, {keepLast: n}, {keepFirst: n} or {round: digits}"


def _builtins(document: dict[str, Any], found: Collector, into: PolicyDocuments) -> None:
    """`builtins: {New Column Added: active}`: the state of each built-in policy."""
    raw = document["builtins"]
    if not isinstance(raw, dict):
        found.error(
            line_of(document, "builtins"),
            "builtins: expected a mapping of built-in policy name to active or staged",
        )
        return
    known = ", ".join(BUILTIN_MASKS)
    for name, state in raw.items():
        line = line_of(raw, name)
        if not is_builtin(str(name)):
            found.error(line, f"builtins.{name}: no such built-in policy (known: {known})")
            continue
        try:
            status = PolicyStatus(str(state).strip().lower())
        except ValueError:
            found.error(line, f"builtins.{name}: expected active or staged, got {state!r}")
            continue
        if fold(str(name)) in into.builtins:
            found.error(line, f"builtins.{name}: the state is given twice")
        into.builtins[fold(str(name))] = status


def _data_policy_name(f: Fields, where: str, into: PolicyDocuments) -> str:
    name = f.text("name", required=True)
    if is_builtin(name):
        f.found.error(
            f.line("name"),
            f"{where}: {name!r} is a built-in policy: set its state under `builtins:`",
        )
    if name in into.masks or name in into.row_filters:
        f.found.error(f.line("name"), f"{where}: data policy {name!r} is defined twice")
    return name


def _targets(f: Fields, where: str) -> Targets:
    """`what:` names data sources as a subscription policy's does; absent: all of them."""
    if f.data.get("what") is None:
        return Targets(everything=True)
    on = Fields(f.data.get("what"), f"{where}.what", f.found, TARGET_KEYS)
    paths = {
        key: _paths(on, key, depth)
        for key, depth in (("dataSources", 4), ("connections", 1), ("databases", 2), ("schemas", 3))
    }
    targets = Targets(
        data_sources=paths["dataSources"],
        connections=paths["connections"],
        databases=paths["databases"],
        schemas=paths["schemas"],
        tags=frozenset(fold(t) for t in on.strings("tags")),
    )
    if not any(on.data.get(key) for key in TARGET_KEYS):
        on.found.warn(f.line("what"), f"{where}.what: names no data source (it does nothing)")
    return targets


def _audience(f: Fields, where: str) -> Audience:
    if f.has("exceptFor") and f.has("onlyFor"):
        f.error("onlyFor", "give exceptFor or onlyFor, not both")
    for key, exclude in (("exceptFor", True), ("onlyFor", False)):
        if f.has(key):
            who = Fields(f.data[key], f"{where}.{key}", f.found, ("users", "groups", "attributes"))
            audience = Audience(
                users=frozenset(who.strings("users")),
                groups=frozenset(who.strings("groups")),
                attributes=who.attributes("attributes"),
                exclude=exclude,
            )
            if not (audience.users or audience.groups or audience.attributes):
                f.error(key, "name at least one of users, groups or attributes")
            return audience
    return EVERYONE


def _mask(data: Any, where: str, found: Collector, into: PolicyDocuments) -> None:
    f = Fields(data, where, found, (*DATA_POLICY_KEYS, "columns", "mask"))
    name = _data_policy_name(f, where, into)
    columns = Fields(f.data.get("columns", {}), f"{where}.columns", found, ("names", "tags"))
    names = frozenset(fold(c) for c in columns.strings("names"))
    tags = frozenset(fold(t) for t in columns.strings("tags"))
    if not names and not tags:
        found.error(f.line("columns") or f.line(), f"{where}.columns: name columns or tags")
    if "mask" not in f.data:
        found.error(f.line(), f"{where}: missing required key 'mask' ({MASK_FORMS})")
    kind, value, count = _mask_form(f, where)
    into.masks[name] = MaskingPolicy(
        name=name,
        kind=kind,
        on=_targets(f, where),
        columns=names,
        column_tags=tags,
        value=value,
        count=count,
        audience=_audience(f, where),
        status=f.enum("status", PolicyStatus, PolicyStatus.ACTIVE),
    )


def _mask_form(f: Fields, where: str) -> tuple[MaskKind, Any, int]:
    raw = f.data.get("mask")
    if raw is None or (isinstance(raw, str) and raw.strip().lower() == "null"):
        return MaskKind.NULL, None, 0
    if isinstance(raw, str) and raw.strip().lower() == "hash":
        return MaskKind.HASH, None, 0
    if isinstance(raw, dict) and len(raw) == 1:
        ((key, value),) = raw.items()
        if key == "constant":
            if isinstance(value, str | int | float | bool):
                return MaskKind.CONSTANT, value, 0
            f.error("mask", f"constant: expected a string, number or boolean, got {value!r}")
            return MaskKind.NULL, None, 0
        if key in ("keepLast", "keepFirst", "round"):
            low = -30 if key == "round" else 0
            if isinstance(value, int) and not isinstance(value, bool) and low <= value <= 1000:
                kind = {"keepLast": MaskKind.KEEP_LAST, "keepFirst": MaskKind.KEEP_FIRST}
                return kind.get(key, MaskKind.ROUND), None, value
            f.error("mask", f"{key}: expected a whole number from {low} to 1000, got {value!r}")
            return MaskKind.NULL, None, 0
    f.error("mask", f"unknown mask {raw!r} (expected {MASK_FORMS})")
    return MaskKind.NULL, None, 0


def _row_filter(data: Any, where: str, found: Collector, into: PolicyDocuments) -> None:
    f = Fields(data, where, found, (*DATA_POLICY_KEYS, "where"))
    name = _data_policy_name(f, where, into)
    predicate = f.text("where", required=True)
    template: tuple[Any, ...] = ()
    if predicate:
        try:
            template = parse_template(predicate)
        except TemplateError as exc:
            f.error("where", f"{exc} in {predicate!r} (placeholders: {PLACEHOLDERS})")
    into.row_filters[name] = RowFilterPolicy(
        name=name,
        on=_targets(f, where),
        where=predicate,
        template=template,
        audience=_audience(f, where),
        status=f.enum("status", PolicyStatus, PolicyStatus.ACTIVE),
    )
