"""`/data/connection`: register, validate, read and change connections."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pdp.admin.deps import Plane, Who
from pdp.admin.schema import (
    ConnectionDetails,
    ConnectionOut,
    RegisterBody,
    RegisteredOut,
    UpdateConnectionBody,
    ValidationOut,
)
from pdp.control import Registration

router = APIRouter(tags=["connections"])


@router.post("/data/connection", status_code=201)
def register(who: Who, plane: Plane, body: RegisterBody) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if body.options.schedule is not None:
        options["schedule"] = body.options.schedule
    if body.options.failSafeThreshold is not None:
        options["fail_safe_threshold"] = body.options.failSafeThreshold
    if body.connection.trinoCatalogs is not None:
        options["settings"] = {"trinoCatalogs": dict(body.connection.trinoCatalogs)}
    key, job, proposal = plane.register(
        who,
        Registration(
            key=body.connectionKey,
            technology=body.connection.technology,
            endpoint=body.connection.endpoint,
            credentials=body.connection.credentials,
            is_active=body.settings.isActive,
            activate_new_children=body.settings.activateNewChildren,
            force_recursive=body.options.forceRecursiveCrawl,
            **options,
        ),
    )
    return RegisteredOut.of(key, job, proposal).dump()


@router.post("/data/connection/validate")
def validate(who: Who, plane: Plane, body: ConnectionDetails) -> dict[str, Any]:
    checks = plane.validate(who, body.technology, body.endpoint, body.credentials)
    return ValidationOut.of(checks).dump()


@router.get("/data/connection/{key}")
def get_connection(who: Who, plane: Plane, key: str) -> dict[str, Any]:
    return ConnectionOut.of(plane.connection(who, key)).dump()


@router.put("/data/connection/{key}")
def put_connection(who: Who, plane: Plane, key: str, body: UpdateConnectionBody) -> dict[str, Any]:
    updated = plane.update_connection(
        who,
        key,
        body.endpoint,
        body.credentials,
        body.schedule,
        body.failSafeThreshold,
        body.trinoCatalogs,
    )
    return ConnectionOut.of(updated).dump()
