"""Query-level benchmark: one real Trino 476, the same data and the same query mix, under each
access control Trino can be configured with; queries per second and p50/p99 per query kind.

    .venv/bin/python -m benchmarks.trino_bench --queries 2000      # about 40 minutes

Configurations (Trino restarted for each, with the same catalog and group file):

* `none`: no access control (allow all), the floor;
* `file`: Trino's file-based access control with rules equivalent to the policies;
* `opa`: a real OPA (`go install github.com/open-policy-agent/opa@OPA_VERSION`, into
  `.cache/bin`) running `benchmarks/opa/trino.rego` over the same grants as data, with the
  plugin's batched filtering;
* `sidecar`: the product's sidecar (2 workers) and PDP, with the same batched filtering;
* `opa-lean`, `sidecar-lean`: the same backend (not a second one), with the plugin configured
  without the row-filter and column-mask endpoints, which it otherwise calls for every table of
  every query; the world has no data policies, so the answers are the same;
* `plugin`: the product's own plugin (trino-plugin/, `make plugin`) in Trino, asking the same
  sidecar (the same backend as `sidecar`, not a second one) over its compact endpoints, with
  its decisions cached inside Trino;
* `gopolicy`: the same plugin settings against `benchmarks/gopolicy`, the same policy written by
  hand in Go over OPA's data document, served by Go's HTTP server: a map lookup per call, a
  reference for what the plugin costs a query whatever server answers it (built with `go build`
  into `.cache/bin`, run with one Go thread).

The world (2,000 PostgreSQL tables, 500 users in 25 groups, 250 policies) is `trino_world.py`.
Before measuring, each configuration answers a sample of users and queries (point SELECTs,
SHOW TABLES, information_schema.columns, joins), and the answers must equal what the policies
say (`World.can_read`): equal allowed/denied outcomes and equal listings. Then a warm-up, then
`--queries` queries of the mix from `--threads` concurrent sessions, each query as a random user.
Finally, with the sidecar behind a counting proxy, each kind of query is run alone to count the
OPA-contract calls it makes, and (with `plugin` among the configs) the compact calls the
product's plugin makes, each query run twice: cold, then warm (its answers cached in Trino).

Besides latencies, each measured block records the CPU (from /proc) its Trino used and the CPU
of its backend's processes (OPA, Go, or the sidecar and its workers with the PDP; `plugin`
shares the sidecar's): Trino and backend CPU per query, where the plugin's cost shows when
latency is noise.

One Trino JVM differs from the next by more than the plugin costs (run C in RESULTS.md: 100-110
ms of Trino CPU per query, 5 % apart between JVMs), so one JVM per configuration cannot decide a
goal of 2 %. `--jvms K` runs K rounds; each starts a fresh Trino per configuration (in a rotating
order), checks its equivalence, warms it (settled, as above) and measures the same `--queries`
in interleaved blocks, then stops it; the backends live through all rounds (only the first round
warms every user). The report adds each JVM's median of its block means and its CPU per query
(Trino's with and without its JIT compiler, the backend's), the median over JVMs per
configuration, and for each comparison issue 25 asks (against `none`, at most +2 % for
`plugin`, against `file`, `plugin` against `opa` and `sidecar`) and each of those metrics the
difference of the medians, the JVM-to-JVM spread (the wider range of the two) and a verdict:
above or below only when the difference is further from the limit than the spread, "undecided"
otherwise. Two configurations that do not differ come out decided by the JVMs' luck alone
(simulated with normal JVM-to-JVM noise) in about 1 run of 5 with K=2, 1 of 16 with K=3, 1 of
80 with K=4: use K >= 3, and publish every run. A later round's Trinos are warmed by the mix
alone: a difference between rounds widens the spread, it cannot decide anything.

    .venv/bin/python -m benchmarks.trino_bench --configs none,file,plugin --jvms 3 \
        --queries 300 --block 50 --warmup 400 --warmup-chunk 100 --settle-window 2 \
        --settle-max 600 --sample-users 1 --count-calls 0     # 23-28 minutes, 2 cores

Every process started here is stopped by its own id; the PostgreSQL cluster is a throwaway one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import requests
import trino.dbapi
from trino.exceptions import TrinoUserError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import trino_world as tw  # noqa: E402
from devstack.postgres import Postgres, throwaway  # noqa: E402
from devstack.processes import Process, start_pdp, start_sidecar  # noqa: E402
from devstack.trino import (  # noqa: E402
    JAVA_HOME,
    FileRules,
    Opa,
    PdpPlugin,
    Trino,
    TrinoSpec,
    catalog_postgresql,
)

OPA_VERSION = "v1.22.4"
OPA_BIN = REPO / ".cache" / "bin" / "opa"
REGO = HERE / "opa" / "trino.rego"
DATABASE = "bench"
CONFIGS = ("none", "file", "opa", "sidecar", "plugin", "gopolicy", "opa-lean", "sidecar-lean")
DEFAULT_CONFIGS = ("none", "file", "opa", "sidecar", "plugin", "gopolicy")
GOPOLICY_SRC = HERE / "gopolicy"
GOPOLICY_BIN = REPO / ".cache" / "bin" / "gopolicy"
LEAN = "-lean"
TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_CHUNK = 200
SETTLE_SLACK_MS = 0.5  # JIT CPU per query: differences below this are settled whatever the ratio
# Each kind's weight when drawn: the mix is 40 % point SELECTs and 20 % each of the others;
# `wide` (the 2,000-table schema's columns) is drawn only when `--kinds` names it.
WEIGHTS = {"point": 4, "join": 2, "show_tables": 2, "columns": 2, "wide": 1}
KINDS = ("point", "join", "show_tables", "columns")  # the mix
OPA_PATHS = ("allow", "batch", "rowFilters", "batchColumnMasks")
JCMD = JAVA_HOME / "bin" / "jcmd"
T = TypeVar("T")


@dataclass(frozen=True)
class Query:
    kind: str
    user: str
    sql: str


# --- the query mix --------------------------------------------------------------------------


def _pick_readable(world: tw.World, rng: random.Random, user: str) -> tw.Key:
    """60 %: a registered table the user was granted; else a table that is not registered."""
    granted = [k for k in world.user_tables.get(user, [])]
    granted += [
        (tw.CATALOG, s, t)
        for g in world.user_groups.get(user, [])
        for s in world.group_schemas[g]
        for t in tw.REGISTERED_TABLES[::7]
    ]
    if granted and rng.random() < 0.6:
        return rng.choice(granted)
    schema = rng.choice(tw.SCHEMAS)
    tables = tw.TABLES if schema not in tw.REGISTERED_SCHEMAS else tw.TABLES[90:]
    return (tw.CATALOG, schema, rng.choice(tables))


def query_of(kind: str, world: tw.World, rng: random.Random, user: str) -> Query:
    if kind == "point":
        _, s, t = _pick_readable(world, rng, user)
        sql = f"SELECT id, name, amount FROM {tw.CATALOG}.{s}.{t} WHERE id = {rng.randint(1, 3)}"
    elif kind == "join":
        (_, s1, t1), (_, s2, t2) = (_pick_readable(world, rng, user) for _ in range(2))
        sql = (
            f"SELECT a.id, a.name, b.amount FROM {tw.CATALOG}.{s1}.{t1} a "
            f"JOIN {tw.CATALOG}.{s2}.{t2} b ON a.id = b.id"
        )
    elif kind == "show_tables":
        sql = f"SHOW TABLES FROM {tw.CATALOG}.{rng.choice(tw.SCHEMAS)}"
    else:
        schema = tw.WIDE_SCHEMA if kind == "wide" else rng.choice(tw.SCHEMAS)
        sql = (
            f"SELECT table_name, column_name FROM {tw.CATALOG}.information_schema.columns "
            f"WHERE table_schema = '{schema}'"
        )
    return Query(kind, user, sql)


def mix(world: tw.World, n: int, seed: int, kinds: tuple[str, ...] = KINDS) -> list[Query]:
    rng = random.Random(seed)
    chosen = [k for k in WEIGHTS if k in kinds]
    drawn = rng.choices(chosen, weights=[WEIGHTS[k] for k in chosen], k=n)
    return [query_of(kind, world, rng, rng.choice(tw.USERS)) for kind in drawn]


# --- equivalence ----------------------------------------------------------------------------


def sample_checks(world: tw.World, n_users: int = 10) -> list[tuple[str, str, Any]]:
    """(user, sql, expected) for a sample of users: SELECT outcomes and listings."""
    rng = random.Random(tw.SEED + 1)
    with_grants = (n_users + 1) // 2
    users = sorted(world.user_tables)[:with_grants] + rng.sample(tw.USERS, n_users - with_grants)
    checks: list[tuple[str, str, Any]] = []
    for user in users:
        groups = world.user_groups[user]
        own = world.group_schemas[groups[0]][0]
        other = next(
            s for s in tw.GROUP_SCHEMAS if not world.can_read(user, (tw.CATALOG, s, "t000"))
        )
        targets = [
            (own, "t003"),  # granted to a group of the user
            (other, "t004"),  # registered, not granted
            (other, "t095"),  # not registered, in a registered schema
            ("s18", "t010"),  # schema not registered
            ("s16", "t020"),  # registered, granted to few users
        ]
        targets += [(s, t) for _, s, t in world.user_tables.get(user, [])[:2]]
        for s, t in targets:
            expected = "allowed" if world.can_read(user, (tw.CATALOG, s, t)) else "denied"
            checks.append((user, f"SELECT count(*) FROM {tw.CATALOG}.{s}.{t}", expected))
        checks.append(
            (
                user,
                f"SELECT count(*) FROM {tw.CATALOG}.{own}.t001 a "
                f"JOIN {tw.CATALOG}.{other}.t001 b ON a.id = b.id",
                "denied",
            )
        )
        for schema in (own, other, "s16", "s18"):
            expected_tables = world.readable(user, schema)
            checks.append((user, f"SHOW TABLES FROM {tw.CATALOG}.{schema}", expected_tables))
            checks.append(
                (
                    user,
                    f"SELECT DISTINCT table_name FROM {tw.CATALOG}.information_schema.columns "
                    f"WHERE table_schema = '{schema}'",
                    expected_tables,
                )
            )
    return checks


def outcome(trino_: Trino, user: str, sql: str, listing: bool) -> Any:
    try:
        rows = trino_.query(user, sql)
    except TrinoUserError as error:
        if error.error_name == "PERMISSION_DENIED":
            return "denied"
        return f"error {error.error_name}"
    return sorted(str(r[0]) for r in rows) if listing else "allowed"


def check_equivalence(trino_: Trino, world: tw.World, config: str, n_users: int) -> dict[str, Any]:
    answers, wrong = [], []
    checks = sample_checks(world, n_users)
    with ThreadPoolExecutor(4) as pool:
        gots = list(pool.map(lambda c: outcome(trino_, c[0], c[1], isinstance(c[2], list)), checks))
    for (user, sql, expected), got in zip(checks, gots, strict=True):
        if config == "none":  # allow all: everything readable, everything listed
            expected = list(tw.TABLES) if isinstance(expected, list) else "allowed"
        answers.append(got)
        if got != expected:
            wrong.append({"user": user, "sql": sql, "expected": expected, "got": got})
    return {"answers": answers, "checks": len(answers), "mismatches": wrong}


# --- load -----------------------------------------------------------------------------------


def run_queries(trino_: Trino, queries: list[Query], threads: int) -> dict[str, Any]:
    """Closed loop: `threads` sessions take the next query until none is left."""
    results: list[tuple[str, float, str]] = []
    lock = threading.Lock()
    todo = iter(queries)

    def worker() -> None:
        session = requests.Session()
        while True:
            with lock:
                query = next(todo, None)
            if query is None:
                return
            start = time.perf_counter()
            try:
                conn = trino.dbapi.connect(
                    host="127.0.0.1",
                    port=trino_.spec.port,
                    user=query.user,
                    http_scheme="http",
                    http_session=session,
                )
                cursor = conn.cursor()
                cursor.execute(query.sql)
                cursor.fetchall()
                status = "ok"
            except Exception as error:
                status = f"{type(error).__name__}: {str(error)[:200]}"
            elapsed = time.perf_counter() - start
            with lock:
                results.append((query.kind, elapsed, status))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    wall = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - wall
    return {"wall": wall, "results": results}


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    results, wall = run["results"], run["wall"]
    out: dict[str, Any] = {}
    for kind in (*WEIGHTS, "mix"):
        lat = sorted(e for k, e, s in results if (kind == "mix" or k == kind) and s == "ok")
        n = sum(1 for k, _, _ in results if kind == "mix" or k == kind)
        if not lat:
            out[kind] = {"n": n, "errors": n}
            continue
        out[kind] = {
            "n": n,
            "errors": n - len(lat),
            "qps": n / wall,
            "mean_ms": 1000 * statistics.fmean(lat),
            "p50_ms": 1000 * _pct(lat, 50),
            "p99_ms": 1000 * _pct(lat, 99),
        }
    errors = Counter(s for _, _, s in results if s != "ok")
    out["error_kinds"] = dict(errors.most_common(5))
    return out


def _pct(values: list[float], pct: float) -> float:
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values) + 0.5) - 1))
    return values[index]


# --- CPU of others --------------------------------------------------------------------------


def _stat_fields(path: str) -> list[str]:
    """The fields of a /proc stat file after the command name (which may hold spaces): index 1
    is the parent, 11..14 the user, system and children's CPU ticks."""
    with open(path) as stat:
        return stat.read().rsplit(")", 1)[1].split()


