"""Object sync as jobs: crawl a subtree breadth first, then apply it in one store write.

`SyncRunner.start(path, trigger)` runs a `SyncWork` on the process's `JobRunner`
(pdp.control.jobs: the connection's job lock, the job row, its own thread), so the PDP's
event loop never waits for a platform. The crawl lists each container once and recurses into
the children that are effectively active, have an active descendant or arrive active in this
sync (into all of them with `force_recursive`, and on a connection's first sync, which lists
the whole hierarchy so that there is a tree to activate); the listings go to `Writer.sync` in
one transaction together with the job's final state: one store version, one revision at most
(the revision follows the registry's content, so a sync that changes nothing publishes none).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from pdp.control.jobs import ABANDONED, JobRunner, Progress
from pdp.control.syncprogress import CrawlProgress
from pdp.crawl.base import Crawler
from pdp.objects.errors import Conflict
from pdp.objects.paths import Kind, ObjectPath
from pdp.objects.syncplan import Listing, StoredNode, fold_names
from pdp.store import (
    ConnectionRecord,
    ConnectionState,
    Job,
    JobState,
    JobTrigger,
    JobType,
    not_governed_in_trino,
)
from pdp.store.store import Store, SyncOutcome, Writer

log = logging.getLogger(__name__)

CrawlerFactory = Callable[[ConnectionRecord], Crawler]
Names = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _State:
    active: bool  # effective isActive (ignoring the node's own past `missing`)
    activate_new: bool  # effective activateNewChildren


def effective_states(nodes: Sequence[StoredNode]) -> dict[Names, _State]:
    """Effective status and activate-new of every stored node, by folded names, top-down."""
    result: dict[Names, _State] = {}
    for node in sorted(nodes, key=lambda n: len(n.names)):
        folded = fold_names(node.names)
        parent = result.get(folded[:-1]) if node.names else None
        base = parent or _State(False, False)
        result[folded] = _State(
            base.active if node.is_active is None else node.is_active,
            base.activate_new if node.activate_new_children is None else node.activate_new_children,
        )
    return result


def with_active_below(states: Mapping[Names, _State]) -> set[Names]:
    """The nodes that are effectively active or have an effectively active descendant: a sync
    descends into each of them, so an activated schema under an inactive database is synced
    by a sync of its connection (and so by the schedule)."""
    found: set[Names] = set()
    for names, state in states.items():
        if state.active:
            found.update(names[:depth] for depth in range(len(names) + 1))
    return found


MAX_CONCURRENT_LISTINGS = 4  # default bound on one connection's listings in flight
CONCURRENCY_KEY = "maxConcurrentListings"  # endpoint (or connection settings) key
MAX_CONCURRENT_PER_DATABASE = 2  # default bound on listings in flight under one database
DATABASE_CONCURRENCY_KEY = "maxConcurrentListingsPerDatabase"


def listing_bound(connection: ConnectionRecord) -> int:
    """The connection's bound on concurrent listings: `maxConcurrentListings` in its endpoint
    (or its settings), 1 to 64, else `MAX_CONCURRENT_LISTINGS`."""
    return _bound(connection, CONCURRENCY_KEY, MAX_CONCURRENT_LISTINGS)


def database_bound(connection: ConnectionRecord) -> int:
    """The bound on concurrent listings under one database (the first level below the
    connection): `maxConcurrentListingsPerDatabase`, 1 to 64, else
    `MAX_CONCURRENT_PER_DATABASE`. The connection's bound holds as well."""
    return _bound(connection, DATABASE_CONCURRENCY_KEY, MAX_CONCURRENT_PER_DATABASE)


def _bound(connection: ConnectionRecord, key: str, default: int) -> int:
    value = connection.endpoint.get(key, connection.settings.get(key))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        if value is not None:
            log.warning(
                "%s: %s=%r is not a whole number from 1 to 64; using %d",
                connection.key,
                key,
                value,
                default,
            )
        return default
    return value


