"""A view restored from the saved state (`cache.stateFile`) is the view that was saved: its
grants, and also its data policies (masks, row filters) and the tables the user owns. Before,
only the grants were saved, so a user restored while the PDP was away read masked columns in
clear and unfiltered rows until the PDP answered again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pdp.core import decide
from pdp.core.model import (
    Access,
    AccessGrantMapping,
    ClusterSettings,
    Identity,
    PolicyGrant,
    Registry,
    Request,
    TableRef,
    table_key,
)
from sidecar.answers import Answers
from sidecar.state import StateFile

ORDERS = table_key("hive", "sales", "orders")
REFUNDS = table_key("hive", "sales", "refunds")
ALICE = Identity("alice", frozenset({"analysts"}))
REGISTRY = Registry.of(
    {ORDERS, REFUNDS},
    policies=[
        (PolicyGrant("readers", Access.READ), frozenset({ORDERS, REFUNDS})),
        (PolicyGrant("writers", Access.WRITE), frozenset({REFUNDS})),
    ],
)


class Pdp:
    async def entitlements(self, identity: Identity):
        return "r1", [1], frozenset({"hide-email"}), {"own-region": "(region = 'emea')"}, {ORDERS}

    async def registry(self):
        return "r1", REGISTRY, AccessGrantMapping()


def test_a_restored_view_keeps_grants_data_policies_and_owned_tables(tmp_path: Path):
    path = tmp_path / "state.pb"

    async def scenario():
        answers = Answers(ClusterSettings, Pdp())  # type: ignore[arg-type]
        answers.reset("r1")
        answers.lost_since = None  # the PDP is heard
        saved = await answers.view(ALICE)
        assert await StateFile(path, answers).save(force=True)

        restarted = Answers(ClusterSettings, Pdp())  # type: ignore[arg-type]
        assert StateFile(path, restarted).restore() is not None
        assert restarted.has_view(ALICE)
        return saved, await restarted.view(ALICE)

    saved, restored = asyncio.run(scenario())
    assert restored.mask_policies == saved.mask_policies == {"hide-email"}
    assert restored.filters == saved.filters == {"own-region": "(region = 'emea')"}
    assert restored.owned == saved.owned == {ORDERS}
    for table in ("orders", "refunds"):
        for operation in ("SelectFromColumns", "InsertIntoTable"):
            ask = Request(ALICE, operation, TableRef("hive", "sales", table))
            assert decide(restored, ask) == decide(saved, ask)
    refunds = decide(
        restored, Request(ALICE, "InsertIntoTable", TableRef("hive", "sales", "refunds"))
    )
    assert refunds.allowed and refunds.policies == ("writers",)
