"""Bodies seen and never seen: the sidecar against a real OPA and a Go map server, on the world of
the Trino benchmark, with request bodies it has answered before and with bodies new to it.

    .venv/bin/python -m benchmarks.unseen_bodies            # about 8 minutes

The backends, all started here: the sidecar (`pdp up`, 2 workers) with its PDP, a real OPA
running `opa/trino.rego` over `opa-data.json`, and `gopolicy` (the same policy by hand in Go,
one Go thread). The bodies: 2,001 single checks (667 queries of ExecuteQuery, AccessCatalog and
SelectFromColumns; a random user, 60 % a table the user was granted) and 300 FilterTables
batches of 100 consecutive tables.

A body is new when its cache key is: the queryId is not in any key, so a fresh one is not
enough. Every backend folds catalog, schema and table names to lower case (Trino sends them in
lower case), so the catalog name `postgresql` with some letters in upper case names the same
catalog: the decision stays the one the world's policies give, checkable, while the key (and the
body) is one the sidecar never saw. ExecuteQuery names no object; its new bodies carry one more
group, `new-<n>`, which no policy names and which an identity check does not read. Every
(body, variant) pair is sent once per server over the whole run (`wrk/cycle.lua`).

Before timing, every body, seen and new, is sent to each backend and the answers must equal
the world's (`trino_world.World.can_read`): all three agree on every answer. Then rounds of
interleaved `wrk -t1` runs (seen cases first, then new ones, each case on the three backends in
turn): single checks at 32 connections and at 1, batches at 32; and last, "no lasting
slowdown": the sidecar's cached batch rate before and after 10 s of new batch bodies, twice.
The load of the machine is recorded with every run (CPU taken by processes outside the
benchmark, steal, load average); ratios are taken between runs of the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import run  # noqa: E402
from benchmarks import trino_world as tw  # noqa: E402
from benchmarks.trino_bench import (  # noqa: E402
    REGO,
    _pick_readable,
    gopolicy_binary,
    gopolicy_command,
    opa_binary,
)

generate = run.generate  # the module run.py imported: its body builders
ALLOW, BATCH = run.ALLOW, run.BATCH
SERVERS = ("sidecar", "opa", "go")
WORD = tw.CATALOG  # its letter case makes a body new (see the module's text)
LETTERS = sum(c.isalpha() for c in WORD)
CHECK_VARIANT = 2**LETTERS - 2  # every letter upper case: sent only by the check before timing
QUERIES, BATCHES, BATCH_SIZE = 667, 300, 100
CHECK_QUERY_ID = "20261207_000000_00001_check"
FILES = ("single.txt", "single-new.txt", "batch.txt", "batch-new.txt")


@dataclass(frozen=True)
class Body:
    template: bytes  # "@C@" for the catalog name, "@G@" for ExecuteQuery's added group
    expected: Any  # the world's answer: a bool (allow) or the allowed indices (batch)


def seen(template: bytes) -> bytes:
    return template.replace(b',"@G@"', b"").replace(b"@C@", WORD.encode())


def new(template: bytes, variant: int) -> bytes:
    """The body `wrk/cycle.lua` sends for `template` as `variant` (the same rule)."""
    mask, bit, out = 1 + variant % (2**LETTERS - 1), 0, []
    for c in WORD:
        if c.isalpha():
            c = c.upper() if mask >> bit & 1 else c
            bit += 1
        out.append(c)
    cased = "".join(out).encode()
    return template.replace(b"@C@", cased).replace(b"@G@", f"new-{variant}".encode())


def bodies(world: tw.World) -> tuple[list[Body], list[Body]]:
    rng = random.Random(tw.SEED + 30)
    columns = tuple((c, "bigint") for c in tw.COLUMNS)
    single: list[Body] = []
    for _ in range(QUERIES):
        name = rng.choice(tw.USERS)
        groups = tuple(world.user_groups.get(name, ()))
        user = generate.User(name, groups)
        _, schema, table = _pick_readable(world, rng, name)
        t = generate.Table("@C@", schema, table, columns)
        picked = rng.sample(tw.COLUMNS, rng.randint(1, len(tw.COLUMNS)))
        single += [
            Body(generate.execute_query(generate.User(name, (*groups, "@G@"))), True),
            Body(generate.access_catalog(user, "@C@"), True),
            Body(
                generate.select(user, t, picked),
                world.can_read(name, (tw.CATALOG, schema, table)),
            ),
        ]
    everything = list(tw.all_tables())
    batch: list[Body] = []
    for _ in range(BATCHES):
        name = rng.choice(tw.USERS)
        user = generate.User(name, tuple(world.user_groups.get(name, ())))
        start = rng.randrange(len(everything) - BATCH_SIZE)
        keys = everything[start : start + BATCH_SIZE]
        tables = [generate.Table("@C@", s, t, columns) for _, s, t in keys]
        expected = [i for i, k in enumerate(keys) if world.can_read(name, k)]
        batch.append(Body(generate.filter_tables(user, tables), expected))
    return single, batch


def write_bodies(work: Path, single: list[Body], batch: list[Body]) -> None:
    for name, kind in (("single", single), ("batch", batch)):
        (work / f"{name}.txt").write_bytes(b"".join(seen(b.template) + b"\n" for b in kind))
        (work / f"{name}-new.txt").write_bytes(
            b"".join(WORD.encode() + b"\t" + b.template + b"\n" for b in kind)
        )


# --- the check before timing ----------------------------------------------------------------


class Client:
    """One keep-alive connection to a backend."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def answer(self, path: str, body: bytes) -> Any:
        self.connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"port {self.port} {path}: {response.status} {data[:300]!r}")
        return json.loads(data).get("result")