class CrawlerPool:
    """Up to `size` crawlers of one connection, each used by one thread at a time: a crawler
    holds one platform session (not safe to share between threads), so parallel listings get
    their own, and never more than `size` calls are in flight. `first` is the caller's (it
    closes it); the pool opens the others with `more` as needed and closes them."""

    def __init__(
        self,
        first: Crawler,
        more: Callable[[], Crawler] | None,
        size: int,
        per_database: int = MAX_CONCURRENT_PER_DATABASE,
    ) -> None:
        self.size = max(1, size) if more is not None else 1
        self.per_database = max(1, per_database)
        self._more = more
        self._idle: queue.SimpleQueue[Crawler] = queue.SimpleQueue()
        self._idle.put(first)
        self._opened: list[Crawler] = []
        self._guard = threading.Lock()
        self._databases: dict[str, threading.BoundedSemaphore] = {}

    def list(self, names: Names) -> Listing:
        """List `names`; under a database, wait first for one of its `per_database` places (a
        thread waiting for one holds no crawler)."""
        if not names or self.per_database >= self.size:
            return self._list(names)
        with self._database(names[0]):
            return self._list(names)

    def _list(self, names: Names) -> Listing:
        crawler = self._take()
        try:
            return crawler.list(names)
        finally:
            self._idle.put(crawler)

    def _database(self, name: str) -> threading.BoundedSemaphore:
        folded = name.casefold()
        with self._guard:
            places = self._databases.get(folded)
            if places is None:
                places = self._databases[folded] = threading.BoundedSemaphore(self.per_database)
            return places

    def _take(self) -> Crawler:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._guard:  # at most `size` threads ever call this (the executor's bound)
            if self._more is not None and len(self._opened) + 1 < self.size:
                crawler = self._more()
                self._opened.append(crawler)
                return crawler
        return self._idle.get()

    def close(self) -> None:
        for crawler in self._opened:
            try:
                crawler.close()
            except Exception:
                log.exception("closing a crawler")
        self._opened.clear()


def crawl(
    crawler: Crawler,
    nodes: Sequence[StoredNode],
    start: Names,
    force_recursive: bool = False,
    *,
    concurrency: int = 1,
    more: Callable[[], Crawler] | None = None,
    per_database: int = MAX_CONCURRENT_PER_DATABASE,
    listed: Callable[[Listing], None] | None = None,
) -> list[Listing]:
    """Breadth-first listings of the subtree at `start` (a table path lists its schema),
    descending into the children that are active, have an active descendant or arrive active
    in this sync; into every child with `force_recursive`.

    The containers of one level are independent: with `concurrency` above 1 (and `more` to
    open further crawlers) up to that many are listed at once, and at most `per_database` of
    them under one database. A level is handed out alternating between databases, so that
    threads seldom wait on a busy one. The listings come back in the same breadth-first order
    as a sequential crawl. `listed` is told of each listing as it comes (from the listing's
    thread)."""
    states = effective_states(nodes)
    descend = with_active_below(states)
    if len(start) >= len(Kind) - 1:
        start = start[:-1]
        recurse = False
    else:
        recurse = True
    pool = CrawlerPool(crawler, more, concurrency, per_database)
    listings: list[Listing] = []
    level: list[Names] = [start]
    executor = ThreadPoolExecutor(pool.size, "pdp-listing") if pool.size > 1 else None
    try:
        while level:
            found = _list_level(executor, pool, listed, level)
            listings.extend(found)
            following: list[Names] = []
            for names, listing in zip(level, found, strict=True):
                if not recurse or listing.children is None or len(names) >= len(Kind) - 2:
                    continue
                parent = states.get(fold_names(names), _State(False, False))
                for child in listing.children:
                    child_names = (*names, child.name)
                    folded = fold_names(child_names)
                    state = states.get(folded)
                    if state is None:  # new in this sync: its status is the inherited one
                        state = states[folded] = _State(parent.activate_new, parent.activate_new)
                    if state.active or force_recursive or folded in descend:
                        following.append(child_names)
            level = following
    finally:
        if executor is not None:
            executor.shutdown(wait=True)
        pool.close()
    return listings


def _list_level(
    executor: ThreadPoolExecutor | None,
    pool: CrawlerPool,
    listed: Callable[[Listing], None] | None,
    level: Sequence[Names],
) -> list[Listing]:
    """One level's listings, in the level's order (listed in parallel when there is a pool)."""
    if executor is None or len(level) <= 1:
        return [_list_one(pool, listed, names) for names in level]
    order = _alternating(level)
    done = executor.map(partial(_list_one, pool, listed), [level[i] for i in order])
    by_index = dict(zip(order, done, strict=True))
    return [by_index[i] for i in range(len(level))]


