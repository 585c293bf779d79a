"""Single-check latency behind large batches (issue 20, item 4): while 4 clients each send a
FilterTables batch of 100,000 tables never asked about (7 MB, within the default limits), one
client sends a cached single check in a closed loop; its latencies during the batches are
reported, with the batches' own durations and, from a sidecar that exposes them in /metrics,
its full (generation-2) garbage collections.

    .venv/bin/python benchmarks/batch_stall.py                      # this tree, 3 rounds
    git archive COMMIT | tar -x -C /tmp/before                      # an earlier tree ...
    .venv/bin/python benchmarks/batch_stall.py --before /tmp/before # ... alternating with it

The world, PDP and sidecar (2 workers) are run.py's (`generate.py`, `pdp up`); each round starts
them afresh, so every round begins with cold caches. Only 127.0.0.1 is used; every process
started here is stopped by its own process group.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402  (benchmarks/ is not a package)
import run  # noqa: E402

BATCHES, ITEMS = 4, 100_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tree")
    parser.add_argument("--before", type=Path, help="a source tree to measure alternately")
    args = parser.parse_args()
    trees = {"after": run.REPO, **({"before": args.before.resolve()} if args.before else {})}
    work = Path(tempfile.mkdtemp(prefix="pdp-stall-"))
    sidecar_port = run.free_port()
    world = generate.generate(work, sidecar_port, run.free_port(), queries=10)
    check = generate.select(world.users[0], world.tables[0], ["id"])
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    try:
        for number in range(args.rounds):
            for name, tree in sorted(trees.items()):  # "after" first, then "before"
                with started(tree, work):
                    run.wait_ready(sidecar_port, sidecar=True)
                    result = one_round(sidecar_port, check, world, f"r{number}")
                results[name].append(result)
                print(f"  {name} round {number + 1}: {summary(result)}", file=sys.stderr)
    finally:
        run.clean_up(work)
    return run.publish(markdown(results))


@contextlib.contextmanager
def started(tree: Path, work: Path) -> Iterator[None]:
    """`pdp up` from `tree` (its directory first on the path of every process it starts)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [run.PYTHON, "-m", "pdp.cli", "up", "--config", str(work / "pdp.yaml")]
    command += ["--sidecar-config", str(work / "sidecar.yaml")]
    with (work / "pdp-up.log").open("ab") as out:
        process = subprocess.Popen(
            command, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def one_round(port: int, check: bytes, world: generate.World, salt: str) -> dict[str, Any]:
    bodies = [batch(world.users[1 + i], f"{salt}b{i}") for i in range(BATCHES)]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for number in range(20):  # the check is then answered from memory by its worker
        assert ask(connection, run.ALLOW, with_query_id(check, number))[0] == 200
    time.sleep(1.2)  # the workers' metrics snapshots are up to a second old
    collections_before = full_collections(connection)
    done: list[float] = []
    start = time.monotonic()

    def send(body: bytes) -> None:
        status, answer = _post(port, body)
        assert status == 200 and len(orjson.loads(answer)["result"]) > 0, status
        done.append(time.monotonic() - start)

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    latencies = []
    while len(done) < BATCHES:
        sent = time.perf_counter()
        assert ask(connection, run.ALLOW, with_query_id(check, len(latencies)))[0] == 200
        latencies.append((time.perf_counter() - sent) * 1000)
        time.sleep(0.005)
    for thread in threads:
        thread.join()
    time.sleep(1.2)  # the workers' metrics snapshots are up to a second old
    collections_after = full_collections(connection)
    connection.close()
    latencies.sort()
    return {
        "full_gc": during(collections_before, collections_after),
        "checks": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "max_ms": latencies[-1],
        "batches_s": sorted(done),
    }


def full_collections(connection: http.client.HTTPConnection) -> tuple[float, float] | None:
    """(how many, their seconds in all) of the sidecar's generation-2 collections so far, or
    None from a sidecar that does not count them."""
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    found = {}
    for line in text.splitlines():
        for part in ("count", "sum"):
            if line.startswith(f'pdp_sidecar_gc_pause_seconds_{part}{{generation="2"}} '):
                found[part] = float(line.split()[-1])
    return (found["count"], found["sum"]) if found else None


def during(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> tuple[int, float] | None:
    """(how many, their seconds in all) of the collections between the two."""
    if before is None or after is None:
        return None
    return int(after[0] - before[0]), after[1] - before[1]


def batch(user: generate.User, schema: str) -> bytes:
    # tables never asked about: every item is decided
    tables = [generate.Table("hive", schema, f"t{i}", ()) for i in range(ITEMS)]
    return with_query_id(generate.filter_tables(user, tables), 0)


def with_query_id(body: bytes, number: int) -> bytes:
    """A new queryId per request, as Trino sends (and wrk/cycle.lua writes)."""
    return body.replace(generate.QID.encode(), b"20261206_000000_%05d_bench" % number)


def ask(connection: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    connection.request("POST", path, body, {"content-type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def _post(port: int, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        return ask(connection, run.BATCH, body)
    finally:
        connection.close()


def summary(result: dict[str, Any]) -> str:
    return (
        f"{result['checks']} checks, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} "
        f"ms, max {result['max_ms']:.0f} ms; batches done after "
        + ", ".join(f"{s:.1f}" for s in result["batches_s"])
        + " s"
        + full_gc_text(result["full_gc"])
    )


def full_gc_text(full: tuple[int, float] | None) -> str:
    if full is None:
        return ""
    count, seconds = full
    return f"; {count} full collections, {seconds:.2f} s in all"


def markdown(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| tree | checks during the batches | p50 ms | p99 ms | max ms | last batch done, s "
        "| full collections |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, rounds in sorted(results.items(), reverse=True):
        for number, r in enumerate(rounds, 1):
            lines.append(
                f"| {name} (round {number}) | {r['checks']} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {r['max_ms']:.0f} | {r['batches_s'][-1]:.1f} | "
                f"{full_gc_text(r['full_gc']).removeprefix('; ') or 'not counted'} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
