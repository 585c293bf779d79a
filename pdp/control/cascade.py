"""Settings cascades as jobs: a settings change reaching more descendants than
`control.cascadeJobThreshold` is applied by a `cascade` job on the job runner (one job per
connection, like a sync), the change and the job's end in one store write: one version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pdp.control.jobs import ABANDONED, Progress
from pdp.objects.paths import ObjectPath
from pdp.objects.settings import EffectiveSettings
from pdp.store import Job, JobState
from pdp.store.store import Store, Writer


def settings_json(effective: EffectiveSettings) -> dict[str, Any]:
    return {
        name: {
            "value": value.value,
            "origin": value.origin.value,
            "inheritedFrom": value.inherited_from,
        }
        for name, value in (
            ("isActive", effective.is_active),
            ("activateNewChildren", effective.activate_new_children),
        )
    }


class CascadeWork:
    """One cascade job (a `Work` of the job runner), checked before it starts (403, 404, 400)."""

    busy = "a job of this connection runs already (job {job}); try again when it has ended"
    abandoned = ABANDONED

    def __init__(
        self,
        store: Store,
        path: ObjectPath,
        overrides: Mapping[str, Any],
        descendants: int,
        requested_by: str,
    ) -> None:
        self.store, self.path, self.overrides = store, path, dict(overrides)
        self.descendants, self.requested_by = descendants, requested_by

    def admit(self) -> None:
        """Nothing more to check: the plane checked the change before starting the job."""

    def begin(self, writer: Writer) -> Mapping[str, Any]:
        return {"descendants": self.descendants, "requestedBy": self.requested_by}

    def __call__(self, job: Job, progress: Progress) -> None:
        with self.store.write() as writer:  # the change and the job's end: one version
            effective = writer.set_settings(self.path, **self.overrides)
            stats = {**job.stats, "settings": settings_json(effective)}
            writer.update_job(job.id, state=JobState.COMPLETED, stats=stats)
