"""Object sync bounds the listings in flight against one platform: `maxConcurrentListings` per
connection (default 4), each parallel listing on its own crawler (a platform session is not
shared between threads), listings in the same breadth-first order as a sequential crawl."""

from __future__ import annotations

import threading
import time

import pytest

from pdp.control import SyncRunner
from pdp.control.sync import MAX_CONCURRENT_LISTINGS, crawl, listing_bound
from pdp.crawl.base import CrawlError, open_crawler
from pdp.objects import ObjectPath
from pdp.objects.sync import Listing
from pdp.policy.model import Technology
from pdp.store import ConnectionRecord, ConnectionState, JobState, JobTrigger, Store
from pdp.store.model import utcnow
from tests.control.conftest import wait_job
from tests.control.fakes import FakeCrawler, FakePlatform


class Counting:
    """Counts the listings in flight across all crawlers of one platform."""

    def __init__(self, platform: FakePlatform, delay: float = 0.03) -> None:
        self.platform, self.delay = platform, delay
        self.lock = threading.Lock()
        self.now = self.peak = self.opened = 0
        self.busy: set[int] = set()  # crawlers in use: one thread each

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
        try:
            time.sleep(c.delay)
            return super().list(parent)
        finally:
            with c.lock:
                c.now -= 1
                c.busy.discard(id(self))


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
