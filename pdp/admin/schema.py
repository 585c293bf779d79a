"""Every JSON shape of the admin API, as pydantic models: the API validates bodies with them,
the OpenAPI document names them (the class names are its components) and the CLI builds its
requests from them and reads the answers with them. No FastAPI here: the CLI imports it.

Request bodies validate what comes in; answers (`...Out`) are built from the control plane's
records by `of(record)` and rendered by `dump()`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from pdp.control.plane import job_json

if TYPE_CHECKING:
    from pdp.control.legacy import Detected, Monitoring
    from pdp.control.upgrade import (
        Finalized,
        Integrations,
        IntegrationStatus,
        IntegrationView,
        Resolved,
        Validated,
    )
    from pdp.crawl.base import Check
    from pdp.store.legacy import LegacySource

# --- the error shape -------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # permission, jobId, checks, replacement...
    code: str
    message: str
    field: str | None = None
    value: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- request bodies --------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConnectionDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    technology: str
    endpoint: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict)
    # non-Trino connections: database -> the Trino catalog exposing it (masks reach Trino)
    trinoCatalogs: dict[str, str] | None = None


class InitialSettings(_Body):
    isActive: StrictBool | None = None
    activateNewChildren: StrictBool | None = None


class RegisterOptions(_Body):
    forceRecursiveCrawl: StrictBool = False
    schedule: str | None = None
    failSafeThreshold: float | None = None


class RegisterBody(_Body):
    connectionKey: str
    connection: ConnectionDetails
    settings: InitialSettings = Field(default_factory=InitialSettings)
    options: RegisterOptions = Field(default_factory=RegisterOptions)


class UpdateConnectionBody(_Body):
    endpoint: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None
    schedule: str | None = None
    failSafeThreshold: float | None = None
    # database -> Trino catalog, replacing the whole mapping ({}: none)
    trinoCatalogs: dict[str, str] | None = None


class SettingsBody(_Body):
    isActive: StrictBool | None = None
    activateNewChildren: StrictBool | None = None


class SearchBody(_Body):
    searchText: str | None = None
    kind: str | None = None
    remoteState: str | None = None
    isActive: StrictBool | None = None
    recursive: StrictBool = False
    offset: int = Field(default=0, ge=0)
    size: int = Field(default=100, ge=0, le=1000)


class CrawlBody(_Body):
    forceRecursive: StrictBool = False


class PermissionBody(_Body):
    principal: str = Field(min_length=1)
    role: str
    principalKind: str = "user"
    revoke: StrictBool = False


class StartBody(_Body):
    displayName: str


class ValidateBody(_Body):
    endpoint: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None


class UpgradeBody(_Body):
    confirm: StrictBool = False


class ResolveBody(_Body):
    action: str
    path: str | None = None


class DetectBody(_Body):
    connection: str


class MonitoringBody(_Body):
    database: str
    schema_: str = Field(alias="schema")
    enabled: StrictBool


# --- answers ---------------------------------------------------------------------------------
# Routes return `Out.of(record).dump()`, not the models as `response_model`s: that would change
# the OpenAPI document. Fields absent from an answer are left unset (`dump` skips them).


class Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class CheckOut(Out):
    name: str
    ok: bool
    detail: str

    @classmethod
    def of(cls, check: Check) -> CheckOut:
        return cls(name=check.name, ok=check.ok, detail=check.detail)


class SourceOut(Out):
    """A legacy data source (spec §8.5)."""

    id: str
    connection: str
    database: str
    schema_: str = Field(alias="schema")
    table: str
    type: str
    tags: list[str]
    owners: list[dict[str, str]]
    status: str
    matchState: str
    reason: str | None
    matchedPath: str | None

    @classmethod
    def of(cls, source: LegacySource) -> SourceOut:
        return cls(
            id=source.id,
            connection=source.integration,
            database=source.database,
            schema=source.schema,
            table=source.table,
            type=source.type.value,
            tags=list(source.tags),
            owners=[dict(o) for o in source.owners],
            status="active" if source.active else "inactive",
            matchState=source.match_state.value,
            reason=source.match_reason,
            matchedPath=source.matched_path,
        )


class SourcesOut(Out):
    count: int
    hits: list[SourceOut]

    @classmethod
    def of(cls, sources: Sequence[LegacySource]) -> SourcesOut:
        return cls(count=len(sources), hits=[SourceOut.of(s) for s in sources])


class DeletedSourceOut(Out):
    id: str
    deleted: bool


class ListingErrorOut(Out):
    path: str
    message: str


class DetectedOut(Out):
    added: list[SourceOut]
    errors: list[ListingErrorOut]

    @classmethod
    def of(cls, detected: Detected) -> DetectedOut:
        return cls(
            added=[SourceOut.of(s) for s in detected.added],
            errors=[ListingErrorOut(path=e.path, message=e.message) for e in detected.errors],
        )


class MonitoredSchemaOut(Out):
    database: str
    schema_: str = Field(alias="schema")
    enabled: bool


class MonitoringOut(Out):
    integration: str
    schemaMonitoring: list[MonitoredSchemaOut]

    @classmethod
    def of(cls, monitoring: Monitoring) -> MonitoringOut:
        return cls(
            integration=monitoring.integration,
            schemaMonitoring=[
                MonitoredSchemaOut(database=d, schema=s, enabled=on)
                for d, s, on in monitoring.flags
            ],
        )


class _Integration(Out):
    """An integration and where its upgrade stands (spec §8): the fields every upgrade
    answer starts with."""

    id: int | None
    name: str
    technology: str
    state: str
    displayName: str | None
    jobId: str | None
    next: list[str]
    dataSourceCount: int | None = None  # absent where not counted
    declaredIn: str | None = None  # absent for a stored integration

    @staticmethod
    def fields(view: IntegrationView) -> dict[str, Any]:
        optional = {
            name: value
            for name, value in (
                ("dataSourceCount", view.data_source_count),
                ("declaredIn", view.declared_in),
            )
            if value is not None
        }
        return {
            "id": view.id,
            "name": view.name,
            "technology": view.technology.value,
            "state": view.state.value,
            "displayName": view.display_name,
            "jobId": view.job_id,
            "next": list(view.next),
            **optional,
        }


class IntegrationOut(_Integration):
    @classmethod
    def of(cls, view: IntegrationView) -> IntegrationOut:
        return cls(**cls.fields(view))


class IntegrationsOut(Out):
    count: int
    hits: list[IntegrationOut]
    finalized: int

    @classmethod
    def of(cls, integrations: Integrations) -> IntegrationsOut:
        hits = [IntegrationOut.of(v) for v in integrations.hits]
        return cls(count=len(hits), hits=hits, finalized=integrations.finalized)


class StatusOut(_Integration):
    counts: dict[str, int]
    job: dict[str, Any] | None

    @classmethod
    def of(cls, status: IntegrationStatus) -> StatusOut:
        return cls(
            **cls.fields(status.view),
            counts={state.value: n for state, n in status.counts.items()},
            job=job_json(status.job) if status.job else None,
        )


class ValidatedOut(_Integration):
    checks: list[CheckOut]

    @classmethod
    def of(cls, validated: Validated) -> ValidatedOut:
        return cls(**cls.fields(validated.view), checks=[CheckOut.of(c) for c in validated.checks])


class ResolvedOut(_Integration):
    unresolved: int
    dataSource: SourceOut

    @classmethod
    def of(cls, resolved: Resolved) -> ResolvedOut:
        return cls(
            **cls.fields(resolved.view),
            unresolved=resolved.unresolved,
            dataSource=SourceOut.of(resolved.source),
        )


class FinalizedOut(_Integration):
    nextSync: str

    @classmethod
    def of(cls, finalized: Finalized) -> FinalizedOut:
        return cls(**cls.fields(finalized.view), nextSync=finalized.next_sync.isoformat())