def cpu_snapshot(roots: list[int]) -> tuple[list[int], int]:
    """System CPU ticks by kind, and the ticks used so far by the process trees of `roots`
    (this script and its children; the PostgreSQL postmaster, which pg_ctl daemonized).
    Children that exited are in their parent's cutime/cstime."""
    with open("/proc/stat") as stat:
        system = [int(v) for v in stat.readline().split()[1:]]
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(f"/proc/{entry}/stat")
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = sum(int(v) for v in fields[11:15])
    mine, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        mine += ticks.get(pid, 0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return system, mine


def jit_ticks(pid: int) -> int:
    """CPU ticks used so far by the JVM's JIT compiler threads (C1 and C2) of process `pid`."""
    ticks = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as comm:
                if not comm.read().startswith(("C1 Compiler", "C2 Compiler")):
                    continue
            fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        except OSError:  # the thread ended
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks


def cpu_load(before: tuple[list[int], int], after: tuple[list[int], int]) -> dict[str, float]:
    delta = [b - a for a, b in zip(before[0], after[0], strict=True)]
    total = max(1, sum(delta[:8]))
    busy = total - delta[3] - delta[4]
    return {
        "busy_pct": 100.0 * busy / total,
        "steal_pct": 100.0 * delta[7] / total,
        "foreign_pct": max(0.0, 100.0 * (busy - delta[7] - (after[1] - before[1])) / total),
    }


# --- backends -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def opa_binary() -> Path:
    if OPA_BIN.exists():
        return OPA_BIN
    OPA_BIN.parent.mkdir(parents=True, exist_ok=True)
    print(f"installing OPA {OPA_VERSION} into {OPA_BIN.parent} (minutes on 2 cores)", flush=True)
    subprocess.run(
        ["go", "install", f"github.com/open-policy-agent/opa@{OPA_VERSION}"],
        env={**os.environ, "GOBIN": str(OPA_BIN.parent)},
        check=True,
        timeout=3600,
    )
    return OPA_BIN


def gopolicy_binary(target: Path = GOPOLICY_BIN) -> Path:
    """Built every run (Go's build cache makes a rebuild take a second) so the binary is the
    source's."""
    subprocess.run(
        ["go", "build", "-o", str(target), "."], cwd=GOPOLICY_SRC, check=True, timeout=600
    )
    return target


def gopolicy_command(binary: Path, port: int, data: Path) -> list[str]:
    """One Go thread: Go's idle threads spin looking for work, CPU taken from a busy Trino."""
    return [str(binary), "-addr", f"127.0.0.1:{port}", "-data", str(data), "-procs", "1"]


@dataclass(frozen=True)
class Backend:
    """What a configuration's Trino calls: its URL (None: nothing), and the processes that
    answer (their trees' CPU, read from /proc, is the backend's CPU)."""

    url: str | None
    pids: tuple[int, ...] = ()


@contextlib.contextmanager
def backend(config: str, work: Path, ports: dict[str, int]) -> Iterator[Backend]:
    """The backend the access control of `config` calls (`Backend(None)`: none)."""
    if config in ("none", "file"):
        yield Backend(None)
        return
    if config in ("opa", "gopolicy"):
        port = ports[config]
        command = (
            gopolicy_command(gopolicy_binary(), port, work / "opa-data.json")
            if config == "gopolicy"
            else [
                str(opa_binary()),
                "run",
                "--server",
                "--addr",
                f"127.0.0.1:{port}",
                "--log-level",
                "error",
                str(REGO),
                str(work / "opa-data.json"),
            ]
        )
        process = Process(command, work / f"{config}.log")
        process.wait_until(lambda: healthy(f"http://127.0.0.1:{port}/health"))
        try:
            yield Backend(f"http://127.0.0.1:{port}", (process.popen.pid,))
        finally:
            process.stop()
        return
    pdp = start_pdp(work / "pdp.yaml", ports["pdp"])
    try:
        sidecar = start_sidecar(work / "sidecar.yaml", ports["sidecar"])
        try:
            yield Backend(
                f"http://127.0.0.1:{ports['sidecar']}", (pdp.popen.pid, sidecar.popen.pid)
            )
        finally:
            sidecar.stop()
    finally:
        pdp.stop()


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def make_trino(
    work: Path, name: str, config: str, url: str | None, world: tw.World, pg: Postgres
) -> Trino:
    """A Trino for `config`, starting (not yet ready: see `wait_ready`)."""
    access: Opa | PdpPlugin | FileRules | None = None
    if config == "file":
        access = FileRules(work / "rules.json")
    elif config == "plugin" and url is not None:
        access = PdpPlugin(url)
    elif url is not None:
        access = Opa(url, data_policies=not config.endswith(LEAN))
    root = work / f"trino-{name}"
    shutil.rmtree(root, ignore_errors=True)
    return Trino(
        TrinoSpec(
            root=root,
            port=free_port(),
            access=access,
            groups=world.groups,
            catalogs={"postgresql": catalog_postgresql(pg.jdbc_url(DATABASE), pg.user)},
        )
    )


@contextlib.contextmanager
def running(server: Trino) -> Iterator[Trino]:
    try:
        yield server
    finally:
        server.stop()


# --- counting proxy -------------------------------------------------------------------------


class CountingProxy:
    """Forwards POSTs to `target` and counts them by (endpoint, operation)."""

    def __init__(self, port: int, target_port: int) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        lock = threading.Lock()
        local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                operation = _operation(body)
                with lock:
                    proxy.counts[(self.path.rsplit("/", 1)[-1], operation)] += 1
                for attempt in (1, 2):  # the backend may have closed an idle keep-alive
                    conn = getattr(local, "conn", None)
                    if conn is None:
                        conn = local.conn = http.client.HTTPConnection("127.0.0.1", target_port)
                    try:
                        conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                        answer = conn.getresponse()
                        data = answer.read()
                        break
                    except (OSError, http.client.HTTPException):
                        conn.close()
                        local.conn = None
                        if attempt == 2:
                            raise
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self) -> Counter[tuple[str, str]]:
        # the plugin's revision watch is a long poll of its own, not a call of any query
        return Counter({key: n for key, n in self.counts.items() if key[0] != "watch"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _operation(body: bytes) -> str:
    """The operation of an OPA-contract body, or the operations asked in a compact one."""
    try:
        document = json.loads(body)
        if "asks" in document:
            return "+".join(sorted({ask["operation"] for ask in document["asks"]}))
        return str(document["input"]["action"]["operation"])
    except (ValueError, KeyError, TypeError):
        return "?"


def count_calls(
    trino_: Trino, proxy: CountingProxy, world: tw.World, per_kind: int, runs: int = 1
) -> dict:
    """Each kind alone, `per_kind` queries one after another, each run `runs` times in a row:
    the calls each run made (with `runs=2`: cold, then warm)."""
    rng = random.Random(tw.SEED + 2)
    table: dict[str, Any] = {}
    for kind in KINDS:
        per_query: list[Counter[tuple[str, str]]] = []
        for _ in range(per_kind):
            query = query_of(kind, world, rng, rng.choice(tw.USERS))
            for _ in range(runs):
                before = proxy.snapshot()
                trino_.query(query.user, query.sql)
                time.sleep(0.3)  # nothing should arrive after the result, but leave it the time
                per_query.append(proxy.snapshot() - before)
        keys = sorted(set().union(*per_query))
        table[kind] = {f"{path}:{op}": [c[(path, op)] for c in per_query] for path, op in keys}
    return table


# --- report ---------------------------------------------------------------------------------


def conditions() -> dict[str, str]:
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    mem = Path("/proc/meminfo").read_text().split()[1]
    opa_version = subprocess.run(
        [str(OPA_BIN), "version"], capture_output=True, text=True
    ).stdout.splitlines()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {cpu}, {int(mem) // 1024 // 1024} GiB, "
        f"kernel {platform.release()}",
        "versions": f"Trino 476, {opa_version[0] if opa_version else 'OPA ?'}, "
        f"Python {platform.python_version()}, trino client {version('trino')}, "
        f"uvicorn {version('uvicorn')}",
    }


def _blocks(run: dict[str, Any], key: str = "block_overhead_pct") -> str:
    b = run.get(key)
    return f"{b['median']:+.1f} % ({b['min']:+.0f}..{b['max']:+.0f})" if b else ""


def markdown(report: dict[str, Any]) -> str:
    lines = []
    runs = report.get("runs", {})
    if runs:
        lines.append(
            "| config | kind | queries | errors | qps | mean ms | p50 ms | p99 ms "
            "| mean over floor | p50 over floor | p99 over floor |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        floor = runs.get("none", {}).get("summary")
        for config in CONFIGS:
            if config not in runs:
                continue
            summary = runs[config]["summary"]
            for kind in ("mix", *WEIGHTS):
                row = summary[kind]
                if not row["n"]:
                    continue
                if "qps" not in row:
                    lines.append(f"| {config} | {kind} | {row['n']} | {row['errors']} |" + " |" * 7)
                    continue
                over = []
                for metric in ("mean_ms", "p50_ms", "p99_ms"):
                    base = floor and floor[kind].get(metric)
                    over.append(f"{100 * (row[metric] / base - 1):+.1f} %" if base else "")
                lines.append(
                    f"| {config} | {kind} | {row['n']} | {row['errors']} | {row['qps']:.2f} "
                    f"| {row['mean_ms']:.0f} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} "
                    f"| {' | '.join(over)} |"
                )
        lines.append("")
        lines.append(
            "| config | wall s | CPU busy % | other jobs % | steal % | loadavg (1 min) "
            "| Trino CPU ms/query | of which JIT | backend CPU ms/query (of which at rest) "
            "| mix mean over floor, per block: median (min..max) | over file rules, per block |"
        )
        lines.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---|---|")
        for config in CONFIGS:
            if config in runs:
                r = runs[config]
                lines.append(
                    f"| {config} | {r['wall']:.0f} | {r['cpu']['busy_pct']:.0f} "
                    f"| {r['cpu']['foreign_pct']:.1f} | {r['cpu']['steal_pct']:.1f} "
                    f"| {r['loadavg']} | {r['trino_cpu_ms_per_query']:.1f} "
                    f"| {r.get('jit_cpu_ms_per_query', 0):.1f} "
                    f"| {r.get('backend_cpu_ms_per_query', 0):.2f} "
                    f"({r.get('backend_idle_ms_per_query', 0):.2f}) | {_blocks(r)} "
                    f"| {_blocks(r, 'block_over_file_pct')} |"
                )
        lines.append("")
    if report.get("jvms"):
        lines += jvm_markdown(report["jvms"])
    rounds = report.get("rounds", [])
    for j, round_ in enumerate(rounds):
        warm = round_["warmup"]
        if len(rounds) > 1:
            lines.append(
                f"Round {j + 1}, Trinos started in the order {', '.join(round_['order'])}."
            )
        lines.append(
            f"Warm-up: {warm['queries']} mix queries per config in rotating rounds; the last "
            "chunk's JIT of Trino CPU per query (settled):\n"
        )
        for config, chunks in warm["chunks"].items():
            last = chunks[-1] if chunks else {"jit_ms": 0.0, "cpu_ms": 0.0, "qps": 0.0}
            lines.append(
                f"* {config}: {last['jit_ms']:.1f} of {last['cpu_ms']:.0f} ms, "
                f"{last['qps']:.1f} qps ({'yes' if warm['settled'][config] else 'no'})"
            )
        lines.append("")
    if report.get("equivalence"):
        lines.append("Equivalence (sample of users x queries, against the policies):\n")
        for config, eq in report["equivalence"].items():
            lines.append(f"* {config}: {eq['checks']} checks, {len(eq['mismatches'])} mismatches")
        if "identical" in report:
            lines.append(f"* same answers in every governed config: {report['identical']}")
        lines.append("")
    if report.get("calls"):
        lines.append("OPA-contract calls per query (sidecar behind a counting proxy):\n")
        lines.append("| kind | endpoint:operation | per query (each query run) |")
        lines.append("|---|---|---|")
        for kind, calls in report["calls"].items():
            for call, values in calls.items():
                lines.append(f"| {kind} | {call} | {values} |")
        lines.append("")
    if report.get("plugin_calls"):
        lines.append("The product plugin's calls per query (cold, warm, cold, warm, ...):\n")
        lines.append("| kind | endpoint:operations | per query run |")
        lines.append("|---|---|---|")
        for kind, calls in report["plugin_calls"].items():
            for call, values in calls.items():
                lines.append(f"| {kind} | {call} | {values} |")
        lines.append("")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2000, help="measured queries per config")
    parser.add_argument("--block", type=int, default=100, help="queries per interleaved block")
    parser.add_argument(
        "--warmup",
        type=int,
        default=2000,
        help="warm-up queries of the mix per config, at least: Trino's JIT is still compiling a "
        "quarter of its CPU away for about the first 2,000 (see RESULTS.md, 'A warm Trino')",
    )
    parser.add_argument(
        "--settle-max",
        type=int,
        default=6000,
        help="after --warmup, keep warming until every Trino's JIT CPU per query has settled "
        "(see --settle-window), at most this many queries per config; 0: exactly --warmup",
    )
    parser.add_argument(
        "--warmup-chunk", type=int, default=WARMUP_CHUNK, help="warm-up queries per config a round"
    )
    parser.add_argument(
        "--settle-window",
        type=int,
        default=3,
        help="settled: the JIT CPU per query of the last N warm-up chunks is on average within "
        "--settle-tolerance of that of the N before",
    )
    parser.add_argument("--settle-tolerance", type=float, default=0.1, help="a fraction")
    parser.add_argument(
        "--jfr",
        type=Path,
        help="record each Trino during the measured blocks (JDK Flight Recorder) into DIR/<config>"
        ".jfr; read with `jfr view hot-methods`",
    )
    parser.add_argument(
        "--no-warm-users",
        action="store_true",
        help="skip warming every user (two point SELECTs each) before the measured blocks; the "
        "sidecar fetches a user's grants on that user's first check, once per worker",
    )
    parser.add_argument(
        "--jvms",
        type=int,
        default=1,
        help="rounds, each with a fresh Trino JVM per config (warmed, then measured over the "
        "same --queries): K JVMs per config, and a verdict on each difference against the "
        "JVM-to-JVM spread",
    )
    parser.add_argument("--threads", type=int, default=8, help="concurrent sessions")
    parser.add_argument(
        "--configs", default=",".join(DEFAULT_CONFIGS), help=f"of {','.join(CONFIGS)}"
    )
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"query kinds measured, of {','.join(WEIGHTS)} (wide: information_schema.columns of "
        "the 2,000-table schema)",
    )
    parser.add_argument("--sample-users", type=int, default=10, help="equivalence sample")
    parser.add_argument("--count-calls", type=int, default=3, help="queries per kind; 0: skip")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what was started, then exit
    configs = [c for c in args.configs.split(",") if c]
    assert set(configs) <= set(CONFIGS), configs
    assert args.jvms >= 1, args.jvms
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)  # benchmarks/out/ is git-ignored
    if "opa" in configs:
        opa_binary()

    work = Path(tempfile.mkdtemp(prefix="trino-bench-"))
    os.chmod(work, 0o755)  # PostgreSQL runs as `postgres` under root and must reach pg/
    world = tw.build()
    kinds = tuple(k for k in args.kinds.split(",") if k)
    assert kinds and set(kinds) <= set(WEIGHTS), kinds
    report: dict[str, Any] = {"conditions": conditions(), "equivalence": {}}
    report["conditions"]["load"] = (
        f"{args.threads} sessions, {args.queries} queries per config and JVM in blocks of "
        f"{args.block}, {args.jvms} fresh JVM(s) per config one round after another, "
        f"interleaved across configs, after at least {args.warmup} warm-up queries (rotating "
        f"rounds; settled or at most {max(args.warmup, args.settle_max)}); mix weights "
        f"{ {k: WEIGHTS[k] for k in WEIGHTS if k in kinds} }"
    )
    print(f"work dir {work}", flush=True)
    try:
        with throwaway(work / "pg") as pg:
            # the backends' ports are taken once PostgreSQL listens, or it could take one
            ports = {name: free_port() for name in ("pdp", "sidecar", "opa", "gopolicy")}
            tw.write_all(world, work, ports["pdp"], ports["sidecar"])
            with pg.connect() as admin:
                admin.execute(f"CREATE DATABASE {DATABASE}")
            with pg.connect(DATABASE) as conn:
                conn.execute((work / "postgres.sql").read_text())
            postmaster = int((work / "pg" / "data" / "postmaster.pid").read_text().split()[0])
            with contextlib.ExitStack() as stack:
                backends = start_backends(stack, configs, work, ports)
                run_rounds(report, configs, backends, work, world, pg, postmaster, args)
            print(markdown(report), flush=True)
            if args.json:
                args.json.write_text(json.dumps(report, indent=1, default=str))
            if args.count_calls:
                try:
                    report["calls"] = counting(work, ports, world, pg, args.count_calls)
                    if "plugin" in configs:
                        report["plugin_calls"] = counting(
                            work, ports, world, pg, args.count_calls, "plugin"
                        )
                except Exception as error:
                    report["calls_error"] = repr(error)
                    print(f"counting failed: {error!r}", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report["conditions"], indent=1))
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    bad = {c: e["mismatches"] for c, e in report["equivalence"].items() if e["mismatches"]}
    if bad or not report.get("identical", True):
        print("EQUIVALENCE FAILED:", json.dumps(bad, indent=1)[:5000])
        return 1
    return 0


