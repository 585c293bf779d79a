"""Benchmark (not a test): object sync applied to the store at 100,000 tables.

    .venv/bin/python benchmarks/store_sync.py [--tables 100000] [--columns 5] [--backend both]

One Trino-like connection: one catalog, tables spread over schemas of 1,000 tables, each with
`--columns` columns. Runs, each as one store write (one version):

1. first sync: every object and column inserted;
2. unchanged re-sync: load, compare, mark every object seen;
3. re-sync with drift: 1% of tables gone, 1% new, a column added to 1% and a type changed;
4. compiling the store into registry entries (every table active).

PostgreSQL runs in a throwaway cluster (devstack.postgres), or the server PDP_TEST_POSTGRES
names. Printed: seconds per step (wall clock, and this process's CPU, which on a shared
machine says more than the wall clock; PostgreSQL's own CPU is not in it) and the stats."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from devstack import postgres
from pdp.objects import ObjectPath
from pdp.objects.syncplan import Listing, RemoteColumn, RemoteObject
from pdp.store import Store
from pdp.store.registry import read_registry

T = TypeVar("T")
PER_SCHEMA = 1000


def world(tables: int, columns: int, drift: bool = False) -> list[Listing]:
    schemas = max(1, tables // PER_SCHEMA)
    listings = [
        Listing((), (RemoteObject("lake"),)),
        Listing(("lake",), tuple(RemoteObject(f"s{i:04}") for i in range(schemas))),
    ]
    for s in range(schemas):
        children = []
        for t in range(PER_SCHEMA):
            n = s * PER_SCHEMA + t
            if drift and n % 100 == 0:
                continue  # 1% gone
            cols = [RemoteColumn(f"c{c}", "varchar", True, c + 1) for c in range(columns)]
            if drift and n % 100 == 1:
                cols.append(RemoteColumn("added", "bigint", True, columns + 1))  # 1% new column
            if drift and n % 100 == 2:
                cols[0] = RemoteColumn("c0", "bigint", True, 1)  # 1% type changed
            children.append(RemoteObject(f"t{n:06}", "BASE TABLE", tuple(cols)))
            if drift and n % 100 == 3:
                children.append(RemoteObject(f"new{n:06}", "BASE TABLE", tuple(cols)))  # 1% new
        listings.append(Listing(("lake", f"s{s:04}"), tuple(children)))
    return listings


def timed(label: str, step: Callable[[], T]) -> T:
    start, cpu = time.perf_counter(), time.process_time()
    result = step()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"  {label:<34} {wall:7.2f} s wall {cpu:7.2f} s CPU (this process)", flush=True)
    return result


def run(url: str, tables: int, columns: int) -> None:
    store = Store.open(url)
    with store.write() as tx:
        tx.register_connection("hc", "trino", activate_new_children=True)
    first, drifted = world(tables, columns), world(tables, columns, drift=True)

    def sync(listings: list[Listing]) -> dict[str, int]:
        with store.write() as tx:
            outcome = tx.sync("hc", listings)
        assert outcome.applied
        return outcome.stats

    print(f"  stats: {timed('first sync (insert everything)', lambda: sync(first))}")
    print(f"  stats: {timed('unchanged re-sync', lambda: sync(first))}")
    print(f"  stats: {timed('re-sync with 1% drift', lambda: sync(drifted))}")
    registry = timed("compile registry", lambda: read_registry(store))
    print(f"  data sources: {len(registry.sources)}, retired: {len(registry.retired)}")
    with store.read() as tx:
        print(f"  objects under hc: {tx.descendant_count(ObjectPath('hc'))}")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    print(f"{args.tables} tables x {args.columns} columns")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as directory:
            print("SQLite")
            run(f"sqlite:///{Path(directory) / 'store.db'}", args.tables, args.columns)
    if args.backend in ("postgresql", "both"):
        with postgres.server() as pg, pg.scratch_database() as url:
            print("PostgreSQL")
            run(url, args.tables, args.columns)


if __name__ == "__main__":
    main()
