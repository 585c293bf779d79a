"""Object sync bounds the listings in flight against one platform: `maxConcurrentListings` per
connection (default 4) and `maxConcurrentListingsPerDatabase` under one database (default 2),
each parallel listing on its own crawler (a platform session is not shared between threads),
listings in the same breadth-first order as a sequential crawl."""

from __future__ import annotations

import threading
import time

import pytest

from devstack.fakes import FakeCrawler, FakePlatform
from pdp.control import SyncRunner
from pdp.control.objectsync import (
    MAX_CONCURRENT_LISTINGS,
    MAX_CONCURRENT_PER_DATABASE,
    crawl,
    database_bound,
    listing_bound,
)
from pdp.crawl.base import CrawlError, open_crawler
from pdp.objects import ObjectPath
from pdp.objects.syncplan import Listing
from pdp.policy.model import Technology
from pdp.store import ConnectionRecord, ConnectionState, JobState, JobTrigger, Store
from pdp.store.model import utcnow
from tests.control.conftest import wait_job


class Counting:
    """Counts the listings in flight across all crawlers of one platform."""

    def __init__(self, platform: FakePlatform, delay: float = 0.03) -> None:
        self.platform, self.delay = platform, delay
        self.lock = threading.Lock()
        self.now = self.peak = self.opened = 0
        self.busy: set[int] = set()  # crawlers in use: one thread each
        self.per_database: dict[str, int] = {}  # listings in flight under each database
        self.database_peak: dict[str, int] = {}

    def factory(self, _record: ConnectionRecord | None = None) -> CountingCrawler:
        with self.lock:
            self.opened += 1
        return CountingCrawler(self)


class CountingCrawler(FakeCrawler):
    def __init__(self, counter: Counting) -> None:
        super().__init__(counter.platform)
        self.counter = counter

    def list(self, parent: tuple[str, ...]) -> Listing:
        c = self.counter
        with c.lock:
            assert id(self) not in c.busy, "one crawler used by two threads at once"
            c.busy.add(id(self))
            c.now += 1
            c.peak = max(c.peak, c.now)
            if parent:
                database = parent[0]
                c.per_database[database] = c.per_database.get(database, 0) + 1
                c.database_peak[database] = max(
                    c.database_peak.get(database, 0), c.per_database[database]
                )
        try:
            time.sleep(c.delay)
            return super().list(parent)
        finally:
            with c.lock:
                c.now -= 1
                c.busy.discard(id(self))
                if parent:
                    c.per_database[parent[0]] -= 1


def wide_platform() -> FakePlatform:
    platform = FakePlatform()
    for db in range(3):
        for schema in range(8):
            platform.add_table(f"db{db}", f"s{schema}", "t")
    return platform  # 1 + 3 + 24 = 28 listings with everything recursed into


def register(store: Store, endpoint: dict) -> None:
    with store.write() as writer:
        writer.register_connection("hc", "trino", endpoint=endpoint, activate_new_children=True)


@pytest.mark.parametrize("bound", [1, 2, None])
def test_a_sync_never_has_more_listings_in_flight_than_the_bound(store, bound):
    counter = Counting(wide_platform())
    register(
        store, {"host": "h"} if bound is None else {"host": "h", "maxConcurrentListings": bound}
    )
    runner = SyncRunner(store, counter.factory)
    job = runner.start(ObjectPath("hc"), JobTrigger.MANUAL)
    assert job is not None
    done = wait_job(store, job.id)
    runner.join()
    assert done.state is JobState.COMPLETED, done.errors
    assert done.stats["listings"] == 28 and done.stats["table.added"] == 24
    limit = bound or MAX_CONCURRENT_LISTINGS
    assert counter.peak <= limit
    assert counter.opened <= limit  # one crawler per listing in flight, reused
    if limit > 1:  # independent containers were listed side by side
        assert counter.peak > 1
    print(f"bound {limit}: peak {counter.peak} listings in flight, {counter.opened} crawlers")


