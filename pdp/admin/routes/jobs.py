"""`/jobs`: sync, cascade and upgrade jobs, and a job's progress as server-sent events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from pdp.admin.deps import Plane, Who
from pdp.admin.errors import problem_body
from pdp.admin.schema import JobOut, JobsOut
from pdp.control import Caller, ControlPlane

router = APIRouter(tags=["jobs"])

# The event stream reads the job row from the store (progress is recorded there as the job
# goes), so it follows a job that runs on another replica just as well.
TICK = 0.25  # seconds between two reads of the job
HEARTBEAT = 15.0  # a comment line after this long without an event: proxies keep the stream
LIFETIME = 300.0  # a stream ends after this long; EventSource reconnects (after RETRY)
RETRY_MS = 1000
FINISHED = frozenset({"completed", "failed", "cancelled"})
EVENTS = {
    "job": "the job as `GET /jobs/{id}` answers it, whenever it changed (first: at once)",
    "end": "the job once it has ended; the stream ends with it",
    "problem": "the job could not be read any more (the API's error body); the stream ends",
}


@router.get("/jobs/{job_id}")
def get_job(who: Who, plane: Plane, job_id: str) -> dict[str, Any]:
    return JobOut.of(plane.job(who, job_id)).dump()


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-sent events: "
            + "; ".join(f"`{name}`: {what}" for name, what in EVENTS.items())
            + f". A comment every {HEARTBEAT:.0f} s without one; the stream ends when the job "
            f"does, or after {LIFETIME:.0f} s (reconnect: the first event is the job as it is).",
        }
    },
)
def job_events(request: Request, who: Who, plane: Plane, job_id: str) -> StreamingResponse:
    """The job's progress as it happens: the same check as `GET /jobs/{id}`, made before the
    stream starts (its refusal is the API's answer) and at each read."""
    first = JobOut.of(plane.job(who, job_id)).dump()
    return StreamingResponse(
        _events(request, who, plane, job_id, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, who: Caller, plane: ControlPlane, job_id: str, job: dict[str, Any]
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    started = quiet = time.monotonic()
    last: dict[str, Any] | None = None
    while True:
        if job != last:
            if job["state"] in FINISHED:
                yield _event("end", job)
                return
            yield _event("job", job)
            last, quiet = job, time.monotonic()
        elif time.monotonic() - quiet >= HEARTBEAT:
            yield ": heartbeat\n\n"
            quiet = time.monotonic()
        if time.monotonic() - started >= LIFETIME or await request.is_disconnected():
            return
        await asyncio.sleep(TICK)
        try:
            job = JobOut.of(await run_in_threadpool(plane.job, who, job_id)).dump()
        except Exception as error:
            yield _event("problem", problem_body(error))
            return


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


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
