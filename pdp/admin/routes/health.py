"""`/health`: unauthenticated, what decisions rest on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request

from pdp.admin.schema import HealthOut

router = APIRouter(tags=["health"])


@dataclass(frozen=True, slots=True)
class HealthSources:
    """Where `/health` reads its answer (`create_app`'s arguments)."""

    store_available: Callable[[], bool]
    revision: Callable[[], str] | None
    warnings: Callable[[], Sequence[str]]
    degraded: Callable[[], str | None]


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """Unauthenticated: `degraded` with the reason while decisions rest on less than they
    should (store unreachable, active data sources no Trino catalog exposes), whether the
    store answers, the revision in force and its warnings (a group no user of the directory
    is in, a policy selecting no data source)."""
    sources: HealthSources = request.app.state.health
    reason = sources.degraded()
    answer = HealthOut(
        status="ok" if reason is None else "degraded",
        store="reachable" if sources.store_available() else "unreachable",
        revision=sources.revision() if sources.revision else None,
        warnings=list(sources.warnings()),
    )
    if reason is not None:
        answer.reason = reason
    return answer.dump()