def run_rounds(
    report: dict[str, Any],
    configs: list[str],
    backends: dict[str, Backend],
    work: Path,
    world: tw.World,
    pg: Postgres,
    postmaster: int,
    args: argparse.Namespace,
) -> None:
    """`--jvms` rounds, each with a fresh Trino per config (started in the order of the round's
    rotation), checked, warmed and measured as one round alone would be, then stopped; the
    backends live through all rounds. Only the first round warms every user: the sidecar keeps
    a user's grants for later rounds, and a round's Trinos are warmed (JIT settled) by the mix."""
    warm_users = []
    if not args.no_warm_users:  # every user once per sidecar worker (2), in every config alike
        rng = random.Random(tw.SEED + 11)
        warm_users = [query_of("point", world, rng, u) for u in tw.USERS for _ in range(2)]
    warm_mix = mix(world, max(args.warmup, args.settle_max), tw.SEED + 10)
    measured = mix(world, args.queries, tw.SEED + 20, tuple(k for k in args.kinds.split(",") if k))
    accs: list[Acc] = []
    report["rounds"] = []

    def progress(acc: Acc, blocks: int) -> None:  # what is done so far, should the run be cut
        if args.json:
            report["runs"] = _summaries(merged([*accs, acc]))
            report["blocks_done"] = blocks
            args.json.write_text(json.dumps(report, indent=1, default=str))

    started = time.monotonic()
    for jvm in range(1, args.jvms + 1):
        if args.jvms > 1:
            print(f"=== round {jvm}/{args.jvms}: a fresh Trino per config", flush=True)
        with contextlib.ExitStack() as stack:
            order = rotation(configs, jvm - 1)
            servers = start_trinos(stack, order, backends, work, world, pg, jvm)
            for config, server in servers.items():
                eq = check_equivalence(server, world, config, args.sample_users)
                report["equivalence"][config if args.jvms == 1 else f"{config} #{jvm}"] = eq
                print(
                    f"    {config} equivalence: {eq['checks']} checks, "
                    f"{len(eq['mismatches'])} mismatches {eq['mismatches'][:3]}",
                    flush=True,
                )
            governed = [
                e["answers"] for c, e in report["equivalence"].items() if c.split()[0] != "none"
            ]
            report["identical"] = all(a == governed[0] for a in governed)
            print(f"    same answers in every governed config: {report['identical']}")
            warmup = warm_up(servers, warm_users if jvm == 1 else [], warm_mix, args)
            report.setdefault("warmup", warmup)  # the first round's, as with one JVM
            tag = "" if args.jvms == 1 else f"-{jvm}"
            record_jfr(servers, args.jfr, stop=False)
            acc = measure(servers, backends, measured, args, postmaster, progress)
            record_jfr(servers, args.jfr, stop=True, tag=tag)
        accs.append(acc)
        ordered = {c: acc[c] for c in configs}  # the report's order, whoever went first
        elapsed = time.monotonic() - started
        report["rounds"].append(
            {"order": order, "warmup": warmup, "runs": _summaries(ordered), "done_after_s": elapsed}
        )
        print(
            f"=== round {jvm}/{args.jvms} done, {elapsed / 60:.1f} min since the first", flush=True
        )
    report["runs"] = _summaries(merged([{c: a[c] for c in configs} for a in accs]))
    if args.jvms > 1:
        report["jvms"] = jvm_report([r["runs"] for r in report["rounds"]])


