"""`GET /health`: facts that are the same whichever worker answers (per-worker cache counts
are not among them).

    {"status": "ok", "revision": "…", "pdp": "connected"}

`status` is "degraded" when a configuration edit was rejected, by the PDP (a policy file, its
mapping or properties, pdp.yaml) or by this sidecar (its cluster files, sidecar.yaml): the
last good configuration keeps serving, at `revision`, and `rejected` lists each problem with
its file and line. It is "degraded" too while the sidecar serves from its saved state
(`savedState`: revision and age) because the PDP has not been heard since it started, and while
the PDP says it is degraded (`pdpDegraded`: its reason, say its store unreachable).
`warnings` (when there are any) are the PDP's about its policies: a group no user of its
directory is in, a policy that selects no data source; they leave the status as it is."""

from __future__ import annotations

from typing import Any

from pdp.config.errors import Problem
from pdp.config.watch import Watched
from sidecar.answers import Answers
from sidecar.pdp_client import PdpClient
from sidecar.state import StateFile


def health(
    answers: Answers,
    client: PdpClient,
    watched: tuple[Watched[Any], ...] = (),
    state: StateFile | None = None,
) -> dict[str, Any]:
    rejected = [_problem("pdp", p) for p in client.rejected]
    rejected += [_problem("sidecar", p) for w in watched for p in w.rejected]
    saved = state.serving_saved() if state is not None else None
    warnings = list(client.warnings)
    body: dict[str, Any] = {
        "status": "degraded" if rejected or saved or client.degraded else "ok",
        "revision": answers.revision,
        "pdp": "connected" if answers.lost_since is None else "disconnected",
    }
    if saved is not None:
        body["savedState"] = {
            "revision": saved.revision,
            "ageSeconds": round(saved.age(), 1),
            "users": saved.users,
        }
    if client.degraded:
        body["pdpDegraded"] = client.degraded
    if rejected:
        body["rejected"] = rejected
    if warnings:
        body["warnings"] = warnings
    return body


def _problem(by: str, problem: Problem) -> dict[str, Any]:
    return {"by": by, "file": problem.file, "line": problem.line, "message": problem.message}
