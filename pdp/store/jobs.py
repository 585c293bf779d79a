"""Jobs: one row per sync, cascade or upgrade, moving along its life cycle."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, select, true, update

from pdp.objects.errors import InvalidInput, NotFound
from pdp.objects.keys import key_identity
from pdp.objects.paths import ObjectPath
from pdp.store.base import MAX_PAGE, Transaction, job_record
from pdp.store.model import Job, JobState, JobTrigger, JobType, Page, check_job_transition, utcnow
from pdp.store.schema import jobs


class Jobs(Transaction):
    """Reading jobs."""

    def job(self, job_id: str) -> Job:
        row = self._db.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound("jobId", job_id, "no such job")
        return job_record(row)

    def jobs(
        self,
        *,
        connection: str | None = None,
        state: JobState | None = None,
        offset: int = 0,
        size: int = 100,
    ) -> Page[Job]:
        if not 0 <= size <= MAX_PAGE:
            raise InvalidInput("size", size, f"a page holds 0 to {MAX_PAGE} jobs")
        conditions: list[ColumnElement[bool]] = []
        if connection is not None:
            conditions.append(jobs.c.connection_key == key_identity(connection))
        if state is not None:
            conditions.append(jobs.c.state == JobState(state).value)
        where = and_(true(), *conditions)
        count = self._db.execute(select(func.count()).select_from(jobs).where(where))
        rows = self._db.execute(
            select(jobs)
            .where(where)
            .order_by(jobs.c.created_at.desc(), jobs.c.id)
            .offset(offset)
            .limit(size)
        ).all()
        return Page(count.scalar_one(), tuple(job_record(row) for row in rows))

    def running_job(self, connection: str) -> Job | None:
        """The created or active job of a connection, if any (for 409 answers)."""
        row = self._db.execute(
            select(jobs)
            .where(
                jobs.c.connection_key == key_identity(connection),
                jobs.c.state.in_([JobState.CREATED.value, JobState.ACTIVE.value]),
            )
            .order_by(jobs.c.created_at)
        ).first()
        return None if row is None else job_record(row)


class JobWrites(Jobs):
    """Creating jobs and moving them along."""

    def create_job(
        self,
        type: JobType,
        trigger: JobTrigger,
        path: ObjectPath,
        *,
        job_id: str | None = None,
        now: datetime | None = None,
    ) -> Job:
        """A created job; `job_id` is one the caller minted (a runner that names the job
        before it holds the connection's lock), else a new one."""
        job_id = job_id or str(uuid.uuid4())
        self._db.execute(
            insert(jobs).values(
                id=job_id,
                connection_key=key_identity(path.key),
                type=JobType(type).value,
                trigger=JobTrigger(trigger).value,
                state=JobState.CREATED.value,
                path=path.url,
                created_at=now or utcnow(),
                stats={},
                errors=[],
            )
        )
        return self.job(job_id)

    def update_job(
        self,
        job_id: str,
        *,
        state: JobState | None = None,
        stats: Mapping[str, Any] | None = None,
        errors: Sequence[Any] | None = None,
        now: datetime | None = None,
    ) -> Job:
        """Move a job along its life cycle and record what it found. `started_at` is set when
        it becomes active, `ended_at` when it finishes."""
        job = self.job(job_id)
        values: dict[str, Any] = {}
        now = now or utcnow()
        if state is not None:
            state = JobState(state)
            check_job_transition(job_id, job.state, state)
            values["state"] = state.value
            if state is JobState.ACTIVE and job.started_at is None:
                values["started_at"] = now
            if state.finished and job.ended_at is None:
                values["ended_at"] = now
        if stats is not None:
            values["stats"] = dict(stats)
        if errors is not None:
            values["errors"] = list(errors)
        if values:
            self._db.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
        return self.job(job_id)