def rotation(items: Sequence[T], turn: int) -> list[T]:
    """`items` starting at position `turn` (modulo their number): who goes first moves on by one
    each turn, so that no configuration is always warmed or measured first, or last."""
    k = turn % len(items)
    return [*items[k:], *items[:k]]


def settled(jit_ms: Sequence[float], window: int, tolerance: float) -> bool:
    """Whether a Trino's JIT compiler CPU per query (one value per warm-up chunk, oldest first)
    has settled: the mean of the last `window` chunks is within `tolerance` (a fraction, or
    SETTLE_SLACK_MS if more) of the mean of the `window` chunks before them, neither still
    falling nor rising again (a burst of new compiling)."""
    if window < 1 or len(jit_ms) < 2 * window:
        return False
    last = statistics.fmean(jit_ms[-window:])
    before = statistics.fmean(jit_ms[-2 * window : -window])
    return abs(last - before) <= max(tolerance * before, SETTLE_SLACK_MS)


def warm_up(
    servers: dict[str, Trino], users: list[Query], queries: list[Query], args: argparse.Namespace
) -> dict[str, Any]:
    """Every Trino warmed in rounds, as the measured blocks are run: each round runs the same
    chunk on every configuration, the order rotating, so that none is warmed while the others
    sit idle, nor always first. First `users` (every user's first queries), then chunks of the
    mix: at least `--warmup` queries per configuration, then (unless `--settle-max 0`) more
    until every Trino's JIT compiler CPU per query has settled (`settled`), at most
    `--settle-max`. Trino compiles code for each new query shape: until that settles the JIT
    takes a share of its CPU, and a configuration measured before it does pays the JIT's noise.
    Returns, per configuration, each mix chunk's JIT and Trino CPU per query and its qps."""
    configs = list(servers)
    chunks: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    turn = 0

    def one_round(batch: list[Query], record: bool) -> None:
        nonlocal turn
        for config in rotation(configs, turn):
            pid = servers[config].popen.pid
            jit, cpu = jit_ticks(pid), cpu_snapshot([pid])[1]
            run = run_queries(servers[config], batch, args.threads)
            if record:
                chunks[config].append(
                    {
                        "jit_ms": 1000 * (jit_ticks(pid) - jit) / TICKS / len(batch),
                        "cpu_ms": 1000 * (cpu_snapshot([pid])[1] - cpu) / TICKS / len(batch),
                        "qps": len(batch) / run["wall"],
                    }
                )
        turn += 1

    def all_settled() -> dict[str, bool]:
        return {
            c: settled([x["jit_ms"] for x in chunks[c]], args.settle_window, args.settle_tolerance)
            for c in configs
        }

    print(f"--- warm-up of {', '.join(configs)} in rotating rounds", flush=True)
    for start in range(0, len(users), args.warmup_chunk):
        one_round(users[start : start + args.warmup_chunk], record=False)
        print(f"    every user: {min(len(users), start + args.warmup_chunk)}", flush=True)
    done = 0
    while done < len(queries):
        if done >= args.warmup and (not args.settle_max or all(all_settled().values())):
            break
        batch = queries[done : done + args.warmup_chunk]
        one_round(batch, record=True)
        done += len(batch)
        print(
            f"    {done} queries: "
            + ", ".join(
                f"{c} JIT {chunks[c][-1]['jit_ms']:.1f} of {chunks[c][-1]['cpu_ms']:.0f} ms/query "
                f"{chunks[c][-1]['qps']:.1f} qps"
                for c in configs
            ),
            flush=True,
        )
    return {"queries": done, "settled": all_settled(), "chunks": chunks}


