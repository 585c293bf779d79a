"""What the control plane answers, as records: the store's records, and where an answer puts
several together, the composites below. The admin API renders them (`pdp.admin.schema`); the
control plane never builds JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pdp.objects.paths import ObjectPath
from pdp.objects.settings import EffectiveSettings
from pdp.store import ColumnRecord, ConnectionRecord, ObjectRecord, Permission


class _InDatabase(Protocol):
    @property
    def database(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Ungoverned:
    """Active data sources no Trino catalog exposes: how many, and their databases."""

    count: int
    databases: tuple[str, ...]

    @classmethod
    def of(cls, sources: Sequence[_InDatabase]) -> Ungoverned:
        return cls(len(sources), tuple(sorted({s.database for s in sources})))


@dataclass(frozen=True, slots=True)
class ConnectionView:
    record: ConnectionRecord
    not_governed: Ungoverned


@dataclass(frozen=True, slots=True)
class TableSource:
    """The data source a table is: its id, and whether it is active (and present)."""

    id: str
    active: bool


@dataclass(frozen=True, slots=True)
class TableDetails:
    columns: tuple[ColumnRecord, ...]
    data_source: TableSource | None


@dataclass(frozen=True, slots=True)
class CatalogMapping:
    """The Trino catalog a non-Trino database is mapped to (None: none is)."""

    catalog: str | None


@dataclass(frozen=True, slots=True)
class ObjectView:
    record: ObjectRecord
    settings: EffectiveSettings
    child_count: int
    tags: tuple[str, ...]
    data_owners: tuple[Permission, ...]
    last_sync: datetime | None
    not_governed: Ungoverned
    trino_catalog: CatalogMapping | None = None  # below a non-Trino connection only
    table: TableDetails | None = None  # tables only


@dataclass(frozen=True, slots=True)
class SettingsChanged:
    path: ObjectPath
    settings: EffectiveSettings


@dataclass(frozen=True, slots=True)
class CascadeStarted:
    """A settings change applied by a cascade job (the API's 202)."""

    path: ObjectPath
    job_id: str
    descendants: int


@dataclass(frozen=True, slots=True)
class Deleted:
    path: ObjectPath
    child_count: int


@dataclass(frozen=True, slots=True)
class Permissions:
    """The permissions on `path` and above it; `asked` as the caller spelled it."""

    path: ObjectPath
    asked: ObjectPath
    entries: tuple[Permission, ...]