def _alternating(level: Sequence[Names]) -> list[int]:
    """Indexes of `level`, taking one container of each database in turn."""
    queues: dict[str, list[int]] = {}
    for index, names in enumerate(level):
        queues.setdefault(names[0].casefold() if names else "", []).append(index)
    order: list[int] = []
    rounds = max((len(q) for q in queues.values()), default=0)
    for turn in range(rounds):
        order.extend(q[turn] for q in queues.values() if turn < len(q))
    return order


def _list_one(pool: CrawlerPool, listed: Callable[[Listing], None] | None, names: Names) -> Listing:
    try:
        listing = pool.list(names)
    except Exception as error:  # the seam says it never raises; be safe anyway
        log.exception("crawler raised listing %s", names)
        listing = Listing.failed(names, f"{type(error).__name__}: {error}")
    if listed is not None:
        listed(listing)
    return listing


def describe(path: Names, key: str) -> str:
    return ObjectPath(key, path).url


class SyncRunner:
    """Starts sync jobs on the process's `JobRunner`. One per process; thread-safe."""

    def __init__(
        self,
        store: Store,
        crawler_factory: CrawlerFactory,
        jobs: JobRunner | None = None,
        *,
        requests_wanted: Callable[[], bool] | None = None,
    ) -> None:
        self.store = store
        self.crawler_factory = crawler_factory
        self.jobs = jobs or JobRunner(store)
        # Whether an active policy targets the `New` tag now (the PDP service asks its current
        # snapshot): only then does a sync open data source requests for added/deleted columns.
        self.requests_wanted: Callable[[], bool] = requests_wanted or (lambda: False)

    def start(
        self,
        path: ObjectPath,
        trigger: JobTrigger = JobTrigger.MANUAL,
        *,
        force_recursive: bool = False,
        due: datetime | None = None,
    ) -> Job | None:
        """Blocking (call it from a thread): take the lock, create the job and run it in the
        background. Raises `JobRunning` when a job of the connection runs (here or on another
        replica). With `due` (a scheduled run) returns None if a scheduled job for that time
        exists already or a sync ran since."""
        work = SyncWork(self, path, force_recursive, due)
        return self.jobs.run(JobType.SYNC, path.key, work, trigger=JobTrigger(trigger))

    def join(self, timeout: float = 30.0) -> None:
        """Wait for this process's jobs (tests, shutdown)."""
        self.jobs.join(timeout)

    def sweep(self) -> list[str]:
        """`JobRunner.sweep`: mark failed the jobs whose runner is gone."""
        return self.jobs.sweep()

    def requests_on(self) -> bool:
        try:
            return bool(self.requests_wanted())
        except Exception:  # never fail a sync over it; the requests are a courtesy to owners
            log.exception("cannot tell whether a policy targets the New tag; no requests")
            return False