def record_jfr(
    servers: dict[str, Trino], directory: Path | None, stop: bool, tag: str = ""
) -> None:
    """Start (or stop, writing `directory`/<config><tag>.jfr) a JDK Flight Recording of each
    Trino with the JDK's `profile` settings: where the measured blocks spend Trino's CPU."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for config, server in servers.items():
        command = [str(JCMD), str(server.popen.pid)]
        if stop:
            command += ["JFR.stop", "name=trino-bench", f"filename={directory / config}{tag}.jfr"]
        else:
            command += ["JFR.start", "name=trino-bench", "settings=profile"]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    if stop:
        print(f"    JFR recordings in {directory}", flush=True)


def start_backends(
    stack: contextlib.ExitStack, configs: list[str], work: Path, ports: dict[str, int]
) -> dict[str, Backend]:
    """The backend of each config, started once for the whole run: `plugin` shares the
    sidecar's, a lean config its twin's."""
    started: dict[str, Backend] = {}
    backends = {}
    for config in configs:
        base = "sidecar" if config == "plugin" else config.removesuffix(LEAN)
        if base not in started:
            started[base] = stack.enter_context(backend(base, work, ports))
        backends[config] = started[base]
    return backends


def start_trinos(
    stack: contextlib.ExitStack,
    configs: list[str],
    backends: dict[str, Backend],
    work: Path,
    world: tw.World,
    pg: Postgres,
    jvm: int = 1,
) -> dict[str, Trino]:
    """One fresh Trino per config (JVM number `jvm` of each), all running at once (started
    together in the order given, then waited for)."""
    started = time.monotonic()
    servers = {
        config: stack.enter_context(
            running(make_trino(work, f"{config}-{jvm}", config, backends[config].url, world, pg))
        )
        for config in configs
    }
    for server in servers.values():
        server.wait_ready(tw.ADMIN)
    print(f"--- {len(servers)} Trinos ready in {time.monotonic() - started:.0f} s", flush=True)
    return servers


Acc = dict[str, dict[str, Any]]  # per config: what its measured blocks added up to
IDLE_S = 5.0  # seconds the backends are watched at rest, before the blocks and after them


def idle_rates(
    backends: dict[str, Backend], seconds: float = IDLE_S
) -> dict[tuple[int, ...], float]:
    """CPU ticks per second each backend uses with no query running (its polls, timers and the
    plugin's revision watch), watched for `seconds`: what a config's blocks would find anyway."""
    distinct = {b.pids for b in backends.values() if b.pids}
    before = {pids: cpu_snapshot(list(pids))[1] for pids in distinct}
    time.sleep(seconds)
    return {pids: (cpu_snapshot(list(pids))[1] - before[pids]) / seconds for pids in distinct}


def measure(
    servers: dict[str, Trino],
    backends: dict[str, Backend],
    measured: list[Query],
    args: argparse.Namespace,
    postmaster: int,
    progress: Callable[[Acc, int], None] | None = None,
) -> Acc:
    """The measured queries in blocks; each block runs on every config in turn (the order
    rotating), so that what else the machine does hits all configs alike. Besides latencies,
    the CPU its Trino and its backend (the processes answering its calls) used meanwhile, and
    what the backend would have used at rest in that time (`idle_rates`, watched before the
    blocks and after them)."""
    configs = list(servers)
    acc: Acc = {
        c: {
            "results": [],
            "wall": 0.0,
            "system": None,
            "mine": 0,
            "trino": 0,
            "jit": 0,
            "backend": 0,
            "backend_idle": 0.0,
            "loadavg": [],
            "blocks": [],
        }
        for c in configs
    }
    blocks = [measured[i : i + args.block] for i in range(0, len(measured), args.block)]
    idle = idle_rates(backends)
    for b, block in enumerate(blocks):
        for config in rotation(configs, b):
            a = acc[config]
            pid, answering = servers[config].popen.pid, list(backends[config].pids)
            a["loadavg"].append(os.getloadavg()[0])
            trino_before = cpu_snapshot([pid])[1]
            backend_before = cpu_snapshot(answering)[1]
            jit_before = jit_ticks(pid)
            before = cpu_snapshot([os.getpid(), postmaster])
            run = run_queries(servers[config], block, args.threads)
            after = cpu_snapshot([os.getpid(), postmaster])
            a["trino"] += cpu_snapshot([pid])[1] - trino_before
            a["backend"] += cpu_snapshot(answering)[1] - backend_before
            a["jit"] += jit_ticks(pid) - jit_before
            delta = [y - x for x, y in zip(before[0], after[0], strict=True)]
            a["system"] = (
                delta
                if a["system"] is None
                else [x + y for x, y in zip(a["system"], delta, strict=True)]
            )
            a["mine"] += after[1] - before[1]
            a["results"] += run["results"]
            a["blocks"].append(statistics.fmean(e for _, e, _ in run["results"]))
            a["wall"] += run["wall"]
            a["backend_idle"] += idle.get(backends[config].pids, 0.0) * run["wall"]  # so far
        if progress is not None:
            progress(acc, b + 1)
        print(
            f"    block {b + 1}/{len(blocks)}: "
            + ", ".join(f"{c} {len(acc[c]['results']) / acc[c]['wall']:.1f} qps" for c in configs),
            flush=True,
        )
    idle_after = idle_rates(backends)  # at rest again: the mean of both, should it have drifted
    for config, a in acc.items():
        pids = backends[config].pids
        a["backend_idle"] = a["wall"] * (idle.get(pids, 0.0) + idle_after.get(pids, 0.0)) / 2
    return acc


def merged(accs: Sequence[Acc]) -> Acc:
    """The measurements of several JVMs per config as one: results and blocks one after the
    other (each JVM's blocks still paired with the same blocks of the other configs' JVMs
    of its round), CPU ticks and wall time added up."""
    out: Acc = {}
    for acc in accs:
        for config, a in acc.items():
            if config not in out:
                out[config] = {**a, "results": list(a["results"]), "blocks": list(a["blocks"])}
                out[config]["loadavg"] = list(a["loadavg"])
                continue
            o = out[config]
            for key in ("wall", "mine", "trino", "jit", "backend", "backend_idle"):
                o[key] += a[key]
            for key in ("results", "blocks", "loadavg"):
                o[key] += a[key]
            o["system"] = [x + y for x, y in zip(o["system"], a["system"], strict=True)]
    return out


def _summaries(acc: Acc) -> dict[str, Any]:
    out = {}
    for config, a in acc.items():
        summary = summarize({"results": a["results"], "wall": a["wall"]})
        n = max(1, len(a["results"]))
        out[config] = {
            "summary": summary,
            "wall": a["wall"],
            "cpu": cpu_load(([0] * len(a["system"]), 0), (a["system"], a["mine"])),
            "loadavg": f"{min(a['loadavg']):.1f}-{max(a['loadavg']):.1f}",
            "trino_cpu_ms_per_query": 1000 * a["trino"] / TICKS / n,
            "jit_cpu_ms_per_query": 1000 * a["jit"] / TICKS / n,
            "backend_cpu_ms_per_query": 1000 * a["backend"] / TICKS / n,
            "backend_idle_ms_per_query": 1000 * a.get("backend_idle", 0.0) / TICKS / n,
            "block_means_ms": [1000 * m for m in a["blocks"]],
        }
        # paired: the same block of queries on the floor (and on file rules), minutes apart
        if "none" in acc:
            out[config]["block_overhead_pct"] = paired(a["blocks"], acc["none"]["blocks"])
        if "file" in acc and config not in ("none", "file"):
            out[config]["block_over_file_pct"] = paired(a["blocks"], acc["file"]["blocks"])
    return out


def paired(blocks: Sequence[float], reference: Sequence[float]) -> dict[str, float]:
    """Each block's mean over the same block's mean on `reference`, in %: median, min, max."""
    ratios = sorted(100 * (m / f - 1) for m, f in zip(blocks, reference, strict=True))
    return {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1]}


# --- several JVMs per configuration -----------------------------------------------------------

GOAL_PCT = 2.0  # issue 25: the plugin at most 2 % over no access control
METRICS = {
    "latency": "mix: median of the JVM's block means, ms",
    "trino_cpu": "Trino CPU per query, ms",
    "trino_work": "Trino CPU without its JIT compiler, ms/query",
    "total_work": "the same + backend CPU, ms/query",
}


def jvm_values(summary: dict[str, Any]) -> dict[str, float]:
    """One JVM's numbers: the median of its block means (a block hit by a burst of other work
    moves it little) and its CPU per query, its Trino's and its backend's. Trino's is given
    without its JIT compiler's too: compiling is a warm-up cost that still takes a fifth of it
    after 2,000 queries (RESULTS.md, run C) and varies from JVM to JVM, not the plugin's work."""
    trino_cpu = summary["trino_cpu_ms_per_query"]
    trino_work = trino_cpu - summary["jit_cpu_ms_per_query"]
    # less what the backend spends at rest (IDLE_S before and after the blocks): no query causes it
    backend_cpu = max(
        0.0, summary["backend_cpu_ms_per_query"] - summary.get("backend_idle_ms_per_query", 0.0)
    )
    return {
        "latency": statistics.median(summary["block_means_ms"]),
        "trino_cpu": trino_cpu,
        "trino_work": trino_work,
        "backend_cpu": backend_cpu,
        "total_work": trino_work + backend_cpu,
    }


