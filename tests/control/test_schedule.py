"""Scheduled object sync: per connection cron (UTC), started by the scheduler, once across
replicas."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from pdp.control import Scheduler, SyncRunner
from pdp.control.schedule import last_due
from pdp.store import JobTrigger, Store
from tests.control.conftest import wait_job


def test_last_due_is_the_latest_firing_at_or_before_now():
    now = datetime(2030, 3, 5, 0, 30, tzinfo=UTC)
    assert last_due("0 1 * * *", now) == datetime(2030, 3, 4, 1, 0, tzinfo=UTC)
    assert last_due("0 1 * * *", now.replace(hour=1, minute=0)) == now.replace(hour=1, minute=0)
    assert last_due("*/15 * * * *", now) == now


def _register(store: Store, created: datetime, schedule: str = "0 1 * * *") -> None:
    with store.write() as writer:
        writer.register_connection("hc", "trino", schedule=schedule, now=created)


def scheduled_jobs(store: Store) -> list:
    with store.read() as reader:
        return [j for j in reader.jobs(connection="hc").hits if j.trigger is JobTrigger.SCHEDULED]


# Times are in 2030: the store stamps jobs and syncs with the real clock, which must be earlier.


def test_a_due_connection_is_synced_once(store, platform):
    created = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
    _register(store, created)
    runner = SyncRunner(store, platform.factory)
    scheduler = Scheduler(runner)
    assert scheduler.tick(created + timedelta(hours=12)) == []  # 01:00 not reached yet
    due = datetime(2030, 3, 2, 1, 0, 5, tzinfo=UTC)
    [job_id] = scheduler.tick(due)
    assert wait_job(store, job_id).trigger is JobTrigger.SCHEDULED
    runner.join()
    assert scheduler.tick(due + timedelta(minutes=5)) == []  # ran for this due time already
    assert len(scheduler.tick(due + timedelta(days=1))) == 1  # the next day
    runner.join()


def test_two_replicas_run_a_scheduled_sync_once(backend, new_database, platform):
    url = new_database(backend)
    stores = [Store.open(url), Store.open(url)]
    try:
        created = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
        _register(stores[0], created, "*/5 * * * *")
        platform.gate = threading.Event()  # the first run holds its lock while the other ticks
        runners = [SyncRunner(s, platform.factory) for s in stores]
        schedulers = [Scheduler(r) for r in runners]
        now = datetime(2030, 3, 2, 1, 1, tzinfo=UTC)
        started: list[list[str]] = [[], []]
        threads = [
            threading.Thread(target=lambda i=i: started[i].extend(schedulers[i].tick(now)))
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        platform.gate.set()
        for runner in runners:
            runner.join()
        # and a replica ticking later, after the run finished, does not run it again
        assert schedulers[1].tick(now + timedelta(seconds=30)) == []
        assert sum(len(s) for s in started) == 1
        assert len(scheduled_jobs(stores[0])) == 1
    finally:
        for s in stores:
            s.close()


def test_paused_connections_are_not_scheduled(store, platform):
    created = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
    _register(store, created)
    with store.write() as writer:
        writer.update_connection("hc", state="paused")
    scheduler = Scheduler(SyncRunner(store, platform.factory))
    assert scheduler.tick(datetime(2030, 3, 3, 2, 0, tzinfo=UTC)) == []
