"""The store compiled into the registry model the PDP already uses (`pdp.policy.DataSource`).

A table object is a data source while it is effectively active and not missing. Its tags are
its own plus the connection tag `Connections.<Technology>.<Key>.<Database>.<Schema>`, folded
like the YAML registry's tags; it carries its tagged columns (object sync's `New`) and its Data
Owners (granted on it or any node above), which the built-in New Column Added mask needs. Every
other table goes to `retired` (grant sync still looks at those). `StoreRegistry.version` is the
store version the entries were read at, in the same transaction, so the PDP can name its
revision after both sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from pdp.core.model import fold
from pdp.objects.keys import key_identity
from pdp.objects.paths import Kind
from pdp.objects.settings import RemoteState
from pdp.objects.tags import connection_tag
from pdp.policy.model import DataSource, ObjectType, Technology
from pdp.store.legacy import Integration, LegacySource, MatchState, UpgradeState
from pdp.store.model import ConnectionState, Role
from pdp.store.schema import (
    column_tags,
    columns,
    connections,
    object_permissions,
    object_tags,
    objects,
)
from pdp.store.store import Reader, Store

_TYPE_ALIASES = {
    "BASE_TABLE": ObjectType.TABLE,
    "MANAGED": ObjectType.TABLE,
    "EXTERNAL": ObjectType.EXTERNAL_TABLE,
    "STREAMING_TABLE": ObjectType.STREAMING_TABLE,
}


@dataclass(frozen=True, slots=True)
class StoreRegistry:
    version: int
    sources: tuple[DataSource, ...] = ()
    retired: tuple[DataSource, ...] = ()
    connections: Mapping[str, Technology] = field(default_factory=dict)
    # legacy integration name -> the connection key it was upgraded to (when they differ):
    # policies naming the legacy name keep applying (pdp.control.snapshot rewrites them)
    aliases: Mapping[str, str] = field(default_factory=dict)
    # False: the store was never read and no snapshot of it is saved, so what it registers is
    # unknown (decisions then deny every object the policy files do not declare)
    known: bool = True


@dataclass(frozen=True, slots=True)
class TreeRow:
    """One stored object as the compiler needs it."""

    id: int
    parent_id: int | None
    kind: Kind
    name: str
    is_active: bool | None
    remote_state: RemoteState
    remote_type: str | None = None


def read_registry(store: Store) -> StoreRegistry:
    with store.read() as reader:
        return compile_registry(reader)


def compile_registry(reader: Reader) -> StoreRegistry:
    """Read every connection's tree in one consistent transaction and compile it."""
    db = reader._db
    version = reader.version()
    by_connection = _tree_rows(reader)
    tags: dict[int, set[str]] = {}
    for object_id, tag in db.execute(
        select(object_tags.c.object_id, object_tags.c.tag)
        .join(objects, objects.c.id == object_tags.c.object_id)
        .where(objects.c.kind == Kind.TABLE.value)
    ):
        tags.setdefault(object_id, set()).add(tag)
    column_tagging = read_column_tags(reader)
    owners = read_owners(reader)
    sources: list[DataSource] = []
    retired: list[DataSource] = []
    technologies: dict[str, Technology] = {}
    for connection in db.execute(select(connections).order_by(connections.c.key_folded)):
        technology = Technology(connection.technology)
        technologies[connection.key] = technology
        if connection.state == ConnectionState.UPGRADING.value:
            continue  # until finalized its legacy data sources govern (below)
        active, inactive = compile_connection(
            connection.key,
            technology,
            connection.settings,
            by_connection.get(connection.id, ()),
            tags,
            column_tagging,
            owners,
        )
        sources.extend(active)
        retired.extend(inactive)
    aliases: dict[str, str] = {}
    for integration in reader.integrations():
        if integration.upgrade_state is UpgradeState.FINALIZED:
            if integration.display_name and fold(integration.display_name) != fold(
                integration.name
            ):
                aliases[integration.name] = integration.display_name
            continue
        technologies.setdefault(integration.name, integration.technology)
        active_legacy, inactive_legacy = compile_legacy(integration, reader.sources_of(integration))
        sources.extend(active_legacy)
        retired.extend(inactive_legacy)
    return StoreRegistry(version, tuple(sources), tuple(retired), technologies, aliases)


