"""A sync job's progress while it crawls, recorded in its job row as it goes.

A sync applies what it found in one store write at its end (one version, one revision), so
what it adds, changes and marks missing is decided then. While it crawls, `CrawlProgress`
counts what the listings show so far against the stored tree and records it in the job row
(`Store.record_progress`) at most every `INTERVAL` seconds, and at the latest `INTERVAL` after
a listing came in (a crawl waiting on a slow listing shows what came before). Any replica
reading the job (`GET /jobs/{id}`, its event stream) sees it, wherever the job runs.

    objectsListed   children the listings returned
    objectsNew      of them, not in the registry yet (added at the end, unless the fail-safe
                    trips)
    objectsGone     registry objects their parent's listing no longer shows, with what they
                    hold (marked missing at the end, likewise)
    listings, failedListings   listings made, and failed (each failure also in `errors`)

Recording is a courtesy: a store that does not answer fails no sync (the end is recorded as
before).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from pdp.objects.paths import ObjectPath
from pdp.objects.settings import RemoteState
from pdp.objects.syncplan import Listing, StoredNode, fold_names
from pdp.store import Job
from pdp.store.store import Store

log = logging.getLogger(__name__)

INTERVAL = 0.25  # seconds between two progress writes of one job
Names = tuple[str, ...]


class CrawlProgress:
    """Counts the listings of one sync job as they come (from any listing thread)."""

    def __init__(self, store: Store, job: Job, key: str, nodes: Sequence[StoredNode]) -> None:
        self.store, self.job, self.key = store, job, key
        self._known: set[Names] = set()
        self._children: dict[Names, set[Names]] = {}
        self._below: dict[Names, int] = {}  # present objects under each (a gone one's go too)
        for node in nodes:
            folded = fold_names(node.names)
            self._known.add(folded)
            if node.names and node.remote_state is RemoteState.PRESENT:
                self._children.setdefault(folded[:-1], set()).add(folded)
                for depth in range(1, len(folded)):
                    self._below[folded[:depth]] = self._below.get(folded[:depth], 0) + 1
        self._guard = threading.Lock()
        self._counts = dict.fromkeys(
            ("listings", "failedListings", "objectsListed", "objectsNew", "objectsGone"), 0
        )
        self._errors: list[dict[str, Any]] = []
        self._written = 0.0
        self._pending: threading.Timer | None = None  # a write due once `INTERVAL` is over
        self._closed = False

    @property
    def counts(self) -> dict[str, int]:
        with self._guard:
            return dict(self._counts)

    def listed(self, listing: Listing) -> None:
        """One listing is in: count it, and record the counts now if the last write is old,
        else once it is."""
        with self._guard:
            self._count(listing)
            wait = INTERVAL - (time.monotonic() - self._written)
            if wait <= 0:
                self._record()
            elif self._pending is None and not self._closed:
                self._pending = threading.Timer(wait, self._due)
                self._pending.daemon = True
                self._pending.start()

    def close(self) -> None:
        """The crawl is over: no more writes (the job's end records the counts)."""
        with self._guard:
            self._closed = True
            if self._pending is not None:
                self._pending.cancel()

    def _due(self) -> None:
        with self._guard:
            self._pending = None
            if not self._closed:
                self._record()

    def _count(self, listing: Listing) -> None:
        counts = self._counts
        counts["listings"] += 1
        if listing.children is None:
            counts["failedListings"] += 1
            where = ObjectPath(self.key, listing.parent).url
            self._errors.append({"path": where, "message": listing.error or "listing failed"})
            return
        parent = fold_names(listing.parent)
        shown = {fold_names((*listing.parent, child.name)) for child in listing.children}
        counts["objectsListed"] += len(shown)
        counts["objectsNew"] += len(shown - self._known)
        gone = self._children.get(parent, set()) - shown
        counts["objectsGone"] += sum(1 + self._below.get(names, 0) for names in gone)

    def _record(self) -> None:
        stats = {**self.job.stats, **self._counts}
        try:
            self.store.record_progress(self.job.id, stats, self._errors)
        except Exception as error:  # never fail a sync over its progress
            log.warning("cannot record the progress of job %s: %s", self.job.id, error)
        self._written = time.monotonic()
