"""`/data/permission`: object permissions (data owners and the like)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pdp.admin.deps import Plane, Who, path_of
from pdp.admin.schema import PermissionBody, PermissionsOut

router = APIRouter(tags=["permissions"])


@router.put("/data/permission/{path:path}")
def put_permission(who: Who, plane: Plane, path: str, body: PermissionBody) -> dict[str, Any]:
    found = plane.grant(
        who, path_of(path), body.principal, body.role, body.principalKind, body.revoke
    )
    return PermissionsOut.of(found).dump()


@router.get("/data/permission/{path:path}")
def get_permission(who: Who, plane: Plane, path: str) -> dict[str, Any]:
    return PermissionsOut.of(plane.permissions(who, path_of(path))).dump()
