"""The control plane: object sync jobs, their schedule, and the snapshot composed from the
policy files and the store. The admin API (`pdp.admin`) sits on top of it."""

from pdp.control.jobs import JobRunner, JobRunning
from pdp.control.objectsync import CrawlerFactory, SyncRunner, crawl
from pdp.control.permissions import Caller, Forbidden
from pdp.control.plane import ControlPlane, Registration, ValidationFailed
from pdp.control.schedule import Scheduler
from pdp.control.snapshot import SnapshotFeed, compose
from pdp.crawl.base import Checks, Crawler, CrawlError, open_crawler
from pdp.crawl.network import NetworkPolicy
from pdp.objects.errors import InvalidInput
from pdp.objects.syncplan import Listing, Names
from pdp.store import ConnectionRecord, References, Store

__all__ = [
    "Caller",
    "ControlPlane",
    "CrawlerFactory",
    "Forbidden",
    "JobRunner",
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


def platform_crawlers(
    store: Store, references: References | None = None, network: NetworkPolicy | None = None
) -> CrawlerFactory:
    """The production factory: `open_crawler` with the connection's credentials revealed,
    refusing a secret reference the operator did not allow (one stored before they were
    refused, or by another version), and connecting only where `network` permits (default:
    `NetworkPolicy.of()`, the default deny list)."""
    allowed = references or References()
    policy = network or NetworkPolicy.of()

    def open_for(record: ConnectionRecord) -> Crawler:
        try:
            allowed.check(record.endpoint, "endpoint")
            allowed.check(record.credentials, "credentials")
        except InvalidInput as refused:
            raise CrawlError(f"{refused.field}: {refused.message}") from None
        credentials = store.secrets.reveal(record.credentials)
        crawler = open_crawler(record.technology.value, record.endpoint, credentials)
        return Guarded(crawler, policy)

    return open_for


class Guarded:
    """A crawler whose every call runs under the network policy."""

    def __init__(self, crawler: Crawler, policy: NetworkPolicy) -> None:
        self.crawler, self.policy = crawler, policy
        self.technology = crawler.technology

    def list(self, parent: Names) -> Listing:
        with self.policy.guard():
            return self.crawler.list(parent)

    def check(self) -> Checks:
        with self.policy.guard():
            return self.crawler.check()

    def close(self) -> None:
        with self.policy.guard():
            self.crawler.close()
