"""The version feed: replicas learn a new version by polling, or by LISTEN on PostgreSQL."""

import threading

import pytest

from pdp.store import Store
from pdp.store.store import NOTIFY_CHANNEL


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
