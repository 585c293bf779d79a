"""Two writers (two engines, as two replicas would have) never lose an update; the job lock
admits one holder per connection."""

import threading
import time
from datetime import timedelta

import pytest

from pdp.objects import LockHeld
from pdp.store import Store
from pdp.store.locks import job_lock

ROUNDS = 20


def test_concurrent_read_modify_write_loses_nothing(backend, new_database):
    url = new_database(backend)
    first, second = Store.open(url), Store.open(url)
    try:
        with first.write() as tx:
            tx.register_connection("hc", "trino", settings={"n": 0})
        start = first.version()
        barrier = threading.Barrier(2)
        failures: list[BaseException] = []

        def work(store: Store) -> None:
            try:
                barrier.wait()
                for _ in range(ROUNDS):
                    with store.write() as tx:
                        n = tx.connection("hc").settings["n"]
                        tx.update_connection("hc", settings={"n": n + 1})
            except BaseException as error:  # reported below
                failures.append(error)

        threads = [threading.Thread(target=work, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == []
        with second.read() as tx:
            assert tx.connection("hc").settings["n"] == 2 * ROUNDS
        assert second.version() == start + 2 * ROUNDS
    finally:
        first.close()
        second.close()


def test_the_job_lock_excludes_a_second_holder(backend, new_database):
    url = new_database(backend)
    first, second = Store.open(url), Store.open(url)
    try:
        with first.job_lock("hc", "job-1"):
            with pytest.raises(LockHeld) as held, second.job_lock("HC", "job-2"):
                pass
            assert held.value.field == "connectionKey"
            with second.job_lock("other", "job-3"):  # another connection is free
                pass
        with second.job_lock("hc", "job-2"):  # released: the next one gets it
            pass
    finally:
        first.close()
        second.close()


def test_the_lock_is_released_when_the_job_fails(backend, new_database):
    store = Store.open(new_database(backend))
    try:
        with pytest.raises(RuntimeError), store.job_lock("hc", "job-1"):
            raise RuntimeError("sync failed")
        with store.job_lock("hc", "job-2"):
            pass
    finally:
        store.close()


def test_an_expired_sqlite_lease_is_taken_over(new_database):
    store = Store.open(new_database("sqlite"))
    try:
        with (
            job_lock(store, "hc", "crashed", lease=timedelta(seconds=-1)),
            job_lock(store, "hc", "job-2"),
        ):
            pass
    finally:
        store.close()


def test_a_sqlite_lease_is_renewed_while_its_holder_runs(new_database):
    """A job longer than the lease keeps its lock (its holder renews it every quarter lease);
    only a holder that stopped renewing, having died, loses it (above)."""
    store = Store.open(new_database("sqlite"))
    try:
        with job_lock(store, "hc", "long-job", lease=timedelta(seconds=1)):
            time.sleep(2.5)  # over twice the lease
            with pytest.raises(LockHeld), job_lock(store, "hc", "job-2"):
                pass
        with job_lock(store, "hc", "job-2"):  # released at the end: free at once
            pass
    finally:
        store.close()
