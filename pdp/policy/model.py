from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum

from pdp.core.datapolicy import Template
from pdp.core.model import Access, Constant, MaskKind, MaskRule, TableKey, fold


class Technology(StrEnum):
    TRINO = "trino"
    SNOWFLAKE = "snowflake"
    DATABRICKS = "databricks"
    POSTGRESQL = "postgresql"


class Status(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class ObjectType(StrEnum):
    """Table-level object types across platforms (Snowflake BASE TABLE and Databricks MANAGED are
    both TABLE; Databricks EXTERNAL is EXTERNAL_TABLE)."""

    TABLE = "TABLE"
    VIEW = "VIEW"
    MATERIALIZED_VIEW = "MATERIALIZED_VIEW"
    EXTERNAL_TABLE = "EXTERNAL_TABLE"
    EVENT_TABLE = "EVENT_TABLE"
    ICEBERG_TABLE = "ICEBERG_TABLE"
    DYNAMIC_TABLE = "DYNAMIC_TABLE"
    STREAMING_TABLE = "STREAMING_TABLE"
    FOREIGN_TABLE = "FOREIGN_TABLE"
    VOLUME = "VOLUME"
    FUNCTION = "FUNCTION"
    MODEL = "MODEL"


class PolicyStatus(StrEnum):
    ACTIVE = "active"
    STAGED = "staged"


@dataclass(frozen=True, slots=True)
class DataSource:
    """An active table-level object: the only kind of object a subscription policy governs."""

    connection: str
    technology: Technology
    database: str
    schema: str
    name: str
    type: ObjectType = ObjectType.TABLE
    tags: frozenset[str] = frozenset()
    trino_catalog: str | None = None  # the Trino catalog that exposes it, if any
    # (folded column name, its folded tags) for the columns the registry tags
    columns: tuple[tuple[str, frozenset[str]], ...] = ()
    # Its Data Owners, on the table or above (the store's object permissions), as
    # ("user", name) / ("group", name): masks that exempt owners skip them.
    owners: frozenset[tuple[str, str]] = frozenset()
    # its hash, computed at the first `hash()`: a change to a registry of 100,000 data sources
    # finds what changed as sets, and each source is hashed for more than one of them
    _hash: int | None = field(default=None, init=False, compare=False, repr=False)

    def __hash__(self) -> int:
        if (cached := self._hash) is None:
            cached = hash(
                (
                    self.connection,
                    self.technology,
                    self.database,
                    self.schema,
                    self.name,
                    self.type,
                    self.tags,
                    self.trino_catalog,
                    self.columns,
                    self.owners,
                )
            )
            object.__setattr__(self, "_hash", cached)
        return cached

    def __reduce__(self) -> tuple[Callable[..., DataSource], tuple[object, ...]]:
        """Pickled without its hash: another process hashes strings with another seed."""
        return DataSource, tuple(getattr(self, f.name) for f in fields(self) if f.init)

    @property
    def path(self) -> str:
        return f"{self.connection}.{self.database}.{self.schema}.{self.name}"

    @property
    def trino_key(self) -> TableKey | None:
        if self.trino_catalog is None:
            return None
        return (fold(self.trino_catalog), fold(self.schema), fold(self.name))


class GlobalPermission(StrEnum):
    """Permissions a user holds everywhere (the admin API's permission table)."""

    GOVERNANCE = "GOVERNANCE"
    APPLICATION_ADMIN = "APPLICATION_ADMIN"
    CREATE_DATA_SOURCE = "CREATE_DATA_SOURCE"


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    name: str
    groups: frozenset[str] = frozenset()
    attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    permissions: frozenset[GlobalPermission] = frozenset()


@dataclass(frozen=True, slots=True)
class Subject:
    """A user as policies see them: directory groups and attributes plus the groups Trino sent."""

    name: str
    groups: frozenset[str]
    attributes: Mapping[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class Policy:
    """A subscription policy. `who` conditions combine with `match` ("any" or "all"); a policy
    with no condition and without `anyone` applies to nobody."""

    name: str
    access: Access  # READ or WRITE
    status: PolicyStatus = PolicyStatus.ACTIVE
    anyone: bool = False
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    match_all: bool = False
    data_sources: frozenset[str] = frozenset()  # folded paths
    connections: frozenset[str] = frozenset()
    databases: frozenset[str] = frozenset()  # folded "connection.database"
    schemas: frozenset[str] = frozenset()  # folded "connection.database.schema"
    tags: frozenset[str] = frozenset()

    def applies_to(self, subject: Subject) -> bool:
        if self.anyone:
            return True
        checks = []
        if self.users:
            checks.append(subject.name in self.users)
        if self.groups:
            checks.append(not self.groups.isdisjoint(subject.groups))
        for key, wanted in self.attributes.items():
            checks.append(not wanted.isdisjoint(subject.attributes.get(key, ())))
        if not checks:
            return False
        return all(checks) if self.match_all else any(checks)


@dataclass(frozen=True, slots=True)
class Audience:
    """Whom a data policy applies to: everyone (no names), everyone except those named
    (`exclude`), or only those named. Names match on any of user, group or attribute value."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    exclude: bool = True

    def names(self, subject: Subject) -> bool:
        return (
            subject.name in self.users
            or not self.groups.isdisjoint(subject.groups)
            or any(
                not wanted.isdisjoint(subject.attributes.get(key, ()))
                for key, wanted in self.attributes.items()
            )
        )

    def includes(self, subject: Subject) -> bool:
        return self.names(subject) != self.exclude


EVERYONE = Audience()


@dataclass(frozen=True, slots=True)
class Targets:
    """A set of data sources, named as a subscription policy's `what` names them; `everything`
    when no key is given."""

    data_sources: frozenset[str] = frozenset()
    connections: frozenset[str] = frozenset()
    databases: frozenset[str] = frozenset()
    schemas: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    everything: bool = False


@dataclass(frozen=True, slots=True)
class MaskingPolicy:
    name: str
    kind: MaskKind
    on: Targets
    columns: frozenset[str] = frozenset()  # folded column names
    column_tags: frozenset[str] = frozenset()  # folded
    value: Constant | None = None
    count: int = 0
    audience: Audience = EVERYONE
    status: PolicyStatus = PolicyStatus.ACTIVE
    except_owners: bool = False  # the data source's owners see the value (built-in policy)

    def rule(self) -> MaskRule:
        return MaskRule(
            self.name,
            self.kind,
            self.columns,
            self.column_tags,
            self.value,
            self.count,
            self.except_owners,
        )


@dataclass(frozen=True, slots=True)
class RowFilterPolicy:
    name: str
    on: Targets
    where: str  # the predicate as written
    template: Template
    audience: Audience = EVERYONE
    status: PolicyStatus = PolicyStatus.ACTIVE