def test_parallel_listings_come_back_in_breadth_first_order():
    platform = wide_platform()
    sequential = crawl(FakeCrawler(platform), [], (), force_recursive=True)
    counter = Counting(platform, delay=0.0)
    parallel = crawl(
        counter.factory(), [], (), force_recursive=True, concurrency=4, more=counter.factory
    )
    assert [listing.parent for listing in parallel] == [s.parent for s in sequential]
    assert parallel == sequential


def _record(endpoint: dict, settings: dict | None = None) -> ConnectionRecord:
    now = utcnow()
    return ConnectionRecord(
        "hc", Technology.TRINO, endpoint, {}, settings or {}, "0 1 * * *",
        ConnectionState.ACTIVE, 0.75, now, now,
    )  # fmt: skip


def test_the_bound_is_read_from_the_endpoint_and_checked():
    assert listing_bound(_record({"maxConcurrentListings": 8})) == 8
    assert listing_bound(_record({}, {"maxConcurrentListings": 2})) == 2
    assert listing_bound(_record({})) == MAX_CONCURRENT_LISTINGS
    assert listing_bound(_record({"maxConcurrentListings": 0})) == MAX_CONCURRENT_LISTINGS
    assert listing_bound(_record({"maxConcurrentListings": "lots"})) == MAX_CONCURRENT_LISTINGS
    with pytest.raises(CrawlError, match="maxConcurrentListings"):
        open_crawler("trino", {"host": "h", "maxConcurrentListings": 0}, {"username": "u"})


@pytest.mark.parametrize(("bound", "per_database"), [(4, 1), (6, None), (4, 8)])
def test_listings_under_one_database_stay_within_their_own_bound(store, bound, per_database):
    counter = Counting(wide_platform())
    endpoint = {"host": "h", "maxConcurrentListings": bound}
    if per_database is not None:
        endpoint["maxConcurrentListingsPerDatabase"] = per_database
    register(store, endpoint)
    runner = SyncRunner(store, counter.factory)
    job = runner.start(ObjectPath("hc"), JobTrigger.MANUAL)
    assert job is not None
    done = wait_job(store, job.id)
    runner.join()
    assert done.state is JobState.COMPLETED, done.errors
    assert done.stats["listings"] == 28 and done.stats["table.added"] == 24
    limit = per_database or MAX_CONCURRENT_PER_DATABASE
    assert set(counter.database_peak) == {"db0", "db1", "db2"}
    assert max(counter.database_peak.values()) <= min(limit, bound)
    assert counter.peak <= bound  # the connection's bound still holds
    assert counter.peak > 1  # databases were listed side by side
    print(f"bounds {bound}/{limit}: peaks {counter.peak} and {counter.database_peak}")


def test_the_database_bound_holds_within_one_database():
    platform = FakePlatform()
    for schema in range(12):
        platform.add_table("only", f"s{schema}", "t")
    counter = Counting(platform, delay=0.02)
    listings = crawl(
        counter.factory(), [], (), force_recursive=True, concurrency=8, more=counter.factory,
        per_database=3,
    )  # fmt: skip
    assert len(listings) == 1 + 1 + 12
    assert counter.database_peak["only"] == 3


def test_the_database_bound_is_read_from_the_endpoint_and_checked():
    key = "maxConcurrentListingsPerDatabase"
    assert database_bound(_record({key: 8})) == 8
    assert database_bound(_record({}, {key: 1})) == 1
    assert database_bound(_record({})) == MAX_CONCURRENT_PER_DATABASE == 2
    assert database_bound(_record({key: 65})) == MAX_CONCURRENT_PER_DATABASE
    assert database_bound(_record({key: True})) == MAX_CONCURRENT_PER_DATABASE
    for wrong in (0, 65, 1.5):
        with pytest.raises(CrawlError, match=key):
            open_crawler("trino", {"host": "h", key: wrong}, {"username": "u"})
    try:  # 64 is allowed: whatever else is refused, not this key
        open_crawler("trino", {"host": "h", key: 64}, {"username": "u"}).close()
    except CrawlError as error:
        assert key not in str(error)
