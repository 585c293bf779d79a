"""The WatchRevision stream carries each new revision's delta, tied to the revision it starts
from, and only when this stream sent that revision: a watcher that missed one gets none."""

from __future__ import annotations

import asyncio

import grpc

from pdp.api import pb, rpc
from pdp.core.model import Access, ClusterSettings
from pdp.policy import DataSource, DirectoryUser, Policy, PolicySnapshot, Revisions, Technology
from pdp.service.server import PdpServicer, start_server

ORDERS = DataSource("c", Technology.TRINO, "hive", "sales", "orders", trino_catalog="hive")
REFUNDS = DataSource("c", Technology.TRINO, "hive", "sales", "refunds", trino_catalog="hive")
DIRECTORY = {"ann": DirectoryUser("ann", frozenset({"analysts"}))}


def snapshot(revision: str, *sources: DataSource, group: str = "analysts") -> PolicySnapshot:
    policy = Policy(
        "sales", Access.READ, groups=frozenset({group}), schemas=frozenset({"c.hive.sales"})
    )
    return PolicySnapshot.compile(revision, sources, [policy], DIRECTORY)


async def test_each_new_revision_carries_what_changed_since_the_one_the_stream_sent():
    revisions = Revisions(snapshot("r1", ORDERS))
    server, port = await start_server(PdpServicer(revisions, ClusterSettings), "127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stream = rpc.PolicyDecisionPointStub(channel).WatchRevision(pb.WatchRequest())
        first = await stream.read()
        assert (first.revision, first.HasField("delta")) == ("r1", False)

        revisions.publish(snapshot("r2", ORDERS, REFUNDS))
        event = await stream.read()
        delta = event.delta
        assert (event.revision, delta.previous) == ("r2", "r1")
        assert [t.table for t in delta.tables] == ["refunds"]
        assert [t.table for t in delta.registry.tables] == ["refunds"]
        # the policy covering the schema moves, at its position; no view is named for it
        assert [(p.position, p.policy, p.schemas[0].schema) for p in delta.policies] == [
            (0, "sales", "sales")
        ]
        assert (list(delta.users), list(delta.groups)) == ([], [])

        heartbeat = await asyncio.wait_for(stream.read(), 3)
        assert (heartbeat.revision, heartbeat.HasField("delta")) == ("r2", False)

        # two revisions before the stream sends again: it sends the last, without a delta
        revisions.publish(snapshot("r3", ORDERS, REFUNDS, group="auditors"))
        revisions.publish(snapshot("r4", ORDERS, group="auditors"))
        skipped = await stream.read()
        assert (skipped.revision, skipped.HasField("delta")) == ("r4", False)
        stream.cancel()
    finally:
        await channel.close()
        await server.stop(None)


async def test_a_watcher_that_reconnects_gets_the_delta_from_the_revision_it_holds():
    revisions = Revisions(snapshot("r1", ORDERS))
    revisions.publish(snapshot("r2", ORDERS, REFUNDS))
    server, port = await start_server(PdpServicer(revisions, ClusterSettings), "127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = rpc.PolicyDecisionPointStub(channel)
    try:
        firsts = {}
        for held in ("r1", "r0", "r2", ""):  # the one before, an older one, the current, none
            stream = stub.WatchRevision(pb.WatchRequest(revision=held))
            first = await stream.read()
            firsts[held] = (first.revision, first.delta.previous or None)
            stream.cancel()
        assert firsts == {
            "r1": ("r2", "r1"),
            "r0": ("r2", None),
            "r2": ("r2", None),
            "": ("r2", None),
        }
    finally:
        await channel.close()
        await server.stop(None)


async def test_a_watcher_that_does_not_read_relative_targets_is_sent_whole_ones():
    # a sidecar older than RetargetedPolicy.relative beside a current one, on one revision
    revisions = Revisions(snapshot("r1", ORDERS, REFUNDS))
    server, port = await start_server(PdpServicer(revisions, ClusterSettings), "127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = rpc.PolicyDecisionPointStub(channel)
    try:
        older = stub.WatchRevision(pb.WatchRequest())
        current = stub.WatchRevision(pb.WatchRequest(relative_targets=True))
        await older.read()
        await current.read()
        revisions.publish(snapshot("r2", ORDERS))  # refunds dropped
        sent = {"older": (await older.read()).delta, "current": (await current.read()).delta}
        assert {who: [t.table for t in d.tables] for who, d in sent.items()} == {
            "older": ["refunds"],
            "current": ["refunds"],
        }
        retargeted = {
            who: [(p.relative, [s.schema for s in p.schemas], len(p.tables)) for p in d.policies]
            for who, d in sent.items()
        }
        # whole: the schema, read in the patched registry; relative: nothing more to name
        assert retargeted == {"older": [(False, ["sales"], 0)], "current": [(True, [], 0)]}
        older.cancel()
        current.cancel()
    finally:
        await channel.close()
        await server.stop(None)
