"""The access controls' own cost in one JVM (`benchmarks/spi_cost.py`): the queries it hands the
Java driver are `trino_bench`'s, read right; a block's cost over allow-all is put in proportion
to a query and called met, missed or undecided only where every block agrees."""

from __future__ import annotations

from benchmarks import trino_world as tw
from benchmarks.spi_cost import SEQUENCES, per_query, row, share, verdict
from benchmarks.trino_bench import KINDS, Query, mix

WORLD = tw.build()


def test_each_kind_of_query_becomes_its_tables_or_the_schema_it_lists():
    assert row(
        WORLD,
        Query("point", "u003", "SELECT id, name, amount FROM postgresql.s04.t017 WHERE id = 2"),
    ) == {
        "kind": "point",
        "user": "u003",
        "groups": WORLD.user_groups["u003"],
        "tables": [["s04", "t017"]],
        "schema": None,
    }
    join = (
        "SELECT a.id, a.name, b.amount FROM postgresql.s01.t002 a "
        "JOIN postgresql.s16.t050 b ON a.id = b.id"
    )
    assert row(WORLD, Query("join", "u001", join))["tables"] == [["s01", "t002"], ["s16", "t050"]]
    show = row(WORLD, Query("show_tables", "u001", "SHOW TABLES FROM postgresql.s07"))
    assert (show["tables"], show["schema"]) == ([], "s07")
    columns = (
        "SELECT table_name, column_name FROM postgresql.information_schema.columns "
        "WHERE table_schema = 'wide'"
    )
    listing = row(WORLD, Query("wide", "u001", columns))
    assert (listing["tables"], listing["schema"]) == ([], "wide")


def test_every_query_of_the_mix_names_what_its_calls_need():
    for query in mix(WORLD, 200, tw.SEED + 20):
        got = row(WORLD, query)
        if query.kind == "point":
            assert len(got["tables"]) == 1
        elif query.kind == "join":
            assert len(got["tables"]) == 2
        else:
            assert got["schema"] in tw.SCHEMAS


def test_every_kind_has_its_recorded_calls():
    assert set(KINDS) | {"wide"} == set(SEQUENCES)
    assert SEQUENCES["point"] == [
        "ExecuteQuery",
        "GetColumnMask T1",
        "GetRowFilters T1",
        "AccessCatalog",
        "SelectFromColumns T1 id,name,amount",
    ]
    assert SEQUENCES["wide"] == SEQUENCES["columns"]


def test_the_backends_rate_at_rest_is_taken_off_and_never_below_zero():
    block = {
        "queries": 10,
        "jvmCpuNs": 5_000_000,
        "processCpuNs": 10_000_000,
        "threadCpuNs": 4_000_000,
        "wallNs": 20_000_000,
        "elapsedNs": 100_000_000,  # 0.1 s, at 30 ms of CPU per second at rest: 3 ms
        "backendCpuMs": 13.0,
        "requests": 15,
    }
    (cost,) = per_query([block], idle_ms_per_s=30.0)
    assert cost["backend"] == 1.0 and cost["cpu"] == 1.5 and cost["requests"] == 1.5
    (quiet,) = per_query([block | {"backendCpuMs": 1.0}], idle_ms_per_s=30.0)
    assert quiet["backend"] == 0.0


# (per-block differences ms, reference ms per query, limit %) -> verdict
VERDICTS = [
    ([0.5, 1.0, 1.5], (100.0, 110.0), 2.0, "met"),  # at most 1.5 % of the cheapest query
    ([2.5, 3.0], (100.0, 110.0), 2.0, "missed"),  # at least 2.27 % of the dearest
    ([1.0, 2.5], (100.0, 110.0), 2.0, "undecided"),  # one block on each side
    ([-0.2, -0.1], (100.0,), 0.0, "met"),  # below the other access control in every block
    ([-0.2, 0.1], (100.0,), 0.0, "undecided"),
]


def test_verdicts_only_where_every_block_agrees():
    for diffs, reference, limit, expected in VERDICTS:
        assert verdict(share(diffs, reference), limit) == expected, (diffs, reference, limit)
    bar = share([1.0, 2.0, 3.0], (100.0, 200.0))
    assert bar == {"median": 2 * 100 / 150, "low": 0.5, "high": 3.0}
