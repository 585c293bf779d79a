"""The product plugin's `POST /v1/pdp/decisions` answered from memory in the HTTP protocol
(sidecar/compact.py `decisions_from_memory`, before any ASGI work) when every ask can be
answered from what the sidecar holds, as the OPA endpoints' answers are; otherwise through ASGI.

Driven in-process through the sidecar's own HTTP protocol class (`GuardedHttpTools`), with the
real `Sidecar` and a real PDP on loopback. Two clients share one sidecar: one as uvicorn serves
it (answers from memory on), one whose app hides them (every request through ASGI, as before):
for the same asks both give the same bytes, count the same metrics and log the same records."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from uvicorn.server import ServerState

from devstack.configs import make_tree
from devstack.loopback import LoopbackTransport
from pdp.service.config import load_pdp_config
from pdp.service.run import RunningPdp, start_pdp
from sidecar import http
from sidecar.app import Sidecar, SidecarApp
from sidecar.config import load_sidecar_config
from sidecar.http import GuardedHttpTools
from tests.sidecar.test_compact import POLICIES, table
from tests.sidecar.test_data_policies import PROPERTIES, REGISTRY, USERS, column

DECISIONS = b"/v1/pdp/decisions"
MAX_BATCH_ITEMS = 4  # sidecar.yaml http.maxBatchItems here


class Wire(LoopbackTransport):
    """A client connection: the sidecar writes each answer, head and body, in one write."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def write(self, data: Any) -> None:
        if not self.answer.done():
            self.answer.set_result(bytes(data))