def _tree_rows(reader: Reader, connection_id: int | None = None) -> dict[int, list[TreeRow]]:
    """The stored objects by connection id (of one connection, with `connection_id`)."""
    query = select(
        objects.c.id,
        objects.c.connection_id,
        objects.c.parent_id,
        objects.c.kind,
        objects.c.name,
        objects.c.is_active,
        objects.c.remote_state,
        objects.c.remote_type,
    )
    if connection_id is not None:
        query = query.where(objects.c.connection_id == connection_id)
    by_connection: dict[int, list[TreeRow]] = {}
    for row in reader._db.execute(query):
        by_connection.setdefault(row.connection_id, []).append(
            TreeRow(
                row.id,
                row.parent_id,
                Kind(row.kind),
                row.name,
                row.is_active,
                RemoteState(row.remote_state),
                row.remote_type,
            )
        )
    return by_connection


def not_governed_in_trino(reader: Reader, key: str) -> list[DataSource]:
    """The active data sources of connection `key` that no Trino catalog exposes (its
    `trinoCatalogs` maps not their database): Trino queries of them are not governed."""
    record = reader.connection(key)
    if record.technology is Technology.TRINO:
        return []
    row = reader._db.execute(
        select(connections.c.id).where(connections.c.key_folded == key_identity(record.key))
    ).scalar_one()
    mapped = {fold(database) for database in dict(record.settings.get("trinoCatalogs", {}))}
    databases = reader._db.execute(
        select(objects.c.name).where(
            objects.c.connection_id == row, objects.c.kind == Kind.DATABASE.value
        )
    ).scalars()
    if all(fold(name) in mapped for name in databases):  # the usual case: no tree to compile
        return []
    active, _ = compile_connection(
        record.key,
        record.technology,
        record.settings,
        _tree_rows(reader, row).get(row, ()),
        {},
    )
    return [source for source in active if source.trino_key is None]


ColumnTagging = Mapping[int, Mapping[str, frozenset[str]]]  # table id -> column -> tags
Owners = Mapping[int, frozenset[tuple[str, str]]]  # object id -> ("user"|"group", name)


def read_column_tags(reader: Reader) -> dict[int, dict[str, frozenset[str]]]:
    """The tagged columns of every table (object sync's `New` tags), folded."""
    found: dict[int, dict[str, set[str]]] = {}
    for object_id, name, tag in reader._db.execute(
        select(columns.c.object_id, columns.c.name, column_tags.c.tag).join(
            columns, columns.c.id == column_tags.c.column_id
        )
    ):
        found.setdefault(object_id, {}).setdefault(fold(name), set()).add(fold(tag))
    return {
        object_id: {name: frozenset(tags) for name, tags in by_column.items()}
        for object_id, by_column in found.items()
    }


def read_owners(reader: Reader) -> dict[int, frozenset[tuple[str, str]]]:
    """Data Owner grants by the node they are granted on (tables inherit them)."""
    found: dict[int, set[tuple[str, str]]] = {}
    for object_id, kind, principal in reader._db.execute(
        select(
            object_permissions.c.object_id,
            object_permissions.c.principal_kind,
            object_permissions.c.principal,
        ).where(object_permissions.c.role == Role.DATA_OWNER.value)
    ):
        found.setdefault(object_id, set()).add((kind, principal))
    return {object_id: frozenset(principals) for object_id, principals in found.items()}


def compile_legacy(
    integration: Integration, rows: Iterable[LegacySource]
) -> tuple[list[DataSource], list[DataSource]]:
    """The hand-registered data sources of an integration not yet finalized: they govern,
    matched or not, until the upgrade is finalized (no policy downtime)."""
    catalogs = {
        fold(db): c for db, c in dict(integration.settings.get("trinoCatalogs", {})).items()
    }
    technology = integration.technology
    active: list[DataSource] = []
    inactive: list[DataSource] = []
    for row in rows:
        if row.match_state is MatchState.DELETED:
            continue
        source = DataSource(
            connection=integration.name,
            technology=technology,
            database=row.database,
            schema=row.schema,
            name=row.table,
            type=row.type,
            tags=frozenset(fold(t) for t in row.tags),
            trino_catalog=row.database
            if technology is Technology.TRINO
            else catalogs.get(fold(row.database)),
        )
        live = row.active and row.match_state is not MatchState.DISABLED
        (active if live else inactive).append(source)
    return active, inactive


