"""`POST /console/explain`: the decision on a table for a user, and why, as `pdp explain` gives
it: the same `decide` and `row_filters` over the PDP's current snapshot and cluster settings
(what its gRPC service decides on). The admin API had no such endpoint; this one is a thin call,
behind the admin API's authentication and admission. Explaining another user's access shows
which policies they hold: GOVERNANCE only; anyone may explain their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from pdp.control import Caller, ControlPlane, Forbidden
from pdp.control.permissions import GOVERNANCE
from pdp.core import decide
from pdp.core.datapolicy import row_filters
from pdp.core.model import ClusterSettings, Identity, TableRef
from pdp.core.model import Request as Decide
from pdp.policy import PolicySnapshot

Current = Callable[[], tuple[PolicySnapshot, ClusterSettings]]
# the Trino operations on one table the page offers (any name `pdp explain` knows is accepted)
TABLE_OPERATIONS = (
    "SelectFromColumns",
    "InsertIntoTable",
    "UpdateTableColumns",
    "DeleteFromTable",
    "DropTable",
    "ShowColumns",
)


class ExplainBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1)
    operation: str = "SelectFromColumns"
    catalog: str = Field(min_length=1)
    schema_: str = Field(alias="schema", min_length=1)
    table: str = Field(min_length=1)


def explain(
    snapshot: PolicySnapshot, cluster: ClusterSettings, body: ExplainBody
) -> dict[str, Any]:
    identity = Identity(body.user)  # the directory gives the groups (snapshot.subject)
    view = snapshot.view(cluster.effective(snapshot.mapping), identity)
    table = TableRef(body.catalog, body.schema_, body.table)
    decision = decide(view, Decide(identity, body.operation, table))
    filters = row_filters(view, identity, table.key)
    return {
        "user": body.user,
        "operation": body.operation,
        "object": f"{body.catalog}.{body.schema_}.{body.table}",
        "allowed": decision.allowed,
        "rule": str(decision.rule),
        "reason": decision.reason,
        "policies": list(decision.policies),
        "rowFilters": [{"policy": f.policy, "expression": f.expression} for f in filters],
        "admin": view.settings.is_admin(body.user),
        "revision": snapshot.revision,
    }


def explain_router(current: Current) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.post("/console/explain")
    async def explain_endpoint(request: Request, body: ExplainBody) -> dict[str, Any]:
        caller: Caller = await request.app.state.authenticate(request)
        plane: ControlPlane = request.app.state.plane
        await run_in_threadpool(plane.admit, caller)
        if body.user != caller.name and not caller.has(GOVERNANCE):
            raise Forbidden(
                GOVERNANCE.value,
                f"user {caller.name!r} may explain their own access only: "
                "explaining another user's needs GOVERNANCE",
                caller.name,
            )
        snapshot, cluster = current()
        return explain(snapshot, cluster, body)

    return router
