"""The control plane: object sync jobs, their schedule, and the snapshot composed from the
policy files and the store. The admin API (`pdp.admin`) sits on top of it."""

from pdp.control.permissions import Caller, Forbidden
from pdp.control.plane import ControlPlane, Registration, ValidationFailed
from pdp.control.schedule import Scheduler
from pdp.control.snapshot import SnapshotFeed, compose
from pdp.control.sync import CrawlerFactory, JobRunning, SyncRunner, crawl
from pdp.crawl.base import Crawler, open_crawler
from pdp.store import ConnectionRecord, Store

__all__ = [
    "Caller",
    "ControlPlane",
    "CrawlerFactory",
    "Forbidden",
    "JobRunning",
    "Registration",
    "Scheduler",
    "SnapshotFeed",
    "SyncRunner",
    "ValidationFailed",
    "compose",
    "crawl",
    "platform_crawlers",
]


def platform_crawlers(store: Store) -> CrawlerFactory:
    """The production factory: `open_crawler` with the connection's credentials revealed."""

    def open_for(record: ConnectionRecord) -> Crawler:
        credentials = store.secrets.reveal(record.credentials)
        return open_crawler(record.technology.value, record.endpoint, credentials)

    return open_for
