"""The one channel through which the PDP's consumers learn of a new policy revision."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pdp.policy.snapshot import PolicySnapshot


class Revisions:
    """The snapshot in force, and a subscription to each new one.

    Hot reload publishes; the WatchRevision stream and grant sync subscribe, and so will object
    sync and the admin API. A slow subscriber is not queued for: it skips to the latest."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.current = snapshot
        self._changed = asyncio.Event()

    def publish(self, snapshot: PolicySnapshot) -> None:
        if snapshot.revision == self.current.revision:
            return
        self.current = snapshot
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def after(self, revision: str | None) -> PolicySnapshot:
        """The first snapshot whose revision is not `revision`: the current one if it is not."""
        while self.current.revision == revision:
            await self._changed.wait()
        return self.current

    async def subscribe(self) -> AsyncIterator[PolicySnapshot]:
        """The current snapshot, then each newer one, until the subscriber stops."""
        revision = None
        while True:
            snapshot = await self.after(revision)
            revision = snapshot.revision
            yield snapshot
