"""One snapshot from the policy files and the store: one revision that changes when either
content changes and stays when neither does; hand-declared connections beside registered ones;
the feed publishes through `Revisions`."""

from __future__ import annotations

import asyncio
import contextlib
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.configs import WORKED_USERS, make_tree
from devstack.replica import POLICIES
from pdp.config.load import load_policy_inputs
from pdp.control import SnapshotFeed, compose
from pdp.control.snapshot import UNREAD, load_registry, save_registry
from pdp.objects import ObjectPath
from pdp.objects.syncplan import Listing, RemoteColumn, RemoteObject
from pdp.store import Store, StoreRegistry, read_registry
from pdp.wire import proto


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path, policies=POLICIES, users=WORKED_USERS)


def inputs(tree):
    return load_policy_inputs(tree.policy_files, tree.mapping).value


def sync_orders(store: Store, active: bool = True) -> None:
    with store.write() as writer:
        writer.register_connection("hc", "trino", is_active=active, activate_new_children=active)
    with store.write() as writer:
        writer.sync("hc", [Listing((), (RemoteObject("cat"),))])
    with store.write() as writer:
        writer.sync("hc", [Listing(("cat",), (RemoteObject("sales"),))])
    with store.write() as writer:
        columns = (RemoteColumn("id", "bigint", True, 1),)
        writer.sync("hc", [Listing(("cat", "sales"), (RemoteObject("orders", None, columns),))])


def test_files_and_store_in_one_snapshot(tree, store):
    sync_orders(store)
    snapshot = compose(inputs(tree), read_registry(store))
    assert "hc.cat.sales.orders" in snapshot.sources
    assert "trino-prod.hive.sales.orders" in snapshot.sources  # the YAML registry's, beside it
    grants = snapshot.grants(snapshot.subject("alice"))
    assert [g.policy for g in grants["hc.cat.sales.orders"]] == ["hc-readers"]


def test_the_revision_follows_content_not_store_writes(tree, store):
    empty = compose(inputs(tree), read_registry(store))
    assert compose(inputs(tree), read_registry(store)).revision == empty.revision
    with store.write() as writer:
        writer.register_connection("hc", "trino")
    registered = compose(inputs(tree), read_registry(store))
    assert registered.revision != empty.revision  # a new connection (retired tables' owner)
    with store.write() as writer:  # a write that changes no decision (a job's progress)
        writer.create_job("sync", "manual", ObjectPath("hc"))
    assert compose(inputs(tree), read_registry(store)).revision == registered.revision
    tree.write("users.yaml", WORKED_USERS + "  carol: {}\n")  # a file edit
    assert compose(inputs(tree), read_registry(store)).revision != registered.revision


def test_a_yaml_declared_connection_keeps_its_entries(tree, store):
    with store.write() as writer:
        writer.register_connection("trino-prod", "trino", is_active=True)
    with store.write() as writer:
        writer.sync("trino-prod", [Listing((), (RemoteObject("other"),))])
    snapshot = compose(inputs(tree), read_registry(store))
    assert "trino-prod.hive.sales.orders" in snapshot.sources


async def test_the_feed_publishes_a_store_change_as_one_revision(tree, store):
    feed = SnapshotFeed.open(inputs(tree), store, interval=0.05)
    seen: list[str] = []
    task = asyncio.create_task(feed.run())

    async def watch():
        async for snapshot in feed.revisions.subscribe():
            seen.append(snapshot.revision)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(sync_orders, store)
        for _ in range(100):
            if "hc.cat.sales.orders" in feed.revisions.current.sources:
                break
            await asyncio.sleep(0.05)
        assert "hc.cat.sales.orders" in feed.revisions.current.sources
        before = feed.revisions.current.revision
        with store.write() as writer:  # no content change: no new revision
            writer.create_job("sync", "manual", ObjectPath("hc"))
        await asyncio.sleep(0.4)
        assert feed.revisions.current.revision == before
        feed.update_files(load_policy_inputs(tree.policy_files, tree.mapping).value)
        tree.write("users.yaml", WORKED_USERS + "  carol: {}\n")
        feed.update_files(inputs(tree))
        for _ in range(100):
            if feed.revisions.current.revision != before:
                break
            await asyncio.sleep(0.05)
        assert feed.revisions.current.revision != before
        assert len(seen) == len(set(seen))
    finally:
        task.cancel()
        watcher.cancel()