def compare(values: Sequence[float], reference: Sequence[float], limit: float = 0.0) -> dict:
    """`values` (one per JVM of a config) against `reference` (one per JVM of another): the
    difference of their medians over JVMs in % of the reference's, and the JVM-to-JVM spread
    (the wider of the two ranges, max - min, in % of the reference's median). The verdict on
    `diff <= limit`: "above" or "below" `limit` only when the difference is further from it
    than the spread, else "undecided": one JVM's luck cannot decide it."""
    base = statistics.median(reference)
    diff = 100 * (statistics.median(values) / base - 1)
    spread = 100 * max(max(v) - min(v) for v in (values, reference)) / base
    verdict = (
        "above" if diff - spread > limit else "below" if diff + spread < limit else "undecided"
    )
    return {"diff_pct": diff, "spread_pct": spread, "limit_pct": limit, "verdict": verdict}


def comparisons(configs: Sequence[str]) -> list[tuple[str, str, float]]:
    """(config, reference, limit in %) that issue 25's goals ask about, of those measured."""
    pairs = [(c, "none", 0.0) for c in configs if c != "none" and "none" in configs]
    if "plugin" in configs and "none" in configs:
        pairs.append(("plugin", "none", GOAL_PCT))
    if "file" in configs:
        pairs += [(c, "file", 0.0) for c in configs if c not in ("none", "file")]
    pairs += [
        ("plugin", c, 0.0) for c in ("opa", "sidecar") if c in configs and "plugin" in configs
    ]
    return pairs


