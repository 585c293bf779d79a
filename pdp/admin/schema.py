"""Every JSON shape of the admin API, as pydantic models: the API validates bodies with them,
the OpenAPI document names them (the class names are its components) and the CLI builds its
requests from them and reads the answers with them. No FastAPI here: the CLI imports it.

Request bodies validate what comes in; answers (`...Out`) are built from the control plane's
records by `of(record)` and rendered by `dump()`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from pdp.control.cascade import settings_json
from pdp.store.model import utcnow
from pdp.store.secrets import redact

if TYPE_CHECKING:
    from datetime import datetime

    from pdp.control.catalogs import Proposal
    from pdp.control.legacy import Detected, Monitoring
    from pdp.control.upgrade import (
        Finalized,
        Integrations,
        IntegrationStatus,
        IntegrationView,
        Resolved,
        Validated,
    )
    from pdp.control.views import (
        CascadeStarted,
        ConnectionView,
        Deleted,
        ObjectView,
        Permissions,
        SettingsChanged,
        Ungoverned,
    )
    from pdp.crawl.base import Check
    from pdp.store import DataRequest, Job, ObjectRecord
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


H = TypeVar("H", bound=Out)  # a page's hits


class PageOut(Out, Generic[H]):
    """A list answer: how many there are in all (`count`, beyond this page's `hits` when
    paged) and the hits."""

    count: int
    hits: list[H]

    @classmethod
    def of(cls, hits: Iterable[H], count: int | None = None) -> Self:
        listed = list(hits)
        return cls(count=len(listed) if count is None else count, hits=listed)


class CheckOut(Out):
    name: str
    ok: bool
    detail: str

    @classmethod
    def of(cls, check: Check) -> CheckOut:
        return cls(name=check.name, ok=check.ok, detail=check.detail)


def _iso(value: datetime | None) -> str | None:
    """Timestamps as the API has always written them: `isoformat()`, `+00:00` (not `Z`)."""
    return None if value is None else value.isoformat()


class JobOut(Out):
    id: str
    type: str
    trigger: str
    state: str
    connection: str | None
    path: str
    createdAt: str | None
    startedAt: str | None
    endedAt: str | None
    stats: dict[str, Any]
    errors: list[Any]

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            type=job.type.value,
            trigger=job.trigger.value,
            state=job.state.value,
            connection=job.connection_key,
            path=job.path,
            createdAt=_iso(job.created_at),
            startedAt=_iso(job.started_at),
            endedAt=_iso(job.ended_at),
            stats=dict(job.stats),
            errors=list(job.errors),
        )


JobsOut = PageOut[JobOut]


class JobStartedOut(Out):
    jobId: str | None  # None: nothing to run


class UngovernedOut(Out):
    """Active data sources no Trino catalog exposes (Trino queries of them are not governed)."""

    count: int
    databases: list[str]

    @classmethod
    def of(cls, ungoverned: Ungoverned) -> UngovernedOut:
        return cls(count=ungoverned.count, databases=list(ungoverned.databases))


class ValidationOut(Out):
    ok: bool
    checks: list[CheckOut]

    @classmethod
    def of(cls, checks: Sequence[Check]) -> ValidationOut:
        return cls(ok=all(c.ok for c in checks), checks=[CheckOut.of(c) for c in checks])


class RegisteredOut(Out):
    connectionKey: str
    jobId: str | None
    trinoCatalogs: dict[str, str] | None = None  # a proposal: absent when none was made
    trinoCatalogsProposal: str | None = None

    @classmethod
    def of(cls, key: str, job: Job | None, proposal: Proposal | None) -> RegisteredOut:
        answer = cls(connectionKey=key, jobId=job.id if job else None)
        if proposal is not None:  # a non-Trino connection registered without trinoCatalogs
            answer.trinoCatalogs = dict(proposal.catalogs)
            answer.trinoCatalogsProposal = proposal.source
        return answer


class ConnectionOut(Out):
    connectionKey: str
    technology: str
    endpoint: dict[str, Any]
    credentials: dict[str, Any]  # redacted: secrets never leave
    settings: dict[str, Any]
    schedule: str
    nextSync: str | None
    state: str
    failSafeThreshold: int | float
    createdAt: str | None
    updatedAt: str | None
    lastSync: str | None
    notGovernedInTrino: UngovernedOut

    @classmethod
    def of(cls, view: ConnectionView) -> ConnectionOut:
        record = view.record
        return cls(
            connectionKey=record.key,
            technology=record.technology.value,
            endpoint=dict(record.endpoint),
            credentials=redact(record.credentials),
            settings=dict(record.settings),
            schedule=record.schedule,
            nextSync=_iso(record.next_sync(utcnow())),
            state=record.state.value,
            failSafeThreshold=record.fail_safe_threshold,
            createdAt=_iso(record.created_at),
            updatedAt=_iso(record.updated_at),
            lastSync=_iso(record.last_sync_at),
            notGovernedInTrino=UngovernedOut.of(view.not_governed),
        )


class OverridesOut(Out):
    isActive: bool | None
    activateNewChildren: bool | None


class _Object(Out):
    """The fields every answer about an object starts with."""

    path: str
    name: str
    kind: str
    remoteType: str | None
    remoteState: str
    overrides: OverridesOut
    dataSourceId: str | None

    @staticmethod
    def fields(record: ObjectRecord) -> dict[str, Any]:
        return {
            "path": record.path.url,
            "name": record.path.name,
            "kind": record.kind.value,
            "remoteType": record.remote_type,
            "remoteState": record.remote_state.value,
            "overrides": OverridesOut(
                isActive=record.is_active, activateNewChildren=record.activate_new_children
            ),
            "dataSourceId": record.data_source_id,
        }


class ObjectSummary(_Object):
    @classmethod
    def of(cls, record: ObjectRecord) -> ObjectSummary:
        return cls(**cls.fields(record))


ObjectsOut = PageOut[ObjectSummary]


class DataOwnerOut(Out):
    principal: str
    principalKind: str
    at: str  # the path the role is granted on (the object or above it)


class ColumnOut(Out):
    name: str
    type: str
    nullable: bool
    position: int
    tags: list[str]


class TableSourceOut(Out):
    id: str
    active: bool


class ObjectOut(_Object):
    settings: dict[str, Any]
    childCount: int
    tags: list[str]
    dataOwners: list[DataOwnerOut]
    lastSync: str | None
    trinoCatalog: str | None = None  # below a non-Trino connection only
    notGovernedInTrino: UngovernedOut
    columns: list[ColumnOut] | None = None  # tables only
    dataSource: TableSourceOut | None = None  # tables only (null: not a data source)

    @classmethod
    def of(cls, view: ObjectView) -> ObjectOut:
        answer = cls(
            **cls.fields(view.record),
            settings=settings_json(view.settings),
            childCount=view.child_count,
            tags=list(view.tags),
            dataOwners=[
                DataOwnerOut(
                    principal=p.principal, principalKind=p.principal_kind.value, at=p.path.url
                )
                for p in view.data_owners
            ],
            lastSync=_iso(view.last_sync),
            notGovernedInTrino=UngovernedOut.of(view.not_governed),
        )
        if view.trino_catalog is not None:
            answer.trinoCatalog = view.trino_catalog.catalog
        if view.table is not None:
            answer.columns = [
                ColumnOut(
                    name=c.name,
                    type=c.type,
                    nullable=c.nullable,
                    position=c.position,
                    tags=sorted(c.tags),
                )
                for c in view.table.columns
            ]
            source = view.table.data_source
            answer.dataSource = (
                TableSourceOut(id=source.id, active=source.active) if source else None
            )
        return answer


class SettingsOut(Out):
    path: str
    settings: dict[str, Any]

    @classmethod
    def of(cls, changed: SettingsChanged) -> SettingsOut:
        return cls(path=changed.path.url, settings=settings_json(changed.settings))


class CascadeOut(Out):
    """A settings change a cascade job applies (202)."""

    path: str
    jobId: str
    descendants: int

    @classmethod
    def of(cls, started: CascadeStarted) -> CascadeOut:
        return cls(path=started.path.url, jobId=started.job_id, descendants=started.descendants)


class DeletedOut(Out):
    path: str
    childCount: int

    @classmethod
    def of(cls, deleted: Deleted) -> DeletedOut:
        return cls(path=deleted.path.url, childCount=deleted.child_count)


class PermissionOut(Out):
    path: str
    principal: str
    principalKind: str
    role: str
    grantedBy: str | None
    grantedAt: str | None
    inherited: bool


class PermissionsOut(Out):
    path: str
    permissions: list[PermissionOut]

    @classmethod
    def of(cls, found: Permissions) -> PermissionsOut:
        asked = found.asked
        return cls(
            path=found.path.url,
            permissions=[
                PermissionOut(
                    path=p.path.url,
                    principal=p.principal,
                    principalKind=p.principal_kind.value,
                    role=p.role.value,
                    grantedBy=p.granted_by,
                    grantedAt=_iso(p.granted_at),
                    inherited=p.path != asked and p.path.url != asked.url,
                )
                for p in found.entries
            ],
        )


class RequestOut(Out):
    """A data source request (spec §5)."""

    id: int
    kind: str
    state: str
    connection: str
    path: str
    column: str
    jobId: str | None
    createdAt: str | None
    resolvedAt: str | None
    resolvedBy: str | None

    @classmethod
    def of(cls, request: DataRequest) -> RequestOut:
        return cls(
            id=request.id,
            kind=request.kind.value,
            state=request.state.value,
            connection=request.connection_key,
            path=request.path.url,
            column=request.column_name,
            jobId=request.job_id,
            createdAt=_iso(request.created_at),
            resolvedAt=_iso(request.resolved_at),
            resolvedBy=request.resolved_by,
        )


RequestsOut = PageOut[RequestOut]


class HealthOut(Out):
    status: str
    store: str
    revision: str | None
    warnings: list[str]
    reason: str | None = None  # absent unless degraded


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


SourcesOut = PageOut[SourceOut]


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


class IntegrationsOut(PageOut[IntegrationOut]):
    finalized: int

    @classmethod
    def of_upgrades(cls, integrations: Integrations) -> IntegrationsOut:
        hits = [IntegrationOut.of(v) for v in integrations.hits]
        return cls(count=len(hits), hits=hits, finalized=integrations.finalized)


class StatusOut(_Integration):
    counts: dict[str, int]
    job: JobOut | None

    @classmethod
    def of(cls, status: IntegrationStatus) -> StatusOut:
        return cls(
            **cls.fields(status.view),
            counts={state.value: n for state, n in status.counts.items()},
            job=JobOut.of(status.job) if status.job else None,
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
