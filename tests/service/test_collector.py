"""The PDP keeps its snapshot out of full garbage collections (pdp/collector.py): a snapshot is
compiled with the collector off and frozen, the PDP serves with everything it loaded frozen,
and the snapshot a revision leaves is freed by reference counting, so freezing leaks nothing:
no snapshot, registry or delta is a reference cycle that only a full collection could free."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import weakref
from pathlib import Path
from typing import Any

import grpc

from devstack.configs import WORKED_POLICIES, WORKED_REGISTRY, ConfigTree, make_tree
from pdp.api import pb, rpc
from pdp.config.load import load_policy_inputs
from pdp.control import SnapshotFeed
from pdp.policy import PolicySnapshot, Revisions
from pdp.policy.delta import RevisionDelta
from pdp.service.config import load_pdp_config
from pdp.service.reload import first_policy, watch_policy
from pdp.service.run import start_pdp
from pdp.store import Store
from tests.support.gcwatch import (  # noqa: F401  (fixtures, by name)
    collector_restored,
    tracked_outside_permanent,
    watched_collections,
)


def walked(snapshot: PolicySnapshot) -> list[str]:
    """Which of the snapshot's long-lived parts a full collection would walk."""
    parts = {"snapshot": snapshot, "registry": snapshot.registry, "sources": snapshot.sources}
    parts |= {"directory": snapshot.directory, "targets": snapshot.targets}
    return [name for name, part in parts.items() if tracked_outside_permanent(part)]


def edited(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path, ns=(path.stat().st_mtime_ns + 1, path.stat().st_mtime_ns + 1))


# a policy moved to another group; a table added; a table dropped; a new policy
EDITS = (
    (1, WORKED_POLICIES.replace("groups: [analysts]", "groups: [auditors]")),
    (0, WORKED_REGISTRY.replace("- orders\n", "- orders\n              - refunds\n")),
    (0, WORKED_REGISTRY.replace("- {name: scratch, status: inactive}\n", "")),
    (
        1,
        WORKED_POLICIES
        + "  - name: refunds-readers\n    access: READ\n    who: {users: [alice]}\n"
        + "    what: {dataSources: [trino-prod.hive.sales.orders]}\n",
    ),
)


async def test_the_pdp_serves_with_its_snapshot_frozen(tmp_path, collections):
    """With the snapshot in the old generation, the full collections the PDP ran while it
    answered entitlements walked all of it (0.3-0.9 s at 100,000 tables): frozen, none does."""
    tree = make_tree(tmp_path)
    running = await start_pdp(load_pdp_config(tree.pdp_yaml(0)), "127.0.0.1:0")
    try:
        assert walked(running.revisions.current) == []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = rpc.PolicyDecisionPointStub(channel)
            for user in ("alice", "bob", "carol"):
                identity = pb.Identity(user=user, groups=["analysts"])
                await stub.GetEntitlements(pb.EntitlementsRequest(identity=identity, compact=True))
        assert walked(running.revisions.current) == []
    finally:
        await running.stop(0)


def reloaded(tree: ConfigTree) -> tuple[Revisions, Any]:
    config = load_pdp_config(tree.pdp_yaml(0))
    first = first_policy(config)
    revisions = Revisions(first.loaded.value)
    return revisions, watch_policy(config, revisions, first)


def test_a_new_revision_is_compiled_frozen_without_a_collection(tmp_path, collections):
    revisions, watched = reloaded(make_tree(tmp_path))
    gc.set_threshold(10)  # a collection every 10 new containers, were the collector on
    for index, text in EDITS:
        before = revisions.current.revision
        edited(watched.paths[index], text)
        collections.clear()
        assert watched.check()
        assert revisions.current.revision != before
        assert collections == []
        assert walked(revisions.current) == []
        assert not tracked_outside_permanent(revisions.delta)
    assert gc.isenabled()  # on again


def test_a_snapshot_left_behind_is_freed_by_reference_counting(tmp_path):
    """Frozen objects are never collected, so a snapshot held together by a reference cycle
    would stay in memory for good once replaced. Each one the PDP leaves is freed with the
    collector off, and a full collection after all of them finds no snapshot, registry or
    delta unreachable (DEBUG_SAVEALL keeps what it finds in gc.garbage)."""
    gc.collect()
    revisions, watched = reloaded(make_tree(tmp_path))
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    left: list[weakref.ref[PolicySnapshot]] = []
    for index, text in EDITS:
        left.append(weakref.ref(revisions.current))
        edited(watched.paths[index], text)
        assert watched.check()
    assert [ref() for ref in left] == [None] * len(EDITS)
    gc.unfreeze()
    gc.collect()
    pdp = [o for o in gc.garbage if type(o).__module__.startswith("pdp.")]
    assert pdp == [] and not any(isinstance(o, PolicySnapshot | RevisionDelta) for o in pdp)


async def test_with_a_store_each_revision_is_compiled_frozen_and_the_last_one_freed(tmp_path):
    """The control plane's feed compiles files and store alike: frozen, and the snapshot it
    replaces freed once published (not held until the next store change)."""
    tree = make_tree(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path}/store.db")
    feed = SnapshotFeed.open(load_policy_inputs(tree.policy_files, None).value, store, 0.05)
    task = asyncio.create_task(feed.run())
    try:
        assert walked(feed.revisions.current) == []
        for name in ("hc", "pg"):
            before = weakref.ref(feed.revisions.current)
            with store.write() as writer:
                writer.register_connection(name, "trino")
            for _ in range(200):
                if feed.revisions.current is not before():
                    break
                await asyncio.sleep(0.05)
            assert walked(feed.revisions.current) == []
            await asyncio.sleep(0.1)  # the feed waits for the next change
            assert before() is None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()
