"""The compact endpoint's FilterTables asks (sidecar/compact.py `Ask.tables`): items proven valid
by their keys are answered by set lookups on the user's view (pdp.core.readable), a slice at a
time, with no Request or Decision per table. The answer is exactly the tables a per-table
`decide` allows on the user's view, for users the sidecar holds and for users it has not seen
(the view fetched first), through both paths (from memory and through ASGI), whatever the
request's size; and a body the full decoder refuses is refused the same.

Generated requests (hypothesis) against a real PDP and a real `Sidecar` in-process, in two
worlds: tables nobody registered readable by everyone, or by no one."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.configs import make_tree
from pdp.core import decide
from pdp.core.model import Request
from pdp.service.config import load_pdp_config
from pdp.service.run import start_pdp
from pdp.wire.trino import BadRequest, decode_document
from sidecar import compact
from sidecar.app import Sidecar
from sidecar.config import load_sidecar_config
from sidecar.http import TooLarge
from sidecar.turns import Turn

T = TypeVar("T")
SCHEMAS = {"s0": 6, "s1": 6, "s2": 4, "s3": 1}  # registered: tables t0.. of each
_SCHEMAS = ", ".join(
    f"{{name: {s}, tables: [{', '.join(f't{i}' for i in range(n))}]}}" for s, n in SCHEMAS.items()
)
REGISTRY = f"""
connections:
  - name: w
    technology: trino
    status: active
    databases: [{{name: hive, schemas: [{_SCHEMAS}]}}]
"""
POLICIES = """
policies:
  - {name: g0-s0, access: READ, who: {groups: [g0]}, what: {schemas: [w.hive.s0]}}
  - {name: g1-s1, access: READ, who: {groups: [g1]}, what: {schemas: [w.hive.s1]}}
  - {name: alice-t1, access: READ, who: {users: [alice]}, what: {dataSources: [w.hive.s2.t1]}}
  - {name: bob-t2, access: WRITE, who: {users: [bob]}, what: {dataSources: [w.hive.s2.t2]}}
  - {name: all-s3, access: READ, who: {anyone: true}, what: {dataSources: [w.hive.s3.t0]}}
