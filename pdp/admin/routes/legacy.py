"""`/dataSource`, `/integrations`: the legacy API an upgrade retires (spec §8.5)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pdp.admin.deps import Legacy, Who
from pdp.admin.schema import (
    DeletedSourceOut,
    DetectBody,
    DetectedOut,
    MonitoringBody,
    MonitoringOut,
    SourceOut,
)

router = APIRouter(tags=["legacy"])


@router.post("/dataSource", status_code=201)
def legacy_register(who: Who, legacy: Legacy, body: dict[str, Any]) -> dict[str, Any]:
    return SourceOut.of(legacy.register_source(who, body)).dump()


@router.put("/dataSource/detectRemoteChanges")
def legacy_detect(who: Who, legacy: Legacy, body: DetectBody) -> dict[str, Any]:
    return DetectedOut.of(legacy.detect_remote_changes(who, body.connection)).dump()


@router.put("/dataSource/{source_id}")
def legacy_edit(who: Who, legacy: Legacy, source_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return SourceOut.of(legacy.edit_source(who, source_id, body)).dump()


@router.delete("/dataSource/{source_id}")
def legacy_delete(who: Who, legacy: Legacy, source_id: str) -> dict[str, Any]:
    return DeletedSourceOut(id=legacy.delete_source(who, source_id), deleted=True).dump()


@router.put("/integrations/{name}/schemaMonitoring")
def legacy_monitoring(who: Who, legacy: Legacy, name: str, body: MonitoringBody) -> dict[str, Any]:
    monitoring = legacy.schema_monitoring(who, name, body.database, body.schema_, body.enabled)
    return MonitoringOut.of(monitoring).dump()
