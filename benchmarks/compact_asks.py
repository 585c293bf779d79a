"""What the product plugin's cold asks cost a sidecar worker (issue 25): CPU per request to the
compact endpoint `POST /v1/pdp/decisions`, against the same decisions asked through the OPA
endpoints as the stock plugin asks them.

    .venv/bin/python benchmarks/compact_asks.py                  # this tree and `main`, ~2 min
    .venv/bin/python benchmarks/compact_asks.py --before /tmp/before --json /tmp/compact.json
    .venv/bin/python benchmarks/compact_asks.py --repeat 30 --rounds 1   # a quick look

The world is run.py's (generate.py: 2,000 tables, 500 users, 300 policies) with
datapolicies.py's masks and row filters. Each tree (this one, and `git archive main` unless
`--before` names another) is measured in a process of its own, rounds alternating between the
trees. In a tree's process: the PDP (`start_pdp`, on loopback) and a sidecar (`Sidecar.start`,
as a uvicorn worker builds it) from the same files, and the sidecar's own HTTP protocol
(`GuardedHttpTools` on uvloop, one keep-alive connection) fed raw HTTP requests, with a
transport that takes the answer. So a request costs what it costs a worker from its bytes to
its answer's: HTTP parsing, the answer from memory or the ASGI cycle, the endpoint.

Every request is cold as the plugin's cold requests are: the users' views are held (fetched
before timing), the decisions are new to the sidecar (each user and table once in the run).
The cases, each a compact request and the OPA requests that decide the same:

* select: `SelectFromColumns` of up to 10 columns (`/allow`);
* rowFilters: `GetRowFilters` (`/rowFilters`);
* masks: `GetColumnMask` of up to 10 typed columns (`/batchColumnMasks`);
* point SELECT: the three in one compact request (three OPA requests);
* FilterTables of 100 tables (one `/batch`);
* FilterColumns of 100 tables: 100 asks in one compact request (100 `/batch` requests).

Before timing, every case's compact answers are compared with the OPA endpoints' for the same
decisions (other users than the timed ones): a fast wrong answer fails the run. CPU is the
thread's (`time.thread_time`) per request (summed over a case's OPA requests); the median of
`--repeat` requests per case and path is kept per round. No server is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import datapolicies  # noqa: E402  (benchmarks/ is not a package)
import generate  # noqa: E402

DECISIONS = b"/v1/pdp/decisions"
OPA = b"/v1/data/trino/"
COLUMNS = 10  # of a point SELECT: selected, and masked
LISTING = 100  # tables of a FilterTables or FilterColumns call
CHECKED_USERS = 5  # users whose answers are compared, apart from the timed ones
CASES = ("select", "rowFilters", "masks", "point SELECT", "FilterTables 100", "FilterColumns 100")
TABLES_PER_CASE = {"FilterTables 100": LISTING, "FilterColumns 100": LISTING}
OPA_REQUESTS = {"point SELECT": 3, "FilterColumns 100": LISTING}  # 1 for the others


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=100, help="requests per case and path")
    parser.add_argument("--users", type=int, default=60, help="users asking (views warmed)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per tree")
    parser.add_argument("--before", type=Path, help="tree to compare with (default: main)")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = uvloop.run(measure(args.child, args.repeat, args.users))  # as the workers run
        print(json.dumps(result))
        return 0
    work = Path(tempfile.mkdtemp(prefix="pdp-compact-"))
    try:
        before = args.before.resolve() if args.before else archive("main", work / "main")
        world = generate.build_world()
        generate.write_config(world, work / "world", 0, 0)
        datapolicies.add_data_policies(work / "world")
        results: dict[str, Any] = {"conditions": conditions(), "before": [], "after": []}
        for number in range(args.rounds):
            for name, tree in (("before", before), ("after", REPO)):
                result = child(tree, work / "world", args.repeat, args.users)
                results[name].append(result)
                print(f"  {name} round {number + 1}: {summary(result)}", file=sys.stderr)
        results["conditions"]["load after"] = os.getloadavg()
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        print(markdown(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def archive(commit: str, into: Path) -> Path:
    into.mkdir(parents=True)
    tar = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar.stdout, check=True)
    return into


def child(tree: Path, world: Path, repeat: int, users: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(world)]
    command += ["--repeat", str(repeat), "--users", str(users)]
    (world / "metrics").mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "SIDECAR_METRICS_DIR": str(world / "metrics")}
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.splitlines()[-1])  # the last line: what the child measured


def conditions() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "load before": os.getloadavg(),
        "versions": {p: version(p) for p in ("uvicorn", "httptools", "uvloop", "orjson")},
    }


# --- the requests -------------------------------------------------------------------------------


def http_request(path: bytes, body: bytes) -> bytes:
    head = b"POST %s HTTP/1.1\r\nhost: sidecar\r\ncontent-type: application/json\r\n" % path
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


def compact_body(user: generate.User, asks: list[dict[str, Any]]) -> bytes:
    identity = {"user": user.name, "groups": sorted(user.groups)}
    return orjson.dumps({"identity": identity, "asks": asks})


def opa_body(user: generate.User, action: dict[str, Any], query: int) -> bytes:
    return generate.body(user, action, f"20261207_000000_{query:05d}_bench")


def columns(t: generate.Table) -> list[tuple[str, str]]:
    return list(t.columns[:COLUMNS])


def select_ask(t: generate.Table) -> dict[str, Any]:
    names = [name for name, _ in columns(t)]
    return {"operation": "SelectFromColumns", "resource": generate.table_ref(t, names)}


def row_filters_ask(t: generate.Table) -> dict[str, Any]:
    return {"operation": "GetRowFilters", "resource": generate.table_ref(t)}


def masks_ask(t: generate.Table) -> dict[str, Any]:
    ref = {"catalogName": t.catalog, "schemaName": t.schema, "tableName": t.name}
    items = [{"column": {**ref, "columnName": c, "columnType": k}} for c, k in columns(t)]
    return {"operation": "GetColumnMask", "filterResources": items}


def filter_tables_ask(tables: list[generate.Table]) -> dict[str, Any]:
    return {"operation": "FilterTables", "filterResources": [generate.table_ref(t) for t in tables]}


def filter_columns_ask(t: generate.Table) -> dict[str, Any]:
    names = [name for name, _ in t.columns]
    return {"operation": "FilterColumns", "filterResources": [generate.table_ref(t, names)]}


Requests = list[tuple[bytes, bytes]]  # (path, body)


def case_requests(
    case: str, user: generate.User, tables: list[generate.Table], query: int
) -> tuple[Requests, Requests]:
    """(the compact request, the OPA requests) of one case on fresh tables."""
    t = tables[0]
    opa: Requests
    if case == "select":
        asks, opa = [select_ask(t)], [(b"allow", opa_body(user, select_ask(t), query))]
    elif case == "rowFilters":
        asks = [row_filters_ask(t)]
        opa = [(b"rowFilters", opa_body(user, row_filters_ask(t), query))]
    elif case == "masks":
        asks = [masks_ask(t)]
        opa = [(b"batchColumnMasks", opa_body(user, masks_ask(t), query))]
    elif case == "point SELECT":
        asks = [select_ask(t), row_filters_ask(t), masks_ask(t)]
        opa = [
            (b"allow", opa_body(user, asks[0], query)),
            (b"rowFilters", opa_body(user, asks[1], query)),
            (b"batchColumnMasks", opa_body(user, asks[2], query)),
        ]
    elif case == "FilterTables 100":
        asks = [filter_tables_ask(tables)]
        opa = [(b"batch", opa_body(user, asks[0], query))]
    else:  # FilterColumns 100: one ask per table, as the plugin sends them
        asks = [filter_columns_ask(one) for one in tables]
        opa = [(b"batch", opa_body(user, ask, query)) for ask in asks]
    return [(DECISIONS, compact_body(user, asks))], [(OPA + path, body) for path, body in opa]


def compact_as_opa(compact: bytes) -> list[Any]:
    """The compact answers in the OPA endpoints' terms, to compare the two."""
    answers = orjson.loads(compact)["answers"]
    found: list[Any] = []
    for answer in answers:
        if "allowed" in answer:
            found.append(answer["allowed"])
        elif "indices" in answer:
            found.append(answer["indices"])
        elif "rowFilters" in answer:
            found.append([{"expression": e} for e in answer["rowFilters"]])
        else:
            found.append(
                [
                    {"index": i, "viewExpression": {"expression": e}}
                    for i, e in enumerate(answer["masks"])
                    if e is not None
                ]
            )
    return found


