"""The PDP's gRPC API over a real loopback connection."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from devstack.configs import WORKED_POLICIES, make_tree
from pdp.api import pb, rpc
from pdp.service.config import load_pdp_config
from pdp.service.run import start_pdp


def table(name: str) -> pb.Resource:
    return pb.Resource(table=pb.Table(catalog="hive", schema="sales", table=name))


def ask(
    user: str, operation: str, resource: pb.Resource | None = None, groups=()
) -> pb.DecideRequest:
    return pb.DecideRequest(
        identity=pb.Identity(user=user, groups=list(groups)), operation=operation, resource=resource
    )


@pytest.fixture
async def pdp(tmp_path):
    tree = make_tree(tmp_path)
    tree.pdp_yaml(0)
    running = await start_pdp(load_pdp_config(tmp_path / "pdp.yaml"), listen="127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    yield tree, running, rpc.PolicyDecisionPointStub(channel)
    await channel.close()
    await running.stop()


async def test_decide_returns_the_decision_and_its_reasons(pdp):
    _, running, stub = pdp
    response = await stub.Decide(ask("alice", "SelectFromColumns", table("orders")))
    assert response.decision.allowed and response.decision.rule == "data-source"
    assert list(response.decision.policies) == ["orders-readers"]
    assert response.revision == running.policy.current.revision


async def test_batch_decide_keeps_order(pdp):
    _, _, stub = pdp
    response = await stub.BatchDecide(
        pb.BatchDecideRequest(
            requests=[
                ask("carol", "SelectFromColumns", table("orders")),
                ask("carol", "SelectFromColumns", table("scratch")),
                ask("bob", "InsertIntoTable", table("orders")),
                ask("bob", "NoSuchOperation", table("orders")),
            ]
        )
    )
    assert [d.allowed for d in response.decisions] == [False, True, True, False]
    assert response.decisions[3].rule == "unknown-operation"


async def test_entitlements_merge_trino_groups_with_the_directory(pdp):
    """Entitlements name the registry's policies by position; the registry says what each
    grants on which tables (a policy on a whole schema by that schema's position)."""
    _, _, stub = pdp
    registry = await stub.GetRegistry(pb.RegistryRequest())
    policies = [(p.policy, p.access, list(p.schemas), list(p.tables)) for p in registry.policies]
    bob = await stub.GetEntitlements(
        pb.EntitlementsRequest(identity=pb.Identity(user="bob"), compact=True)
    )
    assert [policies[i] for i in bob.policies] == [("orders-writers", "WRITE", [0], [])]
    assert not bob.tables
    carol = await stub.GetEntitlements(
        pb.EntitlementsRequest(
            identity=pb.Identity(user="carol", groups=["analysts"]), compact=True
        )
    )
    assert [policies[i][0] for i in carol.policies] == ["orders-readers"]


async def test_sidecars_before_compact_entitlements_get_grants_per_table(pdp):
    """A sidecar of an earlier version does not ask for the compact form: it gets the grants
    per table it reads, so a PDP can be upgraded before its sidecars."""
    _, _, stub = pdp
    bob = await stub.GetEntitlements(pb.EntitlementsRequest(identity=pb.Identity(user="bob")))
    assert [(t.table.table, [(g.policy, g.access) for g in t.grants]) for t in bob.tables] == [
        ("orders", [("orders-writers", "WRITE")])
    ]
    assert not bob.policies


async def test_registry_lists_active_data_sources_and_the_mapping(pdp):
    _, _, stub = pdp
    registry = await stub.GetRegistry(pb.RegistryRequest())
    assert [(t.catalog, t.schema, t.table) for t in registry.tables] == [
        ("hive", "sales", "orders")
    ]
    assert list(registry.mapping.write) == ["READ", "WRITE"]


async def test_the_registry_is_the_current_revisions(pdp):
    """The registry message is built once per revision, and a new revision gets a new one."""
    tree, running, stub = pdp
    first = await stub.GetRegistry(pb.RegistryRequest())
    assert first == await stub.GetRegistry(pb.RegistryRequest())
    stream = stub.WatchRevision(pb.WatchRequest())
    await asyncio.wait_for(stream.read(), 5)
    tree.write("policies.yaml", WORKED_POLICIES.replace("orders-writers", "orders-editors"))
    await asyncio.wait_for(stream.read(), 5)
    second = await stub.GetRegistry(pb.RegistryRequest())
    assert second.revision == running.policy.current.revision != first.revision
    assert "orders-editors" in [p.policy for p in second.policies]
    assert "orders-editors" not in [p.policy for p in first.policies]
    stream.cancel()


async def test_watch_sends_the_current_revision_then_each_new_one(pdp):
    tree, running, stub = pdp
    stream = stub.WatchRevision(pb.WatchRequest())
    first = await asyncio.wait_for(stream.read(), 5)
    assert first.revision == running.policy.current.revision
    tree.write("policies.yaml", WORKED_POLICIES.replace("[bob]", "[bob, carol]"))
    second = await asyncio.wait_for(stream.read(), 5)
    assert second.revision != first.revision
    assert second.revision == running.policy.current.revision
    carol = await stub.Decide(ask("carol", "InsertIntoTable", table("orders")))
    assert carol.decision.allowed and carol.revision == second.revision
    stream.cancel()
