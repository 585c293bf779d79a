"""Scheduled object sync: each connection's cron expression (default `0 1 * * *`, UTC).

Every tick the scheduler asks, per active connection, for the last time its cron fired; if the
connection existed then and no sync ran since, it starts a scheduled sync for that due time.
With several replicas each one ticks; the job lock lets one start it, and the job record (a
scheduled job created at or after the due time) tells the others, later, that it ran: a
scheduled sync runs once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from croniter import croniter

from pdp.control.jobs import JobRunning
from pdp.control.objectsync import SyncRunner
from pdp.store import STORE_UNAVAILABLE, ConnectionState, JobTrigger
from pdp.store.model import utcnow

log = logging.getLogger(__name__)

TICK_SECONDS = 15.0


def last_due(schedule: str, now: datetime) -> datetime:
    """The latest time at or before `now` when `schedule` fired (UTC)."""
    base = now.replace(second=0, microsecond=0)  # cron has a minute's resolution
    if croniter.match(schedule, base):
        return base
    previous: datetime = croniter(schedule, base).get_prev(datetime)
    return previous.replace(fold=0)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Scheduler:
    def __init__(self, runner: SyncRunner, tick: float = TICK_SECONDS) -> None:
        self.runner = runner
        self.tick_seconds = tick

    def tick(self, now: datetime | None = None) -> list[str]:
        """Start the due syncs (blocking; run it in a thread); the ids of the jobs started."""
        now = now or utcnow()
        started = []
        with self.runner.store.read() as reader:
            connections = reader.connections()
        for connection in connections:
            if connection.state is not ConnectionState.ACTIVE:
                continue
            due = last_due(connection.schedule, now)
            if _aware(connection.created_at) >= due:
                continue
            if connection.last_sync_at is not None and _aware(connection.last_sync_at) >= due:
                continue
            try:
                job = self.runner.start(connection.path, JobTrigger.SCHEDULED, due=due)
            except JobRunning:
                continue
            except Exception:
                log.exception("cannot start the scheduled sync of %s", connection.key)
                continue
            if job is not None:
                log.info("scheduled sync of %s (due %s): job %s", connection.key, due, job.id)
                started.append(job.id)
        return started

    async def run(self) -> None:
        """Every tick: record the jobs whose runner is gone (`SyncRunner.sweep`), then start
        the due syncs."""
        while True:
            try:
                await asyncio.to_thread(self.runner.sweep)
                await asyncio.to_thread(self.tick)
            except STORE_UNAVAILABLE as error:  # the store is down: the feed reports it; one line
                log.warning("scheduler: store unreachable: %s", str(error).splitlines()[0])
            except Exception:
                log.exception("scheduler tick failed")
            await asyncio.sleep(self.tick_seconds)
