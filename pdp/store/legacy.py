"""The legacy model in the store (spec §8.1): integrations, the data sources registered one by
one under them, the per-schema schema-monitoring flag, and the state of each integration's
upgrade to a connection (§8.2). The upgrade's rules live in `pdp.control.upgrade`; this module
only reads and writes rows, as the `Integrations` / `IntegrationWrites` repositories of the
`Reader` / `Writer` transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update

from pdp.core.model import fold
from pdp.objects.errors import Conflict, InvalidInput, NotFound
from pdp.policy.model import ObjectType, Technology
from pdp.store.base import Transaction
from pdp.store.model import utcnow
from pdp.store.rows import record
from pdp.store.rows import technology as technology_of
from pdp.store.schema import integrations, legacy_sources


class UpgradeState(StrEnum):
    NOT_STARTED = "not_started"
    STARTED = "started"  # a display name is chosen
    VALIDATED = "validated"  # the credentials passed every check
    UPGRADING = "upgrading"  # the upgrade job runs (or was interrupted: start it again)
    PARTIAL = "partial"  # the job ended with data sources left unresolved
    UPGRADED = "upgraded"  # every data source is resolved
    FINALIZED = "finalized"  # object sync is on; the legacy endpoints are retired


class MatchState(StrEnum):
    PENDING = "pending"  # not looked at yet
    MATCHED = "matched"  # to `matched_path`
    UNRESOLVED = "unresolved"  # with `match_reason`
    DISABLED = "disabled"  # the administrator gave up on it, kept as an inactive entry
    DELETED = "deleted"  # the administrator removed it


class MatchReason(StrEnum):
    NOT_FOUND = "not_found"
    NOT_VISIBLE = "not_visible"  # the listing of its database or schema failed
    AMBIGUOUS = "ambiguous"  # several remote names differ from it by case only
    INVALID_NAME = "invalid_name"


# After these the legacy endpoints answer 400 for the integration's data sources.
RETIRED_FROM = frozenset(
    {UpgradeState.UPGRADING, UpgradeState.PARTIAL, UpgradeState.UPGRADED, UpgradeState.FINALIZED}
)


@dataclass(frozen=True, slots=True)
class Integration:
    id: int
    name: str
    technology: Technology
    endpoint: Mapping[str, Any]
    credentials: Mapping[str, Any]
    settings: Mapping[str, Any]
    schema_monitoring: Mapping[str, bool]  # "database.schema" (folded) -> on
    upgrade_state: UpgradeState
    display_name: str | None
    upgrade_job_id: str | None
    created_at: datetime
    updated_at: datetime

    def monitored(self, database: str, schema: str) -> bool:
        return bool(self.schema_monitoring.get(monitor_key(database, schema), False))


@dataclass(frozen=True, slots=True)
class LegacySource:
    id: str
    integration: str
    database: str
    schema: str
    table: str
    type: ObjectType
    tags: tuple[str, ...]
    owners: tuple[Mapping[str, str], ...]
    active: bool
    match_state: MatchState
    match_reason: str | None
    matched_path: str | None
    created_at: datetime

    @property
    def names(self) -> tuple[str, str, str]:
        return (self.database, self.schema, self.table)

    @property
    def dotted(self) -> str:
        return f"{self.integration}.{self.database}.{self.schema}.{self.table}"


def monitor_key(database: str, schema: str) -> str:
    return f"{fold(database)}\x00{fold(schema)}"


def _integration(row: Row[Any]) -> Integration:
    return record(Integration, row, {"technology": Technology, "upgrade_state": UpgradeState})


def _source(row: Row[Any], integration: str) -> LegacySource:
    converted = {
        "type": ObjectType,
        "tags": tuple,
        "owners": tuple,
        "match_state": MatchState,
    }
    return record(LegacySource, row, converted, integration=integration)


class Integrations(Transaction):
    """Reading integrations and their data sources."""

    def integrations(self) -> list[Integration]:
        rows = self._db.execute(select(integrations).order_by(integrations.c.name_folded)).all()
        return [_integration(row) for row in rows]

    def integration(self, name: str) -> Integration:
        """By name (case-insensitively) or by numeric id."""
        query = select(integrations).where(integrations.c.name_folded == fold(str(name)))
        row = self._db.execute(query).first()
        if row is None and str(name).isdigit():
            by_id = select(integrations).where(integrations.c.id == int(name))
            row = self._db.execute(by_id).first()
        if row is None:
            raise NotFound("integration", name, "no integration with this name or id")
        return _integration(row)

    def find_integration(self, name: str) -> Integration | None:
        try:
            return self.integration(name)
        except NotFound:
            return None

    def sources_of(self, integration: Integration) -> list[LegacySource]:
        rows = self._db.execute(
            select(legacy_sources)
            .where(legacy_sources.c.integration_id == integration.id)
            .order_by(legacy_sources.c.database, legacy_sources.c.schema, legacy_sources.c.table)
        ).all()
        return [_source(row, integration.name) for row in rows]

    def source(self, source_id: str) -> tuple[Integration, LegacySource]:
        query = select(legacy_sources).where(legacy_sources.c.id == source_id)
        row = self._db.execute(query).first()
        if row is None:
            raise NotFound("dataSourceId", source_id, "no legacy data source with this id")
        owner = self._db.execute(
            select(integrations).where(integrations.c.id == row.integration_id)
        ).one()
        return _integration(owner), _source(row, owner.name)

    def source_counts(self) -> dict[int, int]:
        """Data sources per integration id (deleted ones not counted)."""
        rows = self._db.execute(
            select(legacy_sources.c.integration_id, func.count())
            .where(legacy_sources.c.match_state != MatchState.DELETED.value)
            .group_by(legacy_sources.c.integration_id)
        ).all()
        return {row[0]: row[1] for row in rows}


class IntegrationWrites(Integrations):
    """Creating and changing integrations and their data sources."""

    def create_integration(
        self,
        name: str,
        technology: Technology | str,
        endpoint: Mapping[str, Any],
        credentials: Mapping[str, Any],
        settings: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Integration:
        if not name or not isinstance(name, str) or len(name) > 128:
            raise InvalidInput("connection.name", name, "name the integration (1-128 characters)")
        technology = technology_of(technology, "connection.technology")
        if self.find_integration(name) is not None:
            raise Conflict("connection.name", name, "an integration with this name exists already")
        now = now or utcnow()
        self._db.execute(
            insert(integrations).values(
                name=name,
                name_folded=fold(name),
                technology=technology.value,
                endpoint=dict(endpoint),
                credentials=self.store.secrets.seal(credentials, "connection.credentials"),
                settings=dict(settings or {}),
                schema_monitoring={},
                upgrade_state=UpgradeState.NOT_STARTED.value,
                created_at=now,
                updated_at=now,
            )
        )
        return self.integration(name)

    def update_integration(self, integration: Integration, **values: Any) -> Integration:
        """Change columns of the integration row (`upgrade_state`, `display_name`, `endpoint`,
        `credentials` (sealed here), `schema_monitoring`, `upgrade_job_id`)."""
        if "credentials" in values:
            values["credentials"] = self.store.secrets.seal(
                values["credentials"], "connection.credentials"
            )
        if "upgrade_state" in values:
            values["upgrade_state"] = UpgradeState(values["upgrade_state"]).value
        values["updated_at"] = utcnow()
        self._db.execute(
            update(integrations).where(integrations.c.id == integration.id).values(**values)
        )
        return self.integration(str(integration.id))

    def add_source(
        self,
        integration: Integration,
        database: str,
        schema: str,
        table: str,
        *,
        type: ObjectType = ObjectType.TABLE,
        tags: Sequence[str] = (),
        owners: Sequence[Mapping[str, str]] = (),
        active: bool = True,
        source_id: str | None = None,
        now: datetime | None = None,
    ) -> LegacySource:
        for field, value in (("database", database), ("schema", schema), ("table", table)):
            if not isinstance(value, str) or not value:
                raise InvalidInput(field, value, "a data source needs a database, schema and table")
        taken = [
            s
            for s in self.sources_of(integration)
            if fold_names(s.names) == fold_names((database, schema, table))
            and s.match_state is not MatchState.DELETED
        ]
        if taken:
            raise Conflict(
                "table",
                f"{database}.{schema}.{table}",
                f"integration {integration.name!r} registers this table already as {taken[0].id}",
            )
        source_id = source_id or str(uuid.uuid4())
        self._db.execute(
            insert(legacy_sources).values(
                id=source_id,
                integration_id=integration.id,
                database=database,
                schema=schema,
                table=table,
                type=ObjectType(type).value,
                tags=sorted(set(tags)),
                owners=[dict(o) for o in owners],
                active=active,
                match_state=MatchState.PENDING.value,
                created_at=now or utcnow(),
            )
        )
        return self.source(source_id)[1]

    def update_source(self, source_id: str, **values: Any) -> LegacySource:
        if "match_state" in values:
            values["match_state"] = MatchState(values["match_state"]).value
        if "tags" in values:
            values["tags"] = sorted(set(values["tags"]))
        if "owners" in values:
            values["owners"] = [dict(o) for o in values["owners"]]
        self._db.execute(
            update(legacy_sources).where(legacy_sources.c.id == source_id).values(**values)
        )
        return self.source(source_id)[1]

    def delete_source(self, source_id: str) -> None:
        self.source(source_id)
        self._db.execute(delete(legacy_sources).where(legacy_sources.c.id == source_id))


def get_integration(reader: Integrations, name: str) -> Integration:
    """`reader.integration(name)`, as tests spelled it before the repositories."""
    return reader.integration(name)


def fold_names(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(fold(n) for n in names)