async def test_on_postgresql_a_notification_brings_the_change_long_before_the_poll(
    tree, new_database
):
    """The safety-net poll is 60 s: only LISTEN/NOTIFY can bring the change within a second."""
    url = new_database("postgresql")
    store, writer_store = Store.open(url), Store.open(url)
    feed = SnapshotFeed.open(inputs(tree), store, interval=60)
    task = asyncio.create_task(feed.run())
    try:
        for _ in range(200):
            if feed.listener is not None and feed.listener.connected.is_set():
                break
            await asyncio.sleep(0.05)
        assert feed.listener is not None and feed.listener.connected.is_set()
        await asyncio.sleep(0.2)  # the first wake (on connect) has been handled
        start = asyncio.get_running_loop().time()
        await asyncio.to_thread(sync_orders, writer_store)
        while "hc.cat.sales.orders" not in feed.revisions.current.sources:
            elapsed = asyncio.get_running_loop().time() - start
            assert elapsed < 1.0, "the change did not arrive within a second"
            await asyncio.sleep(0.01)
        assert feed.listener.received >= 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()
        writer_store.close()
    assert not feed.listener.connected.is_set()  # stopped with the feed


def test_the_saved_store_registry_round_trips_and_a_bad_file_is_ignored(tree, store, tmp_path):
    sync_orders(store)
    registry = read_registry(store)
    path = tmp_path / "saved" / "store.json"
    save_registry(path, registry, store.name)
    assert load_registry(path, store.name) == registry
    assert compose(inputs(tree), registry).revision == (
        compose(inputs(tree), load_registry(path, store.name)).revision  # type: ignore[arg-type]
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it lists every data source
    assert [p.name for p in path.parent.iterdir()] == ["store.json"]  # no temporary left
    assert load_registry(path, "sqlite:///another.db") is None  # never another store's
    path.write_text("{not json")
    assert load_registry(path, store.name) is None
    assert load_registry(tmp_path / "absent.json", store.name) is None


def test_an_unknown_store_denies_what_the_files_do_not_declare_and_has_its_own_revision(tree):
    files = inputs(tree)
    unknown = compose(files, StoreRegistry(version=UNREAD, known=False))
    empty = compose(files, StoreRegistry(version=0))
    assert not unknown.registry.complete and empty.registry.complete
    # the store's return with nothing in it is still a new revision: sidecars drop their denials
    assert unknown.revision != empty.revision
    assert unknown.sources.keys() == empty.sources.keys()  # the files' own still govern
    for snapshot in (unknown, empty):  # the sidecars learn it with the registry
        message = proto.registry_to_pb(snapshot.revision, snapshot.registry, snapshot.mapping)
        assert proto.registry_from_pb(message)[0] == snapshot.registry


def test_the_store_registry_digest_patched_from_the_last_equals_a_fresh_one():
    """The digest is computed from the last registry's by what was added and dropped: along
    a chain of registries (tables added, dropped, retagged, retired, a table twice) each one
    equals the digest computed afresh, and content decides it, not order or history."""
    import dataclasses

    from pdp.control import snapshot as feed
    from pdp.policy import DataSource
    from pdp.policy.model import Technology

    def table(name: str, *tags: str) -> DataSource:
        return DataSource("c", Technology.TRINO, "cat", "s", name, tags=frozenset(tags))

    a, b, c = table("a"), table("b"), table("c", "pii")
    chain = [
        StoreRegistry(1, (a, b)),
        StoreRegistry(2, (a, b, c)),  # added
        StoreRegistry(3, (b, a, c)),  # the same content in another order
        StoreRegistry(4, (a, table("c", "public"))),  # retagged, b dropped
        StoreRegistry(5, (a,), retired=(b,)),  # retired
        StoreRegistry(6, (a, a)),  # a table twice counts twice
        StoreRegistry(7, (a,)),
        StoreRegistry(8, (a,), known=False),
    ]
    patched = [feed.registry_digest(r) for r in chain]
    fresh = []
    for registry in chain:
        feed._digested = None
        fresh.append(feed.registry_digest(dataclasses.replace(registry)))
    assert patched == fresh
    assert patched[1] == patched[2]  # order: no change
    assert len({patched[i] for i in (0, 1, 3, 4, 5, 6, 7)}) == 7


# A store's tables as object sync writes them: (connection, schema, name) -> (tags, retired)
STORE_CHANGES = st.one_of(
    st.tuples(
        st.just("write"),
        st.sampled_from(["hc", "lake"]),
        st.sampled_from(["sales", "hr"]),
        st.sampled_from(["t0", "t1", "t2", "t3"]),
        st.lists(st.sampled_from(["Connections.Trino.hc", "pii"]), max_size=2, unique=True),
        st.booleans(),
    ),
    st.tuples(st.just("drop"), st.integers(0, 20)),
)


def store_registry(version: int, tables: dict[tuple[str, str, str], tuple[list[str], bool]]):
    from pdp.policy import DataSource
    from pdp.policy.model import Technology

    def source(key: tuple[str, str, str], tags: list[str]) -> DataSource:
        connection, schema, name = key
        return DataSource(
            connection,
            Technology.TRINO,
            "cat",
            schema,
            name,
            tags=frozenset(tags),
            trino_catalog="cat",
        )

    active = tuple(source(k, tags) for k, (tags, retired) in tables.items() if not retired)
    retired = tuple(source(k, tags) for k, (tags, gone) in tables.items() if gone)
    technologies = {connection: Technology.TRINO for connection, _, _ in tables}
    return StoreRegistry(version, active, retired, technologies)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.booleans(),
    st.lists(st.lists(STORE_CHANGES, min_size=1, max_size=4), min_size=1, max_size=6),
)
def test_a_store_change_composed_from_the_last_snapshot_equals_a_fresh_compose(
    tmp_path_factory, declared, steps
):
    """Composing each store registry from the snapshot in force (the registry's digest and
    the compiled objects patched by the sources added and dropped, found once for both) gives
    exactly the snapshot and the delta of composing it afresh, after any sequence of syncs;
    with connections declared in the policy files too (merged) and without (the store's
    sources taken as they are)."""
    import dataclasses

    from pdp.control import snapshot as feed
    from pdp.policy.delta import revision_delta

    root = tmp_path_factory.mktemp("tree")
    files = make_tree(root, policies=POLICIES, users=WORKED_USERS) if declared else None
    if files is None:
        files = make_tree(root, registry="connections: []\n", policies=POLICIES, users=WORKED_USERS)
    policy_inputs = inputs(files)
    tables: dict[tuple[str, str, str], tuple[list[str], bool]] = {}
    current = compose(policy_inputs, store_registry(1, tables))
    for version, changes in enumerate(steps, start=2):
        for change in changes:
            match change:
                case ("write", connection, schema, name, tags, retired):
                    tables[(connection, schema, name)] = (tags, retired)
                case ("drop", index) if tables:
                    del tables[sorted(tables)[index % len(tables)]]
        registry = store_registry(version, tables)
        patched = compose(policy_inputs, registry, current)
        feed._digested = None  # afresh: nothing digested, every tuple a new one
        fresh = compose(
            policy_inputs,
            dataclasses.replace(
                registry,
                sources=tuple(dataclasses.replace(s) for s in registry.sources),
                retired=tuple(dataclasses.replace(s) for s in registry.retired),
            ),
        )
        assert patched == fresh
        assert revision_delta(current, patched) == revision_delta(current, fresh)
        current = compose(policy_inputs, registry, current)  # the digest's chain kept
