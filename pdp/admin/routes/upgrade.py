"""`/data/upgrade`: the upgrade of an integration to a connection (spec §8)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pdp.admin.deps import Upgrades, Who
from pdp.admin.schema import (
    FinalizedOut,
    IntegrationOut,
    IntegrationsOut,
    ResolveBody,
    ResolvedOut,
    SourceOut,
    SourcesOut,
    StartBody,
    StatusOut,
    UpgradeBody,
    ValidateBody,
    ValidatedOut,
)

router = APIRouter(tags=["upgrade"])


@router.get("/data/upgrade")
def upgrade_list(who: Who, upgrades: Upgrades) -> dict[str, Any]:
    return IntegrationsOut.of_upgrades(upgrades.integrations(who)).dump()


@router.get("/data/upgrade/{name}")
def upgrade_status(who: Who, upgrades: Upgrades, name: str) -> dict[str, Any]:
    return StatusOut.of(upgrades.status(who, name)).dump()


@router.get("/data/upgrade/{name}/unresolved")
def upgrade_unresolved(who: Who, upgrades: Upgrades, name: str) -> dict[str, Any]:
    return SourcesOut.of(map(SourceOut.of, upgrades.unresolved(who, name))).dump()


@router.post("/data/upgrade/{name}/start")
def upgrade_start(who: Who, upgrades: Upgrades, name: str, body: StartBody) -> dict[str, Any]:
    return IntegrationOut.of(upgrades.start(who, name, body.displayName)).dump()


@router.post("/data/upgrade/{name}/validate")
def upgrade_validate(
    who: Who, upgrades: Upgrades, name: str, body: ValidateBody | None = None
) -> dict[str, Any]:
    body = body or ValidateBody()
    validated = upgrades.validate(who, name, body.endpoint, body.credentials)
    return ValidatedOut.of(validated).dump()


@router.post("/data/upgrade/{name}/upgrade", status_code=202)
def upgrade_run(
    who: Who, upgrades: Upgrades, name: str, body: UpgradeBody | None = None
) -> dict[str, Any]:
    return IntegrationOut.of(upgrades.upgrade(who, name, (body or UpgradeBody()).confirm)).dump()


@router.post("/data/upgrade/{name}/resolve/{source_id}")
def upgrade_resolve(
    who: Who, upgrades: Upgrades, name: str, source_id: str, body: ResolveBody
) -> dict[str, Any]:
    resolved = upgrades.resolve(who, name, source_id, body.action, body.path)
    return ResolvedOut.of(resolved).dump()


@router.post("/data/upgrade/{name}/finalize")
def upgrade_finalize(who: Who, upgrades: Upgrades, name: str) -> dict[str, Any]:
    return FinalizedOut.of(upgrades.finalize(who, name)).dump()