# --- in a tree's own process ----------------------------------------------------------------------


class Wire(asyncio.Transport):
    """The connection's client side: each write is one whole answer (the sidecar writes head and
    body at once, from memory and through ASGI alike)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: asyncio.Future[bytes] | None = None
        self.closed = False

    def write(self, data: Any) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8181)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def measure(world: Path, repeat: int, user_count: int) -> dict[str, Any]:
    import uvicorn
    from uvicorn.server import ServerState

    from pdp.core.model import Identity
    from pdp.service.config import load_pdp_config
    from pdp.service.run import start_pdp
    from sidecar.app import Sidecar, SidecarApp
    from sidecar.config import load_sidecar_config
    from sidecar.http import GuardedHttpTools

    pdp = await start_pdp(load_pdp_config(world / "pdp.yaml"), "127.0.0.1:0")
    yaml = orjson.loads((world / "sidecar.yaml").read_bytes())
    yaml["pdp"]["target"] = f"127.0.0.1:{pdp.port}"
    (world / f"sidecar-{os.getpid()}.yaml").write_bytes(orjson.dumps(yaml))
    config = load_sidecar_config(world / f"sidecar-{os.getpid()}.yaml")
    app = SidecarApp(config)
    sidecar = app.sidecar = await Sidecar.start(config)
    try:
        deadline = time.monotonic() + 30
        while sidecar.answers.revision is None:  # the watch's first word
            if time.monotonic() > deadline:
                raise SystemExit("the sidecar heard no revision from the PDP in 30 s")
            await asyncio.sleep(0.01)
        server = uvicorn.Config(
            app,
            http=GuardedHttpTools,
            ws="none",
            lifespan="off",
            proxy_headers=False,
            access_log=False,
        )
        protocol = GuardedHttpTools(server, ServerState(), {}, asyncio.get_running_loop())
        wire = Wire()
        protocol.connection_made(wire)

        async def send(path: bytes, body: bytes) -> tuple[bytes, float]:
            wire.answer = asyncio.get_running_loop().create_future()
            start = time.thread_time()
            protocol.data_received(http_request(path, body))
            answer = await wire.answer
            cpu = time.thread_time() - start
            head, _, payload = answer.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"{path!r}: {answer[:300]!r}")
            return payload, cpu

        built = generate.build_world()
        tables = [t for t in built.tables if t.active]
        users = list(built.users[: user_count + CHECKED_USERS])
        for user in users:  # views held: cold requests of users the sidecar knows
            await sidecar.answers.view(Identity(user.name, frozenset(user.groups)))
        fresh = Fresh(tables, users)
        checked = await check(fresh, users[user_count:], send)
        timed = users[:user_count]
        cpu: dict[str, dict[str, list[float]]] = {
            case: {"compact": [], "opa": []} for case in CASES
        }
        for number in range(repeat):
            for case in CASES:  # interleaved: drift hits every case and path alike
                for path in ("compact", "opa"):
                    user = min(timed, key=fresh.used)  # the one with the most tables left
                    pair = case_requests(case, user, fresh.take(user, case), number)
                    spent = 0.0
                    for target, body in pair[0] if path == "compact" else pair[1]:
                        spent += (await send(target, body))[1]
                    cpu[case][path].append(spent)
        protocol.connection_lost(None)
        return {
            "checked": checked,
            "median": {
                c: {p: statistics.median(v) for p, v in paths.items()} for c, paths in cpu.items()
            },
            "p90": {
                c: {p: statistics.quantiles(v, n=10)[-1] for p, v in paths.items()}
                for c, paths in cpu.items()
            },
        }
    finally:
        await sidecar.stop()
        await pdp.stop()


class Fresh:
    """Tables each user has not been asked about yet, in the order of the world's tables."""

    def __init__(self, tables: list[generate.Table], users: list[generate.User]) -> None:
        self._tables = tables
        self._next = {user.name: 0 for user in users}

    def used(self, user: generate.User) -> int:
        return self._next[user.name]

    def take(self, user: generate.User, case: str) -> list[generate.Table]:
        count = TABLES_PER_CASE.get(case, 1)
        start = self._next[user.name]
        if start + count > len(self._tables):
            raise SystemExit(f"{user.name} has asked about every table: use more --users")
        self._next[user.name] = start + count
        return self._tables[start : start + count]


