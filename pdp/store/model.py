"""What the store hands out: immutable records, and the enumerations its tables hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from croniter import croniter

from pdp.objects.errors import InvalidInput, InvalidTransition
from pdp.objects.paths import Kind, ObjectPath
from pdp.objects.settings import RemoteState
from pdp.policy.model import Technology

T = TypeVar("T")


class ConnectionState(StrEnum):
    ACTIVE = "active"  # object sync runs on schedule
    PAUSED = "paused"  # registered, object sync off
    UPGRADING = "upgrading"  # an upgrade is in progress: object sync off until finalized


class JobType(StrEnum):
    SYNC = "sync"
    CASCADE = "cascade"
    UPGRADE = "upgrade"


class JobTrigger(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    REGISTRATION = "registration"


class JobState(StrEnum):
    CREATED = "created"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.CREATED: frozenset({JobState.ACTIVE, JobState.CANCELLED, JobState.FAILED}),
    JobState.ACTIVE: frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED}),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


def check_job_transition(job_id: str, before: JobState, after: JobState) -> None:
    """A job runs once: created -> active -> completed / failed / cancelled."""
    if after is not before and after not in JOB_TRANSITIONS[before]:
        raise InvalidTransition(
            "state", after.value, f"job {job_id} is {before.value} and cannot become {after}"
        )


class Role(StrEnum):
    DATA_OWNER = "DataOwner"
    INFRASTRUCTURE_ADMIN = "InfrastructureAdmin"


class PrincipalKind(StrEnum):
    USER = "user"
    GROUP = "group"


class RequestKind(StrEnum):
    COLUMN_ADDED = "column_added"
    COLUMN_DELETED = "column_deleted"


class RequestState(StrEnum):
    PENDING = "pending"
    VALIDATED = "validated"  # column added: the owner accepted it, `New` comes off
    ACKNOWLEDGED = "acknowledged"  # column deleted: the owner took note


def utcnow() -> datetime:
    return datetime.now(UTC)


DEFAULT_SCHEDULE = "0 1 * * *"  # every day at 01:00 UTC, as the product does
DEFAULT_FAIL_SAFE = 0.75


def check_schedule(schedule: str) -> str:
    if not isinstance(schedule, str) or not croniter.is_valid(schedule):
        raise InvalidInput("schedule", schedule, "not a cron expression (e.g. '0 1 * * *')")
    return schedule


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    key: str
    technology: Technology
    endpoint: Mapping[str, Any]
    credentials: Mapping[str, Any]  # sealed: references and Fernet tokens only
    settings: Mapping[str, Any]
    schedule: str
    state: ConnectionState
    fail_safe_threshold: float
    created_at: datetime
    updated_at: datetime
    last_sync_at: datetime | None = None

    @property
    def path(self) -> ObjectPath:
        return ObjectPath(self.key)

    def next_sync(self, after: datetime) -> datetime:
        """The next scheduled sync strictly after `after` (UTC)."""
        return croniter(self.schedule, after).get_next(datetime)


@dataclass(frozen=True, slots=True)
class NewConnection:
    """A connection to register: the one spelling of it, whoever builds it (the admin API, an
    upgrade, a test). `Writer.register` checks and stores it; credentials are plain here and
    sealed there."""

    key: str
    technology: Technology
    endpoint: Mapping[str, Any] = field(default_factory=dict)
    credentials: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    schedule: str = DEFAULT_SCHEDULE
    is_active: bool | None = None  # the override on the connection's root; None: inactive
    activate_new_children: bool | None = None
    fail_safe_threshold: float = DEFAULT_FAIL_SAFE

    def checkable(
        self,
        sealed: Mapping[str, Any],
        state: ConnectionState = ConnectionState.ACTIVE,
        now: datetime | None = None,
    ) -> ConnectionRecord:
        """The record this connection would be, with `sealed` credentials: what the
        connection checks run against before anything is stored."""
        now = now or utcnow()
        return ConnectionRecord(
            key=self.key,
            technology=self.technology,
            endpoint=dict(self.endpoint),
            credentials=sealed,
            settings=dict(self.settings),
            schedule=self.schedule,
            state=state,
            fail_safe_threshold=self.fail_safe_threshold,
            created_at=now,
            updated_at=now,
        )


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    id: int
    path: ObjectPath
    kind: Kind
    remote_type: str | None
    is_active: bool | None  # the override on this node; None inherits
    activate_new_children: bool | None
    remote_state: RemoteState
    data_source_id: str | None
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class ColumnRecord:
    name: str
    type: str
    nullable: bool
    position: int
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Permission:
    path: ObjectPath
    principal_kind: PrincipalKind
    principal: str
    role: Role
    granted_at: datetime
    granted_by: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    connection_key: str | None  # folded (case-insensitive identity); kept after deregistration
    type: JobType
    trigger: JobTrigger
    state: JobState
    path: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    stats: Mapping[str, Any] = field(default_factory=dict)
    errors: Sequence[Any] = ()


@dataclass(frozen=True, slots=True)
class DataRequest:
    id: int
    connection_key: str
    path: ObjectPath
    kind: RequestKind
    column_name: str
    state: RequestState
    created_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing: `count` is the total over all pages."""

    count: int
    hits: tuple[T, ...]
