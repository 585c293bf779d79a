"""`/data/object`, `/data/settings`: read, search, set the settings of and delete objects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from pdp.admin.deps import Plane, Who, path_of
from pdp.admin.schema import (
    CascadeOut,
    DeletedOut,
    ObjectOut,
    ObjectsOut,
    ObjectSummary,
    SearchBody,
    SettingsBody,
    SettingsOut,
)
from pdp.control import Caller, ControlPlane
from pdp.control.views import CascadeStarted
from pdp.objects.paths import ObjectPath

router = APIRouter(tags=["objects"])


@router.get("/data/object/{path:path}")
def get_object(who: Who, plane: Plane, path: str) -> dict[str, Any]:
    return ObjectOut.of(plane.object(who, path_of(path))).dump()


def _search(
    plane: ControlPlane, path: ObjectPath | None, body: SearchBody, who: Caller
) -> dict[str, Any]:
    page = plane.search(
        who,
        path,
        recursive=body.recursive,
        offset=body.offset,
        size=body.size,
        kind=body.kind,
        remote_state=body.remoteState,
        search_text=body.searchText,
        is_active=body.isActive,
    )
    return ObjectsOut.of(map(ObjectSummary.of, page.hits), page.count).dump()


@router.post("/data/object/search")
def search_connections(who: Who, plane: Plane, body: SearchBody | None = None) -> dict[str, Any]:
    return _search(plane, None, body or SearchBody(), who)


@router.post("/data/object/search/{path:path}")
def search(who: Who, plane: Plane, path: str, body: SearchBody | None = None) -> dict[str, Any]:
    return _search(plane, path_of(path), body or SearchBody(), who)


@router.put("/data/settings/{path:path}")
def put_settings(
    who: Who, plane: Plane, path: str, body: SettingsBody, response: Response
) -> dict[str, Any]:
    """The new effective settings (200), or for a change reaching more descendants than
    `control.cascadeJobThreshold`, `202 {jobId}`: a cascade job applies it."""
    values = {name: getattr(body, name) for name in body.model_fields_set}
    answer = plane.set_settings(who, path_of(path), values)
    if isinstance(answer, CascadeStarted):
        response.status_code = 202
        return CascadeOut.of(answer).dump()
    return SettingsOut.of(answer).dump()


@router.delete("/data/object/{path:path}")
def delete_object(who: Who, plane: Plane, path: str) -> dict[str, Any]:
    return DeletedOut.of(plane.delete(who, path_of(path))).dump()
