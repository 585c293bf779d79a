"""`/jobs`: sync, cascade and upgrade jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pdp.admin.deps import Plane, Who
from pdp.admin.schema import JobOut, JobsOut

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}")
def get_job(who: Who, plane: Plane, job_id: str) -> dict[str, Any]:
    return JobOut.of(plane.job(who, job_id)).dump()


@router.get("/jobs")
def list_jobs(
    who: Who,
    plane: Plane,
    connection: str | None = None,
    state: str | None = None,
    offset: int = 0,
    size: int = 100,
) -> dict[str, Any]:
    page = plane.jobs(who, connection, state, offset, size)
    return JobsOut.of(map(JobOut.of, page.hits), page.count).dump()
