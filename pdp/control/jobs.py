"""One job runner: a job of a connection runs under its lock, one at a time, in its own thread.

`JobRunner.run(kind, connection, work)` is how every kind of job starts (object sync, settings
cascades, upgrades): it takes the connection's job lock (one job per connection across
replicas), creates the job row and makes it active in one write, answers with the job, and
runs `work` in a thread, so that the caller (the admin API's thread pool, the scheduler) never
waits for a platform. A start refused because a job runs answers `JobRunning` (409) naming that
job, always:

- in this process the start publishes its slot before anything else, and an overlapping start
  waits for that slot's outcome (the job, or the refusal the winner got) instead of reading a
  placeholder;
- across replicas the job's id is minted before the lock, and a refused lock is answered with
  the row of the job that holds it, waited for while the winner is still creating it.

What a kind of job does is a `Work` (one class per kind):

    class UpgradeWork:                 # control/upgrade.py
        path = ObjectPath(key)         # the job row's path
        busy = "a job of this connection runs already (job {job})"
        abandoned = "abandoned: resumed"   # a stale job of the connection is failed with this
        def admit(self) -> None: ...   # checks before the lock (404, 409); nothing for upgrades
        def begin(self, writer) -> Mapping | None: ...   # first stats, in the job's first
                                           # write; None: nothing to run (unused with job=)
        def __call__(self, job, progress) -> None: ...   # the body, under the lock

    jobs.run(JobType.UPGRADE, key, UpgradeWork(...), job=job)

With `job=` (a row created beforehand, as the upgrade does together with its state change) the
runner makes that row active instead of creating one, and a refused lock fails it instead of
raising. The body ends its job itself (`progress.end`, or in its own store write together with
what it changed); an exception it raises fails the job (`progress.fail`: retried until the store
answers, or until `stopping`).

Shutdown: `stopping` is set when the PDP stops (a job's thread stops retrying to record its
failure: the next start's `sweep` does), `join` waits for this process's jobs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

from pdp.objects.errors import Conflict, LockHeld
from pdp.objects.keys import key_identity
from pdp.objects.paths import ObjectPath
from pdp.store import Job, JobState, JobTrigger, JobType
from pdp.store.store import Store, Writer

log = logging.getLogger(__name__)

ABANDONED = "abandoned: its runner stopped"
ORPHANED = "interrupted: its runner stopped (the PDP stopped, or the store was unavailable)"
MAX_SWEPT = 1000  # running jobs one sweep looks at (there is at most one per connection)
RECORD_FIRST_WAIT, RECORD_LONGEST_WAIT = 0.5, 5.0  # seconds between attempts to record
NAMING_WAIT = 2.0  # how long a refused start waits for the other replica's job row
RELEASE_WAIT = 10.0  # how long a start waits for an ended job of this process to unlock
POLL = 0.02


class JobRunning(Conflict):
    """A job of this connection runs already (409); `job_id` names it."""

    def __init__(self, key: str, job_id: str | None, message: str) -> None:
        super().__init__("path", key, message)
        self.job_id = job_id


class Work(Protocol):
    """What one kind of job does (see the module's docstring)."""

    path: ObjectPath
    busy: str
    abandoned: str

    def admit(self) -> None: ...

    def begin(self, writer: Writer) -> Mapping[str, Any] | None: ...

    def __call__(self, job: Job, progress: Progress) -> None: ...


class Progress:
    """How a job's body records its end."""

    def __init__(self, store: Store, job: Job, stopping: threading.Event) -> None:
        self.store, self.job, self.stopping = store, job, stopping

    def end(self, state: JobState, stats: Mapping[str, Any], errors: list[dict[str, Any]]) -> None:
        """End the job in a write of its own, its first stats kept."""
        with self.store.write() as writer:
            stats = {**self.job.stats, **stats}
            writer.update_job(self.job.id, state=state, stats=stats, errors=errors)

    def fail(self, errors: list[dict[str, Any]]) -> bool:
        return record_failure(self.store, self.job, errors, self.stopping)


@dataclass(eq=False)
class _Slot:
    """A job of this process, published before it takes the lock."""

    kind: JobType
    accepted: Future[Job | None] = field(default_factory=Future)
    ended: threading.Event = field(default_factory=threading.Event)  # the body returned
    released: threading.Event = field(default_factory=threading.Event)  # lock released
    job_id: str | None = None


class JobRunner:
    """Starts and runs the jobs of one process; thread-safe."""

    def __init__(self, store: Store, replica: str | None = None) -> None:
        self.store = store
        self.replica = replica or uuid.uuid4().hex[:12]
        self.stopping = threading.Event()
        self._guard = threading.Lock()
        self._slots: dict[str, _Slot] = {}  # folded connection key -> its job in this process
        self._threads: list[threading.Thread] = []

    def run(
        self,
        kind: JobType,
        connection: str,
        work: Work,
        *,
        trigger: JobTrigger = JobTrigger.MANUAL,
        job: Job | None = None,
    ) -> Job | None:
        """Blocking until the job is accepted (call it from a thread): the active job, or None
        when `work.begin` found nothing to run. Raises `JobRunning` when a job of the
        connection runs (here or on another replica), and what `work.admit` raises."""
        folded = key_identity(connection)
        self._refuse(folded, connection, work, kind)  # a job of the same kind first
        work.admit()
        slot = self._claim(folded, connection, work, kind)
        thread = threading.Thread(
            target=self._thread,
            args=(slot, folded, connection, work, trigger, job),
            name=f"pdp-{kind.value}-{connection}",
            daemon=True,
        )
        try:
            thread.start()
        except BaseException as error:
            self._drop(folded, slot)
            slot.accepted.set_exception(error)
            slot.released.set()
            raise
        with self._guard:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        try:
            accepted = slot.accepted.result()
        except BaseException:
            slot.released.wait()  # refused: the thread releases the connection first
            raise
        if accepted is None:  # nothing to run: likewise
            slot.released.wait()
        return accepted

    def join(self, timeout: float = 30.0) -> None:
        """Wait for this process's jobs (tests, shutdown)."""
        with self._guard:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    def running_here(self) -> frozenset[str]:
        """The ids of the jobs this process runs now."""
        with self._guard:
            return frozenset(s.job_id for s in self._slots.values() if s.job_id)

    def sweep(self) -> list[str]:
        """Mark failed every job the store shows running whose runner is gone: a PDP that
        stopped (or crashed) during it, or that could not record its end before giving up.
        A job is orphaned only when its connection's job lock is free (a runner alive on
        another replica holds it) and it is not one of this process's. Blocking; returns the
        ids of the jobs marked. The scheduler calls it every tick."""
        # Only active jobs: a sync or cascade becomes active in the write that creates it,
        # under the lock; an upgrade job is created before its thread takes the lock.
        with self.store.read() as reader:
            running = reader.jobs(state=JobState.ACTIVE, size=MAX_SWEPT).hits
        marked: list[str] = []
        for key in sorted({job.connection_key for job in running if job.connection_key}):
            mine = self.running_here()
            if not any(j.connection_key == key and j.id not in mine for j in running):
                continue
            holder = f"{self.replica}:sweep-{uuid.uuid4().hex[:8]}"
            try:
                with self.store.job_lock(key, holder), self.store.write() as writer:
                    marked += abandon_stale_jobs(
                        writer, key, ORPHANED, keep=mine, states=(JobState.ACTIVE,)
                    )
            except LockHeld:
                continue  # its runner is alive elsewhere
        for job_id in marked:
            log.warning("job %s: %s", job_id, ORPHANED)
        return marked

    # --- a start in this process --------------------------------------------------------------

    def _refuse(self, folded: str, connection: str, work: Work, kind: JobType) -> None:
        """Answer `JobRunning` while a job of `kind` of the connection runs in this process."""
        while True:
            with self._guard:
                slot = self._slots.get(folded)
            if slot is None or slot.kind is not kind:
                return
            self._outcome(slot, connection, work)

    def _claim(self, folded: str, connection: str, work: Work, kind: JobType) -> _Slot:
        """Publish this start's slot, once no other job of the connection runs here."""
        while True:
            with self._guard:
                slot = self._slots.get(folded)
                if slot is None:
                    slot = self._slots[folded] = _Slot(kind)
                    return slot
            self._outcome(slot, connection, work)

    def _outcome(self, slot: _Slot, connection: str, work: Work) -> None:
        """Raise `JobRunning` naming `slot`'s job if it runs; else wait until it is gone."""
        try:
            job = slot.accepted.result()
        except BaseException:  # the other start was refused: its own answer, not ours
            job = None
        if job is not None and not slot.ended.is_set():
            raise JobRunning(connection, job.id, work.busy.format(job=job.id))
        slot.released.wait(RELEASE_WAIT)

    def _drop(self, folded: str, slot: _Slot) -> None:
        with self._guard:
            if self._slots.get(folded) is slot:
                del self._slots[folded]

    # --- the job's thread ---------------------------------------------------------------------

    def _thread(
        self,
        slot: _Slot,
        folded: str,
        connection: str,
        work: Work,
        trigger: JobTrigger,
        given: Job | None,
    ) -> None:
        job_id = given.id if given is not None else str(uuid.uuid4())
        try:
            with ExitStack() as held:
                self._lock(held, connection, job_id, work)
                job = self._begin(slot.kind, connection, work, trigger, given, job_id)
                slot.job_id = job.id if job is not None else None
                slot.accepted.set_result(job)
                if job is not None:
                    self._body(slot.kind, job, work)
                slot.ended.set()
        except BaseException as error:
            if slot.accepted.done():
                log.exception("%s job of %s failed unexpectedly", slot.kind.value, work.path.url)
            elif given is not None:  # refused: that job fails, as any other failure of it
                Progress(self.store, given, self.stopping).fail(_errors(work, error))
                slot.accepted.set_result(given)
            else:
                slot.accepted.set_exception(error)
        finally:
            slot.ended.set()
            self._drop(folded, slot)
            slot.released.set()

    def _lock(self, held: ExitStack, connection: str, holder: str, work: Work) -> None:
        """Take the connection's job lock into `held`, or raise `JobRunning` naming the job that
        holds it. Its row may be on its way (another replica between its lock and its first
        write): wait for it a little; a holder that runs no job (a sweep, a job ending) lets go
        soon: try again meanwhile."""
        deadline = time.monotonic() + NAMING_WAIT
        while True:
            try:
                held.enter_context(self.store.job_lock(connection, holder))
                return
            except LockHeld as refused:
                running = self._running_job(connection)
                job_id = running.id if running is not None else refused.holder
                if running is not None or time.monotonic() > deadline:
                    raise JobRunning(connection, job_id, work.busy.format(job=job_id)) from None
            time.sleep(POLL)

    def _running_job(self, connection: str) -> Job | None:
        try:
            with self.store.read() as reader:
                return reader.running_job(connection)
        except Exception:
            log.exception("reading the running job of %s", connection)
            return None

    def _begin(
        self,
        kind: JobType,
        connection: str,
        work: Work,
        trigger: JobTrigger,
        given: Job | None,
        job_id: str,
    ) -> Job | None:
        """The job's first write, under the lock (held as `job_id`, the new job's id): a job of
        the connection still marked running was abandoned by a runner that died; this one
        becomes active."""
        with self.store.write() as writer:
            if given is not None:
                abandon_stale_jobs(writer, connection, work.abandoned, keep=frozenset({given.id}))
                return writer.update_job(given.id, state=JobState.ACTIVE)
            stats = work.begin(writer)
            if stats is None:
                return None
            abandon_stale_jobs(writer, connection, work.abandoned)
            job = writer.create_job(kind, trigger, work.path, job_id=job_id)
            return writer.update_job(job.id, state=JobState.ACTIVE, stats=stats)

    def _body(self, kind: JobType, job: Job, work: Work) -> None:
        progress = Progress(self.store, job, self.stopping)
        try:
            work(job, progress)
        except Exception as error:
            log.exception("%s job %s of %s failed", kind.value, job.id, work.path.url)
            progress.fail(_errors(work, error))


def _errors(work: Work, error: BaseException) -> list[dict[str, Any]]:
    return [{"path": work.path.url, "message": f"{error}"}]


def abandon_stale_jobs(
    writer: Writer,
    key: str,
    reason: str = ABANDONED,
    keep: frozenset[str] = frozenset(),
    states: tuple[JobState, ...] = (JobState.CREATED, JobState.ACTIVE),
) -> list[str]:
    """Under the connection's job lock, a job of it still marked running (a sync, a cascade)
    was abandoned by a runner that died: mark it failed (except the ids in `keep`). Returns
    the ids marked."""
    marked = []
    for state in states:
        for stale in writer.jobs(connection=key, state=state).hits:
            if stale.id in keep:
                continue
            writer.update_job(
                stale.id,
                state=JobState.FAILED,
                errors=[*stale.errors, {"message": reason}],
            )
            marked.append(stale.id)
    return marked


def record_failure(
    store: Store, job: Job, errors: list[dict[str, Any]], stopping: threading.Event
) -> bool:
    """Mark `job` failed with `errors`. The store not answering is often what failed the job:
    retry (0.5 s doubling to 5 s) until it answers, so that the job list does not show the job
    running once its runner has given up. Stops trying when `stopping` is set (the PDP
    stops; the next start's sweep records it). A job already ended (a sweep elsewhere) is
    left as it is. Returns whether the failure is recorded."""
    wait, announced = RECORD_FIRST_WAIT, False
    while True:
        try:
            with store.write() as writer:
                if not writer.job(job.id).state.finished:
                    writer.update_job(job.id, state=JobState.FAILED, errors=errors)
            if announced:
                log.info("job %s: its failure is recorded now that the store answers", job.id)
            return True
        except Exception as error:
            if not announced:
                log.error("cannot record the failure of job %s yet, retrying: %s", job.id, error)
                announced = True
            if stopping.wait(wait):
                log.error("job %s stays marked running until the next start's sweep", job.id)
                return False
            wait = min(wait * 2, RECORD_LONGEST_WAIT)
