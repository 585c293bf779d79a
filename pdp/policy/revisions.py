"""The one channel through which the PDP's consumers learn of a new policy revision."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pdp.policy.delta import RevisionDelta, revision_delta
from pdp.policy.snapshot import PolicySnapshot


class Revisions:
    """The snapshot in force, what changed from the one before it (`delta`), and a
    subscription to each new one.

    Hot reload publishes; the WatchRevision stream and grant sync subscribe, and so will object
    sync and the admin API. A slow subscriber is not queued for: it skips to the latest (and a
    watcher that skipped a revision is sent no delta: `delta.previous` is not what it holds)."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.current = snapshot
        self.delta = RevisionDelta.flush("")  # no revision before the first
        self._absolute: RevisionDelta | None = None  # `delta` for watchers of whole targets
        self._changed = asyncio.Event()

    def publish(self, snapshot: PolicySnapshot, delta: RevisionDelta | None = None) -> None:
        """`delta`: from the current snapshot to `snapshot`, when the caller computed it (off
        the event loop); computed here when it is absent or from another revision."""
        if snapshot.revision == self.current.revision:
            return
        if delta is None or delta.previous != self.current.revision:
            delta = revision_delta(self.current, snapshot)
        self.current, self.delta, self._absolute = snapshot, delta, None
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def after(self, revision: str | None) -> PolicySnapshot:
        """The first snapshot whose revision is not `revision`: the current one if it is not."""
        while self.current.revision == revision:
            await self._changed.wait()
        return self.current

    def delta_from(self, revision: str | None, relative: bool = True) -> RevisionDelta | None:
        """What changed from `revision` to the current one, if the current one directly
        follows it and the change is one a delta describes; None: drop everything. Not
        `relative`: with every retargeted policy whole (`RevisionDelta.absolute`)."""
        delta = self.delta
        if revision is None or delta.previous != revision or delta.everything:
            return None
        if relative:
            return delta
        if self._absolute is None:  # one object per revision: encoded once (the servicer)
            self._absolute = delta.absolute()
        return None if self._absolute.everything else self._absolute

    async def subscribe(self) -> AsyncIterator[PolicySnapshot]:
        """The current snapshot, then each newer one, until the subscriber stops."""
        revision = None
        while True:
            snapshot = await self.after(revision)
            revision = snapshot.revision
            yield snapshot
