"""Single checks of bodies never seen, answered in the HTTP protocol without a Decision
(`Answers.allowed_now`: pdp.core.readable's set lookups, remembered as bare answers) when the
sidecar logs no decisions: through a real PDP service and a sidecar following its revisions,
every `/allow` answer, new or repeated, equals a fresh `decide()` on the current snapshot;
bodies the decoder refuses are still refused; and the compact endpoint, which tells a denial's
reason, never finds a bare answer in place of a decision."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.core import decide
from pdp.core.model import CatalogRef, Identity, Request, SchemaRef, TableRef
from pdp.wire.trino import BadRequest
from sidecar import compact
from sidecar.app import ENDPOINTS, Sidecar
from tests.sidecar.delta_world import CATALOG, IDENTITIES, World, edit, fresh_view
from tests.sidecar.delta_world import following as following_world
from tests.sidecar.test_filter_tables import TABLES, sidecar_of
from tests.sidecar.test_revision_delta import CHANGES

RESOURCES = {3: TableRef, 2: SchemaRef, 1: CatalogRef, 0: lambda: None}
OPERATIONS = {  # the operation by the names of its resource
    3: ("SelectFromColumns", "ShowColumns", "CreateViewWithSelectFromColumns", "DropTable"),
    2: ("ShowTables", "ShowCreateSchema", "DropSchema"),
    1: ("AccessCatalog", "ShowSchemas"),
    0: ("ExecuteQuery", "ReadSystemInformation"),
}
CHECKS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(OPERATIONS[3]), st.sampled_from(TABLES)),
        st.tuples(st.sampled_from(OPERATIONS[2]), st.sampled_from([t[:2] for t in TABLES])),
        st.tuples(st.sampled_from(OPERATIONS[1]), st.sampled_from([t[:1] for t in TABLES])),
        st.tuples(st.sampled_from(OPERATIONS[0]), st.just(())),
    ),
    min_size=1,
    max_size=10,
)


def single(identity: Identity, operation: str, names: tuple[str, ...], **extra: Any) -> bytes:
    parts = [("catalogName", "schemaName", "tableName"), ("catalogName", "schemaName"), ("name",)]
    action: dict[str, Any] = {"operation": operation, **extra}
    if names:
        kind = {3: "table", 2: "schema", 1: "catalog"}[len(names)]
        action["resource"] = {kind: dict(zip(parts[3 - len(names)], names, strict=True))}
    who = {"user": identity.user, "groups": sorted(identity.groups)}
    return orjson.dumps({"input": {"context": {"identity": who}, "action": action}})


def expected(follower: Any, identity: Identity, operation: str, names: tuple[str, ...]) -> bool:
    view = fresh_view(follower.snapshot, identity)
    return decide(view, Request(identity, operation, RESOURCES[len(names)](*names))).allowed


async def answer(sidecar: Sidecar, body: bytes) -> bool:
    """As the HTTP protocol answers: from memory when it can, else through the endpoint."""
    found = sidecar.answer_from_memory("allow", body)
    if found is None:
        found = await ENDPOINTS["allow"](sidecar, body)
    result: bool = orjson.loads(found)["result"]
    return result


async def wrong_answers(follower: Any, sidecar: Sidecar, checks: list) -> list[str]:
    wrong = []
    for identity in IDENTITIES:
        for operation, names in checks:
            want = expected(follower, identity, operation, names)
            for _ in range(2):  # new, then seen
                got = await answer(sidecar, single(identity, operation, names))
                if got != want:
                    wrong.append(f"{identity} {operation} {names}: {got}, fresh decide {want}")
    return wrong


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CHECKS, st.lists(st.lists(CHANGES, min_size=1, max_size=3), max_size=4))
def test_every_single_answer_equals_a_fresh_decision_at_every_revision(checks, steps):
    async def scenario() -> list[str]:
        world = World()
        async with following_world(world) as follower:
            sidecar = sidecar_of(follower)
            wrong = await wrong_answers(follower, sidecar, checks)
            for changes in steps:
                for change in changes:
                    edit(world, change)
                    follower.publish(world)
                await follower.caught_up()
                wrong += await wrong_answers(follower, sidecar, checks)
        return wrong

    assert asyncio.run(scenario()) == []


async def test_a_new_check_of_a_cached_view_is_answered_in_memory_without_a_decision():
    async with following_world(World()) as follower:
        sidecar = sidecar_of(follower)
        identity = IDENTITIES[0]
        first = single(identity, "SelectFromColumns", (CATALOG, "s0", "t0"))
        # the user's first check fetches the view: not from memory
        assert sidecar.answer_from_memory("allow", first) is None
        await answer(sidecar, first)
        decisions = len(follower.answers._decisions)
        for operation, names in [
            ("SelectFromColumns", (CATALOG.upper(), "S0", "T1")),
            ("AccessCatalog", (CATALOG.upper(),)),
            ("ShowTables", (CATALOG, "S1")),
            ("ExecuteQuery", ()),
        ]:
            found = sidecar.answer_from_memory("allow", single(identity, operation, names))
            assert found is not None
            assert orjson.loads(found)["result"] == expected(follower, identity, operation, names)
        assert len(follower.answers._decisions) == decisions  # no Decision made


async def test_a_compact_denial_tells_its_reason_after_the_same_check_was_answered_bare():
    async with following_world(World()) as follower:
        sidecar = sidecar_of(follower)
        identity = IDENTITIES[0]
        await answer(sidecar, single(identity, "SelectFromColumns", (CATALOG, "s0", "t0")))
        names = next(  # a table the user may not read
            t for t in TABLES if not expected(follower, identity, "SelectFromColumns", t)
        )
        assert sidecar.answer_from_memory("allow", single(identity, "SelectFromColumns", names))
        who = {"user": identity.user, "groups": sorted(identity.groups)}
        table = dict(zip(("catalogName", "schemaName", "tableName"), names, strict=True))
        ask = {"operation": "SelectFromColumns", "resource": {"table": table}}
        body = orjson.dumps({"identity": who, "asks": [ask]})
        found = compact.decisions_from_memory(sidecar, body)
        if found is None:
            found = await compact.ENDPOINTS[compact.DECISIONS](sidecar, body)
        (got,) = orjson.loads(found)["answers"]
        assert got["allowed"] is False
        assert ".".join(names) in got["reason"]


@pytest.mark.parametrize(
    "body",
    [
        # what the decoder refuses is never answered from memory, and still refused
        single(Identity("u0"), "SelectFromColumns", (CATALOG, "s0", "")),
        single(Identity("u0"), "SelectFromColumns", (CATALOG, "s0")),
        single(Identity("u0"), "ExecuteQuery", (CATALOG,)),
        single(Identity("u0"), "AccessCatalog", ()),
        single(Identity("u0"), "RenameTable", (CATALOG, "s0", "t0")),
        b'{"input":{"context":{"identity":{"user":"u0","groups":[1]}},"action":{"operation":'
        b'"SelectFromColumns","resource":{"table":{"catalogName":"hive","schemaName":"s0",'
        b'"tableName":"t0"}}}}}',
        b'{"input":{"context":{"identity":{"user":"u0","groups":[]}},"action":{"operation":'
        b'"SelectFromColumns","resource":{"table":{"catalogName":"hive","schemaName":"s0",'
        b'"tableName":"t0","columns":["a",2]}}}}}',
    ],
)
async def test_bodies_the_decoder_refuses_are_refused(body):
    async with following_world(World()) as follower:
        sidecar = sidecar_of(follower)
        await answer(sidecar, single(Identity("u0"), "SelectFromColumns", (CATALOG, "s0", "t0")))
        assert sidecar.answer_from_memory("allow", body) is None
        with pytest.raises(BadRequest):
            await ENDPOINTS["allow"](sidecar, body)


async def test_bare_answers_and_decisions_share_the_decision_cache_bound():
    async with following_world(World()) as follower:
        sidecar, answers = sidecar_of(follower), follower.answers
        identity = IDENTITIES[0]
        await answer(sidecar, single(identity, "SelectFromColumns", (CATALOG, "s0", "t0")))
        answers.configure(user_cache=10, decision_cache=3, max_stale=None)
        assert answers.sizes()["decisions"] <= 3
        for table in TABLES[:8]:  # bare answers, each new
            assert sidecar.answer_from_memory("allow", single(identity, "ShowColumns", table))
            assert answers.sizes()["decisions"] <= 3
        # a decision (the compact endpoint's) makes room among the bare answers
        answers.decided(Request(identity, "ShowColumns", TableRef(*TABLES[9])), ("k",))
        assert answers.sizes()["decisions"] == 3
        assert answers.cached(("k",)) is not None
