"""`benchmarks/gopolicy`, the floor of the Trino benchmark, must decide exactly as the benchmark's
policies say (`World.can_read`, the rules OPA's `trino.rego` and the PDP apply): otherwise the
queries under it would see other tables, and its cost would not be comparable."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from benchmarks import trino_world as tw
from benchmarks.trino_bench import gopolicy_binary, gopolicy_command, healthy
from devstack.processes import Process, free_port

WORLD = tw.build()


@pytest.fixture(scope="module")
def gopolicy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("gopolicy")
    binary, data = gopolicy_binary(work / "gopolicy"), work / "opa-data.json"
    data.write_text(json.dumps(tw.opa_data(WORLD)))
    port = free_port()
    process = Process(gopolicy_command(binary, port, data), work / "gopolicy.log")
    url = f"http://127.0.0.1:{port}"
    process.wait_until(lambda: healthy(f"{url}/health"))
    try:
        yield url
    finally:
        process.stop()


def ask(url: str, endpoint: str, user: str, action: dict[str, Any]) -> Any:
    identity = {"user": user, "groups": WORLD.user_groups.get(user, [])}
    body = {"input": {"context": {"identity": identity}, "action": action}}
    response = httpx.post(f"{url}/v1/data/trino/{endpoint}", json=body)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def table(key: tw.Key, **extra: Any) -> dict[str, Any]:
    catalog, schema, name = key
    return {"table": {"catalogName": catalog, "schemaName": schema, "tableName": name, **extra}}


def sample() -> list[tuple[str, tw.Key]]:
    """Users with and without user grants, the admin; granted, denied and unregistered tables."""
    rng = random.Random(7)
    users = [*sorted(WORLD.user_tables)[:3], *rng.sample(tw.USERS, 4), tw.ADMIN]
    keys = [*rng.sample(list(tw.all_tables()), 40)]
    keys += [k for u in users for k in WORLD.user_tables.get(u, [])[:2]]
    return [(u, k) for u in users for k in keys]


def test_select_is_allowed_exactly_where_the_policies_say(gopolicy: str) -> None:
    pairs = sample()
    got = [
        ask(gopolicy, "allow", u, {"operation": "SelectFromColumns", "resource": table(k)})
        for u, k in pairs
    ]
    assert got == [WORLD.can_read(u, k) for u, k in pairs]
    assert True in got and False in got  # the sample holds both answers


@pytest.mark.parametrize("schema", ["s00", "s16", "s18"])
def test_filter_tables_keeps_the_readable_ones(gopolicy: str, schema: str) -> None:
    for user in (*sorted(WORLD.user_tables)[:2], tw.USERS[7], tw.ADMIN):
        keys = [(tw.CATALOG, schema, t) for t in tw.TABLES]
        kept = ask(
            gopolicy,
            "batch",
            user,
            {"operation": "FilterTables", "filterResources": [table(k) for k in keys]},
        )
        assert [keys[i][2] for i in kept] == WORLD.readable(user, schema)


def test_filter_columns_answers_the_columns_of_a_readable_table_only(gopolicy: str) -> None:
    columns = ["id", "name", "amount", "note"]
    for user, key in sample()[:60]:
        action = {"operation": "FilterColumns", "filterResources": [table(key, columns=columns)]}
        expected = [0, 1, 2, 3] if WORLD.can_read(user, key) else []
        assert ask(gopolicy, "batch", user, action) == expected


@pytest.mark.parametrize(
    ("operation", "resource", "allowed"),
    [
        ("ExecuteQuery", {}, True),
        ("AccessCatalog", {"catalog": {"name": tw.CATALOG}}, True),
        ("SelectFromColumns", table((tw.CATALOG, "information_schema", "columns")), True),
        ("InsertIntoTable", table((tw.CATALOG, "s18", "t000")), False),  # writes: never
        ("ImpersonateUser", {"user": {"user": tw.USERS[1]}}, False),
        ("ImpersonateUser", {"user": {"user": tw.USERS[0]}}, True),  # oneself
    ],
)
def test_other_operations(gopolicy: str, operation: str, resource: Any, allowed: bool) -> None:
    action = {"operation": operation, "resource": resource}
    assert ask(gopolicy, "allow", tw.USERS[0], action) is allowed


def test_no_row_filters_and_no_masks(gopolicy: str) -> None:
    assert ask(gopolicy, "rowFilters", tw.USERS[0], {"operation": "GetRowFilters"}) == []
    assert ask(gopolicy, "batchColumnMasks", tw.USERS[0], {"operation": "GetColumnMask"}) == []


def test_a_body_that_is_not_json_is_a_400(gopolicy: str) -> None:
    response = httpx.post(f"{gopolicy}/v1/data/trino/batch", content=b"{not json")
    assert response.status_code == 400