def compile_connection(
    key: str,
    technology: Technology,
    settings: Mapping[str, Any],
    rows: Iterable[TreeRow],
    tags: Mapping[int, Iterable[str]],
    column_tagging: ColumnTagging | None = None,
    owners: Owners | None = None,
) -> tuple[list[DataSource], list[DataSource]]:
    """(data sources, retired tables) of one connection's tree; pure. Tables carry their
    tagged columns and their Data Owners (granted on them or any node above).

    Status inherits top-down in one pass: the nearest override wins, and a missing node
    disables its whole subtree whatever the overrides below it say."""
    order = {kind: depth for depth, kind in enumerate(Kind)}
    rows = sorted(rows, key=lambda r: order[r.kind])
    catalogs = {fold(db): c for db, c in dict(settings.get("trinoCatalogs", {})).items()}
    column_tagging = column_tagging or {}
    owners = owners or {}
    # id -> (value, blocked, names, owners)
    state: dict[int, tuple[bool, bool, tuple[str, ...], frozenset[tuple[str, str]]]] = {}
    active: list[DataSource] = []
    inactive: list[DataSource] = []
    for row in rows:
        names: tuple[str, ...] = ()
        owned_by: frozenset[tuple[str, str]] = frozenset()
        if row.parent_id is None:
            parent_value, parent_blocked = False, False
        else:
            parent_value, parent_blocked, parent_names, owned_by = state[row.parent_id]
            names = (*parent_names, row.name)
        owned_by = owned_by | owners.get(row.id, frozenset())
        value = parent_value if row.is_active is None else row.is_active
        blocked = parent_blocked or row.remote_state is RemoteState.MISSING
        state[row.id] = (value, blocked, names, owned_by)
        if row.kind is not Kind.TABLE:
            continue
        database, schema, table = names[0], names[1], names[2]
        trino_catalog = database if technology is Technology.TRINO else catalogs.get(fold(database))
        own = {fold(tag) for tag in tags.get(row.id, ())}
        source = DataSource(
            connection=key,
            technology=technology,
            database=database,
            schema=schema,
            name=table,
            type=object_type(row.remote_type),
            tags=frozenset({*own, fold(connection_tag(technology, key, database, schema))}),
            trino_catalog=trino_catalog,
            columns=tuple(sorted(column_tagging.get(row.id, {}).items())),
            owners=owned_by,
        )
        (active if value and not blocked else inactive).append(source)
    return active, inactive


def object_type(remote_type: str | None) -> ObjectType:
    """The registry's type for what the platform reported ("BASE TABLE", "MANAGED", ...)."""
    if not remote_type:
        return ObjectType.TABLE
    name = remote_type.strip().upper().replace(" ", "_")
    if name in _TYPE_ALIASES:
        return _TYPE_ALIASES[name]
    try:
        return ObjectType(name)
    except ValueError:
        return ObjectType.TABLE


@dataclass(frozen=True, slots=True)
class MergedRegistry:
    sources: tuple[DataSource, ...]
    retired: tuple[DataSource, ...]
    shadowed: frozenset[str]  # store connections the YAML registry declares too (YAML wins)


def merge_registries(
    yaml_sources: Sequence[DataSource],
    yaml_retired: Sequence[DataSource],
    store: StoreRegistry,
) -> MergedRegistry:
    """One registry from the YAML files and the store, for `PolicySnapshot.compile`.

    A connection declared in both keeps its YAML entries: during an upgrade the legacy
    declaration keeps governing (no policy downtime) until it is removed from the files."""
    if not yaml_sources and not yaml_retired:  # the store's very tuples (their sets are kept)
        return MergedRegistry(store.sources, store.retired, frozenset())
    declared = {fold(s.connection) for s in (*yaml_sources, *yaml_retired)}
    shadowed = frozenset(k for k in store.connections if fold(k) in declared)
    keep = [s for s in store.sources if fold(s.connection) not in declared]
    keep_retired = [s for s in store.retired if fold(s.connection) not in declared]
    return MergedRegistry((*yaml_sources, *keep), (*yaml_retired, *keep_retired), shadowed)