def jvm_report(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """From each round's summaries (one fresh JVM per config a round): each JVM's numbers, the
    median over JVMs per config, the comparisons with their verdicts, and per round the paired
    blocks' median over `none` (the same blocks, interleaved, on the same machine minutes)."""
    configs = list(rounds[0])
    per_jvm = {c: [jvm_values(r[c]) for r in rounds] for c in configs}
    medians = {
        c: {k: statistics.median(v[k] for v in values) for k in values[0]}
        for c, values in per_jvm.items()
    }
    verdicts = [
        {
            "config": config,
            "reference": reference,
            "metric": metric,
            **compare(
                [v[metric] for v in per_jvm[config]],
                [v[metric] for v in per_jvm[reference]],
                limit,
            ),
        }
        for config, reference, limit in comparisons(configs)
        for metric in METRICS
        if not (limit and metric != "latency")  # the 2 % goal is on the latency
    ]
    paired_rounds = {
        c: [r[c]["block_overhead_pct"]["median"] for r in rounds]
        for c in configs
        if c != "none" and "block_overhead_pct" in rounds[0][c]
    }
    return {"per_jvm": per_jvm, "medians": medians, "verdicts": verdicts, "paired": paired_rounds}


def jvm_markdown(jvms: dict[str, Any]) -> list[str]:
    per_jvm = jvms["per_jvm"]
    k = len(next(iter(per_jvm.values())))
    lines = [
        f"Per JVM ({k} fresh Trinos per config, one per round; latency: the median of the JVM's "
        "block means of the mix; CPU per measured query, from /proc):\n",
        "| config | JVM | latency ms | Trino CPU ms/query | without JIT "
        "| backend CPU ms/query, less at rest |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for config, values in per_jvm.items():
        for j, v in enumerate([*values, jvms["medians"][config]]):
            jvm = str(j + 1) if j < k else "**median**"
            lines.append(
                f"| {config} | {jvm} | {v['latency']:.0f} | {v['trino_cpu']:.1f} "
                f"| {v['trino_work']:.1f} | {v['backend_cpu']:.2f} |"
            )
    lines += [
        "",
        "Against the JVM-to-JVM spread (difference of the medians over JVMs, in % of the "
        "reference's; spread: the wider of the two configs' max - min; decided only when the "
        "difference is further from the limit than the spread):\n",
        "| config | against | metric | difference | spread | limit | verdict |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for v in jvms["verdicts"]:
        lines.append(
            f"| {v['config']} | {v['reference']} | {METRICS[v['metric']]} "
            f"| {v['diff_pct']:+.1f} % | ±{v['spread_pct']:.1f} % | {v['limit_pct']:+.0f} % "
            f"| {v['verdict']} |"
        )
    if jvms["paired"]:
        lines += ["", "Per round, the paired blocks' median over none (each round's JVMs):\n"]
        for config, values in jvms["paired"].items():
            lines.append(
                f"* {config}: {', '.join(f'{x:+.1f} %' for x in values)} "
                f"(median {statistics.median(values):+.1f} %)"
            )
    lines.append("")
    return lines


def counting(
    work: Path,
    ports: dict[str, int],
    world: tw.World,
    pg: Postgres,
    per_kind: int,
    config: str = "sidecar",
) -> dict[str, Any]:
    print(f"--- counting the calls of {config} per query (sidecar behind a proxy)", flush=True)
    with backend("sidecar", work, ports):
        proxy = CountingProxy(free_port(), ports["sidecar"])
        try:
            proxy_url = f"http://127.0.0.1:{proxy.server.server_address[1]}"
            with running(
                make_trino(work, f"count-{config}", config, proxy_url, world, pg)
            ) as server:
                server.wait_ready(tw.ADMIN)
                time.sleep(1)
                runs = 2 if config == "plugin" else 1
                return count_calls(server, proxy, world, per_kind, runs)
        finally:
            proxy.close()


if __name__ == "__main__":
    sys.exit(main())