"""
USERS = "users:\n  alice: {}\n  bob: {}\n  carol: {}\n"
# the two worlds: what an object nobody registered may be read as
WORLDS = {
    "unregistered readable": "immuta.allowed.non.immuta.datasource.operations=READ\n",
    "unregistered denied": "immuta.allowed.non.immuta.datasource.operations=WRITE\n",
}
PROPERTIES = "immuta.allowed.immuta.datasource.operations=READ,WRITE\nimmuta.user.admin=admin\n"

CATALOGS = st.sampled_from(["hive", "HIVE", "other", "system"])
SCHEMA_NAMES = st.sampled_from(["s0", "S0", "s1", "s2", "s3", "s9", "information_schema", "jdbc"])
TABLE_NAMES = st.sampled_from(["t0", "T1", "t2", "t3", "t5", "t9", "tables"])
VALID = st.builds(
    lambda c, s, t: {"table": {"catalogName": c, "schemaName": s, "tableName": t}},
    CATALOGS,
    SCHEMA_NAMES,
    TABLE_NAMES,
)
# items the fast keys do not prove: decoded in full (answered, or refused with a 400)
ODD = st.sampled_from(
    [
        {"table": {"catalogName": "hive", "schemaName": "s0", "tableName": ""}},
        {"table": {"catalogName": "hive", "schemaName": 0, "tableName": "t0"}},
        {"table": {"catalogName": "hive", "schemaName": "s0"}},
        {"table": {"catalogName": "hive", "schemaName": "s0", "tableName": "t0", "columns": []}},
        {"table": {"catalogName": "hive", "schemaName": "s0", "tableName": "t0", "columns": [1]}},
        {"schema": {"catalogName": "hive", "schemaName": "s0"}},
        {"table": None},
        "t0",
    ]
)
ITEMS = st.lists(st.one_of(VALID, VALID, VALID, ODD), min_size=1, max_size=12)
USER_NAMES = st.sampled_from(["alice", "bob", "carol", "admin", "dave"])
GROUPS = st.lists(st.sampled_from(["g0", "g1", "g2"]), max_size=2, unique=True)
# repeated so that some requests cross the from-memory bound and the slices
TIMES = st.sampled_from([1, 1, 30, 60])


class Backend:
    """The PDP and the sidecar on an event loop of their own (a thread): hypothesis drives the
    examples synchronously."""

    def __init__(self, root: Path, properties: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        tree = make_tree(
            root,
            registry=REGISTRY,
            policies=POLICIES,
            users=USERS,
            properties=PROPERTIES + properties,
        )
        self.pdp = self.run(start_pdp(load_pdp_config(tree.pdp_yaml(1)), "127.0.0.1:0"))
        config = load_sidecar_config(tree.sidecar_yaml(1, self.pdp.port))
        self.sidecar: Sidecar = self.run(Sidecar.start(config))
        for _ in range(500):  # the watch's first word, bounded
            if self.sidecar.answers.revision is not None:
                break
            self.run(asyncio.sleep(0.02))
        assert self.sidecar.answers.revision is not None, "no revision from the PDP"

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    def stop(self) -> None:
        self.run(self.sidecar.stop())
        self.run(self.pdp.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module", params=list(WORLDS))
def backend(request, tmp_path_factory) -> Iterator[Backend]:
    running = Backend(tmp_path_factory.mktemp("tables"), WORLDS[request.param])
    yield running
    running.stop()


FRESH = itertools.count()  # a group no policy names: a user the sidecar has not seen


def expected(backend: Backend, document: dict[str, Any]) -> list[int] | None:
    """What a per-table `decide` allows on the user's view (fetched), or None if the full
    decoder refuses the body."""
    try:
        call = decode_document(document)
    except (BadRequest, TooLarge):
        return None
    view = backend.run(backend.sidecar.answers.view(call.identity))
    return [
        i
        for i, item in enumerate(call.items or ())
        if decide(view, Request(call.identity, "FilterTables", item)).allowed
    ]


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(user=USER_NAMES, groups=GROUPS, items=ITEMS, times=TIMES, cold=st.booleans())
def test_filter_tables_answers_what_decide_answers_per_table(
    backend: Backend, user: str, groups: list[str], items: list[Any], times: int, cold: bool
) -> None:
    if cold:
        groups = [*groups, f"fresh{next(FRESH)}"]
    identity = {"user": user, "groups": groups}
    ask = {"operation": "FilterTables", "filterResources": items * times}
    body = orjson.dumps({"identity": identity, "asks": [ask]})
    sidecar = backend.sidecar
    from_memory = compact.decisions_from_memory(sidecar, body)  # None: needs the PDP, or large
    try:
        answer = orjson.loads(backend.run(compact.decisions(sidecar, body)))
    except (BadRequest, TooLarge):
        answer = None
    document = {"input": {"context": {"identity": identity}, "action": ask}}
    wanted = expected(backend, document)
    if wanted is None:
        assert answer is None and from_memory is None  # refused, as the full decoder does
        return
    assert answer is not None
    assert answer["answers"] == [{"indices": wanted}]
    assert answer["revision"] is not None
    if from_memory is not None:
        assert orjson.loads(from_memory) == answer


def test_a_revision_that_switches_between_slices_answers_the_rest_from_the_new_view(
    tmp_path, monkeypatch
):
    """Each slice is decided on the view held when it is decided: a policy change that lands
    while a listing pauses between two slices (one table a slice here) answers the tables
    after it as the new revision does, never from the view the switch replaced."""
    backend = Backend(tmp_path, WORLDS["unregistered denied"])
    try:
        sidecar, answers = backend.sidecar, backend.sidecar.answers
        monkeypatch.setattr("sidecar.app.TABLE_SLICE", 1)
        monkeypatch.setattr("sidecar.turns.SLICE_SECONDS", 0.0)  # every slice yields
        identity = {"user": "carol", "groups": ["g0"]}
        tables = [{"table": {"catalogName": "hive", "schemaName": "s0", "tableName": f"t{i}"}}
                  for i in range(6)]  # fmt: skip
        body = orjson.dumps(
            {
                "identity": identity,
                "asks": [{"operation": "FilterTables", "filterResources": tables}],
            }
        )
        held = answers.identity("carol", ("g0",))
        backend.run(answers.view(held))
        before = answers.revision
        pauses, pause = 0, Turn.pause

        async def switching_pause(turn: Any) -> None:
            """At the third slice: g0 loses s0, and the watch switches while the listing waits."""
            nonlocal pauses
            pauses += 1
            if pauses == 2:
                (tmp_path / "policies.yaml").write_text(
                    POLICIES.replace("groups: [g0]", "groups: [g9]")
                )
                for _ in range(500):  # bounded: the kernel's word, the PDP's compile, the watch
                    if answers.revision != before:
                        break
                    await asyncio.sleep(0.02)
                assert answers.revision != before, "the policy change did not reach the sidecar"
            await pause(turn)

        monkeypatch.setattr("sidecar.turns.Turn.pause", switching_pause)
        answer = orjson.loads(backend.run(compact.decisions(sidecar, body)))
        assert pauses >= 2
        # t0 and t1 were decided before the switch (g0 read s0 then), the rest after it
        assert answer["answers"] == [{"indices": [0, 1]}]
    finally:
        backend.stop()
