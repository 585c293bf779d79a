"""Every JSON shape of the admin API, as pydantic models: the API validates bodies with them,
the OpenAPI document names them (the class names are its components) and the CLI builds its
requests from them. Pydantic only: the CLI imports this module without FastAPI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

# --- the error shape -------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # permission, jobId, checks, replacement...
    code: str
    message: str
    field: str | None = None
    value: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- request bodies --------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConnectionDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    technology: str
    endpoint: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict)
    # non-Trino connections: database -> the Trino catalog exposing it (masks reach Trino)
    trinoCatalogs: dict[str, str] | None = None


class InitialSettings(_Body):
    isActive: StrictBool | None = None
    activateNewChildren: StrictBool | None = None


class RegisterOptions(_Body):
    forceRecursiveCrawl: StrictBool = False
    schedule: str | None = None
    failSafeThreshold: float | None = None


class RegisterBody(_Body):
    connectionKey: str
    connection: ConnectionDetails
    settings: InitialSettings = Field(default_factory=InitialSettings)
    options: RegisterOptions = Field(default_factory=RegisterOptions)


class UpdateConnectionBody(_Body):
    endpoint: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None
    schedule: str | None = None
    failSafeThreshold: float | None = None
    # database -> Trino catalog, replacing the whole mapping ({}: none)
    trinoCatalogs: dict[str, str] | None = None


class SettingsBody(_Body):
    isActive: StrictBool | None = None
    activateNewChildren: StrictBool | None = None


class SearchBody(_Body):
    searchText: str | None = None
    kind: str | None = None
    remoteState: str | None = None
    isActive: StrictBool | None = None
    recursive: StrictBool = False
    offset: int = Field(default=0, ge=0)
    size: int = Field(default=100, ge=0, le=1000)


class CrawlBody(_Body):
    forceRecursive: StrictBool = False


class PermissionBody(_Body):
    principal: str = Field(min_length=1)
    role: str
    principalKind: str = "user"
    revoke: StrictBool = False


class StartBody(_Body):
    displayName: str


class ValidateBody(_Body):
    endpoint: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None


class UpgradeBody(_Body):
    confirm: StrictBool = False


class ResolveBody(_Body):
    action: str
    path: str | None = None


class DetectBody(_Body):
    connection: str


class MonitoringBody(_Body):
    database: str
    schema_: str = Field(alias="schema")
    enabled: StrictBool