class SyncWork:
    """One sync job (a `Work` of the job runner): crawl `path`, then apply it in one write."""

    busy = "a sync of this connection runs already (job {job})"
    abandoned = ABANDONED

    def __init__(
        self, runner: SyncRunner, path: ObjectPath, force_recursive: bool, due: datetime | None
    ) -> None:
        self.store, self.runner, self.path = runner.store, runner, path
        self.force_recursive, self.due = force_recursive, due
        self.connection: ConnectionRecord | None = None

    def admit(self) -> None:
        with self.store.read() as reader:
            self.connection = reader.connection(self.path.key)
            reader.object(self.path)  # 404 before anything else
        if self.connection.state is ConnectionState.UPGRADING:
            raise Conflict("path", self.path.url, "the connection is being upgraded: sync is off")

    def begin(self, writer: Writer) -> Mapping[str, Any] | None:
        """No stats; a scheduled run records its due time, and is nothing to run if a
        scheduled job for that time exists already or a sync ran since."""
        due = self.due
        if due is None:
            return {}
        current = writer.connection(self.path.key)
        if current.last_sync_at is not None and _aware(current.last_sync_at) >= due:
            return None
        for job in writer.jobs(connection=self.path.key, size=20).hits:
            if job.trigger is JobTrigger.SCHEDULED and _scheduled_for(job) >= due:
                return None
        return {"scheduledFor": due.isoformat()}

    def __call__(self, job: Job, progress: Progress) -> None:
        path, connection = self.path, self.connection
        assert connection is not None  # admitted
        factory = self.runner.crawler_factory
        try:
            crawler = factory(connection)
        except Exception as error:
            progress.end(JobState.FAILED, {}, [_error(path, f"cannot connect: {error}")])
            return
        try:
            with self.store.read() as reader:
                nodes = reader.stored_tree(path.key)
            counter = CrawlProgress(self.store, job, path.key, nodes)
            # The first sync of a connection lists its whole hierarchy down to the tables,
            # every object as the settings say (inactive by default): the tree is there to
            # activate. Later syncs follow the settings.
            first_sync = connection.last_sync_at is None
            try:
                listings = crawl(
                    crawler,
                    nodes,
                    path.names,
                    self.force_recursive or first_sync,
                    concurrency=listing_bound(connection),
                    more=partial(factory, connection),
                    per_database=database_bound(connection),
                    listed=counter.listed,
                )
            finally:
                counter.close()
        finally:
            crawler.close()
        first = listings[0]
        if first.children is None:  # unreachable, refused credentials: change nothing
            reason = first.error or "listing failed"
            where = describe(first.parent, path.key)
            progress.end(
                JobState.FAILED,
                {**counter.counts, "listings": len(listings), "failedListings": 1},
                [{"path": where, "message": f"cannot list {where}: {reason}"}],
            )
            return
        self._apply(job, listings, counter.counts)

    def _apply(self, job: Job, listings: list[Listing], counts: Mapping[str, int]) -> None:
        """The listings and the job's end: one store write, one version."""
        path = self.path
        create_requests = self.runner.requests_on()
        with self.store.write() as writer:
            outcome = writer.sync(
                path.key, listings, job_id=job.id, create_requests=create_requests
            )
            stats = {**job.stats, **counts, **_stats(outcome, listings)}
            if create_requests and outcome.applied:
                plan = outcome.plan
                stats["requestsOpened"] = sum(1 for a in plan.column_adds if a.new) + len(
                    plan.column_deletes
                )
            errors = _errors(outcome, path.key)
            ungoverned = len(not_governed_in_trino(writer, path.key))
            if ungoverned:  # active, yet Trino reads them through no mapped catalog
                stats["notGovernedInTrino"] = ungoverned
            if not outcome.applied:
                errors.append(_fail_safe(path, outcome))
                writer.update_job(job.id, state=JobState.FAILED, stats=stats, errors=errors)
            else:
                writer.update_job(job.id, state=JobState.COMPLETED, stats=stats, errors=errors)
        log.info("sync job %s of %s: %s", job.id, path.url, stats)


def _scheduled_for(job: Job) -> datetime:
    """The due time a scheduled job ran for (older jobs: when it was created)."""
    value = job.stats.get("scheduledFor")
    if isinstance(value, str):
        try:
            return _aware(datetime.fromisoformat(value))
        except ValueError:
            pass
    return _aware(job.created_at)


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _fail_safe(path: ObjectPath, outcome: SyncOutcome) -> dict[str, Any]:
    """The fail-safe's error: its sentence, and its numbers for those who explain it."""
    error: dict[str, Any] = {"path": path.url, "message": outcome.plan.fail_safe}
    if (trip := outcome.plan.fail_safe_trip) is not None:
        error["failSafe"] = {
            "missingTables": trip.missing,
            "presentTables": trip.present,
            "threshold": trip.threshold,
        }
    return error


def _error(path: ObjectPath, message: str) -> dict[str, Any]:
    return {"path": path.url, "message": message}


def _stats(outcome: SyncOutcome, listings: Sequence[Listing]) -> dict[str, Any]:
    stats: dict[str, Any] = dict(sorted(outcome.stats.items()))
    stats["listings"] = len(listings)
    stats["failedListings"] = sum(1 for listing in listings if listing.children is None)
    return stats


def _errors(outcome: SyncOutcome, key: str) -> list[dict[str, Any]]:
    return [
        {"path": describe(issue.path, key), "message": issue.message}
        for issue in (*outcome.plan.errors, *outcome.plan.conflicts)
    ]
