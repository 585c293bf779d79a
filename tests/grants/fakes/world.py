"""Small builders for policy snapshots used across the grant sync tests."""

from __future__ import annotations

from collections.abc import Iterable

from pdp.core import Access, AccessGrantMapping
from pdp.core.model import DEFAULT_MAPPING, fold
from pdp.policy import DataSource, DirectoryUser, ObjectType, Policy, PolicySnapshot, Technology


def source(
    path: str,
    kind: ObjectType = ObjectType.TABLE,
    technology: Technology = Technology.SNOWFLAKE,
    trino_catalog: str | None = None,
) -> DataSource:
    connection, database, schema, name = path.split(".")
    return DataSource(
        connection, technology, database, schema, name, kind, frozenset(), trino_catalog
    )


def policy(
    name: str, access: Access, users: Iterable[str] = (), paths: Iterable[str] = (), **kw: object
) -> Policy:
    return Policy(
        name,
        access,
        users=frozenset(users),
        data_sources=frozenset(fold(p) for p in paths),
        **kw,  # type: ignore[arg-type]
    )


def snapshot(
    sources: Iterable[DataSource],
    policies: Iterable[Policy],
    users: Iterable[str] = (),
    revision: str = "r1",
    mapping: AccessGrantMapping = DEFAULT_MAPPING,
    retired: Iterable[DataSource] = (),
    groups: dict[str, Iterable[str]] | None = None,
) -> PolicySnapshot:
    groups = groups or {}
    directory = {u: DirectoryUser(u, frozenset(groups.get(u, ()))) for u in users}
    return PolicySnapshot.compile(revision, sources, policies, directory, mapping, retired)
