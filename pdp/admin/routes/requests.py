"""`/requests`: data source requests (spec §5: the `New` tag)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pdp.admin.deps import Plane, Who, path_of
from pdp.admin.schema import RequestOut, RequestsOut

router = APIRouter(tags=["requests"])


@router.get("/requests")
def list_requests(
    who: Who,
    plane: Plane,
    state: str | None = None,
    connection: str | None = None,
    path: str | None = None,
) -> dict[str, Any]:
    """Requests on the caller's objects (all of them for GOVERNANCE); `path` keeps those
    at or below an object (`/conn/db/schema`)."""
    found = plane.requests(who, state, connection, path_of(path) if path else None)
    return RequestsOut.of(map(RequestOut.of, found)).dump()


@router.get("/requests/{request_id}")
def get_request(who: Who, plane: Plane, request_id: int) -> dict[str, Any]:
    return RequestOut.of(plane.request(who, request_id)).dump()


@router.post("/requests/{request_id}/validate")
def validate_request(who: Who, plane: Plane, request_id: int) -> dict[str, Any]:
    """Column added: validated, its `New` tag comes off. Column deleted: acknowledged."""
    return RequestOut.of(plane.resolve_request(who, request_id)).dump()


@router.post("/requests/{request_id}/acknowledge")
def acknowledge_request(who: Who, plane: Plane, request_id: int) -> dict[str, Any]:
    """The same as validate (either kind)."""
    return RequestOut.of(plane.resolve_request(who, request_id)).dump()
