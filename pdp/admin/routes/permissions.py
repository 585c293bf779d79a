"""`/data/permission`: object permissions (data owners and the like)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pdp.admin.deps import Plane, Who, path_of
from pdp.admin.schema import PermissionBody

router = APIRouter(tags=["permissions"])


@router.put("/data/permission/{path:path}")
def put_permission(who: Who, plane: Plane, path: str, body: PermissionBody) -> dict[str, Any]:
    return plane.grant(
        who, path_of(path), body.principal, body.role, body.principalKind, body.revoke
    )


@router.get("/data/permission/{path:path}")
def get_permission(who: Who, plane: Plane, path: str) -> dict[str, Any]:
    return plane.permissions(who, path_of(path))
