"""The query-level benchmark's queries: the mix keeps its four kinds and weights, and the `wide`
kind (asked for with `--kinds wide`) lists the columns of the 2,000-table schema, which exists
in the benchmark's database and is not registered, so every user may list all of it."""

from __future__ import annotations

import json
from collections import Counter

from benchmarks import trino_world as tw
from benchmarks.trino_bench import KINDS, _operation, mix

WORLD = tw.build()


def test_the_mix_draws_its_four_kinds_at_their_weights():
    drawn = Counter(q.kind for q in mix(WORLD, 2_000, seed=1))
    assert set(drawn) == set(KINDS)
    assert 0.36 < drawn["point"] / 2_000 < 0.44  # weight 4 of 10
    assert all(0.17 < drawn[k] / 2_000 < 0.23 for k in ("join", "show_tables", "columns"))


def test_the_wide_kind_lists_the_columns_of_the_wide_schema():
    queries = mix(WORLD, 10, seed=1, kinds=("wide",))
    assert {q.kind for q in queries} == {"wide"}
    assert all(
        "information_schema.columns" in q.sql and f"table_schema = '{tw.WIDE_SCHEMA}'" in q.sql
        for q in queries
    )


def test_the_wide_schema_is_in_the_database_with_2000_tables_and_is_not_registered():
    sql = tw.postgres_sql()
    assert sql.count(f"CREATE TABLE {tw.WIDE_SCHEMA}.") == len(tw.WIDE_TABLES) == 2_000
    assert not any(tw.World.registered((tw.CATALOG, tw.WIDE_SCHEMA, t)) for t in tw.WIDE_TABLES)
    assert all(WORLD.can_read("u001", (tw.CATALOG, tw.WIDE_SCHEMA, t)) for t in tw.WIDE_TABLES)


def test_the_counting_proxy_names_the_operations_of_either_plugins_bodies():
    opa = {"input": {"action": {"operation": "FilterTables", "filterResources": []}}}
    compact = {
        "identity": {"user": "u"},
        "asks": [{"operation": "SelectFromColumns"}, {"operation": "GetRowFilters"}] * 2,
    }
    assert _operation(json.dumps(opa).encode()) == "FilterTables"
    assert _operation(json.dumps(compact).encode()) == "GetRowFilters+SelectFromColumns"
    assert _operation(b"not json") == "?"
