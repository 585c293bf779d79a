"""`/data/crawl`: start an object sync of a connection or below."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pdp.admin.deps import Plane, Who, path_of
from pdp.admin.schema import CrawlBody, JobStartedOut

router = APIRouter(tags=["sync"])


@router.post("/data/crawl/{path:path}", status_code=202)
def crawl(who: Who, plane: Plane, path: str, body: CrawlBody | None = None) -> dict[str, Any]:
    job = plane.crawl(who, path_of(path), (body or CrawlBody()).forceRecursive)
    return JobStartedOut(jobId=job.id if job else None).dump()