async def check(
    fresh: Fresh,
    users: list[generate.User],
    send: Callable[[bytes, bytes], Any],
) -> int:
    """Each case's compact answers against the OPA endpoints' for the same decisions (the
    compact request first, then the OPA ones on the same tables)."""
    compared = 0
    for user in users:
        for case in CASES:
            compact, opa = case_requests(case, user, fresh.take(user, case), 0)
            found = compact_as_opa((await send(*compact[0]))[0])
            expected = [orjson.loads((await send(path, body))[0])["result"] for path, body in opa]
            if found != expected:
                raise SystemExit(f"{case} for {user.name}: compact {found} != OPA {expected}")
            compared += len(expected)
    return compared


# --- the report ---------------------------------------------------------------------------------


def summary(result: dict[str, Any]) -> str:
    return ", ".join(
        f"{case}: compact {paths['compact'] * 1e6:.0f} µs, OPA {paths['opa'] * 1e6:.0f} µs"
        for case, paths in result["median"].items()
    )


def markdown(results: dict[str, Any]) -> str:
    def median(name: str, case: str, path: str) -> float:
        return statistics.median(r["median"][case][path] for r in results[name]) * 1e6

    c = results["conditions"]
    load = ", ".join(f"{x:.1f}" for x in c["load before"])
    after_load = ", ".join(f"{x:.1f}" for x in c["load after"])
    lines = [
        f"{c['date']}; {c['cpus']} CPUs; load average {load} at the start, {after_load} at the "
        f"end; {len(results['after'])} rounds per tree; answers compared: "
        f"{results['after'][0]['checked']} per round.",
        "",
        "| CPU per call, µs (median of the rounds' medians) | OPA requests | OPA endpoints "
        "| compact, before | compact, after | after / before | compact after / OPA |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in CASES:
        opa = median("after", case, "opa")
        before, after = median("before", case, "compact"), median("after", case, "compact")
        requests = OPA_REQUESTS.get(case, 1)
        lines.append(
            f"| {case} | {requests} | {opa:,.0f} | {before:,.0f} | {after:,.0f} | "
            f"{after / before:.2f} | {after / opa:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
