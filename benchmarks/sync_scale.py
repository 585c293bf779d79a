"""Benchmark (not a test): object sync at scale, through the real job runner.

    .venv/bin/python benchmarks/sync_scale.py [--sizes 10000,50000,100000] [--real-tables 10000]
        [--parts a,b,c,d,e] [--backend both]

`store_sync.py` times the store write alone; this times whole sync jobs (`SyncRunner`: lock,
job record, crawl, one store write with the job's end), each in a child process of its own so
that its peak RSS is its own:

(a) full sync of a generated connection (`store_sync.world`: one catalog, schemas of 1,000
    tables of 5 columns) behind the crawler seam, at each of `--sizes`, into an SQLite store and
    a PostgreSQL store; listing time (inside `Crawler.list`) apart from the rest;
(b) `--real-tables` real PostgreSQL tables (schemas of 1,000, 4 columns each) created in a
    throwaway cluster and synced through the real PostgreSQL crawler (`platform_crawlers`);
(c) after (a) and (b): an incremental sync with a handful of changes (3 tables new, 2 gone, a
    column added, a type changed);
(d) after (c): a sync that changes nothing: asserts that the compiled registry, hence the
    revision, is unchanged, and prints the store version (the job record still takes its two
    writes);
(e) a real PDP process (`pdp serve`, the store in the cluster) and a real sidecar: new tables
    created, a sync started through the admin API, the sidecar polled every 20 ms until it
    allows the new table; the gap from the job's end (`endedAt`) to that first answer.

PostgreSQL runs in a throwaway cluster (devstack.postgres), or the server PDP_TEST_POSTGRES
names. Wall clock and this process's CPU; PostgreSQL's own CPU is not in the latter."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.store_sync import world
from devstack import postgres
from pdp.control import SyncRunner, platform_crawlers
from pdp.control.snapshot import registry_digest
from pdp.crawl.base import Check, Checks, Crawler
from pdp.objects import ObjectPath
from pdp.objects.syncplan import Listing, RemoteColumn, RemoteObject
from pdp.store import ConnectionRecord, Job, Store, read_registry

KEY = "bench"
Names = tuple[str, ...]


# --- the crawler seam ------------------------------------------------------------------------


class GeneratedCrawler:
    """A platform of generated listings (`store_sync.world`), by parent; mutable."""

    technology = "trino"

    def __init__(self, tables: int, columns: int = 5) -> None:
        self.listings: dict[Names, Listing] = {
            listing.parent: listing for listing in world(tables, columns)
        }

    def list(self, parent: Names) -> Listing:
        found = self.listings.get(parent)
        return found if found is not None else Listing.failed(parent, "no such container")

    def check(self) -> Checks:
        return [Check("generated", True)]

    def close(self) -> None:
        pass

    def change_a_handful(self) -> None:
        """3 tables new, 2 gone, a column added to one, a type changed in another."""
        parent = ("lake", "s0000")
        children = list(self.listings[parent].children or ())
        del children[0:2]
        first, second = children[0], children[1]
        columns = first.columns or ()
        added = RemoteColumn("added", "bigint", True, len(columns) + 1)
        children[0] = RemoteObject(first.name, first.remote_type, (*columns, added))
        cols = list(second.columns or ())
        cols[0] = RemoteColumn(cols[0].name, "bigint", True, 1)
        children[1] = RemoteObject(second.name, second.remote_type, tuple(cols))
        children += [RemoteObject(f"fresh{i}", "BASE TABLE", columns) for i in range(3)]
        self.listings[parent] = Listing(parent, tuple(children))


class Timed:
    """Wraps a crawler: the time spent inside `list` (the platform's share of a sync)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.technology = crawler.technology
        self.seconds = 0.0
        self.calls = 0

    def list(self, parent: Names) -> Listing:
        start = time.perf_counter()
        try:
            return self.crawler.list(parent)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def check(self) -> Checks:
        return self.crawler.check()

    def close(self) -> None:
        self.crawler.close()


# --- one child process: jobs, timed ------------------------------------------------------------


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_job(store: Store, factory: Callable[[ConnectionRecord], Crawler]) -> tuple[Job, float]:
    runner = SyncRunner(store, factory)
    start = time.perf_counter()
    job = runner.start(ObjectPath(KEY))
    assert job is not None
    runner.join(3600)
    seconds = time.perf_counter() - start
    with store.read() as reader:
        done = reader.job(job.id)
    assert done.state.value == "completed", (done.state, done.errors[:3])
    return done, seconds


def measured(
    label: str, store: Store, factory: Callable[[ConnectionRecord], Crawler], timer: list[Timed]
) -> dict[str, Any]:
    timer.clear()
    cpu = time.process_time()
    job, seconds = run_job(store, factory)
    listing = sum(t.seconds for t in timer)
    return {
        "step": label,
        "wall": round(seconds, 3),
        "listing": round(listing, 3),
        "rest": round(seconds - listing, 3),
        "cpu": round(time.process_time() - cpu, 3),
        "listings": sum(t.calls for t in timer),
        "peakRssMb": round(rss_mb(), 1),
        "stats": {k: v for k, v in job.stats.items() if not k.endswith(".unchanged")},
    }


def child(args: argparse.Namespace) -> None:
    results: list[dict[str, Any]] = []
    store = Store.open(args.store)
    timers: list[Timed] = []
    generated: GeneratedCrawler | None = None
    with store.write() as writer:
        if args.child == "generated":
            writer.register_connection(
                KEY, "trino", is_active=True, activate_new_children=True, endpoint={"host": "g"}
            )
        else:
            endpoint = json.loads(args.endpoint)
            writer.register_connection(
                KEY,
                "postgresql",
                endpoint=endpoint,
                credentials={"user": "postgres"},
                is_active=True,
                activate_new_children=True,
            )
    if args.child == "generated":
        start = time.perf_counter()
        generated = GeneratedCrawler(args.tables)
        made = generated

        def factory(record: ConnectionRecord) -> Crawler:
            timed = Timed(made)
            timers.append(timed)
            return timed

        results.append(
            {
                "step": "generate the platform",
                "wall": round(time.perf_counter() - start, 3),
                "rssMb": round(current_rss_mb(), 1),
            }
        )
    else:
        real = platform_crawlers(store)

        def factory(record: ConnectionRecord) -> Crawler:
            timed = Timed(real(record))
            timers.append(timed)
            return timed

    results.append({**measured("full sync", store, factory, timers), "tables": args.tables})
    if args.incremental:
        if generated is not None:
            generated.change_a_handful()
        else:
            change_real_tables(json.loads(args.endpoint))
        results.append(measured("incremental (a handful of changes)", store, factory, timers))
        before_version = store.version()
        before = registry_digest(read_registry(store))
        step = measured("unchanged sync", store, factory, timers)
        after = registry_digest(read_registry(store))
        assert after == before, "an unchanged sync changed the compiled registry"
        step["registryDigestUnchanged"] = after == before
        step["storeVersionDelta"] = store.version() - before_version
        results.append(step)
    store.close()
    print(json.dumps(results))


# --- real PostgreSQL tables ----------------------------------------------------------------------


def create_real_tables(pg: postgres.Postgres, database: str, tables: int) -> float:
    start = time.perf_counter()
    with pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    with pg.connect(database) as conn:
        for s in range(max(1, tables // 1000)):
            count = min(1000, tables - s * 1000)
            conn.execute(
                f"""DO $$ BEGIN
                CREATE SCHEMA s{s:02};
                FOR i IN 0..{count - 1} LOOP
                  EXECUTE format('CREATE TABLE s{s:02}.t%s (id bigint NOT NULL, name text,
                    amount numeric(12, 2), at timestamptz)', lpad(i::text, 4, '0'));
                END LOOP; END $$"""
            )
    return time.perf_counter() - start


def change_real_tables(endpoint: Mapping[str, Any]) -> None:
    conninfo = f"host={endpoint['host']} port={endpoint['port']} user=postgres"
    import psycopg

    with psycopg.connect(f"{conninfo} dbname={endpoint['database']}", autocommit=True) as conn:
        for statement in (
            "CREATE TABLE s00.fresh0 (id int)",
            "CREATE TABLE s00.fresh1 (id int)",
            "CREATE TABLE s01.fresh2 (id int)",
            "DROP TABLE s00.t0000",
            "DROP TABLE s01.t0000",
            "ALTER TABLE s00.t0001 ADD COLUMN added bigint",
            "ALTER TABLE s00.t0002 ALTER COLUMN name TYPE varchar(80)",
        ):
            conn.execute(statement)


# --- the parent ------------------------------------------------------------------------------


def spawn(*args: str) -> list[dict[str, Any]]:
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


@contextmanager
def stores(pg: postgres.Postgres, backends: list[str], scratch: Path) -> Iterator[dict[str, str]]:
    urls: dict[str, str] = {}
    with pg.scratch_database() as pg_url:
        if "sqlite" in backends:
            urls["sqlite"] = f"sqlite:///{scratch / uuid.uuid4().hex[:8]}.db"
        if "postgresql" in backends:
            urls["postgresql"] = pg_url
        yield urls


def report(label: str, results: list[dict[str, Any]]) -> None:
    print(f"{label}", flush=True)
    for r in results:
        if "listing" in r:
            extra = ""
            if r.get("tables"):
                extra = f"  {1e6 * r['rest'] / r['tables']:6.1f} us/table outside listing"
            if "storeVersionDelta" in r:
                extra += (
                    f"  registry digest unchanged: {r['registryDigestUnchanged']}, "
                    f"store version +{r['storeVersionDelta']} (job record)"
                )
            print(
                f"  {r['step']:<36} {r['wall']:7.2f} s wall  listing {r['listing']:6.2f} s  "
                f"rest {r['rest']:6.2f} s  CPU {r['cpu']:6.2f} s  peak RSS "
                f"{r['peakRssMb']:6.0f} MB{extra}",
                flush=True,
            )
            print(f"    stats: {r['stats']}", flush=True)
        else:
            print(f"  {r['step']:<36} {r['wall']:7.2f} s  RSS {r['rssMb']:.0f} MB", flush=True)


def part_a(pg: postgres.Postgres, sizes: list[int], backends: list[str], scratch: Path) -> None:
    for size in sizes:
        with stores(pg, backends, scratch) as urls:
            for backend, url in urls.items():
                extra = ["--incremental"] if size == max(sizes) else []
                results = spawn(
                    "--child", "generated", "--tables", str(size), "--store", url, *extra
                )
                report(f"(a) generated {size} tables x 5 columns -> {backend} store", results)


def part_b(
    pg: postgres.Postgres, real: str, tables: int, backends: list[str], scratch: Path
) -> None:
    endpoint = json.dumps({"host": pg.host, "port": pg.port, "database": real})
    with stores(pg, backends, scratch) as urls:
        for backend, url in urls.items():
            results = spawn(
                "--child",
                "postgres",
                "--tables",
                str(tables),
                "--store",
                url,
                "--endpoint",
                endpoint,
                *(["--incremental"] if backend == backends[-1] else []),
            )
            report(f"(b) {tables} real PostgreSQL tables x 4 columns -> {backend} store", results)


# --- (e) a real PDP and sidecar ------------------------------------------------------------------

POLICIES = """
policies:
  - name: bench-readers
    access: READ
    who: {users: [alice]}
    what: {tags: [Connections.PostgreSQL.bench]}
"""
USERS = "users:\n  alice: {}\n  gov: {permissions: [GOVERNANCE, APPLICATION_ADMIN]}\n"
CLOSED = "immuta.allowed.non.immuta.datasource.operations=WRITE\n"


def allow_body(schema: str, table: str) -> dict[str, Any]:
    resource = {"catalogName": "pgcat", "schemaName": schema, "tableName": table, "columns": ["id"]}
    return {
        "input": {
            "context": {
                "identity": {"user": "alice", "groups": []},
                "softwareStack": {"trinoVersion": "476"},
            },
            "action": {"operation": "SelectFromColumns", "resource": {"table": resource}},
        }
    }


def part_e(pg: postgres.Postgres, real: str, rounds: int, scratch: Path) -> None:
    from devstack.configs import make_tree
    from devstack.processes import free_port, start_pdp, start_sidecar

    root = scratch / "e"
    root.mkdir()
    tree = make_tree(
        root, registry="connections: []\n", policies=POLICIES, users=USERS, properties=CLOSED
    )
    with pg.scratch_database() as url:
        store = Store.open(url)
        with store.write() as writer:
            writer.register_connection(
                KEY,
                "postgresql",
                endpoint={"host": pg.host, "port": pg.port, "database": real},
                credentials={"user": "postgres"},
                settings={"trinoCatalogs": {real: "pgcat"}},
                is_active=True,
                activate_new_children=True,
            )
        grpc_port, admin_port, port = free_port(), free_port(), free_port()
        yaml = tree.pdp_yaml(grpc_port)
        yaml.write_text(
            yaml.read_text()
            + f"clusterProperties: {tree.properties.name}\n"  # type: ignore[union-attr]
            + f"store: {url}\n"
            + f"admin: {{listen: '127.0.0.1:{admin_port}', trustUserHeader: true}}\n"
        )
        pdp = start_pdp(yaml, grpc_port)
        sidecar = None
        try:
            sidecar = start_sidecar(tree.sidecar_yaml(port, grpc_port), port)
            admin = httpx.Client(
                base_url=f"http://127.0.0.1:{admin_port}", headers={"X-Pdp-User": "gov"}
            )
            pdp.wait_until(lambda: _up(admin), timeout=60)
            side = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)

            def crawl() -> dict[str, Any]:
                answer = admin.post(f"/data/crawl/{KEY}", json={})
                assert answer.status_code == 202, answer.text
                return _wait(admin, answer.json()["jobId"])

            job = crawl()
            print(
                f"(e) first sync through the PDP process: {_seconds(job):.2f} s, "
                f"{job['stats'].get('table.added')} tables",
                flush=True,
            )
            known = allow_body("s00", "t0005")
            _until(lambda: side.post("/v1/data/trino/allow", json=known).json()["result"], 60)
            stable = admin.get("/health").json()["revision"]
            crawl()
            time.sleep(1.0)
            unchanged = admin.get("/health").json()["revision"] == stable
            print(f"(e) unchanged sync: revision {stable} kept: {unchanged}", flush=True)
            assert unchanged
            gaps = []
            for i in range(rounds):
                table = f"late{i}"
                with pg.connect(real) as conn:
                    conn.execute(f"CREATE TABLE s00.{table} (id int)")
                body = allow_body("s00", table)
                assert side.post("/v1/data/trino/allow", json=body).json()["result"] is False
                seen: list[float] = []
                stop = threading.Event()

                def watch(
                    body: dict[str, Any] = body,
                    seen: list[float] = seen,
                    stop: threading.Event = stop,
                ) -> None:
                    while not stop.is_set():
                        if side.post("/v1/data/trino/allow", json=body).json()["result"]:
                            seen.append(time.time())
                            return
                        time.sleep(0.02)

                watcher = threading.Thread(target=watch, daemon=True)
                watcher.start()
                job = crawl()
                watcher.join(30)
                stop.set()
                assert seen, "the sidecar never allowed the new table"
                ended = datetime.fromisoformat(job["endedAt"]).timestamp()
                gaps.append(seen[0] - ended)
                published = _published(pdp.output(), admin.get("/health").json()["revision"])
                split = ""
                if published is not None:
                    split = (
                        f" (PDP published the revision after {published - ended:.3f} s, "
                        f"the sidecar answered {seen[0] - published:.3f} s later)"
                    )
                print(
                    f"  round {i}: sync {_seconds(job):.2f} s, job end -> sidecar answer "
                    f"{seen[0] - ended:.3f} s{split}",
                    flush=True,
                )
            gaps.sort()
            print(
                f"(e) job end -> first sidecar answer from the new revision, {rounds} rounds: "
                f"median {gaps[len(gaps) // 2]:.3f} s, max {gaps[-1]:.3f} s",
                flush=True,
            )
            side.close()
            admin.close()
        finally:
            if sidecar is not None:
                sidecar.stop()
            pdp.stop()
            store.close()


def _published(log: str, revision: str) -> float | None:
    """When the PDP's log says it published `revision` (its asctime: local time, ms)."""
    for line in log.splitlines():
        if f"revision {revision} (store version" in line:
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def _up(admin: httpx.Client) -> bool:
    try:
        return admin.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def _wait(admin: httpx.Client, job_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = admin.get(f"/jobs/{job_id}").json()
        if job["state"] in ("completed", "failed", "cancelled"):
            assert job["state"] == "completed", job
            return dict(job)
        time.sleep(0.02)
    raise TimeoutError(job_id)


def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def _seconds(job: Mapping[str, Any]) -> float:
    start = datetime.fromisoformat(job["startedAt"] or job["createdAt"])
    return (datetime.fromisoformat(job["endedAt"]) - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--real-tables", type=int, default=10_000)
    parser.add_argument("--parts", default="a,b,c,d,e")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=5, help="(e): new tables, one at a time")
    parser.add_argument("--child", choices=("generated", "postgres"), help=argparse.SUPPRESS)
    parser.add_argument("--tables", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--incremental", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    parts = set(args.parts.split(","))
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as directory, postgres.server() as pg:
        scratch = Path(directory)
        if "a" in parts:
            part_a(pg, sizes, backends, scratch)
        if parts & {"b", "e"}:
            real = f"realbench_{uuid.uuid4().hex[:6]}"
            seconds = create_real_tables(pg, real, args.real_tables)
            print(f"created {args.real_tables} real tables in {seconds:.1f} s", flush=True)
            try:
                if "b" in parts:
                    part_b(pg, real, args.real_tables, backends, scratch)
                if "e" in parts:
                    part_e(pg, real, args.rounds, scratch)
            finally:
                with pg.connect() as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{real}" WITH (FORCE)')
    print(f"load average at the end {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
