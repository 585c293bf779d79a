"""Locust: a Trino coordinator's realistic call mix against the sidecar.

Each simulated query follows query-trace.jsonl with the batch URIs configured (Trino >= 453):
ExecuteQuery, then per table one batch GetColumnMask (all columns) and one GetRowFilters, then
per table AccessCatalog + SelectFromColumns with a few columns. Queries read one table, or join
two or three. Now and then a client lists metadata instead: FilterCatalogs, FilterSchemas, a
FilterTables batch of 100 and a FilterColumns batch. Users, tables and columns come from the
same generated world as the configuration (benchmarks/generate.py), and every query gets a new
queryId, as in Trino.

    locust -f benchmarks/locustfile.py --headless --host http://127.0.0.1:8181 \
        -u 32 -r 32 -t 25s --only-summary

Locust rounds its own percentiles to whole milliseconds, which hides sub-millisecond answers;
with BENCH_LOCUST_OUT set, the exact per-call latencies are summarised into that JSON file.
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import time
from collections import defaultdict
from typing import Any

import generate
import orjson
from locust import FastHttpUser, between, events, task

WORLD = generate.build_world()
ALLOW = "/v1/data/trino/allow"
BATCH = "/v1/data/trino/batch"
ROW_FILTERS = "/v1/data/trino/rowFilters"
MASKS = "/v1/data/trino/batchColumnMasks"
_query_ids = itertools.count(1)
_latencies: defaultdict[str, list[float]] = defaultdict(list)
_failures: defaultdict[str, int] = defaultdict(int)
_window: dict[str, float] = {}


def _query_id() -> str:
    return f"20261122_{time.strftime('%H%M%S')}_{next(_query_ids):05d}_locust"


class TrinoCoordinator(FastHttpUser):
    wait_time = between(0.02, 0.06)  # planning and execution between queries

    def _call(self, path: str, name: str, body: bytes) -> Any:
        with self.client.post(
            path,
            data=body,
            headers={"Content-Type": "application/json"},
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text}")
                return None
            result = orjson.loads(response.content).get("result")
            if result is None:  # every endpoint used here answers a value
                response.failure(f"no result: {response.text}")
            return result

    @task(9)
    def select(self) -> None:
        rnd = random
        user = rnd.choice(WORLD.users)
        tables = [generate.pick_table(rnd, WORLD) for _ in range(rnd.choice((1, 1, 1, 2, 3)))]
        qid = _query_id()
        self._call(ALLOW, "allow ExecuteQuery", generate.execute_query(user))
        for t in tables:
            self._call(MASKS, "batchColumnMasks", generate.column_masks(user, t, qid))
            self._call(ROW_FILTERS, "rowFilters", generate.row_filters(user, t, qid))
        for t in tables:
            self._call(ALLOW, "allow AccessCatalog", generate.access_catalog(user, t.catalog, qid))
            columns = generate.pick_columns(rnd, t)
            self._call(ALLOW, "allow SelectFromColumns", generate.select(user, t, columns, qid))

    @task(1)
    def list_metadata(self) -> None:
        rnd = random
        user, qid = rnd.choice(WORLD.users), _query_id()
        catalogs = WORLD.catalogs()
        self._call(BATCH, "batch FilterCatalogs", generate.filter_catalogs(user, catalogs, qid))
        catalog = rnd.choice(generate.CATALOGS)
        schemas = WORLD.schemas(catalog)
        self._call(
            BATCH, "batch FilterSchemas", generate.filter_schemas(user, catalog, schemas, qid)
        )
        in_catalog = [t for t in WORLD.tables if t.catalog == catalog]
        start = rnd.randrange(len(in_catalog) - generate.BATCH_SIZE)
        listed = in_catalog[start : start + generate.BATCH_SIZE]
        self._call(BATCH, "batch FilterTables", generate.filter_tables(user, listed, qid))
        self._call(BATCH, "batch FilterColumns", generate.filter_columns(user, listed[0], qid))


@events.test_start.add_listener
def _started(**_: Any) -> None:
    _window["start"] = time.monotonic()


@events.request.add_listener
def _record(name: str, response_time: float, exception: BaseException | None, **_: Any) -> None:
    if exception is None:
        _latencies[name].append(response_time)
    else:
        _failures[name] += 1


@events.quitting.add_listener
def _summarise(**_: Any) -> None:
    out = os.environ.get("BENCH_LOCUST_OUT")
    if not out:
        return
    seconds = time.monotonic() - _window.get("start", time.monotonic())
    rows = []
    for name in sorted(set(_latencies) | set(_failures)):
        times = sorted(_latencies[name])
        cuts = statistics.quantiles(times, n=1000) if len(times) > 1 else times * 999
        rows.append(
            {
                "name": name,
                "requests": len(times) + _failures[name],
                "failures": _failures[name],
                "rps": (len(times) + _failures[name]) / seconds,
                "p50_ms": cuts[499],
                "p95_ms": cuts[949],
                "p99_ms": cuts[989],
                "max_ms": times[-1] if times else 0.0,
            }
        )
    with open(out, "wb") as f:
        f.write(orjson.dumps({"seconds": seconds, "rows": rows}))
