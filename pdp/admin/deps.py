"""What every route depends on: the admitted caller, and the control plane's services the app
holds in `app.state` (`create_app` puts them there)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pdp.control import Caller, ControlPlane
from pdp.control.legacy import LegacyApi
from pdp.control.upgrade import UpgradeManager
from pdp.objects.paths import ObjectPath

USER_HEADER = "X-Pdp-User"
Authenticate = Callable[[Request], Awaitable[Caller]]

# Declares the bearer scheme in the OpenAPI document (Swagger UI's Authorize button); the
# token itself is checked by the app's `authenticate`.
_BEARER = HTTPBearer(auto_error=False, description="an access token of the PDP's `auth:` issuer")


async def _caller(
    request: Request, _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
) -> Caller:
    """The authenticated caller, admitted: one holding no control-plane permission at all is
    refused (403) here, before the body is validated or anything is looked up, so that no
    answer tells them which keys exist."""
    authenticate: Authenticate = request.app.state.authenticate
    caller = await authenticate(request)
    plane: ControlPlane = request.app.state.plane
    await run_in_threadpool(plane.admit, caller)
    return caller


async def _plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.plane
    return plane


async def _upgrades(request: Request) -> UpgradeManager:
    upgrades: UpgradeManager = request.app.state.upgrades
    return upgrades


async def _legacy(request: Request) -> LegacyApi:
    legacy: LegacyApi = request.app.state.legacy
    return legacy


Who = Annotated[Caller, Depends(_caller)]
Plane = Annotated[ControlPlane, Depends(_plane)]
Upgrades = Annotated[UpgradeManager, Depends(_upgrades)]
Legacy = Annotated[LegacyApi, Depends(_legacy)]


def path_of(text: str) -> ObjectPath:
    return ObjectPath.parse_url(text)
