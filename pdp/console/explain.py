"""`POST /console/explain`: the decision on a table for a user, and why, as `pdp explain` gives
it: the same `decide`, `row_filters` and `column_mask` over the PDP's current snapshot and
cluster settings (what its gRPC service decides on). The admin API had no such endpoint; these
are thin calls, behind the admin API's authentication and admission. Explaining another user's
access shows which policies they hold: GOVERNANCE only; anyone may explain their own.
`POST /console/readers`: who of the directory may read a table, and through which policy
(GOVERNANCE): the same decision for each user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from pdp.control import Caller, ControlPlane, Forbidden
from pdp.control.permissions import GOVERNANCE
from pdp.core import decide
from pdp.core.datapolicy import column_mask, row_filters
from pdp.core.model import ClusterSettings, Identity, TableRef
from pdp.core.model import Request as Decide
from pdp.policy import PolicySnapshot

Current = Callable[[], tuple[PolicySnapshot, ClusterSettings]]
READ = "SelectFromColumns"
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
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    user: str = Field(min_length=1)
    operation: str = "SelectFromColumns"
    catalog: str = Field(min_length=1)
    schema_: str = Field(alias="schema", min_length=1)
    table: str = Field(min_length=1)
    # a column's Trino type, as a query sends it: the mask's SQL depends on it (varchar when
    # not given; the registry knows columns and tags, not types)
    types: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=dict, max_length=1000
    )


def explain(
    snapshot: PolicySnapshot, cluster: ClusterSettings, body: ExplainBody
) -> dict[str, Any]:
    identity = Identity(body.user)  # the directory gives the groups (snapshot.subject)
    view = snapshot.view(cluster.effective(snapshot.mapping), identity)
    table = TableRef(body.catalog, body.schema_, body.table)
    decision = decide(view, Decide(identity, body.operation, table))
    filters = row_filters(view, identity, table.key)
    typed = {
        c: body.types.get(c, "varchar") for c in sorted(view.registry.columns.get(table.key, {}))
    }
    masks = [(c, t, column_mask(view, identity, table.key, c, t)) for c, t in typed.items()]
    return {
        "user": body.user,
        "operation": body.operation,
        "object": f"{body.catalog}.{body.schema_}.{body.table}",
        "allowed": decision.allowed,
        "rule": str(decision.rule),
        "reason": decision.reason,
        "policies": list(decision.policies),
        "rowFilters": [{"policy": f.policy, "expression": f.expression} for f in filters],
        # the SQL Trino would put in place of each masked column, as `pdp explain` gives it
        "masks": [
            {
                "column": c,
                "type": t,
                "policy": m.policy,
                "kind": str(m.kind),
                "expression": m.expression,
                "reason": m.reason,
                "overridden": list(m.overridden),
            }
            for c, t, m in masks
            if m is not None
        ],
        "admin": view.settings.is_admin(body.user),
        "revision": snapshot.revision,
    }


class TableBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    catalog: str = Field(min_length=1)
    schema_: str = Field(alias="schema", min_length=1)
    table: str = Field(min_length=1)


def readers(snapshot: PolicySnapshot, cluster: ClusterSettings, body: TableBody) -> dict[str, Any]:
    """Who of the directory may read the table (SelectFromColumns), and through what: the same
    decision per user. Groups Trino sends that the directory does not know are not in it."""
    settings = cluster.effective(snapshot.mapping)
    table = TableRef(body.catalog, body.schema_, body.table)
    hits = []
    for user in sorted(snapshot.directory):
        identity = Identity(user)
        decision = decide(snapshot.view(settings, identity), Decide(identity, READ, table))
        if decision.allowed:
            hits.append(
                {
                    "user": user,
                    "rule": str(decision.rule),
                    "reason": decision.reason,
                    "policies": list(decision.policies),
                }
            )
    return {
        "object": f"{body.catalog}.{body.schema_}.{body.table}",
        "count": len(hits),
        "hits": hits,
        "revision": snapshot.revision,
    }


async def admitted(request: Request) -> Caller:
    """The caller as the admin API authenticates and admits it (its 401 and 403)."""
    caller: Caller = await request.app.state.authenticate(request)
    plane: ControlPlane = request.app.state.plane
    await run_in_threadpool(plane.admit, caller)
    return caller


def explain_router(current: Current) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.post("/console/explain")
    async def explain_endpoint(request: Request, body: ExplainBody) -> dict[str, Any]:
        caller = await admitted(request)
        if body.user != caller.name and not caller.has(GOVERNANCE):
            raise Forbidden(
                GOVERNANCE.value,
                f"user {caller.name!r} may explain their own access only: "
                "explaining another user's needs GOVERNANCE",
                caller.name,
            )
        snapshot, cluster = current()
        return explain(snapshot, cluster, body)

    @router.post("/console/readers")
    async def readers_endpoint(request: Request, body: TableBody) -> dict[str, Any]:
        caller = await admitted(request)
        if not caller.has(GOVERNANCE):
            raise Forbidden(
                GOVERNANCE.value,
                f"user {caller.name!r} may not list who reads a table: it needs GOVERNANCE",
                caller.name,
            )
        snapshot, cluster = current()
        return await run_in_threadpool(readers, snapshot, cluster, body)

    return router
