"""FilterTables batches of tables never asked about, answered from the user's cached view by set
lookups (pdp.core.readable through `Sidecar._readable_indices`): through a real PDP service and
a sidecar following its revisions, every batch's answer, new or repeated, in memory or not,
equals a fresh `decide()` of each item on the current snapshot; bodies the decoder refuses are
still refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.core import decide
from pdp.core.model import Identity, Request, TableRef
from pdp.wire.trino import BadRequest
from sidecar.app import ENDPOINTS, Sidecar
from sidecar.config import SidecarConfig
from tests.sidecar.delta_world import CATALOG, IDENTITIES, NAMES, SCHEMAS, World, edit, fresh_view
from tests.sidecar.delta_world import following as following_world
from tests.sidecar.test_revision_delta import CHANGES

# the world's tables in other letter cases, tables and schemas it lacks, another catalog, the
# system catalog and a metadata schema
TABLES = [
    (catalog, schema, name)
    for catalog in (CATALOG, CATALOG.upper(), "other")
    for schema in (*SCHEMAS, "S1", "nowhere")
    for name in (*NAMES, "T0")
] + [("system", "jdbc", "tables"), (CATALOG, "information_schema", "columns")]
BATCHES = st.lists(st.lists(st.sampled_from(TABLES), min_size=1, max_size=12), max_size=4)


def batch(identity: Identity, tables: list[tuple[str, str, str]], **extra: Any) -> bytes:
    items = [{"table": {"catalogName": c, "schemaName": s, "tableName": t}} for c, s, t in tables]
    who = {"user": identity.user, "groups": sorted(identity.groups)}
    action = {"operation": "FilterTables", "filterResources": items, **extra}
    return orjson.dumps({"input": {"context": {"identity": who}, "action": action}})


def expected(follower: Any, identity: Identity, tables: list[tuple[str, str, str]]) -> list[int]:
    view = fresh_view(follower.snapshot, identity)
    return [
        i
        for i, table in enumerate(tables)
        if decide(view, Request(identity, "FilterTables", TableRef(*table))).allowed
    ]


async def answer(sidecar: Sidecar, body: bytes) -> list[int]:
    """As the HTTP protocol answers: from memory when it can, else through the endpoint."""
    found = sidecar.answer_from_memory("batch", body)
    if found is None:
        found = await ENDPOINTS["batch"](sidecar, body)
    result: list[int] = orjson.loads(found)["result"]
    return result


def sidecar_of(follower: Any) -> Sidecar:
    config = SidecarConfig(file=Path("sidecar.yaml"))
    return Sidecar(config, follower.answers._client, follower.answers, (), None)


async def wrong_answers(follower: Any, sidecar: Sidecar, tables_lists: list) -> list[str]:
    wrong = []
    for identity in IDENTITIES:
        for tables in tables_lists:
            want = expected(follower, identity, tables)
            for _ in range(2):  # new, then seen
                got = await answer(sidecar, batch(identity, tables))
                if got != want:
                    wrong.append(f"{identity} {tables}: {got}, fresh decide {want}")
    return wrong


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BATCHES, st.lists(st.lists(CHANGES, min_size=1, max_size=3), max_size=4))
def test_every_batch_answer_equals_a_fresh_decision_at_every_revision(tables_lists, steps):
    async def scenario() -> list[str]:
        world = World()
        async with following_world(world) as follower:
            sidecar = sidecar_of(follower)
            wrong = await wrong_answers(follower, sidecar, tables_lists)
            for changes in steps:
                for change in changes:
                    edit(world, change)
                    follower.publish(world)
                await follower.caught_up()
                wrong += await wrong_answers(follower, sidecar, tables_lists)
        return wrong

    assert asyncio.run(scenario()) == []


async def test_a_new_batch_of_a_cached_view_is_answered_in_memory_without_a_decision():
    async with following_world(World()) as follower:
        sidecar = sidecar_of(follower)
        identity = IDENTITIES[0]
        first = [(CATALOG, "s0", "t0"), (CATALOG, "s1", "t0")]
        # the user's first batch fetches the view: not from memory
        assert sidecar.answer_from_memory("batch", batch(identity, first)) is None
        assert await answer(sidecar, batch(identity, first)) == expected(follower, identity, first)
        decisions = len(follower.answers._decisions)
        tables = [(CATALOG.upper(), "S0", "T1"), (CATALOG, "s2", "t0"), ("other", "s0", "t0")]
        found = sidecar.answer_from_memory("batch", batch(identity, tables))
        assert found is not None
        assert orjson.loads(found)["result"] == expected(follower, identity, tables)
        assert len(follower.answers._decisions) == decisions  # no Decision per item


@pytest.mark.parametrize(
    "body",
    [
        # what the decoder refuses is never answered from memory, and still refused
        b'{"input":{"context":{"identity":{"user":"u0","groups":[]}},"action":{"operation":'
        b'"FilterTables","filterResources":[{"table":{"catalogName":"hive","schemaName":"s0",'
        b'"tableName":""}}]}}}',
        b'{"input":{"context":{"identity":{"user":"u0","groups":[1]}},"action":{"operation":'
        b'"FilterTables","filterResources":[{"table":{"catalogName":"hive","schemaName":"s0",'
        b'"tableName":"t0"}}]}}}',
        b'{"input":{"context":{"identity":{"user":"u0","groups":[]}},"action":{"operation":'
        b'"FilterTables","filterResources":[{"schema":{"catalogName":"hive","schemaName":"s0"'
        b"}}]}}}",
        b'{"input":{"context":{"identity":{"user":"u0","groups":[]}},"action":{"operation":'
        b'"FilterTables","filterResources":[{"table":{"catalogName":"hive","schemaName":5,'
        b'"tableName":"t0"}}]}}}',
    ],
)
async def test_bodies_the_decoder_refuses_are_refused(body):
    async with following_world(World()) as follower:
        sidecar = sidecar_of(follower)
        await answer(sidecar, batch(Identity("u0"), [(CATALOG, "s0", "t0")]))  # view cached
        assert sidecar.answer_from_memory("batch", body) is None
        with pytest.raises(BadRequest):
            await ENDPOINTS["batch"](sidecar, body)
