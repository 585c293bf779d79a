"""`/data/upgrade`: the upgrade of an integration to a connection (spec §8)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pdp.admin.deps import Upgrades, Who
from pdp.admin.schema import ResolveBody, StartBody, UpgradeBody, ValidateBody

router = APIRouter(tags=["upgrade"])


@router.get("/data/upgrade")
def upgrade_list(who: Who, upgrades: Upgrades) -> dict[str, Any]:
    return upgrades.integrations(who)


@router.get("/data/upgrade/{name}")
def upgrade_status(who: Who, upgrades: Upgrades, name: str) -> dict[str, Any]:
    return upgrades.status(who, name)


@router.get("/data/upgrade/{name}/unresolved")
def upgrade_unresolved(who: Who, upgrades: Upgrades, name: str) -> dict[str, Any]:
    return upgrades.unresolved(who, name)


@router.post("/data/upgrade/{name}/start")
def upgrade_start(who: Who, upgrades: Upgrades, name: str, body: StartBody) -> dict[str, Any]:
    return upgrades.start(who, name, body.displayName)


@router.post("/data/upgrade/{name}/validate")
def upgrade_validate(
    who: Who, upgrades: Upgrades, name: str, body: ValidateBody | None = None
) -> dict[str, Any]:
    body = body or ValidateBody()
    return upgrades.validate(who, name, body.endpoint, body.credentials)


@router.post("/data/upgrade/{name}/upgrade", status_code=202)
def upgrade_run(
    who: Who, upgrades: Upgrades, name: str, body: UpgradeBody | None = None
) -> dict[str, Any]:
    return upgrades.upgrade(who, name, (body or UpgradeBody()).confirm)


@router.post("/data/upgrade/{name}/resolve/{source_id}")
def upgrade_resolve(
    who: Who, upgrades: Upgrades, name: str, source_id: str, body: ResolveBody
) -> dict[str, Any]:
    return upgrades.resolve(who, name, source_id, body.action, body.path)


@router.post("/data/upgrade/{name}/finalize")
def upgrade_finalize(who: Who, upgrades: Upgrades, name: str) -> dict[str, Any]:
    return upgrades.finalize(who, name)
