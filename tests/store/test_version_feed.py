"""The version feed: replicas learn a new version by polling, or by LISTEN on PostgreSQL."""

import threading
import time

import pytest

from pdp.store import Store
from pdp.store.notify import NOTIFY_CHANNEL, VersionListener


def test_a_second_replica_sees_the_new_version(backend, new_database):
    url = new_database(backend)
    writer, replica = Store.open(url), Store.open(url)
    try:
        seen = replica.version()
        timer = threading.Timer(0.3, lambda: _write(writer))
        timer.start()
        assert replica.wait_for_version(seen, timeout=10, interval=0.05) == seen + 1
        timer.join()
    finally:
        writer.close()
        replica.close()


def _write(store: Store) -> None:
    with store.write() as tx:
        tx.register_connection("hc", "trino")


def test_postgresql_notifies_at_commit(request, new_database):
    url = new_database("postgresql")
    store = Store.open(url)
    pg = request.getfixturevalue("pg")
    dbname = url.rsplit("/", 1)[1]
    try:
        with pg.connect(dbname) as listener:
            listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            with pytest.raises(RuntimeError), store.write():
                raise RuntimeError("rolled back: no notification")
            _write(store)
            payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
        assert payloads == [str(store.version())]
    finally:
        store.close()


def test_a_version_listener_hears_each_commit_and_comes_back_after_a_cut(request, new_database):
    url = new_database("postgresql")
    store = Store.open(url)
    heard: list[int] = []
    connects: list[int] = []
    lost = threading.Event()
    arrived = threading.Event()

    def on_version(version: int) -> None:
        heard.append(version)
        arrived.set()

    listener = VersionListener(
        store.engine, on_version, on_connected=lambda: connects.append(1), on_lost=lost.set
    )
    listener.start()
    try:
        assert listener.connected.wait(10)
        _write(store)
        assert arrived.wait(5)
        assert heard == [store.version()]
        # the server ends the listening session: the listener says so and reconnects
        pg = request.getfixturevalue("pg")
        with pg.connect() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%%' AND datname = %s",
                (url.rsplit("/", 1)[1],),
            )
        assert lost.wait(5)
        deadline = time.monotonic() + 10
        while len(connects) < 2:
            assert time.monotonic() < deadline, "the listener did not reconnect"
            time.sleep(0.05)
        arrived.clear()
        with store.write() as tx:
            tx.register_connection("other", "trino")
        assert arrived.wait(5)
        assert heard[-1] == store.version()
    finally:
        listener.stop()
        store.close()
    assert not listener.connected.is_set()
