"""The admin API's routes, one router per resource, in the order `create_app` includes them
(the OpenAPI document lists paths in that order)."""

from pdp.admin.routes import (
    connections,
    health,
    jobs,
    legacy,
    objects,
    permissions,
    requests,
    sync,
    upgrade,
)

ROUTERS = (
    connections.router,
    objects.router,
    sync.router,
    permissions.router,
    jobs.router,
    requests.router,
    upgrade.router,
    legacy.router,
    health.router,
)

__all__ = ["ROUTERS"]