def check(ports: dict[str, int], single: list[Body], batch: list[Body]) -> dict[str, Any]:
    """Every body, seen and new (the variant no timed run sends), on every backend: the
    answers must be the world's. A fast wrong answer fails the benchmark here."""
    counts: dict[str, Any] = {}
    for server in SERVERS:
        client = Client(ports[server])
        for path, kind in ((ALLOW, single), (BATCH, batch)):
            for body in kind:
                for raw in (seen(body.template), new(body.template, CHECK_VARIANT)):
                    raw = raw.replace(generate.QID.encode(), CHECK_QUERY_ID.encode())
                    got = client.answer(path, raw)
                    if got != body.expected:
                        raise SystemExit(
                            f"{server} answered {got!r}, the world says {body.expected!r}: {raw!r}"
                        )
        client.connection.close()
        counts[server] = 2 * (len(single) + len(batch))
    allowed = sum(b.expected is True for b in single)
    items = sum(len(b.expected) for b in batch)
    counts["single allowed"] = f"{allowed} of {len(single)}"
    counts["batch items allowed"] = f"{items} of {BATCH_SIZE * len(batch)}"
    return counts


# --- timing ---------------------------------------------------------------------------------


@dataclass
class Offsets:
    """The first variant of the next run, per server and file: a new body is sent once."""

    sizes: dict[str, int]
    next: dict[tuple[str, str], int]

    def take(self, server: str, bodies_file: str, requests: int, connections: int) -> None:
        # wrk may have sent up to one request per connection that did not complete
        n = self.sizes[bodies_file]
        key = (server, bodies_file)
        self.next[key] = self.next.get(key, 0) + -(-(requests + connections) // n)
        if self.next[key] > CHECK_VARIANT:
            raise SystemExit(f"{server} {bodies_file}: out of new variants, shorten the runs")


def timed(
    work: Path, ports: dict[str, int], case: run.Case, seconds: int, offsets: Offsets
) -> dict[str, Any]:
    fresh = case.bodies.endswith("-new.txt")
    extra = [str(offsets.next.get((case.server, case.bodies), 0))] if fresh else []
    load = os.getloadavg()[0]
    result = run.wrk(work, ports, case, seconds, *extra)
    if fresh:
        offsets.take(case.server, case.bodies, result["requests"], case.connections)
    result.update(case=case.name, server=case.server, loadavg=load)
    print(
        f"  {case.name}: {result['rps']:,.0f} req/s, p99 {result['p99_ms']:.2f} ms, "
        f"max {result['max_ms']:.0f} ms, other jobs {result['foreign_pct']:.0f} %, "
        f"load {load:.1f}",
        file=sys.stderr,
        flush=True,
    )
    return result


KINDS = (  # (name, path, seen file, new file, connections)
    ("single c32", ALLOW, "single", 32),
    ("batch c32", BATCH, "batch", 32),
    ("single c1", ALLOW, "single", 1),
)


def cases(freshness: str) -> list[run.Case]:
    suffix = "-new" if freshness == "new" else ""
    return [
        run.Case(f"{server} {freshness} {kind}", server, path, f"{stem}{suffix}.txt", conns)
        for kind, path, stem, conns in KINDS
        for server in SERVERS
    ]


def rounds(
    work: Path, ports: dict[str, int], args: argparse.Namespace, offsets: Offsets
) -> list[dict[str, Any]]:
    results = []
    for number in range(1, args.runs + 1):
        print(f"round {number}", file=sys.stderr, flush=True)
        # the new bodies of the round before evicted what was cached: fill it again, untimed
        for case in cases("seen"):
            if case.server == "sidecar" and case.connections > 1:
                run.wrk(work, ports, case, args.warmup)
        for freshness in ("seen", "new"):
            for case in cases(freshness):
                results.append(
                    {**timed(work, ports, case, args.duration, offsets), "round": number}
                )
    return results


def lasting(
    work: Path, ports: dict[str, int], args: argparse.Namespace, offsets: Offsets
) -> list[dict[str, Any]]:
    """The sidecar's cached batch rate, 10 s of new batch bodies, the cached rate twice more."""
    cached = run.Case("sidecar seen batch c32", "sidecar", BATCH, "batch.txt", 32)
    flood = run.Case("sidecar new batch c32 (flood)", "sidecar", BATCH, "batch-new.txt", 32)
    out = []
    for number in range(1, args.lasting + 1):
        print(f"lasting slowdown {number}", file=sys.stderr, flush=True)
        run.wrk(work, ports, cached, args.warmup)  # untimed: every seen decision cached again
        steps = [("before", cached), ("flood", flood), ("after", cached), ("after again", cached)]
        for step, case in steps:
            seconds = args.flood if step == "flood" else args.duration
            out.append(
                {**timed(work, ports, case, seconds, offsets), "step": step, "round": number}
            )
    return out


# --- in-process CPU per body (--in-process) -------------------------------------------------


def in_process(work: Path, single: list[Body], batch: list[Body], args: argparse.Namespace) -> str:
    """CPU time per body of one sidecar worker (its event loop's thread: not the gRPC client's
    threads), driven in-process through the same calls as its HTTP protocol
    (`answer_from_memory`, then the endpoint), with a real PDP over gRPC: no HTTP, no wrk, so a
    loaded machine inflates the figures little (`--http`: through its HTTP protocol, `Http`).
    `--profile FILE` also writes the cProfile statistics of the new bodies' runs there."""
    import cProfile

    from sidecar.app import ENDPOINTS, Sidecar
    from sidecar.config import load_sidecar_config

    profile = cProfile.Profile() if args.profile else None
    rows: list[tuple[str, float]] = []
    count = iter(range(10**9))

    def query_id(body: bytes) -> bytes:
        """A fresh queryId in each body, as `wrk/cycle.lua` gives (made before timing)."""
        return body.replace(
            generate.QID.encode(), f"20261207_000000_{next(count):05d}_bench".encode()
        )

    async def answer(sidecar: Sidecar, endpoint: str, body: bytes) -> bytes:
        if through is not None:
            return await through.answer(endpoint, body)
        found = sidecar.answer_from_memory(endpoint, body)
        return await ENDPOINTS[endpoint](sidecar, body) if found is None else found

    through: Http | None = None  # --http

    async def timed_run(
        sidecar: Sidecar, label: str, endpoint: str, bodies_: list[bytes], profiled: bool
    ) -> None:
        if profiled and profile is not None:
            profile.enable()
        bodies_ = [query_id(body) for body in bodies_]
        start = time.thread_time()
        for body in bodies_:
            await answer(sidecar, endpoint, body)
        cpu = time.thread_time() - start
        if profiled and profile is not None:
            profile.disable()
        rows.append((label, cpu / len(bodies_) * 1e6))
        print(f"  {label}: {rows[-1][1]:,.1f} us per body", file=sys.stderr, flush=True)

    async def main_() -> None:
        nonlocal through
        sidecar = await Sidecar.start(load_sidecar_config(work / "sidecar.yaml"))
        if args.http:
            through = Http(sidecar)
        try:
            for _ in range(1200):  # the watch's first word: the revision
                if sidecar.answers.revision is not None and not sidecar.answers.away:
                    break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("the PDP did not answer within 120 s")
            plain = {
                "allow": [seen(b.template) for b in single],
                "batch": [seen(b.template) for b in batch],
            }
            # every user's view, every decision cached; every answer, seen and new, the world's
            for endpoint, kind in (("allow", single), ("batch", batch)):
                for b in kind:
                    for raw in (seen(b.template), new(b.template, CHECK_VARIANT)):
                        raw = query_id(raw)
                        got = orjson.loads(await answer(sidecar, endpoint, raw))["result"]
                        if got != b.expected:
                            raise SystemExit(f"answered {got!r}, the world says {b.expected!r}")
            variant = iter(range(CHECK_VARIANT))
            for label, endpoint, kind, repeat in (
                ("single check", "allow", single, args.singles // len(single) // 2),
                ("batch", "batch", batch, args.batches // len(batch) // 2),
            ):
                seen_bodies = plain[endpoint] * max(1, repeat)
                new_bodies = [
                    new(b.template, v) for v in islice(variant, max(1, repeat)) for b in kind
                ]
                await timed_run(sidecar, f"{label}, seen", endpoint, seen_bodies, False)
                await timed_run(sidecar, f"{label}, new", endpoint, new_bodies, True)
            for again in ("", ", again"):
                await timed_run(
                    sidecar,
                    f"batch, seen, after the new ones{again}",
                    "batch",
                    plain["batch"],
                    False,
                )
        finally:
            await sidecar.stop()

    if args.http:  # on the event loop a worker runs (a timer, say, costs less there)
        import uvloop

        uvloop.run(main_())
    else:
        asyncio.run(main_())
    if profile is not None:
        profile.dump_stats(args.profile)
    lines = ["| bodies | CPU per body |", "|---|---:|"]
    lines += [f"| {label} | {us:,.1f} µs |" for label, us in rows]
    return "\n".join(lines)


class Http:
    """`--in-process --http`: the bodies go through the sidecar's HTTP protocol as a worker
    runs it (`GuardedHttpTools` on uvicorn's httptools parser, the response written whole) on
    one kept-alive connection whose transport records the writes: what a request costs the
    worker above its answer, without sockets. The request head is wrk's."""

    def __init__(self, sidecar: Any) -> None:
        from uvicorn.config import Config
        from uvicorn.server import ServerState

        from devstack.loopback import LoopbackTransport
        from sidecar.app import SidecarApp
        from sidecar.http import GuardedHttpTools

        app = SidecarApp(sidecar.config)
        app.sidecar = sidecar
        config = Config(app, http=GuardedHttpTools, ws="none", lifespan="off", proxy_headers=False)
        state = ServerState()  # uvicorn's default headers, as a worker sends them
        state.default_headers = [
            (b"date", b"Mon, 07 Dec 2026 14:00:00 GMT"),
            (b"server", b"uvicorn"),
        ]
        self.protocol = GuardedHttpTools(config, state, {})

        class Recording(LoopbackTransport):
            def __init__(self) -> None:
                super().__init__()
                self.writes: list[bytes] = []

            def write(self, data: Any) -> None:
                self.writes.append(bytes(data))

        self.transport = Recording()
        self.protocol.connection_made(self.transport)

    async def answer(self, endpoint: str, body: bytes) -> bytes:
        writes = self.transport.writes
        writes.clear()
        self.protocol.data_received(
            b"POST /v1/data/trino/%s HTTP/1.1\r\nHost: 127.0.0.1:8181\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (endpoint.encode(), len(body), body)
        )
        for _ in range(100_000):  # an answer through ASGI: its task runs on this loop
            if writes:
                return writes[-1].partition(b"\r\n\r\n")[2]
            await asyncio.sleep(0 if _ < 1000 else 0.01)
        raise SystemExit(f"no answer to {body!r}")


def stalls(work: Path, single: list[Body], args: argparse.Namespace) -> str:
    """What holds one worker's event loop during a flood of new single checks (`--stalls N`):
    the CPU time of every body's answer, of every garbage collection by generation (timed by
    `gc.callbacks`, inside the bodies' times) and of the worker's once-a-second collector step
    (`Frozen.tick`/`settle`, between bodies). CPU time of the loop's thread, not wall time, so
    a loaded machine inflates these figures little; a wall-clock p99 under wrk measures its
    queueing instead. The loop yields after every body, as it does between requests."""
    import gc

    from sidecar.app import ENDPOINTS, Sidecar
    from sidecar.config import load_sidecar_config

    count = iter(range(10**9))
    collections: list[tuple[int, float]] = []  # (generation, CPU seconds)
    steps: list[tuple[str, float]] = []  # ("tick" or "settle", CPU seconds)
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            collections.append((info["generation"], time.thread_time() - started[0]))

    def timed_step(name: str, step: Any) -> Any:
        def wrapper(*a: Any) -> Any:
            start = time.thread_time()
            try:
                return step(*a)
            finally:
                steps.append((name, time.thread_time() - start))

        return wrapper

    def query_id(body: bytes) -> bytes:
        return body.replace(
            generate.QID.encode(), f"20261207_000000_{next(count):05d}_bench".encode()
        )

    async def answer(sidecar: Sidecar, body: bytes) -> bytes:
        found = sidecar.answer_from_memory("allow", body)
        return await ENDPOINTS["allow"](sidecar, body) if found is None else found

    async def main_() -> array[float]:
        sidecar = await Sidecar.start(load_sidecar_config(work / "sidecar.yaml"))
        try:
            for _ in range(1200):
                if sidecar.answers.revision is not None and not sidecar.answers.away:
                    break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("the PDP did not answer within 120 s")
            for b in single:  # every user's view; every answer the world's
                got = orjson.loads(await answer(sidecar, query_id(seen(b.template))))["result"]
                if got != b.expected:
                    raise SystemExit(f"answered {got!r}, the world says {b.expected!r}")
            frozen = sidecar._frozen
            frozen.tick = timed_step("tick", frozen.tick)  # type: ignore[method-assign]
            frozen.settle = timed_step("settle", frozen.settle)  # type: ignore[method-assign]
            # made as they are sent, and their times in an array: a list of the bodies (or of
            # float objects) would add a million references to every full collection's walk
            flood = islice(
                (new(b.template, v) for v in range(1, CHECK_VARIANT) for b in single), args.stalls
            )
            per_body = array("d")
            gc.callbacks.append(on_gc)
            try:
                for body in flood:
                    body = query_id(body)
                    start = time.thread_time()
                    await answer(sidecar, body)
                    per_body.append(time.thread_time() - start)
                    await asyncio.sleep(0)
            finally:
                gc.callbacks.remove(on_gc)
            return per_body
        finally:
            await sidecar.stop()

    per_body = sorted(asyncio.run(main_()))
    ms = 1e3

    def at(q: float) -> float:
        return per_body[min(len(per_body) - 1, int(q * len(per_body)))] * ms

    lines = [
        f"{len(per_body):,} new single checks, CPU per body, ms: p50 {at(0.5):.3f}, "
        f"p99 {at(0.99):.3f}, p99.9 {at(0.999):.3f}, max {per_body[-1] * ms:.1f}; "
        f"over 1 ms {sum(t > 1e-3 for t in per_body)}, over 5 ms {sum(t > 5e-3 for t in per_body)}",
        "",
        "| what | count | total ms | max ms | over 1 ms | over 5 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    groups = [(f"gc generation {g}", [s for gen, s in collections if gen == g]) for g in range(3)]
    groups += [(name, [s for n, s in steps if n == name]) for name in ("tick", "settle")]
    for label, times in groups:
        lines.append(
            f"| {label} | {len(times)} | {sum(times) * ms:.1f} | {max(times, default=0) * ms:.1f} "
            f"| {sum(t > 1e-3 for t in times)} | {sum(t > 5e-3 for t in times)} |"
        )
    return "\n".join(lines)


# --- report ---------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    c = report["conditions"]
    lines = [
        f"Date {c['date']}; {c['machine']}; Python {c['python']}; {c['versions']}; "
        f"{report['opa']}.",
        f"Method: {c['method']}. Answers checked: {report['checked']}.",
        "",
        "| case | req/s per round | p50 ms | p99 ms per round | max ms | other jobs % | load |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    by_case: dict[str, list[dict[str, Any]]] = {}
    for r in report["runs"]:
        by_case.setdefault(r["case"], []).append(r)
    for name, runs in by_case.items():
        rps = " / ".join(f"{r['rps']:,.0f}" for r in runs)
        p99 = " / ".join(f"{r['p99_ms']:.2f}" for r in runs)
        lines.append(
            f"| {name} | {rps} | {statistics.median(r['p50_ms'] for r in runs):.2f} | {p99} "
            f"| {max(r['max_ms'] for r in runs):.0f} "
            f"| {statistics.median(r['foreign_pct'] for r in runs):.0f} "
            f"| {min(r['loadavg'] for r in runs):.1f}-{max(r['loadavg'] for r in runs):.1f} |"
        )
    lines += ["", "| ratio, same round | per round | median |", "|---|---|---:|"]
    rate = {(r["case"], r["round"]): r["rps"] for r in report["runs"]}
    rounds_ = sorted({r["round"] for r in report["runs"]})
    for freshness in ("seen", "new"):
        for kind, *_ in KINDS:
            for other in ("go", "opa"):
                ratios = [
                    rate[f"sidecar {freshness} {kind}", n] / rate[f"{other} {freshness} {kind}", n]
                    for n in rounds_
                ]
                lines.append(
                    f"| sidecar / {other}, {freshness} {kind} "
                    f"| {', '.join(f'{x:.2f}' for x in ratios)} "
                    f"| {statistics.median(ratios):.2f} |"
                )
    lines += [
        "",
        "No lasting slowdown: the sidecar's cached batch rate around 10 s of new batch bodies.",
        "",
        "| round | before req/s | flood req/s, p99 ms, max ms | after | after again "
        "| after / before | other jobs % |",
        "|---|---:|---|---:|---:|---|---:|",
    ]
    for number in sorted({r["round"] for r in report["lasting"]}):
        step = {r["step"]: r for r in report["lasting"] if r["round"] == number}
        before, flood = step["before"], step["flood"]
        after, again = step["after"], step["after again"]
        foreign = max(r["foreign_pct"] for r in step.values())
        lines.append(
            f"| {number} | {before['rps']:,.0f} | {flood['rps']:,.0f}, {flood['p99_ms']:.2f}, "
            f"{flood['max_ms']:.0f} | {after['rps']:,.0f} | {again['rps']:,.0f} "
            f"| {after['rps'] / before['rps']:.2f}, {again['rps'] / before['rps']:.2f} "
            f"| {foreign:.0f} |"
        )
    return "\n".join(lines)


def in_process_main(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="unseen-bodies-"))
    ports = {name: run.free_port() for name in ("sidecar", "pdp")}
    world = tw.build()
    tw.write_all(world, work, ports["pdp"], ports["sidecar"])
    single, batch = bodies(world)
    command = [run.PYTHON, "-m", "pdp.cli", "serve", "--config", str(work / "pdp.yaml")]
    try:
        with run.started(command, work / "pdp.log"):
            print(
                f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()}", file=sys.stderr
            )
            if args.stalls:
                print(stalls(work, single, args))
            else:
                print(in_process(work, single, batch, args))
            print(
                f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()}", file=sys.stderr
            )
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="rounds of the 18 cases")
    parser.add_argument("--duration", type=int, default=8, help="seconds per timed wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds per untimed run")
    parser.add_argument("--flood", type=int, default=10, help="seconds of new bodies")
    parser.add_argument("--lasting", type=int, default=2, help="before/flood/after rounds")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="instead: CPU per body of one sidecar worker driven in-process (a real PDP; no HTTP)",
    )
    parser.add_argument("--singles", type=int, default=60_000, help="--in-process: single checks")
    parser.add_argument("--batches", type=int, default=3_000, help="--in-process: batches")
    parser.add_argument("--profile", type=Path, help="--in-process: cProfile of the new bodies")
    parser.add_argument(
        "--http",
        action="store_true",
        help="--in-process: through the sidecar's HTTP protocol (parsing, the response write)",
    )
    parser.add_argument(
        "--stalls",
        type=int,
        metavar="N",
        help="--in-process: instead, what holds the worker during N new single checks",
    )
    args = parser.parse_args()
    if args.in_process:
        return in_process_main(args)
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    opa = opa_binary()
    work = Path(tempfile.mkdtemp(prefix="unseen-bodies-"))
    ports = {name: run.free_port() for name in (*SERVERS, "pdp")}
    world = tw.build()
    tw.write_all(world, work, ports["pdp"], ports["sidecar"])
    single, batch = bodies(world)
    write_bodies(work, single, batch)
    offsets = Offsets({f: len(single if f.startswith("single") else batch) for f in FILES}, {})
    report: dict[str, Any] = {"conditions": run.conditions(args)}
    report["conditions"]["method"] = (
        f"wrk -t1, {args.runs} rounds x 18 cases x {args.duration} s (each round: untimed "
        f"{args.warmup} s of seen bodies, the seen cases, then the new ones), then "
        f"{args.lasting} x (cached batches {args.duration} s, new batches {args.flood} s, "
        f"cached batches 2 x {args.duration} s)"
    )
    report["opa"] = os.popen(f"{opa} version").read().splitlines()[0]
    try:
        with ExitStack() as stack:
            commands: dict[str, Callable[[], list[str]]] = {
                "sidecar": lambda: [
                    run.PYTHON, "-m", "pdp.cli", "up", "--config", str(work / "pdp.yaml"),
                    "--sidecar-config", str(work / "sidecar.yaml"),
                ],
                "opa": lambda: [
                    str(opa), "run", "--server", "--addr", f"127.0.0.1:{ports['opa']}",
                    "--log-level", "error", str(REGO), str(work / "opa-data.json"),
                ],
                "go": lambda: gopolicy_command(
                    gopolicy_binary(), ports["go"], work / "opa-data.json"
                ),
            }  # fmt: skip
            for server in SERVERS:
                stack.enter_context(run.started(commands[server](), work / f"{server}.log"))
            for server in SERVERS:
                run.wait_ready(ports[server], sidecar=server == "sidecar", timeout=120)
            started = time.monotonic()
            report["checked"] = check(ports, single, batch)
            print(f"answers checked in {time.monotonic() - started:.0f} s", file=sys.stderr)
            for case in cases("seen"):  # every user's view in both workers; the JITs warm
                if case.connections > 1:
                    run.warm(work, ports, case, args.warmup, tries=4)
            report["runs"] = rounds(work, ports, args, offsets)
            report["lasting"] = lasting(work, ports, args, offsets)
    finally:
        run.clean_up(work, args.keep)
    return run.publish(markdown(report), report, args.json)


if __name__ == "__main__":
    sys.exit(main())