class Client:
    """Requests to the sidecar's app through its HTTP protocol class, counting those that reach
    the ASGI app. With `memory=False` the app offers no answers from memory."""

    def __init__(self, app: SidecarApp, memory: bool) -> None:
        self.app, self.asgi_calls = app, 0
        if memory:
            self.answer_from_memory = app.answer_from_memory
        self.config = uvicorn.Config(
            self,
            http=GuardedHttpTools,
            ws="none",
            lifespan="off",
            proxy_headers=False,
            access_log=False,
            log_config=None,
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.asgi_calls += 1
        await self.app(scope, receive, send)

    async def post(self, body: Any, path: bytes = DECISIONS) -> tuple[int, bytes]:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        protocol = GuardedHttpTools(self.config, ServerState(), {}, asyncio.get_running_loop())
        wire = Wire()
        protocol.connection_made(wire)
        head = b"POST %s HTTP/1.1\r\nhost: s\r\ncontent-type: application/json\r\n" % path
        protocol.data_received(head + b"content-length: %d\r\n\r\n" % len(raw) + raw)
        answer = await asyncio.wait_for(wire.answer, 10)
        protocol.connection_lost(None)
        status, _, payload = answer.partition(b"\r\n\r\n")
        return int(status.split()[1]), payload


@dataclass
class Running:
    sidecar: Sidecar
    pdp: RunningPdp
    fast: Client  # as uvicorn serves the app
    asgi: Client  # every request through ASGI
    log_file: Path

    async def stop_pdp(self) -> None:
        """Stop the PDP; return once the sidecar knows it is away (bounded)."""
        await self.pdp.stop(0)
        deadline = time.monotonic() + 10
        while not self.sidecar.answers.away:
            assert time.monotonic() < deadline, "the sidecar did not notice the PDP stopped"
            await asyncio.sleep(0.02)

    async def logged(self) -> list[dict[str, Any]]:
        """The decision log's records since the last call, without their id and time."""
        log = self.sidecar.decision_log
        assert log is not None
        await log.flush()
        lines = self.log_file.read_text().splitlines() if self.log_file.exists() else []
        self.log_file.write_text("")
        records = [json.loads(line) for line in lines]
        return [
            {k: v for k, v in r.items() if k not in ("decision_id", "timestamp")} for r in records
        ]


@pytest.fixture
async def running(tmp_path, monkeypatch) -> AsyncIterator[Running]:
    monkeypatch.setenv("SIDECAR_METRICS_DIR", str(tmp_path))
    monkeypatch.setattr(http, "LIMITS", http.LIMITS)  # SidecarApp sets this worker's limits
    tree = make_tree(
        tmp_path, registry=REGISTRY, policies=POLICIES, users=USERS, properties=PROPERTIES
    )
    pdp = await start_pdp(load_pdp_config(tree.pdp_yaml(1)), "127.0.0.1:0")
    yaml = tree.sidecar_yaml(1, pdp.port).read_text()
    yaml += "decisionLog: {file: decisions.jsonl, sample: {allow: 1, deny: 1}}\n"
    yaml += f"http: {{maxBatchItems: {MAX_BATCH_ITEMS}}}\n"
    config = load_sidecar_config(tree.write("sidecar.yaml", yaml))
    app = SidecarApp(config)
    sidecar = app.sidecar = await Sidecar.start(config)
    try:
        deadline = time.monotonic() + 10
        while sidecar.answers.revision is None:
            assert time.monotonic() < deadline, "no revision from the PDP"
            await asyncio.sleep(0.02)
        yield Running(
            sidecar,
            pdp,
            Client(app, memory=True),
            Client(app, memory=False),
            tmp_path / "decisions.jsonl",
        )
    finally:
        await sidecar.stop()
        with contextlib.suppress(Exception):  # stopped already by some tests
            await pdp.stop(0)


def body(user: str, *asks: Any, groups: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"identity": {"user": user, "groups": list(groups)}, "asks": list(asks)}


def select(name: str, *columns: str) -> dict[str, Any]:
    return {"operation": "SelectFromColumns", "resource": table(name, *columns)}


ROW_FILTERS = {"operation": "GetRowFilters", "resource": table("orders")}
MASKS = {
    "operation": "GetColumnMask",
    "filterResources": [column("id", "bigint"), column("ssn", "varchar(11)")],
}
INSERT = {"operation": "InsertIntoTable", "resource": table("orders")}
CRM_TABLES = [table("customers"), table("orders"), table("elsewhere")]

# (user, asks, the answers): every kind of ask, alone and together
DECISION_TABLE: list[tuple[str, list[dict[str, Any]], list[Any]]] = [
    ("alice", [select("customers", "email")], [{"allowed": True}]),
    ("bob", [INSERT], [{"allowed": True}]),
    ("alice", [INSERT], [{"allowed": False}]),
    ("alice", [{"operation": "ExecuteQuery"}], [{"allowed": True}]),
    ("admin", [{"operation": "DropTable", "resource": table("customers")}], [{"allowed": True}]),
    (
        "alice",
        [{"operation": "RenameTable", "resource": table("orders"), "targetResource": table("o2")}],
        [{"allowed": False}],
    ),
    (
        "alice",
        [{"operation": "FilterTables", "filterResources": CRM_TABLES}],
        [{"indices": [0, 1, 2]}],
    ),
    (
        "alice",
        [{"operation": "FilterColumns", "filterResources": [table("customers", "email", "ssn")]}],
        [{"indices": [0, 1]}],
    ),
    (
        "alice",
        [{"operation": "FilterCatalogs", "filterResources": [{"catalog": {"name": "hive"}}]}],
        [{"indices": [0]}],
    ),
    ("alice", [{"operation": "FilterTables", "filterResources": []}], [{"indices": []}]),
    ("alice", [ROW_FILTERS], [{"rowFilters": 2}]),
    ("admin", [ROW_FILTERS], [{"rowFilters": 0}]),
    ("alice", [MASKS], [{"masks": [None, "masked"]}]),
    ("alice", [{"operation": "GetColumnMask", "filterResources": []}], [{"masks": []}]),
    (
        "alice",
        [select("orders", "id"), ROW_FILTERS, MASKS],  # a point SELECT's asks in one request
        [{"allowed": True}, {"rowFilters": 2}, {"masks": [None, "masked"]}],
    ),
    ("alice", [], []),
]


def shaped(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer in the decision table's terms: a denial without its reason's words, how many
    row filters, which columns are masked."""
    if answer.get("allowed") is False:
        assert answer["reason"]
        return {"allowed": False}
    if "rowFilters" in answer:
        return {"rowFilters": len(answer["rowFilters"])}
    if "masks" in answer:
        return {"masks": [None if m is None else "masked" for m in answer["masks"]]}
    return answer


async def warm(running: Running, *users: str) -> None:
    """The users' views held by the sidecar (fetched from the PDP through ASGI)."""
    for user in users:
        status, _ = await running.asgi.post(body(user, select("orders")))
        assert status == 200


@pytest.mark.parametrize(("user", "asks", "expected"), DECISION_TABLE)
async def test_both_paths_give_the_same_bytes_metrics_and_log_records(
    running, user, asks, expected
) -> None:
    await warm(running, "alice", "bob", "admin")
    await running.logged()
    stats = running.sidecar.stats
    found = {}
    for name, client in (("asgi", running.asgi), ("fast", running.fast)):
        before, calls = Counter(stats.decisions), client.asgi_calls
        status, answer = await client.post(body(user, *asks))
        assert status == 200, answer
        found[name] = (answer, stats.decisions - before, await running.logged())
        assert client.asgi_calls - calls == (1 if name == "asgi" else 0)
    assert found["fast"] == found["asgi"]
    answer, _, records = found["fast"]
    decoded = orjson.loads(answer)
    assert decoded["revision"].startswith(f"{running.sidecar.answers.revision}+")
    assert [shaped(a) for a in decoded["answers"]] == expected
    logged = [a for a in asks if a["operation"] not in ("GetRowFilters", "GetColumnMask")]
    assert len(records) == len(logged)  # checks as /allow logs them, filters as /batch


@pytest.mark.parametrize(
    ("asks", "status", "message"),
    [
        ([{"operation": "SelectFromColumns"}], 400, "asks[1]: input.action.resource: "),
        ([{"operation": 7}], 400, "asks[1]: input.action.operation: expected a non-empty string"),
        ([{"operation": "ExecuteQuery"}, 3], 400, "asks[2]: expected an object"),
        (
            [{"operation": ["FilterTables"], "filterResources": []}],  # unhashable
            400,
            "asks[1]: filterResources: only filter operations and GetColumnMask take them",
        ),
        (
            [{"operation": "DropTable", "filterResources": [table("orders")]}],
            400,
            "asks[1]: filterResources: only filter operations and GetColumnMask take them",
        ),
        (
            [ROW_FILTERS, {"operation": "GetColumnMask", "filterResources": {}}],
            400,
            "asks[2]: filterResources: GetColumnMask asks for a list",
        ),
        (
            [{"operation": "GetRowFilters", "resource": {"schema": {"catalogName": "hive"}}}],
            400,
            "asks[1]: input.action.resource: GetRowFilters carries a table",
        ),
        (
            [{"operation": "FilterTables", "filterResources": [table("orders")] * 5}],
            413,
            f"asks[1]: filterResources: 5 items; the limit is {MAX_BATCH_ITEMS}",
        ),
        (
            [MASKS, {"operation": "GetColumnMask", "filterResources": [column("id", 3)]}],
            400,
            "asks[2]: input.action.filterResources[0].column: names and columnType must be",
        ),
    ],
)
async def test_a_bad_ask_is_refused_naming_it_and_nothing_is_counted(
    running, asks, status, message
) -> None:
    """Every ask is decoded before any is answered: the good ask before the bad one is neither
    counted nor logged (it was, before)."""
    await warm(running, "alice")
    await running.logged()
    before = Counter(running.sidecar.stats.decisions)
    found = {}
    for name, client in (("asgi", running.asgi), ("fast", running.fast)):
        found[name] = await client.post(body("alice", select("orders", "id"), *asks))
    assert found["fast"] == found["asgi"]
    assert found["fast"][0] == status
    assert message in orjson.loads(found["fast"][1])["error"]
    assert running.sidecar.stats.decisions == before
    assert await running.logged() == []


async def test_an_identity_that_is_not_a_user_is_refused_on_both_paths(running) -> None:
    bad = {"identity": {"user": 7}, "asks": [{"operation": "ExecuteQuery"}]}
    for client in (running.asgi, running.fast):
        status, answer = await client.post(bad)
        assert status == 400
        assert "asks[0]: input.context.identity.user" in orjson.loads(answer)["error"]


async def test_a_user_the_sidecar_holds_is_answered_without_the_asgi_app(running) -> None:
    """The old endpoint ran every request through ASGI (this fails there)."""
    fast = running.fast
    status, first = await fast.post(body("alice", select("customers", "email")))
    assert status == 200 and fast.asgi_calls == 1  # alice's view fetched from the PDP
    for name in ("orders", "customers", "elsewhere"):  # decisions never made before
        status, answer = await fast.post(body("alice", select(name, "id"), ROW_FILTERS, MASKS))
        assert status == 200
    assert fast.asgi_calls == 1
    assert orjson.loads(answer)["revision"] == orjson.loads(first)["revision"]
    status, _ = await fast.post(body("bob", INSERT))  # bob's view is not held yet
    assert status == 200 and fast.asgi_calls == 2
    # metrics: every request counted under the endpoint, from memory or not
    responses = running.sidecar.stats.snapshot()["responses"]
    assert ["/v1/pdp/decisions", 200, 5] in responses


async def test_a_large_request_goes_through_asgi_where_it_takes_turns(running) -> None:
    """More objects than `FROM_MEMORY_OBJECTS` are not decided at once in the protocol."""
    await warm(running, "alice")
    asks = [{"operation": "FilterTables", "filterResources": [table(f"t{i}")]} for i in range(300)]
    calls = running.fast.asgi_calls
    status, answer = await running.fast.post(body("alice", *asks))
    assert status == 200 and running.fast.asgi_calls == calls + 1
    assert orjson.loads(answer)["answers"] == [{"indices": [0]}] * 300


async def test_without_the_users_view_the_revision_follows_the_rules(running) -> None:
    """A user the sidecar does not hold goes through ASGI: tagged with the revision when the
    PDP gave the view; with the PDP away, the fail-closed fallback carries no revision (a row
    filter's too, which the old endpoint tagged), while a held user's answers still do."""
    fast = running.fast
    status, answer = await fast.post(body("bob", INSERT))
    assert status == 200 and fast.asgi_calls == 1
    held = orjson.loads(answer)
    assert held["answers"] == [{"allowed": True}] and held["revision"]
    await running.stop_pdp()
    for asks in ([INSERT], [ROW_FILTERS], [MASKS]):
        status, answer = await fast.post(body("frank", *asks))
        assert status == 200
        fallback = orjson.loads(answer)
        assert fallback["revision"] is None, asks
    assert fallback["answers"] == [{"masks": ["NULL", "NULL"]}]
    status, answer = await fast.post(body("frank", ROW_FILTERS))
    assert orjson.loads(answer)["answers"] == [{"rowFilters": ["false"]}]
    calls = fast.asgi_calls
    assert await fast.post(body("bob", INSERT)) == (200, orjson.dumps(held))
    identity_only = orjson.loads((await fast.post(body("frank", {"operation": "ExecuteQuery"})))[1])
    assert identity_only == {"revision": held["revision"], "answers": [{"allowed": True}]}
    assert fast.asgi_calls == calls  # both from memory: bob's view held, no view needed
